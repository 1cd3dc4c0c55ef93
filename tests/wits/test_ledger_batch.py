"""Batched reserves and settlements on PostgreSQL (`clawwits.combine` + the batch statements).

A batch must leave exactly what the same operations run one by one, in the batch's order,
would have left: the same admitted reservations, wallet, entries (kinds, amounts and
after-values, in id order) and attached rows. Jobs a batch leaves undone (`ALONE`) are run
alone afterwards, as the combiner does; what a refused batch statement leaves is nothing.
"""

from __future__ import annotations

import collections
import itertools
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clawwits.combine import ALONE
from clawwits.errors import ApiError, Code
from gateway.models import UsageRecord
from tests.wits.ledger_support import run_threads, snapshot
from wits import ledger
from wits.models import LedgerEntry, Reservation

B = ledger.Balance
_ids = itertools.count()


def entry_rows(user_id: uuid.UUID) -> list[tuple]:
    """The wallet's entries in id order, without ids, times or reservation ids."""
    return list(
        LedgerEntry.objects.filter(wallet_id=user_id)
        .order_by("id")
        .values_list(
            "kind",
            "amount",
            "available_delta",
            "reserved_delta",
            "used_delta",
            "available_after",
            "reserved_after",
            "used_after",
            "actor",
            "note",
        )
    )


def reserve_job(user_id: uuid.UUID, amount: int, request_id: str | None = None) -> object:
    now = timezone.now()
    return ledger._ReserveJob(
        user_id,
        request_id or f"batch-{next(_ids)}",
        amount,
        "m",
        "",
        None,
        now,
        now + timedelta(hours=1),
    )


def settle_job(
    reservation: Reservation, actual: int, *, state: str = "committed", attach: tuple = ()
) -> object:
    reason = "completed" if state == "committed" else "client_gone"
    return ledger._SettleJob(
        reservation.id, reservation.wallet_id, state, actual, reason, "gateway", attach
    )


def usage_row(user_id: uuid.UUID, request_id: str) -> UsageRecord:
    return UsageRecord(
        user_id=user_id, request_id=request_id, endpoint="chat", model="m", status=200, wits=1
    )


def as_combiner_does(outcomes: list, jobs: list, alone) -> list:  # noqa: ANN001
    """Run the jobs a batch left undone alone, in order; each outcome or its exception."""
    finished = []
    for outcome, job in zip(outcomes, jobs, strict=True):
        if outcome is ALONE:
            try:
                outcome = alone(job)
            except (ApiError, ledger.LedgerError) as error:
                outcome = error
        finished.append(outcome)
    return finished


# --- reserve ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reserve_batch_admits_in_order_until_the_first_job_the_balance_cannot_cover(
    make_user,
):
    # given
    user = make_user(wits=1000)
    jobs = [reserve_job(user.id, amount) for amount in (300, 300, 500, 100)]

    # when
    outcomes = ledger._reserve_batch(jobs)

    # then: 300 + 300 fit; 500 does not, and 100 after it is left to run alone too
    assert [type(o) for o in outcomes[:2]] == [Reservation, Reservation]
    assert outcomes[2:] == [ALONE, ALONE]
    assert [(r.id, r.amount, r.request_id) for r in outcomes[:2]] == [
        (job.res_id, job.amount, job.request_id) for job in jobs[:2]
    ]
    after = snapshot(user.id)
    assert (after.balance, after.reservations, after.held) == (B(400, 600, 0), 2, 2)
    assert entry_rows(user.id) == [
        ("grant", 1000, 1000, 0, 0, 1000, 0, 0, "system", "welcome grant"),
        ("reserve", 300, -300, 300, 0, 700, 300, 0, "gateway", ""),
        ("reserve", 300, -300, 300, 0, 400, 600, 0, "gateway", ""),
    ]
    assert ledger.check() == []

    # and run alone afterwards (as the combiner does), 500 is refused and 100 admitted
    finished = as_combiner_does(outcomes, jobs, ledger._reserve_alone)
    assert isinstance(finished[2], ApiError)
    assert finished[2].code == Code.INSUFFICIENT_WITS
    assert isinstance(finished[3], Reservation)
    assert snapshot(user.id).balance == B(300, 700, 0)
    assert ledger.check() == []


@pytest.mark.django_db
def test_a_reserve_batch_on_a_missing_wallet_admits_nothing_and_writes_nothing(make_user):
    user = make_user(wits=0)
    stranger = uuid.uuid4()
    before = snapshot(user.id)
    jobs = [reserve_job(stranger, 10), reserve_job(stranger, 20)]

    assert ledger._reserve_batch(jobs) == [ALONE, ALONE]

    assert Reservation.objects.count() == 0
    assert snapshot(user.id) == before


@pytest.mark.django_db
def test_a_reserve_batch_with_a_request_id_already_held_fails_whole_and_writes_nothing(
    make_user,
):
    # given
    user = make_user(wits=1000)
    ledger.reserve(user_id=user.id, request_id="taken", amount=100)
    before = snapshot(user.id)
    entries = entry_rows(user.id)
    jobs = [reserve_job(user.id, 10), reserve_job(user.id, 20, "taken"), reserve_job(user.id, 30)]

    # when the statement is refused (the combiner then runs each job alone)
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger._reserve_batch(jobs)

    # then
    assert snapshot(user.id) == before
    assert entry_rows(user.id) == entries


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    grant=st.integers(0, 1000),
    amounts=st.lists(st.integers(1, 400), min_size=2, max_size=12),
)
def test_a_reserve_batch_then_its_leftovers_alone_leave_what_one_by_one_leaves(
    make_user, grant, amounts
):
    # given two wallets with the same grant
    batched, sequential = make_user(wits=grant), make_user(wits=grant)

    # when one reserves as a batch (and its leftovers alone), the other one job at a time
    jobs = [reserve_job(batched.id, amount) for amount in amounts]
    got = as_combiner_does(ledger._reserve_batch(jobs), jobs, ledger._reserve_alone)
    expected = as_combiner_does(
        [ALONE] * len(amounts),
        [reserve_job(sequential.id, amount) for amount in amounts],
        ledger._reserve_alone,
    )

    # then
    assert [isinstance(o, Reservation) for o in got] == [
        isinstance(o, Reservation) for o in expected
    ]
    assert snapshot(batched.id).balance == snapshot(sequential.id).balance
    assert entry_rows(batched.id) == entry_rows(sequential.id)
    assert ledger.check(user_ids=[batched.id, sequential.id]) == []


# --- settle -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_settle_batch_settles_each_reservation_once_with_running_after_values(make_user):
    # given four held reservations, one of them already committed (a replay)
    user = make_user(wits=1000)
    held = [
        ledger.reserve(user_id=user.id, request_id=f"s{n}", amount=amount)
        for n, amount in enumerate((100, 200, 300, 50))
    ]
    ledger.commit(held[3], actual=10)
    before = snapshot(user.id)
    rows = [usage_row(user.id, f"s{n}") for n in range(4)]
    jobs = [
        settle_job(held[0], 60, attach=(rows[0],)),
        settle_job(held[1], 250, attach=(rows[1],)),  # beyond the reservation: 50 lost
        settle_job(held[2], 0, state="released", attach=(rows[2],)),
        settle_job(held[3], 40, attach=(rows[3],)),
    ]

    # when
    outcomes = ledger._settle_batch(jobs)

    # then
    assert outcomes == [
        ledger.Settlement(held[0].id, "committed", 100, 60, 0, applied=True),
        ledger.Settlement(held[1].id, "committed", 200, 200, 50, applied=True),
        ledger.Settlement(held[2].id, "released", 300, 0, 0, applied=True),
        ALONE,
    ]
    assert [o.available_after for o in outcomes[:3]] == [
        before.balance.available + 40,
        before.balance.available + 40,
        before.balance.available + 40 + 300,
    ]
    assert snapshot(user.id).balance == B(
        before.balance.available + 40 + 300, 0, before.balance.lifetime_used + 60 + 200
    )
    assert entry_rows(user.id)[-3:] == [
        ("commit", 60, 40, -100, 60, 430, 500, 70, "gateway", "completed"),
        ("commit", 200, 0, -200, 200, 430, 300, 270, "gateway", "completed"),
        ("release", 300, 300, -300, 0, 730, 0, 270, "gateway", "client_gone"),
    ]
    assert list(
        UsageRecord.objects.filter(user_id=user.id)
        .order_by("request_id")
        .values_list("request_id", flat=True)
    ) == ["s0", "s1", "s2"]
    assert ledger.check() == []

    # and the replay, run alone, answers with the first outcome and writes nothing
    finished = as_combiner_does(outcomes, jobs, ledger._settle_sql)
    assert finished[3] == ledger.Settlement(held[3].id, "committed", 50, 10, 0, applied=False)
    assert UsageRecord.objects.filter(request_id="s3").count() == 0


@pytest.mark.django_db
def test_a_settle_batch_leaves_another_wallets_reservation_alone(make_user):
    user, other = make_user(wits=1000), make_user(wits=1000)
    mine = ledger.reserve(user_id=user.id, request_id="mine", amount=100)
    theirs = ledger.reserve(user_id=other.id, request_id="theirs", amount=100)
    before = snapshot(other.id)
    job = ledger._SettleJob(theirs.id, user.id, "committed", 10, "completed", "gateway", ())

    outcomes = ledger._settle_batch([settle_job(mine, 10), job])

    assert outcomes[1] is ALONE
    assert snapshot(other.id) == before
    assert Reservation.objects.get(pk=theirs.id).state == "held"
    assert ledger.check() == []


# --- through the combiner, under real concurrency -----------------------------------------------


@pytest.fixture
def batch_sizes(monkeypatch):
    """Sizes of the batches that ran (reserve and settle), keyed by kind."""
    sizes: dict[str, collections.Counter] = {"reserve": collections.Counter()}
    sizes["settle"] = collections.Counter()
    lock = threading.Lock()
    reserve_batch, settle_batch = ledger._reserve_batch, ledger._settle_batch

    def counted(kind, run):  # noqa: ANN001, ANN202
        def wrapper(jobs):  # noqa: ANN001, ANN202
            with lock:
                sizes[kind][len(jobs)] += 1
            return run(jobs)

        return wrapper

    monkeypatch.setattr(ledger, "_reserve_batch", counted("reserve", reserve_batch))
    monkeypatch.setattr(ledger, "_settle_batch", counted("settle", settle_batch))
    ledger._combiners.clear()
    yield sizes
    ledger._combiners.clear()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_48_threads_of_reserve_and_commit_on_one_wallet_batch_and_keep_the_books(
    make_user, batch_sizes
):
    # given
    user = make_user(wits=10_000)

    def request(i: int) -> ledger.Settlement:
        reservation = ledger.reserve(user_id=user.id, request_id=f"req-{i}", amount=300)
        record = usage_row(user.id, f"req-{i}")
        return ledger.commit(reservation, actual=100 + i, attach=[record])

    # when 48 requests reserve 300 each on 10,000 (33 fit at once; commits return the rest)
    results = run_threads(request, 48)

    # then every request that was admitted settled once, and the books are exact
    settled = [r for r in results if isinstance(r, ledger.Settlement)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(settled) + len(refused) == 48
    assert {(e.code, e.status) for e in refused} <= {(Code.INSUFFICIENT_WITS, 402)}
    assert all(
        r.applied and r.charged == 100 + i
        for i, r in enumerate(results)
        if isinstance(r, ledger.Settlement)
    )
    charged = sum(s.charged for s in settled)
    assert snapshot(user.id).balance == B(10_000 - charged, 0, charged)
    assert UsageRecord.objects.filter(user_id=user.id).count() == len(settled)
    assert ledger.check() == []
    # and at least one batch of more than one ran (threads released together queue up)
    assert any(size > 1 for kind in batch_sizes.values() for size in kind)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_concurrent_reserves_beyond_the_balance_admit_exactly_what_it_covers(
    make_user, batch_sizes
):
    user = make_user(wits=1000)

    results = run_threads(
        lambda i: ledger.reserve(user_id=user.id, request_id=f"r-{i}", amount=7), 300
    )

    granted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert (len(granted), len(refused)) == (142, 158)  # 142 * 7 = 994 <= 1000 < 143 * 7
    assert snapshot(user.id).balance == B(1000 - 994, 994, 0)
    assert ledger.check() == []
    assert sum(batch_sizes["reserve"].values()) > 0


@pytest.mark.django_db(transaction=True)
def test_batching_is_off_with_wits_batch_max_1_and_inside_a_transaction(make_user, batch_sizes):
    user = make_user(wits=1000)
    with override_settings(WITS_BATCH_MAX=1):
        assert ledger._batching() is False
        run_threads(lambda i: ledger.reserve(user_id=user.id, request_id=f"o-{i}", amount=1), 20)
    assert ledger._batching() is True
    with transaction.atomic():
        assert ledger._batching() is False
    assert batch_sizes == {"reserve": collections.Counter(), "settle": collections.Counter()}
    assert snapshot(user.id).balance == B(980, 20, 0)


def test_a_caller_gives_its_pooled_connection_back_before_waiting_for_a_batch(monkeypatch):
    # The batch it waits for may need that very connection (see clawwits.dbpool).
    events: list[str] = []

    class Combined:
        def submit(self, key: object, job: object) -> str:
            events.append("submitted")
            return "done"

    monkeypatch.setattr(ledger.dbpool, "give_back", lambda: events.append("given back"))

    assert ledger._submit(Combined(), uuid.uuid4(), object()) == "done"

    assert events == ["given back", "submitted"]


# --- values ------------------------------------------------------------------------------------

# Text that array quoting must get right (separators, quotes, backslashes, braces, NULL as a
# word, non-ASCII), beside NULLs and non-NULLs in one array: a batch binds its columns as
# arrays, and every value must reach its row exactly as a single statement writes it.
AWKWARD = ['a,b "c"', "back\\slash {x}", "NULL", "Tiếng Việt ü ☃", ""]


@pytest.mark.django_db
def test_a_batch_writes_every_value_exactly_as_given(make_user):
    # given jobs whose text columns need quoting and whose key ids mix NULL and not
    user = make_user(wits=10_000)
    key = uuid.uuid4()
    now = timezone.now()
    jobs = [
        ledger._ReserveJob(
            user.id,
            f"v{n}",
            10 + n,
            model,
            AWKWARD[-1 - n],
            key if n % 2 else None,
            now,
            now + timedelta(hours=1),
        )  # fmt: skip
        for n, model in enumerate(AWKWARD)
    ]

    # when reserved in one batch, then settled in one batch with usage rows attached
    held = ledger._reserve_batch(jobs)
    rows = [
        UsageRecord(
            user_id=user.id,
            request_id=f"v{n}",
            endpoint="chat",
            model=model,
            status=200,
            error_code=AWKWARD[-1 - n][:32],
            ttft_ms=None if n % 2 else n,
            wits=n,
        )  # fmt: skip
        for n, model in enumerate(AWKWARD)
    ]
    settled = ledger._settle_batch(
        [settle_job(h, 5, attach=(row,)) for h, row in zip(held, rows, strict=True)]
    )

    # then each row holds what its job carried
    assert all(isinstance(h, Reservation) for h in held)
    assert all(s.applied for s in settled)
    stored = Reservation.objects.filter(wallet_id=user.id).order_by("request_id")
    assert [(r.request_id, r.model, r.provider, r.api_key_id, r.amount) for r in stored] == [
        (f"v{n}", model, AWKWARD[-1 - n], key if n % 2 else None, 10 + n)
        for n, model in enumerate(AWKWARD)
    ]
    records = UsageRecord.objects.filter(user_id=user.id).order_by("request_id")
    assert [(u.request_id, u.model, u.error_code, u.ttft_ms, u.wits) for u in records] == [
        (f"v{n}", model, AWKWARD[-1 - n][:32], None if n % 2 else n, n)
        for n, model in enumerate(AWKWARD)
    ]
    assert ledger.check() == []
