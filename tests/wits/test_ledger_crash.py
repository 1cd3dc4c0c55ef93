"""Crashes between reserve and commit, then the reconcile task (BAR.md item 4).

Real processes (tests/wits/ledger_crash_worker.py) are killed with SIGKILL at named points,
including inside a ledger transaction before its COMMIT; reconcile past the TTL must leave 0
stuck reservations and exact books. Then reconcile races a late commit 1,000 times.
"""

from __future__ import annotations

import collections
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone

from tests.wits.ledger_support import snapshot, subprocess_env
from wits import ledger
from wits.models import LedgerEntry, Reservation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
B = ledger.Balance


@dataclass(frozen=True)
class Expected:
    """What the database shows while the worker is stopped, and after reconcile."""

    in_flight: B
    in_flight_held: int
    after: B
    state: str | None
    charged: int
    reason: str
    reconciled: tuple[int, int]


# Wallets hold 1,000; the worker reserves 100. `in_flight` is what other sessions see while
# the worker is stopped: an open transaction is invisible, a committed step is not.
CASES: dict[str, Expected] = {
    "inside_reserve": Expected(B(1000, 0, 0), 0, B(1000, 0, 0), None, 0, "", (0, 0)),
    "after_reserve": Expected(B(900, 100, 0), 1, B(1000, 0, 0), "released", 0, "expired", (0, 1)),
    "after_record_usage": Expected(
        B(900, 100, 0), 1, B(930, 0, 70), "committed", 70, "reconciled", (1, 0)
    ),
    "after_progress_record": Expected(
        B(900, 100, 0), 1, B(930, 0, 70), "committed", 70, "reconciled", (1, 0)
    ),
    "inside_commit": Expected(
        B(900, 100, 0), 1, B(960, 0, 40), "committed", 40, "reconciled", (1, 0)
    ),
    "inside_commit_no_usage": Expected(
        B(900, 100, 0), 1, B(1000, 0, 0), "released", 0, "expired", (0, 1)
    ),
    "after_commit": Expected(B(945, 0, 55), 0, B(945, 0, 55), "committed", 55, "completed", (0, 0)),
}


def read_ready(proc: subprocess.Popen, *, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                return json.loads(line[len("READY ") :])
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"worker never reached its point: {proc.stderr.read()}")


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 1


def wait_for_recorded(request_id: str, actual: int) -> None:
    deadline = time.monotonic() + 10
    while not Reservation.objects.filter(request_id=request_id, recorded=actual).exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{request_id}: usage {actual} was not recorded within 10 s")
        time.sleep(0.02)


def wait_for_backend_gone(pid: int) -> None:
    """PostgreSQL rolls back a dead client's open transaction when it notices the socket."""
    deadline = time.monotonic() + 30
    while backend_alive(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"backend {pid} outlived its killed client by 30 s")
        time.sleep(0.05)


@pytest.mark.parametrize("fast_sql", [True, False], ids=["one-statement", "portable"])
def test_processes_killed_at_each_point_are_reconciled_exactly(make_user, fast_sql):
    # given: one wallet per crash point, a worker stopped dead at each point
    users = {point: make_user(wits=1000) for point in CASES}
    env = {**subprocess_env(), "LEDGER_FAST_SQL": "1" if fast_sql else "0"}
    workers = {
        point: subprocess.Popen(
            [sys.executable, "-m", "tests.wits.ledger_crash_worker", point, str(u.id), point],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for point, u in users.items()
    }
    try:
        backends = {point: read_ready(proc)["backend_pid"] for point, proc in workers.items()}

        # then, while they are stopped: other sessions see only committed steps
        for point, expected in CASES.items():
            uid = users[point].id
            assert (snapshot(uid).balance, snapshot(uid).held) == (
                expected.in_flight,
                expected.in_flight_held,
            ), point
        assert ledger.check() == []
        # A stream's record reaches the database with nothing but the record call: the
        # process's writer writes it within `progress.FLUSH_S` (here within 10 s at most).
        wait_for_recorded("after_progress_record", 70)

        # when: each is killed outright (no cleanup, no rollback from the client)
        for proc in workers.values():
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            proc.stdout.close()
            proc.stderr.close()
    assert {p: proc.returncode for p, proc in workers.items()} == {
        p: -signal.SIGKILL for p in CASES
    }
    for pid in backends.values():
        wait_for_backend_gone(pid)

    # and the reconcile task runs past the TTL
    ttl = timedelta(seconds=settings.WITS_RESERVATION_TTL_S)
    result = ledger.reconcile(now=timezone.now() + ttl + timedelta(minutes=1))

    # then: nothing stuck, every wallet exactly as its crash point implies
    committed = sum(e.reconciled[0] for e in CASES.values())
    released = sum(e.reconciled[1] for e in CASES.values())
    assert result == ledger.ReconcileResult(committed, released, 0)
    assert Reservation.objects.filter(state="held").count() == 0
    for point, expected in CASES.items():
        uid = users[point].id
        after = snapshot(uid)
        assert (after.balance, after.credited, after.held) == (expected.after, 1000, 0), point
        row = Reservation.objects.filter(request_id=point).values_list(
            "state", "charged", "settle_reason"
        )
        if expected.state is None:
            assert (list(row), after.entries) == ([], 1), point
        else:
            assert list(row) == [(expected.state, expected.charged, expected.reason)], point
            assert after.entries == 3, point
    assert ledger.check() == []


def test_reconcile_racing_a_late_commit_1000_times_settles_each_once(make_user):
    # given: one wallet; each race is one expired reservation, half with usage recorded
    races = 1000
    user = make_user(wits=10 * races)
    far = timezone.now() + timedelta(days=2)
    current: dict[str, object] = {}
    results: dict[str, object] = {}
    start, done = threading.Barrier(3, timeout=60), threading.Barrier(3, timeout=60)
    errors: list[BaseException] = []

    def racer(name: str, act) -> None:
        try:
            for _ in range(races):
                start.wait()
                # A varying head start for the reconcile task, so both orders are exercised.
                time.sleep(current["delay"] if name == "late" else 0)
                try:
                    results[name] = act(current["res"])
                except BaseException as exc:  # reported below, the race goes on
                    errors.append(exc)
                    results[name] = exc
                done.wait()
        except threading.BrokenBarrierError as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(
            target=racer, args=("reconcile", lambda res: ledger.reconcile(now=far)), daemon=True
        ),
        threading.Thread(
            target=racer, args=("late", lambda res: ledger.commit(res, actual=5)), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()

    # when
    winners: collections.Counter[str] = collections.Counter()
    rng = random.Random(7)
    charged = 0
    try:
        for i in range(races):
            res = ledger.reserve(user_id=user.id, request_id=f"race-{i}", amount=10)
            recorded = i % 2 == 0
            if recorded:
                ledger.record_usage(res, actual=7)
            current["res"], current["delay"] = res, rng.choice((0, 0.0005, 0.001, 0.002, 0.004))
            start.wait()
            done.wait()
            rec, late = results["reconcile"], results["late"]
            assert errors == []

            # then, for this race: exactly one outcome, and the loser saw that same outcome
            rec_applied = rec.committed + rec.released
            assert rec_applied + int(late.applied) == 1, i
            assert rec.skipped == 0 or not rec_applied
            stored = Reservation.objects.values_list("state", "charged", "settle_reason").get(
                pk=res.id
            )
            if late.applied:
                winner = ("committed", 5, "completed")
            elif recorded:
                winner = ("committed", 7, "reconciled")
            else:
                winner = ("released", 0, "expired")
            assert stored == winner, i
            assert (late.state, late.charged) == winner[:2], i
            winners[winner[2]] += 1
            winners["reconcile saw it and lost"] += rec.skipped
            charged += winner[1]
    finally:
        if errors or not all(t.is_alive() for t in threads):
            start.abort()
            done.abort()
        for thread in threads:
            thread.join(timeout=60)

    # then, after all: one settle entry per reservation and exact conservation
    per_reservation = (
        LedgerEntry.objects.filter(reservation__isnull=False)
        .values("reservation_id")
        .annotate(n=Count("id"))
    )
    assert collections.Counter(row["n"] for row in per_reservation) == {2: races}
    assert LedgerEntry.objects.filter(kind__in=["commit", "release"]).count() == races
    assert Reservation.objects.filter(state="held").count() == 0
    after = snapshot(user.id)
    assert (after.balance, after.credited) == (B(10 * races - charged, 0, charged), 10 * races)
    assert ledger.check() == []
    print(f"\n1,000 reconcile-vs-late-commit races, winners: {dict(winners)}")  # noqa: T201
