"""Scope checks: a view names the scopes it accepts in `required_scopes`."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apikeys.scopes import Principal, satisfies
from clawwits.errors import ApiError, Code


class HasScope(BasePermission):
    """Authenticated, and the credential's scopes satisfy the view's `required_scopes`."""

    def has_permission(self, request: Request, view: object) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            raise ApiError(Code.UNAUTHORIZED)
        if not satisfies(principal.scopes, getattr(view, "required_scopes", frozenset())):
            raise ApiError(Code.INSUFFICIENT_SCOPE)
        return True
