"""The fake upstream speaks the real wire formats: the official SDKs are its judges."""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import requests

from tests.fakes import upstream
from tests.fakes.upstream import FakeUpstream, closed_port

API_KEY = "test-upstream-key"
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
EIGHT_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh(server: FakeUpstream) -> None:
    server.clear()


@pytest.fixture
def oai(server: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture
def claude(server: FakeUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=API_KEY, max_retries=0)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def raw_request(
    server: FakeUpstream,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request over http.client, returning status, lower-cased headers and body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        payload = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        return (
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def drain(stream: Iterable[Any], *, into: list[Any]) -> None:
    """Collect a stream's items until it ends or raises."""
    for item in stream:
        into.append(item)


OPENAI_AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
ANTHROPIC_AUTH = {
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "Content-Type": "application/json",
}


# --- token accounting (pure) -------------------------------------------------------------


def test_counts_whitespace_separated_words() -> None:
    assert upstream.count_words("  one two\tthree\nfour  ") == 4
    assert upstream.count_words("") == 0


def test_openai_prompt_tokens_count_every_content_string_and_text_part() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at this"},
                    {"type": "image_url", "image_url": {"url": "data:,x y z"}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]},
            {"role": "tool", "tool_call_id": "c", "content": "sunny and warm"},
        ]
    }

    assert upstream.openai_prompt_tokens(body) == 2 + 3 + 3


def test_anthropic_prompt_tokens_count_system_text_blocks_and_tool_results() -> None:
    body = {
        "system": [{"type": "text", "text": "be brief please"}],
        "messages": [
            {"role": "user", "content": "what is up"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {"a": 1}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "sunny and warm"},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    }

    assert upstream.anthropic_prompt_tokens(body) == 3 + 3 + 3 + 1


def test_embedding_vector_is_deterministic_float32_with_norm_three() -> None:
    vector = upstream.embedding_vector("hello world", 64)

    assert vector == upstream.embedding_vector("hello world", 64)
    assert vector != upstream.embedding_vector("hello there", 64)
    assert list(struct.unpack("<64f", struct.pack("<64f", *vector))) == vector
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 3.0, rel_tol=1e-5)


# --- OpenAI chat --------------------------------------------------------------------------


def test_openai_chat_bills_prompt_words_and_default_reply(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="fake-gpt",
        messages=[{"role": "system", "content": "be brief"}, user("hello there world")],
    )

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "fake-gpt"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == EIGHT_WORDS
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 8)
    assert completion.usage.total_tokens == 13


@pytest.mark.parametrize("limit_field", ["max_tokens", "max_completion_tokens"])
def test_openai_chat_truncates_to_limit_with_length_finish(
    oai: openai.OpenAI, limit_field: str
) -> None:
    completion = oai.chat.completions.create(
        model="fake-gpt", messages=[user("hi")], **{limit_field: 3}
    )

    assert completion.choices[0].message.content == "alpha bravo charlie"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_openai_chat_with_limit_equal_to_reply_finishes_stop(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="m", messages=[user("hi")], max_tokens=8)

    assert completion.choices[0].finish_reason == "stop"


def test_reply_tokens_knob_sets_reply_length(server: FakeUpstream, oai: openai.OpenAI) -> None:
    server.configure(reply_tokens=28)

    completion = oai.chat.completions.create(model="m", messages=[user("hi")])

    words = completion.choices[0].message.content.split()
    assert words[:2] == ["alpha", "bravo"]
    assert words[25:] == ["zulu", "alpha", "bravo"]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 28


def test_openai_stream_sends_role_then_one_word_per_delta_without_usage(
    oai: openai.OpenAI,
) -> None:
    chunks = list(
        oai.chat.completions.create(model="m", messages=[user("a b c")], stream=True, max_tokens=3)
    )

    assert [c.choices[0].delta.role for c in chunks] == ["assistant", None, None, None, None]
    assert [c.choices[0].delta.content for c in chunks] == [
        "",
        "alpha",
        " bravo",
        " charlie",
        None,
    ]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, None, "length"]
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.usage is None for c in chunks)


def test_openai_stream_with_include_usage_ends_with_usage_chunk(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="m",
            messages=[user("one two three four")],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (4, 8)
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == EIGHT_WORDS
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_openai_stream_wire_has_sse_data_lines_and_done(server: FakeUpstream) -> None:
    status, headers, body = raw_request(
        server,
        "POST",
        "/v1/chat/completions",
        {"messages": [user("hi")], "stream": True, "max_tokens": 1},
        OPENAI_AUTH,
    )

    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = body.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(event.startswith("data: ") for event in events[:-1])
    assert json.loads(events[0][len("data: ") :])["object"] == "chat.completion.chunk"


def test_openai_tool_call_when_last_message_asks_for_weather(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="m", messages=[user("What is the Weather in Hanoi?")], tools=[WEATHER_TOOL_OPENAI]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Hanoi"}
    assert completion.usage is not None
    assert completion.usage.completion_tokens == upstream.TOOL_CALL_TOKENS


def test_openai_streamed_tool_call_is_assembled_by_the_sdk(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="m", messages=[user("weather?")], tools=[WEATHER_TOOL_OPENAI]
    ) as stream:
        completion = stream.get_final_completion()

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Hanoi"}


@pytest.mark.parametrize(
    ("messages", "tool_choice"),
    [
        ([user("weather?")], "none"),
        ([user("weather?"), {"role": "assistant", "content": "ok"}, user("thanks")], "auto"),
    ],
)
def test_openai_no_tool_call_without_trigger_in_last_message_or_with_choice_none(
    oai: openai.OpenAI, messages: list[dict[str, Any]], tool_choice: str
) -> None:
    completion = oai.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER_TOOL_OPENAI], tool_choice=tool_choice
    )

    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None


def test_openai_chat_without_messages_is_bad_request(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="m", messages=None)  # type: ignore[arg-type]

    assert caught.value.body == {
        "message": "'messages' is required.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": None,
    }


# --- OpenAI embeddings and models ---------------------------------------------------------


def test_embeddings_float_vectors_are_deterministic_and_not_unit_norm(
    oai: openai.OpenAI,
) -> None:
    result = oai.embeddings.create(
        model="fake-embed", input=["hello world", "one two three"], encoding_format="float"
    )

    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == upstream.embedding_vector("hello world", 1536)
    assert len(result.data[1].embedding) == 1536
    norm = math.sqrt(sum(v * v for v in result.data[0].embedding))
    assert math.isclose(norm, upstream.EMBEDDING_NORM, rel_tol=1e-5)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (5, 5)


def test_embeddings_base64_default_decodes_to_the_float_values(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    as_base64 = oai.embeddings.create(model="fake-embed", input="hello world", dimensions=8)
    as_float = oai.embeddings.create(
        model="fake-embed", input="hello world", dimensions=8, encoding_format="float"
    )

    assert server.requests[0].body["encoding_format"] == "base64"
    assert as_base64.data[0].embedding == as_float.data[0].embedding
    assert as_float.data[0].embedding == upstream.embedding_vector("hello world", 8)


def test_embeddings_base64_is_little_endian_float32(server: FakeUpstream) -> None:
    status, _, body = raw_request(
        server,
        "POST",
        "/v1/embeddings",
        {"model": "e", "input": "hi", "dimensions": 4, "encoding_format": "base64"},
        OPENAI_AUTH,
    )

    encoded = json.loads(body)["data"][0]["embedding"]
    assert status == 200
    assert list(struct.unpack("<4f", base64.b64decode(encoded))) == upstream.embedding_vector(
        "hi", 4
    )


def test_models_list_in_openai_format(oai: openai.OpenAI) -> None:
    models = oai.models.list()

    assert [m.id for m in models.data] == list(upstream.DEFAULT_MODELS)
    assert {m.object for m in models.data} == {"model"}


# --- Anthropic messages -------------------------------------------------------------------


def test_anthropic_message_bills_system_and_text_blocks(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="fake-claude",
        max_tokens=100,
        system="you are terse",
        messages=[
            user("hello there"),
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "tell me more"}]},
        ],
    )

    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert message.role == "assistant"
    assert message.model == "fake-claude"
    assert [(b.type, b.text) for b in message.content] == [("text", EIGHT_WORDS)]
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3 + 2 + 1 + 3, 8)
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0


def test_anthropic_truncates_to_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="c", max_tokens=2, messages=[user("hi")])

    assert message.content[0].text == "alpha bravo"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


def test_anthropic_cache_reads_are_split_from_input_tokens(
    server: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    server.configure(cache_read_tokens=4)

    message = claude.messages.create(
        model="c", max_tokens=10, messages=[user("one two three four five six")]
    )

    assert message.usage.cache_read_input_tokens == 4
    assert message.usage.input_tokens == 2


def test_cache_reads_never_exceed_the_prompt(
    server: FakeUpstream, claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    server.configure(cache_read_tokens=50)

    message = claude.messages.create(model="c", max_tokens=10, messages=[user("one two")])
    completion = oai.chat.completions.create(model="m", messages=[user("one two")])

    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (0, 2)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 2


def test_anthropic_stream_events_in_order_with_cumulative_usage(
    claude: anthropic.Anthropic,
) -> None:
    events = list(
        claude.messages.create(model="c", max_tokens=3, messages=[user("a b c d")], stream=True)
    )

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].message.usage.input_tokens == 4
    assert [e.delta.text for e in events[2:5]] == ["alpha", " bravo", " charlie"]
    assert events[6].delta.stop_reason == "max_tokens"
    assert events[6].usage.output_tokens == 3


def test_anthropic_stream_wire_has_named_events_and_ping(server: FakeUpstream) -> None:
    status, headers, body = raw_request(
        server,
        "POST",
        "/v1/messages",
        {"model": "c", "max_tokens": 1, "messages": [user("hi")], "stream": True},
        ANTHROPIC_AUTH,
    )

    events = [block.split("\n") for block in body.decode().strip().split("\n\n")]
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert [lines[0] for lines in events] == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        "event: content_block_delta",
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
    assert json.loads(events[2][1][len("data: ") :]) == {"type": "ping"}


def test_anthropic_streamed_text_is_assembled_by_the_sdk(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="c", max_tokens=50, messages=[user("x y")]) as stream:
        message = stream.get_final_message()

    assert message.content[0].text == EIGHT_WORDS
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 8)


def test_anthropic_tool_use_when_last_message_asks_for_weather(
    claude: anthropic.Anthropic,
) -> None:
    message = claude.messages.create(
        model="c", max_tokens=50, messages=[user("weather please")], tools=[WEATHER_TOOL_ANTHROPIC]
    )

    (block,) = message.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert (block.name, block.input) == ("get_weather", {"city": "Hanoi"})
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == upstream.TOOL_CALL_TOKENS


def test_anthropic_streamed_tool_use_is_assembled_by_the_sdk(
    claude: anthropic.Anthropic,
) -> None:
    with claude.messages.stream(
        model="c", max_tokens=50, messages=[user("weather please")], tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        message = stream.get_final_message()

    assert [(b.type, b.name, b.input) for b in message.content] == [
        ("tool_use", "get_weather", {"city": "Hanoi"})
    ]
    assert message.stop_reason == "tool_use"


def test_anthropic_without_max_tokens_is_bad_request(server: FakeUpstream) -> None:
    status, _, body = raw_request(
        server, "POST", "/v1/messages", {"model": "c", "messages": []}, ANTHROPIC_AUTH
    )

    assert status == 400
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }


def test_anthropic_models_list_when_anthropic_version_is_sent(server: FakeUpstream) -> None:
    status, _, body = raw_request(server, "GET", "/v1/models", None, ANTHROPIC_AUTH)

    assert status == 200
    assert [m["id"] for m in json.loads(body)["data"]] == list(upstream.DEFAULT_MODELS)


# --- routing and auth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            OPENAI_AUTH,
            {
                "error": {
                    "message": "Unknown request URL: POST /v1/nope.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "unknown_url",
                }
            },
        ),
        (
            ANTHROPIC_AUTH,
            {
                "type": "error",
                "error": {
                    "type": "not_found_error",
                    "message": "Unknown request URL: POST /v1/nope.",
                },
            },
        ),
    ],
)
def test_unknown_path_is_404_in_the_callers_format(
    server: FakeUpstream, headers: dict[str, str], expected: dict[str, Any]
) -> None:
    status, response_headers, body = raw_request(server, "POST", "/v1/nope", {}, headers)

    assert status == 404
    assert response_headers["content-type"] == "application/json"
    assert json.loads(body) == expected


def test_openai_wrong_key_raises_authentication_error(server: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="m", messages=[user("hi")])

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


def test_anthropic_wrong_key_raises_authentication_error(server: FakeUpstream) -> None:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="wrong", max_retries=0)

    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="c", max_tokens=5, messages=[user("hi")])

    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }


def test_anthropic_accepts_x_api_key_header(server: FakeUpstream) -> None:
    status, _, body = raw_request(
        server, "POST", "/v1/messages", {"max_tokens": 1, "messages": []}, ANTHROPIC_AUTH
    )

    assert status == 200
    assert json.loads(body)["usage"]["output_tokens"] == 1


def test_anthropic_without_version_header_is_401(server: FakeUpstream) -> None:
    headers = {"x-api-key": API_KEY, "Content-Type": "application/json"}

    status, _, body = raw_request(
        server, "POST", "/v1/messages", {"max_tokens": 1, "messages": []}, headers
    )

    assert status == 401
    assert json.loads(body)["error"] == {
        "type": "authentication_error",
        "message": "anthropic-version header is required",
    }


def test_connection_is_kept_alive_across_requests(server: FakeUpstream) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    body = json.dumps({"messages": [user("hi")]})
    try:
        statuses = []
        for _ in range(3):
            connection.request("POST", "/v1/chat/completions", body=body, headers=OPENAI_AUTH)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            sock = connection.sock
        assert statuses == [200, 200, 200]
        assert connection.sock is sock
    finally:
        connection.close()


# --- recording and controls ---------------------------------------------------------------


def test_records_method_path_lowercase_headers_and_parsed_body(
    server: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    claude.messages.create(model="c", max_tokens=5, messages=[user("hi")])

    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert "anthropic-version" in request.headers
    assert request.body == {"model": "c", "max_tokens": 5, "messages": [user("hi")]}


def test_push_faults_apply_once_each_then_back_to_normal(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.push_faults(["http_500", "http_503"])

    with pytest.raises(openai.InternalServerError) as first:
        oai.chat.completions.create(model="m", messages=[user("hi")])
    with pytest.raises(openai.InternalServerError) as second:
        oai.chat.completions.create(model="m", messages=[user("hi")])
    third = oai.chat.completions.create(model="m", messages=[user("hi")])

    assert (first.value.status_code, second.value.status_code) == (500, 503)
    assert third.choices[0].message.content == EIGHT_WORDS


def test_set_fault_sticks_until_cleared_and_queued_faults_win(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.set_fault("http_503")
    server.push_faults(["http_429"])

    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="m", messages=[user("hi")])
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model="m", messages=[user("hi")])
    server.set_fault(None)

    assert oai.chat.completions.create(model="m", messages=[user("hi")]).choices


def test_clear_forgets_requests_faults_and_knob_changes(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    oai.chat.completions.create(model="m", messages=[user("hi")])
    server.push_faults(["http_500"])
    server.set_fault("http_503")
    server.configure(reply_tokens=1)

    server.clear()
    completion = oai.chat.completions.create(model="m", messages=[user("hi")])

    assert completion.choices[0].message.content == EIGHT_WORDS
    assert len(server.requests) == 1


def test_unauthorised_request_consumes_no_fault(server: FakeUpstream, oai: openai.OpenAI) -> None:
    server.push_faults(["http_500"])
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)

    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="m", messages=[user("hi")])
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="m", messages=[user("hi")])


def test_delays_keep_the_answer_identical(server: FakeUpstream, oai: openai.OpenAI) -> None:
    server.configure(delay_s=0.01, token_delay_s=0.001)

    chunks = list(
        oai.chat.completions.create(
            model="m", messages=[user("hi")], stream=True, stream_options={"include_usage": True}
        )
    )
    completion = oai.chat.completions.create(model="m", messages=[user("hi")])

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == EIGHT_WORDS
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8
    assert completion.choices[0].message.content == EIGHT_WORDS


# --- scripted HTTP faults -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "status", "error_type"),
    [
        ("http_500", openai.InternalServerError, 500, "server_error"),
        ("http_503", openai.InternalServerError, 503, "server_error"),
        ("http_429", openai.RateLimitError, 429, "requests"),
        ("http_529", openai.InternalServerError, 529, "server_error"),
    ],
)
def test_openai_http_faults_raise_typed_errors(
    server: FakeUpstream,
    oai: openai.OpenAI,
    fault: str,
    error: type[openai.APIStatusError],
    status: int,
    error_type: str,
) -> None:
    server.push_faults([fault])

    with pytest.raises(error) as caught:
        oai.chat.completions.create(model="m", messages=[user("hi")])

    assert caught.value.status_code == status
    assert caught.value.type == error_type


@pytest.mark.parametrize(
    ("fault", "error", "status", "error_type"),
    [
        ("http_500", anthropic.InternalServerError, 500, "api_error"),
        ("http_503", anthropic.ServiceUnavailableError, 503, "api_error"),
        ("http_429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("http_529", anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
def test_anthropic_http_faults_raise_typed_errors(
    server: FakeUpstream,
    claude: anthropic.Anthropic,
    fault: str,
    error: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
) -> None:
    server.push_faults([fault])

    with pytest.raises(error) as caught:
        claude.messages.create(model="c", max_tokens=5, messages=[user("hi")])

    assert caught.value.status_code == status
    assert caught.value.body["error"]["type"] == error_type


def test_http_429_carries_retry_after_headers(server: FakeUpstream, oai: openai.OpenAI) -> None:
    server.push_faults(["http_429"])

    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="m", messages=[user("hi")])

    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.response.headers["retry-after-ms"] == "1000"


def test_faults_apply_to_embeddings(server: FakeUpstream, oai: openai.OpenAI) -> None:
    server.push_faults(["http_503"])

    with pytest.raises(openai.InternalServerError):
        oai.embeddings.create(model="e", input="hi")


# --- connection faults --------------------------------------------------------------------


def test_close_before_headers_raises_connection_error(
    server: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.push_faults(["close_before_headers", "close_before_headers"])

    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=[user("hi")])
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model="c", max_tokens=5, messages=[user("hi")])


def test_closed_port_refuses_connections() -> None:
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key=API_KEY, max_retries=0
    )

    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[user("hi")])


def test_timeout_before_headers_outlasts_a_short_client_timeout(
    server: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.configure(hang_s=2.0)
    server.push_faults(["timeout_before_headers", "timeout_before_headers"])

    with pytest.raises(openai.APITimeoutError):
        oai.chat.completions.create(model="m", messages=[user("hi")], timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        claude.messages.create(model="c", max_tokens=5, messages=[user("hi")], timeout=0.2)


def test_timeout_before_headers_answers_normally_after_the_hang(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.configure(hang_s=0.05)
    server.push_faults(["timeout_before_headers"])

    completion = oai.chat.completions.create(model="m", messages=[user("hi")])

    assert completion.choices[0].message.content == EIGHT_WORDS


def test_hang_mid_stream_sends_two_deltas_then_stalls(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.configure(hang_s=2.0)
    server.push_faults(["hang_mid_stream"])
    stream = oai.chat.completions.create(model="m", messages=[user("hi")], stream=True, timeout=0.3)
    received: list[Any] = []

    with pytest.raises(openai.APITimeoutError):
        drain(stream, into=received)

    assert [c.choices[0].delta.content for c in received] == ["", "alpha", " bravo"]


def test_hang_mid_stream_completes_when_the_client_waits(
    server: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    server.configure(hang_s=0.05)
    server.push_faults(["hang_mid_stream"])

    with claude.messages.stream(model="c", max_tokens=50, messages=[user("x")]) as stream:
        message = stream.get_final_message()

    assert message.content[0].text == EIGHT_WORDS


def test_truncated_stream_breaks_off_after_two_deltas(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.push_faults(["truncated_stream"])
    stream = oai.chat.completions.create(model="m", messages=[user("hi")], stream=True)
    received: list[Any] = []

    with pytest.raises(openai.APIConnectionError):
        drain(stream, into=received)

    assert [c.choices[0].delta.content for c in received] == ["", "alpha", " bravo"]


def test_truncated_anthropic_stream_raises_a_protocol_error(
    server: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    server.push_faults(["truncated_stream"])
    stream = claude.messages.create(model="c", max_tokens=50, messages=[user("x")], stream=True)
    received: list[Any] = []

    # anthropic's raw stream lets the transport error through unwrapped.
    with pytest.raises(httpx2.RemoteProtocolError):
        drain(stream, into=received)

    assert [e.type for e in received] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]


def test_truncated_non_stream_body_raises_connection_error(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.push_faults(["truncated_stream"])

    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=[user("hi")])


def test_openai_error_event_mid_stream_raises_api_error(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.push_faults(["error_event_mid_stream"])
    stream = oai.chat.completions.create(model="m", messages=[user("hi")], stream=True)
    received: list[Any] = []

    with pytest.raises(openai.APIError) as caught:
        drain(stream, into=received)

    assert [c.choices[0].delta.content for c in received] == ["", "alpha", " bravo"]
    assert caught.value.type == "server_error"


def test_anthropic_error_event_mid_stream_raises_status_error(
    server: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    server.push_faults(["error_event_mid_stream"])

    with pytest.raises(anthropic.APIStatusError) as caught:
        list(claude.messages.create(model="c", max_tokens=50, messages=[user("x")], stream=True))

    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_requests_reads_the_chunked_stream_and_sees_truncation(server: FakeUpstream) -> None:
    # The gateway's own client is requests, not an SDK.
    session = requests.Session()
    url = f"{server.base_url}/v1/chat/completions"
    body = {"messages": [user("hi")], "stream": True, "max_tokens": 1}
    server.push_faults(["truncated_stream"])

    truncated = session.post(url, json=body, headers=OPENAI_AUTH, stream=True)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        drain(truncated.iter_lines(), into=[])
    complete = session.post(url, json=body, headers=OPENAI_AUTH, stream=True)

    lines = [line for line in complete.iter_lines() if line]
    assert complete.headers["transfer-encoding"] == "chunked"
    assert lines[-1] == b"data: [DONE]"
    assert len(lines) == 4


# --- body faults --------------------------------------------------------------------------


def test_malformed_json_is_a_200_that_does_not_parse(
    server: FakeUpstream, oai: openai.OpenAI
) -> None:
    server.push_faults(["malformed_json", "malformed_json"])

    raw = oai.chat.completions.with_raw_response.create(model="m", messages=[user("hi")])
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="m", messages=[user("hi")])

    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw.text)


def test_wrong_content_type_is_a_200_html_page(server: FakeUpstream, oai: openai.OpenAI) -> None:
    server.push_faults(["wrong_content_type"])

    raw = oai.chat.completions.with_raw_response.create(model="m", messages=[user("hi")])

    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("text/html")
    assert raw.text.startswith("<!DOCTYPE html>")


def test_no_usage_omits_usage_everywhere(
    server: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.set_fault("no_usage")

    completion = oai.chat.completions.with_raw_response.create(model="m", messages=[user("hi")])
    chunks = list(
        oai.chat.completions.create(
            model="m", messages=[user("hi")], stream=True, stream_options={"include_usage": True}
        )
    )
    message = claude.messages.with_raw_response.create(
        model="c", max_tokens=5, messages=[user("hi")]
    )
    events = list(
        claude.messages.create(model="c", max_tokens=5, messages=[user("hi")], stream=True)
    )

    assert "usage" not in json.loads(completion.text)
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert "usage" not in json.loads(message.text())
    assert events[0].message.usage is None
    assert events[-2].usage is None


def test_over_report_usage_reports_far_above_max_tokens(
    server: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    server.set_fault("over_report_usage")

    completion = oai.chat.completions.create(model="m", messages=[user("hi")], max_tokens=4)
    message = claude.messages.create(model="c", max_tokens=4, messages=[user("hi")])

    assert completion.choices[0].message.content == "alpha bravo charlie delta"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 1040
    assert message.usage.output_tokens == 1040


# --- lifecycle and CLI --------------------------------------------------------------------


def test_stop_closes_the_listener() -> None:
    fake = FakeUpstream().start()
    port = fake.port

    fake.stop()

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[user("hi")])


def test_cli_prints_its_url_serves_and_exits_on_sigterm() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.upstream", "--port", "0", "--reply-tokens", "2"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)

        completion = client.chat.completions.create(model="m", messages=[user("hi")])

        assert url.startswith("http://127.0.0.1:")
        assert completion.choices[0].message.content == "alpha bravo"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0
