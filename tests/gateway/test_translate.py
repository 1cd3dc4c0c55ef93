"""Table tests for gateway.translate: pure, no database, no network.

The SDK tests run the official `openai` and `anthropic` clients against an in-process
httpx2 MockTransport that replays translated streams as SSE, so the SDKs' own parsers and
stream accumulators (`client.messages.stream`, `client.chat.completions.stream`) judge the
output.
"""

from __future__ import annotations

import json

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway import translate
from gateway.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    TranslationError,
    Usage,
)

PNG_B64 = "iVBORw0KGgo="
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
OPENAI_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": WEATHER_SCHEMA,
    },
}
ANTHROPIC_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": WEATHER_SCHEMA,
}


def to_anthropic(body: dict) -> dict:
    return translate.openai_request_to_anthropic(body, model="claude-x", max_tokens=256)


def to_openai(body: dict) -> dict:
    return translate.anthropic_request_to_openai(body, model="gpt-x", max_tokens=256)


def user(content: object) -> dict:
    return {"role": "user", "content": content}


# --- usage


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, None),
        ({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}, Usage(10, 5)),
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 60},
            },
            Usage(100, 7, cache_read_tokens=60),
        ),
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30},
            },
            Usage(100, 7, cache_read_tokens=60, cache_creation_tokens=30),
        ),
        (
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": None},
            Usage(10, 1),
        ),
        # An upstream reporting more cached than prompt tokens is clamped, not trusted.
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 50},
            },
            Usage(10, 1, cache_read_tokens=10),
        ),
        ({"prompt_tokens": -3, "completion_tokens": "9"}, Usage(0, 0)),
    ],
)
def test_parses_openai_usage(payload: dict | None, expected: Usage | None) -> None:
    assert Usage.from_openai(payload) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, None),
        ({"input_tokens": 12, "output_tokens": 4}, Usage(12, 4)),
        (
            {
                "input_tokens": 5,
                "output_tokens": 4,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
            },
            Usage(125, 4, cache_read_tokens=100, cache_creation_tokens=20),
        ),
        (
            {"input_tokens": 5, "output_tokens": 4, "cache_read_input_tokens": None},
            Usage(5, 4),
        ),
        ({"output_tokens": 9}, Usage(0, 9)),
    ],
)
def test_parses_anthropic_usage_adding_cache_tokens_to_prompt(
    payload: dict | None, expected: Usage | None
) -> None:
    assert Usage.from_anthropic(payload) == expected


def test_renders_usage_in_openai_format() -> None:
    assert Usage(125, 4, cache_read_tokens=100).to_openai() == {
        "prompt_tokens": 125,
        "completion_tokens": 4,
        "total_tokens": 129,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


def test_renders_cache_writes_in_openai_format_only_when_present() -> None:
    assert Usage(125, 4, cache_read_tokens=100, cache_creation_tokens=20).to_openai() == {
        "prompt_tokens": 125,
        "completion_tokens": 4,
        "total_tokens": 129,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
    }


def test_renders_usage_in_anthropic_format_with_uncached_input() -> None:
    assert Usage(125, 4, cache_read_tokens=100, cache_creation_tokens=20).to_anthropic() == {
        "input_tokens": 5,
        "output_tokens": 4,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    }


@pytest.mark.parametrize(
    "counts",
    [(-1, 0, 0, 0), (0, -1, 0, 0), (10, 0, 8, 3), (1.5, 0, 0, 0), (True, 0, 0, 0)],
)
def test_rejects_usage_that_breaks_its_invariants(counts: tuple) -> None:
    with pytest.raises(ValueError, match="token"):
        Usage(*counts)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    prompt = draw(st.integers(0, 10**9))
    read = draw(st.integers(0, prompt))
    creation = draw(st.integers(0, prompt - read))
    return Usage(prompt, draw(st.integers(0, 10**9)), read, creation)


@given(usages())
def test_usage_round_trips_through_both_wire_formats(usage: Usage) -> None:
    assert Usage.from_openai(usage.to_openai()) == usage
    assert Usage.from_anthropic(usage.to_anthropic()) == usage


# --- stop reasons


@pytest.mark.parametrize(
    ("finish_reason", "matched_stop", "expected"),
    [
        ("stop", None, "end_turn"),
        ("stop", "END", "stop_sequence"),
        ("length", None, "max_tokens"),
        ("tool_calls", None, "tool_use"),
        ("function_call", None, "tool_use"),
        ("content_filter", None, "refusal"),
        ("something_new", None, "end_turn"),
        (None, None, None),
    ],
)
def test_maps_openai_finish_reason_to_anthropic_stop_reason(
    finish_reason: str | None, matched_stop: str | None, expected: str | None
) -> None:
    assert translate.openai_stop_to_anthropic(finish_reason, matched_stop=matched_stop) == expected


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
        (None, None),
    ],
)
def test_maps_anthropic_stop_reason_to_openai_finish_reason(
    stop_reason: str | None, expected: str | None
) -> None:
    assert translate.anthropic_stop_to_openai(stop_reason) == expected


# --- OpenAI -> Anthropic request


def test_translates_minimal_openai_request_setting_model_and_max_tokens() -> None:
    body = {"model": "auto", "messages": [user("Hi")], "max_tokens": 9999}

    assert to_anthropic(body) == {
        "model": "claude-x",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_lifts_system_and_developer_messages_into_system() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            user("Hi"),
        ]
    }

    out = to_anthropic(body)

    assert out["system"] == "Be brief.\n\nUse French."
    assert out["messages"] == [{"role": "user", "content": "Hi"}]


def test_keeps_cache_control_as_system_blocks() -> None:
    cached = {"type": "text", "text": "Long doc", "cache_control": {"type": "ephemeral"}}
    body = {"messages": [{"role": "system", "content": [cached]}, user("Hi")]}

    assert to_anthropic(body)["system"] == [cached]


def test_translates_multipart_user_content_with_images() -> None:
    body = {
        "messages": [
            user(
                [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.test/a.jpg", "detail": "low"},
                    },
                ]
            )
        ]
    }

    assert to_anthropic(body)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
            ],
        }
    ]


def test_translates_inline_pdf_file_to_document_block() -> None:
    part = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
    }

    assert to_anthropic({"messages": [user([part])]})["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        }
    ]


def test_translates_tool_call_conversation_merging_consecutive_tool_results() -> None:
    # Given an assistant turn with two parallel tool calls, their results, and a follow-up
    body = {
        "messages": [
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "25C"}],
            },
            user("Which is warmer?"),
        ]
    }

    # When it is translated
    messages = to_anthropic(body)["messages"]

    # Then the results share one user turn, tool results first, as Anthropic requires
    assert messages == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "25C"}],
                },
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]


def test_keeps_assistant_text_before_tool_use_and_defaults_bad_arguments_to_empty_object() -> None:
    body = {
        "messages": [
            user("Go"),
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "functions.lookup:0",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "trunc'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "functions.lookup:0", "content": "ok"},
        ]
    }

    messages = to_anthropic(body)["messages"]

    assert messages[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "functions_lookup_0", "name": "lookup", "input": {}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "functions_lookup_0", "content": "ok"}
    ]


def test_drops_empty_messages_and_strips_trailing_whitespace_of_final_assistant_turn() -> None:
    body = {
        "messages": [
            user("Hello"),
            {"role": "assistant", "content": ""},
            user([{"type": "text", "text": "  "}, {"type": "text", "text": "again"}]),
            {"role": "assistant", "content": "Sure thing \n"},
        ]
    }

    assert to_anthropic(body)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "again"}],
        },
        {"role": "assistant", "content": "Sure thing"},
    ]


def test_translates_openai_tools() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    body = {"messages": [user("Hi")], "tools": [OPENAI_WEATHER_TOOL, bare]}

    assert to_anthropic(body)["tools"] == [
        ANTHROPIC_WEATHER_TOOL,
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
        (None, None, None),
    ],
)
def test_maps_openai_tool_choice_to_anthropic(
    tool_choice: object, parallel: bool | None, expected: dict | None
) -> None:
    body: dict = {"messages": [user("Hi")], "tools": [OPENAI_WEATHER_TOOL]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel

    assert to_anthropic(body).get("tool_choice") == expected


def test_drops_tool_choice_without_tools() -> None:
    out = to_anthropic({"messages": [user("Hi")], "tool_choice": "required"})

    assert "tool_choice" not in out


def test_translates_sampling_stop_stream_and_user() -> None:
    body = {
        "messages": [user("Hi")],
        "temperature": 0.4,
        "top_p": 0.9,
        "stop": ["END", "\n"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-42",
    }

    out = to_anthropic(body)

    assert out == {
        "model": "claude-x",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.4,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "user-42"},
    }


@pytest.mark.parametrize(("temperature", "expected"), [(0, 0), (1, 1), (1.7, 1), (2.0, 1)])
def test_clamps_temperature_to_anthropic_range(temperature: float, expected: float) -> None:
    assert (
        to_anthropic({"messages": [user("Hi")], "temperature": temperature})["temperature"]
        == expected
    )


def test_accepts_single_stop_string() -> None:
    assert to_anthropic({"messages": [user("Hi")], "stop": "###"})["stop_sequences"] == ["###"]


def test_drops_openai_only_fields() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [user("Hi")],
        "n": 1,
        "seed": 7,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.5,
        "logprobs": True,
        "top_logprobs": 2,
        "logit_bias": {"50256": -100},
        "max_completion_tokens": 5000,
        "store": True,
        "reasoning_effort": "high",
        "service_tier": "auto",
        "prompt_cache_key": "k",
        "stream": False,
    }

    assert to_anthropic(body) == {
        "model": "claude-x",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi"}],
    }


@pytest.mark.parametrize(
    ("response_format", "expected_system"),
    [
        ({"type": "text"}, "Be kind."),
        ({"type": "json_object"}, "Be kind.\n\n" + translate.JSON_OBJECT_INSTRUCTION),
        (
            {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_SCHEMA}},
            "Be kind.\n\n" + translate.JSON_SCHEMA_INSTRUCTION + json.dumps(WEATHER_SCHEMA),
        ),
    ],
)
def test_turns_response_format_into_a_system_instruction(
    response_format: dict, expected_system: str
) -> None:
    body = {
        "messages": [{"role": "system", "content": "Be kind."}, user("Hi")],
        "response_format": response_format,
    }

    assert to_anthropic(body)["system"] == expected_system


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "system", "content": "only system"}]}, "at least one"),
        (
            {
                "messages": [
                    user([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}])
                ]
            },
            "input_audio",
        ),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "legacy"),
        ({"messages": [user("Hi")], "functions": [{"name": "f"}]}, "legacy"),
        ({"messages": [user([{"type": "file", "file": {"file_id": "file-1"}}])]}, "file ids"),
        (
            {
                "messages": [
                    user([{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}])
                ]
            },
            "base64",
        ),
        (
            {"messages": [user("Hi")], "tools": [{"type": "custom", "custom": {"name": "x"}}]},
            "function tools",
        ),
        ({"messages": [{"role": "critic", "content": "x"}]}, "role"),
    ],
)
def test_rejects_openai_requests_anthropic_cannot_express(body: dict, message: str) -> None:
    with pytest.raises(TranslationError, match=message):
        to_anthropic(body)


def test_does_not_modify_the_openai_body() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "S"},
            user("Hi"),
            {"role": "assistant", "content": "Yes  "},
        ],
        "response_format": {"type": "json_object"},
    }
    snapshot = json.loads(json.dumps(body))

    to_anthropic(body)

    assert body == snapshot


# --- Anthropic -> OpenAI request


def test_translates_minimal_anthropic_request_setting_model_and_max_completion_tokens() -> None:
    body = {"model": "claude", "max_tokens": 4096, "messages": [user("Hi")]}

    assert to_openai(body) == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 256,
    }


def test_can_put_the_cap_in_legacy_max_tokens() -> None:
    out = translate.anthropic_request_to_openai(
        {"messages": [user("Hi")]}, model="m", max_tokens=9, max_tokens_field="max_tokens"
    )

    assert out == {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 9}


@pytest.mark.parametrize(
    "system",
    [
        "Be brief.\n\nUse French.",
        [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Use French.", "cache_control": {"type": "ephemeral"}},
        ],
    ],
)
def test_turns_anthropic_system_into_leading_system_message(system: object) -> None:
    out = to_openai({"system": system, "messages": [user("Hi")]})

    assert out["messages"] == [
        {"role": "system", "content": "Be brief.\n\nUse French."},
        {"role": "user", "content": "Hi"},
    ]


def test_translates_anthropic_user_blocks_with_images() -> None:
    body = {
        "messages": [
            user(
                [
                    {
                        "type": "text",
                        "text": "What is this?",
                        "cache_control": {"type": "ephemeral"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                ]
            )
        ]
    }

    assert to_openai(body)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
            ],
        }
    ]


def test_translates_anthropic_tool_conversation_to_tool_messages() -> None:
    # Given an assistant turn with thinking, text and two tool_use blocks, then their results
    body = {
        "messages": [
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    },
                ],
            },
            user(
                [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "25C"}],
                        "is_error": False,
                    },
                    {"type": "text", "text": "Which is warmer?"},
                ]
            ),
        ]
    }

    # When it is translated
    messages = to_openai(body)["messages"]

    # Then tool results become tool messages right after the assistant turn
    assert messages == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "25C"},
        {"role": "user", "content": "Which is warmer?"},
    ]


def test_moves_images_returned_by_a_tool_into_the_following_user_message() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/chart.png"}}
    body = {
        "messages": [
            user("Plot it"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "plot", "input": {}}],
            },
            user(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "done"}, image],
                    }
                ]
            ),
        ]
    }

    assert to_openai(body)["messages"][2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/chart.png"}}],
        },
    ]


def test_translates_anthropic_tools_and_drops_cache_control() -> None:
    cached = {**ANTHROPIC_WEATHER_TOOL, "cache_control": {"type": "ephemeral"}}
    body = {
        "messages": [user("Hi")],
        "tools": [cached, {"name": "ping", "input_schema": {"type": "object"}}],
    }

    assert to_openai(body)["tools"] == [
        OPENAI_WEATHER_TOOL,
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected_choice", "expected_parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "none"}, "none", None),
        ({"type": "any"}, "required", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "auto", "disable_parallel_tool_use": False}, "auto", None),
        (None, None, None),
    ],
)
def test_maps_anthropic_tool_choice_to_openai(
    tool_choice: dict | None, expected_choice: object, expected_parallel: bool | None
) -> None:
    body: dict = {"messages": [user("Hi")], "tools": [ANTHROPIC_WEATHER_TOOL]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice

    out = to_openai(body)

    assert out.get("tool_choice") == expected_choice
    assert out.get("parallel_tool_calls") == expected_parallel


def test_translates_anthropic_sampling_stop_stream_and_metadata() -> None:
    body = {
        "messages": [user("Hi")],
        "max_tokens": 1000,
        "temperature": 0.2,
        "top_p": 0.8,
        "top_k": 40,
        "stop_sequences": ["a", "b", "c", "d", "e"],
        "stream": True,
        "metadata": {"user_id": "user-42"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "service_tier": "auto",
    }

    assert to_openai(body) == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.8,
        "stop": ["a", "b", "c", "d"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-42",
    }


def test_maps_anthropic_output_format_to_response_format() -> None:
    body = {
        "messages": [user("Hi")],
        "output_config": {"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}},
    }

    assert to_openai(body)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": WEATHER_SCHEMA},
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role"),
        (
            {
                "messages": [user("Hi")],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "server tools",
        ),
        (
            {"messages": [user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])]},
            "image sources",
        ),
        (
            {
                "messages": [
                    user(
                        [
                            {
                                "type": "document",
                                "source": {"type": "url", "url": "https://x.test/a.pdf"},
                            }
                        ]
                    )
                ]
            },
            "documents",
        ),
        ({"messages": [user([{"type": "search_result", "content": []}])]}, "search_result"),
    ],
)
def test_rejects_anthropic_requests_openai_cannot_express(body: dict, message: str) -> None:
    with pytest.raises(TranslationError, match=message):
        to_openai(body)


# --- round trip


def test_openai_request_survives_a_round_trip_through_anthropic() -> None:
    # Given a realistic OpenAI tool-calling request
    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    original = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                ],
            },
        ],
        "tools": [OPENAI_WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "stream": True,
        "user": "user-42",
    }

    # When it goes to Anthropic and back
    there = translate.openai_request_to_anthropic(original, model="claude-x", max_tokens=300)
    back = translate.anthropic_request_to_openai(there, model="gpt-x", max_tokens=300)

    # Then every semantic field is preserved
    assert back == {
        "model": "gpt-x",
        "messages": original["messages"],
        "max_completion_tokens": 300,
        "tools": [OPENAI_WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-42",
    }


# --- responses

OPENAI_TOOL_RESPONSE = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
    },
}

ANTHROPIC_TOOL_RESPONSE = {
    "id": "msg_01XYZ",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "output_tokens": 30,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
    },
}


def test_translates_openai_response_to_anthropic_message() -> None:
    out = translate.openai_response_to_anthropic(OPENAI_TOOL_RESPONSE)

    assert out == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-2024-08-06",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 30,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
        },
    }
    assert Message.model_validate(out).content[1].input == {"city": "Paris"}


def test_uses_given_message_id_and_generates_one_without_source_id() -> None:
    assert translate.openai_response_to_anthropic(OPENAI_TOOL_RESPONSE, message_id="msg_given")[
        "id"
    ] == ("msg_given")
    generated = translate.openai_response_to_anthropic({"choices": []})

    assert generated["id"].startswith("msg_")
    assert len(generated["id"]) > len("msg_")
    assert generated["content"] == []
    assert generated["stop_reason"] == "end_turn"
    assert generated["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


@pytest.mark.parametrize(
    ("choice", "stop_reason", "stop_sequence"),
    [
        ({"message": {"content": "x"}, "finish_reason": "length"}, "max_tokens", None),
        (
            {"message": {"content": "x"}, "finish_reason": "stop", "stop_reason": "END"},
            "stop_sequence",
            "END",
        ),
        (
            {"message": {"content": None, "refusal": "I can't."}, "finish_reason": "stop"},
            "refusal",
            None,
        ),
        (
            {
                "message": {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "stop",
            },
            "tool_use",
            None,
        ),
    ],
)
def test_derives_anthropic_stop_reason_from_the_openai_choice(
    choice: dict, stop_reason: str, stop_sequence: str | None
) -> None:
    out = translate.openai_response_to_anthropic(
        {"id": "chatcmpl-1", "choices": [{"index": 0, **choice}]}
    )

    assert (out["stop_reason"], out["stop_sequence"]) == (stop_reason, stop_sequence)


def test_translates_anthropic_message_to_openai_completion() -> None:
    out = translate.anthropic_response_to_openai(ANTHROPIC_TOOL_RESPONSE, created=1700000000)

    assert out == {
        "id": "chatcmpl-01XYZ",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }
    parsed = ChatCompletion.model_validate(out)
    assert parsed.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_text_only_anthropic_message_has_no_tool_calls_and_uses_given_id() -> None:
    resp = {
        "id": "msg_1",
        "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
        "stop_reason": "max_tokens",
        "model": "claude",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }

    out = translate.anthropic_response_to_openai(resp, completion_id="chatcmpl-given", created=5)

    assert out["id"] == "chatcmpl-given"
    assert out["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello",
        "refusal": None,
    }
    assert out["choices"][0]["finish_reason"] == "length"
    ChatCompletion.model_validate(out)


# --- OpenAI stream -> Anthropic events


def openai_chunk(
    delta: dict | None = None, finish_reason: str | None = None, **extra: object
) -> dict:
    chunk: dict = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        "usage": None,
    }
    chunk.update(extra)
    return chunk


def openai_tool_stream() -> list[dict]:
    """A realistic OpenAI stream: text, two tool calls streamed in fragments, usage last."""
    return [
        openai_chunk({"role": "assistant", "content": "", "refusal": None}),
        openai_chunk({"content": "Let me "}),
        openai_chunk({"content": "check."}),
        openai_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]}),
        openai_chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    }
                ]
            }
        ),
        openai_chunk({}, "tool_calls"),
        openai_chunk(
            None,
            usage={
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 100},
            },
        ),
    ]


def run_openai_to_anthropic(
    chunks: list[dict], **kwargs: object
) -> tuple[OpenAIToAnthropicStream, list]:
    stream = OpenAIToAnthropicStream(message_id="msg_1", model="gpt-4o", **kwargs)
    events = [event for chunk in chunks for event in stream.feed(chunk)]
    return stream, events + stream.finish()


def test_translates_openai_tool_stream_to_anthropic_events() -> None:
    # Given a stream with text, two tool calls and a trailing usage chunk
    stream, events = run_openai_to_anthropic(openai_tool_stream(), input_tokens_hint=118)

    # Then the Anthropic sequence is complete, ordered and indexed
    assert events == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "gpt-4o",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 118,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Let me "},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "check."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city"'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": ': "Paris"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 20,
                    "output_tokens": 30,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 0,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert stream.usage == Usage(120, 30, cache_read_tokens=100)
    assert stream.output_events == 7


def test_holds_message_delta_until_finish_so_late_usage_is_included() -> None:
    stream = OpenAIToAnthropicStream(message_id="msg_1", model="m")
    stream.feed(openai_chunk({"content": "Hi"}))

    after_finish_reason = stream.feed(openai_chunk({}, "stop"))
    after_usage = stream.feed(
        openai_chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 1})
    )

    assert [name for name, _ in after_finish_reason] == ["content_block_stop"]
    assert after_usage == []
    assert stream.finish()[0] == (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "input_tokens": 9,
                "output_tokens": 1,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        },
    )


def test_finishes_an_empty_openai_stream_with_a_complete_anthropic_message() -> None:
    stream = OpenAIToAnthropicStream(message_id="msg_1", model="m")

    events = stream.finish()

    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]
    assert events[2][1]["usage"] == {"output_tokens": 0}
    assert stream.usage is None
    assert stream.output_events == 0
    assert stream.finish() == []
    assert stream.feed(openai_chunk({"content": "late"})) == []


def test_records_a_mid_stream_openai_error_without_emitting_it() -> None:
    stream = OpenAIToAnthropicStream(message_id="msg_1", model="m")
    stream.feed(openai_chunk({"content": "Hi"}))

    events = stream.feed({"error": {"message": "overloaded", "type": "server_error"}})

    assert events == []
    assert stream.error == {"message": "overloaded", "type": "server_error"}


def test_reports_matched_stop_sequence_and_refusal_from_openai_stream() -> None:
    _, stop_events = run_openai_to_anthropic(
        [
            openai_chunk({"content": "a"}),
            {
                **openai_chunk({}, "stop"),
                "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}
                ],
            },
        ]
    )
    _, refusal_events = run_openai_to_anthropic(
        [openai_chunk({"refusal": "I can't help."}), openai_chunk({}, "stop")]
    )

    assert stop_events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert refusal_events[-2][1]["delta"] == {"stop_reason": "refusal", "stop_sequence": None}
    assert refusal_events[3][1]["delta"] == {"type": "text_delta", "text": "I can't help."}


# --- Anthropic stream -> OpenAI chunks


def anthropic_tool_stream() -> list[tuple[str, dict]]:
    """A realistic Anthropic stream: thinking, text, one tool_use streamed as JSON fragments."""
    return [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 20,
                        "output_tokens": 1,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 5,
                    },
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Let me check."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 30},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def run_anthropic_to_openai(
    events: list[tuple[str, dict]], *, include_usage: bool
) -> tuple[AnthropicToOpenAIStream, list[dict]]:
    stream = AnthropicToOpenAIStream(
        completion_id="chatcmpl-1",
        model="claude-sonnet-4-5",
        created=1700000000,
        include_usage=include_usage,
    )
    chunks = [chunk for name, data in events for chunk in stream.feed(name, data)]
    return stream, chunks + stream.finish()


def test_translates_anthropic_tool_stream_to_openai_chunks() -> None:
    stream, chunks = run_anthropic_to_openai(anthropic_tool_stream(), include_usage=True)

    def expected(delta: dict, finish_reason: str | None = None) -> dict:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "claude-sonnet-4-5",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": None,
        }

    assert chunks == [
        expected({"role": "assistant", "content": ""}),
        expected({"content": "Let me check."}),
        expected(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        expected({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
        expected({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}),
        expected({}, "tool_calls"),
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "claude-sonnet-4-5",
            "choices": [],
            "usage": {
                "prompt_tokens": 125,
                "completion_tokens": 30,
                "total_tokens": 155,
                "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5},
            },
        },
    ]
    assert stream.usage == Usage(125, 30, cache_read_tokens=100, cache_creation_tokens=5)
    assert stream.output_events == 4
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


def test_omits_usage_chunk_and_usage_keys_without_include_usage() -> None:
    stream, chunks = run_anthropic_to_openai(anthropic_tool_stream(), include_usage=False)

    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage == Usage(125, 30, cache_read_tokens=100, cache_creation_tokens=5)


def test_numbers_each_tool_use_block_as_the_next_tool_call_index() -> None:
    def tool_block(index: int, tool_id: str) -> list[tuple[str, dict]]:
        return [
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": tool_id, "name": "f", "input": {}},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": "{}"},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]

    events = anthropic_tool_stream()[:1] + tool_block(0, "toolu_a") + tool_block(1, "toolu_b")
    _, chunks = run_anthropic_to_openai(events, include_usage=False)

    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert [(c["index"], c.get("id")) for c in calls] == [
        (0, "toolu_a"),
        (0, None),
        (1, "toolu_b"),
        (1, None),
    ]


def test_finishes_an_anthropic_stream_that_ended_early_with_stop() -> None:
    stream = AnthropicToOpenAIStream(
        completion_id="chatcmpl-1", model="m", created=1, include_usage=True
    )
    stream.feed("message_start", anthropic_tool_stream()[0][1])
    stream.feed(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )

    chunks = stream.finish()

    assert stream.error == {"type": "overloaded_error", "message": "Overloaded"}
    assert chunks[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[1]["usage"]["prompt_tokens"] == 125
    assert stream.finish() == []


# --- official SDK accumulators


def sse_response(body: str) -> httpx2.Response:
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=body.encode()
    )


def anthropic_client(events: list[tuple[str, dict]]) -> anthropic.Anthropic:
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    transport = httpx2.MockTransport(lambda request: sse_response(body))
    return anthropic.Anthropic(
        api_key="test",
        base_url="http://upstream.test",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def openai_client(chunks: list[dict]) -> openai.OpenAI:
    body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    transport = httpx2.MockTransport(lambda request: sse_response(body))
    return openai.OpenAI(
        api_key="test",
        base_url="http://upstream.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def test_anthropic_sdk_stream_helper_accumulates_translated_events() -> None:
    # Given Anthropic events translated from an OpenAI tool stream
    _, events = run_openai_to_anthropic(openai_tool_stream(), input_tokens_hint=118)
    client = anthropic_client(events)

    # When the official SDK's stream helper consumes them
    with client.messages.stream(model="m", max_tokens=10, messages=[user("Hi")]) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()

    # Then it rebuilds the whole message
    assert texts == ["Let me ", "check."]
    assert message.id == "msg_1"
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Let me check."
    assert (message.content[1].id, message.content[1].input) == ("call_1", {"city": "Paris"})
    assert (message.content[2].id, message.content[2].input) == ("call_2", {"city": "Rome"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 30)
    assert message.usage.cache_read_input_tokens == 100


def test_openai_sdk_stream_helper_accumulates_translated_chunks() -> None:
    # Given OpenAI chunks translated from an Anthropic tool stream
    _, chunks = run_anthropic_to_openai(anthropic_tool_stream(), include_usage=True)
    client = openai_client(chunks)

    # When the official SDK's stream helper consumes them
    with client.chat.completions.stream(
        model="m", messages=[user("Hi")], tools=[OPENAI_WEATHER_TOOL]
    ) as stream:
        event_types = [event.type for event in stream]
        completion = stream.get_final_completion()

    # Then it rebuilds the whole completion, usage included
    choice = completion.choices[0]
    assert completion.id == "chatcmpl-1"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Let me check."
    assert choice.finish_reason == "tool_calls"
    assert len(choice.message.tool_calls) == 1
    tool_call = choice.message.tool_calls[0]
    assert (tool_call.id, tool_call.function.name) == ("toolu_1", "get_weather")
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert completion.usage.prompt_tokens == 125
    assert completion.usage.prompt_tokens_details.cached_tokens == 100
    assert "tool_calls.function.arguments.done" in event_types
    assert "content.done" in event_types


def test_sdks_accept_a_stream_translated_there_and_back() -> None:
    # Given an OpenAI stream translated to Anthropic and back to OpenAI
    _, events = run_openai_to_anthropic(openai_tool_stream())
    back = AnthropicToOpenAIStream(
        completion_id="chatcmpl-rt", model="gpt-4o", created=1, include_usage=True
    )
    chunks = [chunk for name, data in events for chunk in back.feed(name, data)] + back.finish()

    # When the OpenAI SDK accumulates it
    with openai_client(chunks).chat.completions.stream(model="m", messages=[user("Hi")]) as stream:
        completion = stream.get_final_completion()

    # Then content, both tool calls and usage survive
    message = completion.choices[0].message
    assert message.content == "Let me check."
    assert [(c.id, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("call_1", {"city": "Paris"}),
        ("call_2", {"city": "Rome"}),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage.to_dict() == {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
