"""DRF authentication by API key: `Authorization: Bearer cw_sk_...` or `x-api-key: cw_sk_...`.

A Bearer value that is not shaped like a key is left to the JWT authenticator. `x-api-key`
(what the Anthropic SDK sends) is always treated as a key.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apikeys import keys, services


def credential(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and keys.looks_like_key(value):
            return value
        return None
    api_key = request.META.get("HTTP_X_API_KEY")
    if api_key is not None:
        return api_key.strip()
    return None


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[object, object] | None:
        raw = credential(request)
        if raw is None:
            return None
        return services.authenticate(raw)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return "Bearer"
