"""Streams' progress records written behind them (wits.progress), on real PostgreSQL.

The crash side (a process killed after its writer wrote a record, then reconciled) is in
test_ledger_crash.py's `after_progress_record` point.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from tests.wits.ledger_support import subprocess_env
from wits import ledger, progress
from wits.models import Reservation

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def _held(make_user, n: int = 1) -> list[Reservation]:
    user = make_user(wits=10_000)
    return [ledger.reserve(user_id=user.id, request_id=f"r{i}", amount=100) for i in range(n)]


def _recorded(res: Reservation) -> int:
    return Reservation.objects.get(pk=res.pk).recorded


def _wait_until(check, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not written within 10 s"
        time.sleep(0.01)


def test_a_record_returns_at_once_and_the_writer_writes_it(make_user):
    [res] = _held(make_user)
    writer = progress.Writer(flush_s=0.5)

    writer.record(res.id, 42)

    assert writer.pending() == {res.id: 42}
    assert _recorded(res) is None
    _wait_until(lambda: _recorded(res) == 42)
    _wait_until(lambda: not writer._running)  # nothing left: the writer stops
    assert writer.pending() == {}
    writer.record(res.id, 43)  # and the next record starts it again
    _wait_until(lambda: _recorded(res) == 43)


def test_records_pending_together_are_one_statement_and_the_newest_of_each_wins(make_user):
    reservations = _held(make_user, 50)
    writer = progress.Writer(flush_s=3600)  # its own round never comes: flush() writes
    for i, res in enumerate(reservations):
        writer.record(res.id, i)
    writer.record(reservations[0].id, 99)  # replaces 0 before it was written

    with CaptureQueriesContext(connection) as queries:
        assert writer.flush() is True

    assert len(queries) == 1
    assert [_recorded(res) for res in reservations] == [99, *range(1, 50)]
    assert writer.pending() == {}


def test_a_record_never_moves_a_settled_reservation(make_user):
    [res] = _held(make_user)
    ledger.commit(res, actual=30)
    before = Reservation.objects.filter(pk=res.pk).values().get()
    balance = ledger.balance(user_id=res.wallet_id)
    writer = progress.Writer(flush_s=3600)

    writer.record(res.id, 80)
    assert writer.flush() is True

    assert Reservation.objects.filter(pk=res.pk).values().get() == before
    assert ledger.balance(user_id=res.wallet_id) == balance == ledger.Balance(9_970, 0, 30)
    assert ledger.check() == []


def test_a_failed_write_keeps_its_records_without_overwriting_newer_ones(make_user, monkeypatch):
    a, b = _held(make_user, 2)
    writer = progress.Writer(flush_s=3600)
    writer.record(a.id, 10)
    writer.record(b.id, 20)
    record_usages = ledger.record_usages

    def failing(records):
        writer.record(a.id, 11)  # a newer record arrives while the write is failing
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ledger, "record_usages", failing)
    assert writer.flush() is False

    assert writer.pending() == {a.id: 11, b.id: 20}
    assert (_recorded(a), _recorded(b)) == (None, None)
    monkeypatch.setattr(ledger, "record_usages", record_usages)
    assert writer.flush() is True
    assert (_recorded(a), _recorded(b)) == (11, 20)


@pytest.mark.parametrize(
    "fast_sql",
    [
        # A test transaction (as any caller's) is invisible to the writer's own connection.
        pytest.param(True, marks=pytest.mark.django_db(transaction=False), id="in-a-transaction"),
        pytest.param(False, id="off-postgresql"),  # the portable (SQLite) path
    ],
)
def test_where_the_writer_would_not_see_it_a_record_is_written_at_once(
    make_user, monkeypatch, fast_sql
):
    [res] = _held(make_user)
    monkeypatch.setattr(ledger, "FAST_SQL", fast_sql)
    writer = progress.Writer(flush_s=3600)

    writer.record(res.id, 42)

    assert writer.pending() == {}
    assert _recorded(res) == 42


def test_after_a_failed_write_the_writer_retries_on_a_new_connection(make_user, monkeypatch):
    [res] = _held(make_user)
    monkeypatch.setattr(progress, "RETRY_S", 0.05)
    record_usages = ledger.record_usages
    calls: list[bool] = []

    def dying_once(records):
        from django.db import connection as writers

        calls.append(writers.connection is None)  # whether it starts on a new connection
        if len(calls) == 1:
            writers.ensure_connection()
            raise OperationalError("terminating connection due to administrator command")
        return record_usages(records)

    monkeypatch.setattr(ledger, "record_usages", dying_once)
    writer = progress.Writer(flush_s=0.05)

    writer.record(res.id, 42)

    _wait_until(lambda: _recorded(res) == 42)
    assert calls == [True, True]


def test_a_process_that_exits_writes_its_pending_records(make_user):
    # The worker's writer would wait an hour before its round: only the exit can write it.
    user = make_user(wits=1000)
    done = subprocess.run(
        [sys.executable, "-m", "tests.wits.ledger_crash_worker", "exit_after_progress_record",
         str(user.id), "exiting"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    res = Reservation.objects.get(request_id="exiting")
    assert (res.state, res.recorded) == ("held", 70)
    assert ledger.balance(user_id=user.id) == ledger.Balance(900, 100, 0)
