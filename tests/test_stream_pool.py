"""A long stream does not keep a pooled database connection between its ledger steps.

A stream records what it has delivered every `RECORD_INTERVAL_S` (so a crash loses little).
Once, each record borrowed a connection from the worker's pool and the stream held it until it
ended: those connections ran the pool dry once enough streams had recorded once (a burst of
1,000 streams over 3 s stalled ~23% of them for seconds), and a request that needs the database
gave up after the pool's timeout with a 503. Records are now written by the worker's record
writer (`wits.progress`), which borrows one connection per write and gives it back.

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
TOKENS = 12
TOKEN_DELAY_S = 0.5  # 12 tokens: ~6 s a stream, first recorded at ~2.5 s
STREAMS = 2  # as many as the pool has connections
GRANT = 100_000
PROMPT = "tell me a slow story"
# The fake counts the prompt's words and replies TOKENS words: 1 Wit per input token, 2 per
# output token.
CHARGE = len(PROMPT.split()) * 1 + TOKENS * 2


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
    with requests.post(
        instance.url + "/v1/chat/completions",
        json={
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": TOKENS,
        },
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=30,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    into.append((response.status_code, lines))


def test_streams_that_recorded_their_progress_leave_the_pool_to_other_requests(
    gateway, make_user, make_api_key
):
    from wits import ledger
    from wits.models import Reservation

    # given as many ~6 s streams as the worker's pool has connections, each recording what it
    # delivered every `RECORD_INTERVAL_S` (2 s)
    assert TOKENS * TOKEN_DELAY_S > relay.RECORD_INTERVAL_S + 3
    user = make_user(tier="max", wits=GRANT)
    key = make_api_key(user, "full")
    headers = {"Authorization": f"Bearer {key}"}
    assert requests.get(gateway.url + "/v1/wits/balance", headers=headers, timeout=10).ok
    done: list = []
    threads = [threading.Thread(target=_stream, args=(gateway, key, done)) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()

    # when, once both have recorded and while both still stream, requests that need the
    # database arrive (each must borrow a connection within the pool's one-second timeout)
    deadline = time.monotonic() + 10
    held = Reservation.objects.filter(wallet_id=user.id, state="held")
    while held.filter(recorded__isnull=False).count() < STREAMS and time.monotonic() < deadline:
        time.sleep(0.05)
    recorded = held.filter(recorded__isnull=False).count()
    balances = [
        requests.get(gateway.url + "/v1/wits/balance", headers=headers, timeout=10)
        for _ in range(2)
    ]
    still_streaming = sum(thread.is_alive() for thread in threads)
    for thread in threads:
        thread.join(timeout=30)

    # then they are answered, not refused with a 503 when the pool's timeout runs out
    assert (recorded, still_streaming) == (STREAMS, STREAMS)
    assert [balance.status_code for balance in balances] == [200, 200]
    # and both streams ran to their end and were billed once, with nothing left reserved
    assert [status for status, _ in done] == [200] * STREAMS
    charges = []
    for _, lines in done:
        assert lines[-1] == b"data: [DONE]"
        charges.append(json.loads(lines[-2][len(b"data: ") :])["x_clawwits"]["wits"])
    assert charges == [CHARGE] * STREAMS
    assert ledger.balance(user_id=user.id) == ledger.Balance(
        available=GRANT - STREAMS * CHARGE, reserved=0, lifetime_used=STREAMS * CHARGE
    )
    states = list(Reservation.objects.filter(wallet_id=user.id).values_list("state", flat=True))
    assert states == ["committed"] * STREAMS
    assert ledger.check() == []
