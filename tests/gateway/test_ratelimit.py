"""The per-account rate limiter (gateway.ratelimit) on a real Redis, and its in-process twin.

No database. Semantic tests run on both limiters; the cross-process, real-clock, memory and
failure tests run on Redis. A brute-force reference model (every admitted request kept and
counted) judges both limiters on Hypothesis-generated traffic with a pinned clock.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway import ratelimit
from gateway.ratelimit import (
    Decision,
    LocalLimiter,
    RateLimiterUnavailable,
    RedisLimiter,
    format_reset,
)

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
MINUTE = 60_000
EPOCH_MS = 1_700_000_000_000
_ids = itertools.count(1)

Hit = Callable[..., Decision]


def fresh(name: str) -> str:
    return f"{name}-{next(_ids)}"


@pytest.fixture(params=["redis", "local"])
def make_limiter(request: pytest.FixtureRequest) -> Callable[..., RedisLimiter | LocalLimiter]:
    """A limiter factory, once per implementation: the semantics must not differ."""
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        return lambda window_ms=MINUTE: RedisLimiter(client, window_ms=window_ms)
    return lambda window_ms=MINUTE: LocalLimiter(window_ms=window_ms)


@pytest.fixture(params=["redis", "local"])
def make_pinned(request: pytest.FixtureRequest) -> Callable[[int], Callable[..., Decision]]:
    """A hit function `hit(now_ms, **hit_kwargs)` whose clock the test sets, per implementation.

    Redis: the script's clock is pinned through the limiter's private test seam.
    Local: a fake clock.
    """
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")

        def make_redis(window_ms: int) -> Callable[..., Decision]:
            limiter = RedisLimiter(client, window_ms=window_ms)

            def hit(now_ms: int, **kw: object) -> Decision:
                return limiter._hit(
                    kw["account"], kw["account_limit"], kw.get("key"), kw.get("key_limit"),
                    now_ms=now_ms,
                )  # fmt: skip

            return hit

        return make_redis

    def make_local(window_ms: int) -> Callable[..., Decision]:
        clock = {"ms": 0}
        limiter = LocalLimiter(window_ms=window_ms, clock=lambda: clock["ms"] / 1000)

        def hit(now_ms: int, **kw: object) -> Decision:
            clock["ms"] = now_ms
            return limiter.hit(**kw)  # type: ignore[arg-type]

        return hit

    return make_local


def sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.002) if left < 0.01 else left - 0.005)


# ---------------------------------------------------------------- semantics, both limiters


def test_admits_exactly_the_limit_then_refuses(make_limiter) -> None:
    limiter = make_limiter()
    account = fresh("acct")

    decisions = [limiter.hit(account=account, account_limit=3) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert [d.limit for d in decisions] == [3, 3, 3, 3]
    # After an admitted request, nothing is forgotten until it has left: a whole window.
    assert [d.reset_ms for d in decisions[:3]] == [MINUTE, MINUTE, MINUTE]
    assert [d.retry_after_ms for d in decisions[:3]] == [0, 0, 0]
    refused = decisions[3]
    assert 1 <= refused.retry_after_ms <= MINUTE
    assert refused.retry_after_ms <= refused.reset_ms <= MINUTE


def test_keys_of_one_account_share_its_budget(make_limiter) -> None:
    limiter = make_limiter()
    account = fresh("acct")

    first = [limiter.hit(account=account, account_limit=5, key="k1").allowed for _ in range(3)]
    second = [limiter.hit(account=account, account_limit=5, key="k2").allowed for _ in range(3)]
    no_key = limiter.hit(account=account, account_limit=5)

    assert first == [True, True, True]
    assert second == [True, True, False]
    assert no_key.allowed is False
    assert no_key.remaining == 0


def test_accounts_do_not_share_a_budget(make_limiter) -> None:
    limiter = make_limiter()
    a, b = fresh("acct"), fresh("acct")

    assert [limiter.hit(account=a, account_limit=2).allowed for _ in range(3)] == [1, 1, 0]
    assert [limiter.hit(account=b, account_limit=2).allowed for _ in range(3)] == [1, 1, 0]


def test_key_limit_binds_below_the_account_limit(make_limiter) -> None:
    limiter = make_limiter()
    account = fresh("acct")

    # Given a key limited to 3 on an account limited to 10
    by_key = [
        limiter.hit(account=account, account_limit=10, key="a", key_limit=3) for _ in range(5)
    ]
    # Then the key gets 3, and the account still has 7 for its other keys
    by_other = [limiter.hit(account=account, account_limit=10, key="b") for _ in range(8)]

    assert [d.allowed for d in by_key] == [True, True, True, False, False]
    assert [(d.limit, d.remaining) for d in by_key] == [(3, 2), (3, 1), (3, 0), (3, 0), (3, 0)]
    assert [d.allowed for d in by_other] == [True] * 7 + [False]
    assert [(d.limit, d.remaining) for d in by_other[-2:]] == [(10, 0), (10, 0)]


def test_limit_is_the_window_with_less_room(make_limiter) -> None:
    limiter = make_limiter()
    account = fresh("acct")
    for _ in range(3):
        assert limiter.hit(account=account, account_limit=5, key="other").allowed

    # The key (limit 4) has room for 3 more, the account (limit 5) for 1: the account binds.
    decision = limiter.hit(account=account, account_limit=5, key="k", key_limit=4)

    assert (decision.allowed, decision.limit, decision.remaining) == (True, 5, 1)


def test_refused_hits_are_not_counted(make_limiter) -> None:
    window_ms = 400
    limiter = make_limiter(window_ms=window_ms)
    account = fresh("acct")
    assert [limiter.hit(account=account, account_limit=2).allowed for _ in range(2)] == [1, 1]
    filled_at = time.monotonic()

    # When a burst of refused hits follows, 50 ms later
    time.sleep(0.05)
    refused = [limiter.hit(account=account, account_limit=2) for _ in range(50)]
    sleep_until(filled_at + window_ms / 1000)

    # Then once the two admitted ones have left, the full budget is back
    assert not any(d.allowed for d in refused)
    after = [limiter.hit(account=account, account_limit=2) for _ in range(3)]
    assert [(d.allowed, d.remaining) for d in after] == [(True, 1), (True, 0), (False, 0)]


def test_refused_by_the_key_is_not_counted_against_the_account(make_limiter) -> None:
    limiter = make_limiter()
    account = fresh("acct")
    assert limiter.hit(account=account, account_limit=3, key="k", key_limit=1).allowed

    refused = [
        limiter.hit(account=account, account_limit=3, key="k", key_limit=1) for _ in range(5)
    ]
    others = [limiter.hit(account=account, account_limit=3, key="j") for _ in range(3)]

    assert not any(d.allowed for d in refused)
    assert [d.allowed for d in others] == [True, True, False]


def test_refused_by_the_account_is_not_counted_against_the_key(make_limiter) -> None:
    window_ms = 400
    limiter = make_limiter(window_ms=window_ms)
    account = fresh("acct")
    # Given an account filled by another key
    filled = [limiter.hit(account=account, account_limit=2, key="j").allowed for _ in range(2)]
    filled_at = time.monotonic()

    # When key k (limit 2) is refused by the account, repeatedly, 50 ms later
    time.sleep(0.05)
    refused = [
        limiter.hit(account=account, account_limit=2, key="k", key_limit=2) for _ in range(5)
    ]
    sleep_until(filled_at + window_ms / 1000)

    # Then once the account has room, k's own window is still empty: both of its slots are free
    assert filled == [True, True]
    assert not any(d.allowed for d in refused)
    assert [d.limit for d in refused] == [2] * 5
    after = [limiter.hit(account=account, account_limit=2, key="k", key_limit=2) for _ in range(3)]
    assert [d.allowed for d in after] == [True, True, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"account_limit": 0}, "account_limit must be at least 1"),
        ({"account_limit": 5, "key_limit": 2}, "key_limit needs a key"),
        ({"account_limit": 5, "key": "k", "key_limit": 0}, "key_limit must be at least 1"),
        ({"account_limit": 5, "account": "a{b}"}, "must not contain"),
    ],
)
def test_rejects_invalid_arguments(make_limiter, kwargs: dict, message: str) -> None:
    limiter = make_limiter()
    with pytest.raises(ValueError, match=message):
        limiter.hit(**{"account": "acct", **kwargs})


# ----------------------------------------------- exactness against a brute-force reference


@dataclass
class Reference:
    """Every admitted request kept forever and counted from scratch: obviously right, slow."""

    window_ms: int
    admitted: list[tuple[int, str, str | None]] = field(default_factory=list)

    def hit(
        self, now: int, *, account: str, account_limit: int, key: str | None, key_limit: int | None
    ) -> Decision:
        def in_window(k: str | None, match_key: bool) -> list[int]:
            return sorted(
                ts
                for ts, a, kk in self.admitted
                if a == account and (not match_key or kk == k) and ts > now - self.window_ms
            )

        windows = [(False, account_limit)] + ([(True, key_limit)] if key_limit else [])
        counted = [in_window(key, match) for match, _ in windows]
        allowed = all(len(ts) < limit for ts, (_, limit) in zip(counted, windows, strict=True))
        if allowed:
            self.admitted.append((now, account, key if key_limit else None))
            counted = [in_window(key, match) for match, _ in windows]
        limits = [limit for _, limit in windows]
        rooms = [max(0, limit - len(ts)) for ts, limit in zip(counted, limits, strict=True)]
        binding = min(range(len(limits)), key=lambda i: (rooms[i], limits[i]))
        retry = 0
        if not allowed:
            retry = max(
                ts[len(ts) - limit] + self.window_ms - now
                for ts, limit in zip(counted, limits, strict=True)
                if len(ts) >= limit
            )
        return Decision(
            allowed=allowed,
            limit=limits[binding],
            remaining=rooms[binding],
            reset_ms=max((ts[-1] + self.window_ms - now for ts in counted if ts), default=0),
            retry_after_ms=retry,
        )


traffic = st.lists(
    st.tuples(
        st.one_of(st.just(0), st.integers(1, 5), st.integers(0, 90_000)),  # ms since last hit
        st.sampled_from(["a", "b"]),  # account
        st.sampled_from([None, "k1", "k2"]),  # key
        st.integers(1, 4),  # account limit (changes exercise a lowered limit)
        st.one_of(st.none(), st.integers(1, 3)),  # key limit
    ),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=traffic)
def test_decisions_match_the_brute_force_reference(make_pinned, steps: list) -> None:
    run = next(_ids)
    hit = make_pinned(MINUTE)
    reference = Reference(MINUTE)
    now = EPOCH_MS
    for dt, account, key, account_limit, key_limit in steps:
        now += dt
        kwargs = {
            "account": f"{account}-{run}",
            "account_limit": account_limit,
            "key": key,
            "key_limit": key_limit if key else None,
        }
        assert hit(now, **kwargs) == reference.hit(now, **kwargs), (now, kwargs)


def test_retry_after_is_exact_to_the_millisecond(make_pinned) -> None:
    hit = make_pinned(1_000)
    account = fresh("acct")
    assert hit(EPOCH_MS, account=account, account_limit=2).allowed
    assert hit(EPOCH_MS + 300, account=account, account_limit=2).allowed

    refused = hit(EPOCH_MS + 400, account=account, account_limit=2)
    just_before = hit(EPOCH_MS + 999, account=account, account_limit=2)
    on_time = hit(EPOCH_MS + 1_000, account=account, account_limit=2)

    assert (refused.allowed, refused.retry_after_ms, refused.reset_ms) == (False, 600, 900)
    assert (just_before.allowed, just_before.retry_after_ms) == (False, 1)
    assert (on_time.allowed, on_time.remaining, on_time.reset_ms) == (True, 0, 1_000)


def test_retry_after_waits_for_enough_requests_after_a_lowered_limit(make_pinned) -> None:
    hit = make_pinned(1_000)
    account = fresh("acct")
    for offset in (0, 100, 200, 300):
        assert hit(EPOCH_MS + offset, account=account, account_limit=4).allowed

    # Lowered to 2 with 4 counted: three must leave, the third of them at +200
    refused = hit(EPOCH_MS + 500, account=account, account_limit=2)

    assert (refused.allowed, refused.retry_after_ms) == (False, 700)
    assert hit(EPOCH_MS + 1_199, account=account, account_limit=2).allowed is False
    assert hit(EPOCH_MS + 1_200, account=account, account_limit=2).allowed is True


def test_a_clock_stepping_back_never_reopens_the_window(make_pinned) -> None:
    hit = make_pinned(1_000)
    account = fresh("acct")
    assert hit(EPOCH_MS, account=account, account_limit=2).allowed
    assert hit(EPOCH_MS, account=account, account_limit=2).allowed

    # The clock steps back 2 s: time stands still at the newest request instead
    stepped_back = hit(EPOCH_MS - 2_000, account=account, account_limit=2)

    assert (stepped_back.allowed, stepped_back.retry_after_ms) == (False, 1_000)
    assert hit(EPOCH_MS + 999, account=account, account_limit=2).allowed is False
    assert hit(EPOCH_MS + 1_000, account=account, account_limit=2).allowed is True


# ---------------------------------------------------------------- Redis across processes


def run_workers(kind: str, *, account: str, limit: int, processes: int, threads: int, hits: int):
    """Start `processes` workers, release them together, return their JSON reports."""
    shares = [hits // processes + (1 if i < hits % processes else 0) for i in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.ratelimit_worker", kind, account, str(limit)]
            + [str(threads), str(share)],
            cwd=ROOT,
            env=os.environ.copy(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * processes
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
def test_admits_exactly_the_limit_across_processes_and_threads(redis_client) -> None:
    account = fresh("acct")

    # When 4 processes x 8 threads fire 300 hits at a 30/min account
    reports = run_workers("redis", account=account, limit=30, processes=4, threads=8, hits=300)

    admitted = sum(r["admitted"] for r in reports)
    log.info("redis limiter, 4 processes x 8 threads, 300 hits at 30/min: %s", reports)
    assert admitted == 30, reports
    assert sum(r["refused"] for r in reports) == 270
    # All inside one window, so the 31st from anywhere is refused too
    assert RedisLimiter(redis_client).hit(account=account, account_limit=30).allowed is False


@pytest.mark.slow
def test_a_per_process_limiter_over_admits_across_processes() -> None:
    # The negative control for the test above: the same run with one in-memory limiter per
    # process admits 30 in every process, so that test can tell a shared limit from a local one.
    reports = run_workers(
        "local", account=fresh("acct"), limit=30, processes=4, threads=8, hits=300
    )

    log.info("local limiter, 4 processes x 8 threads, 300 hits at 30/min: %s", reports)
    assert [r["admitted"] for r in reports] == [30, 30, 30, 30]


def test_local_limiter_is_exact_across_threads() -> None:
    limiter = LocalLimiter()
    start = threading.Barrier(8)
    admitted: list[int] = []

    def fire() -> None:
        start.wait()
        admitted.append(
            sum(limiter.hit(account="acct", account_limit=30).allowed for _ in range(100))
        )

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(admitted) == 30


# ---------------------------------------------------------------- Redis, real clock


def test_retry_at_retry_after_is_admitted_and_100ms_earlier_is_refused(redis_client) -> None:
    limiter = RedisLimiter(redis_client, window_ms=1_000)
    account = fresh("acct")

    def hit() -> Decision:
        return limiter.hit(account=account, account_limit=3)

    # Given three admitted requests, the oldest 200 ms before the other two
    assert hit().allowed
    time.sleep(0.2)
    assert hit().allowed
    assert hit().allowed
    refused = hit()
    t0 = time.monotonic()  # after the reply: Redis decided no later than this
    wait_ms = refused.retry_after_ms
    assert not refused.allowed
    assert 600 <= wait_ms <= 800

    # When retrying 100 ms early, then every ~1 ms until admitted
    sleep_until(t0 + (wait_ms - 100) / 1000)
    early = hit()
    admitted_at = None
    while admitted_at is None:
        decision = hit()
        if decision.allowed:
            admitted_at = time.monotonic()
        elif time.monotonic() - t0 >= wait_ms / 1000 + 0.05:
            break
        else:
            time.sleep(0.001)

    # Then the early one is refused and the first admitted one comes within 50 ms of the wait
    assert early.allowed is False
    assert 50 <= early.retry_after_ms <= 100
    assert admitted_at is not None
    error_ms = (admitted_at - t0) * 1000 - wait_ms
    log.info("retry_after_ms=%d, admitted %.2f ms from it", wait_ms, error_ms)
    assert -50 <= error_ms <= 50


def test_a_retry_exactly_at_retry_after_is_admitted(redis_client) -> None:
    limiter = RedisLimiter(redis_client, window_ms=500)
    account = fresh("acct")
    retries = []

    for _ in range(3):
        # Given a full window (its requests spread over a few ms)
        while (decision := limiter.hit(account=account, account_limit=5)).allowed:
            pass
        t0 = time.monotonic()
        # When retrying after exactly retry_after_ms
        sleep_until(t0 + decision.retry_after_ms / 1000)
        retries.append(limiter.hit(account=account, account_limit=5).allowed)

    assert retries == [True, True, True]


@pytest.mark.slow
def test_never_more_than_the_limit_in_any_rolling_window(redis_client) -> None:
    window_ms, limit = 500, 5
    limiter = RedisLimiter(redis_client, window_ms=window_ms)
    account = fresh("acct")
    rng = random.Random(2024)
    admitted: list[tuple[float, float]] = []  # (sent, answered) in ms, local monotonic clock
    refused: list[tuple[float, float]] = []

    # When hits come in bursts and gaps for ~4 s
    for _ in range(100):
        time.sleep(rng.choice([0, 0, 0, 0.002, 0.02, 0.06, 0.15]))
        sent = time.monotonic() * 1000
        decision = limiter.hit(account=account, account_limit=limit)
        answered = time.monotonic() * 1000
        (admitted if decision.allowed else refused).append((sent, answered))

    # Then no limit+1 admitted requests fit in one window (Redis decided between sent and
    # answered, to the ms below) ...
    assert len(admitted) > 3 * limit
    assert len(refused) > 0
    for older, newer in zip(admitted, admitted[limit:], strict=False):
        assert newer[1] - older[0] >= window_ms - 1
    # ... and every refusal had `limit` admitted requests in the window before it
    for sent, _ in refused:
        before = [answered for _, answered in admitted if answered < sent]
        assert len(before) >= limit
        assert sent - before[-limit] < window_ms + 1


def test_memory_stays_at_one_entry_per_millisecond_at_the_max_tier(redis_client) -> None:
    limiter = RedisLimiter(redis_client)
    account = fresh("acct")
    start_s, start_us = redis_client.time()

    # When 8 threads send 20,000 hits at a 100,000/min account as fast as they can
    def fire() -> None:
        for _ in range(2_500):
            assert limiter.hit(account=account, account_limit=100_000).allowed

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end_s, end_us = redis_client.time()

    # Then Redis holds one list entry per distinct millisecond, and their counts add up
    buckets = [e.decode().split(":") for e in redis_client.lrange(f"rl:{{{account}}}:al", 0, -1)]
    stamps = [int(ms) for ms, _ in buckets]
    elapsed_ms = (end_s * 1000 + end_us // 1000) - (start_s * 1000 + start_us // 1000)
    memory = redis_client.memory_usage(f"rl:{{{account}}}:al")
    log.info("20,000 hits in %d ms: %d buckets, %d bytes", elapsed_ms, len(buckets), memory)
    assert sum(int(n) for _, n in buckets) == 20_000
    assert int(redis_client.get(f"rl:{{{account}}}:an")) == 20_000
    assert stamps == sorted(set(stamps))
    assert len(buckets) <= elapsed_ms + 1
    assert len(buckets) < 20_000
    assert redis_client.dbsize() == 2
    assert limiter.hit(account=account, account_limit=100_000).remaining == 100_000 - 20_001


def test_keys_expire_with_the_window(redis_client) -> None:
    limiter = RedisLimiter(redis_client, window_ms=200)
    account = fresh("acct")
    assert limiter.hit(account=account, account_limit=5, key="k", key_limit=2).allowed
    keys = redis_client.keys("*")
    ttls = [redis_client.pttl(k) for k in keys]

    time.sleep(0.25)

    assert len(keys) == 4
    assert all(0 < ttl <= 200 for ttl in ttls)
    assert redis_client.exists(*keys) == 0


def test_rebuilds_a_total_lost_to_eviction(redis_client) -> None:
    limiter = RedisLimiter(redis_client)
    account = fresh("acct")
    for _ in range(3):
        assert limiter.hit(account=account, account_limit=5).allowed

    redis_client.delete(f"rl:{{{account}}}:an")
    after = limiter.hit(account=account, account_limit=5)

    assert (after.allowed, after.remaining) == (True, 1)
    assert int(redis_client.get(f"rl:{{{account}}}:an")) == 4


# ---------------------------------------------------------------- Redis failures


def test_recovers_after_the_script_cache_is_flushed(redis_client) -> None:
    limiter = RedisLimiter(redis_client)
    account = fresh("acct")
    assert limiter.hit(account=account, account_limit=5).remaining == 4

    redis_client.script_flush()
    after = limiter.hit(account=account, account_limit=5)

    assert (after.allowed, after.remaining) == (True, 3)
    assert redis_client.script_exists(ratelimit._SHA) == [True]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def failing_fast_client(port: int) -> redis.Redis:
    # The limiter is only as quick to give up as its client: short timeouts, one retry.
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.3,
        socket_timeout=0.3,
        retry=Retry(NoBackoff(), 1),
    )


@pytest.mark.timeout(10)
def test_redis_refusing_connections_raises_unavailable() -> None:
    limiter = RedisLimiter(failing_fast_client(closed_port()))

    started = time.monotonic()
    with pytest.raises(RateLimiterUnavailable) as raised:
        limiter.hit(account="acct", account_limit=5)

    log.info("unavailable after %.1f ms (connection refused)", (time.monotonic() - started) * 1000)
    assert isinstance(raised.value.__cause__, redis.exceptions.ConnectionError)


@pytest.mark.timeout(10)
def test_redis_not_answering_raises_unavailable() -> None:
    # A socket that accepts connections (kernel backlog) and never answers: a hung Redis.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        limiter = RedisLimiter(failing_fast_client(silent.getsockname()[1]))

        started = time.monotonic()
        with pytest.raises(RateLimiterUnavailable) as raised:
            limiter.hit(account="acct", account_limit=5)

    log.info("unavailable after %.1f ms (no answer)", (time.monotonic() - started) * 1000)
    assert isinstance(raised.value.__cause__, redis.exceptions.TimeoutError)


# ---------------------------------------------------------------- LocalLimiter specifics


def test_local_limiter_forgets_idle_accounts() -> None:
    clock = {"s": 100.0}
    limiter = LocalLimiter(window_ms=1_000, clock=lambda: clock["s"])
    for i in range(100):
        limiter.hit(account=f"acct-{i}", account_limit=5, key="k", key_limit=2)
    assert limiter.tracked_windows() == 200

    clock["s"] = 101.0
    limiter.hit(account="late", account_limit=5)

    assert limiter.tracked_windows() == 1


def test_local_limiter_does_not_track_refused_windows() -> None:
    limiter = LocalLimiter()
    assert limiter.hit(account="acct", account_limit=1).allowed
    assert not limiter.hit(account="acct", account_limit=1, key="k", key_limit=5).allowed

    assert limiter.tracked_windows() == 1


def test_local_limiter_reads_float_seconds_to_the_millisecond() -> None:
    clock = {"s": 1.0}
    limiter = LocalLimiter(window_ms=1_000, clock=lambda: clock["s"])
    assert limiter.hit(account="acct", account_limit=1).allowed

    clock["s"] = 1.999
    just_before = limiter.hit(account="acct", account_limit=1)
    clock["s"] = 2.0
    on_time = limiter.hit(account="acct", account_limit=1)

    assert (just_before.allowed, just_before.retry_after_ms) == (False, 1)
    assert on_time.allowed is True


# ---------------------------------------------------------------- format_reset


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (1, "1ms"),
        (20, "20ms"),
        (999, "999ms"),
        (1_000, "1s"),
        (1_500, "1.5s"),
        (8_640, "8.64s"),
        (59_999, "59.999s"),
        (60_000, "1m0s"),
        (60_500, "1m0.5s"),
        (90_000, "1m30s"),
        (360_000, "6m0s"),
        (3_600_000, "1h0m0s"),
        (3_723_004, "1h2m3.004s"),
    ],
)
def test_formats_reset_like_openai(ms: int, text: str) -> None:
    assert format_reset(ms) == text


# --- pipelining: calls that queue while one is on the wire share the next round trip ----------


def test_concurrent_hits_share_round_trips_and_admit_exactly_the_limit(redis_client) -> None:
    # Given one limiter (one process's) and a 30/min account
    limiter = RedisLimiter(redis_client)
    account = fresh("acct")
    pipelines: list[int] = []
    run_pipeline = limiter._run_pipeline

    def counted(calls):  # noqa: ANN001, ANN202
        pipelines.append(len(calls))
        return run_pipeline(calls)

    limiter._calls._run = counted
    barrier = threading.Barrier(40)
    decisions: list[Decision] = []

    def fire() -> None:
        barrier.wait(10)
        for _ in range(5):
            decisions.append(limiter.hit(account=account, account_limit=30))

    # When 40 threads send 200 hits at once
    threads = [threading.Thread(target=fire) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # Then exactly 30 are admitted, with exactly the remaining counts one by one would give
    assert len(decisions) == 200
    admitted = sorted(d.remaining for d in decisions if d.allowed)
    assert admitted == list(range(30))
    assert all(d.retry_after_ms >= 1 for d in decisions if not d.allowed)
    assert int(redis_client.get(f"rl:{{{account}}}:an")) == 30
    # and some hits went out several to a round trip
    assert max(pipelines, default=0) > 1


def test_a_pipeline_leaves_a_call_redis_has_no_script_for_to_run_alone(redis_client) -> None:
    limiter = RedisLimiter(redis_client)
    account = fresh("acct")
    call = ([f"rl:{{{account}}}:al", f"rl:{{{account}}}:an"], [MINUTE, "", 1, 5])
    redis_client.script_flush()

    # EVALSHA finds no script: nothing ran, and the call is left to run alone (EVAL)
    assert limiter._run_pipeline([call, call]) == [ratelimit.ALONE, ratelimit.ALONE]
    assert redis_client.get(f"rl:{{{account}}}:an") is None

    # Through the combiner, every call still gets its decision once, each counted once
    decisions = [limiter.hit(account=account, account_limit=5) for _ in range(3)]
    assert [d.remaining for d in decisions] == [4, 3, 2]
    assert int(redis_client.get(f"rl:{{{account}}}:an")) == 3


def test_an_error_reply_in_a_pipeline_belongs_to_its_own_call(redis_client) -> None:
    limiter = RedisLimiter(redis_client)
    account = fresh("acct")
    keys = [f"rl:{{{account}}}:al", f"rl:{{{account}}}:an"]
    good = (keys, [MINUTE, "", 1, 5])
    bad = (keys, [MINUTE, "", 1, "not a number"])
    limiter._run_one(good)  # the script is cached

    replies = limiter._run_pipeline([good, bad, good])

    # (allowed, limit, remaining): the first hit was counted before the pipeline
    assert [int(v) for v in replies[0]][:3] == [1, 5, 3]
    assert isinstance(replies[1], redis.exceptions.ResponseError)
    assert [int(v) for v in replies[2]][:3] == [1, 5, 2]
    assert int(redis_client.get(f"rl:{{{account}}}:an")) == 3


def test_pipeline_max_1_sends_every_call_on_its_own(redis_client) -> None:
    limiter = RedisLimiter(redis_client, pipeline_max=1)
    account = fresh("acct")

    decisions = [limiter.hit(account=account, account_limit=2) for _ in range(3)]

    assert limiter._calls is None
    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 1), (True, 0), (False, 0)]
