"""A fast fake upstream LLM provider speaking the OpenAI and Anthropic wire formats.

The test suite runs it in-process (``FakeUpstream(...).start()``, a daemon thread with its own
event loop); benchmarks run it as a process (``python -m tests.fakes.upstream --port 9001``).
It listens on 127.0.0.1 only and speaks a small hand-written HTTP/1.1: keep-alive,
``Content-Length`` request bodies, ``Content-Length`` responses, and ``Transfer-Encoding:
chunked`` for ``text/event-stream`` responses (one SSE event per chunk), which both SDKs accept.

Endpoints (anything else answers 404 in the provider's error format; the provider is Anthropic
when the request carries ``anthropic-version`` or ``x-api-key`` or targets ``/v1/messages``)::

    POST /v1/chat/completions   OpenAI   Authorization: Bearer <api_key>
    POST /v1/embeddings         OpenAI   Authorization: Bearer <api_key>
    GET  /v1/models             OpenAI list (Anthropic list when anthropic-version is sent)
    POST /v1/messages           Anthropic  x-api-key: <api_key> (or Authorization: Bearer,
                                           as anthropic>=2 sends it) and anthropic-version

A wrong or missing credential answers 401 in the endpoint's format. A body that is not a JSON
object answers 400; so do OpenAI chat without a ``messages`` list and Anthropic without an
integer ``max_tokens``.

Token accounting (deterministic, so tests can compute exact bills):

- words(text) = ``len(text.split())``.
- Prompt tokens = words across all request text. OpenAI: every message ``content`` string and
  every ``{"type": "text"}`` part. Anthropic: ``system`` (string or text blocks) plus every
  message's string content, text blocks, and the text inside ``tool_result`` blocks. Tool
  definitions, tool-call arguments and ``tool_use`` inputs never count.
- Reply = ``reply_tokens`` words (default 8) taken in order, cycling, from ``REPLY_WORDS``;
  the text is the words joined by single spaces, so words(text) == output tokens.
- The limit is ``max_completion_tokens`` (else ``max_tokens``) for OpenAI and ``max_tokens``
  for Anthropic. A reply longer than the limit is cut to ``limit`` words and finishes with
  ``"length"`` / ``"max_tokens"``; otherwise ``"stop"`` / ``"end_turn"``.
- Tool call: when the request has a non-empty ``tools`` list, ``tool_choice`` is not "none",
  and the last message's text (same extraction as above) contains ``TOOL_TRIGGER`` ("weather",
  any case), the reply is one call to the first tool with arguments ``{"city": "Hanoi"}``,
  finishing ``"tool_calls"`` / ``"tool_use"``, billed ``min(TOOL_CALL_TOKENS, limit)`` output
  tokens.
- Anthropic cache reads: ``cache_read_input_tokens = min(cache_read_tokens, prompt)`` and
  ``input_tokens = prompt - cache_read_input_tokens`` (Anthropic's ``input_tokens`` excludes
  cache reads). OpenAI keeps ``prompt_tokens = prompt`` and reports the same number as
  ``prompt_tokens_details.cached_tokens``.
- Streams send one word (or one tool-argument fragment) per content delta, each preceded by
  ``token_delay_s``. An Anthropic ``message_start`` reports ``output_tokens: 1`` as the real API
  does; the ``message_delta`` carries the cumulative total. OpenAI streams end with a usage
  chunk (``choices: []``) only when ``stream_options.include_usage`` is true, and then every
  other chunk has ``"usage": null``.
- Embeddings: one vector per input of ``dimensions`` (default 1536) float32 values seeded from
  the input text, scaled to L2 norm ``EMBEDDING_NORM`` (3.0, deliberately not 1);
  ``encoding_format: "base64"`` sends the same float32 values little-endian (unless the
  ``float_embeddings`` fault plays a provider that ignores the parameter).
  ``usage.prompt_tokens`` = words across string inputs (a token-id list counts its length).

Knobs (constructor keywords, CLI flags, ``configure(...)`` at run time): ``delay_s`` before
the response headers, ``token_delay_s`` before each stream content delta, ``reply_tokens``,
``cache_read_tokens``, and ``hang_s`` (default 30) for the hang faults.

Faults (``push_faults`` queues one per request; ``set_fault`` sticks until ``set_fault(None)``;
a queued fault wins over the sticky one). They apply to requests that reach one of the four
endpoints with valid credentials and a valid body; 404, 401 and 400 answers consume no fault.
Mid-stream faults fire after the first ``FAULT_AFTER_DELTAS`` content deltas (fewer if the
reply is shorter); on a non-stream request ``hang_mid_stream`` and ``truncated_stream`` fire
halfway through the body. The mid-stream error event is OpenAI's ``data: {"error": {...}}``
(type ``server_error``) or Anthropic's ``event: error`` (``overloaded_error``), after which the
body ends cleanly without ``[DONE]`` / ``message_stop``; ``nan_mid_stream`` ends it the same way
after a content delta whose text is ``NaN`` (a literal Python's json reads and JSON lacks).
``nan_value`` puts that ``NaN`` first: a stream whose first event is that delta, or a whole
message whose text is ``NaN``. ``byte_order_mark`` answers normally, its body (or its event
stream) led by a UTF-8 byte order mark, as some servers write one.
"limit" in ``over_report_usage`` is the request's limit, or the reply length when it has none.
See ``Fault`` for each behaviour.

Recorded requests (``server.requests``) include every request, 404s and 401s too;
``clear()`` forgets them, drops queued and sticky faults, and restores the constructor knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Self, cast

try:
    # jiter ships with both SDKs and parses several times faster than json on the hot path.
    from jiter import from_json as _loads
except ImportError:
    _loads = json.loads

DEFAULT_API_KEY = "test-upstream-key"
DEFAULT_MODELS = ("fake-gpt", "fake-claude", "fake-embed")
REPLY_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
    "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
)  # fmt: skip
TOOL_TRIGGER = "weather"
TOOL_ARGUMENTS = {"city": "Hanoi"}
TOOL_CALL_TOKENS = 5
DEFAULT_EMBEDDING_DIMENSIONS = 1536
EMBEDDING_NORM = 3.0
FAULT_AFTER_DELTAS = 2
RETRY_AFTER_MS = 1000

_MAX_HEAD_BYTES = 64 * 1024


class Fault(StrEnum):
    """Scripted misbehaviour for one request (or every request while set)."""

    HTTP_500 = "http_500"  # 500, provider error body
    HTTP_503 = "http_503"  # 503, provider error body
    HTTP_429 = "http_429"  # 429 with Retry-After: 1 and retry-after-ms: 1000
    HTTP_529 = "http_529"  # 529 overloaded_error (OpenAI endpoints: OpenAI body, same status)
    TIMEOUT_BEFORE_HEADERS = "timeout_before_headers"  # sleep hang_s, then answer normally
    HANG_MID_STREAM = "hang_mid_stream"  # some events, sleep hang_s, then the rest
    TRUNCATED_STREAM = "truncated_stream"  # some events, then close without the terminator
    MALFORMED_JSON = "malformed_json"  # 200 with a broken JSON body (streams: broken data event)
    WRONG_CONTENT_TYPE = "wrong_content_type"  # 200 text/html page
    ERROR_EVENT_MID_STREAM = "error_event_mid_stream"  # streams only; non-stream answers normally
    NAN_VALUE = "nan_value"  # NaN (not JSON) as the text of the first event, or of the answer
    NAN_MID_STREAM = "nan_mid_stream"  # streams only: some deltas, then one whose text is NaN
    NO_USAGE = "no_usage"  # usage omitted everywhere, streams included
    OVER_REPORT_USAGE = "over_report_usage"  # output tokens reported as 1000 + 10 * limit
    CLOSE_BEFORE_HEADERS = "close_before_headers"  # read the request, close without a byte
    FLOAT_EMBEDDINGS = "float_embeddings"  # embeddings as float lists whatever encoding_format
    BYTE_ORDER_MARK = "byte_order_mark"  # a normal answer led by a UTF-8 BOM (EF BB BF)


_RENDER_FAULTS = frozenset({Fault.NO_USAGE, Fault.OVER_REPORT_USAGE, Fault.FLOAT_EMBEDDINGS})
# Faults of an event stream: a request answered whole is answered normally.
_STREAM_ONLY_FAULTS = frozenset({Fault.ERROR_EVENT_MID_STREAM, Fault.NAN_MID_STREAM})


@dataclass(frozen=True)
class Knobs:
    """Server behaviour that benchmarks tune; ``FakeUpstream.configure`` swaps it atomically."""

    delay_s: float = 0.0
    token_delay_s: float = 0.0
    reply_tokens: int = 8
    cache_read_tokens: int = 0
    hang_s: float = 30.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; header names are lower-case, ``body`` is parsed JSON or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


# ---------------------------------------------------------------------------------------------
# Token accounting (pure)


def count_words(text: str) -> int:
    """Return the fake's token count for ``text``: its whitespace-separated words."""
    return len(text.split())


def _openai_content_text(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
            if isinstance(part.get("text"), str)
        ]
    return []


def _anthropic_content_text(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_result":
                texts.extend(_anthropic_content_text(block.get("content")))
    return texts


def _message_texts(messages: Any, extract: Callable[[Any], list[str]]) -> list[list[str]]:
    if not isinstance(messages, list):
        return []
    return [extract(m.get("content")) if isinstance(m, dict) else [] for m in messages]


def openai_prompt_tokens(body: dict[str, Any]) -> int:
    """Return the prompt tokens the fake bills for an OpenAI chat request body."""
    texts = _message_texts(body.get("messages"), _openai_content_text)
    return sum(count_words(t) for message in texts for t in message)


def anthropic_prompt_tokens(body: dict[str, Any]) -> int:
    """Return the prompt tokens (before cache reads) the fake bills for an Anthropic body."""
    system = _anthropic_content_text(body.get("system"))
    texts = _message_texts(body.get("messages"), _anthropic_content_text)
    return sum(count_words(t) for t in system) + sum(
        count_words(t) for message in texts for t in message
    )


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """Return the fake's float32-exact embedding of ``text``, L2 norm ``EMBEDDING_NORM``."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    rng = random.Random(seed)
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    scale = EMBEDDING_NORM / (math.sqrt(sum(v * v for v in raw)) or 1.0)
    packed = struct.pack(f"<{dimensions}f", *(v * scale for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _embedding_inputs(value: Any) -> list[tuple[str, int]]:
    """Split an embeddings ``input`` into (seed text, tokens) per vector."""
    if isinstance(value, str):
        return [(value, count_words(value))]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [(json.dumps(value), len(value))]
    if isinstance(value, list):
        out: list[tuple[str, int]] = []
        for item in value:
            if isinstance(item, str):
                out.append((item, count_words(item)))
            elif isinstance(item, list):
                out.append((json.dumps(item), len(item)))
        return out
    return []


@dataclass(frozen=True)
class _Reply:
    """What the fake model "generated" for one chat request, provider-neutral."""

    model: str
    prompt_tokens: int
    cached_tokens: int
    words: tuple[str, ...]
    truncated: bool
    tool_name: str | None
    limit: int | None
    usage: bool
    over_report: bool

    @property
    def output_tokens(self) -> int:
        if self.over_report:
            return 1000 + 10 * (self.limit if self.limit is not None else len(self.words))
        if self.tool_name is not None:
            return min(TOOL_CALL_TOKENS, self.limit) if self.limit is not None else TOOL_CALL_TOKENS
        return len(self.words)


@functools.lru_cache(maxsize=1024)
def _reply_words(count: int) -> tuple[str, ...]:
    return tuple(itertools.islice(itertools.cycle(REPLY_WORDS), max(count, 0)))


def _tool_name(
    tools: Any, tool_choice: Any, last_texts: list[str], *, anthropic: bool
) -> str | None:
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    if tool_choice == "none" or (
        isinstance(tool_choice, dict) and tool_choice.get("type") == "none"
    ):
        return None
    if not any(TOOL_TRIGGER in t.lower() for t in last_texts):
        return None
    first = tools[0] if anthropic else tools[0].get("function", {})
    name = first.get("name") if isinstance(first, dict) else None
    return name if isinstance(name, str) else None


def _plan_reply(
    body: dict[str, Any], knobs: Knobs, fault: Fault | None, *, anthropic: bool
) -> _Reply:
    if anthropic:
        texts = _message_texts(body.get("messages"), _anthropic_content_text)
        prompt = anthropic_prompt_tokens(body)
        limit = body.get("max_tokens")
    else:
        texts = _message_texts(body.get("messages"), _openai_content_text)
        prompt = openai_prompt_tokens(body)
        limit = body.get("max_completion_tokens")
        if not _is_int(limit):
            limit = body.get("max_tokens")
    limit = limit if _is_int(limit) else None
    tool_name = _tool_name(
        body.get("tools"), body.get("tool_choice"), texts[-1] if texts else [], anthropic=anthropic
    )
    wanted = 0 if tool_name is not None else knobs.reply_tokens
    kept = wanted if limit is None else min(wanted, max(limit, 0))
    model = body.get("model")
    return _Reply(
        model=model if isinstance(model, str) else "fake-model",
        prompt_tokens=prompt,
        cached_tokens=min(max(knobs.cache_read_tokens, 0), prompt),
        words=_reply_words(kept),
        truncated=kept < wanted,
        tool_name=tool_name,
        limit=limit,
        usage=fault is not Fault.NO_USAGE,
        over_report=fault is Fault.OVER_REPORT_USAGE,
    )


# ---------------------------------------------------------------------------------------------
# Wire rendering (pure)

# Rendered bodies are cached per reply with these marks in place of the per-response id and
# time; stamping swaps them with bytes.replace for values of the same width, so a cached
# Content-Length stays right and the hot path never re-encodes JSON.
_ID_MARK = "fake############"
_CREATED_MARK = 1999999999
_ID_MARK_BYTES = _ID_MARK.encode()
_CREATED_MARK_BYTES = b'"created":%d' % _CREATED_MARK
_ids = itertools.count(1)
_encoder = json.JSONEncoder(separators=(",", ":"))


def _dumps(payload: Any) -> bytes:
    return _encoder.encode(payload).encode()


def _stamp(data: bytes, serial: int, created: int) -> bytes:
    """Replace the id and ``created`` marks in rendered bytes; the length never changes."""
    stamped = data.replace(_ID_MARK_BYTES, b"fake%012d" % (serial % 10**12))
    return stamped.replace(_CREATED_MARK_BYTES, b'"created":%010d' % created)


def _delta_texts(words: tuple[str, ...]) -> list[str]:
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


_TOOL_ARGUMENT_TEXT = json.dumps(TOOL_ARGUMENTS)
# Two fragments so a streaming client must really concatenate argument deltas.
_TOOL_ARGUMENT_FRAGMENTS = (_TOOL_ARGUMENT_TEXT[:9], _TOOL_ARGUMENT_TEXT[9:])


@dataclass(frozen=True)
class _Whole:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Sse:
    """An event stream split where mid-stream faults can cut it."""

    head: tuple[bytes, ...]
    deltas: tuple[bytes, ...]
    tail: tuple[bytes, ...]
    error: bytes


_Response = _Whole | _Sse


def _json(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Whole:
    return _Whole(status, "application/json", _dumps(payload), headers)


def _openai_usage(reply: _Reply) -> dict[str, Any]:
    out = reply.output_tokens
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": out,
        "total_tokens": reply.prompt_tokens + out,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _openai_finish(reply: _Reply) -> str:
    if reply.tool_name is not None:
        return "tool_calls"
    return "length" if reply.truncated else "stop"


@functools.lru_cache(maxsize=4096)
def _openai_completion(reply: _Reply) -> _Whole:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if reply.tool_name is not None:
        message["tool_calls"] = [
            {
                "id": "call_" + _ID_MARK,
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": _TOOL_ARGUMENT_TEXT},
            }
        ]
    else:
        message["content"] = " ".join(reply.words)
    payload: dict[str, Any] = {
        "id": "chatcmpl-" + _ID_MARK,
        "object": "chat.completion",
        "created": _CREATED_MARK,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _openai_finish(reply),
            }
        ],
        "system_fingerprint": None,
    }
    if reply.usage:
        payload["usage"] = _openai_usage(reply)
    return _json(200, payload)


def _sse_data(payload: Any) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


@functools.lru_cache(maxsize=4096)
def _openai_stream(reply: _Reply, include_usage: bool) -> _Sse:
    base = {
        "id": "chatcmpl-" + _ID_MARK,
        "object": "chat.completion.chunk",
        "created": _CREATED_MARK,
        "model": reply.model,
        "system_fingerprint": None,
    }
    with_usage = include_usage and reply.usage
    if with_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse_data({**base, "choices": [choice]})

    if reply.tool_name is not None:
        call = {
            "index": 0,
            "id": "call_" + _ID_MARK,
            "type": "function",
            "function": {"name": reply.tool_name, "arguments": ""},
        }
        head = (chunk({"role": "assistant", "content": None, "tool_calls": [call]}),)
        deltas = tuple(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})
            for fragment in _TOOL_ARGUMENT_FRAGMENTS
        )
    else:
        head = (chunk({"role": "assistant", "content": "", "refusal": None}),)
        deltas = tuple(chunk({"content": text}) for text in _delta_texts(reply.words))
    tail = [chunk({}, _openai_finish(reply))]
    if with_usage:
        tail.append(_sse_data({**base, "choices": [], "usage": _openai_usage(reply)}))
    tail.append(b"data: [DONE]\n\n")
    error = _sse_data({"error": _openai_error_body(500)["error"]})
    return _Sse(head, deltas, tuple(tail), error)


def _anthropic_stop(reply: _Reply) -> str:
    if reply.tool_name is not None:
        return "tool_use"
    return "max_tokens" if reply.truncated else "end_turn"


def _anthropic_usage(reply: _Reply, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens - reply.cached_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": reply.cached_tokens,
    }


@functools.lru_cache(maxsize=4096)
def _anthropic_message(reply: _Reply) -> _Whole:
    if reply.tool_name is not None:
        content: list[dict[str, Any]] = [
            {
                "type": "tool_use",
                "id": "toolu_" + _ID_MARK,
                "name": reply.tool_name,
                "input": dict(TOOL_ARGUMENTS),
            }
        ]
    else:
        content = [{"type": "text", "text": " ".join(reply.words)}]
    payload: dict[str, Any] = {
        "id": "msg_" + _ID_MARK,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": _anthropic_stop(reply),
        "stop_sequence": None,
    }
    if reply.usage:
        payload["usage"] = _anthropic_usage(reply, reply.output_tokens)
    return _json(200, payload)


def _sse_event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(payload) + b"\n\n"


@functools.lru_cache(maxsize=4096)
def _anthropic_stream(reply: _Reply) -> _Sse:
    message: dict[str, Any] = {
        "id": "msg_" + _ID_MARK,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if reply.usage:
        message["usage"] = _anthropic_usage(reply, 1)
    if reply.tool_name is not None:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": "toolu_" + _ID_MARK,
            "name": reply.tool_name,
            "input": {},
        }
        deltas = [{"type": "input_json_delta", "partial_json": f} for f in _TOOL_ARGUMENT_FRAGMENTS]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": text} for text in _delta_texts(reply.words)]
    head = (
        _sse_event("message_start", {"type": "message_start", "message": message}),
        _sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        _sse_event("ping", {"type": "ping"}),
    )
    delta_events = tuple(
        _sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
        for d in deltas
    )
    message_delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": _anthropic_stop(reply), "stop_sequence": None},
    }
    if reply.usage:
        message_delta["usage"] = {"output_tokens": reply.output_tokens}
    tail = (
        _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse_event("message_delta", message_delta),
        _sse_event("message_stop", {"type": "message_stop"}),
    )
    error = _sse_event("error", _anthropic_error_body(529))
    return _Sse(head, delta_events, tail, error)


_OPENAI_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request.", None),
    401: ("invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
    404: ("invalid_request_error", "Unknown request URL.", "unknown_url"),
    429: ("requests", "Rate limit reached for requests.", "rate_limit_exceeded"),
    500: ("server_error", "The server had an error while processing your request.", None),
    503: ("server_error", "The engine is currently overloaded.", "service_unavailable"),
    529: ("server_error", "Overloaded.", "overloaded"),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    404: ("not_found_error", "Not found."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    503: ("api_error", "Service unavailable."),
    529: ("overloaded_error", "Overloaded"),
}


def _openai_error_body(status: int, message: str | None = None, param: str | None = None) -> dict:
    kind, default, code = _OPENAI_ERRORS[status]
    return {"error": {"message": message or default, "type": kind, "param": param, "code": code}}


def _anthropic_error_body(status: int, message: str | None = None) -> dict:
    kind, default = _ANTHROPIC_ERRORS[status]
    return {"type": "error", "error": {"type": kind, "message": message or default}}


def _error(
    status: int, *, anthropic: bool, message: str | None = None, param: str | None = None
) -> _Whole:
    headers: tuple[tuple[str, str], ...] = ()
    if status == 429:
        headers = (
            ("retry-after", str(RETRY_AFTER_MS // 1000)),
            ("retry-after-ms", str(RETRY_AFTER_MS)),
        )
    if anthropic:
        return _json(status, _anthropic_error_body(status, message), headers)
    return _json(status, _openai_error_body(status, message, param), headers)


_FAULT_STATUS = {Fault.HTTP_500: 500, Fault.HTTP_503: 503, Fault.HTTP_429: 429, Fault.HTTP_529: 529}
_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
    b"<body><h1>It works!</h1><p>This is not an API.</p></body></html>"
)


def _replace_for_fault(response: _Response, fault: Fault | None, *, anthropic: bool) -> _Response:
    """Swap a normal response for the fault's own answer when the fault replaces the body."""
    if fault in _FAULT_STATUS:
        return _error(_FAULT_STATUS[fault], anthropic=anthropic)
    if fault is Fault.WRONG_CONTENT_TYPE:
        return _Whole(200, "text/html; charset=utf-8", _HTML_PAGE)
    if fault is Fault.MALFORMED_JSON:
        if isinstance(response, _Sse):
            broken = b'data: {"id": "broken", "choices": [{"delta": \n\n'
            if anthropic:
                broken = b"event: message_start\n" + broken
            return _Sse((broken,), (), (), b"")
        return _Whole(200, "application/json", b'{"id": "broken", "choices": [{"message": ')
    if fault is Fault.NAN_VALUE:
        if isinstance(response, _Sse):
            return _Sse((_NAN_EVENTS[anthropic],), (), (), b"")
        return _Whole(200, "application/json", _NAN_ANSWERS[anthropic])
    if fault is Fault.BYTE_ORDER_MARK:
        if isinstance(response, _Sse):
            return replace(response, head=(_BOM + response.head[0], *response.head[1:]))
        if isinstance(response, _Whole):
            return replace(response, body=_BOM + response.body)
    return response


_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 layer


def _stamp_response(response: _Response, serial: int, created: int) -> _Response:
    if isinstance(response, _Whole):
        return replace(response, body=_stamp(response.body, serial, created))

    def stamp_all(events: tuple[bytes, ...]) -> tuple[bytes, ...]:
        return tuple(_stamp(event, serial, created) for event in events)

    return _Sse(
        stamp_all(response.head),
        stamp_all(response.deltas),
        stamp_all(response.tail),
        _stamp(response.error, serial, created),
    )


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    keep_alive: bool


@dataclass(frozen=True)
class _Plan:
    """A response that needs the event loop: delays, hangs, or a fault that cuts it."""

    response: _Response
    fault: Fault | None
    keep_alive: bool
    knobs: Knobs


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    411: "Length Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Site Overloaded",
}


def _head(status: int, headers: Iterable[tuple[str, str]], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@functools.lru_cache(maxsize=4096)
def _whole_bytes(response: _Whole, keep_alive: bool) -> bytes:
    headers = [("content-type", response.content_type), ("content-length", str(len(response.body)))]
    headers.extend(response.headers)
    return _head(response.status, headers, keep_alive) + response.body


_SSE_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("transfer-encoding", "chunked"),
)
_LAST_CHUNK = b"0\r\n\r\n"
# A delta, or a whole answer, whose text is NaN: Python's json reads it, JSON has no such value.
_NAN_ANSWERS = {
    False: b'{"id": "chatcmpl-nan", "object": "chat.completion", "model": "fake-gpt", "choices": '
    b'[{"index": 0, "message": {"role": "assistant", "content": NaN}, "finish_reason": "stop"}]}',
    True: b'{"id": "msg_nan", "type": "message", "role": "assistant", "model": "fake-claude", '
    b'"content": [{"type": "text", "text": NaN}], "stop_reason": "end_turn"}',
}
_NAN_EVENTS = {
    False: b'data: {"choices": [{"index": 0, "delta": {"content": NaN}}]}\n\n',
    True: b"event: content_block_delta\ndata: "
    b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": NaN}}'
    b"\n\n",
}


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


@functools.lru_cache(maxsize=4096)
def _sse_bytes(response: _Sse, keep_alive: bool) -> bytes:
    parts = [_head(200, _SSE_HEADERS, keep_alive)]
    parts.extend(_chunk(e) for e in (*response.head, *response.deltas, *response.tail))
    parts.append(_LAST_CHUNK)
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One client connection; requests are answered strictly in order."""

    def __init__(self, server: FakeUpstream) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio.Transport, but is one).
        self._transport = cast(asyncio.Transport, transport)
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)
        if self._task is not None:
            self._task.cancel()
        self._wake_drain()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _drain(self) -> None:
        if self._paused and not self._closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    def _write(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._closed = True
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is None:
            self._answer_buffered()

    def _answer_buffered(self) -> None:
        while self._buffer and not self._closed:
            request = self._parse_one()
            if request is None:
                return
            answer = self._server._answer(request)
            if isinstance(answer, bytes):
                self._write(answer)
                if not request.keep_alive:
                    self.close()
                continue
            self._task = asyncio.get_running_loop().create_task(self._play(answer))
            return

    def _parse_one(self) -> _Request | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES:
                self._reject(431)
            return None
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self._reject(400)
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            # Both SDKs send Content-Length; chunked request bodies are out of scope.
            self._reject(411)
            return None
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._reject(400)
            return None
        start = end + 4
        if len(self._buffer) < start + length:
            if not self._continued and headers.get("expect", "").lower() == "100-continue":
                # curl holds large bodies back until it hears this (or gives up after 1 s).
                self._continued = True
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        self._continued = False
        raw_body = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        connection = headers.get("connection", "").lower()
        keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
        return _Request(method, target.split("?", 1)[0], headers, raw_body, keep_alive)

    def _reject(self, status: int) -> None:
        self._write(_head(status, [("content-length", "0")], keep_alive=False))
        self.close()

    async def _play(self, plan: _Plan) -> None:
        try:
            await self._play_response(plan)
        except asyncio.CancelledError:
            return
        finally:
            self._task = None
        if not plan.keep_alive:
            self.close()
        elif not self._closed and self._buffer:
            self._answer_buffered()

    async def _play_response(self, plan: _Plan) -> None:
        knobs, fault = plan.knobs, plan.fault
        if knobs.delay_s > 0:
            await asyncio.sleep(knobs.delay_s)
        if fault is Fault.CLOSE_BEFORE_HEADERS:
            self.close()
            return
        if fault is Fault.TIMEOUT_BEFORE_HEADERS:
            await asyncio.sleep(knobs.hang_s)
        response = plan.response
        if isinstance(response, _Whole):
            data = _whole_bytes(response, plan.keep_alive)
            if fault in (Fault.HANG_MID_STREAM, Fault.TRUNCATED_STREAM):
                cut = len(data) - len(response.body) // 2
                self._write(data[:cut])
                if fault is Fault.TRUNCATED_STREAM:
                    self.close()
                    return
                await self._drain()
                await asyncio.sleep(knobs.hang_s)
                data = data[cut:]
            self._write(data)
            return
        self._write(
            _head(200, _SSE_HEADERS, plan.keep_alive) + b"".join(map(_chunk, response.head))
        )
        cut = min(FAULT_AFTER_DELTAS, len(response.deltas))
        for index, delta in enumerate(response.deltas):
            if index == cut and await self._mid_stream_fault(plan, response):
                return
            await self._send_delta(delta, knobs.token_delay_s)
        if cut == len(response.deltas) and await self._mid_stream_fault(plan, response):
            return
        self._write(b"".join(map(_chunk, response.tail)) + _LAST_CHUNK)

    async def _send_delta(self, delta: bytes, token_delay_s: float) -> None:
        if token_delay_s > 0:
            await asyncio.sleep(token_delay_s)
        self._write(_chunk(delta))
        await self._drain()

    async def _mid_stream_fault(self, plan: _Plan, response: _Sse) -> bool:
        """Apply a mid-stream fault; True when the stream is over."""
        if plan.fault is Fault.TRUNCATED_STREAM:
            self.close()
            return True
        if plan.fault is Fault.ERROR_EVENT_MID_STREAM:
            self._write(_chunk(response.error) + _LAST_CHUNK)
            return True
        if plan.fault is Fault.NAN_MID_STREAM:
            anthropic = response.error.startswith(b"event: ")
            self._write(_chunk(_NAN_EVENTS[anthropic]) + _LAST_CHUNK)
            return True
        if plan.fault is Fault.HANG_MID_STREAM:
            await self._drain()
            await asyncio.sleep(plan.knobs.hang_s)
        return False


# ---------------------------------------------------------------------------------------------
# The server


def _is_anthropic(path: str, headers: dict[str, str]) -> bool:
    return (
        "anthropic-version" in headers or "x-api-key" in headers or path.startswith("/v1/messages")
    )


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return _loads(raw)
    except ValueError:
        return None


class FakeUpstream:
    """A fake OpenAI + Anthropic upstream on 127.0.0.1, run in a daemon thread or as a process.

    Thread-safe from the test thread: ``push_faults``, ``set_fault``, ``configure``, ``requests``
    and ``clear`` may be called while the server runs.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_s: float = 0.0,
        token_delay_s: float = 0.0,
        reply_tokens: int = 8,
        cache_read_tokens: int = 0,
        hang_s: float = 30.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
        record: bool = True,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.models = models
        self.record = record
        self._initial_knobs = Knobs(delay_s, token_delay_s, reply_tokens, cache_read_tokens, hang_s)
        self.knobs = self._initial_knobs
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._sticky_fault: Fault | None = None
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; an OpenAI client wants ``base_url + "/v1"``."""
        return f"http://{self.host}:{self._port}"

    def catalogue(self, model: str, key_env: str) -> str:
        """A gateway provider file (TOML) with one OpenAI-kind provider on this server, whose
        key the gateway reads from `key_env`, and `model` routed to it at 1 Wit per input
        token and 2 per output token."""
        return f"""
[[providers]]
name = "fake"
kind = "openai"
base_url = "{self.base_url}/v1"
api_key_env = "{key_env}"
timeout_s = 20

[[models]]
name = "{model}"
kind = "chat"
input_price = 1
output_price = 2
max_output_tokens = 1000
routes = [ {{ provider = "fake", model = "fake-gpt" }} ]
"""

    def start(self) -> Self:
        """Listen on a daemon thread; returns once the port accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = _new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen(reuse_port=False))
            except BaseException as exc:  # re-raised in the starting thread
                failure.append(exc)
                self._loop = None
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-upstream-{id(self)}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, then end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _listen(self, *, reuse_port: bool) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self._port, reuse_port=reuse_port, backlog=2048
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def serve_until_signal(self, *, reuse_port: bool = False, on_ready: Callable[[], None]) -> None:
        """Serve in the calling (main) thread until SIGTERM or SIGINT."""
        loop = _new_event_loop()
        self._loop = loop
        stop = asyncio.Event()
        try:
            loop.run_until_complete(self._listen(reuse_port=reuse_port))
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            on_ready()
            loop.run_until_complete(stop.wait())
            loop.run_until_complete(self._shutdown())
        finally:
            loop.close()

    # -- test controls ---------------------------------------------------------------------

    def push_faults(self, faults: Iterable[Fault | str]) -> None:
        """Queue faults for the next requests, one each, before the sticky fault applies."""
        parsed = [Fault(f) for f in faults]
        with self._lock:
            self._faults.extend(parsed)

    def set_fault(self, fault: Fault | str | None) -> None:
        """Apply ``fault`` to every request until ``set_fault(None)``."""
        self._sticky_fault = None if fault is None else Fault(fault)

    def configure(self, **changes: Any) -> None:
        """Change knobs (``delay_s``, ``token_delay_s``, ``reply_tokens``, ...) for new requests."""
        self.knobs = replace(self.knobs, **changes)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests and faults, and restore the constructor's knobs."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
        self._sticky_fault = None
        self.knobs = self._initial_knobs

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
        return self._sticky_fault

    # -- request handling (event-loop thread) ----------------------------------------------

    def _answer(self, request: _Request) -> bytes | _Plan:
        """Bytes to write now, or a plan for the connection to play over time."""
        if self.record:
            body = _parse_body(request.raw_body)
            recorded = RecordedRequest(request.method, request.path, request.headers, body)
            with self._lock:
                self._requests.append(recorded)
        route = (request.method, request.path)
        anthropic = route == _MESSAGES_ROUTE or _is_anthropic(request.path, request.headers)
        if route not in _ROUTES:
            message = f"Unknown request URL: {request.method} {request.path}."
            response = _error(404, anthropic=anthropic, message=message)
            return _whole_bytes(response, request.keep_alive)
        rejected = self._deny(request.headers, anthropic=anthropic) or _rejection(
            route, request.raw_body
        )
        if rejected is not None:
            return _whole_bytes(rejected, request.keep_alive)
        knobs = self.knobs
        fault = self._take_fault()
        response = _render(route, request.raw_body, knobs, fault, anthropic, self.models)
        instant = fault is None or fault in _RENDER_FAULTS
        if fault in _STREAM_ONLY_FAULTS and isinstance(response, _Whole):
            instant = True
        if isinstance(response, _Sse) and knobs.token_delay_s > 0:
            instant = False
        serial, created = next(_ids), int(time.time())
        if instant and knobs.delay_s <= 0:
            if isinstance(response, _Whole):
                return _stamp(_whole_bytes(response, request.keep_alive), serial, created)
            return _stamp(_sse_bytes(response, request.keep_alive), serial, created)
        return _Plan(_stamp_response(response, serial, created), fault, request.keep_alive, knobs)

    def _deny(self, headers: dict[str, str], *, anthropic: bool) -> _Whole | None:
        bearer = headers.get("authorization") == f"Bearer {self.api_key}"
        if anthropic:
            # anthropic>=2 sends the API key as a Bearer token; the real API accepts both.
            if headers.get("x-api-key") != self.api_key and not bearer:
                return _error(401, anthropic=True)
            if "anthropic-version" not in headers:
                return _error(401, anthropic=True, message="anthropic-version header is required")
            return None
        if not bearer:
            return _error(401, anthropic=False)
        return None


# ---------------------------------------------------------------------------------------------
# Endpoints (pure: request body in, response out)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid_chat(body: Any) -> _Whole | None:
    if not isinstance(body, dict):
        return _error(400, anthropic=False, message="Body must be a JSON object.")
    if not isinstance(body.get("messages"), list):
        return _error(400, anthropic=False, message="'messages' is required.", param="messages")
    return None


def _invalid_messages(body: Any) -> _Whole | None:
    if not isinstance(body, dict):
        return _error(400, anthropic=True, message="Body must be a JSON object.")
    if not _is_int(body.get("max_tokens")):
        return _error(400, anthropic=True, message="max_tokens: Field required")
    if not isinstance(body.get("messages"), list):
        return _error(400, anthropic=True, message="messages: Field required")
    return None


def _invalid_embeddings(body: Any) -> _Whole | None:
    if not isinstance(body, dict) or "input" not in body:
        return _error(400, anthropic=False, message="'input' is required.", param="input")
    return None


def _always_valid(body: Any) -> _Whole | None:
    return None


def _chat(
    body: dict[str, Any],
    knobs: Knobs,
    fault: Fault | None,
    anthropic: bool,
    models: tuple[str, ...],
) -> _Response:
    reply = _plan_reply(body, knobs, fault, anthropic=False)
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return _openai_stream(reply, include_usage)
    return _openai_completion(reply)


def _messages(
    body: dict[str, Any],
    knobs: Knobs,
    fault: Fault | None,
    anthropic: bool,
    models: tuple[str, ...],
) -> _Response:
    reply = _plan_reply(body, knobs, fault, anthropic=True)
    if body.get("stream") is True:
        return _anthropic_stream(reply)
    return _anthropic_message(reply)


def _embeddings(
    body: dict[str, Any],
    knobs: Knobs,
    fault: Fault | None,
    anthropic: bool,
    models: tuple[str, ...],
) -> _Response:
    dimensions = body.get("dimensions")
    if not _is_int(dimensions) or dimensions < 1:
        dimensions = DEFAULT_EMBEDDING_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64" and fault is not Fault.FLOAT_EMBEDDINGS
    data = []
    tokens = 0
    for index, (text, count) in enumerate(_embedding_inputs(body["input"])):
        tokens += count
        vector = embedding_vector(text, dimensions)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    model = body.get("model")
    payload: dict[str, Any] = {
        "object": "list",
        "data": data,
        "model": model if isinstance(model, str) else "fake-embed",
    }
    if fault is not Fault.NO_USAGE:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return _json(200, payload)


def _models(
    body: Any, knobs: Knobs, fault: Fault | None, anthropic: bool, models: tuple[str, ...]
) -> _Response:
    if anthropic:
        listed = [
            {
                "type": "model",
                "id": name,
                "display_name": name,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for name in models
        ]
        first = listed[0]["id"] if listed else None
        last = listed[-1]["id"] if listed else None
        return _json(200, {"data": listed, "has_more": False, "first_id": first, "last_id": last})
    listed = [
        {"id": name, "object": "model", "created": 1735689600, "owned_by": "fake-upstream"}
        for name in models
    ]
    return _json(200, {"object": "list", "data": listed})


_Route = tuple[str, str]
_Validator = Callable[[Any], _Whole | None]
_Handler = Callable[[Any, Knobs, Fault | None, bool, tuple[str, ...]], _Response]
_MESSAGES_ROUTE = ("POST", "/v1/messages")
_ROUTES: dict[_Route, tuple[_Validator, _Handler]] = {
    ("POST", "/v1/chat/completions"): (_invalid_chat, _chat),
    ("POST", "/v1/embeddings"): (_invalid_embeddings, _embeddings),
    ("GET", "/v1/models"): (_always_valid, _models),
    _MESSAGES_ROUTE: (_invalid_messages, _messages),
}

# Both caches are keyed on the raw body: a benchmark repeats a few bodies, so the hot path
# skips parsing and rendering. Small, because an embeddings answer can be large.


@functools.lru_cache(maxsize=512)
def _rejection(route: _Route, raw_body: bytes) -> _Whole | None:
    """The 400 answer for a body the endpoint cannot take, else None."""
    validator, _ = _ROUTES[route]
    return validator(_parse_body(raw_body))


@functools.lru_cache(maxsize=512)
def _render(
    route: _Route,
    raw_body: bytes,
    knobs: Knobs,
    fault: Fault | None,
    anthropic: bool,
    models: tuple[str, ...],
) -> _Response:
    """The endpoint's answer (ids and time still marked) after a fault that replaces it."""
    _, handler = _ROUTES[route]
    response = handler(_parse_body(raw_body), knobs, fault, anthropic, models)
    return _replace_for_fault(response, fault, anthropic=anthropic)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional speed-up, not a dependency
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def closed_port() -> int:
    """Return a 127.0.0.1 port with no listener (for "connection refused" cases)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# CLI for benchmarks


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.upstream", description="Fake OpenAI + Anthropic upstream."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="before response headers")
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="before each delta")
    parser.add_argument("--reply-tokens", type=int, default=8)
    parser.add_argument("--cache-read-tokens", type=int, default=0)
    parser.add_argument("--hang-ms", type=float, default=30_000.0, help="for hang faults")
    parser.add_argument("--fault", choices=[f.value for f in Fault], help="sticky fault")
    parser.add_argument("--workers", type=int, default=1, help="SO_REUSEPORT processes")
    parser.add_argument("--record", action="store_true", help="keep requests (memory grows)")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class _CliConfig:
    host: str
    port: int
    api_key: str
    knobs: Knobs
    fault: str | None
    record: bool
    reuse_port: bool


def _serve(config: _CliConfig, on_ready: Callable[[int], None]) -> None:
    server = FakeUpstream(config.api_key, host=config.host, port=config.port, record=config.record)
    server.knobs = config.knobs
    server.set_fault(config.fault)
    server.serve_until_signal(reuse_port=config.reuse_port, on_ready=lambda: on_ready(server.port))


def _serve_worker(config: _CliConfig, ready: Any) -> None:
    _serve(config, lambda _port: ready.set())


def _announce(host: str, port: int) -> None:
    sys.stdout.write(f"http://{host}:{port}\n")
    sys.stdout.flush()


def _run_workers(config: _CliConfig, count: int) -> None:
    context = multiprocessing.get_context("fork")
    workers = []
    for _ in range(count):
        ready = context.Event()
        process = context.Process(target=_serve_worker, args=(config, ready), daemon=True)
        process.start()
        workers.append((process, ready))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for process, ready in workers:
        while not ready.wait(0.1) and not stop.is_set():
            if not process.is_alive():
                stop.set()
    if not stop.is_set():
        _announce(config.host, config.port)
    # A worker that dies takes the whole pool down, so a benchmark never runs half-served.
    while not stop.wait(0.5) and all(process.is_alive() for process, _ in workers):
        pass
    for process, _ in workers:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    for process, _ in workers:
        process.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Run the fake until SIGTERM/SIGINT, printing its base URL once it accepts connections."""
    args = _parse_args(argv)
    knobs = Knobs(
        delay_s=args.delay_ms / 1000,
        token_delay_s=args.token_delay_ms / 1000,
        reply_tokens=args.reply_tokens,
        cache_read_tokens=args.cache_read_tokens,
        hang_s=args.hang_ms / 1000,
    )
    workers = max(args.workers, 1)
    # SO_REUSEPORT workers must agree on one port, so port 0 is resolved up front.
    port = args.port if workers == 1 or args.port else closed_port()
    config = _CliConfig(
        host=args.host,
        port=port,
        api_key=args.api_key,
        knobs=knobs,
        fault=args.fault,
        record=args.record,
        reuse_port=workers > 1,
    )
    if workers == 1:
        _serve(config, lambda bound: _announce(config.host, bound))
    else:
        _run_workers(config, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
