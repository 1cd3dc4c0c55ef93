"""Every client-visible error of ClawWits: one code enum, one status table, one renderer.

Domain code raises `ApiError(Code.X, "message")`; DRF hands every exception to
`exception_handler`, which renders the envelope the endpoint speaks:

- OpenAI-style endpoints: {"error": {"code", "type", "message", "param"}}
- /v1/messages (Anthropic): {"type": "error", "error": {"type", "message", "code"}}

Guarantees: no error body ever carries a stack trace, a secret or an upstream body verbatim;
an unexpected exception becomes a generic 500 `internal_error` with nothing but a request id.
"""

from __future__ import annotations

import logging
import math
import uuid
from enum import StrEnum

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf_exceptions

logger = logging.getLogger("clawwits.errors")


class Code(StrEnum):
    INVALID_REQUEST = "invalid_request"
    ISV_BLOCKED = "isv_blocked"
    UNAUTHORIZED = "unauthorized"
    INSUFFICIENT_WITS = "insufficient_wits"
    FORBIDDEN = "forbidden"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    ROUTER_ERROR = "router_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


STATUS: dict[Code, int] = {
    Code.INVALID_REQUEST: 400,
    Code.ISV_BLOCKED: 400,
    Code.UNAUTHORIZED: 401,
    Code.INSUFFICIENT_WITS: 402,
    Code.FORBIDDEN: 403,
    Code.INSUFFICIENT_SCOPE: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.REQUEST_TOO_LARGE: 413,
    Code.RATE_LIMITED: 429,
    Code.INTERNAL_ERROR: 500,
    Code.ROUTER_ERROR: 502,
    Code.SERVICE_UNAVAILABLE: 503,
}

# The `type` field each SDK switches on. OpenAI's SDK picks its exception class by status;
# Anthropic's by status too, but clients log the type, so it follows Anthropic's own names.
OPENAI_TYPE: dict[Code, str] = {
    Code.INVALID_REQUEST: "invalid_request_error",
    Code.ISV_BLOCKED: "invalid_request_error",
    Code.UNAUTHORIZED: "authentication_error",
    Code.INSUFFICIENT_WITS: "insufficient_quota",
    Code.FORBIDDEN: "permission_error",
    Code.INSUFFICIENT_SCOPE: "permission_error",
    Code.NOT_FOUND: "not_found_error",
    Code.METHOD_NOT_ALLOWED: "invalid_request_error",
    Code.REQUEST_TOO_LARGE: "invalid_request_error",
    Code.RATE_LIMITED: "rate_limit_error",
    Code.INTERNAL_ERROR: "api_error",
    Code.ROUTER_ERROR: "api_error",
    Code.SERVICE_UNAVAILABLE: "api_error",
}
ANTHROPIC_TYPE: dict[Code, str] = {
    Code.INVALID_REQUEST: "invalid_request_error",
    Code.ISV_BLOCKED: "invalid_request_error",
    Code.UNAUTHORIZED: "authentication_error",
    Code.INSUFFICIENT_WITS: "billing_error",
    Code.FORBIDDEN: "permission_error",
    Code.INSUFFICIENT_SCOPE: "permission_error",
    Code.NOT_FOUND: "not_found_error",
    Code.METHOD_NOT_ALLOWED: "invalid_request_error",
    Code.REQUEST_TOO_LARGE: "request_too_large",
    Code.RATE_LIMITED: "rate_limit_error",
    Code.INTERNAL_ERROR: "api_error",
    Code.ROUTER_ERROR: "api_error",
    Code.SERVICE_UNAVAILABLE: "overloaded_error",
}

DEFAULT_MESSAGE: dict[Code, str] = {
    Code.INVALID_REQUEST: "The request body is missing or malformed.",
    Code.ISV_BLOCKED: "The request was blocked by content screening.",
    Code.UNAUTHORIZED: "Missing or invalid credentials.",
    Code.INSUFFICIENT_WITS: "Not enough Wits for this request. Top up at /pricing.",
    Code.FORBIDDEN: "You are not allowed to do this.",
    Code.INSUFFICIENT_SCOPE: "This API key lacks the scope this endpoint requires.",
    Code.NOT_FOUND: "Not found.",
    Code.METHOD_NOT_ALLOWED: "Method not allowed.",
    Code.REQUEST_TOO_LARGE: "The request body is too large.",
    Code.RATE_LIMITED: "Rate limit reached. Retry after retryAfterMs milliseconds.",
    Code.INTERNAL_ERROR: "Internal error.",
    Code.ROUTER_ERROR: "Every upstream route failed.",
    Code.SERVICE_UNAVAILABLE: "Service temporarily unavailable.",
}


class ApiError(Exception):
    """A client-visible error: a code from `Code`, a safe message, and optional extras.

    `param` names the offending field; `headers` are added to the response; `extra` keys are
    merged into the error object (e.g. retryAfterMs).
    """

    def __init__(
        self,
        code: Code,
        message: str | None = None,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGE[code]
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return STATUS[self.code]


def rate_limited(retry_after_ms: int, headers: dict[str, str] | None = None) -> ApiError:
    """429 with the wait in all three forms clients read: header ms, header s, body ms."""
    wait_ms = max(1, int(retry_after_ms))
    all_headers = dict(headers or {})
    all_headers["retry-after-ms"] = str(wait_ms)
    all_headers["Retry-After"] = str(max(1, math.ceil(wait_ms / 1000)))
    return ApiError(
        Code.RATE_LIMITED,
        f"Rate limit reached. Retry after {wait_ms} ms.",
        headers=all_headers,
        extra={"retryAfterMs": wait_ms},
    )


def speaks_anthropic(path: str) -> bool:
    return path.rstrip("/") == "/v1/messages" or path.startswith("/v1/messages/")


def render(error: ApiError, *, path: str) -> JsonResponse:
    """The one place an error body is shaped."""
    if speaks_anthropic(path):
        body = {
            "type": "error",
            "error": {
                "type": ANTHROPIC_TYPE[error.code],
                "message": error.message,
                "code": str(error.code),
                **error.extra,
            },
        }
    else:
        body = {
            "error": {
                "code": str(error.code),
                "type": OPENAI_TYPE[error.code],
                "message": error.message,
                "param": error.param,
                **error.extra,
            }
        }
    if "retryAfterMs" in error.extra:
        body["retryAfterMs"] = error.extra["retryAfterMs"]
    response = JsonResponse(body, status=error.status, json_dumps_params={"ensure_ascii": False})
    for name, value in error.headers.items():
        response[name] = value
    return response


def _from_drf(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return ApiError(Code.UNAUTHORIZED)
    # django-ratelimit's Ratelimited subclasses PermissionDenied: check it first.
    if isinstance(exc, Ratelimited):
        return rate_limited(60_000)
    if isinstance(exc, drf_exceptions.PermissionDenied | DjangoPermissionDenied):
        return ApiError(Code.FORBIDDEN)
    if isinstance(exc, drf_exceptions.NotFound | Http404):
        return ApiError(Code.NOT_FOUND)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return ApiError(Code.METHOD_NOT_ALLOWED)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return ApiError(Code.INVALID_REQUEST, "Content-Type must be application/json.")
    if isinstance(exc, drf_exceptions.ParseError):
        return ApiError(Code.INVALID_REQUEST, "The request body is not valid JSON.")
    if isinstance(exc, drf_exceptions.ValidationError):
        return _from_validation(exc)
    if isinstance(exc, drf_exceptions.Throttled):
        return rate_limited(int((exc.wait or 1) * 1000))
    if isinstance(exc, drf_exceptions.APIException) and 400 <= exc.status_code < 500:
        return ApiError(Code.INVALID_REQUEST, "The request cannot be served as sent.")
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or its connection pool is exhausted: a retryable outage, not a
        # bug. Any ledger step that failed rolled back whole, so nothing was half-written.
        logger.warning("database unavailable: %s", type(exc).__name__)
        return ApiError(
            Code.SERVICE_UNAVAILABLE,
            "The service is briefly unavailable. Retry shortly.",
            headers={"Retry-After": "1"},
        )
    return None


def _from_validation(exc: drf_exceptions.ValidationError) -> ApiError:
    detail = exc.detail
    if isinstance(detail, dict) and detail:
        field, messages = next(iter(detail.items()))
        text = messages[0] if isinstance(messages, list) and messages else messages
        return ApiError(Code.INVALID_REQUEST, f"{field}: {text}", param=str(field))
    if isinstance(detail, list) and detail:
        return ApiError(Code.INVALID_REQUEST, str(detail[0]))
    return ApiError(Code.INVALID_REQUEST)


def exception_handler(exc: Exception, context: dict) -> JsonResponse:
    """DRF's EXCEPTION_HANDLER: every API error leaves through here."""
    request = context.get("request")
    path = request.path if request is not None else ""
    error = _from_drf(exc)
    if error is None:
        incident = uuid.uuid4().hex[:12]
        logger.exception("unhandled error %s on %s", incident, path)
        error = ApiError(Code.INTERNAL_ERROR, f"Internal error (incident {incident}).")
    return render(error, path=path)
