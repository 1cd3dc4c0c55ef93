"""Guards that must run before any view touches an API request body."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from clawwits.errors import ApiError, Code, render


class ApiBodyLimitMiddleware:
    """Answer JSON 413 for /v1 bodies over API_MAX_BODY_BYTES before anything reads them.

    Checked on the declared Content-Length, so an oversized body is refused without being read
    into memory; nothing downstream (auth, limits, ledger) runs for it. A chunked body (no
    Content-Length) is refused with a 400 that says so: WSGI gives Django no length to check,
    and Django would read it as empty. A Content-Length larger than the bytes sent only makes
    the server wait for the rest; a smaller one truncates the body (then a JSON 400).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/v1/"):
            error = body_refusal(request)
            if error is not None:
                return render(error, path=request.path_info)
        return self.get_response(request)


def body_refusal(request: HttpRequest) -> ApiError | None:
    """Why ApiBodyLimitMiddleware refuses this request's body unread; None when it does not."""
    meta = request.META
    if not meta.get("CONTENT_LENGTH") and "chunked" in (
        meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        # Django reads a body without Content-Length as empty; say why instead of answering
        # "the body is empty" to a client that sent one.
        return ApiError(
            Code.INVALID_REQUEST,
            "Chunked request bodies are not accepted; send a Content-Length.",
        )
    raw = meta.get("CONTENT_LENGTH") or "0"
    try:
        length = int(raw)
    except ValueError:
        return ApiError(Code.INVALID_REQUEST, "Content-Length is not a number.")
    if length > settings.API_MAX_BODY_BYTES:
        return ApiError(
            Code.REQUEST_TOO_LARGE,
            f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes.",
        )
    return None


class ApiErrorMiddleware:
    """An ApiError escaping a plain Django view (a page, not DRF) renders with its status.

    /v1 paths get the JSON envelope; pages get the HTML error page for the status. So a page
    asked for another tenant's object shows the same 404 as for a missing one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ApiError):
            return None
        if request.path_info.startswith("/v1/"):
            return render(exception, path=request.path_info)
        from django.shortcuts import render as render_page

        return render_page(
            request,
            "error.html",
            {"status": exception.status, "message": exception.message},
            status=exception.status,
        )
