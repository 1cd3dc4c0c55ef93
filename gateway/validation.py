"""Validation of client request bodies, pure: raw bytes in, a frozen call description out.

Every malformed body raises ApiError(invalid_request) naming the offending field, before any
reservation or upstream call. Fields a format does not define are refused (as OpenAI does with
"Unrecognized request argument"), so nothing unknown or gateway-internal ever reaches an
upstream.

The prompt upper bound for the reservation starts from the body's own size: a tokenizer emits
at most one token per UTF-8 byte, and the JSON body holds every byte of text the upstream will
tokenize (plus some framing). Inline image data is subtracted and priced per image instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from clawwits import jsonbody
from clawwits.errors import ApiError, Code

OPENAI = "openai"
ANTHROPIC = "anthropic"

_OPENAI_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "n",
        "stream",
        "stream_options",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "metadata",
        "store",
        "service_tier",
        "reasoning_effort",
        "modalities",
        "prediction",
        "audio",
        "web_search_options",
        "safety_identifier",
        "prompt_cache_key",
        "verbosity",
    }
)
_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_OPENAI_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
_ANTHROPIC_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
        "output_config",
        "container",
        "mcp_servers",
        "context_management",
    }
)
ANTHROPIC_BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
    }
)
_EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
_ANTHROPIC_ROLES = frozenset({"user", "assistant"})
_ANTHROPIC_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
_EMBEDDING_FORMATS = frozenset({"float", "base64"})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EMBEDDING_DIMENSIONS = 1024
MAX_STOP = 4
MAX_ANTHROPIC_STOP = 64
MAX_TOOLS = 256


@dataclass(frozen=True)
class Limits:
    max_messages: int
    max_text_chars: int
    max_embedding_inputs: int


@dataclass(frozen=True)
class ChatCall:
    protocol: str
    body: dict
    model: str | None
    stream: bool
    include_usage: bool
    max_tokens: int | None
    texts: tuple[str, ...]
    prompt_bytes: int
    messages: int
    images: int
    cacheable: bool


@dataclass(frozen=True)
class EmbedCall:
    body: dict
    model: str | None
    inputs: tuple[str, ...]
    encoding_format: str
    prompt_bytes: int


def _bad(param: str, message: str) -> ApiError:
    return ApiError(Code.INVALID_REQUEST, f"{param}: {message}", param=param)


def _unknown_fields(body: dict, allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            raise ApiError(
                Code.INVALID_REQUEST,
                f"Unrecognized request argument supplied: {str(key)[:64]}",
                param=str(key)[:64],
            )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    # Not math.isfinite on ints: it converts to float, and an int past 1e308 raises OverflowError.
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _one_of(value: object, allowed: frozenset[str]) -> bool:
    """Membership without hashing arbitrary JSON: a list or an object is simply not allowed."""
    return isinstance(value, str) and value in allowed


def _opt_int(body: dict, name: str, *, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        raise _bad(name, f"must be an integer >= {minimum}.")
    return value


def _opt_number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_number(value) or not low <= value <= high:
        raise _bad(name, f"must be a number between {low:g} and {high:g}.")
    return value


def _opt_bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(name, "must be a boolean.")
    return value


def _opt_str(body: dict, name: str, *, max_len: int = 512) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise _bad(name, f"must be a string of at most {max_len} characters.")
    return value


def _text(value: object, param: str, limits: Limits, texts: list[str]) -> None:
    if not isinstance(value, str):
        raise _bad(param, "must be a string.")
    if len(value) > limits.max_text_chars:
        raise _bad(param, f"is longer than {limits.max_text_chars} characters.")
    texts.append(value)


def _model(body: dict) -> str | None:
    model = body.get("model")
    if model is None:
        return None
    if not isinstance(model, str) or not 0 < len(model) <= 200:
        raise _bad("model", "must be a model name.")
    return model


def _stop(body: dict, name: str, *, max_items: int) -> None:
    stop = body.get(name)
    if stop is None:
        return
    items = [stop] if isinstance(stop, str) and name == "stop" else stop
    if not isinstance(items, list) or len(items) > max_items:
        raise _bad(name, f"must be a list of at most {max_items} strings.")
    for item in items:
        if not isinstance(item, str) or not item:
            raise _bad(name, "must contain non-empty strings.")


def _json_schema_object(value: object, param: str) -> None:
    if value is not None and not isinstance(value, dict):
        raise _bad(param, "must be a JSON schema object.")


# --- OpenAI chat completions -----------------------------------------------------------------


def _openai_part(part: object, param: str, limits: Limits, texts: list[str]) -> int:
    """Validates one content part; returns inline image bytes (0 for non-images)."""
    if not isinstance(part, dict) or not _one_of(part.get("type"), _OPENAI_PART_TYPES):
        raise _bad(f"{param}.type", f"must be one of {', '.join(sorted(_OPENAI_PART_TYPES))}.")
    kind = part["type"]
    if kind == "text":
        _text(part.get("text"), f"{param}.text", limits, texts)
    elif kind == "refusal":
        _text(part.get("refusal"), f"{param}.refusal", limits, texts)
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url:
            raise _bad(f"{param}.image_url.url", "must be a URL or a data: URL.")
        return len(url.encode()) if url.startswith("data:") else 1
    return 0


def _openai_content(message: dict, param: str, limits: Limits, texts: list[str]) -> tuple[int, int]:
    """(images, inline image bytes) of one message's content."""
    content = message.get("content")
    if content is None:
        if message["role"] in {"assistant", "function"}:
            return 0, 0
        raise _bad(f"{param}.content", "is required.")
    if isinstance(content, str):
        _text(content, f"{param}.content", limits, texts)
        return 0, 0
    if not isinstance(content, list):
        raise _bad(f"{param}.content", "must be a string or a list of content parts.")
    images = image_bytes = 0
    for j, part in enumerate(content):
        size = _openai_part(part, f"{param}.content[{j}]", limits, texts)
        if size:
            images += 1
            image_bytes += size
    return images, image_bytes


def _openai_tool_calls(message: dict, param: str, limits: Limits, texts: list[str]) -> None:
    calls = message.get("tool_calls")
    if calls is None:
        return
    if message["role"] != "assistant" or not isinstance(calls, list):
        raise _bad(f"{param}.tool_calls", "only assistant messages carry a list of tool calls.")
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str):
            raise _bad(f"{param}.tool_calls[{j}]", "needs an id and a function.")
        if not isinstance(fn.get("name"), str):
            raise _bad(f"{param}.tool_calls[{j}].function.name", "must be a string.")
        _text(fn.get("arguments", ""), f"{param}.tool_calls[{j}].function.arguments", limits, texts)


def _openai_tools(body: dict) -> bool:
    # tool_choice is checked even without tools: it is forwarded either way.
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or len(tools) > MAX_TOOLS):
        raise _bad("tools", f"must be a list of at most {MAX_TOOLS} tools.")
    for i, tool in enumerate(tools or ()):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise _bad(f"tools[{i}]", 'must be {"type": "function", "function": {...}}.')
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _bad(f"tools[{i}].function.name", "must match ^[a-zA-Z0-9_-]{1,64}$.")
        _json_schema_object(fn.get("parameters"), f"tools[{i}].function.parameters")
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("none", "auto", "required"):
        fn = choice.get("function") if isinstance(choice, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad("tool_choice", 'must be "none", "auto", "required" or a named function.')
    return bool(tools)


def parse_openai_chat(raw: bytes, limits: Limits) -> ChatCall:
    body = jsonbody.loads_object(raw)
    _unknown_fields(body, _OPENAI_CHAT_FIELDS)
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "must be a non-empty list.")
    if len(messages) > limits.max_messages:
        raise _bad("messages", f"holds more than {limits.max_messages} messages.")
    texts: list[str] = []
    images = image_bytes = 0
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict) or not _one_of(message.get("role"), _OPENAI_ROLES):
            raise _bad(f"{param}.role", f"must be one of {', '.join(sorted(_OPENAI_ROLES))}.")
        count, size = _openai_content(message, param, limits, texts)
        images += count
        image_bytes += size
        _openai_tool_calls(message, param, limits, texts)
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _bad(f"{param}.tool_call_id", "is required on tool messages.")
        if message.get("name") is not None and not isinstance(message.get("name"), str):
            raise _bad(f"{param}.name", "must be a string.")

    max_tokens = _opt_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _opt_int(body, "max_tokens", minimum=1)
    else:
        _opt_int(body, "max_tokens", minimum=1)
    temperature = _opt_number(body, "temperature", 0, 2)
    _opt_number(body, "top_p", 0, 1)
    _opt_number(body, "frequency_penalty", -2, 2)
    _opt_number(body, "presence_penalty", -2, 2)
    n = body.get("n")
    if n is not None and not (_is_int(n) and n == 1):
        raise _bad("n", "only n=1 is supported.")
    stream = _opt_bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options", "must be an object.")
    include_usage = bool(options and options.get("include_usage") is True)
    if options and not stream:
        raise _bad("stream_options", "is only allowed when stream is true.")
    _stop(body, "stop", max_items=MAX_STOP)
    has_tools = _openai_tools(body)
    fmt = body.get("response_format")
    if fmt is not None and (
        not isinstance(fmt, dict) or not _one_of(fmt.get("type"), _RESPONSE_FORMATS)
    ):
        raise _bad("response_format", 'type must be "text", "json_object" or "json_schema".')
    _opt_str(body, "user")
    _opt_int(body, "seed", minimum=-(2**63))
    return ChatCall(
        protocol=OPENAI,
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        texts=tuple(texts),
        prompt_bytes=max(0, len(raw) - image_bytes),
        messages=len(messages),
        images=images,
        cacheable=temperature == 0 and not has_tools,
    )


# --- Anthropic messages ----------------------------------------------------------------------


def _anthropic_block(block: object, param: str, limits: Limits, texts: list[str]) -> int:
    """Validates one content block; returns inline image bytes (0 for other blocks)."""
    if not isinstance(block, dict) or not _one_of(block.get("type"), ANTHROPIC_BLOCK_TYPES):
        raise _bad(f"{param}.type", f"must be one of {', '.join(sorted(ANTHROPIC_BLOCK_TYPES))}.")
    kind = block["type"]
    if kind == "text":
        _text(block.get("text"), f"{param}.text", limits, texts)
    elif kind in {"image", "document"}:
        source = block.get("source")
        if not isinstance(source, dict):
            raise _bad(f"{param}.source", "is required.")
        data = source.get("data")
        if kind == "document" and source.get("type") == "text":
            _text(data, f"{param}.source.data", limits, texts)
        elif isinstance(data, str):
            return len(data.encode()) or 1
        return 1
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise _bad(param, "a tool_use block needs an id and a name.")
        if not isinstance(block.get("input", {}), dict):
            raise _bad(f"{param}.input", "must be an object.")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise _bad(f"{param}.tool_use_id", "is required.")
        content = block.get("content")
        if isinstance(content, str):
            _text(content, f"{param}.content", limits, texts)
        elif isinstance(content, list):
            return sum(
                _anthropic_block(inner, f"{param}.content[{k}]", limits, texts)
                for k, inner in enumerate(content)
            )
        elif content is not None:
            raise _bad(f"{param}.content", "must be a string or a list of blocks.")
    return 0


def _anthropic_blocks(
    content: object, param: str, limits: Limits, texts: list[str]
) -> tuple[int, int]:
    if isinstance(content, str):
        _text(content, param, limits, texts)
        return 0, 0
    if not isinstance(content, list):
        raise _bad(param, "must be a string or a list of content blocks.")
    images = image_bytes = 0
    for j, block in enumerate(content):
        size = _anthropic_block(block, f"{param}[{j}]", limits, texts)
        if size:
            images += 1
            image_bytes += size
    return images, image_bytes


def _anthropic_tools(body: dict) -> bool:
    # tool_choice is checked even without tools: it is forwarded either way.
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or len(tools) > MAX_TOOLS):
        raise _bad("tools", f"must be a list of at most {MAX_TOOLS} tools.")
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _bad(f"tools[{i}].name", "is required.")
        if "type" not in tool or tool.get("type") == "custom":
            if not _TOOL_NAME.match(tool["name"]):
                raise _bad(f"tools[{i}].name", "must match ^[a-zA-Z0-9_-]{1,64}$.")
            if not isinstance(tool.get("input_schema"), dict):
                raise _bad(f"tools[{i}].input_schema", "must be a JSON schema object.")
    choice = body.get("tool_choice")
    if choice is not None and (
        not isinstance(choice, dict) or not _one_of(choice.get("type"), _ANTHROPIC_TOOL_CHOICES)
    ):
        raise _bad("tool_choice", 'type must be "auto", "any", "tool" or "none".')
    if (
        isinstance(choice, dict)
        and choice.get("type") == "tool"
        and not isinstance(choice.get("name"), str)
    ):
        raise _bad("tool_choice.name", "is required for type tool.")
    return bool(tools)


def parse_anthropic_messages(raw: bytes, limits: Limits) -> ChatCall:
    body = jsonbody.loads_object(raw)
    _unknown_fields(body, _ANTHROPIC_FIELDS)
    model = _model(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _bad("max_tokens", "Field required.")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise _bad("max_tokens", "must be an integer >= 1.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "must be a non-empty list.")
    if len(messages) > limits.max_messages:
        raise _bad("messages", f"holds more than {limits.max_messages} messages.")
    texts: list[str] = []
    images = image_bytes = 0
    system = body.get("system")
    if system is not None:
        if isinstance(system, list):
            for j, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    raise _bad(f"system[{j}]", "system blocks must be text blocks.")
                _text(block.get("text"), f"system[{j}].text", limits, texts)
        else:
            _text(system, "system", limits, texts)
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict) or not _one_of(message.get("role"), _ANTHROPIC_ROLES):
            raise _bad(f"{param}.role", 'must be "user" or "assistant".')
        if "content" not in message:
            raise _bad(f"{param}.content", "is required.")
        count, size = _anthropic_blocks(message["content"], f"{param}.content", limits, texts)
        images += count
        image_bytes += size
    temperature = _opt_number(body, "temperature", 0, 1)
    _opt_number(body, "top_p", 0, 1)
    _opt_int(body, "top_k", minimum=0)
    _stop(body, "stop_sequences", max_items=MAX_ANTHROPIC_STOP)
    stream = _opt_bool(body, "stream")
    has_tools = _anthropic_tools(body)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("metadata", "must be an object.")
    return ChatCall(
        protocol=ANTHROPIC,
        body=body,
        model=model,
        stream=stream,
        include_usage=True,
        max_tokens=max_tokens,
        texts=tuple(texts),
        prompt_bytes=max(0, len(raw) - image_bytes),
        messages=len(messages) + (1 if system else 0),
        images=images,
        cacheable=temperature == 0 and not has_tools,
    )


# --- Embeddings ------------------------------------------------------------------------------


def parse_embeddings(raw: bytes, limits: Limits) -> EmbedCall:
    body = jsonbody.loads_object(raw)
    _unknown_fields(body, _EMBEDDING_FIELDS)
    model = _model(body)
    value = body.get("input")
    if value is None:
        raise _bad("input", "is required.")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _bad("input", "must be a string or a non-empty list of strings.")
    if len(items) > limits.max_embedding_inputs:
        raise _bad("input", f"holds more than {limits.max_embedding_inputs} items.")
    texts: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _bad(f"input[{i}]", "must be a string (token arrays are not supported).")
        if not item:
            raise _bad(f"input[{i}]", "must not be empty.")
        _text(item, f"input[{i}]", limits, texts)
    fmt = body.get("encoding_format", "float")
    if not _one_of(fmt, _EMBEDDING_FORMATS):
        raise _bad("encoding_format", 'must be "float" or "base64".')
    dims = body.get("dimensions")
    if dims is not None and (not _is_int(dims) or dims != EMBEDDING_DIMENSIONS):
        raise _bad("dimensions", f"every ClawWits embedding has {EMBEDDING_DIMENSIONS} dimensions.")
    _opt_str(body, "user")
    return EmbedCall(
        body=body,
        model=model,
        inputs=tuple(texts),
        encoding_format=fmt,
        prompt_bytes=sum(len(t.encode()) for t in texts),
    )
