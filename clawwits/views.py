"""Site-wide views: dashboard, health probes, and error pages that stay JSON under /v1."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from clawwits.errors import ApiError, Code
from clawwits.errors import render as render_error
from wits import ledger


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    balance = ledger.balance(user_id=request.user.id)
    return render(request, "dashboard.html", {"balance": balance})


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


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path_info.startswith("/v1"):
        return render_error(ApiError(Code.NOT_FOUND), path=request.path_info)
    return render(request, "error.html", {"status": 404, "message": "Not found."}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith("/v1"):
        return render_error(ApiError(Code.INTERNAL_ERROR), path=request.path_info)
    return render(request, "error.html", {"status": 500, "message": "Server error."}, status=500)
