"""Fixtures of the API-key tests: a controllable clock and row look-ups by plaintext."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest


@dataclass
class Clock:
    """`django.utils.timezone.now` frozen at `now`; tests move it with `advance`."""

    now: datetime

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    from django.utils import timezone

    frozen = Clock(timezone.now())
    monkeypatch.setattr(timezone, "now", lambda: frozen.now)
    return frozen


@pytest.fixture
def key_row(db) -> Callable[[str], object]:
    """The ApiKey row of a plaintext (found by its lookup, as authentication does)."""
    from apikeys import keys
    from apikeys.models import ApiKey

    def find(plaintext: str) -> ApiKey:
        return ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)

    return find
