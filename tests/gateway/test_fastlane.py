"""The lean path (clawwits.fastlane) answers exactly as the full middleware + DRF stack does.

Each test sends the same request through the project's MIDDLEWARE (the lane first) and through
the same list without the lane, and compares status, every header in order, cookies and body.
Only values that differ between any two requests are masked: ids, timestamps, latencies,
incident ids, the remaining count and reset time of the rate limit, and waits.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.exceptions import MiddlewareNotUsed
from django.test import Client, override_settings
from django.utils import timezone

from apikeys.models import ApiKey
from clawwits import fastlane

pytestmark = pytest.mark.django_db(transaction=True)

HI = [{"role": "user", "content": "hi"}]
MASKED_HEADERS = {
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "retry-after-ms",
    "content-length",
}
VOLATILE = [
    (re.compile(rb'"(id|created|created_at|ttft_ms|retryAfterMs)": ?("[^"]*"|\d+)'), rb'"\1":*'),
    (re.compile(rb"(chatcmpl|msg|req)_[0-9A-Za-z]+"), rb"\1_*"),
    (re.compile(rb"incident [0-9a-f]{12}"), rb"incident *"),
    (re.compile(rb"Retry after \d+ ms"), rb"Retry after * ms"),
]


@dataclass(frozen=True)
class Seen:
    status: int
    headers: tuple[tuple[str, str], ...]
    cookies: tuple[str, ...]
    body: bytes


def _seen(response) -> Seen:  # noqa: ANN001
    if response.streaming:
        body = b"".join(response.streaming_content)
        response.close()
    else:
        body = response.content
    if response.has_header("Content-Length") and response.wsgi_request.method != "HEAD":
        assert response["Content-Length"] == str(len(body))
    for pattern, replacement in VOLATILE:
        body = pattern.sub(replacement, body)
    # Masked values are checked for equality in the body instead (Content-Length: above). A 429's
    # Retry-After is its retry-after-ms rounded up, which moves with the clock.
    masked = MASKED_HEADERS | ({"retry-after"} if response.status_code == 429 else set())
    headers = tuple(
        (name, "*" if name.lower() in masked else value) for name, value in response.headers.items()
    )
    # A cookie's value can be random (a new CSRF token): its name says which one was set.
    return Seen(response.status_code, headers, tuple(sorted(response.cookies)), body)


def _send(method: str, path: str, body: bytes | None, extra: dict[str, str]) -> Seen:
    client = Client()
    data = b"" if body is None else body
    return _seen(client.generic(method, path, data, content_type="application/json", **extra))


def _through_both(
    served: list[str],
    method: str,
    path: str,
    body: dict | bytes | None = None,
    *,
    lean_headers: dict[str, str],
    full_headers: dict[str, str] | None = None,
    lane: bool = True,
) -> Seen:
    """The lane's answer, after asserting the full stack gives the same one."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    served.clear()
    lean = _send(method, path, raw, lean_headers)
    assert served == ([path] if lane else [])
    served.clear()
    with override_settings(MIDDLEWARE=list(fastlane.STACK)):
        full = _send(method, path, raw, full_headers or lean_headers)
    assert served == []
    assert lean == full
    return lean


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the lane answered itself."""
    calls: list[str] = []
    serve = fastlane.FastLaneMiddleware._serve

    def spy(self, request, lane, credential):  # noqa: ANN001, ANN202
        calls.append(request.path_info)
        return serve(self, request, lane, credential)

    monkeypatch.setattr(fastlane.FastLaneMiddleware, "_serve", spy)
    return calls


def _bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


# --- Successes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "extra"),
    [
        ("POST", "/v1/chat/completions", {"model": "gpt-fake", "messages": HI}, {}),
        ("POST", "/v1/chat/completions", {"model": "claude-fake", "messages": HI}, {}),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "gpt-fake", "messages": HI, "stream": True},
            {},
        ),
        ("POST", "/v1/messages", {"model": "claude-fake", "max_tokens": 5, "messages": HI}, {}),
        (
            "POST",
            "/v1/messages",
            {"model": "gpt-fake", "max_tokens": 5, "messages": HI, "stream": True},
            {},
        ),
        ("POST", "/v1/embeddings", {"model": "embed-fake", "input": ["hi", "there"]}, {}),
        ("GET", "/v1/models", None, {}),
        ("GET", "/v1/models", None, {"HTTP_ANTHROPIC_VERSION": "2023-06-01"}),
    ],
)
def test_a_success_is_the_same_through_the_lane(
    served, catalogue, account, method, path, body, extra
):
    seen = _through_both(served, method, path, body, lean_headers={**_bearer(account.key), **extra})

    assert seen.status == 200
    names = {name for name, _ in seen.headers}
    assert {
        "Allow",
        "x-ratelimit-limit-requests",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "Cross-Origin-Opener-Policy",
    } <= names


def test_an_x_api_key_call_is_the_same_through_the_lane(served, catalogue, account):
    seen = _through_both(
        served,
        "POST",
        "/v1/messages",
        {"model": "claude-fake", "max_tokens": 5, "messages": HI},
        lean_headers={"HTTP_X_API_KEY": account.key, "HTTP_ANTHROPIC_VERSION": "2023-06-01"},
    )

    assert seen.status == 200


# --- Errors the lane renders itself --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/chat/completions", b"{not json", 400, "invalid_request"),
        ("/v1/chat/completions", {"model": "gpt-fake"}, 400, "invalid_request"),
        ("/v1/messages", {"model": "claude-fake", "messages": HI}, 400, "invalid_request"),
        ("/v1/embeddings", {"model": "embed-fake"}, 400, "invalid_request"),
        ("/v1/chat/completions", {"model": "no-such-model", "messages": HI}, 404, "not_found"),
        (
            "/v1/messages",
            {"model": "no-such-model", "max_tokens": 5, "messages": HI},
            404,
            "not_found",
        ),
    ],
)
def test_a_bad_request_is_the_same_through_the_lane(
    served, catalogue, account, path, body, status, code
):
    seen = _through_both(served, "POST", path, body, lean_headers=_bearer(account.key))

    assert seen.status == status
    assert code.encode() in seen.body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/models"])
def test_an_unknown_revoked_or_expired_key_is_the_same_401_through_the_lane(
    served, catalogue, make_user, make_api_key, path
):
    user = make_user(tier="max", wits=1_000)
    revoked, expired = make_api_key(user, "ai"), make_api_key(user, "ai")
    _revoke(revoked)
    _expire(expired)
    unknown = "cw_sk_" + "a" * 8 + "b" * 40
    method = "GET" if path == "/v1/models" else "POST"
    body = None if method == "GET" else {"model": "gpt-fake", "max_tokens": 5, "messages": HI}

    for key in (unknown, revoked, expired):
        seen = _through_both(served, method, path, body, lean_headers=_bearer(key))
        assert seen.status == 401


def _revoke(plaintext: str) -> None:
    from apikeys import keycache, keys

    parsed = keys.parse(plaintext)
    key = ApiKey.objects.get(lookup=parsed.lookup)
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    keycache.bump([key.user_id])


def _expire(plaintext: str) -> None:
    from apikeys import keycache, keys

    parsed = keys.parse(plaintext)
    key = ApiKey.objects.get(lookup=parsed.lookup)
    key.expires_at = timezone.now() - timedelta(seconds=1)
    key.save(update_fields=["expires_at"])
    keycache.bump([key.user_id])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "gpt-fake", "messages": HI}),
        ("/v1/messages", {"model": "claude-fake", "max_tokens": 5, "messages": HI}),
        ("/v1/embeddings", {"model": "embed-fake", "input": "hi"}),
    ],
)
def test_a_key_without_the_ai_scope_is_the_same_403_through_the_lane(
    served, catalogue, make_user, make_api_key, path, body
):
    key = make_api_key(make_user(tier="max", wits=1_000), "data")

    seen = _through_both(served, "POST", path, body, lean_headers=_bearer(key))

    assert seen.status == 403
    assert b"insufficient_scope" in seen.body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_an_empty_wallet_is_the_same_402_through_the_lane(
    served, catalogue, make_user, make_api_key, path
):
    key = make_api_key(make_user(tier="max", wits=0), "ai")
    body = {"model": "gpt-fake", "max_tokens": 5, "messages": HI}

    seen = _through_both(served, "POST", path, body, lean_headers=_bearer(key))

    assert seen.status == 402
    assert b"insufficient_wits" in seen.body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_key_over_its_limit_gets_the_same_429_through_the_lane(
    served, catalogue, make_user, make_api_key, path
):
    user = make_user(tier="max", wits=1_000_000)
    lean_key, full_key = make_api_key(user, "ai", rpm=1), make_api_key(user, "ai", rpm=1)
    body = {"model": "gpt-fake", "max_tokens": 5, "messages": HI}

    first = _through_both(
        served, "POST", path, body, lean_headers=_bearer(lean_key), full_headers=_bearer(full_key)
    )
    second = _through_both(
        served, "POST", path, body, lean_headers=_bearer(lean_key), full_headers=_bearer(full_key)
    )

    assert (first.status, second.status) == (200, 429)
    assert ("Retry-After", "*") in second.headers


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"])
def test_every_route_failing_is_the_same_502_through_the_lane(
    served, catalogue, account, fake, path
):
    fake.set_fault("http_500")
    body = {"model": "gpt-fake", "max_tokens": 5, "messages": HI}
    if path == "/v1/embeddings":
        body = {"model": "embed-fake", "input": "hi"}

    seen = _through_both(served, "POST", path, body, lean_headers=_bearer(account.key))

    assert seen.status == 502


def test_redis_down_is_the_same_503_through_the_lane(served, catalogue, account, redis_down):
    for path, body in [
        ("/v1/chat/completions", {"model": "gpt-fake", "messages": HI}),
        ("/v1/messages", {"model": "claude-fake", "max_tokens": 5, "messages": HI}),
    ]:
        seen = _through_both(served, "POST", path, body, lean_headers=_bearer(account.key))
        assert seen.status == 503


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_an_unexpected_error_is_the_same_logged_500_through_the_lane(
    served, catalogue, account, monkeypatch, caplog, path
):
    from gateway import relay

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(relay, "chat", broken)
    body = {"model": "gpt-fake", "max_tokens": 5, "messages": HI}

    with caplog.at_level(logging.ERROR):
        seen = _through_both(served, "POST", path, body, lean_headers=_bearer(account.key))

    assert seen.status == 500
    assert b"internal_error" in seen.body
    assert b"boom" not in seen.body
    unhandled = [r for r in caplog.records if r.name == "clawwits.errors"]
    assert len(unhandled) == 2


# --- Calls the lane leaves to the stack ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "extra", "status"),
    [
        ("GET", "/v1/chat/completions", {}, 405),
        ("PUT", "/v1/messages", {}, 405),
        ("POST", "/v1/models", {}, 405),
        ("HEAD", "/v1/models", {}, 200),
        ("OPTIONS", "/v1/embeddings", {}, 200),
        ("POST", "/v1/chat/completions", {"HTTP_HOST": "evil.example"}, 400),
        ("POST", "/v1/chat/completions", {"CONTENT_LENGTH": str(10**9)}, 413),
        ("POST", "/v1/messages", {"CONTENT_LENGTH": "12x"}, 400),
        ("POST", "/v1/chat/completions/", {}, 404),
        ("POST", "/v1/chat/completions", {"HTTP_COOKIE": "csrftoken=bad"}, 200),
    ],
)
def test_calls_the_lane_does_not_reproduce_go_through_the_stack_unchanged(
    served, catalogue, account, method, path, extra, status
):
    body = {"model": "gpt-fake", "max_tokens": 5, "messages": HI}

    seen = _through_both(
        served, method, path, body, lean_headers={**_bearer(account.key), **extra}, lane=False
    )

    assert seen.status == status


def test_a_chunked_body_is_the_same_400_through_the_stack(served, account):
    seen = _through_both(
        served,
        "POST",
        "/v1/chat/completions",
        None,
        lean_headers={**_bearer(account.key), "HTTP_TRANSFER_ENCODING": "chunked"},
        lane=False,
    )

    assert seen.status == 400
    assert b"Chunked request bodies" in seen.body


@pytest.mark.parametrize(
    ("headers", "lane", "status"),
    [
        # Not the lane's exact prefix: the page middleware runs, DRF still takes the key.
        ({"HTTP_AUTHORIZATION": "bearer {key}"}, False, 200),
        ({"HTTP_AUTHORIZATION": "Bearer cw_sk_short"}, True, 401),
        # Not shaped like a key: DRF hands it to the JWT authenticator.
        ({"HTTP_AUTHORIZATION": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"}, False, 401),
        # An Authorization header that is not a key wins over x-api-key.
        ({"HTTP_AUTHORIZATION": "Basic abc", "HTTP_X_API_KEY": "{key}"}, False, 401),
        ({"HTTP_AUTHORIZATION": "bearer {key}", "HTTP_X_API_KEY": "{key}"}, True, 200),
    ],
)
def test_unusual_credentials_are_answered_the_same(
    served, catalogue, account, headers, lane, status
):
    extra = {name: value.format(key=account.key) for name, value in headers.items()}

    seen = _through_both(
        served, "POST", "/v1/chat/completions", {"messages": HI}, lean_headers=extra, lane=lane
    )

    assert seen.status == status


def test_a_call_without_a_key_goes_through_the_stack(served, catalogue):
    seen = _through_both(
        served, "POST", "/v1/chat/completions", {"messages": HI}, lean_headers={}, lane=False
    )

    assert seen.status == 401


# --- The lane turns itself off rather than diverge -----------------------------------------------


def _get_response(request):  # noqa: ANN001, ANN202
    raise AssertionError("not called")


def test_the_lane_is_on_with_the_project_settings():
    lane = fastlane.FastLaneMiddleware(_get_response)

    assert set(lane.lanes) == set(fastlane.ROUTES)
    assert lane.lanes["/v1/chat/completions"][1].allow == "POST, OPTIONS"
    assert lane.lanes["/v1/models"][1].allow == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    "middleware",
    [
        ["clawwits.fastlane.FastLaneMiddleware", *fastlane.STACK, "example.Extra"],
        ["clawwits.fastlane.FastLaneMiddleware", *fastlane.STACK[1:]],
        [*fastlane.STACK[:1], "clawwits.fastlane.FastLaneMiddleware", *fastlane.STACK[1:]],
    ],
)
def test_the_lane_turns_itself_off_when_the_stack_differs(middleware):
    with override_settings(MIDDLEWARE=middleware), pytest.raises(MiddlewareNotUsed):
        fastlane.FastLaneMiddleware(_get_response)


def test_the_lane_turns_itself_off_when_drf_renders_errors_elsewhere(monkeypatch):
    from rest_framework.settings import api_settings

    monkeypatch.setattr(api_settings, "EXCEPTION_HANDLER", lambda exc, context: None)

    with pytest.raises(MiddlewareNotUsed):
        fastlane.FastLaneMiddleware(_get_response)
