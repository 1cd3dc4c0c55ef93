"""A Django app that only relays streams, for `benchmarks.serving`: the same work served by
gunicorn + gevent (a synchronous view, `wsgi`) and by uvicorn (an asynchronous view that streams
an async iterator, `asgi`). No billing, no database: what differs is the serving model.

Both views POST the client's body to `RELAY_UPSTREAM` (the fake upstream) and relay its SSE
events one by one, parsing each event's JSON and writing it again, as the gateway's converter
does. The synchronous view reads the upstream with the gateway's own client
(`gateway.upstream.open_stream`); the asynchronous one with a minimal asyncio HTTP/1.1 reader.

The module is its own settings module (`DJANGO_SETTINGS_MODULE=benchmarks.relayapp`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path

from benchmarks import _streams

SECRET_KEY = "bench-relay-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
MIDDLEWARE: list[str] = []
INSTALLED_APPS: list[str] = []
DATABASES: dict = {}
USE_TZ = True

UPSTREAM = os.environ.get("RELAY_UPSTREAM", "http://127.0.0.1:1")
UPSTREAM_KEY = os.environ.get("RELAY_UPSTREAM_KEY", "")
PATH = "/v1/chat/completions"


def _sse(data: str) -> bytes:
    from gateway import streams

    return streams.OPENAI_DONE if data == "[DONE]" else streams.openai_sse(json.loads(data))


def sync_relay(request: HttpRequest) -> HttpResponse:
    from gateway import upstream

    events = upstream.open_stream(
        UPSTREAM + PATH,
        headers={"authorization": f"Bearer {UPSTREAM_KEY}", "content-type": "application/json"},
        body=json.loads(request.body),
        connect_timeout=5,
        read_timeout=60,
    )

    def body() -> Iterator[bytes]:
        try:
            for event in events:
                yield _sse(event.data)
                if event.data == "[DONE]":
                    return
        finally:
            events.close()

    return StreamingHttpResponse(body(), content_type="text/event-stream")


async def _events(reader: asyncio.StreamReader) -> AsyncIterator[str]:
    """The `data` of each SSE event of a chunked (or read-to-close) HTTP/1.1 body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        raise RuntimeError(f"upstream answered {status}")
    dechunk = _streams._Dechunker() if b"transfer-encoding: chunked" in head.lower() else None
    pending = b""
    while dechunk is None or not dechunk.finished:
        piece = await reader.read(65536)
        if not piece:
            return
        pending += dechunk.feed(piece) if dechunk else piece
        *events, pending = pending.split(b"\n\n")
        for event in events:
            data = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
            if data:
                yield b"\n".join(data).decode()


async def async_relay(request: HttpRequest) -> HttpResponse:
    target = urlsplit(UPSTREAM)
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}"}
    upstream = _streams.Target(
        target.hostname, target.port, PATH, headers, request.body, _streams.OPENAI
    )
    writer.write(upstream.request_bytes())
    events = _events(reader)

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for data in events:
                yield _sse(data)
                if data == "[DONE]":
                    return
        finally:
            writer.close()

    return StreamingHttpResponse(stream(), content_type="text/event-stream")


def ready(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path(PATH.lstrip("/"), async_relay if os.environ.get("RELAY_ASYNC") == "1" else sync_relay),
    path("readyz", ready),
]


def __getattr__(name: str) -> object:
    # The servers ask for `wsgi` or `asgi`; each sets Django up on first use.
    if name == "wsgi":
        from django.core.wsgi import get_wsgi_application

        return get_wsgi_application()
    if name == "asgi":
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    raise AttributeError(name)
