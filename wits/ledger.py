"""The Wits ledger: the only code that writes wallets, reservations and ledger entries.

Invariants, for every wallet at every committed state (BAR.md L1-L5):
- L1 available >= 0 and reserved >= 0 (also CheckConstraints).
- L2 available + reserved + lifetime_used == credited (also a CheckConstraint).
- L3 reserved == the sum of the wallet's held reservations, and replaying the wallet's entries
  (their deltas) reproduces the wallet row exactly (`manage.py checkledger`).
- L4 a reservation leaves `held` exactly once, to committed or released; whoever flips the
  state (a commit, a release, a replay of either, the reconcile task) is the only one that
  moves money for it, so N replays in sequence or at once write one entry.
- L5 a commit charges at most the reserved amount; usage beyond it is recorded as `loss` on the
  reservation and never charged.

How: each operation is one short transaction. Money moves through a conditional
`UPDATE wallet ... RETURNING` (the row lock is taken by the UPDATE itself and the condition is
re-checked under it), so concurrent reserves can never overspend. Settlement first flips the
reservation with `UPDATE ... WHERE state = 'held'`: exactly one caller sees a row change.
Locks are always taken reservation-then-wallet, so there is no lock cycle and no deadlock.
On any error nothing is written: the transaction rolls back whole.

On PostgreSQL, reserve and settle each run as ONE statement (data-modifying CTEs): the same
conditional updates, the same inserts, the same lock order (a CTE that reads another's rows runs
after it), in one round trip and one implicit transaction. The portable path (SQLite, and tests
that set FAST_SQL = False) does the same steps through the ORM inside atomic(durable=True).

Batches (PostgreSQL, `WITS_BATCH_MAX` > 1, a caller outside any transaction of its own):
concurrent reserves on one wallet in one process, and concurrent settlements of its
reservations, run as one statement per batch (`clawwits.combine`: while one runs, the next
gathers). The statement does what the single statements would do in the batch's order:
the same conditional updates under the same locks, one entry per job with the running
after-values, the attached rows of exactly the settlements that applied. A reserve is
admitted only while the balance covers it and every job before it in the batch; a job the
batch leaves undone (not covered, or a reservation that did not flip) runs alone afterwards,
so every refusal and every replay answer is a single statement's. A batch statement that
fails writes nothing and each of its jobs runs alone.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.models import AutoField
from django.utils import timezone

from clawwits import dbpool, modelrow
from clawwits.combine import ALONE, Combiner
from clawwits.errors import ApiError, Code
from wits.models import LedgerEntry, Reservation, TopupOrder, Wallet

Kind = LedgerEntry.Kind
State = Reservation.State
_CREDIT_KINDS = {Kind.TOPUP, Kind.GRANT, Kind.ADJUSTMENT}
# One-statement reserve/settle on PostgreSQL; tests switch it off to exercise the portable path.
FAST_SQL = True


def _fast() -> bool:
    return FAST_SQL and connection.vendor == "postgresql"


def _statement(sql: str, params: list[object]) -> list[tuple]:
    """Run one ledger statement and return its rows. Inside a caller's transaction it gets a
    savepoint, so a refused statement (a duplicate request id) leaves that transaction usable,
    as the portable path's atomic block does."""
    db = connections[DEFAULT_DB_ALIAS]  # one lookup; each `connection.x` is a context-local one
    guard = transaction.atomic() if db.in_atomic_block else contextlib.nullcontext()
    with guard, _bound_cursor(db) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _one_statement(sql: str, params: list[object]) -> tuple | None:
    """Run one ledger statement and return its row (None when it returned none)."""
    rows = _statement(sql, params)
    return rows[0] if rows else None


def _bound_cursor(db: BaseDatabaseWrapper) -> CursorWrapper:
    """Django's cursor wrapper around a psycopg cursor that binds parameters on the server.

    Django's default psycopg cursor quotes every parameter into the SQL text in Python, and
    PostgreSQL then parses and plans the whole CTE again on each call. Bound by the server,
    the parameters cost no quoting, and psycopg prepares a statement once it has run a few
    times on a connection (`DB_PREPARED_STATEMENTS`), so each ledger statement is planned once
    per connection. The wrapper keeps Django's error translation, execute wrappers and query
    logging.
    """
    db.ensure_connection()
    with db.wrap_database_errors:
        raw = ServerBindingCursor(db.connection)
    return db._prepare_cursor(raw)


class LedgerError(Exception):
    """A ledger operation was refused; nothing was written."""


@dataclass(frozen=True)
class Balance:
    available: int
    reserved: int
    lifetime_used: int


@dataclass(frozen=True)
class Settlement:
    reservation_id: uuid.UUID
    state: str
    amount: int
    charged: int
    loss: int
    # False when this call found the reservation already settled (a replay): it wrote nothing.
    applied: bool
    # The wallet's `available` right after this settlement; 0 (unknown) for a replay. Not part
    # of the outcome's identity: a replay compares equal to the settlement it repeats.
    available_after: int = field(default=0, compare=False)


def insufficient_wits(needed: int) -> ApiError:
    return ApiError(
        Code.INSUFFICIENT_WITS,
        f"Not enough Wits: this request needs up to {needed} available. Top up at /pricing.",
        extra={"requiredWits": needed},
    )


def _move(
    user_id: uuid.UUID,
    *,
    available: int,
    reserved: int = 0,
    used: int = 0,
    require_available: int | None = None,
) -> Balance | None:
    """Apply deltas to one wallet; None when the wallet is missing or the guard fails.

    `require_available` makes the update conditional on `available >= require_available`,
    evaluated under the row lock the UPDATE takes, so no concurrent reader can slip between.
    """
    table = Wallet._meta.db_table
    sql = (
        f"UPDATE {table} SET available = available + %s, reserved = reserved + %s, "
        f"lifetime_used = lifetime_used + %s, credited = credited + %s, updated_at = %s "
        f"WHERE user_id = %s"
    )
    params: list[object] = [available, reserved, used, available + reserved + used, timezone.now()]
    params.append(user_id.hex if connection.vendor == "sqlite" else user_id)
    if require_available is not None:
        sql += " AND available >= %s"
        params.append(require_available)
    sql += " RETURNING available, reserved, lifetime_used"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else Balance(*row)


def _entry(
    user_id: uuid.UUID,
    kind: str,
    amount: int,
    after: Balance,
    *,
    available: int,
    reserved: int = 0,
    used: int = 0,
    actor: str,
    note: str = "",
    reservation_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
) -> LedgerEntry:
    return LedgerEntry.objects.create(
        wallet_id=user_id,
        kind=kind,
        amount=amount,
        available_delta=available,
        reserved_delta=reserved,
        used_delta=used,
        available_after=after.available,
        reserved_after=after.reserved,
        used_after=after.lifetime_used,
        reservation_id=reservation_id,
        order_id=order_id,
        actor=actor,
        note=note,
    )


def open_wallet(*, user_id: uuid.UUID) -> None:
    """Create the user's empty wallet if it does not exist. Safe inside an outer transaction."""
    Wallet.objects.get_or_create(user_id=user_id)


def balance(*, user_id: uuid.UUID) -> Balance:
    """One row, one statement: the three figures always come from the same committed state."""
    row = Wallet.objects.filter(user_id=user_id).values_list(
        "available", "reserved", "lifetime_used"
    )
    found = row.first()
    return Balance(*found) if found else Balance(0, 0, 0)


def grant(
    *,
    user_id: uuid.UUID,
    amount: int,
    actor: str,
    note: str = "",
    kind: str = Kind.GRANT,
) -> LedgerEntry:
    """Credit (or, as an adjustment, debit) Wits. One entry; the wallet is created if missing.

    A negative adjustment that would drive `available` below zero raises LedgerError and
    changes nothing. Nests inside an outer transaction (account creation uses that).
    """
    if kind not in {Kind.GRANT, Kind.ADJUSTMENT}:
        raise LedgerError(f"grant cannot write a {kind} entry")
    if not isinstance(amount, int) or amount == 0:
        raise LedgerError("amount must be a non-zero integer")
    if amount < 0 and kind != Kind.ADJUSTMENT:
        raise LedgerError("only an adjustment may remove Wits")
    if not note.strip() and actor.startswith("admin:"):
        raise LedgerError("an admin grant needs a note")
    with transaction.atomic():
        open_wallet(user_id=user_id)
        after = _move(user_id, available=amount, require_available=max(0, -amount))
        if after is None:
            raise LedgerError(f"the wallet holds less than {-amount} available Wits")
        return _entry(user_id, kind, amount, after, available=amount, actor=actor, note=note)


def reserve(
    *,
    user_id: uuid.UUID,
    request_id: str,
    amount: int,
    model: str = "",
    provider: str = "",
    api_key_id: uuid.UUID | None = None,
    ttl: timedelta | None = None,
) -> Reservation:
    """Hold `amount` Wits for one request before anything is sent upstream.

    Raises ApiError(insufficient_wits) when available < amount, and LedgerError for a request id
    that already has a reservation; in both cases nothing changes.
    """
    if not isinstance(amount, int) or amount <= 0:
        raise LedgerError("a reservation must be a positive integer")
    if ttl is None:
        ttl = timedelta(seconds=settings.WITS_RESERVATION_TTL_S)
    elif ttl <= timedelta(0):
        # Born expired, it could be reconciled away while its request is still running.
        raise LedgerError("a reservation's ttl must be positive")
    now = timezone.now()
    expires = now + ttl
    if _fast():
        job = _ReserveJob(
            user_id, request_id, amount, model[:100], provider[:100], api_key_id, now, expires
        )
        if _batching():
            return _submit(_reserves(), user_id, job)
        return _reserve_alone(job)
    try:
        with transaction.atomic(durable=True):
            after = _move(user_id, available=-amount, reserved=amount, require_available=amount)
            if after is None:
                # A duplicate stays a duplicate when the wallet is short too; looked up only on
                # this refusal path, so the hot path keeps its round trips.
                if Reservation.objects.filter(request_id=request_id).exists():
                    raise IntegrityError(f"request {request_id} already holds a reservation")
                raise insufficient_wits(amount)
            reservation = Reservation.objects.create(
                request_id=request_id,
                wallet_id=user_id,
                amount=amount,
                model=model[:100],
                provider=provider[:100],
                api_key_id=api_key_id,
                created_at=now,
                expires_at=expires,
            )
            _entry(
                user_id,
                Kind.RESERVE,
                amount,
                after,
                available=-amount,
                reserved=amount,
                actor="gateway",
                reservation_id=reservation.id,
            )
    except IntegrityError as exc:
        raise LedgerError(f"request {request_id} already holds a reservation") from exc
    return reservation


_RESERVE_SQL = """
WITH w AS (
    UPDATE wits_wallet
       SET available = available - %s, reserved = reserved + %s, updated_at = %s
     WHERE user_id = %s AND available >= %s
 RETURNING user_id, available, reserved, lifetime_used
), r AS (
    INSERT INTO wits_reservation (id, request_id, wallet_id, amount, state, charged, loss,
                                  recorded, settle_reason, model, provider, api_key_id,
                                  created_at, expires_at, settled_at)
    SELECT %s, %s, w.user_id, %s, 'held', 0, 0, NULL, '', %s, %s, %s, %s, %s, NULL FROM w
    RETURNING id
)
INSERT INTO wits_ledgerentry (wallet_id, kind, amount, available_delta, reserved_delta,
                              used_delta, available_after, reserved_after, used_after,
                              reservation_id, order_id, actor, note, created_at)
SELECT w.user_id, 'reserve', %s, %s, %s, 0, w.available, w.reserved, w.lifetime_used, r.id,
       NULL, 'gateway', '', %s
  FROM w, r
RETURNING available_after
"""


@dataclass(frozen=True)
class _ReserveJob:
    user_id: uuid.UUID
    request_id: str
    amount: int
    model: str
    provider: str
    api_key_id: uuid.UUID | None
    now: datetime
    expires: datetime
    res_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def reservation(self) -> Reservation:
        return modelrow.build(
            Reservation,
            {
                "id": self.res_id,
                "request_id": self.request_id,
                "wallet_id": self.user_id,
                "amount": self.amount,
                "model": self.model,
                "provider": self.provider,
                "api_key_id": self.api_key_id,
                "created_at": self.now,
                "expires_at": self.expires,
            },
            saved=True,
        )


def _reserve_alone(job: _ReserveJob) -> Reservation:
    user_id, request_id, amount = job.user_id, job.request_id, job.amount
    model, provider, api_key_id = job.model, job.provider, job.api_key_id
    now, expires, res_id = job.now, job.expires, job.res_id
    params = [
        amount, amount, now, user_id, amount,
        res_id, request_id, amount, model, provider, api_key_id, now, expires,
        amount, -amount, amount, now,
    ]  # fmt: skip
    try:
        row = _one_statement(_RESERVE_SQL, params)
    except IntegrityError as exc:
        raise LedgerError(f"request {request_id} already holds a reservation") from exc
    if row is None:
        # As on the portable path: a duplicate stays a duplicate when the wallet is short too.
        if Reservation.objects.filter(request_id=request_id).exists():
            raise LedgerError(f"request {request_id} already holds a reservation")
        raise insufficient_wits(amount)
    return job.reservation()


# Concurrent reserves on one wallet (and settlements of its reservations) in this process run
# as one statement (`clawwits.combine`): the wallet row is locked and written once per batch, not
# once per request, and PostgreSQL's fixed cost per statement is paid once.
# Admission is in order of arrival and stops at the first job the balance cannot cover: the
# jobs after it are tried again alone (as is that one), so a refusal is always a single
# statement's refusal, and what is admitted is exactly what sequential reserves in this order
# would have admitted until then. After-values are the running balance in that order: the
# entries' ids are drawn in it (volatile defaults are evaluated after the sort), so replaying
# the wallet's entries reproduces each of them.
# The arrays are bound in binary (`%b`): psycopg writes a text array element by element in
# Python (~37 µs per reserve job of a batch of 32), a binary one ~6 µs.
_RESERVE_BATCH_SQL = """
WITH req AS (
    SELECT * FROM unnest(%b::int[], %b::uuid[], %b::varchar(64)[], %b::bigint[],
                         %b::varchar(100)[], %b::varchar(100)[], %b::uuid[], %b::timestamptz[],
                         %b::timestamptz[])
        AS req (i, id, request_id, amount, model, provider, api_key_id, created_at, expires_at)
), w0 AS (
    SELECT available, reserved, lifetime_used FROM wits_wallet WHERE user_id = %s
       FOR NO KEY UPDATE
), ok AS (
    SELECT q.*, w0.available - q.running AS available_after,
           w0.reserved + q.running AS reserved_after, w0.lifetime_used AS used_after
      FROM (SELECT req.*, sum(req.amount) OVER (ORDER BY req.i) AS running FROM req) AS q, w0
     WHERE q.running <= w0.available
), w AS (
    UPDATE wits_wallet
       SET available = available - t.total, reserved = reserved + t.total, updated_at = %s
      FROM (SELECT sum(amount) AS total FROM ok) AS t
     WHERE user_id = %s AND t.total IS NOT NULL
 RETURNING user_id
), r AS (
    INSERT INTO wits_reservation (id, request_id, wallet_id, amount, state, charged, loss,
                                  recorded, settle_reason, model, provider, api_key_id,
                                  created_at, expires_at, settled_at)
    SELECT ok.id, ok.request_id, w.user_id, ok.amount, 'held', 0, 0, NULL, '', ok.model,
           ok.provider, ok.api_key_id, ok.created_at, ok.expires_at, NULL
      FROM ok, w ORDER BY ok.i
)
INSERT INTO wits_ledgerentry (wallet_id, kind, amount, available_delta, reserved_delta,
                              used_delta, available_after, reserved_after, used_after,
                              reservation_id, order_id, actor, note, created_at)
SELECT w.user_id, 'reserve', ok.amount, -ok.amount, ok.amount, 0, ok.available_after,
       ok.reserved_after, ok.used_after, ok.id, NULL, 'gateway', '', ok.created_at
  FROM ok, w ORDER BY ok.i
RETURNING reservation_id
"""


def _reserve_batch(jobs: Sequence[_ReserveJob]) -> list[Reservation | object]:
    """Reserve for every job of one wallet in one statement; ALONE for those not admitted."""
    # One array per column: the statement's text is the same for any number of jobs, so it is
    # parsed and prepared once (a placeholder per value made a new text every batch).
    user_id = jobs[0].user_id
    columns = zip(
        *(
            (i, job.res_id, job.request_id, job.amount, job.model, job.provider, job.api_key_id)
            + (job.now, job.expires)
            for i, job in enumerate(jobs)
        ),
        strict=True,
    )
    params = [*map(list, columns), user_id, jobs[0].now, user_id]
    admitted = {row[0] for row in _statement(_RESERVE_BATCH_SQL, params)}
    return [job.reservation() if job.res_id in admitted else ALONE for job in jobs]


_SETTLE_SQL = """
WITH r AS (
    UPDATE wits_reservation
       SET state = %s, charged = LEAST(%s, amount), loss = GREATEST(%s - amount, 0),
           settle_reason = %s, settled_at = %s
     WHERE id = %s AND state = 'held'
 RETURNING wallet_id, amount, charged, loss
), w AS (
    UPDATE wits_wallet
       SET available = wits_wallet.available + r.amount - r.charged,
           reserved = wits_wallet.reserved - r.amount,
           lifetime_used = wits_wallet.lifetime_used + r.charged,
           updated_at = %s
      FROM r
     WHERE wits_wallet.user_id = r.wallet_id
 RETURNING wits_wallet.user_id, wits_wallet.available, wits_wallet.reserved,
           wits_wallet.lifetime_used, r.amount, r.charged, r.loss
), e AS (
    INSERT INTO wits_ledgerentry (wallet_id, kind, amount, available_delta, reserved_delta,
                                  used_delta, available_after, reserved_after, used_after,
                                  reservation_id, order_id, actor, note, created_at)
    SELECT w.user_id, %s, CASE WHEN %s THEN w.charged ELSE w.amount - w.charged END,
           w.amount - w.charged, -w.amount, w.charged, w.available, w.reserved,
           w.lifetime_used, %s, NULL, %s, %s, %s
      FROM w
    RETURNING id
){attach}
SELECT w.amount, w.charged, w.loss, w.available FROM w
"""


_INSERT_SHAPES: dict[type, tuple[str, tuple[str, ...]]] = {}


def _insert_shape(model: type[models.Model]) -> tuple[str, tuple[str, ...]]:
    """(`INSERT INTO table (cols) SELECT %s... FROM w`, attnames) for a model, built once."""
    shape = _INSERT_SHAPES.get(model)
    if shape is None:
        into, fields = _insert_into(model)
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f"{into} SELECT {placeholders} FROM w"
        shape = _INSERT_SHAPES[model] = (sql, tuple(f.attname for f in fields))
    return shape


def _insert_into(model: type[models.Model]) -> tuple[str, list[models.Field]]:
    """`INSERT INTO table (cols)` for every column a plain insert writes (all but an
    auto-incremented key), and those fields, in order."""
    quote = connection.ops.quote_name
    fields = [
        f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, AutoField))
    ]
    columns = ", ".join(quote(f.column) for f in fields)
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns})", fields


def _attach_sql(rows: Sequence[models.Model]) -> tuple[str, list[object]]:
    """`, aN AS (INSERT ... SELECT ... FROM w)` per row: inserted iff the settlement applied.

    PostgreSQL-only (the fast path), where psycopg adapts the attributes' Python values (ints,
    strings, UUIDs, aware datetimes) itself; rows must be plain inserts with no pre_save logic.
    """
    parts: list[str] = []
    params: list[object] = []
    for index, row in enumerate(rows):
        sql, attnames = _insert_shape(type(row))
        parts.append(f", a{index} AS ({sql})")
        params.extend(getattr(row, name) for name in attnames)
    return "".join(parts), params


@dataclass(frozen=True)
class _SettleJob:
    res_id: uuid.UUID
    wallet_id: uuid.UUID | None  # known when the caller passed the Reservation
    state: str
    actual: int
    reason: str
    actor: str
    attach: Sequence[models.Model]


_UNNEST_SHAPES: dict[type, tuple[str, tuple[str, ...]]] = {}


def _unnest_shape(model: type[models.Model]) -> tuple[str, tuple[str, ...]]:
    """(`INSERT INTO table (cols) SELECT ... FROM unnest(i[], col[]...) JOIN o`, attnames):
    a batch's rows of one model, one array per column plus the index of the job each belongs
    to; a row is inserted iff its job's settlement applied (its index is in `o`). Built once."""
    shape = _UNNEST_SHAPES.get(model)
    if shape is None:
        into, fields = _insert_into(model)
        arrays = ", ".join(f"%b::{f.cast_db_type(connection)}[]" for f in fields)
        names = ", ".join(f"c{n}" for n in range(len(fields)))
        sql = (
            f"{into} SELECT {names} "
            f"FROM unnest(%b::int[], {arrays}) AS u (i, {names}) JOIN o ON o.i = u.i"
        )
        shape = _UNNEST_SHAPES[model] = (sql, tuple(f.attname for f in fields))
    return shape


def _settle_sql(job: _SettleJob) -> Settlement:
    res_id, state, actual, reason = job.res_id, job.state, job.actual, job.reason
    actor, attach = job.actor, job.attach
    now = timezone.now()
    kind = Kind.COMMIT if state == State.COMMITTED else Kind.RELEASE
    attach_sql, attach_params = _attach_sql(attach)
    params = [
        state, actual, actual, reason[:32], now, res_id,
        now,
        kind, kind == Kind.COMMIT, res_id, actor, reason, now,
        *attach_params,
    ]  # fmt: skip
    row = _one_statement(_SETTLE_SQL.format(attach=attach_sql), params)
    if row is None:
        return _settled_outcome(res_id)
    amount, charged, loss, available = row
    return Settlement(res_id, state, amount, charged, loss, applied=True, available_after=available)


# The batch's reservations are flipped first and the wallet is written once, as in
# `_SETTLE_SQL` (same lock order: reservations, then the wallet). Each entry's after-values are
# the balance after the settlements before it in the batch's order (the order its ids are
# drawn in), so replaying the wallet's entries reproduces each of them. A job whose
# reservation did not flip (settled already, or not this wallet's) is left to run alone, where
# `_settled_outcome` answers it.
_SETTLE_BATCH_SQL = """
WITH req AS (
    SELECT * FROM unnest(%b::int[], %b::uuid[], %b::varchar(12)[], %b::bigint[],
                         %b::varchar(32)[], %b::varchar(12)[], %b::boolean[],
                         %b::varchar(255)[], %b::text[])
        AS req (i, id, state, actual, reason, kind, is_commit, actor, note)
), r AS (
    UPDATE wits_reservation
       SET state = req.state, charged = LEAST(req.actual, wits_reservation.amount),
           loss = GREATEST(req.actual - wits_reservation.amount, 0),
           settle_reason = req.reason, settled_at = %s
      FROM req
     WHERE wits_reservation.id = req.id AND wits_reservation.state = 'held'
       AND wits_reservation.wallet_id = %s
 RETURNING req.i, req.kind, req.is_commit, req.actor, req.note, wits_reservation.id,
           wits_reservation.amount, wits_reservation.charged, wits_reservation.loss
), t AS (
    SELECT sum(amount - charged) AS back, sum(amount) AS held, sum(charged) AS used FROM r
), w AS (
    UPDATE wits_wallet
       SET available = available + t.back, reserved = reserved - t.held,
           lifetime_used = lifetime_used + t.used, updated_at = %s
      FROM t
     WHERE wits_wallet.user_id = %s AND t.held IS NOT NULL
 RETURNING wits_wallet.user_id, wits_wallet.available - t.back AS available_before,
           wits_wallet.reserved + t.held AS reserved_before,
           wits_wallet.lifetime_used - t.used AS used_before
), o AS (
    SELECT r.*, w.user_id,
           w.available_before + sum(r.amount - r.charged) OVER (ORDER BY r.i) AS available_after,
           w.reserved_before - sum(r.amount) OVER (ORDER BY r.i) AS reserved_after,
           w.used_before + sum(r.charged) OVER (ORDER BY r.i) AS used_after
      FROM r, w
), e AS (
    INSERT INTO wits_ledgerentry (wallet_id, kind, amount, available_delta, reserved_delta,
                                  used_delta, available_after, reserved_after, used_after,
                                  reservation_id, order_id, actor, note, created_at)
    SELECT o.user_id, o.kind, CASE WHEN o.is_commit THEN o.charged ELSE o.amount - o.charged END,
           o.amount - o.charged, -o.amount, o.charged, o.available_after, o.reserved_after,
           o.used_after, o.id, NULL, o.actor, o.note, %s
      FROM o ORDER BY o.i
){attach}
SELECT o.i, o.amount, o.charged, o.loss, o.available_after FROM o
"""


def _settle_batch(jobs: Sequence[_SettleJob]) -> list[Settlement | object]:
    """Settle every job's reservation (all of the first job's wallet) in one statement; ALONE
    for those whose reservation did not flip here."""
    wallet_id = jobs[0].wallet_id
    now = timezone.now()
    rows = []
    attached: dict[type[models.Model], list[tuple[int, models.Model]]] = {}
    for i, job in enumerate(jobs):
        kind = Kind.COMMIT if job.state == State.COMMITTED else Kind.RELEASE
        rows.append(
            (i, job.res_id, job.state, job.actual, job.reason[:32], kind, kind == Kind.COMMIT)
            + (job.actor, job.reason)
        )
        for row in job.attach:
            attached.setdefault(type(row), []).append((i, row))
    params: list[object] = [*map(list, zip(*rows, strict=True))]
    params += [now, wallet_id, now, wallet_id, now]
    attach_parts = []
    for index, (model, members) in enumerate(attached.items()):
        sql, attnames = _unnest_shape(model)
        attach_parts.append(f", a{index} AS ({sql})")
        params.append([i for i, _ in members])
        params += [[getattr(row, name) for _, row in members] for name in attnames]
    sql = _SETTLE_BATCH_SQL.format(attach="".join(attach_parts))
    settled = {row[0]: row[1:] for row in _statement(sql, params)}
    outcomes: list[Settlement | object] = []
    for i, job in enumerate(jobs):
        row = settled.get(i)
        if row is None:
            outcomes.append(ALONE)
            continue
        amount, charged, loss, available = row
        outcomes.append(
            Settlement(
                job.res_id, job.state, amount, charged, loss, applied=True,
                available_after=available,
            )
        )  # fmt: skip
    return outcomes


def _batching() -> bool:
    """Whether this call may join a batch: PostgreSQL's one-statement path, outside any
    transaction of the caller's (a batch runs on one member's connection, in its own)."""
    return settings.WITS_BATCH_MAX > 1 and not connections[DEFAULT_DB_ALIAS].in_atomic_block


def _submit(combiner: Combiner, key: uuid.UUID, job: object) -> object:
    # Waiting for another caller's batch, this one's pooled connection may be the one that
    # caller needs to run it.
    dbpool.give_back()
    return combiner.submit(key, job)


_combiners: dict[str, Combiner] = {}
_combiners_lock = threading.Lock()


def _combiner(name: str, make: Callable[[int], Combiner]) -> Combiner:
    """The process's one combiner of this name (two would let batches of one wallet overlap)."""
    size = settings.WITS_BATCH_MAX
    combiner = _combiners.get(name)
    if combiner is None or combiner.max_batch != size:
        with _combiners_lock:
            combiner = _combiners.get(name)
            if combiner is None or combiner.max_batch != size:
                combiner = _combiners[name] = make(size)
    return combiner


def _reserves() -> Combiner:
    return _combiner(
        "reserve", lambda size: Combiner(_reserve_batch, _reserve_alone, max_batch=size)
    )


def _settles() -> Combiner:
    return _combiner("settle", lambda size: Combiner(_settle_batch, _settle_sql, max_batch=size))


def _settle(
    reservation: Reservation | uuid.UUID,
    *,
    state: str,
    actual: int,
    reason: str,
    actor: str,
    attach: Sequence[models.Model] = (),
) -> Settlement:
    if not isinstance(actual, int) or actual < 0:
        raise LedgerError("usage must be a non-negative integer")
    if _fast():
        res_id = reservation.id if isinstance(reservation, Reservation) else reservation
        wallet_id = reservation.wallet_id if isinstance(reservation, Reservation) else None
        job = _SettleJob(res_id, wallet_id, state, actual, reason, actor, tuple(attach))
        if wallet_id is not None and _batching():
            return _submit(_settles(), wallet_id, job)
        return _settle_sql(job)
    if isinstance(reservation, Reservation):
        res_id, amount, wallet_id = reservation.id, reservation.amount, reservation.wallet_id
    else:
        # amount and wallet never change after creation, so reading them unlocked is safe.
        row = Reservation.objects.filter(pk=reservation).values_list("amount", "wallet_id").first()
        if row is None:
            raise LedgerError(f"no reservation {reservation}")
        res_id, (amount, wallet_id) = reservation, row
    charged = min(actual, amount)
    loss = actual - charged
    returned = amount - charged
    now = timezone.now()
    with transaction.atomic(durable=True):
        flipped = Reservation.objects.filter(pk=res_id, state=State.HELD).update(
            state=state, charged=charged, loss=loss, settle_reason=reason[:32], settled_at=now
        )
        if not flipped:
            return _settled_outcome(res_id)
        after = _move(wallet_id, available=returned, reserved=-amount, used=charged)
        if after is None:
            raise LedgerError(f"wallet {wallet_id} vanished")  # PROTECT makes this impossible
        kind = Kind.COMMIT if state == State.COMMITTED else Kind.RELEASE
        _entry(
            wallet_id,
            kind,
            charged if kind == Kind.COMMIT else returned,
            after,
            available=returned,
            reserved=-amount,
            used=charged,
            actor=actor,
            note=reason,
            reservation_id=res_id,
        )
        for row in attach:
            row.save(force_insert=True)
    return Settlement(
        res_id, state, amount, charged, loss, applied=True, available_after=after.available
    )


def _settled_outcome(res_id: uuid.UUID) -> Settlement:
    res = Reservation.objects.filter(pk=res_id).first()
    if res is None:
        raise LedgerError(f"no reservation {res_id}")
    return Settlement(res.id, res.state, res.amount, res.charged, res.loss, applied=False)


def commit(
    reservation: Reservation | uuid.UUID,
    *,
    actual: int,
    reason: str = "completed",
    actor: str = "gateway",
    attach: Sequence[models.Model] = (),
) -> Settlement:
    """Charge real usage (at most the reservation) and return the rest, exactly once.

    `attach`: rows (a usage record) inserted in the same transaction, so they exist if and only
    if the settlement happened. A replay returns the first outcome with applied=False.
    """
    return _settle(
        reservation, state=State.COMMITTED, actual=actual, reason=reason, actor=actor, attach=attach
    )


def release(
    reservation: Reservation | uuid.UUID,
    *,
    reason: str,
    actor: str = "gateway",
    attach: Sequence[models.Model] = (),
) -> Settlement:
    """Return the whole reservation (failure before any output), exactly once."""
    return _settle(
        reservation, state=State.RELEASED, actual=0, reason=reason, actor=actor, attach=attach
    )


def record_usage(reservation: Reservation | uuid.UUID, *, actual: int) -> bool:
    """Remember usage so far on a held reservation, for reconcile to commit after a crash.

    Returns whether the reservation was still held (a settled one keeps its settlement). On
    PostgreSQL it is `record_usages`' statement, bound and prepared on the server. Streams
    record through `wits.progress`, which writes a process's records together."""
    res_id = reservation.id if isinstance(reservation, Reservation) else reservation
    if _fast():
        return res_id in record_usages([(res_id, actual)])
    return bool(
        Reservation.objects.filter(pk=res_id, state=State.HELD).update(recorded=max(0, actual))
    )


def record_usages(records: Sequence[tuple[uuid.UUID, int]]) -> set[uuid.UUID]:
    """`record_usage` for many reservations in one statement (PostgreSQL); the ids still held."""
    if not records:
        return set()
    ids = [res_id for res_id, _ in records]
    actuals = [max(0, actual) for _, actual in records]
    rows = _statement(_RECORD_USAGES_SQL, [ids, actuals, State.HELD.value])
    return {row[0] for row in rows}


def batches_records() -> bool:
    """Whether progress records may be written behind the caller, several in one statement:
    on PostgreSQL, outside any transaction of the caller's (which the writer's own connection
    could not see into)."""
    return _fast() and not connections[DEFAULT_DB_ALIAS].in_atomic_block


_RECORD_USAGES_SQL = (
    f"UPDATE {Reservation._meta.db_table} AS r SET recorded = v.actual "
    "FROM unnest(%s::uuid[], %s::bigint[]) AS v(id, actual) "
    "WHERE r.id = v.id AND r.state = %s RETURNING r.id"
)


@dataclass(frozen=True)
class ReconcileResult:
    committed: int
    released: int
    skipped: int


def reconcile(*, now: datetime | None = None, batch_size: int = 500) -> ReconcileResult:
    """Settle reservations left open past their expiry by a crashed process.

    Each is committed from its recorded usage, or released when none was recorded. Safe to run
    concurrently with itself and with late commits: the settle gate picks one winner, the others
    count as skipped.
    """
    now = now or timezone.now()
    committed = released = skipped = 0
    while True:
        stale = list(
            Reservation.objects.filter(state=State.HELD, expires_at__lt=now)
            .order_by("expires_at")
            .values_list("id", "amount", "wallet_id", "recorded")[:batch_size]
        )
        if not stale:
            break
        for res_id, amount, wallet_id, recorded in stale:
            res = Reservation(id=res_id, amount=amount, wallet_id=wallet_id)
            if recorded is not None:
                outcome = commit(res, actual=recorded, reason="reconciled", actor="reconcile")
                committed += outcome.applied
            else:
                outcome = release(res, reason="expired", actor="reconcile")
                released += outcome.applied
            skipped += not outcome.applied
        if len(stale) < batch_size:
            break
    return ReconcileResult(committed, released, skipped)


def credit_order(*, order_id: uuid.UUID, actor: str, note: str = "") -> bool:
    """Credit a paid top-up order exactly once; False (and nothing written) if already done."""
    with transaction.atomic():
        flipped = TopupOrder.objects.filter(pk=order_id, state=TopupOrder.State.PENDING).update(
            state=TopupOrder.State.CREDITED, credited_at=timezone.now()
        )
        if not flipped:
            return False
        order = TopupOrder.objects.get(pk=order_id)
        open_wallet(user_id=order.user_id)
        after = _move(order.user_id, available=order.wits)
        _entry(
            order.user_id,
            Kind.TOPUP,
            order.wits,
            after,
            available=order.wits,
            actor=actor,
            note=note or f"order {order.reference}",
            order_id=order.id,
        )
    return True


def cancel_order(*, order_id: uuid.UUID) -> bool:
    """Cancel a pending order; a credited order can never be canceled."""
    return bool(
        TopupOrder.objects.filter(pk=order_id, state=TopupOrder.State.PENDING).update(
            state=TopupOrder.State.CANCELED
        )
    )


@dataclass(frozen=True)
class Drift:
    user_id: uuid.UUID
    problem: str


def check(*, user_ids: Iterable[uuid.UUID] | None = None) -> list[Drift]:
    """Replay every wallet from its entries and report each broken invariant (L1-L4).

    Safe on a live database: each wallet, its entries and its reservations are read from one
    snapshot, so traffic committing in between cannot show up as drift.
    """
    drifts: list[Drift] = []
    wallet_ids = Wallet.objects.order_by("user_id").values_list("user_id", flat=True)
    if user_ids is not None:
        wallet_ids = wallet_ids.filter(user_id__in=list(user_ids))
    # Only the first statement of a transaction may set its isolation; inside a caller's
    # transaction the caller's isolation applies.
    own_snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    for uid in list(wallet_ids):
        with transaction.atomic():
            if own_snapshot:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            wallet = Wallet.objects.filter(user_id=uid).first()
            if wallet is not None:
                drifts.extend(_check_wallet(wallet))
    return drifts


def _check_wallet(wallet: Wallet) -> list[Drift]:
    uid = wallet.user_id
    problems: list[str] = []
    avail = reserved = used = credited = 0
    entries = LedgerEntry.objects.filter(wallet_id=uid).order_by("id")
    per_reservation: dict[uuid.UUID, list[str]] = {}
    for e in entries.iterator(chunk_size=2000):
        avail += e.available_delta
        reserved += e.reserved_delta
        used += e.used_delta
        if e.kind in _CREDIT_KINDS:
            credited += e.available_delta
            if e.reserved_delta or e.used_delta:
                problems.append(f"entry {e.id}: a {e.kind} moved reserved or used Wits")
        elif e.available_delta + e.reserved_delta + e.used_delta != 0:
            problems.append(f"entry {e.id}: a {e.kind} created or destroyed Wits")
        if (avail, reserved, used) != (e.available_after, e.reserved_after, e.used_after):
            problems.append(f"entry {e.id}: running balance does not match its after-values")
            avail, reserved, used = e.available_after, e.reserved_after, e.used_after
        if avail < 0 or reserved < 0:
            problems.append(f"entry {e.id}: balance went negative")
        if e.reservation_id is not None:
            per_reservation.setdefault(e.reservation_id, []).append(e.kind)
    if (avail, reserved, used, credited) != (
        wallet.available,
        wallet.reserved,
        wallet.lifetime_used,
        wallet.credited,
    ):
        problems.append(
            f"replay gives available={avail} reserved={reserved} used={used} "
            f"credited={credited}; wallet has {wallet.available}/{wallet.reserved}/"
            f"{wallet.lifetime_used}/{wallet.credited}"
        )
    reservations = Reservation.objects.filter(wallet_id=uid).values_list("id", "state", "amount")
    held_sum = 0
    for res_id, state, amount in reservations.iterator(chunk_size=2000):
        kinds = per_reservation.pop(res_id, [])
        if state == State.HELD:
            held_sum += amount
            expected = [Kind.RESERVE]
        elif state == State.COMMITTED:
            expected = [Kind.RESERVE, Kind.COMMIT]
        else:
            expected = [Kind.RESERVE, Kind.RELEASE]
        if kinds != expected:
            problems.append(f"reservation {res_id} ({state}) has entries {kinds}")
    if per_reservation:
        problems.append(f"entries point at {len(per_reservation)} unknown reservations")
    if held_sum != wallet.reserved:
        problems.append(f"reserved={wallet.reserved} but held reservations sum to {held_sum}")
    return [Drift(uid, problem) for problem in problems]
