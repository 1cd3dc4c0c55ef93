"""The /api-keys pages: create (shown once), list, revoke, rename, rotate; tenants isolated."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.scopes import Scope

pytestmark = pytest.mark.django_db

BALANCE = "/v1/wits/balance"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def owner(make_user):
    return make_user(wits=100)


@pytest.fixture
def page(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def _directives(response) -> set[str]:
    return {part.strip() for part in response["Cache-Control"].split(",")}


def _without_csrf(content: bytes) -> bytes:
    # The masked CSRF token differs on every response; everything else must be identical.
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", content)


def _snapshot(user) -> list[dict]:
    return list(ApiKey.objects.filter(user=user).order_by("id").values())


def test_keys_page_needs_a_login():
    response = Client().get("/api-keys")

    assert (response.status_code, response["Location"]) == (302, "/login?next=/api-keys")


def test_create_shows_the_plaintext_once_with_no_store(owner, page):
    response = page.post("/api-keys", {"name": "laptop", "scopes": ["ai", "data"]})

    issued = response.context["issued"]
    body = response.content.decode()
    assert response.status_code == 200
    assert f'<code id="new-key-value">{issued.plaintext}</code>' in body
    assert body.count(issued.plaintext) == 1
    assert "no-store" in _directives(response)
    key = ApiKey.objects.get(user=owner)
    assert (key.name, key.scope_set) == ("laptop", frozenset({Scope.AI, Scope.DATA}))
    assert key.digest == hashlib.sha256(issued.plaintext.encode()).hexdigest()


def test_list_shows_the_visible_prefix_but_never_the_plaintext(owner, page):
    issued = page.post("/api-keys", {"name": "laptop", "scopes": ["ai"]}).context["issued"]

    response = page.get("/api-keys")

    body = response.content.decode()
    assert response.status_code == 200
    assert issued.plaintext not in body
    assert issued.plaintext[18:] not in body
    assert f"<code>{issued.key.visible_prefix}…</code>" in body
    assert 'id="new-key-value"' not in body
    assert "no-store" in _directives(response)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "laptop"}, "at least one scope is required"),
        ({"name": "laptop", "scopes": ["root"]}, "unknown scope &#x27;root&#x27;"),
        ({"name": "  ", "scopes": ["ai"]}, "name: a key needs a name."),
        ({"name": "x" * 101, "scopes": ["ai"]}, "name: at most 100 characters."),
    ],
)
def test_create_refuses_bad_input_and_creates_nothing(owner, page, data, error):
    response = page.post("/api-keys", data)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert response.context["issued"] is None
    assert ApiKey.objects.filter(user=owner).count() == 0


def test_create_without_csrf_token_is_refused(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post("/api-keys", {"name": "laptop", "scopes": ["ai"]})

    assert response.status_code == 403
    assert ApiKey.objects.filter(user=owner).count() == 0


def test_revoke_from_the_page_stops_the_key(owner, page, make_api_key, key_row, api_client):
    plaintext = make_api_key(owner, "ai")
    key = key_row(plaintext)

    response = page.post(f"/api-keys/{key.id}/revoke")

    assert (response.status_code, response["Location"]) == (302, "/api-keys")
    key.refresh_from_db()
    assert key.state == "revoked"
    assert api_client.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 401
    listing = page.get("/api-keys").content.decode()
    assert '<td class="state">revoked</td>' in listing


def test_rename_from_the_page(owner, page, make_api_key, key_row):
    key = key_row(make_api_key(owner, "ai", name="old"))

    response = page.post(f"/api-keys/{key.id}/rename", {"name": "  new name  "})

    assert (response.status_code, response["Location"]) == (302, "/api-keys")
    key.refresh_from_db()
    assert key.name == "new name"


def test_rename_to_an_empty_name_changes_nothing(owner, page, make_api_key, key_row):
    key = key_row(make_api_key(owner, "ai", name="old"))
    before = _snapshot(owner)

    response = page.post(f"/api-keys/{key.id}/rename", {"name": " "})

    assert response.status_code == 400
    assert "name: a key needs a name." in response.content.decode()
    assert _snapshot(owner) == before


def test_page_offers_rename_rotate_and_revoke_for_an_active_key(owner, page, make_api_key, key_row):
    key = key_row(make_api_key(owner, "ai"))

    body = page.get("/api-keys").content.decode()

    assert f'action="/api-keys/{key.id}/rename"' in body
    assert f'action="/api-keys/{key.id}/rotate"' in body
    assert f'action="/api-keys/{key.id}/revoke"' in body
    assert '<option value="3600">1 hour</option>' in body


def test_rotate_with_grace_keeps_the_old_key_until_it_expires(
    owner, page, make_api_key, key_row, api_client, clock
):
    # Given: a key in use
    old = make_api_key(owner, "ai,data", name="ci")
    old_key = key_row(old)
    rotated_at = clock.now

    # When: it is rotated with one hour of grace
    response = page.post(f"/api-keys/{old_key.id}/rotate", {"grace_seconds": "3600"})

    # Then: the successor is shown once; the old key works for exactly that hour
    issued = response.context["issued"]
    assert response.status_code == 200
    assert response.content.decode().count(issued.plaintext) == 1
    assert "no-store" in _directives(response)
    old_key.refresh_from_db()
    assert (old_key.expires_at, old_key.revoked_at) == (rotated_at + timedelta(hours=1), None)
    assert (issued.key.name, issued.key.scopes, issued.key.rotated_from_id) == (
        "ci",
        "ai,data",
        old_key.id,
    )
    clock.advance(3599)
    assert api_client.get(BALANCE, HTTP_X_API_KEY=old).status_code == 200
    clock.advance(1)
    assert api_client.get(BALANCE, HTTP_X_API_KEY=old).status_code == 401
    assert api_client.get(BALANCE, HTTP_X_API_KEY=issued.plaintext).status_code == 200


def test_rotate_immediately_revokes_the_old_key(owner, page, make_api_key, key_row, api_client):
    old = make_api_key(owner, "ai")
    old_key = key_row(old)

    response = page.post(f"/api-keys/{old_key.id}/rotate", {"grace_seconds": "0"})

    assert response.status_code == 200
    assert api_client.get(BALANCE, HTTP_X_API_KEY=old).status_code == 401
    new = response.context["issued"].plaintext
    assert api_client.get(BALANCE, HTTP_X_API_KEY=new).status_code == 200


@pytest.mark.parametrize("grace", ["soon", "-1", str(30 * 86400 + 1)])
def test_rotate_with_a_bad_grace_changes_nothing(owner, page, make_api_key, key_row, grace):
    key = key_row(make_api_key(owner, "ai"))
    before = _snapshot(owner)

    response = page.post(f"/api-keys/{key.id}/rotate", {"grace_seconds": grace})

    assert response.status_code == 400
    assert response.context["issued"] is None
    assert _snapshot(owner) == before


def test_a_revoked_key_cannot_be_rotated(owner, page, make_api_key, key_row):
    key = key_row(make_api_key(owner, "ai"))
    page.post(f"/api-keys/{key.id}/revoke")
    before = _snapshot(owner)

    response = page.post(f"/api-keys/{key.id}/rotate", {"grace_seconds": "3600"})

    assert response.status_code == 400
    assert "This key is revoked or expired." in response.content.decode()
    assert _snapshot(owner) == before


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("revoke", {}),
        ("rename", {"name": "pwned"}),
        ("rotate", {"grace_seconds": "0"}),
        ("rotate", {"grace_seconds": "3600"}),
    ],
)
def test_another_tenants_key_is_a_404_and_nothing_changes(
    owner, make_user, make_api_key, key_row, api_client, action, data
):
    # Given: the owner's key, and an intruder logged in to the site
    plaintext = make_api_key(owner, "full", name="mine")
    key = key_row(plaintext)
    intruder = make_user()
    client = Client()
    client.force_login(intruder)
    before = list(ApiKey.objects.order_by("id").values())

    # When: the intruder posts to the owner's key's page, and to an unknown key's
    theirs = client.post(f"/api-keys/{key.id}/{action}", data)
    unknown = client.post(f"/api-keys/{UNKNOWN_ID}/{action}", data)

    # Then: both are the same 404 page and nothing changed anywhere
    assert (theirs.status_code, unknown.status_code) == (404, 404)
    assert _without_csrf(theirs.content) == _without_csrf(unknown.content)
    assert list(ApiKey.objects.order_by("id").values()) == before
    assert api_client.get(BALANCE, HTTP_X_API_KEY=plaintext).status_code == 200


def test_another_tenants_keys_never_appear_in_my_list(owner, make_user, make_api_key, page):
    theirs = make_api_key(make_user(), "full", name="their-secret-name")

    body = page.get("/api-keys").content.decode()

    assert "their-secret-name" not in body
    assert theirs[:14] not in body
    assert "No keys yet." in body


@pytest.mark.parametrize("action", ["revoke", "rename", "rotate"])
def test_key_actions_refuse_get(owner, page, make_api_key, key_row, action):
    key = key_row(make_api_key(owner, "ai"))
    before = _snapshot(owner)

    response = page.get(f"/api-keys/{key.id}/{action}")

    assert response.status_code == 405
    assert _snapshot(owner) == before
