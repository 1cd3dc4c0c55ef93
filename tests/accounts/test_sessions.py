"""Signup, login, the JWT cookie session, logout, CSRF (BAR 12) and auth rate limits (BAR 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import django_ratelimit.core
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from apikeys.models import ApiKey
from wits import ledger
from wits.models import LedgerEntry

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-9"
ACCESS, REFRESH = "cw_access", "cw_refresh"


def _signup(client: Client, email: str = "new@example.com"):
    return client.post("/signup", {"email": email, "password": PASSWORD, "password2": PASSWORD})


def _login(client: Client, email: str, password: str = PASSWORD, **meta: str):
    return client.post("/login", {"email": email, "password": password}, **meta)


def test_signup_creates_an_account_on_free_trial_with_a_welcome_grant(settings):
    settings.WITS_WELCOME_GRANT = 12_345
    client = Client()

    response = _signup(client, "New.Person@Example.COM")

    assert (response.status_code, response["Location"]) == (302, "/dashboard")
    user = User.objects.get()
    assert (user.email, user.tier.slug, user.is_staff) == (
        "new.person@example.com",
        "free_trial",
        False,
    )
    assert user.check_password(PASSWORD)
    assert ledger.balance(user_id=user.id) == ledger.Balance(12_345, 0, 0)
    entry = LedgerEntry.objects.get(wallet_id=user.id)
    assert (entry.kind, entry.amount, entry.note) == ("grant", 12_345, "welcome grant")
    assert ledger.check() == []
    assert AccessToken(response.cookies[ACCESS].value)["user_id"] == str(user.id)


def test_signup_lands_on_a_dashboard_showing_the_welcome_balance(settings):
    settings.WITS_WELCOME_GRANT = 100_000
    client = Client()

    response = _signup(client)
    dashboard = client.get(response["Location"])

    assert dashboard.status_code == 200
    assert '<strong id="available">100,000</strong>' in dashboard.content.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "taken@example.com", "password": PASSWORD, "password2": PASSWORD}, "email"),
        ({"email": "TAKEN@example.com", "password": PASSWORD, "password2": PASSWORD}, "email"),
        (
            {"email": "x@example.com", "password": PASSWORD, "password2": PASSWORD + "x"},
            "password2",
        ),
        ({"email": "x@example.com", "password": "12345678", "password2": "12345678"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD, "password2": PASSWORD}, "email"),
    ],
)
def test_bad_signup_creates_nothing(make_user, data, field):
    make_user("taken@example.com")
    before = (User.objects.count(), LedgerEntry.objects.count())

    response = Client().post("/signup", data)

    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    assert (User.objects.count(), LedgerEntry.objects.count()) == before
    assert ACCESS not in response.cookies


def _cookie_flags(response, name: str) -> tuple:
    morsel = response.cookies[name]
    return (morsel["httponly"], morsel["samesite"], morsel["secure"], morsel["path"])


def test_login_sets_httponly_lax_secure_cookies(make_user, settings):
    settings.SECURE_COOKIES = True
    user = make_user("me@example.com")

    response = _login(Client(), "ME@example.com")

    assert (response.status_code, response["Location"]) == (302, "/dashboard")
    assert _cookie_flags(response, ACCESS) == (True, "Lax", True, "/")
    assert _cookie_flags(response, REFRESH) == (True, "Lax", True, "/")
    assert response.cookies[ACCESS]["max-age"] == 900
    assert response.cookies[REFRESH]["max-age"] == 14 * 86400
    assert AccessToken(response.cookies[ACCESS].value)["user_id"] == str(user.id)
    assert RefreshToken(response.cookies[REFRESH].value)["user_id"] == str(user.id)


def test_cookies_are_not_secure_when_secure_cookies_is_off(make_user, settings):
    settings.SECURE_COOKIES = False
    make_user("me@example.com")

    response = _login(Client(), "me@example.com")

    assert _cookie_flags(response, ACCESS) == (True, "Lax", "", "/")
    assert _cookie_flags(response, REFRESH) == (True, "Lax", "", "/")


def _settings_in_subprocess(env: dict[str, str]) -> str:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_COOKIES, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECURE_COOKIES"}}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DJANGO_SETTINGS_MODULE": "clawwits.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "1"}, "False False False"),
        ({"DEBUG": "0"}, "True True True"),
        ({}, "True True True"),
        ({"DEBUG": "1", "SECURE_COOKIES": "1"}, "True True True"),
    ],
)
def test_cookies_are_secure_outside_debug(env, expected):
    assert _settings_in_subprocess(env) == expected


def test_wrong_password_sets_no_cookie(make_user):
    make_user("me@example.com")

    response = _login(Client(), "me@example.com", "wrong-password")

    assert response.status_code == 400
    assert "Wrong email or password." in response.content.decode()
    assert (ACCESS in response.cookies, REFRESH in response.cookies) == (False, False)


def test_inactive_account_cannot_log_in(make_user):
    user = make_user("me@example.com")
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = _login(Client(), "me@example.com")

    assert response.status_code == 400
    assert ACCESS not in response.cookies


def _expired_access(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(from_time=timezone.now() - timedelta(hours=1))
    return str(token)


def test_expired_access_token_is_refreshed_transparently_on_a_page(make_user):
    # Given: a browser whose access cookie expired but whose refresh cookie is valid
    user = make_user("me@example.com")
    client = Client()
    expired = _expired_access(user)
    client.cookies[ACCESS] = expired
    client.cookies[REFRESH] = str(RefreshToken.for_user(user))

    # When
    response = client.get("/dashboard")

    # Then: the page renders for the user and a fresh access cookie is set
    assert response.status_code == 200
    assert response.context["user"] == user
    fresh = response.cookies[ACCESS].value
    assert fresh != expired
    assert AccessToken(fresh)["user_id"] == str(user.id)
    assert _cookie_flags(response, ACCESS)[:2] == (True, "Lax")
    assert REFRESH not in response.cookies


def test_expired_access_token_is_refreshed_transparently_on_the_api(make_user):
    user = make_user("me@example.com", wits=42)
    client = APIClient()
    client.cookies[ACCESS] = _expired_access(user)
    client.cookies[REFRESH] = str(RefreshToken.for_user(user))

    response = client.get("/v1/wits/balance")

    assert response.status_code == 200
    assert response.json()["available"] == 42
    assert AccessToken(response.cookies[ACCESS].value)["user_id"] == str(user.id)


def test_missing_access_token_is_minted_from_the_refresh_token(make_user):
    user = make_user("me@example.com")
    client = Client()
    client.cookies[REFRESH] = str(RefreshToken.for_user(user))

    response = client.get("/dashboard")

    assert response.status_code == 200
    assert AccessToken(response.cookies[ACCESS].value)["user_id"] == str(user.id)


def test_expired_access_without_refresh_is_anonymous_and_cookies_are_cleared(make_user):
    user = make_user("me@example.com")
    client = Client()
    client.cookies[ACCESS] = _expired_access(user)

    response = client.get("/dashboard")

    assert (response.status_code, response["Location"]) == (302, "/login?next=/dashboard")
    assert (response.cookies[ACCESS].value, response.cookies[ACCESS]["max-age"]) == ("", 0)


def test_logout_clears_cookies_and_blacklists_the_refresh_token(make_user):
    # Given: a logged-in browser
    user = make_user("me@example.com")
    client = Client()
    _login(client, "me@example.com")
    old_refresh = client.cookies[REFRESH].value

    # When
    response = client.post("/logout")

    # Then: both cookies are cleared and the refresh token is blacklisted
    assert (response.status_code, response["Location"]) == (302, "/")
    for name in (ACCESS, REFRESH):
        assert (response.cookies[name].value, response.cookies[name]["max-age"]) == ("", 0)
    jti = RefreshToken(old_refresh, verify=False)["jti"]
    assert BlacklistedToken.objects.filter(token__jti=jti, token__user=user).count() == 1

    # And: a later request presenting the old refresh cookie is anonymous
    replay = Client()
    replay.cookies[REFRESH] = old_refresh
    page = replay.get("/dashboard")
    assert (page.status_code, page["Location"]) == (302, "/login?next=/dashboard")
    assert page.cookies[REFRESH].value == ""
    api = APIClient()
    api.cookies[REFRESH] = old_refresh
    assert api.get("/v1/wits/balance").status_code == 401


def test_logout_requires_post(make_user):
    make_user("me@example.com")
    client = Client()
    _login(client, "me@example.com")

    response = client.get("/logout")

    assert response.status_code == 405
    assert BlacklistedToken.objects.count() == 0


def test_logout_without_a_session_just_redirects():
    response = Client().post("/logout")

    assert (response.status_code, response["Location"]) == (302, "/")


def _csrf_client(user) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    refresh = RefreshToken.for_user(user)
    client.cookies[ACCESS] = str(refresh.access_token)
    client.cookies[REFRESH] = str(refresh)
    return client


def test_cookie_authenticated_unsafe_request_without_csrf_is_403_json(make_user):
    user = make_user("me@example.com")
    client = _csrf_client(user)

    response = client.post("/v1/keys", {"name": "k", "scopes": ["ai"]}, format="json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "forbidden"
    assert ApiKey.objects.count() == 0


def test_cookie_authenticated_unsafe_request_with_csrf_token_succeeds(make_user):
    user = make_user("me@example.com")
    client = _csrf_client(user)
    client.get("/api-keys")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value

    response = client.post(
        "/v1/keys", {"name": "k", "scopes": ["ai"]}, format="json", HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 201
    assert ApiKey.objects.get().user_id == user.id


def test_cookie_authenticated_safe_request_needs_no_csrf(make_user):
    user = make_user("me@example.com", wits=5)

    response = _csrf_client(user).get("/v1/wits/balance")

    assert (response.status_code, response.json()["available"]) == (200, 5)


def test_header_jwt_needs_no_csrf(make_user):
    user = make_user("me@example.com")
    client = APIClient(enforce_csrf_checks=True)

    response = client.post(
        "/v1/keys",
        {"name": "k", "scopes": ["ai"]},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}",
    )

    assert response.status_code == 201


def test_login_form_post_without_csrf_token_is_refused(make_user):
    make_user("me@example.com")

    response = _login(Client(enforce_csrf_checks=True), "me@example.com")

    assert response.status_code == 403
    assert ACCESS not in response.cookies


@pytest.fixture
def frozen_ratelimit_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin django-ratelimit's window so a minute boundary cannot reset a count mid-test."""
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: 1.8e9))


def _auth_limit() -> int:
    count, _, period = settings.AUTH_RATELIMIT.partition("/")
    assert period == "m"
    return int(count)


def test_login_is_rate_limited_per_client_ip(make_user, frozen_ratelimit_clock):
    make_user("me@example.com")
    client = Client()
    limit = _auth_limit()

    statuses = [
        _login(client, "me@example.com", "wrong", REMOTE_ADDR="10.0.0.1").status_code
        for _ in range(limit)
    ]
    blocked = _login(client, "me@example.com", REMOTE_ADDR="10.0.0.1")
    other_ip = _login(Client(), "me@example.com", REMOTE_ADDR="10.0.0.2")

    assert statuses == [400] * limit
    assert (blocked.status_code, blocked["Retry-After"]) == (429, "60")
    assert ACCESS not in blocked.cookies
    assert (other_ip.status_code, other_ip["Location"]) == (302, "/dashboard")


def test_behind_a_trusted_proxy_the_limit_follows_the_forwarded_client(
    make_user, frozen_ratelimit_clock, settings
):
    # Given one load balancer in front, which appends the address it saw to X-Forwarded-For
    settings.TRUSTED_PROXIES = 1
    make_user("me@example.com")
    limit = _auth_limit()
    lb = {"REMOTE_ADDR": "10.9.9.9"}

    # When one client fails `limit` times, forging a different left-most address each time
    statuses = [
        _login(
            Client(),
            "me@example.com",
            "wrong",
            HTTP_X_FORWARDED_FOR=f"1.{i}.1.1, 203.0.113.5",
            **lb,
        ).status_code
        for i in range(limit)
    ]
    blocked = _login(Client(), "me@example.com", HTTP_X_FORWARDED_FOR="203.0.113.5", **lb)
    # Then another client behind the same balancer is not affected
    other = _login(Client(), "me@example.com", HTTP_X_FORWARDED_FOR="203.0.113.6", **lb)

    assert statuses == [400] * limit
    assert blocked.status_code == 429
    assert (other.status_code, other["Location"]) == (302, "/dashboard")


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "10.9.9.9"),
        (1, "", "10.9.9.9"),
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "6.6.6.6, 203.0.113.5", "203.0.113.5"),
        (2, "6.6.6.6, 203.0.113.5, 10.0.0.2", "203.0.113.5"),
        (2, "203.0.113.5", "10.9.9.9"),
        (1, "not-an-ip", "10.9.9.9"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_takes_the_entry_the_first_trusted_proxy_wrote(
    rf, settings, proxies, forwarded, expected
):
    from clawwits.clientip import client_ip

    settings.TRUSTED_PROXIES = proxies
    request = rf.get("/login", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


def test_signup_is_rate_limited_per_client_ip(frozen_ratelimit_clock):
    limit = _auth_limit()
    client = Client()

    statuses = [
        client.post(
            "/signup",
            {"email": f"u{i}@example.com", "password": PASSWORD, "password2": PASSWORD},
            REMOTE_ADDR="10.0.0.7",
        ).status_code
        for i in range(limit)
    ]
    blocked = client.post(
        "/signup",
        {"email": "blocked@example.com", "password": PASSWORD, "password2": PASSWORD},
        REMOTE_ADDR="10.0.0.7",
    )
    other_ip = Client().post(
        "/signup",
        {"email": "other@example.com", "password": PASSWORD, "password2": PASSWORD},
        REMOTE_ADDR="10.0.0.8",
    )

    assert statuses == [302] * limit
    assert (blocked.status_code, blocked["Retry-After"]) == (429, "60")
    assert User.objects.filter(email="blocked@example.com").count() == 0
    assert (other_ip.status_code, User.objects.filter(email="other@example.com").count()) == (
        302,
        1,
    )


def test_rate_limit_counts_only_posts(frozen_ratelimit_clock):
    client = Client()

    statuses = {client.get("/login", REMOTE_ADDR="10.0.0.9").status_code for _ in range(30)}

    assert statuses == {200}


@pytest.mark.parametrize(
    ("next_url", "landing"),
    [
        ("/api-keys", "/api-keys"),
        ("/dashboard?tab=1", "/dashboard?tab=1"),
        ("https://evil.example.com/steal", "/dashboard"),
        ("//evil.example.com/steal", "/dashboard"),
        ("///evil.example.com", "/dashboard"),
        ("http://testserver.evil.example.com/", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("\\\\evil.example.com", "/dashboard"),
        ("/\\evil.example.com", "/dashboard"),
        ("", "/dashboard"),
    ],
)
def test_login_redirects_only_to_this_site(make_user, next_url, landing):
    make_user("me@example.com")

    by_post = Client().post(
        "/login", {"email": "me@example.com", "password": PASSWORD, "next": next_url}
    )
    by_query = Client().post(
        "/login?" + urlencode({"next": next_url}), {"email": "me@example.com", "password": PASSWORD}
    )

    assert (by_post.status_code, by_post["Location"]) == (302, landing)
    assert (by_query.status_code, by_query["Location"]) == (302, landing)


def test_login_over_https_refuses_an_http_next(make_user):
    make_user("me@example.com")

    downgrade = Client().post(
        "/login",
        {"email": "me@example.com", "password": PASSWORD, "next": "http://testserver/api-keys"},
        secure=True,
    )
    same_scheme = Client().post(
        "/login",
        {"email": "me@example.com", "password": PASSWORD, "next": "https://testserver/api-keys"},
        secure=True,
    )

    assert (downgrade.status_code, downgrade["Location"]) == (302, "/dashboard")
    assert (same_scheme.status_code, same_scheme["Location"]) == (
        302,
        "https://testserver/api-keys",
    )


def test_login_page_carries_next_into_the_form():
    response = Client().get("/login?next=/api-keys")

    assert '<input type="hidden" name="next" value="/api-keys">' in response.content.decode()


def test_protected_page_redirects_anonymous_to_login():
    response = Client().get("/dashboard")

    assert (response.status_code, response["Location"]) == (302, "/login?next=/dashboard")
