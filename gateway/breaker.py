"""Circuit breaker per route, per process.

After GATEWAY_BREAKER_FAILURES consecutive failures a route is open (skipped) for
GATEWAY_BREAKER_COOLDOWN_S; then one request probes it (half-open): success closes it,
failure opens it for another cooldown. When every route of a model is open, they are tried
anyway in order: refusing outright would turn a brief outage into a certain one.

Per process by design: each process learns a route's health from its own traffic within a few
requests, and no request pays a shared round trip for it. Correctness never depends on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings

T = TypeVar("T")


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0


@dataclass
class Breaker:
    threshold: int
    cooldown_s: float
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def available(self, key: str) -> bool:
        """Whether a request may use the route now (claims the half-open probe if due)."""
        with self._lock:
            state = self._states.get(key)
            if state is None or state.failures < self.threshold:
                return True
            now = self.clock()
            if now < state.open_until:
                return False
            # Half-open: this caller probes; everyone else waits another cooldown (or for the
            # probe's success, which closes the route).
            state.open_until = now + self.cooldown_s
            return True

    def order(self, items: Sequence[T], key: Callable[[T], str]) -> list[T]:
        ready = [item for item in items if self.available(key(item))]
        return ready if ready else list(items)

    def success(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def failure(self, key: str) -> None:
        with self._lock:
            state = self._states.setdefault(key, _State())
            state.failures += 1
            if state.failures >= self.threshold:
                state.open_until = self.clock() + self.cooldown_s

    def is_open(self, key: str) -> bool:
        with self._lock:
            state = self._states.get(key)
            return bool(
                state and state.failures >= self.threshold and self.clock() < state.open_until
            )

    def reset(self) -> None:
        with self._lock:
            self._states.clear()


_breaker: Breaker | None = None


def get() -> Breaker:
    global _breaker
    if _breaker is None:
        _breaker = Breaker(settings.GATEWAY_BREAKER_FAILURES, settings.GATEWAY_BREAKER_COOLDOWN_S)
    return _breaker
