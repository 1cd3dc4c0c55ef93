"""The /v1 API as an OpenAPI 3.1 document, kept by hand beside the code it describes.

Guarantees (tests/gateway/test_openapi.py holds each one):
- every /v1 route and method of `clawwits.urls` is documented, and nothing that is not routed;
- the chat, messages and embeddings request schemas list exactly the fields
  `gateway.validation` accepts, and refuse any other (`additionalProperties: false`);
- every operation lists each error status of DESIGN.md §5 it can answer, with the envelope its
  endpoint speaks (Anthropic's on /v1/messages, OpenAI's elsewhere), and every `code` value;
- each operation's security names the key scopes its view requires (OpenAPI 3.1 role names);
- every `$ref` resolves inside the document.

The document is a plain dict built once at import; `GET /v1/openapi.json` serves it to anyone
(no credentials, no rate limit: it holds nothing that is not public).
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clawwits.errors import Code
from gateway import validation

JSON = "application/json"
SSE = "text/event-stream"
SESSION_COOKIE = "cw_access"  # settings.JWT_ACCESS_COOKIE; a test keeps the two equal

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    closed: bool = False,
    description: str | None = None,
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def _str(description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


def _int(description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", **extra}
    if description:
        schema["description"] = description
    return schema


def _num(minimum: float, maximum: float, description: str | None = None) -> Schema:
    schema: Schema = {"type": "number", "minimum": minimum, "maximum": maximum}
    if description:
        schema["description"] = description
    return schema


BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}
NULLABLE_STR: Schema = {"type": ["string", "null"]}
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP: Schema = {"type": ["string", "null"], "format": "date-time"}
TOOL_NAME: Schema = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}


# --- Errors ----------------------------------------------------------------------------------

CODES = [str(code) for code in Code]

# Which codes each status can carry; descriptions say when (DESIGN.md §5).
STATUS_CODES: dict[int, tuple[str, ...]] = {
    400: ("invalid_request", "isv_blocked"),
    401: ("unauthorized",),
    402: ("insufficient_wits",),
    403: ("forbidden", "insufficient_scope"),
    404: ("not_found",),
    405: ("method_not_allowed",),
    413: ("request_too_large",),
    429: ("rate_limited",),
    500: ("internal_error",),
    502: ("router_error",),
    503: ("service_unavailable",),
}
STATUS_TEXT: dict[int, str] = {
    400: "invalid_request: missing or malformed body, a bad field (`param` names it), an unknown "
    "field, a value over a limit; isv_blocked: prompt injection or banned content (AI routes).",
    401: "unauthorized: missing, malformed, unknown, revoked or expired credentials. Every such "
    "401 body is byte-identical.",
    402: "insufficient_wits: the balance cannot cover the reservation; the message points to "
    "/pricing. Nothing is reserved or sent upstream.",
    403: "insufficient_scope: the API key lacks the scope this route requires; forbidden: not "
    "allowed (e.g. a cookie session without its CSRF token on an unsafe method).",
    404: "not_found: unknown model, or an object that does not exist or belongs to someone else.",
    405: "method_not_allowed.",
    413: "request_too_large: the body is larger than API_MAX_BODY_BYTES (4 MiB by default); "
    "refused before it is read or authenticated.",
    429: "rate_limited: over the account's (or the key's own) requests per rolling minute. "
    "`retry-after-ms` and `Retry-After` headers, `retryAfterMs` in the body.",
    500: "internal_error: an unexpected fault; the message carries only an incident id.",
    502: "router_error: every upstream route failed before sending anything. Nothing is charged.",
    503: "service_unavailable: rate limiting cannot be checked (Redis unreachable), so requests "
    "are refused for now; retry shortly (`Retry-After: 1`).",
}

OPENAI_ERROR = _obj(
    {
        "error": _obj(
            {
                "code": {"type": "string", "enum": CODES},
                "type": _str("The category OpenAI's SDKs read, e.g. invalid_request_error."),
                "message": _str(),
                "param": {
                    "type": ["string", "null"],
                    "description": "The offending field, when one is to blame.",
                },
                "retryAfterMs": _int("On 429: milliseconds until a retry would be admitted."),
            },
            required=("code", "type", "message", "param"),
        ),
        "retryAfterMs": _int("On 429 only, repeated at the top level.", minimum=1),
    },
    required=("error",),
    description="The error body of every route except /v1/messages.",
)
ANTHROPIC_ERROR = _obj(
    {
        "type": {"const": "error"},
        "error": _obj(
            {
                "type": _str("Anthropic's error type, e.g. invalid_request_error."),
                "message": _str(),
                "code": {"type": "string", "enum": CODES},
                "retryAfterMs": _int("On 429: milliseconds until a retry would be admitted."),
            },
            required=("type", "message", "code"),
        ),
        "retryAfterMs": _int("On 429 only, repeated at the top level.", minimum=1),
    },
    required=("type", "error"),
    description="The error body of /v1/messages: Anthropic's envelope, ClawWits' code kept.",
)

HEADERS: dict[str, Schema] = {
    "RateLimitLimit": {
        "description": "The limit (requests per rolling 60 s) of the window that binds: the "
        "account's, or the key's own lower one.",
        "schema": _int(minimum=1),
    },
    "RateLimitRemaining": {
        "description": "Requests still admissible now in that window.",
        "schema": _int(minimum=0),
    },
    "RateLimitReset": {
        "description": "Time until the window is empty again, in Go duration format "
        "(`59.998s`, `1m0s`).",
        "schema": _str(),
    },
    "RetryAfterMs": {
        "description": "On 429: milliseconds until a retry would be admitted (>= 1).",
        "schema": _int(minimum=1),
    },
    "RetryAfter": {
        "description": "On 429: the same wait in whole seconds, rounded up (>= 1); on 503: 1.",
        "schema": _int(minimum=1),
    },
}
LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": {"$ref": "#/components/headers/RateLimitLimit"},
    "x-ratelimit-remaining-requests": {"$ref": "#/components/headers/RateLimitRemaining"},
    "x-ratelimit-reset-requests": {"$ref": "#/components/headers/RateLimitReset"},
}


def _error_responses() -> dict[str, Schema]:
    """One reusable response per (status, envelope): `Error429`, `AnthropicError429`..."""
    responses: dict[str, Schema] = {}
    for status, text in STATUS_TEXT.items():
        for prefix, schema in (("Error", "OpenAIError"), ("AnthropicError", "AnthropicError")):
            response: Schema = {
                "description": text,
                "content": {JSON: {"schema": _ref(schema)}},
            }
            headers: dict[str, Schema] = {}
            if status == 429:
                headers = {
                    **LIMIT_HEADERS,
                    "retry-after-ms": {"$ref": "#/components/headers/RetryAfterMs"},
                    "Retry-After": {"$ref": "#/components/headers/RetryAfter"},
                }
            elif status == 503:
                headers = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
            elif status not in (401, 413):
                # Answered after the rate-limit check, so the window's headers ride along.
                headers = dict(LIMIT_HEADERS)
            if headers:
                response["headers"] = headers
            responses[f"{prefix}{status}"] = response
    return responses


# --- Shared pieces of the AI formats ------------------------------------------------------------

X_CLAWWITS = _obj(
    {
        "provider": _str("The provider that answered (or cached the answer)."),
        "cached": BOOL,
        "ttft_ms": _int("Milliseconds until the first byte from the upstream."),
        "wits": _int("Wits charged for this call.", minimum=0),
        "request_id": _str(),
    },
    required=("provider", "cached", "ttft_ms"),
    description="Added by ClawWits; in streams, on the final event before the end.",
)

# --- OpenAI chat completions -------------------------------------------------------------------

CONTENT_PART = _obj(
    {
        "type": {"type": "string", "enum": ["text", "image_url", "input_audio", "file", "refusal"]},
        "text": _str(),
        "refusal": _str(),
        "image_url": _obj({"url": _str("An https URL or a data: URL."), "detail": _str()}),
        "input_audio": ANY_OBJECT,
        "file": ANY_OBJECT,
    },
    required=("type",),
)
TOOL_CALL = _obj(
    {
        "id": _str(),
        "type": {"const": "function"},
        "function": _obj(
            {"name": _str(), "arguments": _str("JSON text.")}, required=("name", "arguments")
        ),
    },
    required=("id", "function"),
)
CHAT_MESSAGE = _obj(
    {
        "role": {
            "type": "string",
            "enum": ["system", "developer", "user", "assistant", "tool", "function"],
        },
        "content": {
            "description": "Required except on assistant and function messages. Each text is at "
            "most API_MAX_TEXT_CHARS characters (1,000,000 by default).",
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": _ref("ChatContentPart")},
                {"type": "null"},
            ],
        },
        "name": _str(),
        "tool_calls": {"type": "array", "items": _ref("ChatToolCall")},
        "tool_call_id": _str("Required on tool messages."),
        "refusal": NULLABLE_STR,
    },
    required=("role",),
)
OPENAI_TOOL = _obj(
    {
        "type": {"const": "function"},
        "function": _obj(
            {
                "name": TOOL_NAME,
                "description": _str(),
                "parameters": {**ANY_OBJECT, "description": "A JSON Schema object."},
                "strict": BOOL,
            },
            required=("name",),
        ),
    },
    required=("type", "function"),
)
MAX_TOKENS_TEXT = (
    "Output cap; at most the model's max_output_tokens (GET /v1/models, "
    "x_clawwits.max_output_tokens), else 400. Default: that maximum. The reservation covers it."
)
CHAT_REQUEST = _obj(
    {
        "model": _str(
            'A model id from GET /v1/models, or "auto" (the default): the cheapest healthy route.',
            minLength=1,
            maxLength=200,
            default="auto",
        ),
        "messages": {
            "type": "array",
            "items": _ref("ChatMessage"),
            "minItems": 1,
            "description": "At most API_MAX_MESSAGES messages (2048 by default).",
        },
        "max_tokens": _int(MAX_TOKENS_TEXT, minimum=1),
        "max_completion_tokens": _int(MAX_TOKENS_TEXT + " Wins over max_tokens.", minimum=1),
        "temperature": _num(0, 2),
        "top_p": _num(0, 1),
        "n": {"const": 1, "description": "Only 1 is supported."},
        "stream": BOOL,
        "stream_options": _obj(
            {"include_usage": BOOL},
            description="Only with stream: true. The usage chunk is sent when include_usage is "
            "true.",
        ),
        "stop": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "maxItems": 4,
                },
                {"type": "null"},
            ]
        },
        "tools": {"type": "array", "items": _ref("ChatTool"), "maxItems": 256},
        "tool_choice": {
            "oneOf": [
                {"type": "string", "enum": ["none", "auto", "required"]},
                _obj(
                    {
                        "type": {"const": "function"},
                        "function": _obj({"name": _str()}, required=("name",)),
                    },
                    required=("function",),
                ),
            ]
        },
        "parallel_tool_calls": BOOL,
        "response_format": _obj(
            {
                "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
                "json_schema": ANY_OBJECT,
            },
            required=("type",),
        ),
        "user": _str(maxLength=512),
        "seed": _int(minimum=-(2**63)),
        "frequency_penalty": _num(-2, 2),
        "presence_penalty": _num(-2, 2),
        "logit_bias": {"type": "object", "additionalProperties": {"type": "number"}},
        "logprobs": BOOL,
        "top_logprobs": _int(minimum=0, maximum=20),
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "store": BOOL,
        "service_tier": _str(),
        "reasoning_effort": _str(),
        "modalities": {"type": "array", "items": {"type": "string"}},
        "prediction": ANY_OBJECT,
        "audio": ANY_OBJECT,
        "web_search_options": ANY_OBJECT,
        "safety_identifier": _str(),
        "prompt_cache_key": _str(),
        "verbosity": _str(),
    },
    required=("messages",),
    closed=True,
    description="OpenAI Chat Completions. Any other field is refused with 400 (`Unrecognized "
    "request argument supplied`), so nothing unknown reaches an upstream. Fields the chosen "
    "upstream does not speak are translated or dropped.",
)
OPENAI_USAGE = _obj(
    {
        "prompt_tokens": _int(minimum=0),
        "completion_tokens": _int(minimum=0),
        "total_tokens": _int(minimum=0),
        "prompt_tokens_details": _obj({"cached_tokens": _int(minimum=0)}),
    },
    required=("prompt_tokens", "completion_tokens", "total_tokens"),
)
CHAT_COMPLETION = _obj(
    {
        "id": _str(),
        "object": {"const": "chat.completion"},
        "created": _int(),
        "model": _str("The model that served the call."),
        "choices": {
            "type": "array",
            "items": _obj(
                {
                    "index": _int(minimum=0),
                    "message": _obj(
                        {
                            "role": {"const": "assistant"},
                            "content": NULLABLE_STR,
                            "refusal": NULLABLE_STR,
                            "tool_calls": {"type": "array", "items": _ref("ChatToolCall")},
                        },
                        required=("role",),
                    ),
                    "finish_reason": {
                        "type": ["string", "null"],
                        "enum": ["stop", "length", "tool_calls", "content_filter", None],
                    },
                    "logprobs": {"type": ["object", "null"]},
                },
                required=("index", "message", "finish_reason"),
            ),
        },
        "usage": _ref("OpenAIUsage"),
        "x_clawwits": _ref("XClawwits"),
    },
    required=("id", "object", "created", "model", "choices", "usage", "x_clawwits"),
)
CHAT_CHUNK = _obj(
    {
        "id": _str(),
        "object": {"const": "chat.completion.chunk"},
        "created": _int(),
        "model": _str(),
        "choices": {"type": "array", "items": ANY_OBJECT},
        "usage": {"oneOf": [_ref("OpenAIUsage"), {"type": "null"}]},
        "x_clawwits": _ref("XClawwits"),
    },
    required=("id", "object", "choices"),
    description="One `data:` line of a chat stream; the stream ends with `data: [DONE]`. The "
    "usage chunk (choices: []) comes only with stream_options.include_usage; x_clawwits rides "
    "on the last chunk before [DONE]. An upstream failing mid-stream ends the stream with "
    '`data: {"error": {...}}` (code router_error).',
)

# --- Anthropic messages ------------------------------------------------------------------------

CONTENT_BLOCK = _obj(
    {
        "type": {
            "type": "string",
            # The block types the gateway accepts: the validator's own list, not a copy of it.
            "enum": sorted(validation.ANTHROPIC_BLOCK_TYPES),
        },
        "text": _str(),
        "source": _obj(
            {"type": _str(), "media_type": _str(), "data": _str(), "url": _str()},
            description="Required on image and document blocks.",
        ),
        "id": _str("tool_use: required."),
        "name": _str("tool_use: required."),
        "input": ANY_OBJECT,
        "tool_use_id": _str("tool_result: required."),
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": ANY_OBJECT}]},
        "is_error": BOOL,
        "cache_control": ANY_OBJECT,
    },
    required=("type",),
)
ANTHROPIC_MESSAGE = _obj(
    {
        "role": {"type": "string", "enum": ["user", "assistant"]},
        "content": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": _ref("ContentBlock")}]
        },
    },
    required=("role", "content"),
)
ANTHROPIC_TOOL = _obj(
    {
        "type": _str('"custom" (the default) or a server tool type.'),
        "name": _str("Custom tools: ^[a-zA-Z0-9_-]{1,64}$."),
        "description": _str(),
        "input_schema": {**ANY_OBJECT, "description": "Required on custom tools."},
    },
    required=("name",),
)
MESSAGES_REQUEST = _obj(
    {
        "model": _str('A model id, or "auto" (the default).', minLength=1, maxLength=200),
        "messages": {
            "type": "array",
            "items": _ref("AnthropicMessage"),
            "minItems": 1,
            "description": "At most API_MAX_MESSAGES messages (2048 by default).",
        },
        "max_tokens": _int(MAX_TOKENS_TEXT.replace(" Default: that maximum.", ""), minimum=1),
        "system": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": _obj(
                        {"type": {"const": "text"}, "text": _str(), "cache_control": ANY_OBJECT},
                        required=("type", "text"),
                    ),
                },
            ]
        },
        "temperature": _num(0, 1),
        "top_p": _num(0, 1),
        "top_k": _int(minimum=0),
        "stop_sequences": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "maxItems": 64,
        },
        "stream": BOOL,
        "tools": {"type": "array", "items": _ref("AnthropicTool"), "maxItems": 256},
        "tool_choice": _obj(
            {
                "type": {"type": "string", "enum": ["auto", "any", "tool", "none"]},
                "name": _str("Required when type is tool."),
                "disable_parallel_tool_use": BOOL,
            },
            required=("type",),
        ),
        "metadata": ANY_OBJECT,
        "thinking": ANY_OBJECT,
        "service_tier": _str(),
        "output_config": ANY_OBJECT,
        "container": {"type": ["string", "object", "null"]},
        "mcp_servers": {"type": "array", "items": ANY_OBJECT},
        "context_management": ANY_OBJECT,
    },
    required=("messages", "max_tokens"),
    closed=True,
    description="Anthropic Messages. Any other field is refused with 400.",
)
ANTHROPIC_USAGE = _obj(
    {
        "input_tokens": _int(minimum=0),
        "output_tokens": _int(minimum=0),
        "cache_read_input_tokens": _int(minimum=0),
        "cache_creation_input_tokens": _int(minimum=0),
    },
    required=("input_tokens", "output_tokens"),
)
MESSAGE = _obj(
    {
        "id": _str("msg_..."),
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": _str(),
        "content": {"type": "array", "items": _ref("ContentBlock")},
        "stop_reason": {
            "type": ["string", "null"],
            "enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", None],
        },
        "stop_sequence": NULLABLE_STR,
        "usage": _ref("AnthropicUsage"),
        "x_clawwits": _ref("XClawwits"),
    },
    required=("id", "type", "role", "content", "stop_reason", "usage", "x_clawwits"),
)
MESSAGE_EVENT = _obj(
    {
        "type": {
            "type": "string",
            "enum": [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "ping",
                "error",
            ],
        }
    },
    required=("type",),
    description="The `data:` of one Messages stream event (`event:` names the same type): "
    "message_start, content blocks, message_delta (usage), message_stop. x_clawwits rides on "
    "the message_delta. An upstream failing mid-stream ends the stream with an `error` event.",
)

# --- Embeddings, models, Wits ------------------------------------------------------------------

EMBEDDINGS_REQUEST = _obj(
    {
        "model": _str('A model id, or "auto" (the default).', minLength=1, maxLength=200),
        "input": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                    "description": "At most API_MAX_EMBEDDING_INPUTS items (2048 by default); "
                    "token arrays are not supported.",
                },
            ]
        },
        "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
        "dimensions": {"const": 1024, "description": "Every vector has 1024 dimensions."},
        "user": _str(maxLength=512),
    },
    required=("input",),
    closed=True,
)
EMBEDDINGS = _obj(
    {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": _obj(
                {
                    "object": {"const": "embedding"},
                    "index": _int(minimum=0),
                    "embedding": {
                        "oneOf": [
                            {
                                "type": "array",
                                "items": {"type": "number"},
                                "minItems": 1024,
                                "maxItems": 1024,
                            },
                            _str("base64 of 1024 little-endian float32 values."),
                        ],
                        "description": "L2 norm 1.",
                    },
                },
                required=("object", "index", "embedding"),
            ),
        },
        "model": _str(),
        "usage": _obj(
            {"prompt_tokens": _int(minimum=0), "total_tokens": _int(minimum=0)},
            required=("prompt_tokens", "total_tokens"),
        ),
        "x_clawwits": _ref("XClawwits"),
    },
    required=("object", "data", "model", "usage"),
)
MODEL_LIST = _obj(
    {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": _obj(
                {
                    "id": _str(),
                    "object": {"const": "model"},
                    "created": _int(),
                    "owned_by": _str(),
                    "x_clawwits": _obj(
                        {
                            "kind": {"type": "string", "enum": ["chat", "embedding"]},
                            "input_price": _str("Wits per input token (decimal)."),
                            "output_price": _str("Wits per output token (decimal)."),
                            "cache_read_price": _str("Wits per cached input token (decimal)."),
                            "max_output_tokens": _int(minimum=0),
                            "auto": BOOL,
                        }
                    ),
                },
                required=("id", "object", "created", "owned_by"),
            ),
        },
    },
    required=("object", "data"),
    description="OpenAI's list format (the default).",
)
ANTHROPIC_MODEL_LIST = _obj(
    {
        "data": {
            "type": "array",
            "items": _obj(
                {
                    "type": {"const": "model"},
                    "id": _str(),
                    "display_name": _str(),
                    "created_at": TIMESTAMP,
                },
                required=("type", "id", "display_name", "created_at"),
            ),
        },
        "has_more": BOOL,
        "first_id": NULLABLE_STR,
        "last_id": NULLABLE_STR,
    },
    required=("data", "has_more"),
    description="Anthropic's list format, when the request carries `anthropic-version`.",
)
BALANCE = _obj(
    {
        "userId": _str(format="uuid"),
        "available": _int("Wits not reserved.", minimum=0),
        "reserved": _int("Wits held by calls in flight.", minimum=0),
        "lifetimeUsed": _int(minimum=0),
    },
    required=("userId", "available", "reserved", "lifetimeUsed"),
)
TRANSACTION = _obj(
    {
        "id": _int(),
        "object": {"const": "wits.transaction"},
        "kind": _str(),
        "amount": _int(),
        "available_delta": _int(),
        "reserved_delta": _int(),
        "used_delta": _int(),
        "available_after": _int(),
        "reserved_after": _int(),
        "lifetime_used_after": _int(),
        "reservation_id": {"type": ["string", "null"], "format": "uuid"},
        "order_id": {"type": ["string", "null"], "format": "uuid"},
        "note": _str(),
        "created_at": TIMESTAMP,
    },
    required=("id", "object", "kind", "amount", "created_at"),
)
TRANSACTION_LIST = _obj(
    {
        "object": {"const": "list"},
        "data": {"type": "array", "items": _ref("Transaction")},
        "first_id": {"type": ["integer", "null"]},
        "last_id": {"type": ["integer", "null"]},
        "has_more": BOOL,
    },
    required=("object", "data", "has_more"),
)

# --- Usage -------------------------------------------------------------------------------------

USAGE_RECORD = _obj(
    {
        "id": _int(),
        "object": {"const": "usage.record"},
        "request_id": _str(),
        "created_at": TIMESTAMP,
        "key_id": {"type": ["string", "null"], "format": "uuid"},
        "key_name": NULLABLE_STR,
        "endpoint": _str("chat, messages or embeddings."),
        "model": _str(),
        "provider": _str(),
        "stream": BOOL,
        "cached": BOOL,
        "prompt_tokens": _int(minimum=0),
        "completion_tokens": _int(minimum=0),
        "cache_read_tokens": _int(minimum=0),
        "wits": _int("Wits charged.", minimum=0),
        "ttft_ms": {"type": ["integer", "null"]},
        "latency_ms": {"type": ["integer", "null"]},
        "status": _int("The HTTP status the call ended with."),
        "error_code": {"type": ["string", "null"]},
        "settle_reason": NULLABLE_STR,
    },
    required=("id", "object", "request_id", "created_at", "model", "status", "wits"),
)
USAGE_LIST = _obj(
    {
        "object": {"const": "list"},
        "data": {"type": "array", "items": _ref("UsageRecord")},
        "first_id": {"type": ["integer", "null"]},
        "last_id": {"type": ["integer", "null"]},
        "has_more": BOOL,
    },
    required=("object", "data", "has_more"),
)
USAGE_TOTALS = _obj(
    {
        "requests": _int(minimum=0),
        "prompt_tokens": _int(minimum=0),
        "completion_tokens": _int(minimum=0),
        "wits": _int(minimum=0),
    },
    required=("requests", "prompt_tokens", "completion_tokens", "wits"),
)
USAGE_SUMMARY = _obj(
    {
        "object": {"const": "usage.summary"},
        "group_by": {"type": "string", "enum": ["day", "model", "key"]},
        "from": TIMESTAMP,
        "to": TIMESTAMP,
        "data": {
            "type": "array",
            "items": {
                "allOf": [_ref("UsageTotals")],
                "description": "Totals plus the group: `day` (ISO date), `model`, or "
                "`key_id` and `key_name`.",
            },
        },
        "total": _ref("UsageTotals"),
    },
    required=("object", "group_by", "from", "to", "data", "total"),
)

# --- Keys, webhooks ----------------------------------------------------------------------------

SCOPES = ["full", "ai", "data", "automation"]
API_KEY = _obj(
    {
        "id": _str(format="uuid"),
        "object": {"const": "api_key"},
        "name": _str(),
        "prefix": _str("The visible prefix, e.g. cw_sk_AbCd1234."),
        "scopes": {"type": "array", "items": {"type": "string", "enum": SCOPES}},
        "rate_limit_rpm": {"type": ["integer", "null"]},
        "state": _str(),
        "created_at": TIMESTAMP,
        "last_used_at": NULLABLE_TIMESTAMP,
        "revoked_at": NULLABLE_TIMESTAMP,
        "expires_at": NULLABLE_TIMESTAMP,
    },
    required=("id", "object", "name", "prefix", "scopes", "state", "created_at"),
)
API_KEY_CREATED = {
    "allOf": [
        _ref("ApiKey"),
        _obj(
            {"key": _str("The plaintext key: shown in this response only, never again.")},
            required=("key",),
        ),
    ]
}
API_KEY_LIST = _obj(
    {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("ApiKey")}},
    required=("object", "data"),
)
CREATE_KEY = _obj(
    {
        "name": _str("1-100 characters, no control characters."),
        "scopes": {
            "oneOf": [
                {"type": "array", "items": {"type": "string", "enum": SCOPES}, "minItems": 1},
                _str('Comma-separated, e.g. "ai,data".'),
            ],
            "default": ["ai"],
            "description": "Never more than the calling key holds.",
        },
        "rate_limit_rpm": {
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "The key's own requests per minute, below the account's.",
        },
    },
    required=("name",),
)
RENAME_KEY = _obj({"name": _str()}, required=("name",))
ROTATE_KEY = _obj(
    {
        "grace_seconds": _int(
            "How long the old key keeps working; 0 revokes it at once.", minimum=0, default=0
        )
    }
)
WEBHOOK_EVENT = _obj(
    {
        "id": _str(),
        "object": {"const": "webhook_event"},
        "type": {"type": "string", "enum": ["low_balance", "topup.credited", "webhook.test"]},
        "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": _int(minimum=0),
        "last_status": {"type": ["integer", "null"]},
        "last_error": NULLABLE_STR,
        "created_at": TIMESTAMP,
        "last_attempt_at": NULLABLE_TIMESTAMP,
        "next_attempt_at": NULLABLE_TIMESTAMP,
        "delivered_at": NULLABLE_TIMESTAMP,
        "payload": {**ANY_OBJECT, "description": "The signed JSON body (single-event reads)."},
    },
    required=("id", "object", "type", "state", "attempts", "created_at"),
)
WEBHOOK_ENDPOINT = _obj(
    {
        "object": {"const": "webhook_endpoint"},
        "url": _str('"" when none is set.'),
        "secret_set": BOOL,
        "low_balance_threshold": _int(minimum=0),
        "recent_events": {"type": "array", "items": _ref("WebhookEvent")},
        "secret": _str(
            "The signing secret: only in the response that generated it (the first URL)."
        ),
    },
    required=("object", "url", "secret_set", "low_balance_threshold", "recent_events"),
)
UPDATE_WEBHOOK = _obj(
    {
        "url": _str('A public https URL; "" clears it.'),
        "low_balance_threshold": {"type": ["integer", "null"], "minimum": 0},
    },
    required=("url",),
)


# --- Operations --------------------------------------------------------------------------------

# Security alternatives per required scope set. A key passes when it holds one of the scopes
# (role names, as OpenAPI 3.1 allows for non-OAuth schemes); `full` passes everything, and a
# session (JWT in the header or the cookie) acts with `full`.
KEY_SCHEMES = ("ApiKeyBearer", "ApiKeyHeader")
SESSION_SCHEMES = ("SessionBearer", "SessionCookie")


def _security(scopes: tuple[str, ...]) -> list[dict[str, list[str]]]:
    if not scopes:
        return [{scheme: []} for scheme in KEY_SCHEMES + SESSION_SCHEMES]
    alternatives = [{s: [scope]} for s in KEY_SCHEMES for scope in (*scopes, "full")]
    return alternatives + [{scheme: []} for scheme in SESSION_SCHEMES]


def _body(schema: str, *, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": _ref(schema)}}}


def _ok(description: str, content: dict[str, Schema], *, headers: bool = True) -> Schema:
    response: Schema = {"description": description, "content": content}
    if headers:
        response["headers"] = dict(LIMIT_HEADERS)
    return response


def _json(schema: str) -> dict[str, Schema]:
    return {JSON: {"schema": _ref(schema)}}


def _op(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    scopes: tuple[str, ...] | None,
    success: dict[str, Schema],
    errors: tuple[int, ...],
    anthropic: bool = False,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
    description: str | None = None,
) -> Schema:
    """One operation. `scopes` None: public (no credentials, no rate limit)."""
    prefix = "AnthropicError" if anthropic else "Error"
    responses: dict[str, Schema] = dict(success)
    for status in errors:
        responses[str(status)] = {"$ref": f"#/components/responses/{prefix}{status}"}
    op: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": responses,
        "security": [] if scopes is None else _security(scopes),
    }
    if scopes:
        op["x-required-scopes"] = [*scopes, "full"]
    if description:
        op["description"] = description
    if body is not None:
        op["requestBody"] = body
    if parameters:
        op["parameters"] = parameters
    return op


# Errors every authenticated route may answer, in order: credentials, limiter down, fault.
AUTHED = (401, 429, 500, 503)
SCOPED = (*AUTHED, 403)
WITH_BODY = (400, 413)
AI_ERRORS = (*SCOPED, *WITH_BODY, 402, 404, 502)

USAGE_FILTERS: list[Schema] = [
    {
        "name": "key",
        "in": "query",
        "schema": _str(format="uuid"),
        "description": "Only calls made with this API key.",
    },
    {"name": "model", "in": "query", "schema": _str(maxLength=200)},
    {
        "name": "status",
        "in": "query",
        "schema": _str(),
        "description": "`ok`, `error` or an HTTP status code (100-599).",
    },
    {
        "name": "from",
        "in": "query",
        "schema": _str(),
        "description": "ISO date or datetime, inclusive.",
    },
    {
        "name": "to",
        "in": "query",
        "schema": _str(),
        "description": "ISO date or datetime, exclusive; a bare date includes that day.",
    },
    {
        "name": "request",
        "in": "query",
        "schema": _str(pattern="^[A-Za-z0-9_-]{1,64}$"),
        "description": "Only the call with this request id (`x_clawwits.request_id`).",
    },
]
KEY_ID = {
    "name": "key_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
EVENT_ID = {"name": "event_id", "in": "path", "required": True, "schema": _str()}
ANTHROPIC_VERSION = {
    "name": "anthropic-version",
    "in": "header",
    "required": False,
    "schema": _str(),
    "description": "Accepted for Anthropic SDK compatibility; on /v1/models it selects "
    "Anthropic's list format.",
}

PATHS: dict[str, dict[str, Schema]] = {
    "/v1/chat/completions": {
        "post": _op(
            "createChatCompletion",
            "OpenAI Chat Completions, routed to any upstream",
            tag="AI",
            scopes=("ai",),
            body=_body("ChatCompletionRequest"),
            success={
                "200": _ok(
                    "The completion (JSON), or with stream: true an SSE stream whose headers "
                    "(rate-limit ones included) leave before the first event.",
                    {
                        JSON: {"schema": _ref("ChatCompletion")},
                        SSE: {
                            "schema": _str(
                                "`data: <ChatCompletionChunk>` lines, then `data: [DONE]`."
                            ),
                            "x-event-schema": _ref("ChatCompletionChunk"),
                        },
                    },
                )
            },
            errors=AI_ERRORS,
            description="Reserves Wits for the prompt's upper bound plus the output cap, calls "
            "the first healthy route (failing over only before the first byte), then charges "
            "the real usage and returns the rest.",
        )
    },
    "/v1/messages": {
        "post": _op(
            "createMessage",
            "Anthropic Messages, routed to any upstream",
            tag="AI",
            scopes=("ai",),
            anthropic=True,
            body=_body("MessagesRequest"),
            parameters=[ANTHROPIC_VERSION],
            success={
                "200": _ok(
                    "The message (JSON), or with stream: true Anthropic's SSE event sequence.",
                    {
                        JSON: {"schema": _ref("Message")},
                        SSE: {
                            "schema": _str("`event: <type>` / `data: <MessageStreamEvent>`."),
                            "x-event-schema": _ref("MessageStreamEvent"),
                        },
                    },
                )
            },
            errors=AI_ERRORS,
        )
    },
    "/v1/embeddings": {
        "post": _op(
            "createEmbeddings",
            "Embeddings: 1024 floats of unit L2 norm per input",
            tag="AI",
            scopes=("ai",),
            body=_body("EmbeddingsRequest"),
            success={"200": _ok("The vectors.", _json("Embeddings"))},
            errors=AI_ERRORS,
        )
    },
    "/v1/models": {
        "get": _op(
            "listModels",
            "The models this caller may use",
            tag="AI",
            scopes=(),
            parameters=[ANTHROPIC_VERSION],
            success={
                "200": _ok(
                    "OpenAI's list format, or Anthropic's with `anthropic-version`.",
                    {JSON: {"schema": {"oneOf": [_ref("ModelList"), _ref("AnthropicModelList")]}}},
                )
            },
            errors=AUTHED,
        )
    },
    "/v1/wits/balance": {
        "get": _op(
            "getBalance",
            "The account's Wits balance",
            tag="Wits",
            scopes=(),
            success={"200": _ok("The balance.", _json("Balance"))},
            errors=AUTHED,
        )
    },
    "/v1/wits/transactions": {
        "get": _op(
            "listTransactions",
            "The account's ledger entries, newest first",
            tag="Wits",
            scopes=("data",),
            parameters=[
                {
                    "name": "limit",
                    "in": "query",
                    "schema": _int(minimum=1, maximum=100, default=20),
                },
                {
                    "name": "after",
                    "in": "query",
                    "schema": _int(minimum=0),
                    "description": "The last id of the previous page.",
                },
            ],
            success={"200": _ok("One page of entries.", _json("TransactionList"))},
            errors=(*SCOPED, 400),
        )
    },
    "/v1/usage": {
        "get": _op(
            "listUsage",
            "The account's request log, newest first",
            tag="Usage",
            scopes=("data",),
            parameters=[
                *USAGE_FILTERS,
                {
                    "name": "limit",
                    "in": "query",
                    "schema": _int(minimum=1, maximum=100, default=20),
                },
                {
                    "name": "after",
                    "in": "query",
                    "schema": _int(minimum=1),
                    "description": "The last_id of the previous page.",
                },
            ],
            success={"200": _ok("One page of calls.", _json("UsageList"))},
            errors=(*SCOPED, 400),
        )
    },
    "/v1/usage/summary": {
        "get": _op(
            "summarizeUsage",
            "Requests, tokens and Wits per day, model or key",
            tag="Usage",
            scopes=("data",),
            parameters=[
                {
                    "name": "group_by",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["day", "model", "key"], "default": "day"},
                },
                *USAGE_FILTERS,
            ],
            success={"200": _ok("The groups and their total.", _json("UsageSummary"))},
            errors=(*SCOPED, 400),
            description="Default range: the 30 days ending today; day grouping lists every "
            "day of the range, zeros included.",
        )
    },
    "/v1/keys": {
        "get": _op(
            "listKeys",
            "The account's API keys (prefixes only)",
            tag="Keys",
            scopes=("automation",),
            success={"200": _ok("The keys.", _json("ApiKeyList"))},
            errors=SCOPED,
        ),
        "post": _op(
            "createKey",
            "Create a key; its plaintext is in this response only",
            tag="Keys",
            scopes=("automation",),
            body=_body("CreateKeyRequest"),
            success={"201": _ok("The new key, with `key`.", _json("ApiKeyCreated"))},
            errors=(*SCOPED, *WITH_BODY),
        ),
    },
    "/v1/keys/{key_id}": {
        "get": _op(
            "getKey",
            "One of the account's keys",
            tag="Keys",
            scopes=("automation",),
            parameters=[KEY_ID],
            success={"200": _ok("The key.", _json("ApiKey"))},
            errors=(*SCOPED, 404),
        ),
        "patch": _op(
            "renameKey",
            "Rename a key",
            tag="Keys",
            scopes=("automation",),
            parameters=[KEY_ID],
            body=_body("RenameKeyRequest"),
            success={"200": _ok("The key.", _json("ApiKey"))},
            errors=(*SCOPED, *WITH_BODY, 404),
        ),
    },
    "/v1/keys/{key_id}/revoke": {
        "post": _op(
            "revokeKey",
            "Revoke a key now (idempotent)",
            tag="Keys",
            scopes=("automation",),
            parameters=[KEY_ID],
            success={"200": _ok("The revoked key.", _json("ApiKey"))},
            errors=(*SCOPED, 404),
        )
    },
    "/v1/keys/{key_id}/rotate": {
        "post": _op(
            "rotateKey",
            "Issue a successor; the old key stops after the grace period",
            tag="Keys",
            scopes=("automation",),
            parameters=[KEY_ID],
            body=_body("RotateKeyRequest", required=False),
            success={"201": _ok("The successor, with `key`.", _json("ApiKeyCreated"))},
            errors=(*SCOPED, *WITH_BODY, 404),
        )
    },
    "/v1/webhooks": {
        "get": _op(
            "getWebhook",
            "The account's webhook URL and recent events",
            tag="Webhooks",
            scopes=("automation",),
            success={"200": _ok("The endpoint.", _json("WebhookEndpoint"))},
            errors=SCOPED,
        ),
        "put": _op(
            "setWebhook",
            "Set or clear the webhook URL and the low-balance threshold",
            tag="Webhooks",
            scopes=("automation",),
            body=_body("UpdateWebhookRequest"),
            success={
                "200": _ok("The endpoint; `secret` on the first URL.", _json("WebhookEndpoint"))
            },
            errors=(*SCOPED, *WITH_BODY),
        ),
    },
    "/v1/webhooks/test": {
        "post": _op(
            "sendWebhookTest",
            "Queue a webhook.test event",
            tag="Webhooks",
            scopes=("automation",),
            success={"202": _ok("The queued event.", _json("WebhookEvent"))},
            errors=(*SCOPED, 400),
            description="400 without a webhook URL; 429 past the test-event allowance.",
        )
    },
    "/v1/webhooks/events/{event_id}": {
        "get": _op(
            "getWebhookEvent",
            "One webhook event, with its payload",
            tag="Webhooks",
            scopes=("automation",),
            parameters=[EVENT_ID],
            success={"200": _ok("The event.", _json("WebhookEvent"))},
            errors=(*SCOPED, 404),
        )
    },
    "/v1/openapi.json": {
        "get": _op(
            "getOpenApi",
            "This document",
            tag="Meta",
            scopes=None,
            success={
                "200": _ok(
                    "The OpenAPI 3.1 document.", {JSON: {"schema": ANY_OBJECT}}, headers=False
                )
            },
            errors=(),
            description="Public: no credentials, no rate limit.",
        )
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ClawWits API",
        "version": "1",
        "summary": "An LLM gateway speaking the OpenAI and Anthropic wire protocols, billed in "
        "prepaid Wits.",
        "description": "Authenticate with an API key (`Authorization: Bearer cw_sk_...` or "
        "`x-api-key: cw_sk_...`) or a session JWT (the header, or the `cw_access` cookie with "
        "CSRF protection on unsafe methods). Errors use OpenAI's envelope, except on "
        "/v1/messages, which uses Anthropic's; `code` is always one of ClawWits' codes. Every "
        "response after authentication carries x-ratelimit-limit-requests, "
        "x-ratelimit-remaining-requests and x-ratelimit-reset-requests. Any other /v1 path or "
        "method answers a JSON 404 or 405.",
    },
    "servers": [{"url": "/"}],
    "tags": [
        {"name": "AI", "description": "Model calls: scope ai (or full)."},
        {"name": "Wits", "description": "Balance (any credential) and ledger (data)."},
        {"name": "Usage", "description": "The request log and its totals: scope data."},
        {"name": "Keys", "description": "Key management: scope automation."},
        {"name": "Webhooks", "description": "Webhook settings and events: scope automation."},
        {"name": "Meta", "description": "This document."},
    ],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "ApiKeyBearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "cw_sk_ + 52 letters/digits",
                "description": "An API key. Role names in security requirements are the key "
                "scopes accepted (full always is).",
            },
            "ApiKeyHeader": {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "An API key, as Anthropic's SDKs send it.",
            },
            "SessionBearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A session token; acts with full scope for its own user.",
            },
            "SessionCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": SESSION_COOKIE,
                "description": "The web app's HttpOnly session cookie; unsafe methods also need "
                "the CSRF token (X-CSRFToken header).",
            },
        },
        "headers": HEADERS,
        "responses": _error_responses(),
        "schemas": {
            "OpenAIError": OPENAI_ERROR,
            "AnthropicError": ANTHROPIC_ERROR,
            "XClawwits": X_CLAWWITS,
            "ChatContentPart": CONTENT_PART,
            "ChatToolCall": TOOL_CALL,
            "ChatMessage": CHAT_MESSAGE,
            "ChatTool": OPENAI_TOOL,
            "ChatCompletionRequest": CHAT_REQUEST,
            "OpenAIUsage": OPENAI_USAGE,
            "ChatCompletion": CHAT_COMPLETION,
            "ChatCompletionChunk": CHAT_CHUNK,
            "ContentBlock": CONTENT_BLOCK,
            "AnthropicMessage": ANTHROPIC_MESSAGE,
            "AnthropicTool": ANTHROPIC_TOOL,
            "MessagesRequest": MESSAGES_REQUEST,
            "AnthropicUsage": ANTHROPIC_USAGE,
            "Message": MESSAGE,
            "MessageStreamEvent": MESSAGE_EVENT,
            "EmbeddingsRequest": EMBEDDINGS_REQUEST,
            "Embeddings": EMBEDDINGS,
            "ModelList": MODEL_LIST,
            "AnthropicModelList": ANTHROPIC_MODEL_LIST,
            "Balance": BALANCE,
            "Transaction": TRANSACTION,
            "TransactionList": TRANSACTION_LIST,
            "UsageRecord": USAGE_RECORD,
            "UsageList": USAGE_LIST,
            "UsageTotals": USAGE_TOTALS,
            "UsageSummary": USAGE_SUMMARY,
            "ApiKey": API_KEY,
            "ApiKeyCreated": API_KEY_CREATED,
            "ApiKeyList": API_KEY_LIST,
            "CreateKeyRequest": CREATE_KEY,
            "RenameKeyRequest": RENAME_KEY,
            "RotateKeyRequest": ROTATE_KEY,
            "WebhookEvent": WEBHOOK_EVENT,
            "WebhookEndpoint": WEBHOOK_ENDPOINT,
            "UpdateWebhookRequest": UPDATE_WEBHOOK,
        },
    },
}


class OpenApiView(APIView):
    """GET /v1/openapi.json: the document above, to anyone; other methods get a JSON 405."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request: Request) -> Response:
        response = Response(DOCUMENT)
        response["Cache-Control"] = "public, max-age=300"
        return response
