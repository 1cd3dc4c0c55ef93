"""Payment-provider adapters: the small interface `wits.topups` starts and confirms orders through.

An adapter speaks one provider's wire format and nothing else: it never touches the database
and never moves money. Guarantees every adapter keeps:
- `start` either returns a `Checkout` for the order or raises `PaymentError`; it may be retried
  for the same order without charging twice (Stripe: an idempotency key per order).
- a webhook parser (where the provider has webhooks) returns a `PaymentNotice` only for a
  payload whose signature it verified; anything else raises `InvalidWebhook`.
Crediting (exactly once, amount checked) is `wits.topups`' job, through `wits.ledger`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class PaymentError(Exception):
    """The provider could not start a payment; nothing was charged."""


class InvalidWebhook(Exception):
    """A webhook whose signature, timestamp or payload failed verification."""


@dataclass(frozen=True)
class OrderTicket:
    """What a provider needs to know about an order to charge for it."""

    order_id: uuid.UUID
    reference: str
    wits: int
    # In the smallest unit of `currency` (dong for VND, cents for USD).
    price: int
    currency: str
    email: str


@dataclass(frozen=True)
class Checkout:
    """Where the buyer goes next: the provider's page, or None for our own order page."""

    external_id: str
    redirect_url: str | None


class Outcome(StrEnum):
    PAID = "paid"  # the money is confirmed: credit the order
    PENDING = "pending"  # the buyer finished, the money has not arrived yet
    FAILED = "failed"  # this payment can no longer succeed: cancel the order
    UNHANDLED = "unhandled"  # an event type we do not act on


@dataclass(frozen=True)
class PaymentNotice:
    """A verified provider event about (possibly) one of our orders."""

    provider: str
    event_id: str
    kind: str
    outcome: Outcome
    order_id: uuid.UUID | None = None
    external_id: str = ""
    amount: int | None = None
    currency: str = ""


class PaymentProvider(Protocol):
    # The TopupOrder.Provider value orders of this provider carry.
    name: str

    @property
    def label(self) -> str: ...

    def enabled(self) -> bool:
        """Whether buyers are offered this method now (configuration present)."""
        ...

    def start(self, ticket: OrderTicket) -> Checkout:
        """Begin paying for one order; raises PaymentError when the provider refuses."""
        ...


def all_providers() -> list[PaymentProvider]:
    """Every adapter, in the order buyers see them."""
    # Imported here: the adapters import this module's types.
    from wits.payments import bank, stripe_checkout

    return [stripe_checkout.PROVIDER, bank.PROVIDER]


def enabled_providers() -> list[PaymentProvider]:
    return [provider for provider in all_providers() if provider.enabled()]


def enabled_provider(name: str) -> PaymentProvider | None:
    """The adapter called `name` if it is offered now, else None."""
    return next((p for p in enabled_providers() if p.name == name), None)
