"""`clawwits.dbpool.give_back`: a pooled connection goes back to the pool, nothing else does."""

from __future__ import annotations

import pytest

from clawwits import dbpool


@pytest.mark.parametrize(
    ("pool", "in_atomic_block", "closed"),
    [
        (object(), False, True),  # pooled, autocommit: given back
        (None, False, False),  # the thread's own connection: kept (closing means reconnecting)
        (object(), True, False),  # inside a transaction: kept
    ],
    ids=["pooled", "own", "in a transaction"],
)
def test_only_a_pooled_connection_outside_a_transaction_is_given_back(
    monkeypatch, pool, in_atomic_block, closed
):
    events: list[str] = []

    class Connection:
        def close(self) -> None:
            events.append("closed")

    held = Connection()
    held.pool = pool
    held.in_atomic_block = in_atomic_block
    monkeypatch.setattr(dbpool, "connections", {dbpool.DEFAULT_DB_ALIAS: held})

    dbpool.give_back()

    assert events == (["closed"] if closed else [])
