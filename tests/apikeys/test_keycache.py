"""The per-process key cache never outlives a change: BAR item 10 (a revoked key fails on every
process at once) and tier edits taking effect on the next request, across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from django.db import connection

from apikeys import keycache, keys, services
from apikeys.models import ApiKey
from clawwits import redisclient

BALANCE = "/v1/wits/balance"

# A second process holding its own cache: it answers one request per line read on stdin.
WORKER = textwrap.dedent(
    """
    import json, os, sys
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")
    import django
    django.setup()
    from django.test import Client
    client = Client()
    key = sys.argv[1]
    for line in sys.stdin:
        r = client.get("/v1/wits/balance", HTTP_AUTHORIZATION=f"Bearer {key}")
        print(json.dumps({"status": r.status_code,
                          "limit": r.headers.get("x-ratelimit-limit-requests")}), flush=True)
    """
)


def _ask(proc: subprocess.Popen) -> dict:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


@pytest.fixture
def other_process():
    procs = []

    def start(key: str) -> subprocess.Popen:
        env = dict(os.environ)
        db = connection.settings_dict
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.django_db(transaction=True)
def test_revocation_reaches_a_process_that_cached_the_key(make_user, make_api_key, other_process):
    user = make_user(tier="max")
    plaintext = make_api_key(user, "data")
    worker = other_process(plaintext)
    assert _ask(worker)["status"] == 200
    assert _ask(worker)["status"] == 200  # now served from its cache

    key = ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)
    services.revoke_key(user_id=user.id, key_id=key.id)

    assert _ask(worker)["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_tier_edit_in_admin_reaches_a_process_that_cached_the_key(
    make_user, make_api_key, other_process, client
):
    from accounts.models import Tier

    staff = make_user(staff=True, password="pw-admin-123")
    client.force_login(staff)
    user = make_user(tier="max")
    worker = other_process(make_api_key(user, "data"))
    assert _ask(worker)["limit"] == "100000"

    tier = Tier.objects.get(slug="max")
    response = client.post(
        f"/admin/accounts/tier/{tier.pk}/change/",
        {
            "slug": "max",
            "name": "Max",
            "requests_per_minute": 77,
            "price_per_million": 1,
            "custom_limit": "",
            "sort_order": 5,
        },
    )
    assert response.status_code == 302

    assert _ask(worker)["limit"] == "77"


@pytest.mark.django_db(transaction=True)
def test_entries_cached_before_a_redis_restart_are_not_trusted(make_user, make_api_key):
    user = make_user(tier="max")
    plaintext = make_api_key(user, "data")
    from rest_framework.test import APIClient

    api = APIClient()
    assert api.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    lookup = keys.parse(plaintext).lookup
    assert keycache.get(lookup) is not None
    # Revoke behind the cache's back (no bump), then lose Redis's data.
    ApiKey.objects.filter(lookup=lookup).update(revoked_at="2026-01-01T00:00:00Z")
    redisclient.client().flushdb()

    assert api.get(BALANCE, HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 401


def test_bump_forgets_this_process_at_once_and_changes_the_epoch(db, make_user, make_api_key):
    user = make_user()
    plaintext = make_api_key(user, "data")
    services.authenticate(plaintext)
    lookup = keys.parse(plaintext).lookup
    before = keycache.current_epoch(user.id)
    assert keycache.get(lookup) is not None

    with connection.cursor():
        keycache.bump([user.id])

    assert keycache.get(lookup) is None
    # Outside a committed transaction (pytest's `db` never commits) the epoch bump waits.
    assert keycache.current_epoch(user.id) == before
