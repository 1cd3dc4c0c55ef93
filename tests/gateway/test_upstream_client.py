"""gateway/upstream.py's own HTTP client against scripted HTTP servers on 127.0.0.1.

Each server here is a few lines of sockets so a test can misbehave exactly: close an idle
keep-alive connection, cut a body short, break a chunk, hang. It records every connection and
every request it read, so a test can assert that a POST was sent once and on which connection.
"""

from __future__ import annotations

import gzip
import json
import select
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway import upstream
from gateway.upstream import UpstreamError

HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-test"}
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Seen:
    """One request the server read: the connection it came on (0, 1, ...) and its JSON body."""

    connection: int
    body: dict


# The reply script: given (request number, connection number), the bytes to send back and
# what to do with the connection afterwards ("keep", "close" or "reset").
Script = Callable[[int, int], tuple[bytes, str]]


@dataclass
class Server:
    script: Script
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Server:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def stop(self) -> None:
        self.release.set()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            number = self.connections
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":", 1)[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                )
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.seen.append(Seen(number, json.loads(body)))
                reply, then = self.script(len(self.seen) - 1, number)
                if reply:
                    sock.sendall(reply)
                if then == "hang":
                    self.release.wait(30)
                    return
                if then == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if then == "close":
                    return
        except OSError:
            return
        finally:
            sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(script: Script, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(script, tls).start())
        return servers[-1]

    upstream.close_idle()
    yield start
    upstream.close_idle()
    for server in servers:
        server.stop()


def _answer(
    body: bytes,
    *,
    status: str = "200 OK",
    content_type: str = "application/json",
    extra: str = "",
) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def _chunked(*parts: bytes, end: bool = True) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return body + (b"0\r\n\r\n" if end else b"")


OK = _answer(b'{"id": "a"}')
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
EVENTS = (b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n")


def _post(server: Server, number: int = 0, *, read_timeout: float = 5.0) -> dict:
    return upstream.post_json(
        server.url,
        headers=HEADERS,
        body={"n": number},
        connect_timeout=5.0,
        read_timeout=read_timeout,
    )


def _stream(server: Server, number: int = 0, *, read_timeout: float = 5.0) -> upstream.EventStream:
    return upstream.open_stream(
        server.url,
        headers=HEADERS,
        body={"n": number},
        connect_timeout=5.0,
        read_timeout=read_timeout,
    )


def _error(call: Callable[[], object]) -> tuple[str, str, int | None, float | None]:
    with pytest.raises(UpstreamError) as caught:
        call()
    error = caught.value
    return error.kind, error.message, error.status, error.retry_after_s


def _wait_until_idle_connection_sees_the_close(server: Server) -> None:
    """Block until the pooled socket has the server's FIN (or RST), so no race is left."""
    (idle,) = upstream._idle[("http", "127.0.0.1", server.port)]
    readable, _, _ = select.select([idle.sock], [], [], 10)
    assert readable == [idle.sock]


# --- Keep-alive pooling ---------------------------------------------------------------------


def test_reuses_one_connection_for_calls_in_a_row(serve):
    server = serve(lambda n, c: (OK, "keep"))

    answers = [_post(server, n) for n in range(3)]

    assert answers == [{"id": "a"}] * 3
    assert server.seen == [Seen(0, {"n": 0}), Seen(0, {"n": 1}), Seen(0, {"n": 2})]


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(_answer(b'{"id": "a"}', extra="connection: close\r\n"), id="connection-close"),
        pytest.param(
            b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"id": "a"}', id="no-length"
        ),
        pytest.param(
            b'HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"id": "a"}', id="1.0"
        ),
    ],
)
def test_does_not_pool_a_connection_the_server_closes_after_answering(serve, reply):
    server = serve(lambda n, c: (reply, "close"))

    answers = [_post(server, n) for n in range(2)]

    assert answers == [{"id": "a"}] * 2
    assert server.seen == [Seen(0, {"n": 0}), Seen(1, {"n": 1})]


def test_replaces_a_connection_the_server_closed_while_idle_without_sending_twice(serve):
    # Given a pooled connection the server closed after its first answer
    server = serve(lambda n, c: (OK, "close"))
    assert _post(server, 0) == {"id": "a"}
    _wait_until_idle_connection_sees_the_close(server)

    # When the next call is made
    answer = _post(server, 1)

    # Then it succeeds on a new connection, and each POST reached the server exactly once
    assert answer == {"id": "a"}
    assert server.seen == [Seen(0, {"n": 0}), Seen(1, {"n": 1})]


def test_a_send_failing_on_a_reused_connection_is_retried_once_on_a_new_one(serve, monkeypatch):
    # Given a pooled connection the server reset, and the idle check missing it (the server
    # closing just after the check: the race the send-side retry covers)
    server = serve(lambda n, c: (OK, "reset" if n == 0 else "keep"))
    assert _post(server, 0) == {"id": "a"}
    _wait_until_idle_connection_sees_the_close(server)
    monkeypatch.setattr(upstream._Connection, "dropped", lambda self, timeout: False)

    answer = _post(server, 1)

    assert answer == {"id": "a"}
    assert server.seen == [Seen(0, {"n": 0}), Seen(1, {"n": 1})]


def test_never_sends_a_post_twice_when_the_server_closes_after_reading_it(serve):
    # Given a pooled connection whose server reads the second request and closes unanswered
    server = serve(lambda n, c: (OK, "keep") if n == 0 else (b"", "close"))
    assert _post(server, 0) == {"id": "a"}

    error = _error(lambda: _post(server, 1))

    # Then the call fails (the route fails over) and the POST was not sent again
    assert error == ("connect", "could not reach the provider (ProtocolError)", None, None)
    assert server.seen == [Seen(0, {"n": 0}), Seen(0, {"n": 1})]
    assert server.connections == 1


def test_pools_a_stream_read_to_its_end(serve):
    server = serve(lambda n, c: (SSE_HEAD + _chunked(*EVENTS), "keep"))

    stream = _stream(server, 0)
    events = [event.data for event in stream]
    stream.close()
    stream = _stream(server, 1)
    stream.close()

    assert events == ['{"n": 1}', '{"n": 2}', "[DONE]"]
    assert server.seen == [Seen(0, {"n": 0}), Seen(0, {"n": 1})]


def test_pools_a_stream_whose_reader_stopped_at_its_last_event(serve):
    # The relay stops at [DONE], before the chunked terminator is parsed.
    server = serve(lambda n, c: (SSE_HEAD + _chunked(*EVENTS), "keep") if n == 0 else (OK, "keep"))

    stream = _stream(server, 0)
    for event in stream:
        if event.data == "[DONE]":
            break
    stream.close()
    answer = _post(server, 1)

    assert answer == {"id": "a"}
    assert server.seen == [Seen(0, {"n": 0}), Seen(0, {"n": 1})]


def test_does_not_pool_a_stream_closed_midway(serve):
    # Given a stream whose server has more to send (it hangs after two events)
    def script(n: int, c: int) -> tuple[bytes, str]:
        if n == 0:
            return SSE_HEAD + _chunked(*EVENTS[:2], end=False), "hang"
        return OK, "keep"

    server = serve(script)
    stream = _stream(server, 0)
    first = next(iter(stream))

    # When the client goes away after the first event
    stream.close()
    answer = _post(server, 1)

    # Then the next call does not get the half-read connection
    assert first.data == '{"n": 1}'
    assert answer == {"id": "a"}
    assert server.seen == [Seen(0, {"n": 0}), Seen(1, {"n": 1})]


# --- Answers and failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked"
            b"\r\n\r\n" + _chunked(b'{"id"', b': "a"}'),
            {"id": "a"},
            id="chunked",
        ),
        pytest.param(
            _answer(gzip.compress(b'{"id": "a"}'), extra="content-encoding: gzip\r\n"),
            {"id": "a"},
            id="gzip",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
            {"id": "a"},
            id="interim-100",
        ),
    ],
)
def test_reads_every_body_framing(serve, reply, expected):
    server = serve(lambda n, c: (reply, "keep"))

    assert _post(server) == expected
    assert _post(server, 1) == expected
    assert server.connections == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            _answer(b'{"error": {"message": "bad key sk-abcdefghijkl"}}', status="401 No"),
            ("status", "bad key sk-***", 401, None),
            id="json-error",
        ),
        pytest.param(
            _answer(b"<html>down</html>", status="503 Unavailable", content_type="text/html"),
            ("status", "HTTP 503", 503, None),
            id="html-error",
        ),
        pytest.param(
            _answer(b'{"error": "slow down"}', status="429 Busy", extra="retry-after: 2\r\n"),
            ("status", "slow down", 429, 2.0),
            id="retry-after",
        ),
        pytest.param(
            _answer(b"{}", status="529 Busy", extra="retry-after: 2\r\nretry-after-ms: 1500\r\n"),
            ("status", "HTTP 529", 529, 1.5),
            id="retry-after-ms",
        ),
        pytest.param(
            _answer(b'{"error": {"type": "overloaded"}}', status="500 X", extra="x: y\r\n"),
            ("status", "overloaded", 500, None),
            id="error-type",
        ),
        pytest.param(
            _answer(b"<html/>", content_type="text/html"),
            ("malformed", "the provider answered text/html", None, None),
            id="wrong-type",
        ),
        pytest.param(
            _answer(b'{"id": '),
            ("malformed", "the provider's answer is not valid JSON", None, None),
            id="bad-json",
        ),
        pytest.param(
            _answer(b"[1]"),
            ("malformed", "the provider's answer is not a JSON object", None, None),
            id="not-an-object",
        ),
    ],
)
def test_a_failure_with_a_whole_answer_keeps_the_connection(serve, reply, expected):
    server = serve(lambda n, c: (reply, "keep") if n == 0 else (OK, "keep"))

    error = _error(lambda: _post(server))

    assert error == expected
    assert _post(server, 1) == {"id": "a"}
    assert server.connections == 1


CUT_SHORT = ("protocol", "the provider's answer was cut short", None, None)
ABORTED = ("connect", "could not reach the provider (ProtocolError)", None, None)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{",
            CUT_SHORT,
            id="short-content-length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked"
            b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            CUT_SHORT,
            id="bad-chunk-size",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked"
            b"\r\n\r\n" + _chunked(b"{}", end=False),
            CUT_SHORT,
            id="no-last-chunk",
        ),
        pytest.param(
            _answer(b"\x1f\x8bnot gzip", extra="content-encoding: gzip\r\n"),
            CUT_SHORT,
            id="bad-gzip",
        ),
        pytest.param(b"", ABORTED, id="closed-before-headers"),
        pytest.param(b"SPDY/3 200 OK\r\n\r\n", ABORTED, id="bad-status-line"),
        pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", ABORTED, id="bad-status-code"),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-ty", ABORTED, id="cut-in-headers"),
    ],
)
def test_a_broken_answer_fails_and_closes_the_connection(serve, reply, expected):
    server = serve(lambda n, c: (reply, "close") if n == 0 else (OK, "keep"))

    error = _error(lambda: _post(server))

    assert error == expected
    assert _post(server, 1) == {"id": "a"}
    assert server.seen == [Seen(0, {"n": 0}), Seen(1, {"n": 1})]


def test_reads_at_most_16_kib_of_an_error_body_and_closes_its_connection(serve):
    # Given an error whose JSON is far longer than what is read of it
    body = json.dumps({"error": {"message": "x" * 200_000}}).encode()
    server = serve(lambda n, c: (_answer(body, status="500 X"), "keep") if n == 0 else (OK, "keep"))

    error = _error(lambda: _post(server))

    # Then the message is the status alone (the truncated JSON does not parse), and the
    # unread rest does not poison the next call
    assert error == ("status", "HTTP 500", 500, None)
    assert _post(server, 1) == {"id": "a"}
    assert server.seen == [Seen(0, {"n": 0}), Seen(1, {"n": 1})]


def test_read_timeout_bounds_the_wait_for_headers(serve):
    server = serve(lambda n, c: (b"", "hang"))

    error = _error(lambda: _post(server, read_timeout=0.2))

    assert error == ("timeout", "the provider did not answer in time", None, None)


def test_read_timeout_bounds_the_wait_within_a_body(serve):
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{"
    server = serve(lambda n, c: (reply, "hang"))

    error = _error(lambda: _post(server, read_timeout=0.2))

    assert error == ("timeout", "the provider stopped sending its answer", None, None)


def test_refused_connection_is_a_connect_error():
    port = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{port.getsockname()[1]}/v1/chat/completions"
    port.close()

    error = _error(
        lambda: upstream.post_json(url, headers={}, body={}, connect_timeout=5, read_timeout=5)
    )

    # urllib3 called a refused connection a connect timeout; the message is kept.
    assert error == ("connect", "connection to the provider timed out", None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\r\nx-injected: 1", "request to the provider failed (ValueError)"),
        ("キー", "request to the provider failed (UnicodeEncodeError)"),
    ],
)
def test_refuses_a_header_http_cannot_carry_before_sending(serve, value, message):
    server = serve(lambda n, c: (OK, "keep"))

    with pytest.raises(UpstreamError) as caught:
        upstream.post_json(
            server.url, headers={"x-key": value}, body={}, connect_timeout=5, read_timeout=5
        )

    assert (caught.value.kind, caught.value.message) == ("protocol", message)
    assert server.seen == []


# --- Streams ----------------------------------------------------------------------------------


def _events(stream: upstream.EventStream) -> list[str]:
    seen: list[str] = []
    try:
        for event in stream:
            seen.append(event.data)
    except UpstreamError as error:
        seen.append(f"{error.kind}: {error.message}")
    finally:
        stream.close()
    return seen


@pytest.mark.parametrize(
    ("body", "then", "expected"),
    [
        pytest.param(
            _chunked(*EVENTS[:2], end=False),
            "close",
            ['{"n": 1}', '{"n": 2}', "protocol: the provider's stream broke off"],
            id="truncated",
        ),
        pytest.param(
            _chunked(EVENTS[0], end=False) + b"q!\r\n",
            "close",
            ['{"n": 1}', "protocol: the provider's stream broke off"],
            id="bad-chunk",
        ),
        pytest.param(
            _chunked(*EVENTS[:2], end=False),
            "hang",
            ['{"n": 1}', '{"n": 2}', "timeout: the provider stopped sending"],
            id="hang",
        ),
    ],
)
def test_a_stream_breaking_off_is_an_upstream_error_after_its_events(serve, body, then, expected):
    server = serve(lambda n, c: (SSE_HEAD + body, then))

    assert _events(_stream(server, read_timeout=0.3)) == expected


def test_reads_a_stream_framed_by_content_length(serve):
    reply = _answer(
        b"event: x\r\ndata: a\r\ndata: b\r\n\r\n: note\n\n", content_type="text/event-stream"
    )
    server = serve(lambda n, c: (reply, "keep"))

    stream = _stream(server)
    events = list(stream)
    stream.close()

    assert events == [upstream.Event("x", "a\nb")]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            _answer(b'{"error": {"message": "down"}}', status="500 X"),
            ("status", "down", 500, None),
            id="status",
        ),
        pytest.param(
            _answer(b"{}"),
            ("malformed", "the provider answered application/json", None, None),
            id="not-a-stream",
        ),
    ],
)
def test_a_stream_refused_before_its_events_is_an_upstream_error(serve, reply, expected):
    server = serve(lambda n, c: (reply, "keep"))

    assert _error(lambda: _stream(server)) == expected


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """A self-signed certificate for the host name localhost only (not 127.0.0.1).

    Made with the openssl command, which scripts/test installs when missing: no skip.
    """
    pem = tmp_path / "localhost.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(pem), "-out", str(pem),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return pem


@pytest.fixture
def tls_server(serve, certificate: Path) -> Server:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate)
    return serve(lambda n, c: (OK, "keep"), tls=context)


def _post_https(host: str, server: Server) -> dict:
    return upstream.post_json(
        f"https://{host}:{server.port}/v1/chat/completions",
        headers=HEADERS,
        body={"n": 0},
        connect_timeout=5,
        read_timeout=5,
    )


@pytest.fixture
def trust(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    def use(bundle: Path) -> None:
        # The system CA bundle is OpenSSL's default, which SSL_CERT_FILE replaces.
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        monkeypatch.setattr(upstream, "_tls_context", None)

    monkeypatch.setattr(upstream, "_tls_context", None)
    return use


def test_https_provider_with_a_trusted_certificate_is_reached_and_pooled(
    tls_server, certificate, trust
):
    trust(certificate)

    answers = [_post_https("localhost", tls_server) for _ in range(2)]

    assert answers == [{"id": "a"}] * 2
    assert tls_server.seen == [Seen(0, {"n": 0}), Seen(0, {"n": 0})]


def test_https_provider_with_an_untrusted_certificate_is_refused_before_sending(tls_server, trust):
    error = _error(lambda: _post_https("localhost", tls_server))

    assert error == ("protocol", "request to the provider failed (SSLError)", None, None)
    assert tls_server.seen == []


def test_https_provider_whose_certificate_names_another_host_is_refused(
    tls_server, certificate, trust
):
    trust(certificate)

    error = _error(lambda: _post_https("127.0.0.1", tls_server))

    assert error == ("protocol", "request to the provider failed (SSLError)", None, None)
    assert tls_server.seen == []


# --- gevent ------------------------------------------------------------------------------------

_GEVENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json
    import socket

    import select

    import gevent
    import gevent.event
    from gevent.pool import Pool

    from gateway import upstream

    accepted = []
    received = []

    closed = gevent.event.Event()

    def serve_connection(sock, close_after):
        buffer = b""
        with sock:
            while True:
                while b"\\r\\n\\r\\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\\r\\n\\r\\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                received.append(json.loads(buffer[:length]))
                buffer = buffer[length:]
                gevent.sleep(0.01)  # every call waits: the pool must serve many at once
                sock.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\n"
                             b"content-length: 2\\r\\n\\r\\n{}")
                if close_after:
                    sock.close()
                    closed.set()
                    return

    def accept(listener, close_after):
        while True:
            sock, _ = listener.accept()
            accepted.append(sock)
            gevent.spawn(serve_connection, sock, close_after)

    def run(close_after):
        listener = socket.create_server(("127.0.0.1", 0))
        gevent.spawn(accept, listener, close_after)
        url = "http://127.0.0.1:%d/v1/x" % listener.getsockname()[1]
        call = lambda n: upstream.post_json(
            url, headers={}, body={"n": n}, connect_timeout=5, read_timeout=5
        )
        return call, listener.getsockname()[1]

    # 200 calls, 50 at a time, on one host: at most 50 connections, each reused.
    call, _ = run(close_after=False)
    answers = Pool(50).map(call, range(200))
    concurrent = (len(accepted), sorted(r["n"] for r in received) == list(range(200)))
    del accepted[:], received[:]

    # A connection the server closed while idle is replaced; no POST is sent twice.
    call, port = run(close_after=True)
    call(0)
    closed.wait(10)
    (idle,) = upstream._idle[("http", "127.0.0.1", port)]
    select.select([idle.sock], [], [], 10)  # the server's FIN has arrived
    call(1)
    stale = (len(accepted), [r["n"] for r in received])
    print(json.dumps({"answers": answers.count({}), "concurrent": concurrent, "stale": stale}))
    """
)


def test_pools_connections_under_gevent_monkeypatching():
    result = subprocess.run(
        [sys.executable, "-c", _GEVENT_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["answers"] == 200
    connections, every_call_once = outcome["concurrent"]
    assert every_call_once
    assert 1 <= connections <= 50
    assert outcome["stale"] == [2, [0, 1]]


# --- Event parsing -------------------------------------------------------------------------------


class _Pieces:
    """A response that hands its body out in the given pieces."""

    failed = False

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = iter(pieces)

    def read1(self) -> bytes:
        return next(self._pieces, b"")

    def settle(self) -> None:
        pass

    def release(self) -> None:
        pass


SSE_TEXT = (
    'event: message_start\r\ndata: {"t": "héllo – 日本"}\r\n\r\n'
    ": keep-alive\n\n"
    "data: one\ndata:two\n\n"
    "data: tail without a newline"
).encode()


def test_events_are_the_same_wherever_the_reads_split_the_bytes():
    # Cuts fall inside CRLFs and inside multi-byte UTF-8 characters too.
    expected = [
        upstream.Event("message_start", '{"t": "héllo – 日本"}'),
        upstream.Event(None, "one\ntwo"),
    ]  # an event the stream ended in the middle of is dropped

    for cut in range(1, len(SSE_TEXT)):
        stream = upstream.EventStream(_Pieces([SSE_TEXT[:cut], SSE_TEXT[cut:]]))
        assert list(stream) == expected, cut


class _Socket:
    """A socket whose recv hands out the given pieces, then the end of the stream."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = iter(pieces)

    def recv(self, size: int) -> bytes:
        return next(self._pieces, b"")


CHUNKED_ANSWER = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    + '6;ext=1\r\n{"id":\r\n6\r\n "a", \r\nB\r\n"b": "日"}\r\n0\r\nx-trailer: 1\r\n\r\n'.encode()
)


def test_a_chunked_answer_reads_the_same_wherever_the_reads_split_it():
    for cut in range(1, len(CHUNKED_ANSWER)):
        conn = upstream._Connection(
            _Socket([CHUNKED_ANSWER[:cut], CHUNKED_ANSWER[cut:]]), ("http", "h", 80), 5.0
        )
        response = upstream._Response(conn)

        body = response.read()

        assert (response.status, json.loads(body)) == (200, {"id": "a", "b": "日"}), cut
        assert (response.done, conn.buffer) == (True, b""), cut
