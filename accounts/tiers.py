"""The seven tiers of DESIGN.md §4 as data, shared by the data migration and test fixtures.

Tiers are rows that admins edit; this list only seeds a new database. Prices are per 1M Wits in
the smallest unit of WITS_CURRENCY (VND has none smaller than the dong): higher tiers pay less.
"""

from __future__ import annotations

from typing import Any

DEFAULT_TIERS: list[dict[str, Any]] = [
    {
        "slug": "free_trial",
        "name": "Free trial",
        "requests_per_minute": 30,
        "price_per_million": 60_000,
        "sort_order": 0,
        "custom_limit": False,
    },
    {
        "slug": "starter",
        "name": "Starter",
        "requests_per_minute": 300,
        "price_per_million": 55_000,
        "sort_order": 1,
        "custom_limit": False,
    },
    {
        "slug": "plus",
        "name": "Plus",
        "requests_per_minute": 1_000,
        "price_per_million": 50_000,
        "sort_order": 2,
        "custom_limit": False,
    },
    {
        "slug": "pro",
        "name": "Pro",
        "requests_per_minute": 5_000,
        "price_per_million": 45_000,
        "sort_order": 3,
        "custom_limit": False,
    },
    {
        "slug": "power",
        "name": "Power",
        "requests_per_minute": 20_000,
        "price_per_million": 40_000,
        "sort_order": 4,
        "custom_limit": False,
    },
    {
        "slug": "max",
        "name": "Max",
        "requests_per_minute": 100_000,
        "price_per_million": 35_000,
        "sort_order": 5,
        "custom_limit": False,
    },
    {
        "slug": "enterprise",
        "name": "Enterprise",
        "requests_per_minute": 1_000_000,
        "price_per_million": 30_000,
        "sort_order": 6,
        "custom_limit": True,
    },
]
DEFAULT_TIER_SLUG = "free_trial"


def ensure_default_tiers(tier_model: Any) -> None:
    """Create any missing default tier; never touches a tier an admin already has."""
    for row in DEFAULT_TIERS:
        tier_model.objects.get_or_create(slug=row["slug"], defaults=row)
