"""A small asyncio SSE client: time to first content byte, and many streams held at once.

One fresh connection per stream (`Connection: close`), the same for the gateway and for the
straight-to-upstream baseline, so connection setup cancels out of the added TTFT.

"First content" is the first event that carries generated text: an OpenAI chunk whose
`choices[0].delta.content` is non-empty, an Anthropic `content_block_delta`. A stream counts as
ok only with status 200, some content, and its terminator (`data: [DONE]` / `message_stop`)
before the connection ends, with no error event; anything else is an error with a reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

OPENAI = "openai"
ANTHROPIC = "anthropic"


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    headers: Mapping[str, str]
    body: bytes
    protocol: str

    def request_bytes(self) -> bytes:
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int
    ttft_s: float | None
    total_s: float
    error: str = ""


@dataclass
class InFlight:
    """Streams between their response headers and their end, now and at the peak."""

    now: int = 0
    peak: int = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


class _Dechunker:
    """Incremental `Transfer-Encoding: chunked` decoder."""

    def __init__(self) -> None:
        self.buf = b""
        self.need = -1  # bytes left in the current chunk; -1: expecting a size line
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while not self.finished:
            if self.need < 0:
                end = self.buf.find(b"\r\n")
                if end < 0:
                    break
                size = int(self.buf[:end].split(b";")[0] or b"0", 16)
                self.buf = self.buf[end + 2 :]
                if size == 0:
                    self.finished = True
                    break
                self.need = size
            if len(self.buf) < self.need + 2:
                break
            out += self.buf[: self.need]
            self.buf = self.buf[self.need + 2 :]
            self.need = -1
        return bytes(out)


@dataclass
class _Sse:
    protocol: str
    text: bytes = b""
    content: bool = False
    done: bool = False
    error: str = ""
    _first: bool = field(default=False, repr=False)

    def feed(self, data: bytes) -> bool:
        """Consume body bytes; True when this call saw the first content event."""
        self.text += data.replace(b"\r\n", b"\n")
        first = False
        while b"\n\n" in self.text:
            event, self.text = self.text.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                    continue
                try:
                    obj = json.loads(payload)
                except ValueError:
                    self.error = "malformed event"
                    continue
                if self._content(obj) and not self.content:
                    self.content = first = True
        return first

    def _content(self, obj: object) -> bool:
        if not isinstance(obj, dict):
            return False
        if "error" in obj and self.protocol == OPENAI:
            self.error = "error event"
            return False
        if self.protocol == ANTHROPIC:
            kind = obj.get("type")
            if kind == "message_stop":
                self.done = True
            elif kind == "error":
                self.error = "error event"
            return kind == "content_block_delta"
        choices = obj.get("choices")
        if not choices:
            return False
        delta = choices[0].get("delta") or {}
        return bool(delta.get("content"))


async def _read_stream(target: Target, began: float, inflight: InFlight | None) -> Outcome:
    reader, writer = await asyncio.open_connection(target.host, target.port, limit=1 << 20)
    entered = False
    try:
        writer.write(target.request_bytes())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if inflight is not None:
            inflight.enter()
            entered = True
        headers = head.lower()
        chunked = b"transfer-encoding: chunked" in headers
        dechunk = _Dechunker() if chunked else None
        sse = _Sse(target.protocol)
        ttft = None
        while not sse.done:
            data = await reader.read(65536)
            if not data:
                break
            body = dechunk.feed(data) if dechunk else data
            if sse.feed(body) and ttft is None:
                ttft = time.perf_counter() - began
            if dechunk is not None and dechunk.finished:
                break
        total = time.perf_counter() - began
        if status != 200:
            return Outcome(False, status, ttft, total, f"status {status}")
        if sse.error:
            return Outcome(False, status, ttft, total, sse.error)
        if ttft is None or not sse.done:
            return Outcome(False, status, ttft, total, "incomplete stream")
        return Outcome(True, status, ttft, total)
    finally:
        if entered:
            inflight.leave()
        writer.close()


async def one(target: Target, *, timeout_s: float, inflight: InFlight | None = None) -> Outcome:
    """One stream from connect to terminator, bounded by `timeout_s`; never raises."""
    began = time.perf_counter()
    try:
        return await asyncio.wait_for(_read_stream(target, began, inflight), timeout_s)
    except TimeoutError:
        return Outcome(False, 0, None, time.perf_counter() - began, "timeout")
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
        return Outcome(False, 0, None, time.perf_counter() - began, type(error).__name__)


async def closed_loop(
    target: Target, *, concurrency: int, seconds: float, timeout_s: float
) -> list[Outcome]:
    """`concurrency` clients, each opening one stream after another for `seconds`."""
    stop_at = time.perf_counter() + seconds
    outcomes: list[Outcome] = []

    async def client() -> None:
        while time.perf_counter() < stop_at:
            outcomes.append(await one(target, timeout_s=timeout_s))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return outcomes


async def burst(target: Target, count: int, *, timeout_s: float) -> tuple[list[Outcome], int]:
    """Open `count` streams at once; return their outcomes and the peak number in flight."""
    inflight = InFlight()
    outcomes = await asyncio.gather(
        *(one(target, timeout_s=timeout_s, inflight=inflight) for _ in range(count))
    )
    return list(outcomes), inflight.peak


async def ramp(
    target: Target, count: int, *, seconds: float, timeout_s: float
) -> tuple[list[Outcome], int]:
    """Open `count` streams at evenly spaced times over `seconds` (the i-th at i * seconds /
    count after the first); return their outcomes and the peak number in flight. Each stream's
    time to first content counts from its own start."""
    inflight = InFlight()
    began = time.perf_counter()

    async def later(i: int) -> Outcome:
        await asyncio.sleep(max(0.0, began + i * seconds / count - time.perf_counter()))
        return await one(target, timeout_s=timeout_s, inflight=inflight)

    outcomes = await asyncio.gather(*(later(i) for i in range(count)))
    return list(outcomes), inflight.peak


def held(
    target: Target, count: int, *, over_s: float = 0.0, timeout_s: float = 60.0
) -> tuple[list[Outcome], int, float]:
    """`count` streams opened at once (`burst`) or, with `over_s`, over that many seconds
    (`ramp`), each bounded by `timeout_s`: their outcomes, the peak in flight, the wall time."""
    began = time.perf_counter()
    if over_s:
        opened = ramp(target, count, seconds=over_s, timeout_s=timeout_s)
    else:
        opened = burst(target, count, timeout_s=timeout_s)
    outcomes, peak = asyncio.run(opened)
    return outcomes, peak, time.perf_counter() - began


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty `values`."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]
