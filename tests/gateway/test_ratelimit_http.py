"""Rate limits as clients see them over HTTP (BAR 6-8 at the /v1 surface).

Per account across all its keys and sessions; a key's own lower limit; the x-ratelimit-*
headers on every response after authentication, streams included (before the first byte); the
429 in both envelopes; a refused request leaves nothing behind; Redis down is a JSON 503; tier
edits bind on the next request; enterprise accounts carry a custom limit.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import requests
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Tier, User
from gateway.models import UsageRecord
from wits import ledger
from wits.models import LedgerEntry, Reservation

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]
LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")


def _client(key: str, *, header: str = "bearer") -> Client:
    if header == "x-api-key":
        return Client(HTTP_X_API_KEY=key)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _limits(response) -> tuple[int, int, str]:  # noqa: ANN001
    return (
        int(response["x-ratelimit-limit-requests"]),
        int(response["x-ratelimit-remaining-requests"]),
        response["x-ratelimit-reset-requests"],
    )


def _post(client: Client, path: str, body: dict):  # noqa: ANN202
    return client.post(path, json.dumps(body), content_type="application/json")


def _nothing_reserved_or_sent(user, fake, *, wits: int) -> None:  # noqa: ANN001
    assert ledger.balance(user_id=user.id) == ledger.Balance(wits, 0, 0)
    assert Reservation.objects.count() == 0
    assert LedgerEntry.objects.exclude(kind="grant").count() == 0
    assert UsageRecord.objects.count() == 0
    assert fake.requests == []


# --- Per account, per key ----------------------------------------------------------------------


def test_the_limit_is_per_account_across_its_keys_and_sessions(
    make_user, make_api_key, catalogue, fake
):
    # Given a free-trial account (30 requests per minute) with two keys and a session
    user = make_user(wits=1_000_000)
    first = _client(make_api_key(user, "ai", name="one"))
    second = _client(make_api_key(user, "ai", name="two"), header="x-api-key")
    session = Client(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    callers = [first, second, session]

    # When 30 requests alternate between them
    seen = [_limits(callers[i % 3].get("/v1/wits/balance")) for i in range(30)]

    # Then they share one window, and the 31st is refused whichever credential sends it
    assert seen == [(30, 29 - i, "1m0s") for i in range(30)]
    for caller in callers:
        refused = caller.get("/v1/wits/balance")
        assert refused.status_code == 429
        assert _limits(refused)[:2] == (30, 0)
    # And another account is untouched by it
    other = _client(make_api_key(make_user(), "ai"))
    assert _limits(other.get("/v1/wits/balance"))[:2] == (30, 29)


def test_a_keys_own_lower_limit_binds_that_key_only(make_user, make_api_key, catalogue, fake):
    user = make_user(tier="max", wits=1_000_000)
    limited = _client(make_api_key(user, "ai", name="slow", rpm=3))
    free = _client(make_api_key(user, "ai", name="fast"))

    admitted = [_limits(limited.get("/v1/models"))[:2] for _ in range(3)]
    refused = limited.get("/v1/models")
    other = free.get("/v1/models")

    assert admitted == [(3, 2), (3, 1), (3, 0)]
    assert refused.status_code == 429
    assert _limits(refused)[:2] == (3, 0)
    assert 1 <= int(refused["retry-after-ms"]) <= 60_000
    # The account window counted the three admitted requests, not the refused one.
    assert other.status_code == 200
    assert _limits(other)[:2] == (100_000, 100_000 - 4)


# --- Headers on every response after authentication ---------------------------------------------


@pytest.fixture
def full(make_user, make_api_key):  # noqa: ANN201
    user = make_user(tier="max", wits=1_000_000)
    return user, _client(make_api_key(user, "full"))


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/models", None, 200),
        ("GET", "/v1/wits/balance", None, 200),
        ("GET", "/v1/wits/transactions", None, 200),
        ("GET", "/v1/wits/transactions?limit=0", None, 400),
        ("GET", "/v1/keys", None, 200),
        ("GET", "/v1/keys/00000000-0000-4000-8000-000000000000", None, 404),
        ("GET", "/v1/webhooks", None, 200),
        ("POST", "/v1/chat/completions", {"model": "gpt-fake", "messages": HI}, 200),
        ("POST", "/v1/chat/completions", {"model": "gpt-fake", "messages": []}, 400),
        ("POST", "/v1/chat/completions", {"model": "no-such", "messages": HI}, 404),
        ("GET", "/v1/chat/completions", None, 405),
        ("POST", "/v1/messages", {"model": "claude-fake", "max_tokens": 5, "messages": HI}, 200),
        ("POST", "/v1/messages", {"model": "claude-fake", "messages": HI}, 400),
        ("POST", "/v1/embeddings", {"model": "embed-fake", "input": "hi"}, 200),
    ],
)
def test_every_response_after_authentication_carries_the_limit_headers(
    full, catalogue, fake, method, path, body, status
):
    _, client = full

    response = client.generic(
        method, path, b"" if body is None else json.dumps(body), content_type="application/json"
    )

    assert response.status_code == status
    limit, remaining, reset = _limits(response)
    assert (limit, remaining) == (100_000, 99_999)
    assert reset == "1m0s"


def test_402_carries_the_limit_headers_and_a_403_is_refused_before_counting(
    make_user, make_api_key, catalogue, fake, redis_client
):
    poor = make_user(tier="max", wits=1)
    broke = _post(_client(make_api_key(poor, "ai")), "/v1/chat/completions", {"messages": HI})
    rich = make_user(tier="max", wits=1_000_000)
    unscoped = _post(_client(make_api_key(rich, "data")), "/v1/chat/completions", {"messages": HI})

    assert broke.status_code == 402
    assert _limits(broke)[:2] == (100_000, 99_999)
    # The scope is checked before the limiter (clawwits/api.py): a 403 is not counted.
    assert unscoped.status_code == 403
    assert not any(name in unscoped for name in LIMIT_HEADERS)
    # Authenticating read (or created) the account's key epoch; no request window was counted.
    assert redis_client.keys(f"rl:{{{rich.id}}}:*") in ([], [f"rl:{{{rich.id}}}:ep".encode()])


def test_a_refused_credential_gets_no_limit_headers_and_counts_nothing(
    make_user, make_api_key, catalogue, redis_client
):
    response = _client("cw_sk_" + "x" * 52).get("/v1/models")

    assert response.status_code == 401
    assert not any(name in response for name in LIMIT_HEADERS)
    assert redis_client.keys("rl:*") == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {"model": "gpt-fake", "messages": HI, "stream": True},
        ),
        ("/v1/messages", {"model": "gpt-fake", "max_tokens": 8, "messages": HI, "stream": True}),
    ],
)
def test_streams_send_the_limit_headers_before_the_first_byte(
    live_server, account, catalogue, fake, path, body
):
    fake.configure(token_delay_s=0.05)

    with requests.post(
        live_server.url + path,
        json=body,
        headers={"Authorization": f"Bearer {account.key}"},
        stream=True,
        timeout=20,
    ) as response:
        # The head has arrived; nothing of the body has been read yet.
        headers = dict(response.headers)
        assert response.raw.tell() == 0
        body_bytes = b"".join(response.iter_content(None))

    assert response.status_code == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["x-ratelimit-limit-requests"] == "100000"
    assert headers["x-ratelimit-remaining-requests"] == "99999"
    assert GO_DURATION.match(headers["x-ratelimit-reset-requests"])
    assert b"data: " in body_bytes
    assert ledger.balance(user_id=account.user.id).reserved == 0


# --- The 429 -----------------------------------------------------------------------------------


@pytest.fixture
def exhausted(make_user, make_api_key, catalogue, fake):  # noqa: ANN201
    """A key limited to 1 request per minute that has made it (to /v1/models)."""
    user = make_user(tier="max", wits=1_000_000)
    key = make_api_key(user, "ai", rpm=1)
    assert _client(key).get("/v1/models").status_code == 200
    return user, key


@pytest.mark.parametrize(
    ("path", "body", "header"),
    [
        ("/v1/chat/completions", {"model": "gpt-fake", "messages": HI}, "bearer"),
        ("/v1/chat/completions", {"model": "gpt-fake", "messages": HI, "stream": True}, "bearer"),
        ("/v1/embeddings", {"model": "embed-fake", "input": "hi"}, "bearer"),
        ("/v1/messages", {"model": "claude-fake", "max_tokens": 5, "messages": HI}, "x-api-key"),
        (
            "/v1/messages",
            {"model": "gpt-fake", "max_tokens": 5, "messages": HI, "stream": True},
            "x-api-key",
        ),
    ],
)
def test_429_carries_the_wait_three_ways_and_nothing_is_reserved_or_sent(
    exhausted, fake, path, body, header
):
    user, key = exhausted

    response = _post(_client(key, header=header), path, body)

    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    wait_ms = int(response["retry-after-ms"])
    assert 1 <= wait_ms <= 60_000
    assert int(response["Retry-After"]) == math.ceil(wait_ms / 1000)
    assert _limits(response)[:2] == (1, 0)
    data = response.json()
    assert data["retryAfterMs"] == wait_ms
    if path == "/v1/messages":
        assert data["type"] == "error"
        assert data["error"] == {
            "type": "rate_limit_error",
            "code": "rate_limited",
            "message": f"Rate limit reached. Retry after {wait_ms} ms.",
            "retryAfterMs": wait_ms,
        }
    else:
        assert data["error"] == {
            "code": "rate_limited",
            "type": "rate_limit_error",
            "message": f"Rate limit reached. Retry after {wait_ms} ms.",
            "param": None,
            "retryAfterMs": wait_ms,
        }
    _nothing_reserved_or_sent(user, fake, wits=1_000_000)


# --- Redis down: a JSON 503, nothing reserved ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        ("GET", "/v1/wits/balance", None),
        ("GET", "/v1/keys", None),
        ("POST", "/v1/chat/completions", {"model": "gpt-fake", "messages": HI}),
        ("POST", "/v1/chat/completions", {"model": "gpt-fake", "messages": HI, "stream": True}),
        ("POST", "/v1/messages", {"model": "claude-fake", "max_tokens": 5, "messages": HI}),
        ("POST", "/v1/embeddings", {"model": "embed-fake", "input": "hi"}),
    ],
)
def test_redis_unreachable_is_a_json_503_and_nothing_is_reserved(
    redis_down, make_user, make_api_key, catalogue, fake, method, path, body
):
    user = make_user(tier="max", wits=1_000_000)
    client = _client(make_api_key(user, "full"))

    response = client.generic(
        method, path, b"" if body is None else json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "1"
    assert not any(name in response for name in LIMIT_HEADERS)
    data = response.json()
    if path == "/v1/messages":
        assert (data["type"], data["error"]["type"]) == ("error", "overloaded_error")
    assert data["error"]["code"] == "service_unavailable"
    _nothing_reserved_or_sent(user, fake, wits=1_000_000)


# --- Limits come from the database on every request ---------------------------------------------


def test_a_tier_change_binds_on_the_next_request(make_user, make_api_key, catalogue, fake):
    # Given a free-trial account that has used its 30 requests
    user = make_user(wits=1_000_000)
    client = _client(make_api_key(user, "ai"))
    for _ in range(30):
        client.get("/v1/models")
    assert client.get("/v1/models").status_code == 429

    # When an admin moves it to starter (a save, as the admin form does), the very next request
    # is admitted under 300
    user.tier = Tier.objects.get(slug="starter")
    user.save(update_fields=["tier"])
    upgraded = client.get("/v1/models")

    assert upgraded.status_code == 200
    assert _limits(upgraded)[:2] == (300, 300 - 31)

    # And when the admin edits the starter tier's own limit, that binds next too
    starter = Tier.objects.get(slug="starter")
    starter.requests_per_minute = 31
    starter.save()
    edited = client.get("/v1/models")

    assert edited.status_code == 429
    assert _limits(edited)[:2] == (31, 0)


def test_a_downgrade_below_the_current_count_refuses_at_once(
    make_user, make_api_key, catalogue, fake
):
    user = make_user(tier="starter", wits=1_000_000)
    client = _client(make_api_key(user, "ai"))
    for _ in range(40):
        assert client.get("/v1/models").status_code == 200

    user.tier = Tier.objects.get(slug="free_trial")
    user.save()
    refused = client.get("/v1/models")

    assert refused.status_code == 429
    assert _limits(refused)[:2] == (30, 0)
    assert int(refused["retry-after-ms"]) >= 1


def test_an_enterprise_account_carries_its_custom_limit(make_user, make_api_key, catalogue, fake):
    custom = make_user(tier="enterprise", wits=1_000_000)
    User.objects.filter(pk=custom.pk).update(rate_limit_rpm=2)
    default = make_user(tier="enterprise", wits=1_000_000)
    client = _client(make_api_key(custom, "ai"))

    admitted = [_limits(client.get("/v1/models"))[:2] for _ in range(2)]
    refused = client.get("/v1/models")
    uncustomised = _client(make_api_key(default, "ai")).get("/v1/models")

    assert admitted == [(2, 1), (2, 0)]
    assert refused.status_code == 429
    assert _limits(uncustomised)[:2] == (1_000_000, 999_999)


def test_a_custom_limit_on_a_tier_without_custom_limits_is_ignored(
    make_user, make_api_key, catalogue, fake
):
    user = make_user(tier="starter", wits=1_000_000)
    User.objects.filter(pk=user.pk).update(rate_limit_rpm=2)

    response = _client(make_api_key(user, "ai")).get("/v1/models")

    assert _limits(response)[:2] == (300, 299)
