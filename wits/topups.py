"""Top-ups: what Wits cost, orders to buy them, payment confirmation, and admin grants.

Guarantees:
- An order's price is fixed when it is created: `pricing.pack_price` of its Wits at the buyer's
  tier price per 1M, in WITS_CURRENCY. Nothing changes it afterwards.
- Money reaches a wallet only through `wits.ledger`: `credit_order` (which flips a pending order
  to credited exactly once) or `grant`. A canceled order is never credited.
- A provider event is acted on at most once: its PaymentEvent row (unique provider + event id)
  is inserted in the same transaction as the credit it causes, so a replay or a concurrent
  duplicate delivery credits nothing, and a crash between the two leaves neither behind.
- A paid event credits only an order that exists, was paid through that provider and that
  session, and whose price and currency equal the event's amount exactly; anything else
  credits nothing and is logged.
- Buyers only ever see their own orders: another user's order id is a 404, like a missing one.
- An admin grant over several wallets writes for all of them or for none.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts import services as accounts
from accounts import webhooks
from accounts.models import Tier, User
from clawwits.errors import ApiError, Code
from wits import ledger, payments, pricing
from wits.models import LedgerEntry, PaymentEvent, TopupOrder
from wits.payments import bank, stripe_checkout

logger = logging.getLogger(__name__)

PACKS: tuple[int, ...] = (1_000_000, 5_000_000, 20_000_000, 100_000_000)
# The smallest pack is also the smallest custom order: below it card fees and Stripe's minimum
# charge dominate. The largest keeps a typo from turning into a 100x order.
CUSTOM_MIN_WITS = 1_000_000
CUSTOM_MAX_WITS = 1_000_000_000
# No 0/O/1/I: buyers type the reference into a bank transfer's memo by hand.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 8
REFERENCE_PREFIX = "CW"


@dataclass(frozen=True)
class TierOffer:
    slug: str
    name: str
    requests_per_minute: int
    price_per_million: int
    price_label: str
    is_viewer: bool


@dataclass(frozen=True)
class PackOffer:
    wits: int
    price: int
    price_label: str


@dataclass(frozen=True)
class Method:
    name: str
    label: str


@dataclass(frozen=True)
class PricingOverview:
    currency: str
    tiers: list[TierOffer]
    # The tier the packs are priced at: the viewer's, or a new account's for visitors.
    pack_tier: str
    packs: list[PackOffer]
    methods: list[Method]
    custom_min: int
    custom_max: int


@dataclass(frozen=True)
class StartedOrder:
    order_id: uuid.UUID
    # The provider's payment page, or our own order page when there is none.
    next_url: str


@dataclass(frozen=True)
class OrderView:
    id: uuid.UUID
    reference: str
    wits: int
    price_label: str
    provider: str
    provider_label: str
    state: str
    created_at: datetime
    credited_at: datetime | None
    # Shown while a bank-transfer order waits for the money.
    instructions: str | None


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: dict


def _tier_of(user: User | None) -> Tier:
    if user is not None and user.tier_id is not None:
        return user.tier
    return accounts.default_tier()


def methods() -> list[Method]:
    """The payment methods offered now; Stripe only when STRIPE_SECRET_KEY is set."""
    return [Method(p.name, p.label) for p in payments.enabled_providers()]


def pricing_overview(*, user: User | None) -> PricingOverview:
    """Tiers and packs as `user` (None for a visitor) would pay for them."""
    currency = settings.WITS_CURRENCY
    pack_tier = _tier_of(user)
    viewer_slug = pack_tier.slug if user is not None else None
    tiers = [
        TierOffer(
            slug=tier.slug,
            name=tier.name,
            requests_per_minute=tier.requests_per_minute,
            price_per_million=tier.price_per_million,
            price_label=pricing.format_money(tier.price_per_million, currency),
            is_viewer=tier.slug == viewer_slug,
        )
        for tier in Tier.objects.order_by("sort_order", "slug")
    ]
    packs = []
    for wits in PACKS:
        price = pricing.pack_price(wits=wits, price_per_million=pack_tier.price_per_million)
        packs.append(PackOffer(wits, price, pricing.format_money(price, currency)))
    return PricingOverview(
        currency=currency,
        tiers=tiers,
        pack_tier=pack_tier.name,
        packs=packs,
        methods=methods(),
        custom_min=CUSTOM_MIN_WITS,
        custom_max=CUSTOM_MAX_WITS,
    )


def _new_reference() -> str:
    return REFERENCE_PREFIX + "".join(
        secrets.choice(REFERENCE_ALPHABET) for _i in range(REFERENCE_LENGTH)
    )


def _create_order(*, user: User, wits: int, price: int, provider: str) -> TopupOrder:
    # 32^8 references make a collision rare, not impossible: the unique index decides.
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return TopupOrder.objects.create(
                    user=user,
                    wits=wits,
                    price=price,
                    currency=settings.WITS_CURRENCY,
                    provider=provider,
                    reference=_new_reference(),
                )
        except IntegrityError:
            continue
    raise RuntimeError("could not find a free order reference")


def start_order(*, user: User, wits: int, method: str) -> StartedOrder:
    """Create a pending order for `wits` at the user's tier price and start paying for it.

    Raises ApiError(invalid_request) for a method not offered or an amount out of bounds (no
    order is created), and ApiError(service_unavailable) when the provider refuses (the order
    it was for is canceled, so it can never be credited).
    """
    provider = payments.enabled_provider(method)
    if provider is None:
        raise ApiError(Code.INVALID_REQUEST, _("That payment method is not available."))
    if not CUSTOM_MIN_WITS <= wits <= CUSTOM_MAX_WITS:
        raise ApiError(Code.INVALID_REQUEST, _("That amount of Wits cannot be ordered."))
    price = pricing.pack_price(wits=wits, price_per_million=_tier_of(user).price_per_million)
    if price <= 0:
        raise ApiError(Code.INVALID_REQUEST, _("That amount of Wits cannot be ordered."))
    order = _create_order(user=user, wits=wits, price=price, provider=provider.name)
    ticket = payments.OrderTicket(
        order_id=order.id,
        reference=order.reference,
        wits=order.wits,
        price=order.price,
        currency=order.currency,
        email=user.email,
    )
    # The provider is called outside any transaction: the order row must exist for its
    # webhook, and a slow provider must not hold a database connection in a transaction.
    try:
        checkout = provider.start(ticket)
    except payments.PaymentError as exc:
        logger.warning("payment provider %s refused order %s: %s", provider.name, order.id, exc)
        ledger.cancel_order(order_id=order.id)
        raise ApiError(
            Code.SERVICE_UNAVAILABLE,
            _("The payment could not be started. Try again, or pick another payment method."),
        ) from None
    if checkout.external_id:
        TopupOrder.objects.filter(pk=order.id).update(external_id=checkout.external_id)
    next_url = checkout.redirect_url or reverse("topup-order", args=[order.id])
    return StartedOrder(order_id=order.id, next_url=next_url)


def _order_view(order: TopupOrder) -> OrderView:
    pending_bank = (
        order.provider == TopupOrder.Provider.BANK and order.state == TopupOrder.State.PENDING
    )
    labels = {p.name: p.label for p in payments.all_providers()}
    return OrderView(
        id=order.id,
        reference=order.reference,
        wits=order.wits,
        price_label=pricing.format_money(order.price, order.currency),
        provider=order.provider,
        provider_label=labels.get(order.provider, order.provider),
        state=order.state,
        created_at=order.created_at,
        credited_at=order.credited_at,
        instructions=bank.instructions() if pending_bank else None,
    )


def order_detail(*, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderView:
    """One of the user's own orders; ApiError(not_found) for a missing or foreign one."""
    order = TopupOrder.objects.filter(pk=order_id, user_id=user_id).first()
    if order is None:
        raise ApiError(Code.NOT_FOUND)
    return _order_view(order)


def order_history(*, user_id: uuid.UUID, limit: int = 100) -> list[OrderView]:
    orders = TopupOrder.objects.filter(user_id=user_id).order_by("-created_at")[:limit]
    return [_order_view(order) for order in orders]


def handle_stripe_webhook(*, payload: bytes, signature: str | None) -> WebhookResult:
    """Verify a Stripe webhook and act on it at most once.

    400 for a delivery that fails verification (nothing read, nothing written); 200 for every
    verified one, including replays and event types we ignore, so Stripe stops retrying.
    """
    try:
        notice = stripe_checkout.parse_webhook(payload, signature)
    except payments.InvalidWebhook as exc:
        logger.warning("rejected a Stripe webhook: %s", exc)
        return WebhookResult(
            400,
            {
                "error": {
                    "code": str(Code.INVALID_REQUEST),
                    "message": "Invalid webhook signature or payload.",
                }
            },
        )
    return WebhookResult(200, {"received": True, "result": apply_notice(notice)})


def _record(notice: payments.PaymentNotice, order: TopupOrder | None) -> bool:
    """Insert the event's row; False when it was already there (a replay)."""
    try:
        with transaction.atomic():
            PaymentEvent.objects.create(
                provider=notice.provider,
                event_id=notice.event_id[:255],
                kind=notice.kind[:64],
                order=order,
            )
    except IntegrityError:
        return False
    return True


def apply_notice(notice: payments.PaymentNotice) -> str:
    """Act on one verified provider event, exactly once; returns what happened, for the log."""
    if notice.outcome == payments.Outcome.UNHANDLED:
        return "ignored"
    with transaction.atomic():
        order = None
        if notice.order_id is not None:
            order = TopupOrder.objects.filter(pk=notice.order_id).first()
        if not _record(notice, order):
            return "duplicate"
        if order is None:
            logger.info("%s event %s names no order of ours", notice.provider, notice.event_id)
            return "unknown_order"
        if order.provider != notice.provider or (
            order.external_id and order.external_id != notice.external_id
        ):
            logger.error(
                "%s event %s for order %s names payment %r, the order is %s payment %r",
                notice.provider,
                notice.event_id,
                order.id,
                notice.external_id,
                order.provider,
                order.external_id,
            )
            return "order_mismatch"
        if notice.outcome == payments.Outcome.FAILED:
            return "canceled" if ledger.cancel_order(order_id=order.id) else "unchanged"
        if notice.outcome == payments.Outcome.PENDING:
            return "pending"
        if notice.amount != order.price or notice.currency != order.currency.upper():
            logger.error(
                "%s event %s paid %s %s for order %s priced %s %s: not credited",
                notice.provider,
                notice.event_id,
                notice.amount,
                notice.currency,
                order.id,
                order.price,
                order.currency,
            )
            return "amount_mismatch"
        credited = ledger.credit_order(
            order_id=order.id,
            actor=notice.provider,
            note=f"{notice.provider} event {notice.event_id} for order {order.reference}",
        )
        if credited:
            webhooks.topup_credited(order_id=order.id)
            return "credited"
        state = TopupOrder.objects.filter(pk=order.id).values_list("state", flat=True).first()
        if state == TopupOrder.State.CANCELED:
            # The buyer paid for an order we had canceled: staff must refund or credit by hand.
            logger.error(
                "%s event %s paid order %s, which is canceled: not credited",
                notice.provider,
                notice.event_id,
                order.id,
            )
        return "already_settled"


def confirm_bank_payment(*, order_id: uuid.UUID, actor: str) -> bool:
    """Credit a bank-transfer order staff saw paid; False (nothing written) when it is not a
    pending bank order."""
    order = TopupOrder.objects.filter(pk=order_id, provider=TopupOrder.Provider.BANK).first()
    if order is None:
        return False
    # One transaction: the credit and its webhook event exist together or not at all.
    with transaction.atomic():
        credited = ledger.credit_order(
            order_id=order.id, actor=actor, note=f"bank transfer {order.reference} confirmed"
        )
        if credited:
            webhooks.topup_credited(order_id=order.id)
    return credited


def cancel_order(*, order_id: uuid.UUID) -> bool:
    """Cancel a pending order so it can never be credited; False when it is not pending."""
    return ledger.cancel_order(order_id=order_id)


def admin_grant(
    *, user_ids: Sequence[uuid.UUID], amount: int, note: str, actor: str
) -> list[LedgerEntry]:
    """Grant (amount > 0) or adjust (amount < 0) every listed wallet by `amount`, all or none.

    Raises ledger.LedgerError, writing nothing at all, when any wallet refuses (an adjustment
    below zero, a missing note).
    """
    kind = LedgerEntry.Kind.GRANT if amount > 0 else LedgerEntry.Kind.ADJUSTMENT
    # Wallet-key order: two batch grants over overlapping wallets lock in the same order.
    with transaction.atomic():
        return [
            ledger.grant(user_id=user_id, amount=amount, actor=actor, note=note, kind=kind)
            for user_id in sorted(set(user_ids))
        ]
