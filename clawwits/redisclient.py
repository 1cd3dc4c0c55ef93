"""The process-wide Redis client (rate limits, breaker-free shared state, readiness).

One connection pool per process; under gevent its sockets are cooperative.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

_client: redis.Redis | None = None
_lock = threading.Lock()


def configured() -> bool:
    return bool(settings.REDIS_URL)


def client() -> redis.Redis:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                # Fail fast: a request waiting on a hung Redis should get its 503 within a
                # second, not after redis-py's default ten retries with backoff (minutes).
                _client = redis.Redis.from_url(
                    settings.REDIS_URL,
                    socket_connect_timeout=0.5,
                    socket_timeout=0.5,
                    retry=Retry(NoBackoff(), 1),
                    health_check_interval=30,
                    max_connections=1024,
                )
    return _client


def ping() -> bool:
    try:
        return bool(client().ping())
    except redis.RedisError:
        return False
