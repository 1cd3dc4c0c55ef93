"""The base of every JSON API view: scope-checked, errors through the one handler."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.views import APIView

from apikeys.permissions import HasScope
from apikeys.scopes import Principal, Scope
from clawwits.errors import ApiError, Code

AI = frozenset({Scope.AI})
DATA = frozenset({Scope.DATA})
AUTOMATION = frozenset({Scope.AUTOMATION})
ANY = frozenset()

MAX_PAGE = 100


class ApiView(APIView):
    permission_classes = [HasScope]
    required_scopes: frozenset[Scope] = ANY

    @staticmethod
    def principal(request: Request) -> Principal:
        return request.auth


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

    def _missing(self, request: Request, *args: object, **kwargs: object) -> None:
        raise ApiError(Code.NOT_FOUND, f"No route {request.method} {request.path}.")

    get = post = put = patch = delete = head = options = _missing
