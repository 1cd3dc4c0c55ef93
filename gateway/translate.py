"""Translation between the OpenAI Chat Completions and Anthropic Messages wire formats.

Pure: values in, values out; no ORM, no settings, no network. Payloads stay plain dicts.

Guarantees:
- A translated request is a valid request of the target format: the target's required fields
  are always set (`model`, `messages`, and `max_tokens` / `max_completion_tokens` from the
  caller's cap), and a source field with no target equivalent is dropped, never forwarded raw.
  Content that cannot be represented in the target (audio input, file ids, server-side tools,
  legacy `functions`) raises `TranslationError`, whose message is safe to show to the client,
  instead of being silently dropped.
- Towards Anthropic, messages obey its structural rules: system text is lifted to `system`,
  consecutive same-role turns are merged (so consecutive tool results share one user turn,
  tool results first), empty and whitespace-only text blocks are removed, a trailing assistant
  turn has no trailing whitespace, tool ids match `^[a-zA-Z0-9_-]+$`.
- Usage keeps OpenAI semantics internally (`prompt_tokens` includes cached tokens); the
  Anthropic view subtracts cache reads and writes from `input_tokens`. Counts are never
  negative and cache counts never exceed the prompt count.
- Stream translators emit a sequence that the official SDK stream accumulators accept:
  Anthropic `message_start`, `ping`, content blocks with consecutive indexes (start, deltas,
  stop), one `message_delta`, `message_stop`; OpenAI chunks that open with
  `delta.role = "assistant"`, tool call deltas whose first fragment carries id, type and name,
  a finish_reason chunk and, when asked, a usage chunk with `choices: []`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "TranslationError",
    "Usage",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "anthropic_stop_to_openai",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
    "openai_stop_to_anthropic",
]

# OpenAI rejects more than four stop sequences.
OPENAI_MAX_STOP_SEQUENCES = 4
JSON_OBJECT_INSTRUCTION = "Respond only with a single valid JSON object and no other text."
JSON_SCHEMA_INSTRUCTION = (
    "Respond only with a single valid JSON object that conforms to this JSON schema, "
    "and no other text:\n"
)
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_TOOL_ID_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL = re.compile(
    r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?P<params>(;[^,;]*)*),(?P<data>.*)$", re.S
)
_ANTHROPIC_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Assistant-side Anthropic blocks that only mean something to Anthropic's own servers.
_ANTHROPIC_SERVER_ONLY_BLOCKS = frozenset(
    {
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)


class TranslationError(ValueError):
    """The request cannot be expressed in the target format; the message is client-safe."""


# --- usage


def _count(value: object) -> int:
    """A token count from an untrusted payload: non-negative int, anything else is 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0


@dataclass(frozen=True)
class Usage:
    """Token usage of one call, in OpenAI semantics.

    Invariants: every count is >= 0 and cache_read_tokens + cache_creation_tokens <=
    prompt_tokens (both caches are subsets of the prompt).
    """

    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    def __post_init__(self) -> None:
        counts = (
            self.prompt_tokens,
            self.completion_tokens,
            self.cache_read_tokens,
            self.cache_creation_tokens,
        )
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in counts):
            raise ValueError("token counts must be non-negative integers")
        if self.cache_read_tokens + self.cache_creation_tokens > self.prompt_tokens:
            raise ValueError("cached tokens cannot exceed prompt tokens")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def uncached_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cache_read_tokens - self.cache_creation_tokens

    @classmethod
    def from_openai(cls, usage: dict | None) -> Usage | None:
        """Parse an OpenAI `usage` object; None when absent. Inconsistent cache counts are
        clamped to the prompt count rather than rejected (upstream bugs must not break billing).
        """
        if not isinstance(usage, dict):
            return None
        prompt = _count(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        cache_read = min(_count(details.get("cached_tokens")), prompt)
        # `cache_write_tokens` is what OpenRouter-style upstreams report for cache writes.
        cache_creation = min(_count(details.get("cache_write_tokens")), prompt - cache_read)
        return cls(
            prompt_tokens=prompt,
            completion_tokens=_count(usage.get("completion_tokens")),
            cache_read_tokens=cache_read,
            cache_creation_tokens=cache_creation,
        )

    @classmethod
    def from_anthropic(cls, usage: dict | None) -> Usage | None:
        """Parse an Anthropic `usage` object; None when absent. Anthropic's `input_tokens`
        excludes cache reads and writes, so they are added back into `prompt_tokens`.
        """
        if not isinstance(usage, dict):
            return None
        cache_read = _count(usage.get("cache_read_input_tokens"))
        cache_creation = _count(usage.get("cache_creation_input_tokens"))
        return cls(
            prompt_tokens=_count(usage.get("input_tokens")) + cache_read + cache_creation,
            completion_tokens=_count(usage.get("output_tokens")),
            cache_read_tokens=cache_read,
            cache_creation_tokens=cache_creation,
        )

    def to_openai(self) -> dict:
        details: dict[str, int] = {"cached_tokens": self.cache_read_tokens}
        if self.cache_creation_tokens:
            # Only when non-zero: plain OpenAI never reports it, but dropping it would lose
            # the cache-write count of an Anthropic upstream.
            details["cache_write_tokens"] = self.cache_creation_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": details,
        }

    def to_anthropic(self) -> dict:
        return {
            "input_tokens": self.uncached_prompt_tokens,
            "output_tokens": self.completion_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation_input_tokens": self.cache_creation_tokens,
        }


# --- stop reasons

_OPENAI_TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ANTHROPIC_TO_OPENAI_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A paused server-tool turn is a normal end from a Chat Completions client's view.
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def openai_stop_to_anthropic(
    finish_reason: str | None, *, matched_stop: str | None = None
) -> str | None:
    """Map an OpenAI finish_reason to an Anthropic stop_reason; None stays None.

    `stop` becomes `stop_sequence` only when the matched sequence is known (OpenAI does not
    report it; vLLM-style upstreams do), else `end_turn`. Unknown reasons become `end_turn`.
    """
    if finish_reason is None:
        return None
    if finish_reason == "stop" and matched_stop:
        return "stop_sequence"
    return _OPENAI_TO_ANTHROPIC_STOP.get(finish_reason, "end_turn")


def anthropic_stop_to_openai(stop_reason: str | None) -> str | None:
    """Map an Anthropic stop_reason to an OpenAI finish_reason; None stays None, unknown
    reasons become `stop`."""
    if stop_reason is None:
        return None
    return _ANTHROPIC_TO_OPENAI_STOP.get(stop_reason, "stop")


# --- ids


def _tool_use_id(source_id: object) -> str:
    """An id valid for Anthropic tool_use (`^[a-zA-Z0-9_-]+$`), stable for the same input so a
    tool call and its result still match after translation."""
    if isinstance(source_id, str) and source_id:
        return _TOOL_ID_INVALID.sub("_", source_id)
    return f"toolu_{uuid.uuid4().hex[:24]}"


def _tool_call_id(source_id: object) -> str:
    if isinstance(source_id, str) and source_id:
        return source_id
    return f"call_{uuid.uuid4().hex[:24]}"


def _anthropic_message_id(source_id: object) -> str:
    if isinstance(source_id, str) and source_id:
        if source_id.startswith("msg_"):
            return source_id
        return "msg_" + source_id.removeprefix("chatcmpl-")
    return f"msg_{uuid.uuid4().hex[:24]}"


def _openai_completion_id(source_id: object) -> str:
    if isinstance(source_id, str) and source_id:
        if source_id.startswith("chatcmpl-"):
            return source_id
        return "chatcmpl-" + source_id.removeprefix("msg_")
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


# --- helpers


def _text_block(text: str, source: dict | None = None) -> dict:
    block: dict[str, Any] = {"type": "text", "text": text}
    if source is not None and isinstance(source.get("cache_control"), dict):
        # LiteLLM/OpenRouter let OpenAI clients mark prompt-cache breakpoints this way.
        block["cache_control"] = source["cache_control"]
    return block


def _has_text(text: object) -> bool:
    return isinstance(text, str) and bool(text.strip())


def _parse_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a base64 `data:` URL, None for any other URL."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    if ";base64" not in match["params"]:
        raise TranslationError("data URLs must be base64-encoded")
    return match["media"].lower(), match["data"]


def _json_arguments(value: object) -> str:
    return json.dumps(value if isinstance(value, dict) else {}, ensure_ascii=False)


def _parse_arguments(arguments: object) -> dict:
    """Tool-call input from an OpenAI `arguments` string. Anthropic requires an object, so
    arguments that are not a JSON object (e.g. cut off by max_tokens) become `{}`."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _texts_of(content: object) -> list[str]:
    """The text pieces of OpenAI or Anthropic content (string or parts)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
            text = part.get("text", part.get("refusal"))
            if isinstance(text, str):
                texts.append(text)
    return texts


def _stop_list(stop: object) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


def _number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


# --- OpenAI -> Anthropic request


def _openai_part_to_anthropic(part: object) -> dict | None:
    """One OpenAI user content part as an Anthropic block; None for parts that are empty."""
    if isinstance(part, str):
        return _text_block(part) if _has_text(part) else None
    if not isinstance(part, dict):
        raise TranslationError("message content parts must be objects")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        return _text_block(text, part) if _has_text(text) else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise TranslationError("image_url.url is required")
        parsed = _parse_data_url(url)
        if parsed is None:
            source: dict[str, Any] = {"type": "url", "url": url}
        else:
            media_type, data = parsed
            if media_type not in _ANTHROPIC_IMAGE_TYPES:
                raise TranslationError(f"image type {media_type} is not supported by this model")
            source = {"type": "base64", "media_type": media_type, "data": data}
        block: dict[str, Any] = {"type": "image", "source": source}
        if isinstance(part.get("cache_control"), dict):
            block["cache_control"] = part["cache_control"]
        return block
    if kind == "file":
        return _openai_file_to_anthropic(part.get("file"))
    raise TranslationError(f"content part type {kind!r} is not supported by this model")


def _openai_file_to_anthropic(file: object) -> dict:
    file_data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(file_data, str):
        raise TranslationError("file parts must carry file_data; file ids are not supported")
    parsed = _parse_data_url(file_data)
    if parsed is None:
        raise TranslationError("file_data must be a base64 data URL")
    media_type, data = parsed
    block: dict[str, Any]
    if media_type == "application/pdf":
        block = {
            "type": "document",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    elif media_type == "text/plain":
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TranslationError("file_data is not valid base64 UTF-8 text") from exc
        block = {
            "type": "document",
            "source": {"type": "text", "media_type": media_type, "data": text},
        }
    else:
        raise TranslationError(f"file type {media_type} is not supported by this model")
    filename = file.get("filename") if isinstance(file, dict) else None
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _openai_content_to_blocks(content: object) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_block(content)] if _has_text(content) else []
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of parts")
    blocks = []
    for part in content:
        block = _openai_part_to_anthropic(part)
        if block is not None:
            blocks.append(block)
    return blocks


def _openai_tool_result(message: dict) -> dict:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": _tool_use_id(message.get("tool_call_id")),
    }
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif isinstance(content, list):
        parts = [p for p in _openai_content_to_blocks(content) if p["type"] in ("text", "image")]
        if parts:
            block["content"] = parts
    return block


def _openai_assistant_blocks(message: dict) -> list[dict]:
    blocks = [_text_block(text) for text in _texts_of(message.get("content")) if _has_text(text)]
    refusal = message.get("refusal")
    if _has_text(refusal):
        blocks.append(_text_block(refusal))
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise TranslationError("tool_calls must be a list")
    for call in tool_calls:
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            raise TranslationError("only function tool calls are supported by this model")
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        blocks.append(
            {
                "type": "tool_use",
                "id": _tool_use_id(call.get("id")),
                "name": str(function.get("name") or ""),
                "input": _parse_arguments(function.get("arguments")),
            }
        )
    return blocks


def _openai_messages_to_anthropic(messages: object) -> tuple[list[dict], list[dict]]:
    """(system blocks, Anthropic messages) for an OpenAI `messages` list."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list")
    system: list[dict] = []
    turns: list[tuple[str, list[dict]]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise TranslationError("each message must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            # Anthropic has one top-level system prompt; a mid-conversation system message
            # is lifted into it, keeping its order relative to other system text.
            system.extend(_openai_content_to_blocks(message.get("content")))
        elif role == "user":
            turns.append(("user", _openai_content_to_blocks(message.get("content"))))
        elif role == "assistant":
            if message.get("function_call") is not None:
                raise TranslationError("legacy function_call is not supported; use tool_calls")
            turns.append(("assistant", _openai_assistant_blocks(message)))
        elif role == "tool":
            turns.append(("user", [_openai_tool_result(message)]))
        elif role == "function":
            raise TranslationError("legacy function messages are not supported; use tools")
        else:
            raise TranslationError(f"unknown message role {role!r}")
    return system, _anthropic_turns(turns)


def _anthropic_turns(turns: list[tuple[str, list[dict]]]) -> list[dict]:
    merged: list[tuple[str, list[dict]]] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1][0] == role:
            previous = merged[-1][1]
            # Anthropic wants tool results at the head of a user turn.
            results = [b for b in previous + blocks if b["type"] == "tool_result"]
            others = [b for b in previous + blocks if b["type"] != "tool_result"]
            merged[-1] = (role, results + others)
        else:
            merged.append((role, list(blocks)))
    if merged and merged[-1][0] == "assistant":
        _strip_trailing_whitespace(merged[-1][1])
        if not merged[-1][1]:
            merged.pop()
    if not merged:
        raise TranslationError("messages must contain at least one non-empty user message")
    return [{"role": role, "content": _compact_content(blocks)} for role, blocks in merged]


def _strip_trailing_whitespace(blocks: list[dict]) -> None:
    # Anthropic rejects a final assistant (prefill) turn that ends in whitespace.
    if blocks and blocks[-1]["type"] == "text":
        text = blocks[-1]["text"].rstrip()
        if text:
            blocks[-1] = {**blocks[-1], "text": text}
        else:
            blocks.pop()


def _compact_content(blocks: list[dict]) -> str | list[dict]:
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return blocks[0]["text"]
    return blocks


def _openai_tools_to_anthropic(tools: object) -> list[dict]:
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise TranslationError("only function tools are supported by this model")
        function = tool.get("function")
        if not isinstance(function, dict) or not function.get("name"):
            raise TranslationError("every tool needs function.name")
        parameters = function.get("parameters")
        converted: dict[str, Any] = {
            "name": function["name"],
            "input_schema": parameters if isinstance(parameters, dict) else dict(_EMPTY_SCHEMA),
        }
        if isinstance(function.get("description"), str) and function["description"]:
            converted["description"] = function["description"]
        out.append(converted)
    return out


def _openai_tool_choice_to_anthropic(choice: object, *, parallel: object) -> dict | None:
    converted: dict[str, Any] | None
    if choice == "auto":
        converted = {"type": "auto"}
    elif choice == "none":
        converted = {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise TranslationError("tool_choice.function.name is required")
        converted = {"type": "tool", "name": name}
    else:
        # Absent, or a variant with no Anthropic equivalent (allowed_tools, custom).
        converted = None
    if parallel is False:
        converted = converted or {"type": "auto"}
        if converted["type"] != "none":
            converted["disable_parallel_tool_use"] = True
    return converted


def _response_format_instruction(response_format: object) -> str | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            return JSON_OBJECT_INSTRUCTION
        return JSON_SCHEMA_INSTRUCTION + json.dumps(schema, ensure_ascii=False)
    return None


def openai_request_to_anthropic(body: dict, *, model: str, max_tokens: int) -> dict:
    """An Anthropic Messages request equivalent to an OpenAI Chat Completions request.

    `model` and `max_tokens` come from the caller. `response_format` has no Anthropic
    equivalent that every model accepts, so it becomes an instruction appended to the system
    prompt (best effort; the reply is not validated). `temperature` is clamped to Anthropic's
    0..1; whitespace-only stop sequences are dropped (Anthropic rejects them). `n`, `seed`,
    penalties, logprobs, `store` and other OpenAI-only fields are dropped. Raises
    TranslationError for content Anthropic cannot take; `body` is never modified.
    """
    if not isinstance(body, dict):
        raise TranslationError("request body must be an object")
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise TranslationError("legacy functions are not supported; use tools")
    system, messages = _openai_messages_to_anthropic(body.get("messages"))
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}

    instruction = _response_format_instruction(body.get("response_format"))
    if instruction is not None:
        system.append(_text_block(instruction))
    if system:
        plain = all(block.keys() == {"type", "text"} for block in system)
        out["system"] = "\n\n".join(b["text"] for b in system) if plain else system

    temperature = _number(body.get("temperature"))
    if temperature is not None:
        out["temperature"] = min(max(temperature, 0), 1)
    top_p = _number(body.get("top_p"))
    if top_p is not None:
        out["top_p"] = top_p
    stop = [s for s in _stop_list(body.get("stop")) if s.strip()]
    if stop:
        out["stop_sequences"] = stop
    if body.get("stream") is True:
        out["stream"] = True
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}

    tools = body.get("tools")
    if tools:
        out["tools"] = _openai_tools_to_anthropic(tools)
        # Anthropic rejects tool_choice without tools, so it is only set alongside them.
        choice = _openai_tool_choice_to_anthropic(
            body.get("tool_choice"), parallel=body.get("parallel_tool_calls")
        )
        if choice is not None:
            out["tool_choice"] = choice
    return out


# --- Anthropic -> OpenAI request


def _anthropic_image_to_openai(block: dict) -> dict:
    source = block.get("source")
    if not isinstance(source, dict):
        raise TranslationError("image blocks need a source")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise TranslationError("only base64 and url image sources are supported by this model")
    return {"type": "image_url", "image_url": {"url": url}}


def _anthropic_document_to_openai(block: dict) -> dict:
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if kind == "content":
        return {"type": "text", "text": "\n\n".join(_texts_of(source.get("content")))}
    if kind == "base64" and source.get("media_type") == "application/pdf":
        title = block.get("title")
        return {
            "type": "file",
            "file": {
                "filename": title if isinstance(title, str) and title else "document.pdf",
                "file_data": f"data:application/pdf;base64,{source.get('data')}",
            },
        }
    raise TranslationError("only inline PDF and text documents are supported by this model")


def _anthropic_user_part(block: dict) -> dict | None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return {"type": "text", "text": text} if isinstance(text, str) and text else None
    if kind == "image":
        return _anthropic_image_to_openai(block)
    if kind == "document":
        return _anthropic_document_to_openai(block)
    raise TranslationError(f"content block type {kind!r} is not supported by this model")


def _openai_user_content(parts: list[dict]) -> str | list[dict]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _anthropic_tool_result_to_openai(block: dict) -> tuple[dict, list[dict]]:
    """(tool message, image parts) — OpenAI tool messages carry text only, so images
    returned by a tool move to the user message that follows."""
    content = block.get("content")
    texts: list[str] = []
    images: list[dict] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for item in content:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "image":
                images.append(_anthropic_image_to_openai(item))
            else:
                texts.extend(_texts_of([item]))
    # `is_error` has no OpenAI field; the error text itself still reaches the model.
    message = {
        "role": "tool",
        "tool_call_id": _tool_call_id(block.get("tool_use_id")),
        "content": "\n\n".join(texts),
    }
    return message, images


def _anthropic_message_to_openai(message: dict) -> list[dict]:
    role = message.get("role")
    content = message.get("content")
    if role not in ("user", "assistant"):
        raise TranslationError(f"unknown message role {role!r}")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of blocks")
    blocks = [b for b in content if isinstance(b, dict)]
    if role == "assistant":
        texts = [b["text"] for b in blocks if b.get("type") == "text" and b.get("text")]
        tool_calls = [
            {
                "id": _tool_call_id(b.get("id")),
                "type": "function",
                "function": {
                    "name": str(b.get("name") or ""),
                    "arguments": _json_arguments(b.get("input")),
                },
            }
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        for b in blocks:
            kind = b.get("type")
            if kind not in ("text", "tool_use") and kind not in _ANTHROPIC_SERVER_ONLY_BLOCKS:
                raise TranslationError(f"content block type {kind!r} is not supported")
        out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if tool_calls:
            out["tool_calls"] = tool_calls
        if out["content"] is None and not tool_calls:
            return []
        return [out]

    tool_messages: list[dict] = []
    parts: list[dict] = []
    for block in blocks:
        if block.get("type") == "tool_result":
            tool_message, images = _anthropic_tool_result_to_openai(block)
            tool_messages.append(tool_message)
            parts.extend(images)
        else:
            part = _anthropic_user_part(block)
            if part is not None:
                parts.append(part)
    if parts:
        tool_messages.append({"role": "user", "content": _openai_user_content(parts)})
    return tool_messages


def _anthropic_tools_to_openai(tools: object) -> list[dict]:
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            raise TranslationError("server tools are not supported by this model")
        if not tool.get("name"):
            raise TranslationError("every tool needs a name")
        schema = tool.get("input_schema")
        function: dict[str, Any] = {
            "name": tool["name"],
            "parameters": schema if isinstance(schema, dict) else dict(_EMPTY_SCHEMA),
        }
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _anthropic_tool_choice_to_openai(choice: object) -> str | dict | None:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "none":
        return "none"
    if kind == "any":
        return "required"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    return None


def _anthropic_output_schema(body: dict) -> dict | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    # `output_format` is the beta spelling that preceded `output_config.format`.
    fmt = fmt if fmt is not None else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def anthropic_request_to_openai(
    body: dict,
    *,
    model: str,
    max_tokens: int,
    max_tokens_field: str = "max_completion_tokens",
) -> dict:
    """An OpenAI Chat Completions request equivalent to an Anthropic Messages request.

    The cap goes in `max_tokens_field`: `max_completion_tokens` (the only one OpenAI's
    reasoning models accept) unless the upstream only knows `max_tokens`. A streamed request
    always asks for the usage chunk, which billing needs. `top_k`, `thinking`, cache_control
    and other Anthropic-only fields are dropped; thinking and server-tool blocks in the history
    are dropped. Raises TranslationError for content OpenAI cannot take; `body` is never
    modified.
    """
    if not isinstance(body, dict):
        raise TranslationError("request body must be an object")
    if max_tokens_field not in ("max_completion_tokens", "max_tokens"):
        raise ValueError(f"unknown max_tokens_field {max_tokens_field!r}")
    source_messages = body.get("messages")
    if not isinstance(source_messages, list) or not source_messages:
        raise TranslationError("messages must be a non-empty list")

    messages: list[dict] = []
    system = body.get("system")
    system_text = "\n\n".join(t for t in _texts_of(system) if t)
    if system_text:
        messages.append({"role": "system", "content": system_text})
    for message in source_messages:
        if not isinstance(message, dict):
            raise TranslationError("each message must be an object")
        messages.extend(_anthropic_message_to_openai(message))

    out: dict[str, Any] = {"model": model, "messages": messages, max_tokens_field: max_tokens}
    for key in ("temperature", "top_p"):
        value = _number(body.get(key))
        if value is not None:
            out[key] = value
    stop = _stop_list(body.get("stop_sequences"))[:OPENAI_MAX_STOP_SEQUENCES]
    if stop:
        out["stop"] = stop
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str) and user:
        out["user"] = user
    schema = _anthropic_output_schema(body)
    if schema is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema},
        }

    tools = body.get("tools")
    if tools:
        out["tools"] = _anthropic_tools_to_openai(tools)
        choice = body.get("tool_choice")
        converted = _anthropic_tool_choice_to_openai(choice)
        if converted is not None:
            out["tool_choice"] = converted
        if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    return out


# --- responses


def _first_choice(resp: dict) -> dict:
    choices = resp.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _matched_stop(choice: dict) -> str | None:
    # vLLM and SGLang report the stop string that ended generation here; OpenAI does not.
    matched = choice.get("stop_reason", choice.get("matched_stop"))
    return matched if isinstance(matched, str) and matched else None


def openai_response_to_anthropic(resp: dict, *, message_id: str | None = None) -> dict:
    """An Anthropic Message equivalent to an OpenAI chat completion (first choice).

    The id is `message_id`, else derived from the completion id (`chatcmpl-X` -> `msg_X`).
    Tool arguments become `input` objects (`{}` when not a JSON object). A refusal becomes a
    text block with stop_reason `refusal`; tool calls reported with finish_reason `stop`
    still end with `tool_use`, which Anthropic tool loops rely on.
    """
    choice = _first_choice(resp)
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = [_text_block(t) for t in _texts_of(message.get("content")) if t]
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append(_text_block(refusal))
    has_tools = False
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        content.append(
            {
                "type": "tool_use",
                "id": _tool_use_id(call.get("id")),
                "name": str(function.get("name") or ""),
                "input": _parse_arguments(function.get("arguments")),
            }
        )
        has_tools = True
    matched = _matched_stop(choice)
    stop_reason = _final_anthropic_stop(
        choice.get("finish_reason"),
        matched_stop=matched,
        has_tools=has_tools,
        refused=bool(refusal),
    )
    usage = Usage.from_openai(resp.get("usage")) or Usage(0, 0)
    return {
        "id": message_id or _anthropic_message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": str(resp.get("model") or ""),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": matched if stop_reason == "stop_sequence" else None,
        "usage": usage.to_anthropic(),
    }


def _final_anthropic_stop(
    finish_reason: object, *, matched_stop: str | None, has_tools: bool, refused: bool
) -> str:
    reason = finish_reason if isinstance(finish_reason, str) else None
    if refused:
        return "refusal"
    if has_tools and reason in (None, "stop"):
        return "tool_use"
    return openai_stop_to_anthropic(reason, matched_stop=matched_stop) or "end_turn"


def anthropic_response_to_openai(
    resp: dict, *, completion_id: str | None = None, created: int | None = None
) -> dict:
    """An OpenAI chat completion equivalent to an Anthropic Message.

    The id is `completion_id`, else derived from the message id (`msg_X` -> `chatcmpl-X`);
    `created` defaults to now. Text blocks are concatenated into `content` (None when there
    is none); tool_use blocks become tool_calls with JSON-string arguments; thinking and
    server-tool blocks are dropped.
    """
    blocks = [b for b in resp.get("content") or [] if isinstance(b, dict)]
    texts = [
        b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)
    ]
    tool_calls = [
        {
            "id": _tool_call_id(b.get("id")),
            "type": "function",
            "function": {
                "name": str(b.get("name") or ""),
                "arguments": _json_arguments(b.get("input")),
            },
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = Usage.from_anthropic(resp.get("usage")) or Usage(0, 0)
    return {
        "id": completion_id or _openai_completion_id(resp.get("id")),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": str(resp.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": anthropic_stop_to_openai(resp.get("stop_reason")) or "stop",
            }
        ],
        "usage": usage.to_openai(),
    }


# --- streams


class OpenAIToAnthropicStream:
    """Feeds OpenAI chunk dicts, yields Anthropic (event_name, data) tuples.

    The first feed (or finish) emits `message_start` and `ping`. Each text run and each tool
    call is one content block with consecutive indexes; a block is stopped before the next
    starts. `message_delta` is held until `finish()` because OpenAI's usage chunk arrives after
    the finish_reason chunk. `finish()` is idempotent; feeds after it yield nothing.
    """

    def __init__(self, *, message_id: str, model: str, input_tokens_hint: int = 0) -> None:
        self.message_id = message_id
        self.model = model
        self.input_tokens_hint = max(input_tokens_hint, 0)
        self.usage: Usage | None = None
        self.output_events = 0
        # A mid-stream `{"error": ...}` chunk, kept for the caller to normalise and report.
        self.error: dict | None = None
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open_index: int | None = None
        self._open_is_text = False
        self._tool_blocks: dict[int, int] = {}
        self._finish_reason: str | None = None
        self._matched_stop: str | None = None
        self._refused = False

    def _start(self) -> list[tuple[str, dict]]:
        if self._started:
            return []
        self._started = True
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_tokens_hint,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def _close_block(self) -> list[tuple[str, dict]]:
        if self._open_index is None:
            return []
        index, self._open_index = self._open_index, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open_block(self, block: dict) -> tuple[int, list[tuple[str, dict]]]:
        events = self._close_block()
        index = self._next_index
        self._next_index += 1
        self._open_index = index
        self._open_is_text = block["type"] == "text"
        start = {"type": "content_block_start", "index": index, "content_block": block}
        events.append(("content_block_start", start))
        return index, events

    def _text(self, text: str) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = []
        if self._open_index is None or not self._open_is_text:
            _, events = self._open_block({"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        data = {"type": "content_block_delta", "index": self._open_index, "delta": delta}
        events.append(("content_block_delta", data))
        self.output_events += 1
        return events

    def _tool_call(self, call: dict) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = []
        position = call.get("index")
        position = position if isinstance(position, int) else 0
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        if position not in self._tool_blocks:
            block = {
                "type": "tool_use",
                "id": _tool_use_id(call.get("id")),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            self._tool_blocks[position], events = self._open_block(block)
            self.output_events += 1
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # OpenAI streams tool calls one after another; a fragment for an earlier call
            # (seen from some compatible upstreams) still goes to that call's own index.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            index = self._tool_blocks[position]
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
            self.output_events += 1
        return events

    def feed(self, chunk: dict) -> list[tuple[str, dict]]:
        """Anthropic events for one OpenAI chunk (possibly none)."""
        if self._finished or not isinstance(chunk, dict):
            return []
        events = self._start()
        if isinstance(chunk.get("error"), dict):
            self.error = chunk["error"]
        usage = Usage.from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            # The gateway sends n=1; other choices have no place in one Anthropic message.
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                events.extend(self._text(content))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._refused = True
                events.extend(self._text(refusal))
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    events.extend(self._tool_call(call))
            if isinstance(choice.get("finish_reason"), str):
                self._finish_reason = choice["finish_reason"]
                self._matched_stop = _matched_stop(choice)
                events.extend(self._close_block())
        return events

    def finish(self) -> list[tuple[str, dict]]:
        """Close any open block, then `message_delta` (stop reason, usage) and `message_stop`.

        Without an upstream usage chunk, the delta reports 0 output tokens and `usage` stays
        None so the caller knows to estimate.
        """
        if self._finished:
            return []
        events = self._start()
        events.extend(self._close_block())
        self._finished = True
        stop_reason = _final_anthropic_stop(
            self._finish_reason,
            matched_stop=self._matched_stop,
            has_tools=bool(self._tool_blocks),
            refused=self._refused,
        )
        usage = self.usage.to_anthropic() if self.usage is not None else {"output_tokens": 0}
        delta = {
            "stop_reason": stop_reason,
            "stop_sequence": self._matched_stop if stop_reason == "stop_sequence" else None,
        }
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events


class AnthropicToOpenAIStream:
    """Feeds Anthropic (event_name, data) tuples, yields OpenAI chunk dicts.

    The first chunk carries `delta.role = "assistant"`. Each tool_use block becomes one tool
    call (index counted from 0) whose first delta carries id, type and name. The finish_reason
    chunk and, with include_usage, the usage chunk (`choices: []`) come only from `finish()`,
    so the caller can decorate the last chunk before `[DONE]`. `finish()` is idempotent.
    """

    def __init__(
        self, *, completion_id: str, model: str, created: int, include_usage: bool
    ) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.output_events = 0
        # A mid-stream `error` event's `error` object, kept for the caller to normalise.
        self.error: dict | None = None
        self.stop_reason: str | None = None
        self._started = False
        self._finished = False
        self._raw_usage: dict[str, Any] = {}
        self._tool_calls: dict[int, int] = {}

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            # As OpenAI does: every chunk but the last carries `usage: null`.
            chunk["usage"] = None
        return chunk

    def _start(self) -> list[dict]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _merge_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        # Anthropic usage counts are cumulative: later values replace earlier ones, and a
        # count missing from message_delta keeps its message_start value.
        self._raw_usage.update({k: v for k, v in usage.items() if v is not None})
        self.usage = Usage.from_anthropic(self._raw_usage)

    def feed(self, event: str, data: dict) -> list[dict]:
        """OpenAI chunks for one Anthropic event (possibly none)."""
        if self._finished or not isinstance(data, dict):
            return []
        kind = data.get("type", event)
        if kind == "ping":
            return []
        if kind == "error":
            self.error = data.get("error") if isinstance(data.get("error"), dict) else {}
            return []
        chunks = self._start()
        if kind == "message_start":
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            self._merge_usage(message.get("usage"))
        elif kind == "content_block_start":
            chunks.extend(self._block_start(data))
        elif kind == "content_block_delta":
            chunks.extend(self._block_delta(data))
        elif kind == "message_delta":
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            if isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
            self._merge_usage(data.get("usage"))
        return chunks

    def _block_start(self, data: dict) -> list[dict]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            self.output_events += 1
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        position = len(self._tool_calls)
        self._tool_calls[data.get("index", 0)] = position
        tool_input = block.get("input")
        call = {
            "index": position,
            "id": _tool_call_id(block.get("id")),
            "type": "function",
            "function": {
                "name": str(block.get("name") or ""),
                # Anthropic starts with `input: {}` and streams the JSON; a non-empty start
                # input (seen from some compatible upstreams) is sent whole.
                "arguments": _json_arguments(tool_input) if tool_input else "",
            },
        }
        self.output_events += 1
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: dict) -> list[dict]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                self.output_events += 1
                return [self._chunk({"content": text})]
        elif delta.get("type") == "input_json_delta":
            position = self._tool_calls.get(data.get("index", 0))
            fragment = delta.get("partial_json")
            if position is not None and isinstance(fragment, str) and fragment:
                self.output_events += 1
                call = {"index": position, "function": {"arguments": fragment}}
                return [self._chunk({"tool_calls": [call]})]
        # thinking, signature and citation deltas have no Chat Completions equivalent.
        return []

    def finish(self) -> list[dict]:
        """The finish_reason chunk, then the usage chunk when include_usage was asked.

        A stream that ended without a stop reason reports `stop`; without any usage event
        the usage chunk reports zeros and `usage` stays None.
        """
        if self._finished:
            return []
        self._finished = True
        chunks = self._start()
        finish_reason = anthropic_stop_to_openai(self.stop_reason) or "stop"
        chunks.append(self._chunk({}, finish_reason))
        if self.include_usage:
            usage = self.usage or Usage(0, 0)
            chunks.append(
                {
                    "id": self.completion_id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage.to_openai(),
                }
            )
        return chunks
