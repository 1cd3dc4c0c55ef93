"""Per-process cache of API keys, kept exact by per-account epochs in Redis.

Authenticating a key from the database costs a query per request; this cache removes it
without weakening revocation:
- Each entry records the account's epoch (a Redis value) read BEFORE the rows were read.
- Every change that affects a cached key (revoke, rotate, a key's limit, the user's tier,
  custom limit or active flag, a tier's limit) bumps the account's epoch AFTER its transaction
  commits (`bump`).
- The rate-limit script checks the epoch in the same round trip that counts the request
  (`gateway.ratelimit` guards): a changed epoch counts nothing and the gateway reloads the key
  from the database before deciding. So a revocation or a tier edit takes effect on the next
  request on every process, at no extra round trip when nothing changed.
- A missing epoch (Redis restarted, flushed or evicted the key) is replaced by the script with a
  fresh value that no entry holds: entries cached before can never be trusted again.
- Entries also expire after ENTRY_MAX_AGE_S, the cache holds at most MAX_ENTRIES keys, and it is
  used only when Redis is configured (without Redis every request reads the database).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import redis
from django.db import transaction

from clawwits import redisclient

logger = logging.getLogger("clawwits.keycache")

ENTRY_MAX_AGE_S = 240.0
MAX_ENTRIES = 50_000
EPOCH_TTL_MS = 86_400_000
# Must match gateway.ratelimit.RedisLimiter.account_key(str(user_id), "ep") with prefix "rl".
_EPOCH_KEY = "rl:{{{}}}:ep"


@dataclass
class Entry:
    key_id: uuid.UUID
    user_id: uuid.UUID
    digest: str
    scopes: str
    key_rpm: int | None
    account_rpm: int
    user_active: bool
    revoked: bool
    expires_at: datetime | None
    last_used_at: datetime | None  # updated in place: it only throttles last-use writes
    epoch: str | None
    loaded_at: float


_entries: OrderedDict[str, Entry] = OrderedDict()
_lock = threading.Lock()


def enabled() -> bool:
    return redisclient.configured()


def epoch_key(user_id: uuid.UUID) -> str:
    return _EPOCH_KEY.format(user_id)


def current_epoch(user_id: uuid.UUID) -> str:
    """The account's epoch, created if missing (so it can be compared later)."""
    client = redisclient.client()
    name = epoch_key(user_id)
    value = client.get(name)
    if value is None:
        client.set(name, uuid.uuid4().hex, px=EPOCH_TTL_MS, nx=True)
        value = client.get(name)
    return value.decode() if isinstance(value, bytes) else str(value)


def get(lookup: str) -> Entry | None:
    with _lock:
        entry = _entries.get(lookup)
        if entry is None:
            return None
        if time.monotonic() - entry.loaded_at > ENTRY_MAX_AGE_S:
            del _entries[lookup]
            return None
        _entries.move_to_end(lookup)
        return entry


def put(lookup: str, entry: Entry) -> None:
    with _lock:
        _entries[lookup] = entry
        _entries.move_to_end(lookup)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def forget(lookup: str) -> None:
    with _lock:
        _entries.pop(lookup, None)


def clear() -> None:
    with _lock:
        _entries.clear()


def bump(user_ids: Iterable[uuid.UUID]) -> None:
    """Invalidate every process's cached keys of these accounts, once the change is committed.

    Call it inside the transaction that changes keys, users or tiers: the bump runs after the
    commit (or at once outside a transaction). This process forgets the accounts at once too.
    """
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return

    # This process forgets at once; a reload racing the commit would cache the old rows under
    # the old epoch, which the bump below then invalidates.
    wanted = set(ids)
    with _lock:
        for lookup in [k for k, e in _entries.items() if e.user_id in wanted]:
            del _entries[lookup]
    if not enabled():
        return

    def _apply() -> None:
        for attempt in range(3):
            try:
                pipe = redisclient.client().pipeline(transaction=False)
                for user_id in ids:
                    pipe.set(epoch_key(user_id), uuid.uuid4().hex, px=EPOCH_TTL_MS)
                pipe.execute()
                return
            except redis.RedisError:
                time.sleep(0.05 * (attempt + 1))
        # Redis is unreachable, so the limiter refuses every request (503) meanwhile; if it
        # comes back with its data, other processes may trust their entries for up to
        # ENTRY_MAX_AGE_S.
        logger.error("could not bump key epochs of %d account(s)", len(ids))

    transaction.on_commit(_apply)
