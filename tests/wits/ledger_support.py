"""Helpers shared by the ledger tests: read-only snapshots and thread plumbing.

Nothing here writes money: balances are made through `wits.ledger`, and these helpers only read
(counts, rows) so a test can assert that a refused operation changed nothing.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.db import connection, connections

from wits import ledger
from wits.models import LedgerEntry

T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """Everything a ledger operation could change for one wallet."""

    balance: ledger.Balance
    credited: int
    entries: int
    reservations: int
    held: int


def snapshot(user_id: uuid.UUID) -> Snapshot:
    """One statement, so the figures come from one committed state (and stay cheap per step)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT w.available, w.reserved, w.lifetime_used, w.credited,
                   (SELECT count(*) FROM wits_ledgerentry e WHERE e.wallet_id = w.user_id),
                   (SELECT count(*) FROM wits_reservation r WHERE r.wallet_id = w.user_id),
                   (SELECT count(*) FROM wits_reservation r
                     WHERE r.wallet_id = w.user_id AND r.state = 'held')
              FROM wits_wallet w WHERE w.user_id = %s
            """,
            [user_id],
        )
        row = cursor.fetchone()
    if row is None:
        return Snapshot(ledger.Balance(0, 0, 0), 0, 0, 0, 0)
    available, reserved, used, credited, entries, reservations, held = row
    balance = ledger.Balance(available, reserved, used)
    return Snapshot(balance, credited, entries, reservations, held)


def entry_kinds(reservation_id: uuid.UUID) -> list[str]:
    return list(
        LedgerEntry.objects.filter(reservation_id=reservation_id)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def run_threads(target: Callable[[int], T], count: int) -> list[T | BaseException]:
    """Run `target(i)` on `count` real threads released together; each closes its connection.

    Returns each thread's result or the exception it raised, by index.
    """
    results: list[T | BaseException] = [RuntimeError("thread did not finish")] * count
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = target(i)
        except BaseException as exc:  # handed back to the test to assert on
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError("a thread is still running after 240 s (a deadlock or a hang)")
    return results


def current_database_url() -> str:
    """The URL of the database this test process uses (pytest-django's test database)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    port = f":{s['PORT']}" if s["PORT"] else ""
    return f"postgres://{auth}@{s['HOST']}{port}/{s['NAME']}"


def subprocess_env() -> dict[str, str]:
    """This process's environment with DATABASE_URL pointed at the test database."""
    return {**os.environ, "DATABASE_URL": current_database_url(), "PYTHONUNBUFFERED": "1"}
