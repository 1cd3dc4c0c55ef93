"""/api-keys shows each key's Wits spent (its usage records summed, the owner's only) and its
last use, in one query however many keys there are."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apikeys import keys
from apikeys.models import ApiKey
from gateway.models import UsageRecord

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


def _key(make_api_key, user, name: str) -> ApiKey:
    return ApiKey.objects.get(lookup=keys.parse(make_api_key(user, "ai", name=name)).lookup)


def _record(user, key: ApiKey | None, wits: int) -> None:
    UsageRecord.objects.create(
        user_id=user.id,
        api_key_id=key.id if key else None,
        request_id=f"req_spend_{next(_ids)}",
        endpoint="chat",
        model="gpt-fake",
        wits=wits,
        status=200,
    )


def _client(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def _spent(body: str) -> dict[str, str]:
    """key id -> the text of its "Wits spent" cell."""
    return dict(
        re.findall(
            r'<tr data-key-id="([^"]+)">.*?<td class="num spent">([^<]*)</td>', body, re.DOTALL
        )
    )


def test_each_key_shows_the_exact_wits_it_spent(make_user, make_api_key):
    # Given two keys of one account with usage, an unused key, and usage without a key
    owner = make_user()
    laptop = _key(make_api_key, owner, "laptop")
    server = _key(make_api_key, owner, "server")
    idle = _key(make_api_key, owner, "idle")
    for wits in (1_200, 34, 0):
        _record(owner, laptop, wits)
    _record(owner, server, 1_000_000)
    _record(owner, server, 7)
    _record(owner, None, 999)

    # When the owner opens /api-keys
    body = _client(owner).get("/api-keys").content.decode()

    # Then every key shows its own sum, grouped for the language
    assert _spent(body) == {
        str(laptop.id): "1,234",
        str(server.id): "1,000,007",
        str(idle.id): "0",
    }
    assert '<th class="num">Wits spent</th>' in body


def test_another_tenants_usage_is_not_counted(make_user, make_api_key):
    # Given a record of another account that names the owner's key id (it cannot happen
    # through the gateway; the page must not count it even so)
    owner, other = make_user(), make_user()
    key = _key(make_api_key, owner, "mine")
    theirs = _key(make_api_key, other, "theirs")
    _record(owner, key, 50)
    _record(other, key, 10_000)
    _record(other, theirs, 20_000)

    # When the owner opens /api-keys
    body = _client(owner).get("/api-keys").content.decode()

    # Then only the owner's record counts, and the other account's key is not listed
    assert _spent(body) == {str(key.id): "50"}


def test_spend_and_last_use_are_formatted_for_vietnamese(make_user, make_api_key):
    owner = make_user()
    key = _key(make_api_key, owner, "laptop")
    _record(owner, key, 1_234_567)
    used_at = datetime(2025, 3, 10, 8, 5, tzinfo=UTC)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=used_at)

    body = _client(owner, HTTP_ACCEPT_LANGUAGE="vi").get("/api-keys").content.decode()

    assert _spent(body) == {str(key.id): "1.234.567"}
    assert '<th class="num">Wits đã dùng</th>' in body
    assert '<td class="last-used">08:05 10-03-2025</td>' in body
    assert '<td class="state">đang hoạt động</td>' in body
    assert '<option value="3600">1 giờ</option>' in body


def test_the_list_is_one_query_however_many_keys(make_user, make_api_key):
    owner = make_user()
    for index in range(5):
        key = _key(make_api_key, owner, f"key {index}")
        _record(owner, key, index)
    client = _client(owner)
    client.get("/api-keys")  # session, user and tier loads settle on the first request

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api-keys")

    key_queries = [q["sql"] for q in queries if '"apikeys_apikey"' in q["sql"]]
    usage_queries = [q["sql"] for q in queries if '"gateway_usagerecord"' in q["sql"]]
    assert response.status_code == 200
    assert len(_spent(response.content.decode())) == 5
    assert len(key_queries) == 1
    assert usage_queries == key_queries
