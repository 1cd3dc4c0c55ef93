"""The lean path: an API-key call to an AI route answered without the middleware chain or DRF.

`POST /v1/chat/completions`, `POST /v1/messages`, `POST /v1/embeddings` and `GET /v1/models`
made with an API key are most of the traffic, and for them the stack (thirteen middleware, URL
resolution, DRF's request wrapper, negotiation, authenticators and permission classes) costs
as much CPU as the billed call itself. `FastLaneMiddleware`, first in MIDDLEWARE, answers such
a call by doing directly what the stack does for it, in the same order:

- Security redirect, Host check and user-agent check (SecurityMiddleware.process_request and
  CommonMiddleware.process_request, the stock methods);
- the language: the default, as `lanes.LocaleMiddleware` sets for every keyed call;
- the key (`apikeys.services.authenticate`, the same call `ApiKeyAuthentication` makes), the
  view's `required_scopes`, the rate limit (`clawwits.api.check_rate`), the endpoint function
  the DRF view calls (gateway.views);
- any exception rendered by `clawwits.errors.exception_handler`, DRF's EXCEPTION_HANDLER;
- DRF's `Allow` header and the x-ratelimit-* headers (`ApiView.finalize_response`), then the
  stock `process_response` of XFrameOptions, Csrf, Common and Security middleware, innermost
  first, as the stack applies them.

Guarantee: a client sees the same status, body and headers from either path. Everything the
lane does not reproduce goes through the full stack unchanged: calls without an API key (the
playground's cookie JWT), other paths and methods (405s, HEAD, OPTIONS), calls carrying a
cookie (CSRF's cookie handling), bodies ApiBodyLimitMiddleware refuses (413, chunked,
unreadable Content-Length), a disallowed Host or user agent, and redirects (SSL, PREPEND_WWW).
The lane turns itself off at startup (logged) when MIDDLEWARE, the URL of a route, a view's DRF
configuration or the exception handler differ from what it reproduces, so a change to the stack
can cost speed, never behaviour. request_started/request_finished and the handler's own
response logging still run: the lane is a middleware inside Django's handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed, PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve
from django.utils import translation
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from apikeys import authentication, services
from apikeys.permissions import HasScope
from apikeys.scopes import Principal, Scope, satisfies
from clawwits import api, errors, lanes
from clawwits.errors import ApiError, Code
from clawwits.middleware import body_refusal
from clawwits.negotiation import JsonOnly
from gateway import views

logger = logging.getLogger("clawwits.fastlane")

# What follows this middleware in MIDDLEWARE, and what the lane reproduces for a keyed call.
STACK = (
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "clawwits.middleware.ApiBodyLimitMiddleware",
    "clawwits.lanes.SessionMiddleware",
    "clawwits.lanes.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "clawwits.lanes.AuthenticationMiddleware",
    "clawwits.lanes.JWTCookieMiddleware",
    "clawwits.lanes.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "clawwits.lanes.RatelimitMiddleware",
    "clawwits.middleware.ApiErrorMiddleware",
)

Endpoint = Callable[[HttpRequest, Principal], HttpResponseBase]


@dataclass(frozen=True)
class Route:
    method: str
    view_class: type[api.ApiView]
    endpoint: Endpoint


def _models(request: HttpRequest, principal: Principal) -> HttpResponse:
    # As DRF renders ModelsView's Response: JSONRenderer, media type from JsonOnly, no indent.
    body = JSONRenderer().render(views.model_list(request), "application/json", {})
    return HttpResponse(body, content_type="application/json")


ROUTES: dict[str, Route] = {
    "/v1/chat/completions": Route("POST", views.ChatCompletionsView, views.chat_completions),
    "/v1/messages": Route("POST", views.MessagesView, views.messages),
    "/v1/embeddings": Route("POST", views.EmbeddingsView, views.embeddings),
    "/v1/models": Route("GET", views.ModelsView, _models),
}


@dataclass(frozen=True)
class _Lane:
    """What a route's DRF view adds, read from the view class once."""

    endpoint: Endpoint
    scopes: frozenset[Scope]
    allow: str


def _mismatch(own_path: str) -> str | None:
    """Why the lane cannot answer exactly as the stack would; None when it can."""
    if list(settings.MIDDLEWARE) != [own_path, *STACK]:
        return "MIDDLEWARE differs from the stack the lane reproduces"
    if getattr(settings, "WHITENOISE_ROOT", None):
        return "WHITENOISE_ROOT could serve a file at a lane's path"
    if api_settings.EXCEPTION_HANDLER is not errors.exception_handler:
        return "DRF's EXCEPTION_HANDLER is not clawwits.errors.exception_handler"
    for path, route in ROUTES.items():
        try:
            match = resolve(path)
        except Resolver404:
            return f"{path} does not resolve"
        if getattr(match.func, "view_class", None) is not route.view_class:
            return f"{path} is not served by {route.view_class.__name__}"
        view = route.view_class
        if (
            [type(a) for a in view().get_authenticators()][:1]
            != [authentication.ApiKeyAuthentication]
            or view.permission_classes != [HasScope]
            or view.throttle_classes
            or list(view.renderer_classes) != [JSONRenderer]
            or view.content_negotiation_class is not JsonOnly
            or view.initial is not api.ApiView.initial
            or view.finalize_response is not api.ApiView.finalize_response
            or view.dispatch is not api.ApiView.dispatch
            or view.handle_exception is not api.ApiView.handle_exception
        ):
            return f"{route.view_class.__name__} is configured unlike the lane"
    return None


def _lane(route: Route) -> _Lane:
    view = route.view_class()
    # View.setup adds `head` to a view with `get`, as every dispatched view has it.
    view.setup(HttpRequest())
    return _Lane(
        endpoint=route.endpoint,
        scopes=view.required_scopes,
        allow=view.default_response_headers["Allow"],
    )


class FastLaneMiddleware:
    """First in MIDDLEWARE: keyed calls to the AI routes skip the rest; see the module doc."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        reason = _mismatch(f"{__name__}.{type(self).__name__}")
        if reason is not None:
            logger.warning("fast lane off: %s", reason)
            raise MiddlewareNotUsed(reason)
        self.lanes = {path: (route.method, _lane(route)) for path, route in ROUTES.items()}
        self.security = SecurityMiddleware(get_response)
        self.common = CommonMiddleware(get_response)
        csrf = CsrfViewMiddleware(get_response)
        xframe = XFrameOptionsMiddleware(get_response)
        # Innermost first, as the stack's process_response methods run.
        self.finish = (
            xframe.process_response,
            csrf.process_response,
            self.common.process_response,
            self.security.process_response,
        )

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        entry = self.lanes.get(request.path_info)
        if entry is None or request.method != entry[0]:
            return self.get_response(request)
        credential = self._plain_credential(request)
        if credential is None:
            return self.get_response(request)
        return self._serve(request, entry[1], credential)

    def _plain_credential(self, request: HttpRequest) -> str | None:
        """The API key of a call the lane answers; None sends the call through the stack."""
        if request.META.get("HTTP_COOKIE") or not lanes.keyed_api_call(request):
            return None
        credential = authentication.credential(request)
        if credential is None or body_refusal(request) is not None:
            return None
        try:
            if (
                self.security.process_request(request) is not None
                or self.common.process_request(request) is not None
            ):
                return None
        except (SuspiciousOperation, PermissionDenied):
            # A disallowed Host or user agent: the stack renders and logs it.
            return None
        return credential

    def _serve(self, request: HttpRequest, lane: _Lane, credential: str) -> HttpResponseBase:
        translation.activate(settings.LANGUAGE_CODE)
        try:
            request.user, request.auth = services.authenticate(credential)
            if not satisfies(request.auth.scopes, lane.scopes):
                raise ApiError(Code.INSUFFICIENT_SCOPE)
            api.check_rate(request)
            response = lane.endpoint(request, request.auth)
        except Exception as exc:  # noqa: BLE001 - DRF's dispatch hands every one to the handler
            response = errors.exception_handler(exc, {"request": request})
        response["Allow"] = lane.allow
        api.add_limit_headers(request, response)
        for finish in self.finish:
            response = finish(request, response)
        return response
