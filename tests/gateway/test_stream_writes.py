"""A stream's writes to its client: the events one read from the provider brought go out in one
write (one send), and none waits for the provider's next event.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from gateway import upstream
from wits import ledger

pytestmark = pytest.mark.django_db(transaction=True)

REPLY_TOKENS = 40


@pytest.fixture
def client(account) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {account.key}")


def _writes(client: Client, model: str, path: str = "/v1/chat/completions") -> list[bytes]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if path == "/v1/messages":
        body["max_tokens"] = 100
    response = client.generic("POST", path, json.dumps(body).encode(), "application/json")
    assert response.status_code == 200
    writes = list(response.streaming_content)
    response.close()
    return writes


@pytest.mark.parametrize(
    ("path", "model"), [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")]
)
def test_events_that_arrive_together_are_written_together(
    client, account, catalogue, fake, path, model
):
    name = catalogue.chat_openai if model == "openai" else catalogue.chat_anthropic
    # Given a provider that sends every delta at once
    fake.configure(reply_tokens=REPLY_TOKENS)
    together = _writes(client, name, path)

    # and one that sends them 30 ms apart
    fake.configure(reply_tokens=REPLY_TOKENS, token_delay_s=0.03)
    apart = _writes(client, name, path)

    # Then the client gets the same stream either way
    def deltas(writes: list[bytes]) -> int:
        return b"".join(writes).count(b'"content":"') + b"".join(writes).count(b'"text_delta"')

    assert deltas(together) == deltas(apart) >= REPLY_TOKENS
    # in a few writes when the deltas came at once (a read brings many of them),
    assert len(together) < REPLY_TOKENS / 4
    # and one write per delta when each came on its own: none was held back for the next
    assert len(apart) >= REPLY_TOKENS
    balance = ledger.balance(user_id=account.user.id)
    assert balance.reserved == 0


class _Reads:
    """An upstream response whose reads return the given pieces, then end."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def settle(self) -> None: ...

    def release(self) -> None: ...


def test_a_whole_next_event_is_one_already_read():
    stream = upstream.EventStream(
        _Reads(
            [
                b"data: 1\n\n: a comment\n\ndata: 2\n\nevent: ping\n\ndata: 3\n",  # 3 unfinished
                b"\ndatum: x\n\ndata: 4\n\n",
            ]
        )
    )
    events = iter(stream)
    seen = []
    for event in events:
        seen.append((event.data, stream.has_event()))
    # After 1: event 2 was read whole. After 2: only an event with no data and an unfinished
    # one are left (iterating on would wait for the provider). After 3: a field that is not
    # data, then event 4. After 4: nothing.
    assert seen == [("1", True), ("2", False), ("3", True), ("4", False)]
