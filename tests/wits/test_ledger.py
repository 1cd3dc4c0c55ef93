"""The Wits ledger, one operation at a time (BAR.md L1-L5, DESIGN.md §6).

Every refused operation is checked to have changed nothing: balance, credited, entry count and
reservation count of the wallet.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from clawwits.errors import ApiError, Code
from tests.wits.ledger_support import entry_kinds, snapshot
from wits import ledger
from wits.models import LedgerEntry, Reservation, TopupOrder, Wallet

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ledger_path")]

Kind = ledger.Kind
B = ledger.Balance


def entry_row(entry: LedgerEntry) -> tuple:
    return (
        entry.kind,
        entry.amount,
        entry.available_delta,
        entry.reserved_delta,
        entry.used_delta,
        entry.available_after,
        entry.reserved_after,
        entry.used_after,
    )


def entries_of(reservation: Reservation) -> list[tuple]:
    rows = LedgerEntry.objects.filter(reservation_id=reservation.id).order_by("id")
    return [entry_row(e) for e in rows]


def expired_now() -> object:
    """A `now` past every reservation made with the default TTL in this test."""
    return timezone.now() + timedelta(days=2)


# --- grant / adjustment -----------------------------------------------------------------------


def test_welcome_grant_is_one_grant_entry(make_user):
    user = make_user(wits=1000)

    entries = list(LedgerEntry.objects.filter(wallet_id=user.id))

    assert [entry_row(e) for e in entries] == [("grant", 1000, 1000, 0, 0, 1000, 0, 0)]
    assert (entries[0].actor, entries[0].note) == ("system", "welcome grant")
    assert snapshot(user.id).credited == 1000
    assert ledger.check() == []


def test_grant_credits_available_and_credited_with_exact_entry(make_user):
    user = make_user(wits=100)

    entry = ledger.grant(user_id=user.id, amount=250, actor="admin:ops", note="goodwill")

    assert entry_row(entry) == ("grant", 250, 250, 0, 0, 350, 0, 0)
    assert (entry.actor, entry.note) == ("admin:ops", "goodwill")
    after = snapshot(user.id)
    assert (after.balance, after.credited, after.entries) == (B(350, 0, 0), 350, 2)
    assert ledger.check() == []


def test_negative_adjustment_removes_available_and_credited(make_user):
    user = make_user(wits=100)

    entry = ledger.grant(
        user_id=user.id, amount=-40, actor="admin:ops", note="refund", kind=Kind.ADJUSTMENT
    )

    assert entry_row(entry) == ("adjustment", -40, -40, 0, 0, 60, 0, 0)
    after = snapshot(user.id)
    assert (after.balance, after.credited, after.entries) == (B(60, 0, 0), 60, 2)
    assert ledger.check() == []


def test_negative_adjustment_may_empty_the_wallet_exactly(make_user):
    user = make_user(wits=100)

    ledger.grant(user_id=user.id, amount=-100, actor="system", kind=Kind.ADJUSTMENT)

    assert snapshot(user.id).balance == B(0, 0, 0)
    assert ledger.check() == []


def test_negative_adjustment_below_zero_is_refused_and_changes_nothing(make_user):
    user = make_user(wits=100)
    ledger.reserve(user_id=user.id, request_id="held", amount=30)
    before = snapshot(user.id)

    with pytest.raises(ledger.LedgerError, match="less than 71 available"):
        ledger.grant(user_id=user.id, amount=-71, actor="system", kind=Kind.ADJUSTMENT)

    assert snapshot(user.id) == before
    assert ledger.check() == []


@pytest.mark.parametrize(
    ("amount", "actor", "note", "kind", "message"),
    [
        (10, "admin:ops", "", Kind.GRANT, "an admin grant needs a note"),
        (10, "admin:ops", "   ", Kind.GRANT, "an admin grant needs a note"),
        (-10, "admin:ops", "", Kind.ADJUSTMENT, "an admin grant needs a note"),
        (0, "system", "", Kind.GRANT, "non-zero integer"),
        (-5, "system", "", Kind.GRANT, "only an adjustment may remove Wits"),
        (10, "system", "", Kind.TOPUP, "grant cannot write a topup entry"),
        (10, "system", "", Kind.COMMIT, "grant cannot write a commit entry"),
    ],
)
def test_refused_grants_change_nothing(make_user, amount, actor, note, kind, message):
    user = make_user(wits=100)
    before = snapshot(user.id)

    with pytest.raises(ledger.LedgerError, match=message):
        ledger.grant(user_id=user.id, amount=amount, actor=actor, note=note, kind=kind)

    assert snapshot(user.id) == before


def test_non_admin_grant_needs_no_note(make_user):
    user = make_user(wits=0)

    ledger.grant(user_id=user.id, amount=5, actor="command:grantwits")

    assert snapshot(user.id).balance == B(5, 0, 0)


# --- reserve ----------------------------------------------------------------------------------


def test_reserve_holds_wits_with_exact_entry(make_user):
    user = make_user(wits=1000)
    key = uuid.uuid4()

    res = ledger.reserve(
        user_id=user.id,
        request_id="req-1",
        amount=300,
        model="gpt-4o-mini",
        provider="openai-main",
        api_key_id=key,
    )

    stored = Reservation.objects.get(pk=res.id)
    assert (stored.request_id, stored.wallet_id, stored.amount, stored.state) == (
        "req-1",
        user.id,
        300,
        "held",
    )
    assert (stored.model, stored.provider, stored.api_key_id) == ("gpt-4o-mini", "openai-main", key)
    assert (stored.charged, stored.loss, stored.recorded, stored.settled_at) == (0, 0, None, None)
    assert entries_of(res) == [("reserve", 300, -300, 300, 0, 700, 300, 0)]
    assert snapshot(user.id).balance == B(700, 300, 0)
    assert ledger.check() == []


def test_reserve_expiry_follows_ttl(make_user):
    user = make_user(wits=10)
    before = timezone.now()

    res = ledger.reserve(user_id=user.id, request_id="ttl", amount=1, ttl=timedelta(seconds=90))

    assert timedelta(seconds=90) <= res.expires_at - before <= timedelta(seconds=91)


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
def test_reserve_with_a_ttl_that_is_not_positive_is_refused_and_changes_nothing(make_user, ttl):
    user = make_user(wits=100)
    before = snapshot(user.id)

    with pytest.raises(ledger.LedgerError, match="ttl must be positive"):
        ledger.reserve(user_id=user.id, request_id="r-ttl", amount=10, ttl=ttl)

    assert snapshot(user.id) == before


def test_reserve_of_everything_available_is_granted(make_user):
    user = make_user(wits=100)

    ledger.reserve(user_id=user.id, request_id="all", amount=100)

    assert snapshot(user.id).balance == B(0, 100, 0)


def test_reserve_short_raises_402_insufficient_wits_and_changes_nothing(make_user):
    user = make_user(wits=100)
    ledger.reserve(user_id=user.id, request_id="first", amount=60)
    before = snapshot(user.id)

    with pytest.raises(ApiError) as caught:
        ledger.reserve(user_id=user.id, request_id="second", amount=41)

    assert (caught.value.code, caught.value.status) == (Code.INSUFFICIENT_WITS, 402)
    assert caught.value.extra == {"requiredWits": 41}
    assert "/pricing" in caught.value.message
    assert snapshot(user.id) == before
    assert not Reservation.objects.filter(request_id="second").exists()


def test_reserve_without_a_wallet_is_insufficient_and_writes_nothing(make_user):
    stranger = uuid.uuid4()

    with pytest.raises(ApiError) as caught:
        ledger.reserve(user_id=stranger, request_id="nobody", amount=1)

    assert caught.value.code == Code.INSUFFICIENT_WITS
    assert Reservation.objects.count() == 0
    assert LedgerEntry.objects.filter(wallet_id=stranger).count() == 0


def test_duplicate_request_id_raises_ledger_error_and_changes_nothing(make_user):
    user = make_user(wits=100)
    other = make_user(wits=100)
    ledger.reserve(user_id=user.id, request_id="dup", amount=10)
    before, other_before = snapshot(user.id), snapshot(other.id)

    with pytest.raises(ledger.LedgerError, match="request dup already holds a reservation"):
        ledger.reserve(user_id=user.id, request_id="dup", amount=10)
    with pytest.raises(ledger.LedgerError, match="request dup already holds a reservation"):
        ledger.reserve(user_id=other.id, request_id="dup", amount=10)

    assert snapshot(user.id) == before
    assert snapshot(other.id) == other_before
    assert ledger.check() == []


def test_duplicate_request_id_on_a_short_wallet_is_still_a_duplicate(make_user):
    # given: the request id is taken, and the wallet could not cover the retry anyway
    user = make_user(wits=100)
    ledger.reserve(user_id=user.id, request_id="dup", amount=100)
    before = snapshot(user.id)

    # when / then: the refusal names the duplicate, not the balance
    with pytest.raises(ledger.LedgerError, match="request dup already holds a reservation"):
        ledger.reserve(user_id=user.id, request_id="dup", amount=1)

    assert snapshot(user.id) == before


@pytest.mark.parametrize("amount", [0, -1, 1.5, "10"])
def test_reserve_of_a_non_positive_or_non_integer_amount_is_refused(make_user, amount):
    user = make_user(wits=100)
    before = snapshot(user.id)

    with pytest.raises(ledger.LedgerError, match="positive integer"):
        ledger.reserve(user_id=user.id, request_id="bad", amount=amount)

    assert snapshot(user.id) == before


# --- commit / release -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "after", "entry"),
    [
        (120, B(880, 0, 120), ("commit", 120, 180, -300, 120, 880, 0, 120)),
        (300, B(700, 0, 300), ("commit", 300, 0, -300, 300, 700, 0, 300)),
        (0, B(1000, 0, 0), ("commit", 0, 300, -300, 0, 1000, 0, 0)),
    ],
    ids=["partial", "exact", "zero"],
)
def test_commit_charges_usage_and_returns_the_rest(make_user, actual, after, entry):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="r", amount=300)

    outcome = ledger.commit(res, actual=actual, reason="completed")

    assert outcome == ledger.Settlement(res.id, "committed", 300, actual, 0, applied=True)
    assert ledger.balance(user_id=user.id) == after
    assert entries_of(res)[1] == entry
    stored = Reservation.objects.get(pk=res.id)
    assert (stored.state, stored.charged, stored.loss, stored.settle_reason) == (
        "committed",
        actual,
        0,
        "completed",
    )
    assert stored.settled_at is not None
    assert snapshot(user.id).credited == 1000
    assert ledger.check() == []


def test_commit_by_reservation_id_is_the_same_as_by_instance(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="r", amount=300)

    outcome = ledger.commit(res.id, actual=50)

    assert outcome == ledger.Settlement(res.id, "committed", 300, 50, 0, applied=True)
    assert ledger.balance(user_id=user.id) == B(950, 0, 50)


def test_commit_over_the_reservation_charges_the_reservation_and_records_loss(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="over", amount=300)

    outcome = ledger.commit(res, actual=450)

    assert outcome == ledger.Settlement(res.id, "committed", 300, 300, 150, applied=True)
    assert ledger.balance(user_id=user.id) == B(700, 0, 300)
    assert entries_of(res)[1] == ("commit", 300, 0, -300, 300, 700, 0, 300)
    assert Reservation.objects.values_list("charged", "loss").get(pk=res.id) == (300, 150)
    assert ledger.check() == []


def test_release_returns_the_whole_reservation(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="rel", amount=300)

    outcome = ledger.release(res, reason="upstream_error")

    assert outcome == ledger.Settlement(res.id, "released", 300, 0, 0, applied=True)
    assert ledger.balance(user_id=user.id) == B(1000, 0, 0)
    assert entries_of(res)[1] == ("release", 300, 300, -300, 0, 1000, 0, 0)
    stored = Reservation.objects.get(pk=res.id)
    assert (stored.state, stored.settle_reason) == ("released", "upstream_error")
    assert ledger.check() == []


@pytest.mark.parametrize("actual", [-1, 2.5, None])
def test_commit_with_invalid_usage_is_refused_and_changes_nothing(make_user, actual):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="bad-usage", amount=300)
    before = snapshot(user.id)

    with pytest.raises(ledger.LedgerError, match="non-negative integer"):
        ledger.commit(res, actual=actual)

    assert snapshot(user.id) == before
    assert Reservation.objects.get(pk=res.id).state == "held"


def test_settling_an_unknown_reservation_is_refused(make_user):
    user = make_user(wits=1000)
    before = snapshot(user.id)

    with pytest.raises(ledger.LedgerError, match="no reservation"):
        ledger.commit(uuid.uuid4(), actual=1)
    with pytest.raises(ledger.LedgerError, match="no reservation"):
        ledger.release(uuid.uuid4(), reason="x")

    assert snapshot(user.id) == before


@pytest.mark.parametrize("first", ["commit", "release"])
@pytest.mark.parametrize("replay", ["commit", "release"])
def test_settlement_replayed_in_sequence_writes_one_entry(make_user, first, replay):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="replay", amount=300)
    settle = {
        "commit": lambda actual: ledger.commit(res, actual=actual),
        "release": lambda actual: ledger.release(res, reason="again"),
    }
    original = settle[first](100)
    after_first = snapshot(user.id)

    replays = [settle[replay](200 + i) for i in range(5)]

    expected = ledger.Settlement(
        res.id, original.state, 300, original.charged, original.loss, applied=False
    )
    assert replays == [expected] * 5
    assert snapshot(user.id) == after_first
    assert entry_kinds(res.id) == ["reserve", first]
    assert ledger.check() == []


def test_release_after_commit_is_a_no_op_reporting_the_commit(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="late-release", amount=300)
    ledger.commit(res, actual=450)
    before = snapshot(user.id)

    outcome = ledger.release(res, reason="client_gone")

    assert outcome == ledger.Settlement(res.id, "committed", 300, 300, 150, applied=False)
    assert snapshot(user.id) == before
    assert Reservation.objects.get(pk=res.id).settle_reason == "completed"


def test_attached_rows_are_written_only_when_the_settlement_applies(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="attach", amount=300)
    order = TopupOrder(user=user, wits=5, price=1, currency="USD", provider="bank", reference="A1")

    ledger.commit(res, actual=10, attach=[order])
    replay_row = TopupOrder(
        user=user, wits=5, price=1, currency="USD", provider="bank", reference="A2"
    )
    ledger.commit(res, actual=10, attach=[replay_row])

    assert list(TopupOrder.objects.values_list("reference", flat=True)) == ["A1"]


# --- record_usage / reconcile -----------------------------------------------------------------


def test_record_usage_only_on_held_reservations(make_user):
    user = make_user(wits=1000)
    held = ledger.reserve(user_id=user.id, request_id="held", amount=100)
    done = ledger.reserve(user_id=user.id, request_id="done", amount=100)
    ledger.commit(done, actual=30)
    before = snapshot(user.id)

    assert ledger.record_usage(held, actual=40) is True
    assert ledger.record_usage(held.id, actual=55) is True
    assert ledger.record_usage(done, actual=99) is False
    assert ledger.record_usage(uuid.uuid4(), actual=1) is False

    assert Reservation.objects.get(pk=held.id).recorded == 55
    assert Reservation.objects.get(pk=done.id).recorded is None
    assert snapshot(user.id) == before


def test_reconcile_settles_expired_reservations_from_recorded_usage(make_user):
    # given: one expired with usage recorded, one expired without, one over-recorded, one live
    user = make_user(wits=1000)
    short = timedelta(seconds=60)
    with_usage = ledger.reserve(user_id=user.id, request_id="a", amount=100, ttl=short)
    ledger.record_usage(with_usage, actual=40)
    without = ledger.reserve(user_id=user.id, request_id="b", amount=100, ttl=short)
    over = ledger.reserve(user_id=user.id, request_id="c", amount=100, ttl=short)
    ledger.record_usage(over, actual=130)
    live = ledger.reserve(user_id=user.id, request_id="d", amount=100, ttl=timedelta(hours=2))

    # when
    result = ledger.reconcile(now=timezone.now() + timedelta(minutes=5))

    # then
    assert result == ledger.ReconcileResult(committed=2, released=1, skipped=0)
    states = dict(Reservation.objects.values_list("request_id", "state"))
    assert states == {"a": "committed", "b": "released", "c": "committed", "d": "held"}
    assert Reservation.objects.values_list("charged", "loss", "settle_reason").get(
        pk=with_usage.id
    ) == (40, 0, "reconciled")
    assert Reservation.objects.values_list("charged", "loss").get(pk=over.id) == (100, 30)
    assert Reservation.objects.get(pk=without.id).settle_reason == "expired"
    assert LedgerEntry.objects.filter(kind="commit", actor="reconcile").count() == 2
    assert LedgerEntry.objects.filter(kind="release", actor="reconcile").count() == 1
    assert ledger.balance(user_id=user.id) == B(1000 - 140 - 100, 100, 140)
    assert Reservation.objects.get(pk=live.id).state == "held"
    assert ledger.check() == []


def test_reconcile_leaves_unexpired_reservations_untouched(make_user):
    user = make_user(wits=1000)
    ledger.reserve(user_id=user.id, request_id="live", amount=100)
    before = snapshot(user.id)

    result = ledger.reconcile()

    assert result == ledger.ReconcileResult(0, 0, 0)
    assert snapshot(user.id) == before


def test_reconcile_expiry_boundary_is_strict(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="edge", amount=100)

    at_expiry = ledger.reconcile(now=res.expires_at)
    just_after = ledger.reconcile(now=res.expires_at + timedelta(microseconds=1))

    assert (at_expiry, just_after) == (
        ledger.ReconcileResult(0, 0, 0),
        ledger.ReconcileResult(0, 1, 0),
    )


@pytest.mark.parametrize("count", [6, 7])
def test_reconcile_works_through_every_batch(make_user, count):
    user = make_user(wits=1000)
    for i in range(count):
        res = ledger.reserve(user_id=user.id, request_id=f"b{i}", amount=10)
        if i % 2:
            ledger.record_usage(res, actual=i)

    result = ledger.reconcile(now=expired_now(), batch_size=3)

    assert result == ledger.ReconcileResult(
        committed=count // 2, released=count - count // 2, skipped=0
    )
    assert Reservation.objects.filter(state="held").count() == 0
    charged = sum(i for i in range(count) if i % 2)
    assert ledger.balance(user_id=user.id) == B(1000 - charged, 0, charged)
    assert ledger.check() == []


def test_reconcile_after_settlement_does_nothing(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="x", amount=10)
    ledger.commit(res, actual=3)
    before = snapshot(user.id)

    assert ledger.reconcile(now=expired_now()) == ledger.ReconcileResult(0, 0, 0)
    assert snapshot(user.id) == before


# --- top-up orders ----------------------------------------------------------------------------


def make_order(user: object, *, wits: int = 5000, reference: str = "CW-1") -> TopupOrder:
    return TopupOrder.objects.create(
        user=user, wits=wits, price=99, currency="USD", provider="stripe", reference=reference
    )


def test_credit_order_credits_exactly_once(make_user):
    user = make_user(wits=100)
    order = make_order(user)

    first = ledger.credit_order(order_id=order.id, actor="stripe:evt_1")
    after_first = snapshot(user.id)
    replays = [ledger.credit_order(order_id=order.id, actor="stripe:evt_1") for _ in range(3)]

    assert (first, replays) == (True, [False, False, False])
    assert snapshot(user.id) == after_first
    assert (after_first.balance, after_first.credited) == (B(5100, 0, 0), 5100)
    entry = LedgerEntry.objects.get(order_id=order.id)
    assert entry_row(entry) == ("topup", 5000, 5000, 0, 0, 5100, 0, 0)
    assert (entry.actor, entry.note) == ("stripe:evt_1", "order CW-1")
    order.refresh_from_db()
    assert order.state == "credited"
    assert order.credited_at is not None
    assert ledger.check() == []


def test_canceled_order_is_never_credited_and_credited_never_canceled(make_user):
    user = make_user(wits=0)
    canceled = make_order(user, reference="CW-C")
    credited = make_order(user, reference="CW-D", wits=7)
    ledger.credit_order(order_id=credited.id, actor="bank")

    assert ledger.cancel_order(order_id=canceled.id) is True
    assert ledger.credit_order(order_id=canceled.id, actor="bank") is False
    assert ledger.cancel_order(order_id=credited.id) is False

    assert snapshot(user.id).balance == B(7, 0, 0)
    assert dict(TopupOrder.objects.values_list("reference", "state")) == {
        "CW-C": "canceled",
        "CW-D": "credited",
    }


def test_credit_of_an_unknown_order_writes_nothing(make_user):
    user = make_user(wits=0)
    before = snapshot(user.id)

    assert ledger.credit_order(order_id=uuid.uuid4(), actor="bank") is False
    assert snapshot(user.id) == before


# --- balance and the whole history ------------------------------------------------------------


def test_balance_of_a_user_without_wallet_is_zero():
    assert ledger.balance(user_id=uuid.uuid4()) == B(0, 0, 0)


def test_every_entry_after_values_replay_a_mixed_history(make_user):
    user = make_user(wits=1000)
    a = ledger.reserve(user_id=user.id, request_id="a", amount=200)
    b = ledger.reserve(user_id=user.id, request_id="b", amount=300)
    ledger.commit(a, actual=150)
    ledger.grant(user_id=user.id, amount=-100, actor="system", kind=Kind.ADJUSTMENT)
    ledger.release(b, reason="upstream_error")
    c = ledger.reserve(user_id=user.id, request_id="c", amount=750)
    ledger.commit(c, actual=900)

    rows = [entry_row(e) for e in LedgerEntry.objects.filter(wallet_id=user.id).order_by("id")]

    assert rows == [
        ("grant", 1000, 1000, 0, 0, 1000, 0, 0),
        ("reserve", 200, -200, 200, 0, 800, 200, 0),
        ("reserve", 300, -300, 300, 0, 500, 500, 0),
        ("commit", 150, 50, -200, 150, 550, 300, 150),
        ("adjustment", -100, -100, 0, 0, 450, 300, 150),
        ("release", 300, 300, -300, 0, 750, 0, 150),
        ("reserve", 750, -750, 750, 0, 0, 750, 150),
        ("commit", 750, 0, -750, 750, 0, 0, 900),
    ]
    assert snapshot(user.id).credited == 900
    assert ledger.check() == []


# --- the database is the backstop (direct writes, in tests only) ------------------------------


@pytest.mark.parametrize(
    ("assignments", "constraint"),
    [
        ("available = available - 101, credited = credited - 101", "wallet_available_gte_0"),
        ("reserved = reserved - 1, available = available + 1", "wallet_reserved_gte_0"),
        ("lifetime_used = lifetime_used - 1, available = available + 1", "wallet_used_gte_0"),
        ("available = available + 5", "wallet_conservation"),
        ("credited = credited - 1", "wallet_conservation"),
        ("reserved = reserved + 1, lifetime_used = lifetime_used + 1", "wallet_conservation"),
    ],
)
def test_direct_wallet_write_breaking_an_invariant_fails(make_user, assignments, constraint):
    # given: 100 credited, nothing reserved or used
    user = make_user(wits=100)
    before = snapshot(user.id)

    # when: SQL that bypasses the ledger
    with (
        pytest.raises(IntegrityError, match=constraint),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"UPDATE wits_wallet SET {assignments} WHERE user_id = %s", [user.id])

    # then
    assert snapshot(user.id) == before


def test_direct_orm_update_driving_available_negative_fails(make_user):
    user = make_user(wits=3)
    before = snapshot(user.id)

    with pytest.raises(IntegrityError, match="wallet_available_gte_0"), transaction.atomic():
        Wallet.objects.filter(user_id=user.id).update(
            available=F("available") - 4, credited=F("credited") - 4
        )

    assert snapshot(user.id) == before


@pytest.mark.parametrize(
    ("assignments", "constraint"),
    [
        ("charged = amount + 1", "reservation_charged_within_amount"),
        ("charged = -1", "reservation_charged_within_amount"),
        ("amount = 0", "reservation_amount_gt_0"),
        ("loss = -1", "reservation_loss_gte_0"),
        ("state = 'lost'", "reservation_state_valid"),
    ],
)
def test_direct_reservation_write_breaking_an_invariant_fails(make_user, assignments, constraint):
    user = make_user(wits=100)
    res = ledger.reserve(user_id=user.id, request_id="direct", amount=10)
    before = Reservation.objects.values_list("amount", "state", "charged", "loss").get(pk=res.id)

    with (
        pytest.raises(IntegrityError, match=constraint),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"UPDATE wits_reservation SET {assignments} WHERE id = %s", [res.id])

    after = Reservation.objects.values_list("amount", "state", "charged", "loss").get(pk=res.id)
    assert after == before
