"""Account creation: the user, their wallet and any welcome grant, in one transaction."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts.models import Tier, User
from accounts.tiers import DEFAULT_TIER_SLUG, DEFAULT_TIERS
from wits import ledger


class AccountError(Exception):
    """The account could not be created; nothing was written."""


def default_tier() -> Tier:
    tier = Tier.objects.filter(slug=DEFAULT_TIER_SLUG).first()
    if tier is None:
        # A database flushed by tests or an admin who deleted the row: recreate from the seed.
        row = next(r for r in DEFAULT_TIERS if r["slug"] == DEFAULT_TIER_SLUG)
        tier, _ = Tier.objects.get_or_create(slug=DEFAULT_TIER_SLUG, defaults=row)
    return tier


def create_account(
    *,
    email: str,
    password: str | None,
    tier_slug: str | None = None,
    welcome_wits: int | None = None,
    actor: str = "system",
    is_staff: bool = False,
) -> User:
    """Create a user with a wallet; `welcome_wits` defaults to WITS_WELCOME_GRANT.

    Either all of it exists afterwards (user, wallet, welcome entry) or none of it does.
    """
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise AccountError(f"{email!r} is not a valid email address") from None
    if tier_slug:
        tier = Tier.objects.filter(slug=tier_slug).first()
        if tier is None:
            known = ", ".join(Tier.objects.values_list("slug", flat=True))
            raise AccountError(f"unknown tier {tier_slug!r} (known: {known})")
    else:
        tier = default_tier()
    grant = settings.WITS_WELCOME_GRANT if welcome_wits is None else welcome_wits
    if grant < 0:
        raise AccountError("a welcome grant cannot be negative")
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email,
                password=password,
                tier=tier,
                is_staff=is_staff,
                is_superuser=is_staff,
            )
            ledger.open_wallet(user_id=user.id)
            if grant:
                ledger.grant(user_id=user.id, amount=grant, actor=actor, note="welcome grant")
    except IntegrityError:
        raise AccountError(f"an account with email {email} already exists") from None
    return user


def find_user(email: str) -> User:
    user = User.objects.filter(email=(email or "").strip().lower()).first()
    if user is None:
        raise AccountError(f"no account with email {email}")
    return user
