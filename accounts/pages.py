"""/settings: password, low-balance threshold, webhook URL, signing secret and test event.

Every change is a CSRF-protected POST to its own URL that redirects back to /settings on
success, or re-renders the page with the form's errors (400, or 429 for too many test events).
The page shows the signing secret, so it is sent with Cache-Control: no-store.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import SESSION_KEY, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts import sessions, webhooks
from accounts.forms import LowBalanceForm, PasswordChangeForm, WebhookUrlForm
from clawwits.errors import ApiError
from wits import ledger

SIGNATURE_EXAMPLE = "t=<unix seconds>,v1=<hex HMAC-SHA256 of f'{t}.{body}'>"


def _page(
    request: HttpRequest,
    *,
    password_form: PasswordChangeForm | None = None,
    low_balance_form: LowBalanceForm | None = None,
    webhook_form: WebhookUrlForm | None = None,
    test_error: str | None = None,
    status: int = 200,
) -> HttpResponse:
    user_id = request.user.id
    current = webhooks.webhook_settings(user_id=user_id)
    context = {
        "settings": current,
        "available": ledger.balance(user_id=user_id).available,
        "events": webhooks.recent_events(user_id=user_id, limit=10),
        "password_form": password_form or PasswordChangeForm(user=request.user),
        "low_balance_form": low_balance_form
        or LowBalanceForm(initial={"low_balance_threshold": current.low_balance_threshold}),
        "webhook_form": webhook_form or WebhookUrlForm(initial={"url": current.url}),
        "test_error": test_error,
        "signature_header": webhooks.SIGNATURE_HEADER,
        "signature_example": SIGNATURE_EXAMPLE,
    }
    response = render(request, "accounts/settings.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _back(request: HttpRequest, message: str) -> HttpResponse:
    messages.success(request, message)
    return redirect("settings")


@never_cache
@require_GET
@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@never_cache
@require_POST
@login_required
def change_password(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(user=request.user, data=request.POST)
    if not form.is_valid():
        return _page(request, password_form=form, status=400)
    user = form.save()
    response = _back(request, _("Your password was changed. Other browsers are signed out."))
    # Saving revoked every refresh token of the account, this browser's too: issue it a new
    # session so changing the password never logs out the person who changed it.
    sessions.start_session(response, user)
    if SESSION_KEY in request.session:
        update_session_auth_hash(request, user)
    return response


@never_cache
@require_POST
@login_required
def low_balance(request: HttpRequest) -> HttpResponse:
    form = LowBalanceForm(request.POST)
    if not form.is_valid():
        return _page(request, low_balance_form=form, status=400)
    webhooks.update_settings(
        user_id=request.user.id, low_balance_threshold=form.cleaned_data["low_balance_threshold"]
    )
    return _back(request, _("Low-balance threshold saved."))


@never_cache
@require_POST
@login_required
def webhook_url(request: HttpRequest) -> HttpResponse:
    form = WebhookUrlForm(request.POST)
    if form.is_valid():
        try:
            webhooks.update_settings(user_id=request.user.id, url=form.cleaned_data["url"])
        except ApiError as exc:
            form.add_error("url", exc.message)
    if form.errors:
        return _page(request, webhook_form=form, status=400)
    return _back(request, _("Webhook URL saved."))


@never_cache
@require_POST
@login_required
def regenerate_secret(request: HttpRequest) -> HttpResponse:
    webhooks.regenerate_secret(user_id=request.user.id)
    return _back(request, _("A new signing secret was generated. Update your receiver."))


@never_cache
@require_POST
@login_required
def send_test(request: HttpRequest) -> HttpResponse:
    try:
        event = webhooks.send_test_event(user_id=request.user.id)
    except ApiError as exc:
        return _page(request, test_error=exc.message, status=exc.status)
    return _back(request, _("Test event %(id)s queued.") % {"id": event.id})
