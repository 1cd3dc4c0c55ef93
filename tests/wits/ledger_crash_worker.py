"""A gateway-like process that reserves Wits and then stops dead at a named point.

    python -m tests.wits.ledger_crash_worker POINT USER_ID REQUEST_ID

Run by tests/wits/test_ledger_crash.py with DATABASE_URL pointing at the test database. At
POINT it prints one line `READY {"backend_pid": N}` and sleeps until it is killed with SIGKILL,
so the database sees exactly what a crashed gateway leaves behind. The `inside_*` points stop
after the last statement of a ledger transaction and before its COMMIT.

Points (the reservation is always 100 Wits):
  inside_reserve              in reserve's transaction, after its entry is written
  after_reserve               reserve committed, nothing else
  after_record_usage          reserve, record_usage(70)
  after_progress_record       reserve, wits.progress.record(70): a stream's record, written by
                              the process's record writer, not by the caller
  exit_after_progress_record  reserve, wits.progress.record(70) with the writer's round an hour
                              away, then a normal exit (no READY line): the exit writes it
  inside_commit               reserve, record_usage(40), in commit(actual=55)'s transaction
  inside_commit_no_usage      reserve, in commit(actual=55)'s transaction
  after_commit                reserve, commit(actual=55) committed
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from collections.abc import Callable

AMOUNT = 100
POINTS = (
    "inside_reserve",
    "after_reserve",
    "after_record_usage",
    "after_progress_record",
    "exit_after_progress_record",
    "inside_commit",
    "inside_commit_no_usage",
    "after_commit",
)


def stop_here() -> None:
    from django.db import connection

    line = json.dumps({"backend_pid": connection.connection.info.backend_pid})
    sys.stdout.write(f"READY {line}\n")
    sys.stdout.flush()
    threading.Event().wait()  # until SIGKILL


def stop_after_entry_insert(armed: Callable[[], bool]) -> Callable:
    """An execute wrapper that stops right after a ledger entry INSERT while `armed()`.

    On the one-statement path (PostgreSQL, ledger.FAST_SQL) the step is a single autocommitted
    statement; stopping inside it means: open a transaction, run the statement, and never
    commit, which is what a process killed during that statement leaves behind.
    """

    def wrapper(execute, sql, params, many, context):
        if armed() and sql.lstrip().upper().startswith("WITH "):
            execute("BEGIN", None, False, context)
            execute(sql, params, many, context)
            stop_here()
        result = execute(sql, params, many, context)
        if armed() and sql.lstrip().upper().startswith('INSERT INTO "WITS_LEDGERENTRY"'):
            stop_here()
        return result

    return wrapper


def main(point: str, user_id: uuid.UUID, request_id: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")
    import django

    django.setup()
    from django.db import connection

    from wits import ledger, progress

    ledger.FAST_SQL = os.environ.get("LEDGER_FAST_SQL", "1") == "1"
    phase = {"name": "reserve"}

    def armed() -> bool:
        return point == f"inside_{phase['name']}" or (
            point == "inside_commit_no_usage" and phase["name"] == "commit"
        )

    with connection.execute_wrapper(stop_after_entry_insert(armed)):
        res = ledger.reserve(user_id=user_id, request_id=request_id, amount=AMOUNT)
        if point == "after_reserve":
            stop_here()
        if point in {"after_record_usage", "inside_commit"}:
            ledger.record_usage(res, actual=70 if point == "after_record_usage" else 40)
        if point == "after_record_usage":
            stop_here()
        if point == "after_progress_record":
            progress.record(res.id, 70)
            stop_here()
        if point == "exit_after_progress_record":
            progress._writer.flush_s = 3600
            progress.record(res.id, 70)
            raise SystemExit(0)
        phase["name"] = "commit"
        ledger.commit(res, actual=55)
        if point == "after_commit":
            stop_here()
    raise SystemExit(f"point {point} was never reached")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in POINTS:
        raise SystemExit(__doc__)
    main(sys.argv[1], uuid.UUID(sys.argv[2]), sys.argv[3])
