"""The web app's session: simplejwt tokens in HttpOnly, SameSite=Lax cookies.

- Login sets an access cookie (short-lived) and a refresh cookie.
- Any request whose access token is missing or expired but whose refresh token is valid gets a
  new access token transparently (set on the request for this view, and on the response).
- Logout blacklists the refresh token and clears both cookies; a blacklisted refresh token
  never mints another access token.
Cookies are Secure unless DEBUG (SECURE_COOKIES).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken


def _cookie_args(max_age: int) -> dict:
    return {
        "max_age": max_age,
        "httponly": True,
        "secure": settings.SECURE_COOKIES,
        "samesite": "Lax",
        "path": "/",
    }


def set_session_cookies(response: HttpResponse, *, access: str, refresh: str | None) -> None:
    jwt = settings.SIMPLE_JWT
    response.set_cookie(
        settings.JWT_ACCESS_COOKIE,
        access,
        **_cookie_args(int(jwt["ACCESS_TOKEN_LIFETIME"].total_seconds())),
    )
    if refresh is not None:
        response.set_cookie(
            settings.JWT_REFRESH_COOKIE,
            refresh,
            **_cookie_args(int(jwt["REFRESH_TOKEN_LIFETIME"].total_seconds())),
        )


def start_session(response: HttpResponse, user: object) -> None:
    refresh = RefreshToken.for_user(user)
    set_session_cookies(response, access=str(refresh.access_token), refresh=str(refresh))


def end_session(request: HttpRequest, response: HttpResponse) -> None:
    raw = request.COOKIES.get(settings.JWT_REFRESH_COOKIE)
    if raw:
        # An invalid or already blacklisted token leaves nothing to revoke.
        with contextlib.suppress(TokenError):
            RefreshToken(raw).blacklist()
    clear_session_cookies(response)


def clear_session_cookies(response: HttpResponse) -> None:
    for name in (settings.JWT_ACCESS_COOKIE, settings.JWT_REFRESH_COOKIE):
        response.delete_cookie(name, path="/", samesite="Lax")


def _user_for(user_id: object) -> object | None:
    user = get_user_model().objects.select_related("tier").filter(pk=user_id).first()
    return user if user is not None and user.is_active else None


def _access_user_id(raw: str) -> object | None:
    try:
        return AccessToken(raw)[settings.SIMPLE_JWT["USER_ID_CLAIM"]]
    except (TokenError, KeyError):
        return None


def _refreshed_access(raw_refresh: str) -> tuple[str, object] | None:
    """A new access token from a valid, non-blacklisted refresh token, and its user id."""
    try:
        refresh = RefreshToken(raw_refresh)
        user_id = refresh[settings.SIMPLE_JWT["USER_ID_CLAIM"]]
    except (TokenError, KeyError):
        return None
    if _user_for(user_id) is None:
        return None
    return str(refresh.access_token), user_id


class JWTCookieMiddleware:
    """Make the cookie session the request's user on pages, refreshing it when it expired."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        access = request.COOKIES.get(settings.JWT_ACCESS_COOKIE)
        refresh = request.COOKIES.get(settings.JWT_REFRESH_COOKIE)
        if not access and not refresh:
            return self.get_response(request)

        user_id = _access_user_id(access) if access else None
        new_access: str | None = None
        drop_cookies = False
        if user_id is None and refresh:
            refreshed = _refreshed_access(refresh)
            if refreshed is None:
                drop_cookies = True
            else:
                new_access, user_id = refreshed
                # DRF's cookie authenticator reads the fresh token later in this request.
                request.COOKIES[settings.JWT_ACCESS_COOKIE] = new_access
        elif user_id is None:
            drop_cookies = True

        if user_id is not None and not getattr(request.user, "is_authenticated", False):
            request.user = SimpleLazyObject(lambda: _user_for(user_id) or AnonymousUser())

        response = self.get_response(request)
        if new_access is not None:
            set_session_cookies(response, access=new_access, refresh=None)
        elif drop_cookies:
            clear_session_cookies(response)
        return response
