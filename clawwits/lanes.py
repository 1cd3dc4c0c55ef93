"""The API-key lane: page middleware that a /v1 call made with an API key never needs.

A request to /v1/ that carries an API key (`Authorization: Bearer cw_sk_...` or `x-api-key`)
is authenticated by DRF from that header alone: it has no use for the session, the cookie JWT,
messages, the page language or the login rate limiter's handler. (CSRF and frame options stay
stock for everyone: `check --deploy` looks for them by name, and they cost little.) Each class
below is the stock middleware, unchanged for every other request, that passes such a call
straight on.
They subclass the originals so Django's system checks still find them. (Keyed calls to the
four AI routes mostly never get here: clawwits.fastlane, first in MIDDLEWARE, answers them.)

Guarantee: the bypass depends only on the path and the credential headers; a request that
also carries the session cookie but an API key is authenticated as the key (DRF tries the key
first), exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.http import HttpRequest, HttpResponse
from django.middleware import locale
from django.utils import translation
from django_ratelimit import middleware as ratelimit_middleware

from accounts import sessions


def keyed_api_call(request: HttpRequest) -> bool:
    if not request.path_info.startswith("/v1/"):
        return False
    meta = request.META
    return meta.get("HTTP_AUTHORIZATION", "").startswith("Bearer cw_sk_") or (
        "HTTP_X_API_KEY" in meta
    )


class _Bypass:
    get_response: Callable[[HttpRequest], HttpResponse]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if keyed_api_call(request):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(_Bypass, sessions_middleware.SessionMiddleware):
    pass


class LocaleMiddleware(locale.LocaleMiddleware):
    def __call__(self, request: HttpRequest) -> HttpResponse:
        if keyed_api_call(request):
            # A thread keeps the language it last activated: API answers are in the default.
            translation.activate(settings.LANGUAGE_CODE)
            return self.get_response(request)
        return super().__call__(request)


class AuthenticationMiddleware(_Bypass, auth_middleware.AuthenticationMiddleware):
    pass


class JWTCookieMiddleware(_Bypass, sessions.JWTCookieMiddleware):
    pass


class MessageMiddleware(_Bypass, messages_middleware.MessageMiddleware):
    pass


class RatelimitMiddleware(_Bypass, ratelimit_middleware.RatelimitMiddleware):
    pass
