"""`clawwits.modelrow.build`: the instance `Model(**values)` makes, built positionally."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db.models import signals
from django.utils import timezone

from clawwits import modelrow
from gateway.models import UsageRecord
from wits.models import Reservation

WHEN = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def _fields(instance) -> dict[str, object]:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


USAGE = {
    "user_id": uuid.UUID(int=1),
    "api_key_id": uuid.UUID(int=2),
    "request_id": "req_1",
    "endpoint": "chat",
    "model": "m",
    "provider": "p",
    "stream": True,
    "prompt_tokens": 7,
    "completion_tokens": 9,
    "wits": 12,
    "ttft_ms": None,
    "status": 200,
    "settle_reason": "completed",
    "screening": "pass",
    "created_at": WHEN,
}
RESERVATION = {
    "id": uuid.UUID(int=3),
    "request_id": "req_2",
    "wallet_id": uuid.UUID(int=1),
    "amount": 500,
    "model": "m",
    "provider": "",
    "api_key_id": None,
    "created_at": WHEN,
    "expires_at": WHEN,
}


@pytest.mark.parametrize(
    ("model", "values"), [(UsageRecord, USAGE), (Reservation, RESERVATION)], ids=["usage", "res"]
)
def test_build_gives_every_field_the_keyword_constructor_gives(model, values):
    built, made = modelrow.build(model, values), model(**values)
    assert _fields(built) == _fields(made)
    # Unset fields took their defaults, not None.
    unset = {"state": "held"} if model is Reservation else {"cached": False, "latency_ms": 0}
    assert {name: getattr(built, name) for name in unset} == unset
    assert built._state.adding is True
    assert modelrow.build(model, values, saved=True)._state.adding is False


def test_a_callable_default_is_called_for_each_instance():
    values = {k: v for k, v in USAGE.items() if k != "created_at"}
    before = timezone.now()
    built = modelrow.build(UsageRecord, values)
    assert before <= built.created_at <= timezone.now()
    assert built.id is None


def test_an_unknown_field_is_refused_as_the_keyword_constructor_refuses_it():
    with pytest.raises(TypeError, match="no field named colour, user"):
        modelrow.build(UsageRecord, {**USAGE, "user": object(), "colour": "red"})
    with pytest.raises(TypeError):
        UsageRecord(**USAGE, colour="red")


def test_init_signals_are_sent_as_for_any_instance():
    seen: list[str] = []

    def pre(sender, **kwargs):
        seen.append("pre")

    def post(sender, instance, **kwargs):
        seen.append(f"post {instance.request_id}")

    signals.pre_init.connect(pre, sender=UsageRecord)
    signals.post_init.connect(post, sender=UsageRecord)
    try:
        modelrow.build(UsageRecord, USAGE)
    finally:
        signals.pre_init.disconnect(pre, sender=UsageRecord)
        signals.post_init.disconnect(post, sender=UsageRecord)
    assert seen == ["pre", "post req_1"]
