"""Site-wide views: the logged-in Dashboard, Usage, Billing and Playground pages, health probes,
and error pages that stay JSON under /v1.

Each page parses its query string, asks one function of `gateway.usage` and renders; a bad
parameter raises ApiError, which the error middleware turns into the 400 page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clawwits.errors import ApiError, Code
from clawwits.errors import render as render_error
from gateway import catalog, usage
from wits import ledger

USAGE_PAGE_SIZE = 50
BILLING_PAGE_SIZE = 50


@never_cache
@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    overview = usage.dashboard(user=request.user)
    return render(request, "dashboard.html", {"overview": overview, "balance": overview.balance})


@never_cache
@login_required
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    query = usage.parse_query(request.GET)
    after = usage.parse_after(request.GET)
    log = usage.request_log(
        user_id=request.user.id, query=query, limit=USAGE_PAGE_SIZE, after=after
    )
    context = {"log": log, "query": query, "after": after, "filtered": query != usage.UsageQuery()}
    return render(request, "usage/log.html", context)


@never_cache
@login_required
@require_GET
def usage_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Every row the same filters select on /usage, streamed (no page size)."""
    query = usage.parse_query(request.GET)
    response = StreamingHttpResponse(
        usage.export_csv(user_id=request.user.id, query=query),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="clawwits-usage.csv"'
    return response


@never_cache
@login_required
@require_GET
def billing_page(request: HttpRequest) -> HttpResponse:
    query = usage.parse_billing(request.GET)
    history = usage.billing(user_id=request.user.id, query=query, limit=BILLING_PAGE_SIZE)
    context = {"billing": history, "query": query, "kinds": usage.ENTRY_FILTERS}
    return render(request, "billing/history.html", context)


@never_cache
@login_required
@require_GET
def playground(request: HttpRequest) -> HttpResponse:
    """The form only: its script streams each answer from /v1/chat/completions with this cookie
    session and the page's CSRF token, so a playground call is authenticated, limited, reserved
    and billed exactly like an API call (and listed under Usage as a browser-session call).

    The models offered are the chat models /v1/models lists; the auto choice is preselected.
    """
    snapshot = catalog.get()
    context = {
        "models": [m for m in snapshot.listed() if m.kind == "chat" and m.routes],
        "default_model": snapshot.auto.get("chat"),
        "available": ledger.balance(user_id=request.user.id).available,
    }
    return render(request, "playground.html", context)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: PostgreSQL (or SQLite) and Redis, when configured, answer now."""
    from clawwits import redisclient

    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        checks["database"] = "down"
    if redisclient.configured():
        checks["redis"] = "ok" if redisclient.ping() else "down"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "down", **checks}, status=200 if ready else 503
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's own 400s (a disallowed Host, a malformed multipart body): JSON under /v1. The
    exception's text (which names the host) is logged by Django, never shown."""
    if request.path_info.startswith("/v1"):
        return render_error(ApiError(Code.INVALID_REQUEST, "Bad request."), path=request.path_info)
    return render(request, "error.html", {"status": 400, "message": _("Bad request.")}, status=400)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path_info.startswith("/v1"):
        return render_error(ApiError(Code.NOT_FOUND), path=request.path_info)
    return render(request, "error.html", {"status": 404, "message": _("Not found.")}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith("/v1"):
        return render_error(ApiError(Code.INTERNAL_ERROR), path=request.path_info)
    return render(request, "error.html", {"status": 500, "message": _("Server error.")}, status=500)
