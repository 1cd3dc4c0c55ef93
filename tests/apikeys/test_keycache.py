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


def _authenticate_at_once(plaintext: str, count: int) -> tuple[list, list]:
    """`count` threads authenticating with the key at the same moment: their principals and
    the errors they raised."""
    import threading

    principals, errors = [], []
    start = threading.Barrier(count)

    def call() -> None:
        start.wait()
        try:
            principals.append(services.authenticate(plaintext)[1])
        except Exception as error:  # noqa: BLE001 - the test inspects what each caller got
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return principals, errors


@pytest.fixture
def cold_key(make_user, make_api_key, monkeypatch):
    """A key this process has not cached, whose database reads go through `read_with(how)`:
    `how(lookup, reads)` runs before each read, with every lookup read so far (this one too)."""
    plaintext = make_api_key(make_user(tier="max"), "ai")
    keycache.clear()
    reads: list[str] = []
    read = services._load

    def read_with(how):
        def reading(key_lookup: str):
            reads.append(key_lookup)
            how(key_lookup, reads)
            return read(key_lookup)

        monkeypatch.setattr(services, "_load", reading)

    return plaintext, keys.parse(plaintext).lookup, reads, read_with


@pytest.mark.django_db(transaction=True)
def test_callers_that_miss_a_cold_key_at_once_share_one_database_read(cold_key):
    # given a cold key whose database read takes a while
    import time

    plaintext, lookup, reads, read_with = cold_key
    read_with(lambda key_lookup, reads: time.sleep(0.2))

    # when 20 callers authenticate with it at once
    principals, errors = _authenticate_at_once(plaintext, 20)

    # then it was read once, every caller got the same principal, and it is cached
    assert reads == [lookup]
    assert errors == []
    assert len(principals) == 20
    assert all(principal == principals[0] for principal in principals)
    assert keycache.get(lookup) is not None
    assert services._loading == {}


@pytest.mark.django_db(transaction=True)
def test_when_the_shared_read_fails_each_waiting_caller_reads_the_key_itself(cold_key):
    # given a cold key whose first database read fails after a while
    import time

    from django.db import OperationalError

    plaintext, lookup, reads, read_with = cold_key

    def first_fails(key_lookup: str, reads: list[str]) -> None:
        if len(reads) == 1:
            time.sleep(0.2)
            raise OperationalError("database went away")

    read_with(first_fails)

    # when 5 callers authenticate with it at once
    principals, errors = _authenticate_at_once(plaintext, 5)

    # then the caller whose read failed gets the error, and the 4 that waited on it read the
    # key themselves and are let in
    assert [type(error) for error in errors] == [OperationalError]
    assert len(principals) == 4
    assert reads == [lookup] * 5
    assert services._loading == {}
