"""The ledger against an in-memory model of two wallets (BAR.md item 3: 0 divergences).

Hypothesis drives random sequences of grant, adjustment, reserve (incl. short and duplicate),
commit (incl. usage above the reservation), release, recorded usage, replayed settlements,
top-ups and reconcile with expiry; after every step the database wallets must equal the model
and `ledger.check()` must report nothing.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts import services
from clawwits.errors import ApiError, Code
from tests.wits.ledger_support import snapshot
from wits import ledger
from wits.models import LedgerEntry, Reservation, TopupOrder

_ids = itertools.count(1)


@dataclass(frozen=True)
class ModelWallet:
    available: int = 0
    reserved: int = 0
    used: int = 0
    credited: int = 0
    entries: int = 0
    reservations: int = 0


@dataclass(frozen=True)
class ModelReservation:
    wallet: int
    request_id: str
    amount: int
    expires_at: datetime
    recorded: int | None = None


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs after its own savepoint, rolled back in teardown: every example (and
        # every replay while Hypothesis shrinks) starts from the same database. A bare savepoint,
        # not an atomic block, so the ledger's durable blocks still nest in the test's own.
        self.savepoint = transaction.savepoint()
        run = next(_ids)
        self.users = [
            services.create_account(
                email=f"sm{run}-{i}@example.com", password=None, welcome_wits=0
            ).id
            for i in range(2)
        ]
        self.wallets = [ModelWallet(), ModelWallet()]
        # Insertion-ordered, never sorted: ids are random, so sorting them would make the same
        # draw pick a different reservation when Hypothesis replays an example.
        self.held: dict[uuid.UUID, ModelReservation] = {}
        self.settled: dict[uuid.UUID, tuple[str, int, int, int]] = {}
        self.request_ids: list[str] = []
        self.run = run

    # --- model helpers ---

    def move(self, w: int, **deltas: int) -> None:
        wallet = self.wallets[w]
        self.wallets[w] = replace(
            wallet, **{name: getattr(wallet, name) + d for name, d in deltas.items()}
        )

    def settle_model(self, res_id: uuid.UUID, *, state: str, actual: int) -> tuple:
        res = self.held.pop(res_id)
        charged = min(actual, res.amount) if state == "committed" else 0
        loss = actual - charged if state == "committed" else 0
        self.move(
            res.wallet,
            available=res.amount - charged,
            reserved=-res.amount,
            used=charged,
            entries=1,
        )
        self.settled[res_id] = (state, res.amount, charged, loss)
        return self.settled[res_id]

    # --- rules ---

    @rule(w=st.integers(0, 1), amount=st.integers(1, 500))
    def grant(self, w: int, amount: int) -> None:
        ledger.grant(user_id=self.users[w], amount=amount, actor="system")
        self.move(w, available=amount, credited=amount, entries=1)

    @rule(w=st.integers(0, 1), amount=st.integers(1, 500))
    def negative_adjustment(self, w: int, amount: int) -> None:
        if self.wallets[w].available >= amount:
            ledger.grant(
                user_id=self.users[w], amount=-amount, actor="system", kind=ledger.Kind.ADJUSTMENT
            )
            self.move(w, available=-amount, credited=-amount, entries=1)
        else:
            with pytest.raises(ledger.LedgerError):
                ledger.grant(
                    user_id=self.users[w],
                    amount=-amount,
                    actor="system",
                    kind=ledger.Kind.ADJUSTMENT,
                )

    @rule(w=st.integers(0, 1), wits=st.integers(1, 500), replays=st.integers(0, 2))
    def topup(self, w: int, wits: int, replays: int) -> None:
        order = TopupOrder.objects.create(
            user_id=self.users[w],
            wits=wits,
            price=1,
            currency="USD",
            provider="bank",
            reference=f"SM-{uuid.uuid4().hex[:12]}",
        )
        outcomes = [
            ledger.credit_order(order_id=order.id, actor="bank") for _ in range(1 + replays)
        ]
        assert outcomes == [True] + [False] * replays
        self.move(w, available=wits, credited=wits, entries=1)

    @rule(w=st.integers(0, 1), amount=st.integers(1, 400), ttl_min=st.integers(1, 120))
    def reserve(self, w: int, amount: int, ttl_min: int) -> None:
        request_id = f"sm{self.run}-{len(self.request_ids)}"
        if self.wallets[w].available >= amount:
            res = ledger.reserve(
                user_id=self.users[w],
                request_id=request_id,
                amount=amount,
                ttl=timedelta(minutes=ttl_min),
            )
            self.request_ids.append(request_id)
            self.held[res.id] = ModelReservation(w, request_id, amount, res.expires_at)
            self.move(w, available=-amount, reserved=amount, entries=1, reservations=1)
        else:
            with pytest.raises(ApiError) as caught:
                ledger.reserve(user_id=self.users[w], request_id=request_id, amount=amount)
            assert caught.value.code == Code.INSUFFICIENT_WITS

    @precondition(lambda self: self.request_ids)
    @rule(data=st.data(), w=st.integers(0, 1))
    def duplicate_reserve(self, data: st.DataObject, w: int) -> None:
        request_id = data.draw(st.sampled_from(self.request_ids))
        with pytest.raises(ledger.LedgerError):
            ledger.reserve(user_id=self.users[w], request_id=request_id, amount=1)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), actual=st.integers(0, 600))
    def commit(self, data: st.DataObject, actual: int) -> None:
        res_id = data.draw(st.sampled_from(list(self.held)))
        outcome = ledger.commit(res_id, actual=actual)
        state, amount, charged, loss = self.settle_model(res_id, state="committed", actual=actual)
        assert outcome == ledger.Settlement(res_id, state, amount, charged, loss, applied=True)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        res_id = data.draw(st.sampled_from(list(self.held)))
        outcome = ledger.release(res_id, reason="upstream_error")
        state, amount, charged, loss = self.settle_model(res_id, state="released", actual=0)
        assert outcome == ledger.Settlement(res_id, state, amount, charged, loss, applied=True)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), actual=st.integers(-5, 600))
    def record_usage(self, data: st.DataObject, actual: int) -> None:
        res_id = data.draw(st.sampled_from(list(self.held)))
        assert ledger.record_usage(res_id, actual=actual) is True
        self.held[res_id] = replace(self.held[res_id], recorded=max(0, actual))

    @precondition(lambda self: self.settled)
    @rule(data=st.data(), as_commit=st.booleans(), actual=st.integers(0, 600))
    def replayed_settle(self, data: st.DataObject, as_commit: bool, actual: int) -> None:
        res_id = data.draw(st.sampled_from(list(self.settled)))
        if as_commit:
            outcome = ledger.commit(res_id, actual=actual)
        else:
            outcome = ledger.release(res_id, reason="again")
        state, amount, charged, loss = self.settled[res_id]
        assert outcome == ledger.Settlement(res_id, state, amount, charged, loss, applied=False)
        assert ledger.record_usage(res_id, actual=actual) is False

    @rule(minutes=st.integers(0, 130))
    def reconcile(self, minutes: int) -> None:
        # Half a minute off every whole-minute TTL: which reservations expired cannot depend on
        # how long the example has run so far (well under 30 s), so replays agree.
        now = timezone.now() + timedelta(minutes=minutes, seconds=30)
        expired = [res_id for res_id, res in self.held.items() if res.expires_at < now]
        committed = released = 0
        for res_id in expired:
            recorded = self.held[res_id].recorded
            if recorded is None:
                self.settle_model(res_id, state="released", actual=0)
                released += 1
            else:
                self.settle_model(res_id, state="committed", actual=recorded)
                committed += 1
        result = ledger.reconcile(now=now, batch_size=3)
        assert result == ledger.ReconcileResult(committed, released, 0)

    # --- after every step ---

    @invariant()
    def database_equals_model(self) -> None:
        for w, uid in enumerate(self.users):
            model = self.wallets[w]
            db = snapshot(uid)
            assert db.balance == ledger.Balance(model.available, model.reserved, model.used)
            assert (db.credited, db.entries, db.reservations) == (
                model.credited,
                model.entries,
                model.reservations,
            )
            assert db.held == sum(1 for r in self.held.values() if r.wallet == w)
        assert ledger.check(user_ids=self.users) == []

    def teardown(self) -> None:
        transaction.savepoint_rollback(self.savepoint)


@pytest.mark.django_db
@pytest.mark.slow
# Passing takes well under a minute; a failure is shrunk (Hypothesis caps that at 5 minutes)
# before it is reported, and a timeout mid-shrink would only report noise.
@pytest.mark.timeout(600)
def test_ledger_matches_an_in_memory_model_after_every_step():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            database=None,
            # No `explain` phase: it line-traces every replay (Python < 3.12), which makes a
            # failing run take minutes; shrinking alone gives the minimal failing sequence.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    # Every example was rolled back: nothing leaks from one example into the next.
    assert (Reservation.objects.count(), LedgerEntry.objects.count()) == (0, 0)
