"""Wallets, reservations, the append-only ledger, and top-up orders.

Only `wits/ledger.py` writes wallets, reservations and entries (a test enforces it). The
database is the backstop for the invariants the ledger keeps:
- wallet: available, reserved, lifetime_used >= 0 and available + reserved + lifetime_used ==
  credited (L1, L2) are CheckConstraints;
- reservation: one per request id (unique), charged within [0, amount];
- entries are never updated or deleted.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Wallet(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.PROTECT, related_name="wallet"
    )
    available = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    lifetime_used = models.BigIntegerField(default=0)
    # Everything ever credited (top-ups, grants, adjustments): the other three always sum to it.
    credited = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(available__gte=0), name="wallet_available_gte_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="wallet_reserved_gte_0"),
            models.CheckConstraint(condition=Q(lifetime_used__gte=0), name="wallet_used_gte_0"),
            models.CheckConstraint(
                condition=Q(credited=F("available") + F("reserved") + F("lifetime_used")),
                name="wallet_conservation",
            ),
        ]

    def __str__(self) -> str:
        return f"wallet of {self.user_id}"


class Reservation(models.Model):
    class State(models.TextChoices):
        HELD = "held"
        COMMITTED = "committed"
        RELEASED = "released"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique through `reservation_request_once` (`unique=True` would add a LIKE-pattern index
    # that every reserve writes and no query reads).
    request_id = models.CharField(max_length=64)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="reservations")
    amount = models.BigIntegerField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.HELD)
    charged = models.BigIntegerField(default=0)
    # Usage reported beyond the reservation: never charged, kept as the operator's loss (L5).
    loss = models.BigIntegerField(default=0)
    # Usage recorded while the request was in flight; reconcile commits it after a crash.
    recorded = models.BigIntegerField(null=True, blank=True)
    settle_reason = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    api_key_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "expires_at"], name="reservation_open_idx")]
        constraints = [
            models.UniqueConstraint(fields=["request_id"], name="reservation_request_once"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="reservation_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(charged__gte=0, charged__lte=F("amount")),
                name="reservation_charged_within_amount",
            ),
            models.CheckConstraint(condition=Q(loss__gte=0), name="reservation_loss_gte_0"),
            models.CheckConstraint(
                condition=Q(state__in=["held", "committed", "released"]),
                name="reservation_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.state} {self.amount}"


class TopupOrder(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        CREDITED = "credited"
        CANCELED = "canceled"

    class Provider(models.TextChoices):
        STRIPE = "stripe"
        BANK = "bank"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topup_orders"
    )
    wits = models.BigIntegerField()
    price = models.BigIntegerField(help_text="In the smallest unit of the currency.")
    currency = models.CharField(max_length=3)
    provider = models.CharField(max_length=12, choices=Provider.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    # The payment provider's id for this order (a Stripe Checkout Session id).
    external_id = models.CharField(max_length=255, blank=True, db_index=True)
    reference = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    credited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(wits__gt=0), name="order_wits_gt_0"),
            models.CheckConstraint(condition=Q(price__gte=0), name="order_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.state}"


class PaymentEvent(models.Model):
    """Every payment-provider event we acted on, once: replays are recognised by id."""

    provider = models.CharField(max_length=12)
    event_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=64)
    order = models.ForeignKey(TopupOrder, null=True, on_delete=models.PROTECT)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="payment_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        TOPUP = "topup"
        GRANT = "grant"
        ADJUSTMENT = "adjustment"
        RESERVE = "reserve"
        COMMIT = "commit"
        RELEASE = "release"

    id = models.BigAutoField(primary_key=True)
    # Indexed by entry_wallet_idx, which leads with it.
    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # The figure the entry is about: credited, held, charged or returned Wits.
    amount = models.BigIntegerField()
    available_delta = models.BigIntegerField()
    reserved_delta = models.BigIntegerField()
    used_delta = models.BigIntegerField()
    available_after = models.BigIntegerField()
    reserved_after = models.BigIntegerField()
    used_after = models.BigIntegerField()
    reservation = models.ForeignKey(
        Reservation, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    order = models.ForeignKey(
        TopupOrder,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="entries",
        db_index=False,
    )
    actor = models.CharField(max_length=255)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["wallet", "-id"], name="entry_wallet_idx"),
            # Only top-up entries carry an order: the gateway's entries skip this index.
            models.Index(
                fields=["order"], condition=Q(order__isnull=False), name="entry_order_idx"
            ),
        ]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"
