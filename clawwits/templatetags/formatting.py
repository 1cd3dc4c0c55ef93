"""Template filters that format numbers, money, durations and the usage chart for the active
language (`{% load formatting %}`).

Pages format every figure through these rather than turning on USE_THOUSAND_SEPARATOR: that
setting would also group numbers that templates write into form values and data attributes
(`value="{{ pack.wits }}"`), which must stay plain.

Guarantees: grouping and separators follow the active language (en "1,234,567", vi
"1.234.567"), grouping by three when a language declares none; `None` renders as an em dash;
the chart is SVG built by the pure `clawwits.charts`, its text escaped there.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django import template
from django.utils import dateformat, numberformat
from django.utils.formats import date_format, get_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext_noop, ngettext, pgettext
from django.utils.translation import gettext as _

from clawwits import charts
from wits.pricing import CURRENCY_EXPONENT

register = template.Library()

NONE = "—"
# Languages that write the currency symbol after the amount ("12,50 US$").
SYMBOL_AFTER = {"vi"}
SYMBOLS = {"VND": "₫", "USD": "$"}
SYMBOLS_AFTER = {"VND": "₫", "USD": "US$"}
# Seeded tier names, so that `{% translate tier_name %}` finds them in the catalogue.
TIER_NAMES = (gettext_noop("Free trial"),)


def group(value: int | Decimal, decimals: int | None = None) -> str:
    """`value` with the active language's separators, grouped by thousands."""
    return numberformat.format(
        value,
        get_format("DECIMAL_SEPARATOR"),
        decimal_pos=decimals,
        grouping=get_format("NUMBER_GROUPING") or 3,
        thousand_sep=get_format("THOUSAND_SEPARATOR"),
        force_grouping=True,
    )


@register.filter
def number(value: int | None) -> str:
    """An integer grouped for the active language: 1,234,567 / 1.234.567."""
    if value is None or value == "":
        return NONE
    return group(int(value))


@register.filter
def signed(value: int | None) -> str:
    """A change: +1,234 or -1,234 (0 without a sign)."""
    if value is None:
        return NONE
    value = int(value)
    return f"+{group(value)}" if value > 0 else group(value)


@register.filter
def money(amount: int | None, currency: str) -> str:
    """An amount in the currency's smallest unit, for the active language.

    VND: "1,234,567 ₫" (en) / "1.234.567 ₫" (vi); USD: "$12.50" (en) / "12,50 US$" (vi).
    """
    if amount is None:
        return NONE
    exponent = CURRENCY_EXPONENT.get(currency)
    if exponent is None:
        return f"{group(int(amount))} {currency}"
    figure = group(Decimal(int(amount)).scaleb(-exponent), exponent or None)
    if currency == "VND" or (get_language() or "").split("-")[0] in SYMBOL_AFTER:
        return f"{figure} {SYMBOLS_AFTER[currency]}"
    return f"{SYMBOLS[currency]}{figure}"


@register.filter
def ms(value: int | None) -> str:
    """A duration in milliseconds: "1,234 ms"."""
    if value is None:
        return NONE
    return f"{group(int(value))} ms"


def _day_label(day: object) -> str:
    return dateformat.format(day, pgettext("chart axis day, a PHP-style date format", "M j"))


@register.simple_tag
def usage_chart(days: Sequence[object], chart_id: str = "usage-chart") -> SafeString:
    """The dashboard's chart: Wits spent per day as bars, requests per day as a line.

    `days` are `gateway.usage.DayPoint`s, oldest first; every seventh day, counted back from
    the last, is labelled on the x axis.
    """
    last = len(days) - 1
    points = [
        charts.Point(
            key=point.day.isoformat(),
            label=_day_label(point.day) if (last - index) % 7 == 0 else "",
            bar=point.wits,
            line=point.requests,
            title=ngettext(
                "%(day)s: %(wits)s Wits, %(count)s request",
                "%(day)s: %(wits)s Wits, %(count)s requests",
                point.requests,
            )
            % {
                "day": date_format(point.day, "DATE_FORMAT"),
                "wits": group(point.wits),
                "count": group(point.requests),
            },
        )
        for index, point in enumerate(days)
    ]
    title = _("Wits spent (bars) and requests (line) per day")
    # charts escapes every text it writes, so its output is safe to embed as it is.
    return mark_safe(charts.bars_with_line(points, title=title, number=group, chart_id=chart_id))  # noqa: S308


@register.simple_tag(takes_context=True)
def filter_link(context: template.Context, **changes: object) -> str:
    """The current page's query string with `changes` applied (None or "" removes a key)."""
    params = context["request"].GET.copy()
    for name, value in changes.items():
        params.pop(name, None)
        if value not in (None, ""):
            params[name] = str(value)
    encoded = params.urlencode()
    return format_html("?{}", encoded) if encoded else "?"
