"""HTTP to upstream providers: the only module that speaks HTTP to them.

It is a small HTTP/1.1 client over its own keep-alive sockets. The gateway sends one kind of
request (a JSON POST to a known URL) and reads one of three kinds of answer (a JSON body, an
SSE stream, an error), so urllib3's generality (header dicts, URL and retry objects, pool
managers, http.client's email-parser headers) was most of an upstream call's CPU.

Guarantees:

- Every failure becomes an `UpstreamError` with a kind and, for HTTP failures, the status; the
  upstream's body is never handed to a client, only a short, scrubbed message read from at most
  16 KiB of it.
- Connections are pooled per (scheme, host, port) and per process, up to 1,024 idle ones each.
  A connection is used by one call at a time (the pool hands it out under a lock, so gthread
  workers share it safely) and goes back to the pool only when its answer was read to the last
  byte and the server keeps it open: a stream closed early, a body cut short or an error midway
  closes it instead.
- A pooled connection the server closed while it was idle is detected before anything is sent
  on it and replaced by a new one, and a send that fails on a reused connection is retried once
  on a new one: no request fails for a stale connection. Once a request was sent in full it is
  never sent again, whatever happens next (the server may have acted on it).
- Every call has the provider's connect timeout (TCP connect and TLS handshake) and read
  timeout, the read timeout bounding each wait for bytes: before the headers, between chunks of
  a body and between stream events.
- https providers are reached over TLS with certificate and host name verification (SNI, the
  system CA bundle, TLS 1.2 or later), as urllib3 did.
- Sockets, TLS and timeouts come from the `socket` and `ssl` modules as they are when a
  connection is made, so under gevent's monkeypatching (the gevent worker) every wait yields to
  the hub; nothing waits in `select`/`poll`.
- Bodies may be Content-Length, chunked or delimited by the connection's close; a gzip or
  deflate body is decoded (the gateway asks for identity, but a server may compress anyway).

Failover rules live in the caller; this module only says whether a failure is `retryable`
(connect error, timeout, 408/409/429/5xx/529, and the upstream refusing our credentials or not
knowing the model: another route may well work) or the client's fault (400/413/422).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

CONNECT = "connect"
TIMEOUT = "timeout"
STATUS = "status"
MALFORMED = "malformed"
PROTOCOL = "protocol"

_RETRYABLE_STATUS = frozenset({401, 403, 404, 408, 409, 425, 429, 529})
_CLIENT_STATUS = frozenset({400, 413, 422})
_MAX_ERROR_BODY = 16_384
_MAX_MESSAGE = 300
_SECRETS = re.compile(r"(cw_sk_|sk-(ant-)?|Bearer\s+)[A-Za-z0-9_\-\.]{6,}")

_MAX_IDLE_PER_HOST = 1024
_MAX_HEAD = 65_536
_MAX_CHUNK_LINE = 4096
_RECV = 65_536
_USER_AGENT = "clawwits"

# The messages urllib3's exceptions produced here before, kept so clients and logs see the same
# (urllib3 reported a refused connection or an unknown host name as a connect timeout).
_ABORTED = "could not reach the provider (ProtocolError)"
_CONNECT_TIMEOUT = "connection to the provider timed out"
_NO_ANSWER = "the provider did not answer in time"
_BAD_URL = "request to the provider failed (LocationParseError)"


@dataclass
class UpstreamError(Exception):
    kind: str
    message: str
    status: int | None = None
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        if self.kind != STATUS:
            return True
        return self.status in _RETRYABLE_STATUS or (self.status or 0) >= 500

    @property
    def client_fault(self) -> bool:
        return self.kind == STATUS and self.status in _CLIENT_STATUS


def scrub(text: str) -> str:
    """A message safe to show a client: secrets masked, one line, bounded length."""
    text = _SECRETS.sub(lambda m: m.group(1) + "***", " ".join(str(text).split()))
    return text[:_MAX_MESSAGE]


class _Broken(Exception):
    """The server broke HTTP/1.1 framing (bad status line or chunk, or closed mid-answer)."""


# --- Where to send --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    head: bytes  # request line, Host, and the headers every request carries


_targets: dict[str, _Target] = {}
_BAD_TEXT = re.compile(r"[\x00-\x20\x7f]")
_BAD_HEADER = re.compile(r"[\r\n\x00]")


def _target(url: str) -> _Target:
    target = _targets.get(url)
    if target is None:
        target = _parse_target(url)
        if len(_targets) < 1024:  # URLs come from the provider file: a handful
            _targets[url] = target
    return target


def _parse_target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UpstreamError(PROTOCOL, _BAD_URL) from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        raise UpstreamError(PROTOCOL, "request to the provider failed (URLSchemeUnknown)")
    if not host or _BAD_TEXT.search(url):
        raise UpstreamError(PROTOCOL, _BAD_URL)
    tls = parts.scheme == "https"
    default = 443 if tls else 80
    port = port or default
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == default else f"{name}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {_USER_AGENT}\r\n").encode(
        "ascii"
    )
    return _Target((parts.scheme, host, port), host, port, tls, head)


# --- Connections and the pool ---------------------------------------------------------------


class _Connection:
    __slots__ = ("sock", "key", "buffer", "timeout")

    def __init__(self, sock: socket.socket, key: tuple[str, str, int], timeout: float) -> None:
        self.sock = sock
        self.key = key
        self.buffer = b""
        self.timeout = timeout

    def fill(self) -> bool:
        """Append what the socket has (waiting up to the read timeout); False at its end."""
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.buffer = self.buffer + data if self.buffer else data
        return True

    def dropped(self, timeout: float) -> bool:
        """Whether the server closed (or wrote on) this idle connection: it cannot carry a request.

        A non-blocking read rather than select/poll: it works the same on TLS sockets (a TLS 1.3
        session ticket read here is not data) and on gevent's sockets. Leaves `timeout` set.
        """
        self.sock.settimeout(0.0)
        try:
            self.sock.recv(1)
            return True  # end of stream, or bytes nobody asked for
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            return True
        finally:
            self.timeout = timeout
            with contextlib.suppress(OSError):
                self.sock.settimeout(timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


_idle: dict[tuple[str, str, int], list[_Connection]] = {}
# Held only around list operations, never across I/O: even a lock made before gevent patched
# `threading` cannot block the hub.
_idle_lock = threading.Lock()
_tls_context: ssl.SSLContext | None = None


def _checkout(target: _Target, read_timeout: float) -> _Connection | None:
    """The most recently used idle connection to this host that is still open, if any."""
    while True:
        with _idle_lock:
            idle = _idle.get(target.key)
            if not idle:
                return None
            conn = idle.pop()
        if not conn.dropped(read_timeout):
            return conn
        conn.close()


def _checkin(conn: _Connection) -> None:
    with _idle_lock:
        idle = _idle.setdefault(conn.key, [])
        if len(idle) < _MAX_IDLE_PER_HOST:
            idle.append(conn)
            return
    conn.close()


def close_idle() -> None:
    """Close every idle pooled connection (tests start from an empty pool)."""
    with _idle_lock:
        conns = [conn for idle in _idle.values() for conn in idle]
        _idle.clear()
    for conn in conns:
        conn.close()


def _tls() -> ssl.SSLContext:
    global _tls_context
    if _tls_context is None:
        # Made on first use, after a gevent worker has patched `ssl`. The default context
        # verifies the certificate and host name against the system CA bundle, as urllib3 did.
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        _tls_context = context
    return _tls_context


def _connect(target: _Target, connect_timeout: float, read_timeout: float) -> _Connection:
    try:
        sock = socket.create_connection((target.host, target.port), timeout=connect_timeout)
    except OSError:
        raise UpstreamError(CONNECT, _CONNECT_TIMEOUT) from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.tls:
            sock = _tls().wrap_socket(sock, server_hostname=target.host)
        sock.settimeout(read_timeout)
    except TimeoutError:
        sock.close()
        raise UpstreamError(CONNECT, _CONNECT_TIMEOUT) from None
    except ssl.SSLError:
        # Certificate, host name or handshake failure.
        sock.close()
        raise UpstreamError(PROTOCOL, "request to the provider failed (SSLError)") from None
    except OSError:
        sock.close()
        raise UpstreamError(CONNECT, _ABORTED) from None
    return _Connection(sock, target.key, read_timeout)


# --- Answers --------------------------------------------------------------------------------


def _decoder(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib-wrapped, as RFC 9110 says
    return None  # identity, or one we cannot decode: the bytes as they came


def _chunk_size(line: bytes) -> int:
    """A chunk-size line's size, or -1 when it is not one."""
    size = line.split(b";", 1)[0].strip()
    try:
        return int(size, 16) if size.isalnum() else -1
    except ValueError:
        return -1


class _Response:
    """One answer on one connection: its head, then its body read piece by piece."""

    __slots__ = (
        "conn",
        "status",
        "headers",
        "keep_alive",
        "_remaining",
        "_chunked",
        "_chunk_left",
        "_chunk_crlf",
        "_trailers",
        "done",
        "failed",
        "_decoder",
    )

    def __init__(self, conn: _Connection) -> None:
        self.conn: _Connection | None = conn
        self.failed = False
        self._read_head(conn)

    def _read_head(self, conn: _Connection) -> None:
        while True:
            end = conn.buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(conn.buffer) > _MAX_HEAD:
                    raise _Broken("head too long")
                if not conn.fill():
                    raise _Broken("closed before the head")
                end = conn.buffer.find(b"\r\n\r\n")
            head = conn.buffer[:end].decode("latin-1")
            conn.buffer = conn.buffer[end + 4 :]
            lines = head.split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            bad_code = len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " ")
            if bad_code or not version.startswith("HTTP/1."):
                raise _Broken("bad status line")
            status = int(code)
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise _Broken("bad header line")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.status = status
        self.headers = headers
        tokens = headers.get("connection", "").lower()
        self.keep_alive = (
            "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
        ) and status != 101
        self._chunked = False
        self._chunk_left = 0
        self._chunk_crlf = False
        self._trailers = False
        self._remaining: int | None = None
        encoding = headers.get("content-encoding")
        self._decoder = _decoder(encoding) if encoding else None
        if status in (101, 204, 304):
            self._remaining = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            lengths = {v.strip() for v in headers["content-length"].split(",")}
            length = lengths.pop() if len(lengths) == 1 else ""
            if not length.isdigit():
                raise _Broken("bad content-length")
            self._remaining = int(length)
        else:
            self.keep_alive = False  # the body ends when the server closes
        self.done = self._remaining == 0

    def _read_raw(self) -> bytes:
        """The next piece of the body as sent (b"" at its end); waits only when nothing is here."""
        conn = self.conn
        if self.done or conn is None:
            return b""
        if self._chunked:
            return self._read_chunk(conn)
        if not conn.buffer and not conn.fill():
            if self._remaining is not None:
                raise _Broken("closed mid-body")
            self.done = True
            return b""
        data = conn.buffer
        if self._remaining is not None:
            if len(data) > self._remaining:
                data = data[: self._remaining]
            self._remaining -= len(data)
            self.done = self._remaining == 0
        conn.buffer = conn.buffer[len(data) :] if len(data) < len(conn.buffer) else b""
        return data

    def _read_chunk(self, conn: _Connection) -> bytes:
        """Every chunk's data already here, parsed in one pass (a stream's recv often holds
        several events and the terminator); waits for more only when none is complete."""
        pieces: list[bytes] = []
        while True:
            buffer = conn.buffer
            size = len(buffer)
            pos = 0
            while pos < size and not self.done:
                if self._chunk_left:
                    end = min(size, pos + self._chunk_left)
                    pieces.append(buffer[pos:end])
                    self._chunk_left -= end - pos
                    self._chunk_crlf = not self._chunk_left
                    pos = end
                    continue
                # A framing error after some data is raised by the next call, so the data that
                # came before it (a stream's last good events) is still delivered.
                if self._chunk_crlf:
                    if size - pos < 2:
                        break
                    if buffer[pos : pos + 2] != b"\r\n":
                        if pieces:
                            break
                        raise _Broken("chunk not followed by CRLF")
                    self._chunk_crlf = False
                    pos += 2
                    continue
                end = buffer.find(b"\n", pos)
                if end < 0:
                    if size - pos > _MAX_CHUNK_LINE and not pieces:
                        raise _Broken("chunk line too long")
                    break
                line = buffer[pos:end].rstrip(b"\r")
                if self._trailers:
                    pos = end + 1
                    self.done = not line  # trailer fields, up to the empty line
                    continue
                length = _chunk_size(line)
                if length < 0:
                    if pieces:
                        break
                    raise _Broken("bad chunk size")
                pos = end + 1
                self._chunk_left = length
                self._trailers = length == 0
            conn.buffer = buffer[pos:] if pos < size else b""
            if pieces or self.done:
                return b"".join(pieces) if len(pieces) != 1 else pieces[0]
            if not conn.fill():
                raise _Broken("closed mid-chunk")

    def read1(self) -> bytes:
        """The next decoded piece of the body, b"" at its end (zlib.error if it does not decode).

        A compressed piece is inflated at most 64 KiB at a time, so a small bomb in an error
        body costs no more than its first pieces.
        """
        try:
            decoder = self._decoder
            while True:
                if decoder is not None and decoder.unconsumed_tail:
                    data = decoder.decompress(decoder.unconsumed_tail, _RECV)
                    if data:
                        return data
                data = self._read_raw()
                if decoder is None:
                    return data
                if not data:
                    return decoder.flush()
                data = decoder.decompress(data, _RECV)
                if data:
                    return data
        except BaseException:
            self.failed = True
            raise

    def read(self, limit: int | None = None) -> bytes:
        """The decoded body, or its first `limit` bytes (the rest left unread)."""
        pieces: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            data = self.read1()
            if not data:
                break
            pieces.append(data)
            size += len(data)
        body = b"".join(pieces) if len(pieces) != 1 else pieces[0]
        return body if limit is None else body[:limit]

    def settle(self) -> None:
        """Read what already arrived of the rest, without waiting, so a finished body can be pooled.

        A stream's caller stops at its last event, usually before the chunked terminator was
        parsed; the terminator is almost always here already. A stream left midway with more
        than a little still to come is not drained: its connection is closed.
        """
        conn = self.conn
        if conn is None or self.done or self.failed or not self.keep_alive:
            return
        budget = _RECV
        conn.sock.settimeout(0.0)
        try:
            while not self.done and budget > 0:
                budget -= len(self._read_raw())
        except (_Broken, OSError):
            # Nothing more here yet (or the body is broken): the connection is not reusable.
            self.failed = True
        finally:
            try:
                conn.sock.settimeout(conn.timeout)
            except OSError:
                self.failed = True

    def release(self) -> None:
        """Pool the connection if its body was read to the end and the server keeps it, or close."""
        conn = self.conn
        if conn is None:
            return
        self.conn = None
        if self.done and not self.failed and self.keep_alive and not conn.buffer:
            _checkin(conn)
        else:
            conn.close()


# --- Requests -------------------------------------------------------------------------------


def _request(
    url: str, headers: dict[str, str], payload: bytes, connect_timeout: float, read_timeout: float
) -> _Response:
    target = _target(url)
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    if any(_BAD_HEADER.search(line, 0, len(line) - 2) for line in lines):
        raise UpstreamError(PROTOCOL, "request to the provider failed (ValueError)")
    if not any(name.lower() == "accept-encoding" for name in headers):
        lines.append("Accept-Encoding: identity\r\n")
    lines.append(f"Content-Length: {len(payload)}\r\n\r\n")
    try:
        message = target.head + "".join(lines).encode("latin-1") + payload
    except UnicodeEncodeError:
        raise UpstreamError(
            PROTOCOL, "request to the provider failed (UnicodeEncodeError)"
        ) from None
    conn = _checkout(target, read_timeout)
    if conn is not None:
        try:
            conn.sock.sendall(message)
        except OSError:
            # Some of the request never left this host, so the server cannot have acted on it:
            # the server closed the connection as we picked it. One new connection takes it.
            conn.close()
            conn = None
    if conn is None:
        conn = _connect(target, connect_timeout, read_timeout)
        try:
            conn.sock.sendall(message)
        except TimeoutError:
            conn.close()
            raise UpstreamError(CONNECT, _ABORTED) from None
        except OSError:
            pass  # The server may have answered before closing (an early 413): read that.
    try:
        return _Response(conn)
    except TimeoutError:
        conn.close()
        raise UpstreamError(TIMEOUT, _NO_ANSWER) from None
    except (_Broken, OSError):
        conn.close()
        raise UpstreamError(CONNECT, _ABORTED) from None


def _retry_after(response: _Response) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _error_message(response: _Response) -> str:
    try:
        raw = response.read(_MAX_ERROR_BODY)
    except Exception:  # noqa: BLE001 - the body is best-effort context only
        raw = b""
    message = ""
    try:
        body = json.loads(raw)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("type") or "")
        elif isinstance(err, str):
            message = err
    except ValueError:
        pass
    return scrub(message or f"HTTP {response.status}")


def _check_status(response: _Response) -> None:
    if response.status == 200:
        return
    message = _error_message(response)
    retry_after = _retry_after(response)
    response.release()
    raise UpstreamError(STATUS, message, status=response.status, retry_after_s=retry_after)


_UTF8_BOM = b"\xef\xbb\xbf"


def post_json(
    url: str, *, headers: dict[str, str], body: dict, connect_timeout: float, read_timeout: float
) -> dict:
    """POST a JSON body and return the JSON object the provider answered with."""
    payload = json.dumps(body, ensure_ascii=False).encode()
    response = _request(url, headers, payload, connect_timeout, read_timeout)
    try:
        _check_status(response)
        content_type = response.headers.get("content-type", "")
        try:
            raw = response.read()
        except TimeoutError:
            raise UpstreamError(TIMEOUT, "the provider stopped sending its answer") from None
        except (_Broken, OSError, zlib.error):
            raise UpstreamError(PROTOCOL, "the provider's answer was cut short") from None
        if "json" not in content_type:
            raise UpstreamError(MALFORMED, f"the provider answered {content_type or 'no type'}")
        try:
            # Strict JSON (orjson): NaN and Infinity, which Python's json reads, are not JSON,
            # and passed on they would break the client's parser. A leading byte order mark is
            # not part of the text (RFC 8259 section 8.1 lets a parser ignore it; json did).
            data = orjson.loads(raw.removeprefix(_UTF8_BOM))
        except ValueError:
            raise UpstreamError(MALFORMED, "the provider's answer is not valid JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError(MALFORMED, "the provider's answer is not a JSON object")
        return data
    finally:
        response.release()


@dataclass(frozen=True)
class Event:
    name: str | None
    data: str | dict  # as sent; a dict once parsed (or built by the local provider)


class EventStream:
    """Server-sent events of one upstream response, yielded as they arrive."""

    def __init__(self, response: _Response) -> None:
        self._response = response
        self._closed = False
        # Events parsed from what was read but not yet taken by the iteration.
        self._ready: deque[Event] = deque()

    def has_event(self) -> bool:
        """Whether a whole next event was already read: iterating on gives it without waiting
        for the provider."""
        return bool(self._ready)

    def __iter__(self) -> Iterator[Event]:
        # Each read's lines are parsed at once, so `has_event` knows what else it brought.
        name: str | None = None
        data: list[str] = []
        for lines in self._reads():
            for line in lines:
                if line == "":
                    if data:
                        self._ready.append(Event(name, "\n".join(data)))
                    name, data = None, []
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
            while self._ready:
                yield self._ready.popleft()

    def _reads(self) -> Iterator[list[str]]:
        """The complete lines of each read. They are decoded and split at once: a newline byte
        never falls inside a UTF-8 sequence, so decoding up to one is the same as line by line."""
        pending = b""
        # The first text decoded starts at the stream's first byte: a byte order mark there is
        # not part of the stream (the event-stream format ignores one, as EventSource does).
        first = True
        while True:
            chunk = self._read()
            if not chunk:
                if pending:
                    text = pending.decode("utf-8", "replace")
                    yield [(text.removeprefix("\ufeff") if first else text).rstrip("\r")]
                return
            complete, newline, rest = chunk.rpartition(b"\n")
            if not newline:
                pending += rest
                continue
            text = (pending + complete if pending else complete).decode("utf-8", "replace")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            pending = rest
            yield [line.rstrip("\r") for line in text.split("\n")]

    def _read(self) -> bytes:
        if self._closed:
            return b""
        try:
            return self._response.read1()
        except TimeoutError:
            raise UpstreamError(TIMEOUT, "the provider stopped sending") from None
        except Exception:  # noqa: BLE001 - a torn connection, bad framing or a bad gzip stream
            raise UpstreamError(PROTOCOL, "the provider's stream broke off") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # A stream is closed mid-way (client gone, upstream error) as often as at its end:
            # its connection is pooled only if the body was read to the last byte.
            self._response.settle()
            self._response.release()


def open_stream(
    url: str, *, headers: dict[str, str], body: dict, connect_timeout: float, read_timeout: float
) -> EventStream:
    """POST and return the event stream once the provider answered 200 text/event-stream."""
    payload = json.dumps(body, ensure_ascii=False).encode()
    response = _request(
        url,
        {**headers, "accept": "text/event-stream", "accept-encoding": "identity"},
        payload,
        connect_timeout,
        read_timeout,
    )
    _check_status(response)
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" not in content_type:
        response.release()
        raise UpstreamError(MALFORMED, f"the provider answered {content_type or 'no type'}")
    return EventStream(response)
