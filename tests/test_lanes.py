"""The API-key lane (clawwits.lanes): /v1 calls made with a key skip the page middleware, and
nothing a page or a cookie session relies on changes."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation
from rest_framework_simplejwt.tokens import AccessToken

from clawwits.lanes import keyed_api_call


@pytest.mark.parametrize(
    ("path", "headers", "keyed"),
    [
        ("/v1/models", {"HTTP_AUTHORIZATION": "Bearer cw_sk_abc"}, True),
        ("/v1/models", {"HTTP_X_API_KEY": "anything"}, True),
        ("/v1/models", {"HTTP_AUTHORIZATION": "Bearer eyJhbGciOi"}, False),
        ("/v1/models", {}, False),
        ("/dashboard", {"HTTP_AUTHORIZATION": "Bearer cw_sk_abc"}, False),
        ("/v1x/models", {"HTTP_X_API_KEY": "k"}, False),
    ],
)
def test_only_v1_calls_with_an_api_key_take_the_lane(rf, path, headers, keyed):
    assert keyed_api_call(rf.get(path, **headers)) is keyed


@pytest.mark.django_db
def test_a_keyed_call_sets_no_cookie_and_no_language(make_user, make_api_key):
    key = make_api_key(make_user(), "full")

    response = Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 200
    assert response.cookies == {}
    assert "Content-Language" not in response


@pytest.mark.django_db
def test_a_keyed_call_answers_in_the_default_language_whatever_the_thread_last_spoke(
    make_user, make_api_key
):
    key = make_api_key(make_user(), "automation")
    translation.activate("vi")
    try:
        response = Client().get(
            "/v1/webhooks/events/evt_missing",
            HTTP_AUTHORIZATION=f"Bearer {key}",
            HTTP_ACCEPT_LANGUAGE="vi",
        )
    finally:
        translation.deactivate()

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No such webhook event."


@pytest.mark.django_db
def test_a_cookie_session_on_v1_still_needs_its_csrf_token(make_user):
    user = make_user(wits=1_000)
    client = Client(enforce_csrf_checks=True)
    client.cookies[settings.JWT_ACCESS_COOKIE] = str(AccessToken.for_user(user))

    read = client.get("/v1/wits/balance")
    unsafe = client.post("/v1/keys", {"name": "n"}, content_type="application/json")

    assert read.status_code == 200
    assert read.json()["userId"] == str(user.id)
    assert unsafe.status_code == 403
    assert unsafe.json()["error"]["code"] == "forbidden"


@pytest.mark.django_db
def test_pages_still_get_the_session_language_and_frame_headers(client):
    response = client.get("/login", HTTP_ACCEPT_LANGUAGE="vi")

    assert response.status_code == 200
    assert response["Content-Language"] == "vi"
    assert response["X-Frame-Options"] == "DENY"
