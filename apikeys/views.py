"""/api-keys pages and the /v1/keys automation API.

A new key's plaintext appears in exactly one response (the one that created it), sent with
Cache-Control: no-store; lists show only the visible prefix.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import BigIntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import services
from apikeys.models import ApiKey
from apikeys.scopes import Scope, parse_scopes
from clawwits.api import AUTOMATION, ApiView
from clawwits.errors import ApiError, Code
from gateway.models import UsageRecord

GRACE_CHOICES = [
    (0, gettext_lazy("immediately")),
    (3600, gettext_lazy("1 hour")),
    (86400, gettext_lazy("24 hours")),
    (7 * 86400, gettext_lazy("7 days")),
]


def _keys_page(
    request: HttpRequest,
    *,
    issued: services.IssuedKey | None = None,
    error: str | None = None,
    status: int = 200,
) -> HttpResponse:
    # One statement for the whole list: each key's spend is a correlated sum over its usage
    # records (indexed by key), restricted to the owner's rows.
    spent = (
        UsageRecord.objects.filter(api_key_id=OuterRef("pk"), user_id=OuterRef("user_id"))
        .order_by()
        .values("api_key_id")
        .annotate(total=Sum("wits"))
        .values("total")
    )
    keys = (
        ApiKey.objects.filter(user=request.user)
        .annotate(wits_spent=Coalesce(Subquery(spent), Value(0), output_field=BigIntegerField()))
        .order_by("-created_at")
    )
    context = {
        "keys": keys,
        "issued": issued,
        "error": error,
        "scopes": [s.value for s in Scope],
        "grace_choices": GRACE_CHOICES,
    }
    response = render(request, "apikeys/list.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@login_required
def keys_page(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _keys_page(request)
    try:
        scopes = parse_scopes(request.POST.getlist("scopes"))
        issued = services.create_key(
            user_id=request.user.id, name=request.POST.get("name", ""), scopes=scopes
        )
    except ValueError as exc:
        return _keys_page(request, error=str(exc), status=400)
    except ApiError as exc:
        return _keys_page(request, error=exc.message, status=400)
    return _keys_page(request, issued=issued)


@require_POST
@login_required
def revoke_page(request: HttpRequest, key_id: str) -> HttpResponse:
    services.revoke_key(user_id=request.user.id, key_id=key_id)
    return redirect("api-keys")


@require_POST
@login_required
def rename_page(request: HttpRequest, key_id: str) -> HttpResponse:
    try:
        services.rename_key(
            user_id=request.user.id, key_id=key_id, name=request.POST.get("name", "")
        )
    except ApiError as exc:
        if exc.code == Code.NOT_FOUND:
            raise
        return _keys_page(request, error=exc.message, status=400)
    return redirect("api-keys")


@never_cache
@require_POST
@login_required
def rotate_page(request: HttpRequest, key_id: str) -> HttpResponse:
    try:
        grace = int(request.POST.get("grace_seconds", "0"))
    except ValueError:
        return _keys_page(request, error=_("Pick a grace period."), status=400)
    try:
        issued = services.rotate_key(user_id=request.user.id, key_id=key_id, grace_seconds=grace)
    except ApiError as exc:
        if exc.code == Code.NOT_FOUND:
            raise
        return _keys_page(request, error=exc.message, status=400)
    return _keys_page(request, issued=issued)


def key_json(key: ApiKey, *, plaintext: str | None = None) -> dict:
    body = {
        "id": str(key.id),
        "object": "api_key",
        "name": key.name,
        "prefix": key.visible_prefix,
        "scopes": sorted(str(s) for s in key.scope_set),
        "rate_limit_rpm": key.rate_limit_rpm,
        "state": key.state,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }
    if plaintext is not None:
        body["key"] = plaintext
    return body


def _scopes_field(data: dict) -> frozenset[Scope]:
    raw = data.get("scopes", ["ai"])
    if not isinstance(raw, list | str):
        raise ApiError(Code.INVALID_REQUEST, "scopes: a list of scope names.", param="scopes")
    try:
        return parse_scopes(raw)
    except ValueError as exc:
        raise ApiError(Code.INVALID_REQUEST, f"scopes: {exc}", param="scopes") from None


def _body(request: Request) -> dict:
    data = request.data
    if not isinstance(data, dict):
        raise ApiError(Code.INVALID_REQUEST, "The body must be a JSON object.")
    return data


class KeysView(ApiView):
    required_scopes = AUTOMATION

    def get(self, request: Request) -> Response:
        keys = ApiKey.objects.filter(user_id=self.principal(request).user_id)
        return Response({"object": "list", "data": [key_json(k) for k in keys]})

    def post(self, request: Request) -> Response:
        principal = self.principal(request)
        data = _body(request)
        rpm = data.get("rate_limit_rpm")
        if rpm is not None and (not isinstance(rpm, int) or isinstance(rpm, bool)):
            raise ApiError(
                Code.INVALID_REQUEST, "rate_limit_rpm: an integer.", param="rate_limit_rpm"
            )
        name = data.get("name", "")
        if not isinstance(name, str):
            raise ApiError(Code.INVALID_REQUEST, "name: a string.", param="name")
        issued = services.create_key(
            user_id=principal.user_id,
            name=name,
            scopes=_scopes_field(data),
            rate_limit_rpm=rpm,
            creator_scopes=principal.scopes,
        )
        response = Response(key_json(issued.key, plaintext=issued.plaintext), status=201)
        response["Cache-Control"] = "no-store"
        return response


class KeyView(ApiView):
    required_scopes = AUTOMATION

    def get(self, request: Request, key_id: str) -> Response:
        key = services.get_key(user_id=self.principal(request).user_id, key_id=key_id)
        return Response(key_json(key))

    def patch(self, request: Request, key_id: str) -> Response:
        name = _body(request).get("name", "")
        if not isinstance(name, str):
            raise ApiError(Code.INVALID_REQUEST, "name: a string.", param="name")
        key = services.rename_key(user_id=self.principal(request).user_id, key_id=key_id, name=name)
        return Response(key_json(key))


class RevokeKeyView(ApiView):
    required_scopes = AUTOMATION

    def post(self, request: Request, key_id: str) -> Response:
        key = services.revoke_key(user_id=self.principal(request).user_id, key_id=key_id)
        return Response(key_json(key))


class RotateKeyView(ApiView):
    required_scopes = AUTOMATION

    def post(self, request: Request, key_id: str) -> Response:
        principal = self.principal(request)
        grace = _body(request).get("grace_seconds", 0) if request.data else 0
        if not isinstance(grace, int) or isinstance(grace, bool):
            raise ApiError(
                Code.INVALID_REQUEST, "grace_seconds: an integer.", param="grace_seconds"
            )
        issued = services.rotate_key(
            user_id=principal.user_id,
            key_id=key_id,
            grace_seconds=grace,
            creator_scopes=principal.scopes,
        )
        response = Response(key_json(issued.key, plaintext=issued.plaintext), status=201)
        response["Cache-Control"] = "no-store"
        return response
