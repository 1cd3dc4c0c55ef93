"""The ledger's one-statement steps are prepared once per PostgreSQL connection.

`DB_PREPARED_STATEMENTS=0` (pgbouncer before 1.21 in transaction mode) turns that off: the
same statements then run unprepared, with the same results.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from tests.wits.ledger_support import snapshot
from wits import ledger

pytestmark = pytest.mark.django_db


def _ledger_statements_prepared() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%wits_ledgerentry%"],
        )
        return cursor.fetchone()[0]


def _pairs(user_id: uuid.UUID, count: int) -> None:
    for _ in range(count):
        held = ledger.reserve(user_id=user_id, request_id=uuid.uuid4().hex, amount=10)
        ledger.commit(held, actual=4)


def test_reserve_and_settle_are_prepared_after_a_few_runs(make_user):
    user = make_user(wits=1_000)
    _pairs(user.id, 8)
    assert _ledger_statements_prepared() == 2
    assert snapshot(user.id).balance == ledger.Balance(1_000 - 8 * 4, 0, 8 * 4)


def test_with_prepared_statements_off_nothing_is_prepared_and_the_books_agree(make_user):
    user = make_user(wits=1_000)
    previous = connection.connection.prepare_threshold
    connection.connection.prepare_threshold = None
    try:
        _pairs(user.id, 8)
        assert _ledger_statements_prepared() == 0
    finally:
        connection.connection.prepare_threshold = previous
    assert snapshot(user.id).balance == ledger.Balance(1_000 - 8 * 4, 0, 8 * 4)
