"""Typed readers for environment variables.

Every setting ClawWits reads from the environment goes through these helpers, so a typo in a
value fails at start-up with the variable's name instead of misbehaving later. Every variable
read here is listed in README.md's configuration table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    """An environment variable holds a value that cannot be used."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class DatabaseConfig:
    engine: str
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: tuple[tuple[str, str], ...] = ()


def parse_database_url(url: str) -> DatabaseConfig:
    """Parse `postgres://user:pass@host:port/name?sslmode=require` or `sqlite:///path`."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        # sqlite:///relative.db keeps one slash; sqlite:////abs/path.db keeps the absolute path.
        name = path[1:] if path.startswith("/") and not path.startswith("//") else path[1:]
        if not name:
            raise ConfigError("DATABASE_URL sqlite:/// needs a file path")
        return DatabaseConfig(engine="django.db.backends.sqlite3", name=name)
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ConfigError("DATABASE_URL must name a database: postgres://.../NAME")
        query = parse_qs(parts.query)
        options = tuple((key, values[-1]) for key, values in sorted(query.items()))
        return DatabaseConfig(
            engine="django.db.backends.postgresql",
            name=name,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=unquote(parts.hostname or ""),
            port=str(parts.port or ""),
            options=options,
        )
    raise ConfigError(f"DATABASE_URL scheme {scheme!r} is not supported (postgres or sqlite)")


def celery_broker_url(redis_url: str) -> str:
    """The Celery broker URL for `REDIS_URL`: the same Redis, spelled as kombu wants it.

    redis-py (cache, rate limits) reads `unix:///path/redis.sock?db=N`; kombu names the same
    socket `redis+socket:///path/redis.sock?virtual_host=N`. Other URLs are passed through."""
    parts = urlsplit(redis_url)
    if parts.scheme.lower() != "unix":
        return redis_url
    query = [
        ("virtual_host" if key == "db" else key, values[-1])
        for key, values in sorted(parse_qs(parts.query).items())
    ]
    suffix = "?" + "&".join(f"{key}={value}" for key, value in query) if query else ""
    return f"redis+socket://{parts.netloc}{parts.path}{suffix}"
