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
