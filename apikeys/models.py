"""API keys: only a digest and a short lookup are stored; the plaintext is shown once."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from apikeys import keys
from apikeys.scopes import Scope, parse_scopes


class ApiKey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=keys.LOOKUP_LEN, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    scopes = models.CharField(
        max_length=64, help_text="Comma-separated: full, ai, data, automation"
    )
    rate_limit_rpm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Optional requests/minute below the account's limit."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set on the old key when it is rotated: it keeps working until then.
    expires_at = models.DateTimeField(null=True, blank=True)
    rotated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.visible_prefix})"

    @property
    def visible_prefix(self) -> str:
        return keys.visible_prefix(self.lookup)

    @property
    def scope_set(self) -> frozenset[Scope]:
        return parse_scopes(self.scopes)

    def is_usable(self, now: timezone.datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    @property
    def state(self) -> str:
        now = timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None:
            return "expiring" if self.expires_at > now else "expired"
        return "active"
