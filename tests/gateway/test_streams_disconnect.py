"""BAR item 5: a client that disconnects mid-stream is charged for what was generated, and its
reservation is settled at once (reserved back to 0)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from gateway.models import UsageRecord
from gateway.providers import local
from wits import ledger
from wits.models import Reservation

pytestmark = pytest.mark.django_db(transaction=True)


def _raw_stream_then_hang_up(live_server, key: str, body: dict, events_to_read: int) -> list[str]:
    """Open a raw socket, read a few SSE events, then close without reading the rest."""
    host, port = live_server.url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    data = b""
    while data.count(b"data: ") < events_to_read:
        chunk = sock.recv(4096)
        assert chunk, "server closed early"
        data += chunk
    sock.close()
    return [line for line in data.decode().split("\n") if line.startswith("data: ")]


def _wait_settled(timeout: float = 10.0) -> Reservation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reservation = Reservation.objects.first()
        if reservation is not None and reservation.state != "held":
            return reservation
        time.sleep(0.05)
    raise AssertionError("the reservation was not settled after the client left")


def test_client_disconnect_mid_stream_commits_what_was_generated(
    live_server, account, catalogue, fake
):
    fake.configure(token_delay_s=0.15, reply_tokens=40)
    body = {
        "model": catalogue.chat_openai,
        "messages": [{"role": "user", "content": "four words of prompt"}],
        "stream": True,
    }

    seen = _raw_stream_then_hang_up(live_server, account.key, body, events_to_read=3)
    reservation = _wait_settled()

    assert len(seen) >= 3
    assert reservation.state == "committed"
    assert reservation.settle_reason == "client_disconnect"
    record = UsageRecord.objects.get()
    # Charged for the generated part only: far below the 40-word answer.
    assert 1 <= record.completion_tokens < local.count_tokens(" ".join(["alpha"] * 40))
    prompt = local.count_tokens("four words of prompt") + local.PER_MESSAGE_OVERHEAD
    assert record.prompt_tokens == prompt
    assert reservation.charged == prompt * 1 + record.completion_tokens * 2
    balance = ledger.balance(user_id=account.user.id)
    assert balance == ledger.Balance(1_000_000 - reservation.charged, 0, reservation.charged)
    assert ledger.check() == []
