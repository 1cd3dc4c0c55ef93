"""Streams' progress records, written behind the streams, a process's records in one statement.

A stream records what it has delivered every `gateway.relay.RECORD_INTERVAL_S` (2 s), so that
after a crash reconcile commits that much instead of releasing the reservation. Written by the
stream itself, each record cost a pooled connection, a round trip and a statement, as much
worker and database CPU as all the stream's other statements together (a thousand open streams
measured: ~0.45 ms of worker CPU and ~0.45 ms of PostgreSQL CPU per record), and new streams'
first tokens queued behind them.

Here a record only replaces the stream's pending one in memory. A writer (a thread, or a
greenlet under gevent) writes whatever is pending every `FLUSH_S` in one statement and stops
when nothing is left; the next record starts it again.

Guarantees:
- A record is written within about `FLUSH_S` of being made, unless a newer one of the same
  reservation replaced it first. So a crash loses at most `RECORD_INTERVAL_S + FLUSH_S` of a
  stream's delivered usage (it was `RECORD_INTERVAL_S`).
- Records never move a settled reservation: the statement only touches held ones (the same
  guard as `ledger.record_usage`), so one written after its stream's commit changes nothing.
- A write that fails (PostgreSQL away) keeps its records, unless newer ones replaced them, for
  the next round, and logs a warning; a record is dropped only with its process.
- `flush()` writes everything pending at once; it runs when the process exits normally.
- Off PostgreSQL (the embedded SQLite default, one writer at a time) and inside a caller's
  transaction, `record` writes at once, as `ledger.record_usage`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid

from django.db import DEFAULT_DB_ALIAS, connections

from clawwits import dbpool
from wits import ledger

logger = logging.getLogger("clawwits.progress")

FLUSH_S = 0.1
RETRY_S = 1.0
BATCH_MAX = 1000


class Writer:
    """One process's pending records and the writer that writes them."""

    def __init__(self, *, flush_s: float = FLUSH_S) -> None:
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._pending: dict[uuid.UUID, int] = {}
        self._running = False
        self._flushing = threading.Lock()  # one write at a time: a newer record never loses

    def record(self, reservation_id: uuid.UUID, actual: int) -> None:
        """Remember `actual` as the reservation's usage so far; written within `flush_s`."""
        if not ledger.batches_records():
            ledger.record_usage(reservation_id, actual=actual)
            # The stream runs on for seconds or minutes: a pooled connection goes back now.
            dbpool.give_back()
            return
        with self._lock:
            self._pending[reservation_id] = actual
            if self._running:
                return
            self._running = True
        try:
            threading.Thread(target=self._run, name="clawwits-progress", daemon=True).start()
        except BaseException:
            with self._lock:
                self._running = False  # the next record tries again
            raise

    def pending(self) -> dict[uuid.UUID, int]:
        with self._lock:
            return dict(self._pending)

    def flush(self) -> bool:
        """Write everything pending now; whether it all went (a failure keeps it pending)."""
        with self._flushing:
            with self._lock:
                taken, self._pending = self._pending, {}
            if not taken:
                return True
            items = list(taken.items())
            try:
                for start in range(0, len(items), BATCH_MAX):
                    ledger.record_usages(items[start : start + BATCH_MAX])
            except Exception as error:  # kept and retried; never raised to a stream
                logger.warning("progress records not written, kept for the next round: %s", error)
                with self._lock:
                    for res_id, actual in items:
                        self._pending.setdefault(res_id, actual)
                return False
            return True

    def _run(self) -> None:
        delay = self.flush_s
        try:
            while True:
                time.sleep(delay)
                if self.flush():
                    delay = self.flush_s
                    dbpool.give_back()  # a pooled connection is not kept between rounds
                else:
                    # Try again each second, not each `flush_s`, on a new connection (the one
                    # that failed may be dead: PostgreSQL restarted).
                    delay = max(self.flush_s, RETRY_S)
                    connections[DEFAULT_DB_ALIAS].close()
                with self._lock:
                    if not self._pending:
                        self._running = False
                        return
        except BaseException:
            with self._lock:
                self._running = False
            raise
        finally:
            # The writer's own connection: a pooled one goes back, an unpooled one is closed
            # (a writer stops whenever nothing is pending; each would leave one open).
            connections[DEFAULT_DB_ALIAS].close()


_writer = Writer()


def record(reservation_id: uuid.UUID, actual: int) -> None:
    _writer.record(reservation_id, actual)


def flush() -> bool:
    return _writer.flush()


atexit.register(flush)
