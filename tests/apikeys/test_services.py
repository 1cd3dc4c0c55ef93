"""Key lifecycle rules of apikeys.services, seen through the API and the pages."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from apikeys import services
from apikeys.models import ApiKey

pytestmark = pytest.mark.django_db


def _snapshot() -> list[dict]:
    return list(ApiKey.objects.order_by("id").values())


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def session(owner) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(owner)}"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "a\u0000b"}, "name: control characters and lone surrogates are not allowed."),
        ({"name": "line\nbreak"}, "name: control characters and lone surrogates are not allowed."),
        ({"name": "x" * 101}, "name: at most 100 characters."),
        ({"name": "ok", "rate_limit_rpm": 0}, "rate_limit_rpm: between 1 and 2147483647."),
        (
            {"name": "ok", "rate_limit_rpm": 2_147_483_648},
            "rate_limit_rpm: between 1 and 2147483647.",
        ),
        ({"name": "ok", "rate_limit_rpm": "5"}, "rate_limit_rpm: an integer."),
        ({"name": "ok", "rate_limit_rpm": True}, "rate_limit_rpm: an integer."),
        ({"name": 5}, "name: a string."),
        (
            {"name": "ok", "scopes": "ai,root"},
            "scopes: unknown scope 'root'; use full, ai, data or automation",
        ),
        ({"name": "ok", "scopes": {"ai": True}}, "scopes: a list of scope names."),
    ],
)
def test_create_refuses_bad_fields_with_400_and_creates_nothing(api_client, session, body, message):
    response = api_client.post("/v1/keys", {"scopes": ["ai"], **body}, format="json", **session)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert _snapshot() == []


def test_create_accepts_the_largest_storable_limit(api_client, session):
    response = api_client.post(
        "/v1/keys",
        {"name": "ok", "scopes": ["ai"], "rate_limit_rpm": 2_147_483_647},
        format="json",
        **session,
    )

    assert response.status_code == 201
    assert ApiKey.objects.get().rate_limit_rpm == 2_147_483_647


def test_rename_with_a_nul_character_is_400_and_changes_nothing(
    owner, make_api_key, key_row, api_client, session
):
    key = key_row(make_api_key(owner, "ai", name="old"))
    before = _snapshot()

    response = api_client.patch(f"/v1/keys/{key.id}", {"name": "x\u0000"}, format="json", **session)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "name"
    assert _snapshot() == before


def test_page_create_with_a_nul_character_is_400_and_creates_nothing(owner):
    page = Client()
    page.force_login(owner)

    response = page.post("/api-keys", {"name": "a\x00b", "scopes": ["ai"]})

    assert response.status_code == 400
    assert (
        "name: control characters and lone surrogates are not allowed." in response.content.decode()
    )
    assert _snapshot() == []


def test_a_rotated_key_cannot_be_rotated_again(owner, make_api_key, key_row, api_client, session):
    # Given: a key rotated with a one-hour grace
    key = key_row(make_api_key(owner, "ai"))
    services.rotate_key(user_id=owner.id, key_id=key.id, grace_seconds=3600)
    before = _snapshot()

    # When: someone tries to rotate the old key again with a longer grace
    response = api_client.post(
        f"/v1/keys/{key.id}/rotate", {"grace_seconds": 7 * 86400}, format="json", **session
    )

    # Then: refused; its end of life is not pushed back and no second successor exists
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "This key was already rotated; revoke it to end its grace period now."
    )
    assert _snapshot() == before


def test_a_rotated_key_in_grace_can_still_be_revoked(
    owner, make_api_key, key_row, api_client, session
):
    plaintext = make_api_key(owner, "ai")
    key = key_row(plaintext)
    services.rotate_key(user_id=owner.id, key_id=key.id, grace_seconds=3600)

    response = api_client.post(f"/v1/keys/{key.id}/revoke", **session)

    assert (response.status_code, response.json()["state"]) == (200, "revoked")
    assert api_client.get("/v1/wits/balance", HTTP_X_API_KEY=plaintext).status_code == 401


def test_revoke_is_idempotent_and_keeps_the_first_time(owner, make_api_key, key_row, clock):
    key = key_row(make_api_key(owner, "ai"))
    revoked_at = clock.now
    services.revoke_key(user_id=owner.id, key_id=key.id)

    clock.advance(60)
    again = services.revoke_key(user_id=owner.id, key_id=key.id)

    assert again.revoked_at == revoked_at


@pytest.mark.parametrize("grace", [-1, 30 * 86400 + 1, "60", 1.5, None])
def test_rotate_refuses_a_bad_grace_and_changes_nothing(
    owner, make_api_key, key_row, api_client, session, grace
):
    key = key_row(make_api_key(owner, "ai"))
    before = _snapshot()

    response = api_client.post(
        f"/v1/keys/{key.id}/rotate", {"grace_seconds": grace}, format="json", **session
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "grace_seconds"
    assert _snapshot() == before
