"""Accounts: users identified by a UUID (the `userId` clients see), and their tier.

Email is the login and is stored lower-cased, so one mailbox is one account.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Tier(models.Model):
    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    requests_per_minute = models.PositiveIntegerField()
    price_per_million = models.PositiveBigIntegerField(
        help_text="Price of 1,000,000 Wits in the smallest unit of the configured currency."
    )
    custom_limit = models.BooleanField(
        default=False, help_text="Accounts on this tier may carry their own requests/minute."
    )
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "slug"]

    def __str__(self) -> str:
        return self.name


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: object) -> User:
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: object) -> User:
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> User:
        fields["is_staff"] = True
        fields["is_superuser"] = True
        return self._create(email, password, **fields)


def _default_low_balance() -> int:
    return settings.WITS_LOW_BALANCE_DEFAULT


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, related_name="users")
    rate_limit_rpm = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Custom requests/minute; only on tiers that allow a custom limit.",
    )
    low_balance_threshold = models.PositiveBigIntegerField(default=_default_low_balance)
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=64, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.email.lower()
        if self.rate_limit_rpm is not None and not (self.tier and self.tier.custom_limit):
            raise ValidationError(
                {"rate_limit_rpm": "Only tiers with a custom limit take a per-account limit."}
            )

    @property
    def requests_per_minute(self) -> int:
        """The account's limit: its custom one on a custom-limit tier, else the tier's."""
        if self.tier is None:
            return 0
        if self.tier.custom_limit and self.rate_limit_rpm:
            return self.rate_limit_rpm
        return self.tier.requests_per_minute


class WebhookEvent(models.Model):
    """One event for an account's webhook, stored before it is sent and kept for good.

    The row is append-only in what it says: `id`, `user`, `type` and `body` (the exact JSON that
    is signed and sent, identical on every attempt) never change and rows are never deleted.
    Only the delivery bookkeeping moves: pending -> delivered, or pending -> failed after the
    last attempt; `attempts` only grows. `accounts.webhooks` is the only writer.
    """

    class Type(models.TextChoices):
        LOW_BALANCE = "low_balance"
        TOPUP_CREDITED = "topup.credited"
        TEST = "webhook.test"

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=32, choices=Type.choices)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # The receiver's HTTP status on the last attempt; null when it gave none (no connection,
    # timeout, refused address).
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the next attempt is due; the sweep re-enqueues pending events long past it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # An attempt in flight holds the event until then, so two workers never send it at once.
    leased_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="webhookevent_user_recent"),
            models.Index(fields=["state", "next_attempt_at"], name="webhookevent_due"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"
