"""Stripe Checkout through the official SDK: start a hosted payment, read its signed webhooks.

Guarantees:
- Offered only when STRIPE_SECRET_KEY is set. A session is created in mode=payment for exactly
  the order's price and currency (Stripe takes the smallest currency unit too; VND is a
  zero-decimal currency there), tagged with the order id as client_reference_id and metadata.
- Session creation carries the idempotency key `topup-<order id>`, so SDK retries of one order
  never create a second session.
- `parse_webhook` returns a notice only after `stripe.Webhook.construct_event` verified the
  `Stripe-Signature` header against STRIPE_WEBHOOK_SECRET (HMAC-SHA256 over "t.payload", at most
  five minutes old). Unset secret, bad signature, stale timestamp or malformed payload all raise
  InvalidWebhook.
- An order counts as paid only on `checkout.session.completed` or
  `checkout.session.async_payment_succeeded` with payment_status "paid".
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import stripe
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from wits.payments import (
    Checkout,
    InvalidWebhook,
    OrderTicket,
    Outcome,
    PaymentError,
    PaymentNotice,
)

# Stripe's own default is 80 s: a buyer would wait that long on a hung connection.
REQUEST_TIMEOUT_S = 20
NETWORK_RETRIES = 2

PAID_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
FAILED_EVENTS = {"checkout.session.async_payment_failed", "checkout.session.expired"}


@functools.cache
def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    # Keyed on the settings so a changed key or base (tests, a rotated key) gets a new client.
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=REQUEST_TIMEOUT_S),
    )


def return_url(ticket: OrderTicket, checkout: str) -> str:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return f"{base}/topups/{ticket.order_id}?checkout={checkout}"


class StripeCheckout:
    name = "stripe"

    @property
    def label(self) -> str:
        return str(_("Card (Stripe)"))

    def enabled(self) -> bool:
        return bool(settings.STRIPE_SECRET_KEY)

    def start(self, ticket: OrderTicket) -> Checkout:
        """Create a Checkout Session for the order and hand back its hosted page."""
        if not self.enabled():
            raise PaymentError("Stripe is not configured")
        order_tag = {"order_id": str(ticket.order_id), "reference": ticket.reference}
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": ticket.currency.lower(),
                        "unit_amount": ticket.price,
                        "product_data": {"name": f"{ticket.wits:,} Wits"},
                    },
                }
            ],
            "client_reference_id": str(ticket.order_id),
            "metadata": order_tag,
            "payment_intent_data": {"metadata": order_tag, "description": ticket.reference},
            "customer_email": ticket.email,
            "success_url": return_url(ticket, "success"),
            "cancel_url": return_url(ticket, "canceled"),
        }
        client = _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)
        try:
            session = client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": f"topup-{ticket.order_id}"}
            )
        except stripe.StripeError as exc:
            raise PaymentError(f"Stripe refused the checkout session: {exc.user_message}") from exc
        if not session.id or not session.url:
            raise PaymentError("Stripe returned a checkout session without an id or url")
        return Checkout(external_id=session.id, redirect_url=session.url)


def parse_webhook(payload: bytes, signature: str | None) -> PaymentNotice:
    """Verify one webhook delivery and say what it means for our orders."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise InvalidWebhook("STRIPE_WEBHOOK_SECRET is not set")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret).to_dict()
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(f"signature: {exc.user_message or exc}") from None
    except (ValueError, TypeError, AttributeError):
        # Undecodable or non-object JSON (the SDK builds the event only from a JSON object).
        raise InvalidWebhook("payload is not a JSON event object") from None
    event_id, kind = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        raise InvalidWebhook("event without an id or a type")
    if kind not in PAID_EVENTS | FAILED_EVENTS:
        return PaymentNotice("stripe", event_id, kind, Outcome.UNHANDLED)
    session = (event.get("data") or {}).get("object")
    if not isinstance(session, dict):
        raise InvalidWebhook("event without a data.object")
    if kind in FAILED_EVENTS:
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.PAID if session.get("payment_status") == "paid" else Outcome.PENDING
    amount = session.get("amount_total")
    return PaymentNotice(
        provider="stripe",
        event_id=event_id,
        kind=kind,
        outcome=outcome,
        order_id=_order_id(session),
        external_id=str(session.get("id") or ""),
        amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        currency=str(session.get("currency") or "").upper(),
    )


def _order_id(session: dict[str, Any]) -> uuid.UUID | None:
    metadata = session.get("metadata")
    raw = session.get("client_reference_id") or (
        metadata.get("order_id") if isinstance(metadata, dict) else None
    )
    try:
        return uuid.UUID(str(raw)) if raw else None
    except ValueError:
        return None


PROVIDER = StripeCheckout()
