"""wits/pricing.py: request charges, reservations that bound them, top-up prices, money text.

Pure: no database, no settings.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wits.pricing import (
    Price,
    Usage,
    affordable_output,
    cache_hit_charge,
    charge_for,
    format_money,
    pack_price,
    prompt_upper_bound,
    reservation_for,
)


def price(inp: str, out: str, cache: str = "0") -> Price:
    return Price(input=Decimal(inp), output=Decimal(out), cache_read=Decimal(cache))


# --- charge_for -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "usage", "expected"),
    [
        (price("1", "4"), Usage(10, 5), 30),
        (price("1", "4"), Usage(0, 0), 0),
        # 0.75 + 0.25 = 1: rounded once for the request, not once per side (which gives 2).
        (price("0.25", "0.25"), Usage(3, 1), 1),
        # 0.3 + 0.3 = 0.6 rounds up to 1, never down to 0.
        (price("0.1", "0.3"), Usage(3, 1), 1),
        (price("0.001", "0.002"), Usage(1, 0), 1),
        (price("1.5", "2.5"), Usage(3, 3), 12),
        (price("1", "4"), Usage(-5, -1), 0),
    ],
)
def test_charges_usage_rounded_up_once_per_request(p, usage, expected):
    assert charge_for(p, usage) == expected


def test_cache_reads_cost_their_cheaper_rate():
    p = price("1", "4", "0.1")

    cached = charge_for(p, Usage(prompt_tokens=100, completion_tokens=0, cache_read_tokens=80))
    uncached = charge_for(p, Usage(prompt_tokens=100, completion_tokens=0))

    assert (cached, uncached) == (28, 100)


def test_cache_reads_beyond_the_prompt_count_as_the_prompt():
    p = price("1", "4", "0.1")

    assert charge_for(p, Usage(prompt_tokens=100, completion_tokens=2, cache_read_tokens=500)) == 18


@pytest.mark.parametrize("field", ["input", "output", "cache_read"])
def test_refuses_a_negative_price(field):
    values = {"input": Decimal(1), "output": Decimal(1), "cache_read": Decimal(0)}
    values[field] = Decimal("-0.1")

    with pytest.raises(ValueError, match=field):
        Price(**values)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [(Usage(10, 5), 3), (Usage(1, 1), 1), (Usage(0, 0), 0), (Usage(100, 0), 10)],
)
def test_cache_hit_costs_a_tenth_rounded_up(usage, expected):
    assert cache_hit_charge(price("1", "4"), usage) == expected


# --- reservation_for --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "prompt", "cap", "expected"),
    [
        (price("1", "4"), 100, 50, 300),
        (price("0.3", "0.3"), 1, 0, 1),
        (price("0.25", "0.5"), 3, 3, 3),
        (price("0", "0"), 100, 100, 1),
        (price("1", "4"), 0, 0, 1),
        (price("1", "4"), -10, -10, 1),
    ],
)
def test_reservation_covers_bounds_and_is_at_least_one(p, prompt, cap, expected):
    assert reservation_for(p, prompt_upper_bound=prompt, output_cap=cap) == expected


prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
fractions = st.decimals(min_value=0, max_value=1, places=3)


@st.composite
def price_and_usage(draw: st.DrawFn) -> tuple[Price, int, int, Usage]:
    inp = draw(prices)
    # The module's contract: a cache read never costs more than uncached input.
    cache = (inp * draw(fractions)).quantize(Decimal("0.0001"))
    p = Price(input=inp, output=draw(prices), cache_read=min(cache, inp))
    prompt_bound = draw(st.integers(min_value=0, max_value=2_000_000))
    cap = draw(st.integers(min_value=0, max_value=200_000))
    prompt = draw(st.integers(min_value=0, max_value=prompt_bound))
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=draw(st.integers(min_value=0, max_value=cap)),
        cache_read_tokens=draw(st.integers(min_value=0, max_value=prompt)),
    )
    return p, prompt_bound, cap, usage


@given(price_and_usage())
def test_reservation_is_an_upper_bound_of_any_charge_within_its_bounds(case):
    p, prompt_bound, cap, usage = case

    reserved = reservation_for(p, prompt_upper_bound=prompt_bound, output_cap=cap)

    assert charge_for(p, usage) <= reserved
    assert cache_hit_charge(p, usage) <= reserved


# --- prompt_upper_bound -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text_bytes", "messages", "images", "expected"),
    [
        (0, 0, 0, 16),
        (100, 3, 0, 100 + 3 * 8 + 16),
        (100, 1, 2, 100 + 8 + 16 + 4_000),
    ],
)
def test_prompt_bound_is_bytes_plus_framing_allowances(text_bytes, messages, images, expected):
    assert prompt_upper_bound(text_bytes=text_bytes, messages=messages, images=images) == expected


def test_prompt_bound_counts_utf8_bytes_not_characters():
    text = "Xin chào thế giới"
    assert (len(text), len(text.encode())) == (17, 22)

    bound = prompt_upper_bound(text_bytes=len(text.encode()), messages=1)

    assert bound == 22 + 8 + 16


# --- affordable_output ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "available", "prompt", "expected"),
    [
        (price("1", "4"), 1000, 200, 200),
        (price("1", "4"), 1003, 200, 200),
        (price("1", "4"), 200, 200, 0),
        (price("1", "4"), 100, 200, 0),
        (price("1", "0"), 1000, 0, 0),
        (price("0.5", "0.25"), 10, 4, 32),
    ],
)
def test_affordable_output_is_what_is_left_after_the_prompt(p, available, prompt, expected):
    assert affordable_output(p, available=available, prompt_upper_bound=prompt) == expected


@given(
    inp=prices,
    out=st.decimals(min_value=Decimal("0.0001"), max_value=100, places=4),
    available=st.integers(min_value=0, max_value=10**9),
    prompt=st.integers(min_value=0, max_value=10**6),
)
def test_affordable_output_is_the_largest_cap_the_balance_can_reserve(inp, out, available, prompt):
    p = Price(input=inp, output=out, cache_read=Decimal(0))

    cap = affordable_output(p, available=available, prompt_upper_bound=prompt)

    if cap > 0:
        assert reservation_for(p, prompt_upper_bound=prompt, output_cap=cap) <= available
    assert prompt * inp + (cap + 1) * out > available


# --- pack_price -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wits", "per_million", "expected"),
    [
        (1_000_000, 60_000, 60_000),
        (5_000_000, 55_000, 275_000),
        (100_000_000, 30_000, 3_000_000),
        (1, 60_000, 1),
        (1_500_001, 45_000, 67_501),
        (1_000_000, 250, 250),
        (2_500_000, 199, 498),
        (1_000_000, 0, 0),
    ],
)
def test_pack_price_is_the_tier_rate_rounded_up(wits, per_million, expected):
    assert pack_price(wits=wits, price_per_million=per_million) == expected


@pytest.mark.parametrize("wits", [0, -1])
def test_pack_price_refuses_an_empty_pack(wits):
    with pytest.raises(ValueError, match="positive"):
        pack_price(wits=wits, price_per_million=60_000)


@given(
    wits=st.integers(min_value=1, max_value=10**12),
    per_million=st.integers(min_value=0, max_value=10**7),
)
def test_pack_price_never_undercharges_by_a_unit_or_more(wits, per_million):
    charged = pack_price(wits=wits, price_per_million=per_million)

    assert charged * 1_000_000 >= wits * per_million
    assert (charged - 1) * 1_000_000 < wits * per_million


def test_higher_tier_packs_cost_less():
    from accounts.tiers import DEFAULT_TIERS

    rates = [
        row["price_per_million"] for row in sorted(DEFAULT_TIERS, key=lambda r: r["sort_order"])
    ]
    costs = [pack_price(wits=5_000_000, price_per_million=rate) for rate in rates]

    assert costs == sorted(costs, reverse=True)
    assert len(set(costs)) == len(costs)


# --- format_money -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (150_000, "VND", "150.000 ₫"),
        (0, "VND", "0 ₫"),
        (999, "VND", "999 ₫"),
        (1_234_567, "VND", "1.234.567 ₫"),
        (1250, "USD", "$12.50"),
        (5, "USD", "$0.05"),
        (0, "USD", "$0.00"),
        (123_456_789, "USD", "$1,234,567.89"),
    ],
)
def test_formats_money_in_the_currency_smallest_unit(amount, currency, text):
    assert format_money(amount, currency) == text


def test_format_money_refuses_an_unknown_currency():
    with pytest.raises(KeyError):
        format_money(100, "EUR")
