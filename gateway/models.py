"""Providers, the models clients may ask for and their routes, usage records, the blocklist.

Providers and models are admin-edited rows (or loaded by `manage.py loadproviders`). A
provider's secret never lives in the database: only the name of the environment variable that
holds it. Usage records are append-only: written once, in the same transaction that settles
the request's reservation, never updated.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, URLValidator
from django.db import models
from django.utils import timezone


class Provider(models.Model):
    class Kind(models.TextChoices):
        OPENAI = "openai"
        ANTHROPIC = "anthropic"
        LOCAL = "local"

    name = models.CharField(max_length=100, unique=True, help_text="Shown as x_clawwits.provider")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    base_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="openai: ends in /v1 (…/v1/chat/completions is posted); anthropic: the SDK's "
        "base URL (…/v1/messages is posted); local: empty.",
    )
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding the provider's key."
    )
    timeout_s = models.FloatField(
        default=60.0, validators=[MinValueValidator(0.1)], help_text="Read timeout, seconds."
    )
    connect_timeout_s = models.FloatField(default=5.0, validators=[MinValueValidator(0.1)])
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.kind == self.Kind.LOCAL:
            return
        if not self.base_url:
            raise ValidationError({"base_url": "A network provider needs a base URL."})
        try:
            URLValidator(schemes=["http", "https"])(self.base_url)
        except ValidationError:
            raise ValidationError({"base_url": "Not an http(s) URL."}) from None


class AiModel(models.Model):
    class Kind(models.TextChoices):
        CHAT = "chat"
        EMBEDDING = "embedding"

    name = models.CharField(max_length=100, unique=True, help_text="What clients send as `model`")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHAT)
    input_price = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        default=Decimal("1"),
        validators=[MinValueValidator(0)],
        help_text="Wits per input token",
    )
    output_price = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        default=Decimal("1"),
        validators=[MinValueValidator(0)],
        help_text="Wits per output token",
    )
    cache_read_price = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Wits per cached input token read; empty = the input price",
    )
    max_output_tokens = models.PositiveIntegerField(
        default=4096, help_text="Largest output cap a request may ask for (and the default)."
    )
    auto_rank = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text='Eligible for model "auto" when set; the lowest rank wins.',
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["kind", "name"]
        db_table = "gateway_model"
        verbose_name = "model"

    def __str__(self) -> str:
        return self.name


class Route(models.Model):
    model = models.ForeignKey(AiModel, on_delete=models.CASCADE, related_name="routes")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="routes")
    upstream_model = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["model", "position", "id"]

    def __str__(self) -> str:
        return f"{self.model} → {self.provider}:{self.upstream_model}"


class UsageRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Indexed by usage_user_time_idx / usage_user_model_idx, which lead with it: a separate
    # index would only cost every insert one more write.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
    )
    api_key_id = models.UUIDField(null=True, blank=True)
    request_id = models.CharField(max_length=64)
    endpoint = models.CharField(max_length=16)
    model = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    stream = models.BooleanField(default=False)
    cached = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    wits = models.BigIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=32, blank=True)
    settle_reason = models.CharField(max_length=32, blank=True)
    screening = models.CharField(
        max_length=64, blank=True, help_text='"pass", or the rule that blocked the request'
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"], name="usage_user_time_idx"),
            models.Index(fields=["user", "model"], name="usage_user_model_idx"),
            models.Index(fields=["api_key_id", "-created_at"], name="usage_key_time_idx"),
            # Looked up by equality only; `db_index=True` would add a LIKE-pattern index too.
            models.Index(fields=["request_id"], name="usage_request_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status}"


class BlockRule(models.Model):
    pattern = models.TextField(help_text="A word or phrase, or a regular expression")
    is_regex = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.pattern[:60]

    def clean(self) -> None:
        from gateway import screening

        super().clean()
        problem = screening.validate_pattern(self.pattern, self.is_regex)
        if problem:
            raise ValidationError({"pattern": problem})
