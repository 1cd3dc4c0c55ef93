"""Pricing, pure: Wits for a request's usage, the reservation that covers it, top-up prices.

- Prices are Decimals in Wits per token; every charge is rounded up once per request, at the
  end, never per token.
- `reservation_for` is an upper bound of `charge_for` for any usage within the bounds it was
  given (prompt <= prompt_upper_bound, completion <= output_cap): cache reads and writes never
  cost more than uncached input, so pricing every prompt token as uncached input covers them.
- Money is an integer in the currency's smallest unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

# Our own response cache serves a repeat for this fraction of the normal price.
CACHE_HIT_FACTOR = Decimal("0.1")
# Upper bounds used when a request's size must be estimated before a tokenizer runs.
TOKENS_PER_MESSAGE = 8
TOKENS_PER_REQUEST = 16
TOKENS_PER_IMAGE = 2_000

CURRENCY_EXPONENT = {"VND": 0, "USD": 2}


@dataclass(frozen=True)
class Price:
    input: Decimal
    output: Decimal
    cache_read: Decimal

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_read"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} price must be >= 0")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def charge_for(price: Price, usage: Usage) -> int:
    """Wits for real usage: uncached input + cache reads at their rate + output, rounded up."""
    cache_read = min(max(usage.cache_read_tokens, 0), max(usage.prompt_tokens, 0))
    uncached = max(usage.prompt_tokens, 0) - cache_read
    total = (
        uncached * price.input
        + cache_read * price.cache_read
        + max(usage.completion_tokens, 0) * price.output
    )
    return _ceil(total)


def cache_hit_charge(price: Price, usage: Usage) -> int:
    """What a response served from our own cache costs: a fraction, still rounded up once."""
    full = (
        max(usage.prompt_tokens, 0) * price.input + max(usage.completion_tokens, 0) * price.output
    )
    return _ceil(full * CACHE_HIT_FACTOR)


def reservation_for(price: Price, *, prompt_upper_bound: int, output_cap: int) -> int:
    """The Wits to hold so that any usage within the bounds is covered; at least 1."""
    total = max(prompt_upper_bound, 0) * price.input + max(output_cap, 0) * price.output
    return max(1, _ceil(total))


def prompt_upper_bound(*, text_bytes: int, messages: int, images: int = 0) -> int:
    """An upper bound on prompt tokens without running the upstream's tokenizer.

    Byte-level BPE and SentencePiece-with-byte-fallback tokenizers emit at most one token per
    UTF-8 byte, so the byte count bounds the text; message framing and images get fixed
    allowances.
    """
    return (
        text_bytes + messages * TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST + images * TOKENS_PER_IMAGE
    )


def affordable_output(price: Price, *, available: int, prompt_upper_bound: int) -> int:
    """The largest output cap `available` Wits can cover after the prompt (0 if none)."""
    if price.output <= 0:
        return 0
    left = Decimal(available) - max(prompt_upper_bound, 0) * price.input
    if left <= 0:
        return 0
    return int(left / price.output)


def pack_price(*, wits: int, price_per_million: int) -> int:
    """Price of `wits` at a tier's price per 1M Wits, in the smallest currency unit, rounded up."""
    if wits <= 0:
        raise ValueError("a pack holds a positive number of Wits")
    return -(-wits * price_per_million // 1_000_000)


def format_money(amount: int, currency: str) -> str:
    """'150.000 ₫' / '$12.50' — the plain form used in APIs and emails (pages localise it)."""
    exponent = CURRENCY_EXPONENT[currency]
    if currency == "VND":
        return f"{amount:,}".replace(",", ".") + " ₫"
    return f"${amount / 10**exponent:,.{exponent}f}"
