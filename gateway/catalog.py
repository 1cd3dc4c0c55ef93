"""What admins configure, as one immutable snapshot per process: models, routes, blocklist.

The request path never queries these tables: it reads the snapshot, which each process reloads
at most every GATEWAY_CONFIG_TTL_S seconds (5 by default). So an admin's edit reaches every
process within that time, and the cost is a handful of queries per process per interval.

Auto-routing policy (`model: "auto"` or no model): among enabled models of the wanted kind that
have an `auto_rank` and at least one route to an enabled provider, the lowest rank wins; ties go
to the lower output price, then the name.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from wits.pricing import Price

AUTO = "auto"


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    kind: str
    base_url: str
    api_key_env: str
    timeout_s: float
    connect_timeout_s: float


@dataclass(frozen=True)
class RouteInfo:
    provider: ProviderInfo
    upstream_model: str

    @property
    def key(self) -> str:
        return f"{self.provider.name}/{self.upstream_model}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str
    price: Price
    max_output_tokens: int
    auto_rank: int | None
    routes: tuple[RouteInfo, ...]
    description: str = ""


@dataclass(frozen=True)
class BlockTerm:
    id: int
    pattern: str
    is_regex: bool


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelInfo]
    auto: dict[str, str]  # kind -> model name
    blocklist: tuple[BlockTerm, ...]
    loaded_at: float

    def resolve(self, name: str | None, *, kind: str) -> ModelInfo | None:
        """The model a request names (or the auto choice), if it exists for this kind."""
        if not name or name == AUTO:
            chosen = self.auto.get(kind)
            return self.models.get(chosen) if chosen else None
        model = self.models.get(name)
        return model if model is not None and model.kind == kind else None

    def listed(self) -> list[ModelInfo]:
        return sorted(self.models.values(), key=lambda m: (m.kind, m.name))


def _load() -> Catalog:
    from gateway.models import AiModel, BlockRule, Route

    routes: dict[int, list[RouteInfo]] = {}
    rows = Route.objects.filter(provider__enabled=True, model__enabled=True).select_related(
        "provider"
    )
    for route in rows.order_by("model_id", "position", "id"):
        p = route.provider
        info = ProviderInfo(
            name=p.name,
            kind=p.kind,
            base_url=p.base_url.rstrip("/"),
            api_key_env=p.api_key_env,
            timeout_s=p.timeout_s,
            connect_timeout_s=p.connect_timeout_s,
        )
        routes.setdefault(route.model_id, []).append(RouteInfo(info, route.upstream_model))

    models: dict[str, ModelInfo] = {}
    for m in AiModel.objects.filter(enabled=True):
        cache_read = m.cache_read_price if m.cache_read_price is not None else m.input_price
        models[m.name] = ModelInfo(
            name=m.name,
            kind=m.kind,
            price=Price(Decimal(m.input_price), Decimal(m.output_price), Decimal(cache_read)),
            max_output_tokens=m.max_output_tokens,
            auto_rank=m.auto_rank,
            routes=tuple(routes.get(m.id, ())),
            description=m.description,
        )

    auto: dict[str, str] = {}
    for kind in ("chat", "embedding"):
        candidates = [
            m for m in models.values() if m.kind == kind and m.auto_rank is not None and m.routes
        ]
        if candidates:
            best = min(candidates, key=lambda m: (m.auto_rank, m.price.output, m.name))
            auto[kind] = best.name

    blocklist = tuple(
        BlockTerm(b.id, b.pattern, b.is_regex) for b in BlockRule.objects.filter(enabled=True)
    )
    return Catalog(models=models, auto=auto, blocklist=blocklist, loaded_at=time.monotonic())


_current: Catalog | None = None
_lock = threading.Lock()


def get() -> Catalog:
    """The current snapshot, reloaded when older than GATEWAY_CONFIG_TTL_S."""
    global _current
    snapshot = _current
    ttl = settings.GATEWAY_CONFIG_TTL_S
    if snapshot is not None and time.monotonic() - snapshot.loaded_at < ttl:
        return snapshot
    with _lock:
        if _current is snapshot or _current is None:
            _current = _load()
        return _current


def invalidate() -> None:
    """Drop this process's snapshot (after loadproviders, and in tests)."""
    global _current
    with _lock:
        _current = None
