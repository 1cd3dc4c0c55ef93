"""DRF authentication by JWT (simplejwt): from the Authorization header, or the session cookie.

A cookie travels with every browser request, so a cookie-authenticated unsafe request must
also pass Django's CSRF check; a header token is never sent automatically and needs none.
A session acts with `full` scope for its own user.
"""

from __future__ import annotations

from django.conf import settings
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication

from apikeys import keys
from apikeys.scopes import Principal, Scope

SESSION_SCOPES = frozenset({Scope.FULL})


class _CSRFCheck(CsrfViewMiddleware):
    def _reject(self, request: object, reason: str) -> str:
        return reason


def enforce_csrf(request: Request) -> None:
    # Check Django's own request: DRF's `request.POST` would parse (and so consume) a JSON body
    # that the gateway views read afterwards as `request.body`.
    django_request = request._request
    check = _CSRFCheck(lambda req: None)
    check.process_request(django_request)
    reason = check.process_view(django_request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF failed: {reason}")


def session_principal(user: object) -> Principal:
    return Principal(user_id=user.pk, scopes=SESSION_SCOPES, account_rpm=user.requests_per_minute)


class JWTAuthentication(SimpleJWTAuthentication):
    def authenticate(self, request: Request) -> tuple[object, Principal] | None:
        header = self.get_header(request)
        if header is not None:
            raw = self.get_raw_token(header)
            if raw is None or keys.looks_like_key(raw.decode(errors="replace")):
                return None
            user = self.get_user(self.get_validated_token(raw))
            return user, session_principal(user)
        raw_cookie = request.COOKIES.get(settings.JWT_ACCESS_COOKIE)
        if not raw_cookie:
            return None
        user = self.get_user(self.get_validated_token(raw_cookie.encode()))
        enforce_csrf(request)
        return user, session_principal(user)
