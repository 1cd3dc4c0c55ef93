"""The ledger under real concurrency on PostgreSQL (BAR.md items 1 and 2, L1-L4).

Each thread has its own database connection (Django connections are per thread) and closes it
when done, so these are as many concurrent sessions as threads. Throughput is printed (visible
with `-s`), never asserted.
"""

from __future__ import annotations

import collections
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from clawwits.errors import ApiError, Code
from tests.wits.ledger_support import entry_kinds, run_threads, snapshot
from wits import ledger
from wits.models import LedgerEntry, Reservation

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("ledger_path"),
]

B = ledger.Balance


def test_200_concurrent_reserves_of_1_on_100_grant_exactly_100(make_user):
    # given
    user = make_user(wits=100)

    # when
    results = run_threads(
        lambda i: ledger.reserve(user_id=user.id, request_id=f"burst-{i}", amount=1), 200
    )

    # then
    granted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, ApiError)]
    others = [r for r in results if not isinstance(r, Reservation | ApiError)]
    assert (len(granted), len(refused), others) == (100, 100, [])
    assert {(e.code, e.status) for e in refused} == {(Code.INSUFFICIENT_WITS, 402)}
    after = snapshot(user.id)
    assert (after.balance, after.credited, after.reservations, after.held) == (
        B(0, 100, 0),
        100,
        100,
        100,
    )
    assert after.entries == 1 + 100
    assert ledger.check() == []


def test_commit_replayed_from_20_threads_at_once_writes_one_entry(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="contested", amount=300)

    results = run_threads(lambda i: ledger.commit(res.id, actual=100 + i), 20)

    applied = [r for r in results if isinstance(r, ledger.Settlement) and r.applied]
    assert len(applied) == 1
    winner = applied[0]
    expected_replay = ledger.Settlement(
        res.id, "committed", 300, winner.charged, winner.loss, applied=False
    )
    assert sorted(results, key=lambda r: r.applied) == [expected_replay] * 19 + [winner]
    assert entry_kinds(res.id) == ["reserve", "commit"]
    assert ledger.balance(user_id=user.id) == B(1000 - winner.charged, 0, winner.charged)
    assert ledger.check() == []


def test_commit_and_release_racing_from_20_threads_settle_once(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="tug", amount=300)

    def settle(i: int) -> ledger.Settlement:
        if i % 2:
            return ledger.release(res, reason="client_gone")
        return ledger.commit(res, actual=350)

    results = run_threads(settle, 20)

    assert all(isinstance(r, ledger.Settlement) for r in results)
    assert sum(r.applied for r in results) == 1
    outcomes = {(r.state, r.charged, r.loss) for r in results}
    assert outcomes in ({("committed", 300, 50)}, {("released", 0, 0)})
    (state, charged, _) = outcomes.pop()
    assert entry_kinds(res.id) == ["reserve", "commit" if state == "committed" else "release"]
    assert ledger.balance(user_id=user.id) == B(1000 - charged, 0, charged)
    assert ledger.check() == []


# --- the mixed workload -----------------------------------------------------------------------


@dataclass
class Journal:
    """What the threads did, for exact accounting afterwards (appends are thread-safe)."""

    reservations: dict[uuid.UUID, tuple[uuid.UUID, int]] = field(default_factory=dict)
    settlements: dict[uuid.UUID, list[ledger.Settlement]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    credited: dict[uuid.UUID, int] = field(default_factory=lambda: collections.defaultdict(int))
    refused_reserves: int = 0
    refused_adjustments: int = 0
    ops: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settled(self, outcome: ledger.Settlement) -> None:
        with self.lock:
            self.settlements[outcome.reservation_id].append(outcome)
            self.ops += 1


def run_mixed_workload(
    wallets: list[uuid.UUID], *, threads: int, ops_per_thread: int, seed: int
) -> tuple[Journal, float]:
    """Reserve / partial commit / over-commit / release / replayed and contested settles /
    grants / adjustments / usage records, from many threads on a few shared wallets."""
    journal = Journal()
    pool: collections.deque[Reservation] = collections.deque()
    contested: collections.deque[Reservation] = collections.deque()

    def settle(rng: random.Random, res: Reservation) -> None:
        roll = rng.random()
        if roll < 0.45:
            outcome = ledger.commit(res, actual=rng.randint(0, res.amount))
        elif roll < 0.6:
            outcome = ledger.commit(res, actual=res.amount + rng.randint(1, 40))
        else:
            outcome = ledger.release(res, reason="upstream_error")
        journal.settled(outcome)
        if rng.random() < 0.3:
            journal.settled(ledger.commit(res, actual=rng.randint(0, 3 * res.amount)))

    def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        for n in range(ops_per_thread):
            roll = rng.random()
            wallet = rng.choice(wallets)
            if roll < 0.4:
                amount = rng.randint(1, 60)
                try:
                    res = ledger.reserve(
                        user_id=wallet, request_id=f"mix-{seed}-{i}-{n}", amount=amount
                    )
                except ApiError as exc:
                    if exc.code != Code.INSUFFICIENT_WITS:
                        raise
                    with journal.lock:
                        journal.refused_reserves += 1
                    continue
                with journal.lock:
                    journal.reservations[res.id] = (wallet, amount)
                    journal.ops += 1
                if rng.random() < 0.6:
                    pool.append(res)
                    if rng.random() < 0.4:
                        contested.append(res)
                else:
                    settle(rng, res)
            elif roll < 0.75:
                source = contested if contested and rng.random() < 0.5 else pool
                try:
                    res = source.popleft()
                except IndexError:
                    continue
                settle(rng, res)
            elif roll < 0.8:
                try:
                    res = rng.choice(list(pool)) if pool else None
                except IndexError:
                    res = None
                if res is not None:
                    ledger.record_usage(res, actual=rng.randint(0, res.amount))
            elif roll < 0.92:
                amount = rng.randint(1, 40)
                ledger.grant(user_id=wallet, amount=amount, actor="system", note="mix")
                with journal.lock:
                    journal.credited[wallet] += amount
                    journal.ops += 1
            else:
                amount = -rng.randint(1, 100)
                try:
                    ledger.grant(
                        user_id=wallet, amount=amount, actor="system", kind=ledger.Kind.ADJUSTMENT
                    )
                except ledger.LedgerError:
                    with journal.lock:
                        journal.refused_adjustments += 1
                    continue
                with journal.lock:
                    journal.credited[wallet] += amount
                    journal.ops += 1

    started = time.perf_counter()
    results = run_threads(worker, threads)
    elapsed = time.perf_counter() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    return journal, elapsed


def assert_books_exact(journal: Journal, wallets: list[uuid.UUID], opening: int) -> None:
    """Every reservation settled at most once, replays echo the winner, wallets add up."""
    charged: dict[uuid.UUID, int] = collections.defaultdict(int)
    held: dict[uuid.UUID, int] = collections.defaultdict(int)
    for res_id, (wallet, amount) in journal.reservations.items():
        outcomes = journal.settlements.get(res_id, [])
        applied = [o for o in outcomes if o.applied]
        assert len(applied) <= 1, res_id
        stored = Reservation.objects.get(pk=res_id)
        if not outcomes:
            continue
        assert len(applied) == 1, res_id
        winner = applied[0]
        assert (stored.state, stored.charged, stored.loss) == (
            winner.state,
            winner.charged,
            winner.loss,
        )
        for replay in outcomes:
            assert (replay.state, replay.charged, replay.loss, replay.amount) == (
                winner.state,
                winner.charged,
                winner.loss,
                amount,
            )
        assert len(entry_kinds(res_id)) == 2
        charged[wallet] += winner.charged
    for res_id, wallet, amount in Reservation.objects.filter(state="held").values_list(
        "id", "wallet_id", "amount"
    ):
        assert journal.settlements.get(res_id, []) == []
        held[wallet] += amount
    for wallet in wallets:
        credited = opening + journal.credited[wallet]
        after = snapshot(wallet)
        assert after.credited == credited
        assert after.balance == B(
            credited - held[wallet] - charged[wallet], held[wallet], charged[wallet]
        )
    assert ledger.check() == []


def test_mixed_concurrent_workload_keeps_l1_to_l4_exact(make_user):
    # given: four shared wallets, 32 threads
    opening = 150
    wallets = [make_user(wits=opening).id for _ in range(4)]

    # when
    journal, elapsed = run_mixed_workload(wallets, threads=32, ops_per_thread=80, seed=1)

    # then: each reservation settled at most once, books exact, L1-L4 hold
    assert_books_exact(journal, wallets, opening)
    settled = sum(1 for outcomes in journal.settlements.values() if outcomes)
    replays = sum(len(o) - 1 for o in journal.settlements.values() if o)
    print(  # noqa: T201 - the throughput figure, shown under -s
        f"\nmixed workload: {journal.ops} ledger writes in {elapsed:.2f}s = "
        f"{journal.ops / elapsed:,.0f} ops/s over 32 threads; {len(journal.reservations)} "
        f"reservations, {settled} settled, {replays} replayed/contested settles, "
        f"{journal.refused_reserves} x 402, {journal.refused_adjustments} refused adjustments"
    )
    # and the reconcile task settles whatever was left open, still exactly
    result = ledger.reconcile(now=timezone.now() + timedelta(days=2))
    assert result.committed + result.released == sum(
        1 for res_id in journal.reservations if not journal.settlements.get(res_id)
    )
    assert Reservation.objects.filter(state="held").count() == 0
    assert [snapshot(w).balance.reserved for w in wallets] == [0, 0, 0, 0]
    assert ledger.check() == []


def test_check_during_live_traffic_reports_no_drift(make_user):
    # given: traffic on shared wallets, and a checker replaying the books while it runs
    wallets = [make_user(wits=3_000).id for _ in range(3)]
    stop = threading.Event()
    reports: list[list[ledger.Drift]] = []

    def checker() -> None:
        try:
            while not stop.is_set():
                reports.append(ledger.check())
        finally:
            connections.close_all()

    thread = threading.Thread(target=checker, daemon=True)
    thread.start()

    # when
    try:
        journal, _ = run_mixed_workload(wallets, threads=16, ops_per_thread=60, seed=2)
    finally:
        stop.set()
        thread.join(timeout=60)

    # then: a consistent read never sees drift, however the traffic interleaves
    assert len(reports) >= 1
    assert [drift for report in reports for drift in report] == []
    assert_books_exact(journal, wallets, 3_000)
    assert LedgerEntry.objects.count() > 0
