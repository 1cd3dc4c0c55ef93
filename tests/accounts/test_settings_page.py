"""/settings: password change (the session is re-issued, other sessions revoked), the
low-balance threshold, the webhook URL with its SSRF errors shown, the signing secret and the
test-event button; CSRF on every form."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts import webhooks
from accounts.models import User, WebhookEvent

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-9"
NEW_PASSWORD = "battery-staple-77"
ACCESS, REFRESH = django_settings.JWT_ACCESS_COOKIE, django_settings.JWT_REFRESH_COOKIE
HOOK = "http://127.0.0.1:9/clawwits"  # the runner allows loopback; nothing is sent here


@pytest.fixture
def owner(make_user):
    return make_user(wits=50_000)


@pytest.fixture
def page(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def _jwt_client(email: str, password: str = PASSWORD) -> Client:
    """A browser signed in through /login: its session is the JWT cookie pair."""
    client = Client()
    response = client.post("/login", {"email": email, "password": password})
    assert response.status_code == 302
    return client


def _row(user) -> dict:
    return User.objects.filter(pk=user.id).values().get()


def test_settings_needs_a_login():
    response = Client().get("/settings")

    assert (response.status_code, response["Location"]) == (302, "/login?next=/settings")


@pytest.mark.parametrize(
    "path",
    [
        "/settings/password",
        "/settings/low-balance",
        "/settings/webhook",
        "/settings/webhook/secret",
        "/settings/webhook/test",
    ],
)
def test_settings_forms_need_a_login(path):
    response = Client().post(path, {})

    assert (response.status_code, response["Location"]) == (302, f"/login?next={path}")


def test_settings_page_shows_every_form_and_is_never_cached(page):
    response = page.get("/settings")

    body = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in {part.strip() for part in response["Cache-Control"].split(",")}
    for marker in ('id="password-form"', 'id="low-balance-form"', 'id="webhook-form"'):
        assert marker in body
    assert 'value="10000"' in body  # the default threshold
    assert 'id="webhook-secret"' not in body
    assert 'id="send-test"' not in body


# --- Password ---------------------------------------------------------------------------------


def test_changing_the_password_keeps_this_browser_signed_in_and_revokes_other_sessions(owner):
    # Given two browsers signed in with the old password
    mine, other = _jwt_client(owner.email), _jwt_client(owner.email)
    other_refresh = other.cookies[REFRESH].value

    # When one changes the password
    response = mine.post(
        "/settings/password",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    # Then it gets a fresh session pair and stays signed in
    assert (response.status_code, response["Location"]) == (302, "/settings")
    new_refresh = RefreshToken(response.cookies[REFRESH].value)
    assert AccessToken(response.cookies[ACCESS].value)["user_id"] == str(owner.id)
    assert mine.get("/settings").status_code == 200
    # and the password changed
    user = User.objects.get(pk=owner.id)
    assert user.check_password(NEW_PASSWORD)
    assert not user.check_password(PASSWORD)
    # and every older refresh token is blacklisted: no other browser can renew its session
    blacklisted = set(BlacklistedToken.objects.values_list("token__jti", flat=True))
    outstanding = set(OutstandingToken.objects.filter(user=owner).values_list("jti", flat=True))
    assert blacklisted == outstanding - {new_refresh["jti"]}
    assert RefreshToken(other_refresh, verify=False)["jti"] in blacklisted
    fresh = Client()
    fresh.cookies[REFRESH] = other_refresh
    assert fresh.get("/settings").status_code == 302


def test_the_new_password_logs_in_and_the_old_one_no_longer_does(owner, page):
    page.post(
        "/settings/password",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    old = Client().post("/login", {"email": owner.email, "password": PASSWORD})
    new = Client().post("/login", {"email": owner.email, "password": NEW_PASSWORD})

    assert (old.status_code, new.status_code) == (400, 302)


def test_a_django_session_survives_the_password_change(page):
    page.post(
        "/settings/password",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    page.cookies.pop(ACCESS, None)
    page.cookies.pop(REFRESH, None)

    assert page.get("/settings").status_code == 200


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            {
                "old_password": "wrong-one-1",
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
            },
            "old_password",
            "Your old password was entered incorrectly",
        ),
        (
            {
                "old_password": PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": "other-77-x",
            },
            "new_password2",
            "The two password fields didn",
        ),
        (
            {"old_password": PASSWORD, "new_password1": "short", "new_password2": "short"},
            "new_password2",
            "This password is too short",
        ),
        (
            {"old_password": PASSWORD, "new_password1": "password", "new_password2": "password"},
            "new_password2",
            "This password is too common",
        ),
        (
            {
                "old_password": PASSWORD,
                "new_password1": "83920174652",
                "new_password2": "83920174652",
            },
            "new_password2",
            "This password is entirely numeric",
        ),
    ],
)
def test_a_refused_password_change_shows_why_and_changes_nothing(owner, page, form, field, message):
    before = _row(owner)

    response = page.post("/settings/password", form)

    assert response.status_code == 400
    assert message in " ".join(response.context["password_form"].errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert _row(owner) == before
    assert BlacklistedToken.objects.count() == 0
    assert REFRESH not in response.cookies


# --- Low-balance threshold --------------------------------------------------------------------


def test_the_threshold_is_saved(owner, page):
    response = page.post("/settings/low-balance", {"low_balance_threshold": "2500"})

    assert (response.status_code, response["Location"]) == (302, "/settings")
    assert User.objects.get(pk=owner.id).low_balance_threshold == 2500
    assert "Low-balance threshold saved." in page.get("/settings").content.decode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "greater than or equal to 0"),
        ("ten", "Enter a whole number"),
        ("1.5", "Enter a whole number"),
        ("", "This field is required"),
        (str(2**63), "less than or equal to"),
    ],
)
def test_a_bad_threshold_is_refused_and_shown(owner, page, value, message):
    before = _row(owner)

    response = page.post("/settings/low-balance", {"low_balance_threshold": value})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert _row(owner) == before


# --- Webhook URL, secret, test event -----------------------------------------------------------


def test_the_first_url_generates_a_secret_that_the_page_shows(owner, page):
    response = page.post("/settings/webhook", {"url": HOOK})

    user = User.objects.get(pk=owner.id)
    body = page.get("/settings").content.decode()
    assert (response.status_code, user.webhook_url) == (302, HOOK)
    assert user.webhook_secret.startswith("whsec_")
    assert f'<code id="webhook-secret">{user.webhook_secret}</code>' in body
    assert 'id="send-test"' in body
    assert "ClawWits-Signature" in body


def test_regenerating_the_secret_replaces_it(owner, page):
    page.post("/settings/webhook", {"url": HOOK})
    old = User.objects.get(pk=owner.id).webhook_secret

    response = page.post("/settings/webhook/secret")

    new = User.objects.get(pk=owner.id).webhook_secret
    assert response.status_code == 302
    assert new.startswith("whsec_")
    assert new != old
    assert new in page.get("/settings").content.decode()


def test_changing_or_clearing_the_url_keeps_the_secret(owner, page):
    page.post("/settings/webhook", {"url": HOOK})
    secret = User.objects.get(pk=owner.id).webhook_secret

    page.post("/settings/webhook", {"url": HOOK + "/v2"})
    page.post("/settings/webhook", {"url": ""})

    user = User.objects.get(pk=owner.id)
    assert (user.webhook_url, user.webhook_secret) == ("", secret)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (link-local)"),
        ("http://10.0.0.5/hook", "10.0.0.5 (private)"),
        ("http://0x7f.1/", "127.0.0.1 (loopback)"),
        ("http://evil.com@127.0.0.1/", "must not contain a user name"),
        ("ftp://example.com/", "https:// or http://"),
        ("http://localhost/", "fully qualified"),
    ],
)
def test_an_unsafe_url_is_refused_with_the_reason_shown(owner, page, settings, url, message):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    before = _row(owner)

    response = page.post("/settings/webhook", {"url": url})

    assert response.status_code == 400
    assert message in " ".join(response.context["webhook_form"].errors["url"])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert _row(owner) == before


def test_send_test_event_stores_a_test_event(owner, page):
    page.post("/settings/webhook", {"url": HOOK})

    response = page.post("/settings/webhook/test")

    [event] = WebhookEvent.objects.filter(user_id=owner.id)
    assert (response.status_code, event.type, event.state) == (302, "webhook.test", "pending")
    body = page.get("/settings").content.decode()
    assert f"Test event {event.id} queued." in body
    assert f'data-event-id="{event.id}"' in body


def test_send_test_event_without_a_url_shows_an_error(owner, page):
    response = page.post("/settings/webhook/test")

    assert response.status_code == 400
    assert "Set a webhook URL first." in response.content.decode()
    assert WebhookEvent.objects.count() == 0


def test_too_many_test_events_are_refused(owner, page):
    webhooks.update_settings(user_id=owner.id, url=HOOK)
    statuses = [page.post("/settings/webhook/test").status_code for _ in range(6)]

    assert statuses == [302] * 5 + [429]
    assert WebhookEvent.objects.filter(user_id=owner.id).count() == 5


def test_another_accounts_events_and_secret_never_show(owner, page, make_user):
    other = make_user()
    webhooks.update_settings(user_id=other.id, url=HOOK)
    event = webhooks.send_test_event(user_id=other.id)
    secret = User.objects.get(pk=other.id).webhook_secret

    body = page.get("/settings").content.decode()

    assert event.id not in body
    assert secret not in body


# --- CSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/settings/password", {"old_password": PASSWORD, "new_password1": NEW_PASSWORD}),
        ("/settings/low-balance", {"low_balance_threshold": "1"}),
        ("/settings/webhook", {"url": HOOK}),
        ("/settings/webhook/secret", {}),
        ("/settings/webhook/test", {}),
    ],
)
def test_every_settings_form_needs_a_csrf_token(owner, path, data):
    webhooks.update_settings(user_id=owner.id, url=HOOK)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    before = _row(owner)

    response = client.post(path, data)

    assert response.status_code == 403
    assert _row(owner) == before
    assert WebhookEvent.objects.count() == 0


def test_a_form_posted_with_the_pages_csrf_token_is_accepted(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    token = client.get("/settings").context["csrf_token"]

    response = client.post(
        "/settings/low-balance", {"low_balance_threshold": "7", "csrfmiddlewaretoken": str(token)}
    )

    assert response.status_code == 302
    assert User.objects.get(pk=owner.id).low_balance_threshold == 7
