"""Pricing and top-up pages, and the Stripe webhook. Each view parses, calls `wits.topups`,
renders."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from wits import topups
from wits.forms import TopupForm


def _pricing(
    request: HttpRequest, form: TopupForm | None = None, status: int = 200
) -> HttpResponse:
    user = request.user if request.user.is_authenticated else None
    overview = topups.pricing_overview(user=user)
    form = form or TopupForm(methods=overview.methods)
    return render(request, "wits/pricing.html", {"overview": overview, "form": form}, status=status)


@require_GET
def pricing_page(request: HttpRequest) -> HttpResponse:
    return _pricing(request)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def topups_page(request: HttpRequest) -> HttpResponse:
    """GET: the user's orders. POST: start an order and go pay for it."""
    if request.method == "GET":
        orders = topups.order_history(user_id=request.user.id)
        return render(request, "wits/orders.html", {"orders": orders})
    form = TopupForm(request.POST, methods=topups.methods())
    if not form.is_valid():
        return _pricing(request, form, status=400)
    started = topups.start_order(
        user=request.user, wits=form.cleaned_data["wits"], method=form.cleaned_data["method"]
    )
    # 303: the browser follows with a GET, to Stripe's page or to the order page.
    return HttpResponseRedirect(started.next_url, status=303)


@never_cache
@login_required
@require_GET
def order_page(request: HttpRequest, order_id: uuid.UUID) -> HttpResponse:
    order = topups.order_detail(user_id=request.user.id, order_id=order_id)
    checkout = request.GET.get("checkout")
    context = {"order": order, "checkout": checkout if checkout in {"success", "canceled"} else ""}
    return render(request, "wits/order.html", context)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe signs its deliveries; the signature, not a CSRF token, authenticates them."""
    result = topups.handle_stripe_webhook(
        payload=request.body, signature=request.headers.get("Stripe-Signature")
    )
    return JsonResponse(result.body, status=result.status)
