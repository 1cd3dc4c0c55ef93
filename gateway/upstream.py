"""HTTP to upstream providers: the only module that speaks HTTP to them.

It uses urllib3 directly (the engine under `requests`): on the gateway's hot path the
`requests` layer (session setting merges, cookie jar, URL preparation, hooks) cost about a
third of a chat request's CPU, and none of it is needed for one JSON POST to a known URL.

Every failure becomes an `UpstreamError` with a kind and, for HTTP failures, the status; the
upstream's body is never handed to a client, only a short, scrubbed message. Connections are
pooled per process (keep-alive), and every call has the provider's connect and read timeouts,
the read timeout bounding each wait for bytes (before headers and between stream events).

Failover rules live in the caller; this module only says whether a failure is `retryable`
(connect error, timeout, 408/409/429/5xx/529, and the upstream refusing our credentials or not
knowing the model: another route may well work) or the client's fault (400/413/422).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

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


_pool: urllib3.PoolManager | None = None


def pool() -> urllib3.PoolManager:
    global _pool
    if _pool is None:
        # One keep-alive pool per host, large enough that a worker holding many streams never
        # waits for a connection. Retries are ours to decide (never after the first byte).
        _pool = urllib3.PoolManager(num_pools=32, maxsize=1024, block=False, retries=False)
    return _pool


def _retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _error_message(response: urllib3.BaseHTTPResponse) -> str:
    try:
        raw = response.read(_MAX_ERROR_BODY, decode_content=True) or b""
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


def _send(
    url: str, *, headers: dict[str, str], body: dict, timeout: tuple[float, float]
) -> urllib3.BaseHTTPResponse:
    try:
        return pool().request(
            "POST",
            url,
            body=json.dumps(body, ensure_ascii=False).encode(),
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            preload_content=False,
            redirect=False,
            retries=False,
        )
    except ConnectTimeoutError:
        raise UpstreamError(CONNECT, "connection to the provider timed out") from None
    except ReadTimeoutError:
        raise UpstreamError(TIMEOUT, "the provider did not answer in time") from None
    except (NewConnectionError, MaxRetryError, ProtocolError, ConnectionError, OSError) as exc:
        kind = type(exc).__name__
        raise UpstreamError(CONNECT, f"could not reach the provider ({kind})") from None
    except (HTTPError, ValueError) as exc:
        kind = type(exc).__name__
        raise UpstreamError(PROTOCOL, f"request to the provider failed ({kind})") from None


def _check_status(response: urllib3.BaseHTTPResponse) -> None:
    if response.status == 200:
        return
    message = _error_message(response)
    retry_after = _retry_after(response)
    _discard(response)
    raise UpstreamError(STATUS, message, status=response.status, retry_after_s=retry_after)


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back only if it is clean; a half-read one is closed instead."""
    response.drain_conn() if response.length_remaining == 0 else response.close()
    response.release_conn()


def post_json(
    url: str, *, headers: dict[str, str], body: dict, connect_timeout: float, read_timeout: float
) -> dict:
    """POST a JSON body and return the JSON object the provider answered with."""
    response = _send(url, headers=headers, body=body, timeout=(connect_timeout, read_timeout))
    clean = False
    try:
        _check_status(response)
        content_type = response.headers.get("content-type", "")
        try:
            raw = response.read(decode_content=True)
        except ReadTimeoutError:
            raise UpstreamError(TIMEOUT, "the provider stopped sending its answer") from None
        except (HTTPError, OSError):
            raise UpstreamError(PROTOCOL, "the provider's answer was cut short") from None
        if response.length_remaining not in (None, 0):
            raise UpstreamError(PROTOCOL, "the provider's answer was cut short")
        clean = True
        if "json" not in content_type:
            raise UpstreamError(MALFORMED, f"the provider answered {content_type or 'no type'}")
        try:
            data = json.loads(raw)
        except ValueError:
            raise UpstreamError(MALFORMED, "the provider's answer is not valid JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError(MALFORMED, "the provider's answer is not a JSON object")
        return data
    finally:
        if clean:
            response.release_conn()
        else:
            response.close()


@dataclass(frozen=True)
class Event:
    name: str | None
    data: str


class EventStream:
    """Server-sent events of one upstream response, yielded as they arrive."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._buffer = b""
        self._closed = False

    def __iter__(self) -> Iterator[Event]:
        name: str | None = None
        data: list[str] = []
        while True:
            line = self._next_line()
            if line is None:
                return
            if line == "":
                if data:
                    yield Event(name, "\n".join(data))
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

    def _next_line(self) -> str | None:
        while b"\n" not in self._buffer:
            chunk = self._read()
            if not chunk:
                if self._buffer:
                    line, self._buffer = self._buffer, b""
                    return line.decode("utf-8", "replace").rstrip("\r")
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def _read(self) -> bytes:
        if self._closed:
            return b""
        try:
            return self._response.read1(65536)
        except (ReadTimeoutError, TimeoutError):
            raise UpstreamError(TIMEOUT, "the provider stopped sending") from None
        except Exception:  # noqa: BLE001 - urllib3 raises several types for a torn connection
            raise UpstreamError(PROTOCOL, "the provider's stream broke off") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # A stream is closed mid-way (client gone, upstream error) as often as at its end:
            # never return a connection that may still carry unread events.
            self._response.close()
            self._response.release_conn()


def open_stream(
    url: str, *, headers: dict[str, str], body: dict, connect_timeout: float, read_timeout: float
) -> EventStream:
    """POST and return the event stream once the provider answered 200 text/event-stream."""
    response = _send(
        url,
        headers={**headers, "accept": "text/event-stream", "accept-encoding": "identity"},
        body=body,
        timeout=(connect_timeout, read_timeout),
    )
    _check_status(response)
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" not in content_type:
        _discard(response)
        raise UpstreamError(MALFORMED, f"the provider answered {content_type or 'no type'}")
    return EventStream(response)
