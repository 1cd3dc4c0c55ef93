"""Shared fixtures. Tests run on real PostgreSQL and Redis started by `scripts/test`.

Factories create state the way the product does: accounts through `accounts.services`,
balances through `wits.ledger`, keys through `apikeys.services` — never by writing fields.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest

_emails = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("django"):
        return
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "REDIS_URL"
    ):
        pytest.exit(
            "The suite runs on real PostgreSQL and Redis: use `scripts/test` (it starts them), "
            "or set DATABASE_URL=postgres://... and REDIS_URL=redis://...",
            returncode=2,
        )
    from django.conf import settings

    # Password hashing is not what these tests are about; keep it fast.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """Every test starts with an empty Redis (rate-limit windows, caches)."""
    from clawwits import redisclient

    if redisclient.configured():
        redisclient.client().flushdb()


@pytest.fixture
def redis_client():
    from clawwits import redisclient

    return redisclient.client()


@pytest.fixture
def make_user(db) -> Callable[..., object]:
    from accounts import services
    from accounts.models import Tier
    from accounts.tiers import ensure_default_tiers

    def make(
        email: str | None = None,
        *,
        password: str = "correct-horse-9",
        tier: str | None = None,
        wits: int = 0,
        staff: bool = False,
    ) -> object:
        # Transactional tests flush the tiers the data migration seeded.
        ensure_default_tiers(Tier)
        return services.create_account(
            email=email or f"user{next(_emails)}@example.com",
            password=password,
            tier_slug=tier,
            welcome_wits=wits,
            is_staff=staff,
        )

    return make


@pytest.fixture
def make_api_key(db) -> Callable[..., str]:
    from apikeys import services
    from apikeys.scopes import parse_scopes

    def make(
        user: object, scopes: str = "full", *, name: str = "test key", rpm: int | None = None
    ) -> str:
        return services.create_key(
            user_id=user.id, name=name, scopes=parse_scopes(scopes), rate_limit_rpm=rpm
        ).plaintext

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
