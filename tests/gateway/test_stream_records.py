"""A stream's progress records: each bills exactly what the relay had passed on to its client by
then, and counting it costs only what was passed on since the last one.

A stream records its usage every `relay.RECORD_INTERVAL_S` (so a crash loses at most that much);
here the interval is 0, so it records after every upstream event. The fake upstream reports no
usage, so the gateway counts the prompt and the delivered text itself. Prices: 1 Wit per input
token, 2 per output token.
"""

from __future__ import annotations

import pytest

from gateway import relay
from gateway.providers import local
from tests.fakes.upstream import Fault
from wits import ledger, progress
from wits.models import Reservation

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "four words of prompt"
START = 1_000_000
REPLY_TOKENS = 300


def test_each_progress_record_bills_what_was_delivered_and_counts_only_the_new_text(
    oai, account, catalogue, fake, monkeypatch, token_counting
):
    fake.configure(reply_tokens=REPLY_TOKENS)
    fake.set_fault(Fault.NO_USAGE)
    monkeypatch.setattr(relay, "RECORD_INTERVAL_S", 0.0)
    recorded: list[int] = []
    record = progress.record

    def recording(reservation_id, actual: int) -> None:
        recorded.append(actual)
        record(reservation_id, actual)

    monkeypatch.setattr(progress, "record", recording)

    stream = oai.chat.completions.create(
        model=catalogue.chat_openai,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
    )
    deltas = [c.choices[0].delta.content or "" for c in stream if c.choices]
    characters_counted = sum(token_counting.lengths)

    text = "".join(deltas)
    assert len(text.split()) == REPLY_TOKENS
    prompt = token_counting.count(PROMPT) + local.PER_MESSAGE_OVERHEAD
    # Every record is the exact charge of what had been passed on to the client by then, one
    # record per event: the charges of the prefixes, in order, none skipped past, none beyond
    # the whole.
    prefixes = ["".join(deltas[:k]) for k in range(len(deltas) + 1)]
    charges = [prompt * 1 + token_counting.count(p) * 2 for p in prefixes]
    assert len(recorded) >= REPLY_TOKENS - 1
    assert recorded == sorted(recorded)
    assert set(recorded) <= set(charges)
    assert recorded[-1] in charges[-3:]
    charge = charges[-1]
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(START - charge, 0, charge)
    assert Reservation.objects.get().state == "committed"
    # The prompt once, then each delivered word about once (recounting the delivered text at
    # each record would be ~300 times the text's length).
    assert characters_counted <= 3 * len(text) + 2 * len(PROMPT)
