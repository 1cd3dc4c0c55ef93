"""Chat through the official SDKs, both wire formats, both upstream kinds, billed exactly.

Prices in these tests: 1 Wit per input token, 2 per output token (tests/gateway/conftest.py);
the fake upstream counts words as tokens and replies with 8 words unless capped.
"""

from __future__ import annotations

import json

import pytest

from tests.fakes.upstream import REPLY_WORDS, Fault
from wits import ledger
from wits.models import LedgerEntry, Reservation

pytestmark = pytest.mark.django_db(transaction=True)

EIGHT = " ".join(REPLY_WORDS[:8])


def entries(user) -> list[tuple[str, int]]:
    return list(
        LedgerEntry.objects.filter(wallet_id=user.id).order_by("id").values_list("kind", "amount")
    )


def test_openai_chat_bills_upstream_usage_exactly(oai, account, catalogue, fake):
    resp = oai.chat.completions.create(
        model=catalogue.chat_openai,
        messages=[{"role": "user", "content": "three word prompt"}],
    )

    assert resp.choices[0].message.content == EIGHT
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (3, 8)
    charge = 3 * 1 + 8 * 2
    extra = resp.model_extra["x_clawwits"]
    assert extra["provider"] == "fake-openai"
    assert extra["cached"] is False
    assert extra["wits"] == charge
    assert isinstance(extra["ttft_ms"], int)
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(1_000_000 - charge, 0, charge)
    kinds = [kind for kind, _ in entries(account.user)]
    assert kinds == ["grant", "reserve", "commit"]
    assert entries(account.user)[-1] == ("commit", charge)
    assert ledger.check() == []


def test_forwards_the_output_cap_the_reservation_covers(oai, account, catalogue, fake):
    oai.chat.completions.create(
        model=catalogue.chat_openai, messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )

    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["max_tokens"] == 5
    assert sent.body["model"] == "fake-gpt"
    assert sent.headers["authorization"] == "Bearer upstream-secret-key-123"
    reservation = Reservation.objects.get()
    # The reservation covers the cap: prompt bound at input price + 5 tokens at output price.
    assert reservation.amount >= 5 * 2
    assert reservation.state == "committed"
    assert reservation.charged == 1 * 1 + 5 * 2


def test_default_cap_is_the_model_maximum(oai, catalogue, fake):
    oai.chat.completions.create(
        model=catalogue.chat_openai, messages=[{"role": "user", "content": "hi"}]
    )
    assert fake.requests[-1].body["max_tokens"] == 1000


def test_openai_stream_with_usage_then_x_clawwits_before_done(oai, account, catalogue):
    stream = oai.chat.completions.create(
        model=catalogue.chat_openai,
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EIGHT
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 8)
    charge = 3 + 8 * 2
    assert chunks[-1].model_extra["x_clawwits"]["wits"] == charge
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(1_000_000 - charge, 0, charge)


def test_openai_stream_without_usage_puts_x_clawwits_on_the_finish_chunk(oai, catalogue):
    chunks = list(
        oai.chat.completions.create(
            model=catalogue.chat_openai,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
    )
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["x_clawwits"]["wits"] == 1 + 8 * 2
    assert all(c.usage is None for c in chunks)


def test_streamed_and_plain_calls_cost_the_same_through_both_endpoints(
    oai, claude, account, catalogue
):
    messages = [{"role": "user", "content": "same request every time"}]
    costs = []
    for model in (catalogue.chat_openai, catalogue.chat_anthropic):
        plain = oai.chat.completions.create(model=model, messages=messages, max_tokens=6)
        costs.append(plain.model_extra["x_clawwits"]["wits"])
        chunks = list(
            oai.chat.completions.create(model=model, messages=messages, max_tokens=6, stream=True)
        )
        costs.append(chunks[-1].model_extra["x_clawwits"]["wits"])
        msg = claude.messages.create(model=model, messages=messages, max_tokens=6)
        costs.append(msg.model_extra["x_clawwits"]["wits"])
        with claude.messages.stream(model=model, messages=messages, max_tokens=6) as stream:
            deltas = [e for e in stream if e.type == "message_delta"]
        costs.append(deltas[-1].model_extra["x_clawwits"]["wits"])
    assert costs == [4 + 6 * 2] * 8
    assert ledger.check() == []


def test_anthropic_sdk_to_anthropic_upstream_passes_through(claude, account, catalogue, fake):
    msg = claude.messages.create(
        model=catalogue.chat_anthropic,
        system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
        max_tokens=100,
    )
    assert msg.type == "message"
    assert msg.content[0].text == EIGHT
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (4, 8)
    sent = fake.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "upstream-secret-key-123"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["system"] == "be brief"
    assert msg.model_extra["x_clawwits"]["wits"] == 4 + 8 * 2


def test_anthropic_sdk_reaches_an_openai_upstream(claude, catalogue, fake):
    msg = claude.messages.create(
        model=catalogue.chat_openai,
        system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
        max_tokens=3,
    )
    assert msg.id.startswith("msg_")
    assert msg.content[0].text == " ".join(REPLY_WORDS[:3])
    assert msg.stop_reason == "max_tokens"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (4, 3)
    sent = fake.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["max_tokens"] == 3


def test_openai_sdk_reaches_an_anthropic_upstream_streaming(oai, catalogue, fake):
    chunks = list(
        oai.chat.completions.create(
            model=catalogue.chat_anthropic,
            messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hi you"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EIGHT
    assert chunks[-1].usage.prompt_tokens == 3
    assert chunks[-1].usage.completion_tokens == 8
    assert fake.requests[-1].body["system"] == "sys"


def test_anthropic_stream_event_sequence_and_final_message(claude, account, catalogue):
    with claude.messages.stream(
        model=catalogue.chat_anthropic,
        messages=[{"role": "user", "content": "tell me"}],
        max_tokens=50,
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start"
    assert "content_block_start" in events
    assert events[-1] == "message_stop"
    assert final.content[0].text == EIGHT
    assert final.usage.output_tokens == 8
    assert ledger.balance(user_id=account.user.id).reserved == 0


def test_tool_calls_round_trip_through_translation(oai, claude, catalogue):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    resp = oai.chat.completions.create(
        model=catalogue.chat_anthropic,
        messages=[{"role": "user", "content": "what is the weather"}],
        tools=tools,
    )
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Hanoi"}

    msg = claude.messages.create(
        model=catalogue.chat_openai,
        messages=[{"role": "user", "content": "weather please"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        max_tokens=50,
    )
    assert msg.stop_reason == "tool_use"
    assert msg.content[-1].type == "tool_use"
    assert msg.content[-1].input == {"city": "Hanoi"}


def test_local_sandbox_model_answers_without_network(oai, claude, catalogue, fake):
    resp = oai.chat.completions.create(
        model=catalogue.local_chat, messages=[{"role": "user", "content": "Hello sandbox"}]
    )
    assert resp.choices[0].message.content
    assert resp.model_extra["x_clawwits"]["provider"] == "local-test"
    msg = claude.messages.create(
        model=catalogue.local_chat,
        messages=[{"role": "user", "content": "Xin chào"}],
        max_tokens=20,
    )
    assert msg.content[0].text
    assert msg.usage.output_tokens <= 20
    assert fake.requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
def test_a_provider_answer_led_by_a_byte_order_mark_is_served_and_billed_once(
    oai, account, catalogue, fake, upstream, stream
):
    # RFC 8259 lets a JSON parser ignore a leading BOM and the event-stream format drops one:
    # the answer is the same as without it, on the first route, billed once.
    fake.set_fault(Fault.BYTE_ORDER_MARK)
    model = catalogue.chat_openai if upstream == "openai" else catalogue.chat_anthropic
    # Three words to the fake; the gateway's own count of them is far more.
    long_words = "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultra"
    messages = [{"role": "user", "content": long_words}]

    if stream:
        chunks = list(
            oai.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
        # The first event is the OpenAI stream's role chunk, and the Anthropic stream's
        # message_start, whose input count the usage reports.
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].usage.prompt_tokens == 3
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        wits = chunks[-1].model_extra["x_clawwits"]["wits"]
    else:
        resp = oai.chat.completions.create(model=model, messages=messages)
        text, wits = resp.choices[0].message.content, resp.model_extra["x_clawwits"]["wits"]

    charge = 3 + 8 * 2
    assert text == EIGHT
    assert wits == charge
    assert len(fake.requests) == 1
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(1_000_000 - charge, 0, charge)
    assert [kind for kind, _ in entries(account.user)] == ["grant", "reserve", "commit"]
    assert list(Reservation.objects.values_list("state", flat=True)) == ["committed"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_anthropic_answer_led_by_a_byte_order_mark_passes_through_without_it(
    claude, account, catalogue, fake, stream
):
    fake.set_fault(Fault.BYTE_ORDER_MARK)
    request = {
        "model": catalogue.chat_anthropic,
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 100,
    }

    if stream:
        with claude.messages.stream(**request) as events:
            seen = list(events)
            msg = events.get_final_message()
        assert seen[0].type == "message_start"
        wits = [e for e in seen if e.type == "message_delta"][-1].model_extra["x_clawwits"]["wits"]
    else:
        msg = claude.messages.create(**request)
        wits = msg.model_extra["x_clawwits"]["wits"]

    charge = 2 + 8 * 2
    assert msg.content[0].text == EIGHT
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (2, 8)
    assert wits == charge
    assert len(fake.requests) == 1  # the first route answered: nothing failed over
    assert ledger.balance(user_id=account.user.id) == ledger.Balance(1_000_000 - charge, 0, charge)
    assert [kind for kind, _ in entries(account.user)] == ["grant", "reserve", "commit"]
    assert list(Reservation.objects.values_list("state", flat=True)) == ["committed"]
