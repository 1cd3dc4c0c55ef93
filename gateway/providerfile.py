"""The providers TOML file of DESIGN.md §7: parse (pure), then apply (upsert by name).

    [[providers]]  name, kind (openai|anthropic|local), base_url, api_key_env, timeout_s,
                   connect_timeout_s?, enabled?
    [[models]]     name, kind (chat|embedding), input_price, output_price, cache_read_price?,
                   max_output_tokens?, auto_rank?, enabled?, description?,
                   routes = [ { provider = "...", model = "..." }, ... ]

Applying is all-or-nothing (one transaction). Providers and models are matched by name and
updated in place; a listed model's routes are replaced by the file's; rows the file does not
mention are left alone. The file never holds secrets: only the env var names that do.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction

PROVIDER_KINDS = {"openai", "anthropic", "local"}
MODEL_KINDS = {"chat", "embedding"}


class ProviderFileError(ValueError):
    """The file cannot be applied; nothing was changed."""


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    kind: str
    base_url: str
    api_key_env: str
    timeout_s: float
    connect_timeout_s: float
    enabled: bool


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    input_price: Decimal
    output_price: Decimal
    cache_read_price: Decimal | None
    max_output_tokens: int
    auto_rank: int | None
    enabled: bool
    description: str
    routes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProviderFile:
    providers: tuple[ProviderSpec, ...]
    models: tuple[ModelSpec, ...]


def _str(table: dict, key: str, where: str, *, required: bool = True, default: str = "") -> str:
    value = table.get(key)
    if value is None:
        if required:
            raise ProviderFileError(f"{where}: `{key}` is required")
        return default
    if not isinstance(value, str):
        raise ProviderFileError(f"{where}: `{key}` must be a string")
    return value


def _number(table: dict, key: str, where: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ProviderFileError(f"{where}: `{key}` must be a positive number")
    return float(value)


def _price(table: dict, key: str, where: str, *, required: bool = True) -> Decimal | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ProviderFileError(f"{where}: `{key}` is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ProviderFileError(f"{where}: `{key}` must be a number")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise ProviderFileError(f"{where}: `{key}` must be a number") from None
    if not price.is_finite() or price < 0 or price != price.quantize(Decimal("0.000001")):
        raise ProviderFileError(f"{where}: `{key}` must be >= 0 with at most 6 decimals")
    return price


def _int(table: dict, key: str, where: str, default: int | None) -> int | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProviderFileError(f"{where}: `{key}` must be a positive integer")
    return value


def _bool(table: dict, key: str, where: str) -> bool:
    value = table.get(key, True)
    if not isinstance(value, bool):
        raise ProviderFileError(f"{where}: `{key}` must be true or false")
    return value


def parse(text: str) -> ProviderFile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProviderFileError(f"not valid TOML: {exc}") from None
    unknown = set(doc) - {"providers", "models"}
    if unknown:
        raise ProviderFileError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    providers: list[ProviderSpec] = []
    for i, table in enumerate(doc.get("providers", [])):
        where = f"providers[{i}]"
        if not isinstance(table, dict):
            raise ProviderFileError(f"{where}: must be a table")
        kind = _str(table, "kind", where)
        if kind not in PROVIDER_KINDS:
            raise ProviderFileError(f"{where}: kind must be one of {sorted(PROVIDER_KINDS)}")
        base_url = _str(table, "base_url", where, required=kind != "local")
        if kind != "local" and not base_url.startswith(("http://", "https://")):
            raise ProviderFileError(f"{where}: base_url must be an http(s) URL")
        providers.append(
            ProviderSpec(
                name=_str(table, "name", where),
                kind=kind,
                base_url=base_url.rstrip("/"),
                api_key_env=_str(table, "api_key_env", where, required=False),
                timeout_s=_number(table, "timeout_s", where, 60.0),
                connect_timeout_s=_number(table, "connect_timeout_s", where, 5.0),
                enabled=_bool(table, "enabled", where),
            )
        )
    models: list[ModelSpec] = []
    for i, table in enumerate(doc.get("models", [])):
        where = f"models[{i}]"
        if not isinstance(table, dict):
            raise ProviderFileError(f"{where}: must be a table")
        kind = _str(table, "kind", where, required=False, default="chat")
        if kind not in MODEL_KINDS:
            raise ProviderFileError(f"{where}: kind must be one of {sorted(MODEL_KINDS)}")
        routes = table.get("routes", [])
        if not isinstance(routes, list):
            raise ProviderFileError(f"{where}: routes must be a list")
        pairs = []
        for j, route in enumerate(routes):
            if not isinstance(route, dict):
                raise ProviderFileError(f"{where}.routes[{j}]: must be a table")
            pairs.append(
                (
                    _str(route, "provider", f"{where}.routes[{j}]"),
                    _str(route, "model", f"{where}.routes[{j}]"),
                )
            )
        models.append(
            ModelSpec(
                name=_str(table, "name", where),
                kind=kind,
                input_price=_price(table, "input_price", where),
                output_price=_price(table, "output_price", where),
                cache_read_price=_price(table, "cache_read_price", where, required=False),
                max_output_tokens=_int(table, "max_output_tokens", where, 4096),
                auto_rank=_int(table, "auto_rank", where, None),
                enabled=_bool(table, "enabled", where),
                description=_str(table, "description", where, required=False),
                routes=tuple(pairs),
            )
        )
    for label, names in (
        ("provider", [p.name for p in providers]),
        ("model", [m.name for m in models]),
    ):
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ProviderFileError(f"duplicate {label} name(s): {', '.join(sorted(dupes))}")
    return ProviderFile(tuple(providers), tuple(models))


@dataclass(frozen=True)
class Applied:
    providers_created: int
    providers_updated: int
    models_created: int
    models_updated: int
    routes: int


def apply(spec: ProviderFile) -> Applied:
    from gateway import catalog
    from gateway.models import AiModel, Provider, Route

    counts = {"pc": 0, "pu": 0, "mc": 0, "mu": 0, "r": 0}
    with transaction.atomic():
        for p in spec.providers:
            _, created = Provider.objects.update_or_create(
                name=p.name,
                defaults={
                    "kind": p.kind,
                    "base_url": p.base_url,
                    "api_key_env": p.api_key_env,
                    "timeout_s": p.timeout_s,
                    "connect_timeout_s": p.connect_timeout_s,
                    "enabled": p.enabled,
                },
            )
            counts["pc" if created else "pu"] += 1
        providers = {p.name: p for p in Provider.objects.all()}
        for m in spec.models:
            for provider_name, _ in m.routes:
                if provider_name not in providers:
                    raise ProviderFileError(
                        f"model {m.name}: route names unknown provider {provider_name!r}"
                    )
            model, created = AiModel.objects.update_or_create(
                name=m.name,
                defaults={
                    "kind": m.kind,
                    "input_price": m.input_price,
                    "output_price": m.output_price,
                    "cache_read_price": m.cache_read_price,
                    "max_output_tokens": m.max_output_tokens,
                    "auto_rank": m.auto_rank,
                    "enabled": m.enabled,
                    "description": m.description,
                },
            )
            counts["mc" if created else "mu"] += 1
            Route.objects.filter(model=model).delete()
            for position, (provider_name, upstream_model) in enumerate(m.routes):
                Route.objects.create(
                    model=model,
                    provider=providers[provider_name],
                    upstream_model=upstream_model,
                    position=position,
                )
                counts["r"] += 1
    catalog.invalidate()
    return Applied(counts["pc"], counts["pu"], counts["mc"], counts["mu"], counts["r"])
