"""A long stream does not keep a pooled database connection between its ledger steps.

A stream records what it has delivered every `RECORD_INTERVAL_S` (so a crash loses at most that
much); each record borrows a connection from the worker's pool. Held until the stream ended,
those connections ran the pool dry once enough streams had recorded once: a burst of 1,000
streams over 3 s stalled ~23% of them for seconds, and a request that needs the database gives
up after the pool's timeout with a 503.

One gunicorn gevent worker with a pool of two connections and a one-second pool timeout, against
this test's database and the suite's Redis; the upstream is the fake, in-process, streaming
slowly enough that each stream records once and then runs on for two more seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway import relay
from tests.fakes.upstream import FakeUpstream
from tests.test_multi_instance import (
    Instance,
    _stop,
    _wait_ready,
    apply_catalogue,
    start_gateway,
)

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "stream-pool-upstream-key"
MODEL = "sp-chat"
TOKENS = 8
TOKEN_DELAY_S = 0.5  # 8 tokens: ~4 s a stream, recorded once at ~2 s
STREAMS = 2  # as many as the pool has connections
GRANT = 100_000


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream(
        api_key=UPSTREAM_KEY, delay_s=0.05, token_delay_s=TOKEN_DELAY_S, reply_tokens=TOKENS
    ).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(django_db_setup: None, upstream: FakeUpstream, tmp_path: Path) -> Iterator[Instance]:
    apply_catalogue(upstream, MODEL, "SP_UPSTREAM_KEY")
    instance = start_gateway(
        tmp_path,
        "a",
        {
            "SP_UPSTREAM_KEY": UPSTREAM_KEY,
            "WEB_WORKER_CLASS": "gevent",
            "WEB_WORKERS": "1",
            "DB_POOL": "1",
            "DB_POOL_MIN": "1",
            "DB_POOL_MAX": str(STREAMS),
            "DB_POOL_TIMEOUT_S": "1",
        },
    )
    try:
        _wait_ready(instance)
        yield instance
    finally:
        _stop(instance)


def _stream(instance: Instance, key: str, into: list) -> None:
    began = time.monotonic()
    with requests.post(
        instance.url + "/v1/chat/completions",
        json={
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": "tell me a slow story"}],
            "max_tokens": TOKENS,
        },
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=30,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    into.append((response.status_code, lines, time.monotonic() - began))


def test_streams_that_recorded_their_progress_leave_the_pool_to_other_requests(
    gateway, make_user, make_api_key
):
    from wits import ledger
    from wits.models import Reservation

    # given as many ~4 s streams as the worker's pool has connections, each recording what it
    # delivered once, at ~2 s (a stream longer than the record interval)
    assert TOKENS * TOKEN_DELAY_S > relay.RECORD_INTERVAL_S + 1.5
    user = make_user(tier="max", wits=GRANT)
    key = make_api_key(user, "full")
    headers = {"Authorization": f"Bearer {key}"}
    assert requests.get(gateway.url + "/v1/wits/balance", headers=headers, timeout=10).ok
    done: list = []
    threads = [threading.Thread(target=_stream, args=(gateway, key, done)) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()

    # when, after both have recorded and while both still stream, requests that need the
    # database arrive (each must borrow a connection within the pool's one-second timeout)
    time.sleep(relay.RECORD_INTERVAL_S + 0.6)
    balances = [
        requests.get(gateway.url + "/v1/wits/balance", headers=headers, timeout=10)
        for _ in range(2)
    ]
    still_streaming = sum(thread.is_alive() for thread in threads)
    for thread in threads:
        thread.join(timeout=30)

    # then they are answered at once, not with a 503 after the timeout
    assert still_streaming == STREAMS
    assert [balance.status_code for balance in balances] == [200, 200]
    assert all(balance.elapsed.total_seconds() < 0.9 for balance in balances)
    # and both streams ran to their end and were billed once, with nothing left reserved
    assert [status for status, _, _ in done] == [200] * STREAMS
    for _, lines, _ in done:
        assert lines[-1] == b"data: [DONE]"
        final = json.loads(lines[-2][len(b"data: ") :])
        assert final["x_clawwits"]["wits"] > 0
    assert ledger.balance(user_id=user.id).reserved == 0
    states = list(Reservation.objects.filter(wallet_id=user.id).values_list("state", flat=True))
    assert states == ["committed"] * STREAMS
    assert ledger.check() == []
