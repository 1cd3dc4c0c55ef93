"""Giving this thread's (or greenlet's) pooled database connection back while it waits.

With `DB_POOL` (the production serving model: gevent workers, many requests per worker, a few
connections each), a request that kept its connection while it waits on something else would
hold it for nothing: through a whole upstream call or stream, a few slow upstreams would
exhaust the pool; while it waits for another request's ledger batch, it could hold the very
connection that request needs to run the batch. Given back, it is taken again on next use.
Without a pool a connection is the thread's own (giving it back would mean reconnecting), and
inside a transaction it must stay: both are left alone.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections


def give_back() -> None:
    db = connections[DEFAULT_DB_ALIAS]
    if getattr(db, "pool", None) is not None and not db.in_atomic_block:
        db.close()
