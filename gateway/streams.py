"""Stream converters: upstream SSE events in, client SSE bytes out, for all four combinations.

Each converter
- forwards (or translates) events as they arrive, so the client's time to first token is the
  upstream's plus one parse;
- tracks usage reported by the upstream and every text / tool-argument fragment delivered, so
  billing can count delivered tokens when the upstream reports none;
- holds back the stream's final event (OpenAI: the finish_reason chunk and the usage chunk;
  Anthropic: message_delta and message_stop) until the request is settled, so `finish()` can
  put `x_clawwits` (provider, Wits charged) on the last event before the terminator;
- raises UpstreamError for an upstream error event or an unparsable event, after which the
  caller ends the client's stream with `error()`: a protocol-correct error event, never a
  clean finish.
"""

from __future__ import annotations

import time
import uuid

import orjson

from clawwits.errors import ANTHROPIC_TYPE, OPENAI_TYPE, ApiError
from gateway import translate
from gateway.translate import Usage
from gateway.upstream import PROTOCOL, UpstreamError, scrub

DONE = "[DONE]"


def _dumps(value: object) -> bytes:
    """Compact UTF-8 JSON (orjson), ~20x faster than `json.dumps` with `ensure_ascii=False`:
    a stream parses and writes one of these per event. The same text but for floats' spelling
    (`1e-5`, not `1e-05`); values come from `parse` or the gateway, so none is out of JSON's
    reach (orjson refuses integers past 64 bits and lone surrogates, and writes NaN as null)."""
    return orjson.dumps(value)


def openai_sse(chunk: dict) -> bytes:
    return b"data: " + _dumps(chunk) + b"\n\n"


def anthropic_sse(event: str, data: dict) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


OPENAI_DONE = b"data: [DONE]\n\n"


def parse(data: str | dict) -> dict:
    """A provider's event as a JSON object (strict JSON), or UpstreamError; a dict (the local
    provider's, or an event parsed already) as it is."""
    if isinstance(data, dict):
        return data
    try:
        # Strict JSON: NaN, Infinity and lone surrogates are unparsable, as they are in JSON.
        value = orjson.loads(data)
    except ValueError:
        raise UpstreamError(PROTOCOL, "the provider sent an unparsable stream event") from None
    if not isinstance(value, dict):
        raise UpstreamError(PROTOCOL, "the provider sent an unexpected stream event")
    return value


def _openai_upstream_error(chunk: dict) -> None:
    err = chunk.get("error")
    if err:
        message = err.get("message") if isinstance(err, dict) else err
        raise UpstreamError(PROTOCOL, scrub(f"the provider failed mid-stream: {message}"))


def _openai_fragments(chunk: dict, into: list[str]) -> None:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str) and content:
            into.append(content)
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            for part in (fn.get("name"), fn.get("arguments")):
                if isinstance(part, str) and part:
                    into.append(part)


def _anthropic_fragments(event: str, data: dict, into: list[str]) -> None:
    if event == "content_block_delta":
        delta = data.get("delta") or {}
        for field in ("text", "partial_json", "thinking"):
            value = delta.get(field)
            if isinstance(value, str) and value:
                into.append(value)
    elif event == "content_block_start":
        block = data.get("content_block") or {}
        if block.get("type") == "tool_use" and isinstance(block.get("name"), str):
            into.append(block["name"])


def _anthropic_upstream_error(event: str, data: dict) -> None:
    if event == "error" or data.get("type") == "error":
        err = data.get("error") or {}
        message = err.get("message") if isinstance(err, dict) else err
        raise UpstreamError(PROTOCOL, scrub(f"the provider failed mid-stream: {message}"))


class Converter:
    """Common state; subclasses implement feed/finish for one upstream -> client pairing."""

    client_protocol = "openai"

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.delivered: list[str] = []
        self.done = False
        self.started = False  # whether any event reached the client

    def error(self, error: ApiError) -> bytes:
        if self.client_protocol == "anthropic":
            return anthropic_sse(
                "error",
                {
                    "type": "error",
                    "error": {
                        "type": ANTHROPIC_TYPE[error.code],
                        "message": error.message,
                        "code": str(error.code),
                    },
                },
            )
        return openai_sse(
            {
                "error": {
                    "code": str(error.code),
                    "type": OPENAI_TYPE[error.code],
                    "message": error.message,
                    "param": None,
                }
            }
        )

    def feed(self, event: str | None, data: str | dict) -> list[bytes]:
        raise NotImplementedError

    def finish(self, extra: dict, usage: Usage) -> list[bytes]:
        raise NotImplementedError


class OpenAIPassthrough(Converter):
    """OpenAI upstream -> OpenAI client. The upstream is always asked for usage; the client
    sees the usage chunk only if it asked for it."""

    def __init__(self, *, include_usage: bool, model: str) -> None:
        super().__init__()
        self.include_usage = include_usage
        self.final: dict | None = None
        self.head = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": model,
        }

    def feed(self, event: str | None, data: str | dict) -> list[bytes]:
        if data == DONE:
            self.done = True
            return []
        chunk = parse(data)
        _openai_upstream_error(chunk)
        if not self.started:
            for key in ("id", "created", "model"):
                if key in chunk:
                    self.head[key] = chunk[key]
        if chunk.get("usage"):
            self.usage = Usage.from_openai(chunk["usage"])
        choices = chunk.get("choices")
        if not choices:
            return []
        _openai_fragments(chunk, self.delivered)
        if choices[0].get("finish_reason"):
            self.final = chunk
            return []
        self.started = True
        if not self.include_usage:
            chunk.pop("usage", None)
        return [openai_sse(chunk)]

    def finish(self, extra: dict, usage: Usage) -> list[bytes]:
        final = self.final or {
            **self.head,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        final.pop("usage", None)
        if not self.include_usage:
            return [openai_sse({**final, "x_clawwits": extra}), OPENAI_DONE]
        usage_chunk = {
            **self.head,
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": usage.to_openai(),
            "x_clawwits": extra,
        }
        return [openai_sse(final), openai_sse(usage_chunk), OPENAI_DONE]


class AnthropicPassthrough(Converter):
    """Anthropic upstream -> Anthropic client."""

    client_protocol = "anthropic"

    def __init__(self) -> None:
        super().__init__()
        self.start_usage: dict = {}
        self.delta_usage: dict = {}
        self.message_delta: dict | None = None

    def feed(self, event: str | None, data: str | dict) -> list[bytes]:
        payload = parse(data)
        name = event or str(payload.get("type", ""))
        _anthropic_upstream_error(name, payload)
        if name == "message_start":
            self.start_usage = dict((payload.get("message") or {}).get("usage") or {})
        elif name == "message_delta":
            self.delta_usage.update(payload.get("usage") or {})
            self.message_delta = payload
        elif name == "message_stop":
            self.done = True
        _anthropic_fragments(name, payload, self.delivered)
        self.usage = Usage.from_anthropic({**self.start_usage, **self.delta_usage})
        if name in {"message_delta", "message_stop"}:
            return []
        self.started = True
        if isinstance(data, str):
            return [b"event: " + name.encode() + b"\ndata: " + data.encode() + b"\n\n"]
        return [anthropic_sse(name, payload)]

    def finish(self, extra: dict, usage: Usage) -> list[bytes]:
        delta = self.message_delta or {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {},
        }
        delta["usage"] = {**(delta.get("usage") or {}), "output_tokens": usage.completion_tokens}
        delta["x_clawwits"] = extra
        return [
            anthropic_sse("message_delta", delta),
            anthropic_sse("message_stop", {"type": "message_stop"}),
        ]


class OpenAIToAnthropic(Converter):
    """OpenAI-format upstream (or the local provider) -> Anthropic client."""

    client_protocol = "anthropic"

    def __init__(self, *, model: str, input_tokens_hint: int) -> None:
        super().__init__()
        self.translator = translate.OpenAIToAnthropicStream(
            message_id=f"msg_{uuid.uuid4().hex}", model=model, input_tokens_hint=input_tokens_hint
        )

    def feed(self, event: str | None, data: str | dict) -> list[bytes]:
        if data == DONE:
            self.done = True
            return []
        chunk = parse(data)
        _openai_upstream_error(chunk)
        _openai_fragments(chunk, self.delivered)
        events = self.translator.feed(chunk)
        self.usage = self.translator.usage
        if events:
            self.started = True
        return [anthropic_sse(name, payload) for name, payload in events]

    def finish(self, extra: dict, usage: Usage) -> list[bytes]:
        out = []
        for name, payload in self.translator.finish():
            if name == "message_delta":
                payload["usage"] = {
                    **(payload.get("usage") or {}),
                    "output_tokens": usage.completion_tokens,
                }
                payload["x_clawwits"] = extra
            out.append(anthropic_sse(name, payload))
        return out


class AnthropicToOpenAI(Converter):
    """Anthropic upstream -> OpenAI client."""

    def __init__(self, *, model: str, include_usage: bool) -> None:
        super().__init__()
        self.include_usage = include_usage
        self.translator = translate.AnthropicToOpenAIStream(
            completion_id=f"chatcmpl-{uuid.uuid4().hex}",
            model=model,
            created=int(time.time()),
            include_usage=include_usage,
        )

    def feed(self, event: str | None, data: str | dict) -> list[bytes]:
        payload = parse(data)
        name = event or str(payload.get("type", ""))
        _anthropic_upstream_error(name, payload)
        if name == "message_stop":
            self.done = True
        _anthropic_fragments(name, payload, self.delivered)
        chunks = self.translator.feed(name, payload)
        self.usage = self.translator.usage
        if chunks:
            self.started = True
        return [openai_sse(chunk) for chunk in chunks]

    def finish(self, extra: dict, usage: Usage) -> list[bytes]:
        chunks = self.translator.finish()
        if not chunks:
            chunks = [{"object": "chat.completion.chunk", "choices": []}]
        for chunk in chunks:
            if self.include_usage and not chunk.get("choices") and "usage" in chunk:
                chunk["usage"] = usage.to_openai()
        chunks[-1]["x_clawwits"] = extra
        return [openai_sse(chunk) for chunk in chunks] + [OPENAI_DONE]


def converter_for(
    *, upstream: str, client: str, model: str, include_usage: bool, input_tokens_hint: int
) -> Converter:
    if upstream == "openai" and client == "openai":
        return OpenAIPassthrough(include_usage=include_usage, model=model)
    if upstream == "anthropic" and client == "anthropic":
        return AnthropicPassthrough()
    if upstream == "openai":
        return OpenAIToAnthropic(model=model, input_tokens_hint=input_tokens_hint)
    return AnthropicToOpenAI(model=model, include_usage=include_usage)
