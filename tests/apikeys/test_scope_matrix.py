"""BAR 11: every /v1 route × every kind of credential → the one expected status.

The matrix is a table. A /v1 route added to clawwits.urls without rows here fails
`test_every_v1_route_has_rows_in_the_matrix`, so no endpoint ships unchecked. Adding a route is
one `Route(...)` line per method.

User A (the tenant every credential but the other-tenant ones belongs to) holds 1,000,000 Wits
and a target key `{key}` (scopes: automation) that object routes address.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.urls import URLResolver, resolve
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts import webhooks
from apikeys import keys, services
from apikeys.models import ApiKey
from apikeys.scopes import parse_scopes
from clawwits import urls
from wits import ledger
from wits.models import Wallet

CATCH_ALL = r"^v1(?:/.*)?$"


@dataclass(frozen=True)
class Route:
    pattern: str  # exactly as in clawwits.urls
    method: str
    path: str  # `{key}` / `{event}`: the id of tenant A's target key / webhook event
    access: str  # any | ai | data | automation | none (no authentication at all)
    ok: int  # the status a credential allowed to call it gets
    body: dict | None = None
    owned: bool = False  # addresses one of A's objects: other tenants get 404

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


CHAT = {"model": "clawwits-sandbox", "messages": [{"role": "user", "content": "hi"}]}
EMBED = {"model": "clawwits-embed", "input": "hi"}
NEW_KEY = {"name": "m", "scopes": ["automation"]}
RENAME = {"name": "r"}
ROTATE = {"grace_seconds": 0}
KEY = "v1/keys/<uuid:key_id>"
KEY_PATH = "/v1/keys/{key}"
WEBHOOK = {"url": "http://127.0.0.1:9/hook"}
EVENT = "v1/webhooks/events/<str:event_id>"
EVENT_PATH = "/v1/webhooks/events/{event}"

ROUTES = [
    Route("v1/chat/completions", "POST", "/v1/chat/completions", "ai", 200, CHAT),
    Route("v1/chat/completions", "GET", "/v1/chat/completions", "ai", 405),
    Route("v1/messages", "POST", "/v1/messages", "ai", 200, {**CHAT, "max_tokens": 8}),
    Route("v1/embeddings", "POST", "/v1/embeddings", "ai", 200, EMBED),
    Route("v1/models", "GET", "/v1/models", "any", 200),
    Route("v1/models", "POST", "/v1/models", "any", 405),
    Route("v1/wits/balance", "GET", "/v1/wits/balance", "any", 200),
    Route("v1/wits/balance", "POST", "/v1/wits/balance", "any", 405),
    Route("v1/wits/transactions", "GET", "/v1/wits/transactions", "data", 200),
    Route("v1/wits/transactions", "DELETE", "/v1/wits/transactions", "data", 405),
    Route("v1/keys", "GET", "/v1/keys", "automation", 200),
    Route("v1/keys", "POST", "/v1/keys", "automation", 201, NEW_KEY),
    Route("v1/keys", "DELETE", "/v1/keys", "automation", 405),
    Route(KEY, "GET", KEY_PATH, "automation", 200, owned=True),
    Route(KEY, "PATCH", KEY_PATH, "automation", 200, RENAME, owned=True),
    Route(KEY, "DELETE", KEY_PATH, "automation", 405),
    Route(f"{KEY}/revoke", "POST", f"{KEY_PATH}/revoke", "automation", 200, owned=True),
    Route(f"{KEY}/rotate", "POST", f"{KEY_PATH}/rotate", "automation", 201, ROTATE, owned=True),
    Route(f"{KEY}/rotate", "GET", f"{KEY_PATH}/rotate", "automation", 405),
    Route("v1/usage", "GET", "/v1/usage", "data", 200),
    Route("v1/usage", "POST", "/v1/usage", "data", 405),
    Route("v1/usage/summary", "GET", "/v1/usage/summary", "data", 200),
    Route("v1/usage/summary", "DELETE", "/v1/usage/summary", "data", 405),
    Route("v1/webhooks", "GET", "/v1/webhooks", "automation", 200),
    Route("v1/webhooks", "PUT", "/v1/webhooks", "automation", 200, WEBHOOK),
    Route("v1/webhooks", "DELETE", "/v1/webhooks", "automation", 405),
    Route("v1/webhooks/test", "POST", "/v1/webhooks/test", "automation", 202),
    Route("v1/webhooks/test", "GET", "/v1/webhooks/test", "automation", 405),
    Route(EVENT, "GET", EVENT_PATH, "automation", 200, owned=True),
    Route(EVENT, "DELETE", EVENT_PATH, "automation", 405),
    Route("v1/openapi.json", "GET", "/v1/openapi.json", "none", 200),
    Route("v1/openapi.json", "POST", "/v1/openapi.json", "none", 405),
    Route(CATCH_ALL, "GET", "/v1", "none", 404),
    Route(CATCH_ALL, "GET", "/v1/nope", "none", 404),
    Route(CATCH_ALL, "POST", "/v1/keys/not-a-uuid/revoke", "none", 404),
    Route(CATCH_ALL, "GET", "/v1/keys/", "none", 404),
    Route(CATCH_ALL, "DELETE", "/v1/wits/balance/extra", "none", 404),
]


@dataclass(frozen=True)
class Credential:
    name: str
    tenant: str  # "a", "b" or "" for anonymous
    key_scopes: str = ""  # an API key with these scopes; else a JWT (or nothing)
    jwt: str = ""  # "cookie" or "header"


CREDENTIALS = [
    Credential("key:full", "a", key_scopes="full"),
    Credential("key:ai", "a", key_scopes="ai"),
    Credential("key:data", "a", key_scopes="data"),
    Credential("key:automation", "a", key_scopes="automation"),
    Credential("jwt-cookie", "a", jwt="cookie"),
    Credential("jwt-header", "a", jwt="header"),
    Credential("anonymous", ""),
    Credential("other-tenant:key-full", "b", key_scopes="full"),
    Credential("other-tenant:jwt-header", "b", jwt="header"),
]

# Written out by hand rather than derived from apikeys.scopes, so the code under test is not its
# own oracle. Sessions and `full` keys pass every scope check, whichever tenant they belong to.
FULL_POWER = {
    "key:full",
    "jwt-cookie",
    "jwt-header",
    "other-tenant:key-full",
    "other-tenant:jwt-header",
}
ALLOWED: dict[str, set[str]] = {
    "any": {c.name for c in CREDENTIALS if c.tenant},
    "ai": FULL_POWER | {"key:ai"},
    "data": FULL_POWER | {"key:data"},
    "automation": FULL_POWER | {"key:automation"},
}


def expected_status(route: Route, credential: Credential) -> int:
    if route.access == "none":
        return route.ok
    if not credential.tenant:
        return 401
    if credential.name not in ALLOWED[route.access]:
        return 403
    if route.owned and credential.tenant != "a":
        return 404
    return route.ok


def _v1_patterns(patterns: list, prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _v1_patterns(entry.url_patterns, text)
        elif text.lstrip("^").startswith("v1"):
            yield text


def test_every_v1_route_has_rows_in_the_matrix():
    routed = set(_v1_patterns(urls.urlpatterns))
    tabled = {route.pattern for route in ROUTES}

    assert sorted(routed - tabled) == [], "add Route(...) rows to ROUTES for these /v1 routes"
    assert sorted(tabled - routed) == [], "ROUTES has rows for routes that no longer exist"


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_row_addresses_the_route_it_names(route):
    path = route.path.replace("{key}", "00000000-0000-4000-8000-000000000000")
    path = path.replace("{event}", "evt_0")

    assert resolve(path).route == route.pattern


@dataclass
class World:
    user_a: object
    user_b: object
    target: ApiKey
    event_id: str
    clients: dict[str, APIClient] = field(default_factory=dict)


def _client_for(credential: Credential, users: dict[str, object], make_api_key) -> APIClient:
    client = APIClient()
    if not credential.tenant:
        return client
    user = users[credential.tenant]
    if credential.key_scopes:
        plaintext = make_api_key(user, credential.key_scopes, name=credential.name)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    elif credential.jwt == "header":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    else:
        client.cookies[settings.JWT_ACCESS_COOKIE] = str(AccessToken.for_user(user))
    return client


@pytest.fixture
def world(make_user, make_api_key) -> Iterator[World]:
    from gateway import catalog

    # Another test may have left this process a snapshot of models that no longer exist.
    catalog.invalidate()
    user_a = make_user(wits=1_000_000)
    user_b = make_user(wits=1_000_000)
    target = make_api_key(user_a, "automation", name="target")
    users = {"a": user_a, "b": user_b}
    # Both tenants have a webhook URL (a test event needs one); A has one event to address.
    for user in users.values():
        webhooks.update_settings(user_id=user.id, url=WEBHOOK["url"])
    event = webhooks.send_test_event(user_id=user_a.id)
    clients = {c.name: _client_for(c, users, make_api_key) for c in CREDENTIALS}
    target_row = ApiKey.objects.get(lookup=keys.parse(target).lookup)
    yield World(user_a, user_b, target_row, event.id, clients)
    catalog.invalidate()


def _wallets_snapshot() -> list[dict]:
    return list(Wallet.objects.order_by("user_id").values())


def _keys_snapshot() -> list[dict]:
    # last_used_at is left out: authenticating (even for a 403) records the key's use.
    return list(
        ApiKey.objects.order_by("id").values(
            *[f.name for f in ApiKey._meta.concrete_fields if f.name != "last_used_at"]
        )
    )


@pytest.mark.django_db
@pytest.mark.parametrize("credential", CREDENTIALS, ids=lambda c: c.name)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_route_answers_each_credential_with_the_expected_status(world, route, credential):
    client = world.clients[credential.name]
    path = route.path.replace("{key}", str(world.target.id)).replace("{event}", world.event_id)
    before = (_keys_snapshot(), _wallets_snapshot())
    balance_a = ledger.balance(user_id=world.user_a.id)
    want = expected_status(route, credential)

    response = client.generic(
        route.method,
        path,
        data=None if route.body is None else json.dumps(route.body),
        content_type="application/json",
    )

    assert (response.status_code, response["Content-Type"]) == (want, "application/json")
    if want >= 400:
        assert (_keys_snapshot(), _wallets_snapshot()) == before
        envelope = {"type", "error"} if route.path == "/v1/messages" else {"error"}
        assert set(response.json()) == envelope
    if credential.tenant == "b":
        body = response.content.decode()
        assert str(world.user_a.id) not in body
        assert str(world.target.id) not in body
        assert world.event_id not in body
        assert ledger.balance(user_id=world.user_a.id) == balance_a
    if credential.tenant == "a" and route.path == "/v1/wits/balance" and want == 200:
        assert response.json()["userId"] == str(world.user_a.id)


def _key_client(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plaintext)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("held", "body", "status"),
    [
        ("automation", {"name": "n", "scopes": ["full"]}, 403),
        ("automation", {"name": "n", "scopes": ["ai"]}, 403),
        ("automation", {"name": "n", "scopes": ["automation", "data"]}, 403),
        ("automation", {"name": "n"}, 403),
        ("automation,data", {"name": "n", "scopes": ["full"]}, 403),
        ("automation,data", {"name": "n", "scopes": ["data", "ai"]}, 403),
        ("automation", {"name": "n", "scopes": ["automation"]}, 201),
        ("automation,data", {"name": "n", "scopes": ["data"]}, 201),
        ("automation,data", {"name": "n", "scopes": ["automation", "data"]}, 201),
        ("full", {"name": "n", "scopes": ["full"]}, 201),
        ("full", {"name": "n", "scopes": ["ai", "data", "automation"]}, 201),
    ],
)
def test_a_key_never_creates_a_key_with_more_scopes_than_itself(
    make_user, make_api_key, held, body, status
):
    user = make_user()
    client = _key_client(make_api_key(user, held))
    before = _keys_snapshot()

    response = client.post("/v1/keys", body, format="json")

    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "insufficient_scope"
        assert _keys_snapshot() == before
    else:
        created = ApiKey.objects.get(pk=response.json()["id"])
        assert created.scope_set == parse_scopes(body["scopes"])
        assert created.user_id == user.id


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("held", "target_scopes", "status"),
    [
        ("automation", "full", 403),
        ("automation", "ai", 403),
        ("automation", "automation,data", 403),
        ("automation,data", "full", 403),
        ("automation", "automation", 201),
        ("automation,ai", "ai", 201),
        ("full", "full", 201),
    ],
)
def test_a_key_never_rotates_into_a_key_with_more_scopes_than_itself(
    make_user, make_api_key, key_row, held, target_scopes, status
):
    user = make_user()
    client = _key_client(make_api_key(user, held, name="caller"))
    target = key_row(make_api_key(user, target_scopes, name="target"))
    before = _keys_snapshot()

    response = client.post(f"/v1/keys/{target.id}/rotate", {"grace_seconds": 60}, format="json")

    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "insufficient_scope"
        assert _keys_snapshot() == before
    else:
        successor = ApiKey.objects.get(pk=response.json()["id"])
        assert successor.scope_set == parse_scopes(target_scopes)
        assert successor.rotated_from_id == target.id


@pytest.mark.django_db
def test_patch_renames_but_never_changes_scopes(make_user, make_api_key, key_row):
    user = make_user()
    client = _key_client(make_api_key(user, "automation"))
    target = key_row(make_api_key(user, "ai", name="old"))

    response = client.patch(
        f"/v1/keys/{target.id}", {"name": "new", "scopes": ["full"]}, format="json"
    )

    assert response.status_code == 200
    target.refresh_from_db()
    assert (target.name, target.scopes) == ("new", "ai")


@pytest.mark.django_db
def test_other_tenants_key_id_is_indistinguishable_from_an_unknown_id(
    make_user, make_api_key, key_row
):
    owner, intruder = make_user(), make_user()
    target = key_row(make_api_key(owner, "full"))
    client = _key_client(make_api_key(intruder, "full"))
    unknown = "00000000-0000-4000-8000-000000000000"

    for suffix, method in (("", "GET"), ("", "PATCH"), ("/revoke", "POST"), ("/rotate", "POST")):
        theirs = client.generic(
            method, f"/v1/keys/{target.id}{suffix}", "{}", content_type="application/json"
        )
        missing = client.generic(
            method, f"/v1/keys/{unknown}{suffix}", "{}", content_type="application/json"
        )
        assert (theirs.status_code, theirs.content) == (404, missing.content)
    assert services.get_key(user_id=owner.id, key_id=target.id).state == "active"
