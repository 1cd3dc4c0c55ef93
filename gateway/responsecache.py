"""Exact-match response cache for deterministic chat requests, shared through the cache backend.

Eligible: temperature 0, no tools, not streamed. The key is a SHA-256 of the protocol, the
resolved model, the output cap and the request body without fields that do not change the
answer (stream, user, metadata). A hit is billed at pricing.CACHE_HIT_FACTOR of the original
usage and answered with `x_clawwits.cached = true`. With REDIS_URL set, every process shares
hits; in the embedded default the cache is per process. GATEWAY_CACHE_TTL_S=0 turns it off.
A cache outage never fails a request: it is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from gateway.translate import Usage

logger = logging.getLogger("clawwits.responsecache")
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata"})


@dataclass(frozen=True)
class Hit:
    response: dict
    usage: Usage
    provider: str


def key(*, protocol: str, model: str, body: dict, cap: int) -> str:
    material = {k: v for k, v in body.items() if k not in _IGNORED and k != "model"}
    blob = json.dumps(
        {"p": protocol, "m": model, "cap": cap, "b": material},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return "rc:" + hashlib.sha256(blob.encode()).hexdigest()


def get(cache_key: str) -> Hit | None:
    if not settings.GATEWAY_CACHE_TTL_S:
        return None
    try:
        value = cache.get(cache_key)
    except Exception:  # noqa: BLE001 - an unavailable cache is a miss, never an error
        logger.warning("response cache unavailable for get")
        return None
    if not isinstance(value, dict):
        return None
    usage = value.get("usage") or [0, 0, 0]
    return Hit(value["response"], Usage(usage[0], usage[1], usage[2]), value["provider"])


def put(cache_key: str, *, response: dict, usage: Usage, provider: str) -> None:
    if not settings.GATEWAY_CACHE_TTL_S:
        return
    value = {
        "response": {k: v for k, v in response.items() if k != "x_clawwits"},
        "usage": [usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens],
        "provider": provider,
    }
    try:
        cache.set(cache_key, value, timeout=settings.GATEWAY_CACHE_TTL_S)
    except Exception:  # noqa: BLE001
        logger.warning("response cache unavailable for set")
