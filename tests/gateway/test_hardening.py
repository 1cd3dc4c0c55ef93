"""BAR 15 and issue 5: size limits, field limits, unknown fields, hostile encodings on /v1.

Every refusal here is a JSON 4xx in the envelope of its endpoint, and leaves nothing behind:
no reservation, no ledger entry, no upstream request.
"""

from __future__ import annotations

import json
import socket

import pytest
from django.test import Client

from apikeys.models import ApiKey
from gateway import validation
from gateway.models import UsageRecord
from wits import ledger
from wits.models import LedgerEntry, Reservation

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]
LIMIT = 2048
CHUNKED = "Chunked request bodies are not accepted; send a Content-Length."


@pytest.fixture
def client(account) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {account.key}")


@pytest.fixture
def full_client(account, make_api_key) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {make_api_key(account.user, 'full')}")


def _post(client: Client, path: str, body: object, **extra: str):  # noqa: ANN202
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.generic("POST", path, raw, content_type="application/json", **extra)


def _error(response, path: str) -> dict:  # noqa: ANN001
    """The error object, after checking the envelope the path speaks."""
    assert response["Content-Type"] == "application/json"
    data = response.json()
    if path == "/v1/messages":
        assert data["type"] == "error"
        assert set(data) == {"type", "error"}
    else:
        assert set(data) == {"error"}
    return data["error"]


def _untouched(user, fake) -> None:  # noqa: ANN001
    assert ledger.balance(user_id=user.id) == ledger.Balance(1_000_000, 0, 0)
    assert Reservation.objects.count() == 0
    assert LedgerEntry.objects.exclude(kind="grant").count() == 0
    assert UsageRecord.objects.count() == 0
    assert fake.requests == []


def _rate_windows(redis_client) -> list[bytes]:  # noqa: ANN001
    return redis_client.keys("rl:*")


def _padded(body: dict, size: int) -> bytes:
    """`body` as JSON of exactly `size` bytes (padding inside the first message's text)."""
    raw = json.dumps(body).encode()
    pad = size - len(raw)
    assert pad >= 0
    text = json.dumps(body).replace('"hi"', '"hi' + " " * pad + '"', 1)
    out = text.encode()
    assert len(out) == size
    return out


# --- Body size: 413 before anything reads the body ---------------------------------------------

BODY_ROUTES = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/keys"),
    ("PUT", "/v1/webhooks"),
    ("GET", "/v1/models"),
    ("POST", "/v1/nope"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_body_over_the_limit_is_json_413_before_auth_limits_or_ledger(
    settings, client, account, catalogue, fake, redis_client, method, path
):
    settings.API_MAX_BODY_BYTES = LIMIT

    response = client.generic(
        method, path, b"{" + b" " * LIMIT + b"}", content_type="application/json"
    )

    assert response.status_code == 413
    error = _error(response, path)
    assert error["code"] == "request_too_large"
    assert str(LIMIT) in error["message"]
    _untouched(account.user, fake)
    assert _rate_windows(redis_client) == []
    assert "x-ratelimit-limit-requests" not in response


def test_413_comes_before_authentication(settings, account, catalogue, fake):
    settings.API_MAX_BODY_BYTES = LIMIT
    anonymous = Client()

    response = _post(anonymous, "/v1/messages", b"x" * (LIMIT + 1))

    assert response.status_code == 413
    assert _error(response, "/v1/messages")["type"] == "request_too_large"


def test_body_of_exactly_the_limit_is_served(settings, client, account, catalogue, fake):
    settings.API_MAX_BODY_BYTES = LIMIT
    body = _padded({"model": catalogue.chat_openai, "messages": HI}, LIMIT)

    response = _post(client, "/v1/chat/completions", body)

    assert response.status_code == 200
    assert len(fake.requests) == 1


def test_a_content_length_over_the_limit_is_413_whatever_was_sent(
    settings, client, account, catalogue, fake
):
    settings.API_MAX_BODY_BYTES = LIMIT

    response = client.generic(
        "POST",
        "/v1/chat/completions",
        b"{}",
        content_type="application/json",
        CONTENT_LENGTH=str(10**12),
    )

    assert response.status_code == 413
    _untouched(account.user, fake)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("12abc", "Content-Length is not a number."),
        ("-5", "The request body is empty; send a JSON object."),
        ("", "The request body is empty; send a JSON object."),
        ("10", "The request body is not valid JSON."),
    ],
)
def test_a_lying_content_length_is_a_json_400(client, account, catalogue, fake, declared, message):
    body = json.dumps({"model": catalogue.chat_openai, "messages": HI}).encode()

    response = client.generic(
        "POST",
        "/v1/chat/completions",
        body,
        content_type="application/json",
        CONTENT_LENGTH=declared,
    )

    assert response.status_code == 400
    assert _error(response, "/v1/chat/completions")["message"] == message
    _untouched(account.user, fake)


def _raw_exchange(live_server, request: bytes, *, half_close: bool = False) -> bytes:  # noqa: ANN001
    """Send raw bytes to the live server; return everything it answers until it closes."""
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(request)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything: what we want
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def _status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)


def test_a_chunked_body_is_refused_with_a_json_400(live_server, account, catalogue, fake):
    body = json.dumps({"model": catalogue.chat_openai, "messages": HI}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + account.key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    )

    status, data = _status_and_json(_raw_exchange(live_server, request))

    assert status == 400
    assert data["error"]["message"] == CHUNKED
    _untouched(account.user, fake)


def test_a_huge_chunked_body_is_refused_unread(client, account, catalogue, fake):
    response = client.generic(
        "POST",
        "/v1/chat/completions",
        b"[" * 5_000_000,
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="gzip, chunked",
    )

    assert response.status_code == 400
    assert _error(response, "/v1/chat/completions")["message"] == CHUNKED
    _untouched(account.user, fake)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # The server reads to the end of what arrived: a complete body is served as sent...
        (b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}', 200),
        # ...and a cut one is a JSON 400, never a 500 or a hang.
        (b'{"model": "gpt-fake", "messages": [{"role": "user", "con', 400),
    ],
)
def test_a_body_shorter_than_its_content_length_is_read_as_it_arrived(
    live_server, account, catalogue, fake, body, status
):
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + account.key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n"
        % (len(body) + 50)
        + b"Connection: close\r\n\r\n"
        + body
    )

    answer, data = _status_and_json(_raw_exchange(live_server, request, half_close=True))

    assert answer == status
    if status == 400:
        assert data["error"]["message"] == "The request body is not valid JSON."
        _untouched(account.user, fake)
    else:
        assert data["object"] == "chat.completion"


# --- Field limits: 400 naming the field ----------------------------------------------------


def _limits(settings) -> None:  # noqa: ANN001
    settings.API_MAX_MESSAGES = 3
    settings.API_MAX_TEXT_CHARS = 10
    settings.API_MAX_EMBEDDING_INPUTS = 2


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": HI * 4}, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x" * 11}]},
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            {"messages": [*HI, {"role": "user", "content": [{"type": "text", "text": "y" * 11}]}]},
            "messages[1].content[0].text",
        ),
        ("/v1/messages", {"max_tokens": 5, "messages": HI * 4}, "messages"),
        ("/v1/messages", {"max_tokens": 5, "system": "s" * 11, "messages": HI}, "system"),
        (
            "/v1/messages",
            {"max_tokens": 5, "messages": [{"role": "user", "content": "x" * 11}]},
            "messages[0].content",
        ),
        ("/v1/embeddings", {"input": ["a", "b", "c"]}, "input"),
        ("/v1/embeddings", {"input": "z" * 11}, "input[0]"),
    ],
)
def test_over_a_configured_limit_is_400_naming_the_field(
    settings, client, account, catalogue, fake, path, body, param
):
    _limits(settings)

    response = _post(client, path, body)

    assert response.status_code == 400
    error = _error(response, path)
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(f"{param}: ")
    if path != "/v1/messages":
        assert error["param"] == param
    _untouched(account.user, fake)


def test_at_every_configured_limit_the_request_is_served(
    settings, client, account, catalogue, fake
):
    _limits(settings)

    chat = _post(
        client,
        "/v1/chat/completions",
        {"model": catalogue.chat_openai, "messages": [{"role": "user", "content": "x" * 10}] * 3},
    )
    embed = _post(client, "/v1/embeddings", {"model": catalogue.embed, "input": ["y" * 10] * 2})

    assert (chat.status_code, embed.status_code) == (200, 200)


ABSURD = [1001, 10**6, 2**31, 2**63, 10**30, 10**300]


@pytest.mark.parametrize("value", ABSURD)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/chat/completions", "max_tokens"),
        ("/v1/chat/completions", "max_completion_tokens"),
        ("/v1/messages", "max_tokens"),
    ],
)
def test_max_tokens_over_the_model_maximum_is_400(
    client, account, catalogue, fake, path, field, value
):
    body = {"model": catalogue.chat_openai, "messages": HI, field: value}
    if path == "/v1/messages":
        body.setdefault("max_tokens", 5)

    response = _post(client, path, body)

    assert response.status_code == 400
    error = _error(response, path)
    assert error["code"] == "invalid_request"
    assert error["message"] == (
        f"{field}: {value} is too large; {catalogue.chat_openai} supports at most 1000 output "
        "tokens."
    )
    _untouched(account.user, fake)


NOT_POSITIVE_INTS = [0, -1, 1.5, True, "5", [], {}, 1e300]


@pytest.mark.parametrize(
    ("path", "value"),
    [("/v1/chat/completions", v) for v in NOT_POSITIVE_INTS]
    + [("/v1/messages", v) for v in [*NOT_POSITIVE_INTS, None]],
)
def test_max_tokens_that_is_not_a_positive_integer_is_400(
    client, account, catalogue, fake, path, value
):
    body = {"model": catalogue.chat_openai, "messages": HI, "max_tokens": value}

    response = _post(client, path, body)

    assert response.status_code == 400
    assert _error(response, path)["message"].startswith("max_tokens: ")
    _untouched(account.user, fake)


# --- Unknown and gateway-internal fields: refused, never forwarded ----------------------------


@pytest.mark.parametrize(
    ("path", "base"),
    [
        ("/v1/chat/completions", {"messages": HI}),
        ("/v1/messages", {"messages": HI, "max_tokens": 5}),
        ("/v1/embeddings", {"input": "hi"}),
    ],
)
@pytest.mark.parametrize(
    "field", ["x_clawwits", "foo", "functions", "api_key", "provider", "__proto__", "Model"]
)
def test_unknown_and_internal_fields_are_refused_and_never_sent_upstream(
    client, account, catalogue, fake, path, base, field
):
    response = _post(client, path, {**base, field: {"provider": "evil"}})

    assert response.status_code == 400
    error = _error(response, path)
    assert error["message"] == f"Unrecognized request argument supplied: {field}"
    _untouched(account.user, fake)


def test_only_fields_the_format_defines_reach_the_upstream(client, account, catalogue, fake):
    # Given every optional OpenAI field the gateway passes through, with plausible values
    body = {
        "model": catalogue.chat_openai,
        "messages": HI,
        "max_tokens": 5,
        "temperature": 0.5,
        "top_p": 1,
        "stop": ["zz"],
        "user": "u-1",
        "seed": 3,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "logit_bias": {},
        "metadata": {"a": "b"},
    }

    # When it goes through both endpoints to both kinds of upstream
    responses = [
        _post(client, "/v1/chat/completions", body),
        _post(client, "/v1/chat/completions", {**body, "model": catalogue.chat_anthropic}),
        _post(
            client,
            "/v1/messages",
            {"model": catalogue.chat_anthropic, "messages": HI, "max_tokens": 5, "top_k": 3},
        ),
        _post(
            client,
            "/v1/messages",
            {"model": catalogue.chat_openai, "messages": HI, "max_tokens": 5},
        ),
    ]

    # Then each upstream saw only its own format's fields, and nothing of the gateway's
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    anthropic_fields = validation._ANTHROPIC_FIELDS
    openai_fields = validation._OPENAI_CHAT_FIELDS
    for request in fake.requests:
        allowed = anthropic_fields if request.path == "/v1/messages" else openai_fields
        assert set(request.body) <= allowed, request.body
        assert "x_clawwits" not in json.dumps(request.body)


# --- Hostile encodings and shapes: 400, never 500 (fixed in gateway/validation.py) -------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            {"messages": [{"role": ["user"], "content": "x"}]},
            "messages[0].role",
        ),
        ("/v1/chat/completions", {"messages": [{"role": {}, "content": "x"}]}, "messages[0].role"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": []}]}]},
            "messages[0].content[0].type",
        ),
        (
            "/v1/chat/completions",
            {"messages": HI, "response_format": {"type": {"a": 1}}},
            "response_format",
        ),
        ("/v1/chat/completions", {"messages": HI, "temperature": 10**400}, "temperature"),
        ("/v1/chat/completions", {"messages": HI, "top_p": -(10**309)}, "top_p"),
        ("/v1/chat/completions", {"messages": HI, "n": True}, "n"),
        ("/v1/chat/completions", {"messages": HI, "n": 1.0}, "n"),
        (
            "/v1/chat/completions",
            {"messages": HI, "tool_choice": {"type": "function"}},
            "tool_choice",
        ),
        (
            "/v1/messages",
            {"max_tokens": 5, "messages": [{"role": [], "content": "x"}]},
            "messages[0].role",
        ),
        (
            "/v1/messages",
            {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": {}}]}]},
            "messages[0].content[0].type",
        ),
        (
            "/v1/messages",
            {"max_tokens": 5, "messages": HI, "tool_choice": {"type": ["auto"]}},
            "tool_choice",
        ),
        ("/v1/messages", {"max_tokens": 5, "messages": HI, "temperature": 10**400}, "temperature"),
        ("/v1/embeddings", {"input": "x", "encoding_format": ["float"]}, "encoding_format"),
        ("/v1/embeddings", {"input": "x", "encoding_format": {}}, "encoding_format"),
    ],
)
def test_wrongly_typed_values_are_400_naming_the_field(
    client, account, catalogue, fake, path, body, param
):
    response = _post(client, path, body)

    assert response.status_code == 400
    assert _error(response, path)["message"].startswith(f"{param}: ")
    _untouched(account.user, fake)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"messages": [{"role": "user", "content": "a\\ud800"}]}', "unpaired UTF-16 surrogate"),
        (b'{"messages": [{"role": "user", "content": "\\udfff"}]}', "unpaired UTF-16 surrogate"),
        (b'{"messages": [{"role": "user", "content": "x"}], "user": "\\ud83d"}', "surrogate"),
        (b'{"\\udc80": 1, "messages": []}', "unpaired UTF-16 surrogate"),
        (b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}', "not valid UTF-8"),
        (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', "not valid UTF-8"),
        ('{"messages": []}'.encode("utf-16"), "not valid UTF-8"),
        (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON"),
        (b'{"messages": NaN}', "not valid JSON"),
        (b'{"temperature": Infinity, "messages": []}', "not valid JSON"),
        (b'{"max_tokens": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"])
def test_bodies_that_are_not_clean_json_text_are_400(
    client, account, catalogue, fake, path, raw, message
):
    response = _post(client, path, raw)

    assert response.status_code == 400
    assert message in _error(response, path)["message"]
    _untouched(account.user, fake)


def test_paired_surrogate_escapes_and_a_bom_are_accepted(client, account, catalogue, fake):
    # An emoji from a client that escapes non-ASCII (Python's json.dumps default), after a BOM.
    raw = (
        b'\xef\xbb\xbf{"model": "gpt-fake", '
        b'"messages": [{"role": "user", "content": "\\ud83d\\ude00 hi"}]}'
    )

    response = _post(client, "/v1/chat/completions", raw)

    assert response.status_code == 200
    assert fake.requests[0].body["messages"][0]["content"] == "\U0001f600 hi"


@pytest.mark.parametrize("text", ["a\x00b", "\x1b[31mred", "\u202egnp.exe", "\ufeff", "\U0010ffff"])
def test_control_and_bidi_characters_in_text_go_through_intact(
    client, account, catalogue, fake, text
):
    response = _post(
        client,
        "/v1/chat/completions",
        {"model": catalogue.chat_openai, "messages": [{"role": "user", "content": text}]},
    )

    assert response.status_code == 200
    assert fake.requests[0].body["messages"][0]["content"] == text


# --- 500s once found outside the gateway, now fixed ----------------------------------------------


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png"])
def test_an_accept_header_json_cannot_satisfy_still_gets_json(client, account, accept):
    response = client.get("/v1/models", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_a_stream_asked_for_with_accept_event_stream_is_served(client, account, catalogue, fake):
    response = _post(
        client,
        "/v1/chat/completions",
        {
            "model": catalogue.chat_openai,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        HTTP_ACCEPT="text/event-stream",
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    body = b"".join(response.streaming_content)
    assert body.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/keys"), ("PUT", "/v1/webhooks")])
def test_deeply_nested_json_to_a_drf_parsed_route_is_400(full_client, method, path):
    response = full_client.generic(
        method, path, b"[" * 5000 + b"]" * 5000, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The request body is not valid JSON."


def test_a_key_name_with_a_lone_surrogate_is_400(full_client):
    keys_before = ApiKey.objects.count()

    response = _post(full_client, "/v1/keys", b'{"name": "a\\udc80"}')

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert ApiKey.objects.count() == keys_before


@pytest.mark.parametrize("event_id", ["%00", "evt%00x"])
def test_a_webhook_event_id_with_nul_is_404(full_client, event_id):
    response = full_client.get(f"/v1/webhooks/events/{event_id}")

    assert response.status_code == 404


def test_a_disallowed_host_on_v1_gets_a_json_400(client, account):
    response = client.get("/v1/models", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "invalid_request"
    assert b"evil.example" not in response.content


def test_a_disallowed_host_on_a_page_gets_the_html_400_page(client):
    response = client.get("/login", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert b"evil.example" not in response.content
