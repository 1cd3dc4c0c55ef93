"""Authentication of /v1 requests by API key and by JWT (DESIGN §3, BAR 9 and 10)."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from apikeys import keys, services
from apikeys.models import ApiKey
from apikeys.scopes import Scope

pytestmark = pytest.mark.django_db

BALANCE = "/v1/wits/balance"
UNAUTHORIZED_BODY = (
    b'{"error": {"code": "unauthorized", "type": "authentication_error", '
    b'"message": "Missing or invalid credentials.", "param": null}}'
)


def _balance_body(user: object, available: int) -> dict:
    return {"userId": str(user.id), "available": available, "reserved": 0, "lifetimeUsed": 0}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda k: {"HTTP_AUTHORIZATION": f"Bearer {k}"}, id="bearer"),
        pytest.param(lambda k: {"HTTP_AUTHORIZATION": f"bearer {k}"}, id="lowercase-bearer"),
        pytest.param(lambda k: {"HTTP_AUTHORIZATION": f"BEARER {k}"}, id="uppercase-bearer"),
        pytest.param(lambda k: {"HTTP_AUTHORIZATION": f"Bearer    {k}   "}, id="extra-spaces"),
        pytest.param(lambda k: {"HTTP_X_API_KEY": k}, id="x-api-key"),
        pytest.param(lambda k: {"HTTP_X_API_KEY": f"  {k} "}, id="x-api-key-spaces"),
    ],
)
def test_key_authenticates_in_every_header_form(make_user, make_api_key, api_client, headers):
    user = make_user(wits=500)
    plaintext = make_api_key(user, "ai")

    response = api_client.get(BALANCE, **headers(plaintext))

    assert response.status_code == 200
    assert response.json() == _balance_body(user, 500)


def test_jwt_in_authorization_header_authenticates(make_user, api_client):
    user = make_user(wits=700)
    token = str(AccessToken.for_user(user))

    response = api_client.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert response.json() == _balance_body(user, 700)


def _rotated_past_grace(user, make_api_key, clock) -> str:
    plaintext = make_api_key(user, "ai")
    key = ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)
    services.rotate_key(user_id=user.id, key_id=key.id, grace_seconds=60)
    clock.advance(61)
    return plaintext


def _inactive_user_key(user, make_api_key, clock) -> str:
    plaintext = make_api_key(user, "full")
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    return plaintext


def _revoked(user, make_api_key, clock) -> str:
    plaintext = make_api_key(user, "full")
    key = ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)
    services.revoke_key(user_id=user.id, key_id=key.id)
    return plaintext


def _wrong_secret(user, make_api_key, clock) -> str:
    plaintext = make_api_key(user, "full")
    last = "A" if plaintext[-1] != "A" else "B"
    return plaintext[:-1] + last


BAD_CREDENTIALS = {
    "missing": lambda user, make_key, clock: {},
    "malformed-short": lambda user, make_key, clock: {"HTTP_AUTHORIZATION": "Bearer cw_sk_abc"},
    "malformed-alphabet": lambda user, make_key, clock: {
        "HTTP_AUTHORIZATION": "Bearer cw_sk_" + "!" * 52
    },
    "malformed-x-api-key": lambda user, make_key, clock: {"HTTP_X_API_KEY": "not a key"},
    "empty-x-api-key": lambda user, make_key, clock: {"HTTP_X_API_KEY": ""},
    "unknown": lambda user, make_key, clock: {
        "HTTP_AUTHORIZATION": f"Bearer {keys.generate().plaintext}"
    },
    "wrong-secret": lambda user, make_key, clock: {
        "HTTP_AUTHORIZATION": f"Bearer {_wrong_secret(user, make_key, clock)}"
    },
    "revoked": lambda user, make_key, clock: {
        "HTTP_AUTHORIZATION": f"Bearer {_revoked(user, make_key, clock)}"
    },
    "expired-after-rotation-grace": lambda user, make_key, clock: {
        "HTTP_X_API_KEY": _rotated_past_grace(user, make_key, clock)
    },
    "inactive-user": lambda user, make_key, clock: {
        "HTTP_AUTHORIZATION": f"Bearer {_inactive_user_key(user, make_key, clock)}"
    },
    "jwt-in-x-api-key": lambda user, make_key, clock: {
        "HTTP_X_API_KEY": str(AccessToken.for_user(user))
    },
    "garbage-bearer-token": lambda user, make_key, clock: {
        "HTTP_AUTHORIZATION": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.bad"
    },
    "basic-auth": lambda user, make_key, clock: {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_every_bad_credential_gets_the_same_401_body(
    make_user, make_api_key, api_client, clock, case
):
    user = make_user(wits=100)
    headers = BAD_CREDENTIALS[case](user, make_api_key, clock)
    before = list(ApiKey.objects.order_by("id").values())

    response = api_client.get(BALANCE, **headers)

    assert response.status_code == 401
    assert response.content == UNAUTHORIZED_BODY
    assert response["Content-Type"] == "application/json"
    assert list(ApiKey.objects.order_by("id").values()) == before


def test_rotated_key_works_until_its_grace_ends(make_user, make_api_key, api_client, clock):
    user = make_user(wits=100)
    old = make_api_key(user, "ai")
    key = ApiKey.objects.get(lookup=keys.parse(old).lookup)
    issued = services.rotate_key(user_id=user.id, key_id=key.id, grace_seconds=60)

    clock.advance(59)
    assert api_client.get(BALANCE, HTTP_X_API_KEY=old).status_code == 200
    clock.advance(2)
    assert api_client.get(BALANCE, HTTP_X_API_KEY=old).content == UNAUTHORIZED_BODY
    assert api_client.get(BALANCE, HTTP_X_API_KEY=issued.plaintext).status_code == 200


def test_revoked_key_fails_on_the_very_next_request(make_user, make_api_key, api_client):
    user = make_user(wits=100)
    plaintext = make_api_key(user, "full")
    key = ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)
    assert api_client.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200

    services.revoke_key(user_id=user.id, key_id=key.id)
    response = api_client.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    assert response.status_code == 401
    assert response.content == UNAUTHORIZED_BODY


def test_revocation_seen_by_a_second_client(make_user, make_api_key):
    user = make_user(wits=100)
    plaintext = make_api_key(user, "full")
    key = ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)
    first, second = APIClient(), APIClient()
    assert first.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 200
    assert second.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 200

    services.revoke_key(user_id=user.id, key_id=key.id)

    assert first.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 401
    assert second.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 401


def _updates_of_api_keys(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "apikeys_apikey"')
    ]


def test_last_used_at_is_written_at_most_once_a_minute(
    make_user, make_api_key, api_client, key_row, clock
):
    user = make_user(wits=100)
    plaintext = make_api_key(user, "ai")
    assert key_row(plaintext).last_used_at is None
    first_use = clock.now

    assert api_client.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 200
    assert key_row(plaintext).last_used_at == first_use

    clock.advance(30)
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 200
    assert _updates_of_api_keys(queries) == []
    assert key_row(plaintext).last_used_at == first_use

    clock.advance(29.999)
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 200
    assert _updates_of_api_keys(queries) == []
    assert key_row(plaintext).last_used_at == first_use

    later = clock.advance(0.002)
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 200
    assert len(_updates_of_api_keys(queries)) == 1
    assert key_row(plaintext).last_used_at == later


def test_failed_authentication_does_not_touch_last_used_at(
    make_user, make_api_key, api_client, key_row
):
    user = make_user(wits=100)
    plaintext = make_api_key(user, "ai")
    wrong = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")

    assert api_client.get(BALANCE, HTTP_X_API_KEY=wrong).status_code == 401

    assert key_row(plaintext).last_used_at is None


def test_plaintext_appears_in_exactly_one_response_and_never_in_logs_or_database(
    make_user, api_client, caplog
):
    """BAR 9: the create response is the only place the plaintext ever appears."""
    from django.test import Client

    # Given: an owner with a browser session and a staff member in the admin
    owner = make_user(wits=100)
    staff = make_user(staff=True)
    owner_page = Client()
    owner_page.force_login(owner)
    admin = Client()
    admin.force_login(staff)
    jwt = {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(owner)}"}
    caplog.set_level(logging.DEBUG)
    for name in ("django", "django.request", "django.db.backends", "django.server"):
        caplog.set_level(logging.DEBUG, logger=name)

    # When: the key is created, listed, used, shown in every page, rotated and revoked
    with CaptureQueriesContext(connection) as queries:
        created = api_client.post(
            "/v1/keys", {"name": "ci", "scopes": ["full"]}, format="json", **jwt
        )
        plaintext = created.json()["key"]
        key_id = created.json()["id"]
        responses = [
            api_client.get("/v1/keys", **jwt),
            api_client.get(f"/v1/keys/{key_id}", **jwt),
            api_client.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {plaintext}"),
            api_client.get(BALANCE, HTTP_X_API_KEY=plaintext),
            api_client.get("/v1/keys", HTTP_X_API_KEY=plaintext),
            api_client.get("/v1/wits/transactions", HTTP_X_API_KEY=plaintext),
            api_client.get("/v1/nope", HTTP_X_API_KEY=plaintext),
            api_client.post(
                "/v1/keys", "{bad json", content_type="application/json", HTTP_X_API_KEY=plaintext
            ),
            owner_page.get("/api-keys"),
            owner_page.get("/dashboard"),
            admin.get("/admin/apikeys/apikey/"),
            admin.get(f"/admin/apikeys/apikey/{key_id}/change/"),
            api_client.post(f"/v1/keys/{key_id}/revoke", **jwt),
            api_client.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {plaintext}"),
            admin.get("/admin/apikeys/apikey/"),
        ]

    # Then
    assert created.status_code == 201
    assert plaintext in created.content.decode()
    assert [r.status_code for r in responses] == [
        200,
        200,
        200,
        200,
        200,
        200,
        404,
        400,
        200,
        200,
        200,
        200,
        200,
        401,
        200,
    ]
    assert [plaintext in r.content.decode() for r in responses] == [False] * len(responses)
    secret = plaintext[len(keys.PREFIX) + keys.LOOKUP_LEN :]
    assert [r for r in caplog.records if secret in r.getMessage()] == []
    assert secret not in caplog.text
    assert len(caplog.records) > 0
    assert [q["sql"] for q in queries.captured_queries if secret in q["sql"]] == []
    row = ApiKey.objects.filter(pk=key_id).values().get()
    assert row["digest"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert [name for name, value in row.items() if secret in str(value)] == []
    assert secret not in json.dumps(list(ApiKey.objects.values()), default=str)


def test_key_created_from_the_page_is_never_logged(make_user, caplog):
    from django.test import Client

    owner = make_user(wits=100)
    page = Client()
    page.force_login(owner)
    caplog.set_level(logging.DEBUG)

    with CaptureQueriesContext(connection):
        response = page.post("/api-keys", {"name": "laptop", "scopes": ["ai"]})
    plaintext = response.context["issued"].plaintext

    assert response.status_code == 200
    assert plaintext not in caplog.text
    assert ApiKey.objects.get(user=owner).scope_set == frozenset({Scope.AI})
