"""The base of every JSON API view: scope-checked, rate-limited, errors through one handler.

Order on every authenticated /v1 call: authenticate -> scope -> rate limit (one atomic Redis
operation per request; per account, plus the key's own lower limit) -> the view. Every
response after the limit check carries x-ratelimit-limit/remaining/reset-requests, errors and
streams included (headers leave before the first byte).
"""

from __future__ import annotations

import threading

from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from apikeys.permissions import HasScope
from apikeys.scopes import Principal, Scope
from clawwits import redisclient
from clawwits.errors import ApiError, Code, rate_limited

AI = frozenset({Scope.AI})
DATA = frozenset({Scope.DATA})
AUTOMATION = frozenset({Scope.AUTOMATION})
ANY = frozenset()

MAX_PAGE = 100


_limiter = None
_limiter_lock = threading.Lock()


def limiter():  # noqa: ANN201 - RedisLimiter | LocalLimiter
    """Redis when configured (exact across processes); else per process (documented)."""
    global _limiter
    if _limiter is None:
        from gateway import ratelimit

        with _limiter_lock:
            if _limiter is None:
                _limiter = (
                    ratelimit.RedisLimiter(redisclient.client())
                    if redisclient.configured()
                    else ratelimit.LocalLimiter()
                )
    return _limiter


def check_rate(request: HttpRequest | Request) -> object:
    """Count this call against its account and key; set `request.ratelimit` to the decision.

    Raises ApiError 429 (with the limit headers) over a limit and 503 when the limiter is down;
    a stale cached key (guard changed) is re-read from the database and replaces
    `request.user` / `request.auth`.
    """
    from gateway import ratelimit

    principal: Principal = request.auth
    for _ in range(3):
        guards = ()
        if principal.epoch is not None:
            account = str(principal.user_id)
            guards = ((limiter().account_key(account, "ep"), principal.epoch),)
        try:
            decision = limiter().hit(
                account=str(principal.user_id),
                account_limit=principal.account_rpm,
                key=str(principal.key_id) if principal.key_id else None,
                key_limit=principal.key_rpm,
                guards=guards,
            )
            break
        except ratelimit.GuardChanged:
            # The cached key is stale (revoked, rotated, new limits): decide on fresh rows.
            principal = _reauthenticate(request)
        except ratelimit.RateLimiterUnavailable:
            raise ApiError(
                Code.SERVICE_UNAVAILABLE,
                "Rate limiting is unavailable, so requests are refused for now. Retry shortly.",
                headers={"Retry-After": "1"},
            ) from None
    else:
        raise ApiError(Code.SERVICE_UNAVAILABLE, "The account changed while it was checked.")
    request.ratelimit = decision
    if not decision.allowed:
        raise rate_limited(decision.retry_after_ms, headers=limit_headers(decision))
    return decision


def _reauthenticate(request: HttpRequest | Request) -> Principal:
    from apikeys import services
    from apikeys.authentication import credential

    user, principal = services.authenticate(credential(request) or "", fresh=True)
    request.user, request.auth = user, principal
    return principal


def add_limit_headers(request: HttpRequest | Request, response: HttpResponseBase) -> None:
    """The x-ratelimit-* headers of the decision `check_rate` made, when it made one."""
    decision = getattr(request, "ratelimit", None)
    if decision is not None:
        for name, value in limit_headers(decision).items():
            response[name] = value


def limit_headers(decision: object) -> dict[str, str]:
    from gateway import ratelimit

    return {
        "x-ratelimit-limit-requests": str(decision.limit),
        "x-ratelimit-remaining-requests": str(decision.remaining),
        "x-ratelimit-reset-requests": ratelimit.format_reset(decision.reset_ms),
    }


class ApiView(APIView):
    permission_classes = [HasScope]
    required_scopes: frozenset[Scope] = ANY

    @staticmethod
    def principal(request: Request) -> Principal:
        return request.auth

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        check_rate(request)

    def finalize_response(self, request: Request, response, *args: object, **kwargs: object):  # noqa: ANN001, ANN201
        response = super().finalize_response(request, response, *args, **kwargs)
        add_limit_headers(request, response)
        return response


def int_param(
    request: Request, name: str, *, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(Code.INVALID_REQUEST, f"{name}: must be an integer.", param=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ApiError(Code.INVALID_REQUEST, f"{name}: must be {bound}.", param=name)
    return value


class NotFoundView(ApiView):
    """Every unknown /v1 path and method: a JSON 404, never an HTML page."""

    permission_classes: list = []
    authentication_classes: list = []

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        APIView.initial(self, request, *args, **kwargs)

    def _missing(self, request: Request, *args: object, **kwargs: object) -> None:
        raise ApiError(Code.NOT_FOUND, f"No route {request.method} {request.path}.")

    get = post = put = patch = delete = head = options = _missing
