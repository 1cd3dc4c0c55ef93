"""Per-account request rate limits over a rolling window, exact across processes and machines.

Guarantees (RedisLimiter, every process and machine sharing one Redis):
- A limit of N admits at most N requests in ANY rolling window of `window_ms` (60 s by default)
  per account, all its keys together. A request admitted at millisecond t counts in the window
  until t + window_ms (exclusive), then leaves it.
- A key may carry a lower limit of its own. A request is admitted only when the account window
  and the key window both have room, and is then counted in both; a refused request is counted
  in neither. The check and the count are one Lua script, so no interleaving can split them.
- One round trip per request, or fewer: EVALSHA of one script (EVAL once after a SCRIPT FLUSH
  or a Redis restart). Calls that arrive while one is on the wire go out together as the next
  pipeline (`clawwits.combine`); Redis runs each script alone and in order, so each decision is
  exactly the one it would be sent alone at that point. Time is Redis's own `TIME` at
  millisecond precision, so the hosts' clocks never matter; if Redis's clock steps back, the
  window's newest timestamp stands in for it (time never runs backwards for a window, so a
  step back can only refuse, never over-admit).
- Any Redis failure (refused connection, timeout, error reply) raises RateLimiterUnavailable;
  nothing is admitted by default. How fast it is raised is the client's socket timeouts and
  retry policy: give the client short timeouts and few retries.

Storage, and why not a sorted set with one member per request: that is exact but holds N members
(100,000 at the max tier, 1,000,000+ for enterprise) at about 100 bytes each. Here a window is
two keys: a list of per-millisecond buckets `"<ms>:<count>"`, oldest first, and a running total.
Redis's clock only moves forward for a window (see above), so a new request either increments
the last bucket (same ms) or appends one; buckets leave from the head as the window slides and
their counts are subtracted from the total. So:
- memory is bounded by the number of distinct milliseconds with a request in the window
  (<= window_ms = 60,000 entries, about 1 MB worst case, whatever the limit); an idle window
  costs nothing: both keys expire when their newest bucket leaves the window;
- the work per request is amortised O(1): every bucket is appended once and popped once. The
  retry wait reads the oldest bucket only (O(1)), except after a limit was lowered below the
  current count, when it walks the buckets that must leave first.
A list beats the suggested sorted set + hash of counts: the buckets are already in time order,
so head/tail access is O(1) instead of O(log n), and short strings in a list pack into listpacks
(about 18 bytes a bucket, measured) where a sorted set plus a hash cost several times that.

Keys: `<prefix>:{<account>}:al|an` (account list and total) and `<prefix>:{<account>}:kl:<key>` /
`:kn:<key>` (a key's). The `{account}` hash tag keeps one account's keys in one Redis Cluster
slot, as a multi-key script needs.

Decision fields, for the x-ratelimit-* headers and the 429:
- `remaining`: requests still admissible now, the smaller of the two windows' room.
- `limit`: the limit of the binding window, the one with less room (on a tie, the lower limit),
  so limit, remaining and the 429 always describe the window that actually constrains.
- `reset_ms`: time until the limiter holds no counted request for this account and key, i.e.
  until `remaining` is back to its full value: OpenAI's documented meaning of
  `x-ratelimit-reset-requests` ("time until the rate limit resets to its initial state"). After
  an admitted request that is always the whole window. The time until the *next* slot frees is
  `retry_after_ms`, which is what a refused client should wait.
- `retry_after_ms`: 0 when admitted; otherwise the exact wait (>= 1 ms) until every refusing
  window has room again, assuming no other request takes it first.

LocalLimiter keeps the same windows in process memory (the embedded single-process default):
exact within one process, and nothing across processes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from clawwits.combine import ALONE, Combiner

DEFAULT_WINDOW_MS = 60_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # the binding window's limit (the window with less room)
    remaining: int  # requests admissible now, after this one (>= 0)
    reset_ms: int  # ms until nothing is counted any more (remaining back to full); 0 when empty
    retry_after_ms: int  # 0 when allowed; else the exact wait (>= 1) until one would be admitted


class GuardChanged(Exception):
    """A guard value differs from the caller's: reload what it guards, then hit again."""


class RateLimiterUnavailable(Exception):
    """The shared limiter cannot decide (Redis unreachable, timed out or failing): answer 503."""


# KEYS: account list, account total[, key list, key total][, guard keys...]
# ARGV: window_ms, pinned now_ms ('' in production: Redis TIME), window count n,
#       account limit[, key limit][, expected guard values...]
_SCRIPT = """
local window = tonumber(ARGV[1])
local t = redis.call('TIME')
local real = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = real
if ARGV[2] ~= '' then now = tonumber(ARGV[2]) end
local n = tonumber(ARGV[3])

-- Guards: the caller decided with data valid as of these values. A changed or missing value
-- means that data may be stale: count nothing and say so. A missing guard gets a fresh value,
-- which no caller can hold, so data cached before a Redis restart is never trusted.
for j = 2 * n + 1, #KEYS do
  local current = redis.call('GET', KEYS[j])
  if not current then
    current = t[1] .. '.' .. t[2]
    redis.call('SET', KEYS[j], current, 'PX', 86400000)
  end
  if current ~= ARGV[3 + n + j - 2 * n] then return {-1, 0, 0, 0, 0} end
end

local function parse(entry)
  local sep = string.find(entry, ':', 1, true)
  return tonumber(string.sub(entry, 1, sep - 1)), tonumber(string.sub(entry, sep + 1))
end

local lists, totals, limits, newest, newest_count = {}, {}, {}, {}, {}
for i = 1, n do
  lists[i] = KEYS[2 * i - 1]
  totals[i] = KEYS[2 * i]
  limits[i] = tonumber(ARGV[3 + i])
  local last = redis.call('LINDEX', lists[i], -1)
  if last then
    newest[i], newest_count[i] = parse(last)
    -- Redis's clock stepped back: keep time still for this window instead of reopening it.
    if newest[i] > now then now = newest[i] end
  end
end

local cutoff = now - window
local count, expired, oldest, oldest_count = {}, {}, {}, {}
for i = 1, n do
  local total = redis.call('GET', totals[i])
  if total then
    total = tonumber(total)
  elseif not newest[i] then
    total = 0
  else
    -- The pair is written and expires together; only eviction can leave a list without its
    -- total, so rebuild it (rare, O(buckets)) rather than restart the count from zero.
    total = 0
    for _, e in ipairs(redis.call('LRANGE', lists[i], 0, -1)) do
      local _, c = parse(e)
      total = total + c
    end
    local ttl = redis.call('PTTL', lists[i])
    if total > 0 then redis.call('SET', totals[i], total, 'PX', ttl > 0 and ttl or window) end
  end
  local popped = 0
  local first = redis.call('LINDEX', lists[i], 0)
  while first do
    local ts, c = parse(first)
    if ts > cutoff then
      oldest[i], oldest_count[i] = ts, c
      break
    end
    redis.call('LPOP', lists[i])
    popped = popped + c
    first = redis.call('LINDEX', lists[i], 0)
  end
  if not first then
    newest[i] = nil
    total = 0
  else
    total = total - popped
  end
  count[i], expired[i] = total, popped
end

local allowed = true
for i = 1, n do
  if count[i] >= limits[i] then allowed = false end
end

if allowed then
  -- Both keys live until the newest bucket leaves the window (later if the clock stepped back).
  local ttl = window + now - real
  if ttl < window then ttl = window end
  for i = 1, n do
    if newest[i] == now then
      -- Same ms: the bucket's push already set the list's expiry.
      redis.call('LSET', lists[i], -1, string.format('%d:%d', now, newest_count[i] + 1))
    else
      redis.call('RPUSH', lists[i], string.format('%d:1', now))
      redis.call('PEXPIRE', lists[i], ttl)
      if not oldest[i] then oldest[i], oldest_count[i] = now, 1 end
    end
    count[i] = count[i] + 1
    newest[i] = now
    redis.call('SET', totals[i], count[i], 'PX', ttl)
  end
else
  for i = 1, n do
    if expired[i] > 0 and not newest[i] then
      redis.call('DEL', totals[i])
    elseif expired[i] > 0 then
      redis.call('DECRBY', totals[i], expired[i])
    end
  end
end

local binding, remaining = 1, nil
for i = 1, n do
  local room = limits[i] - count[i]
  if room < 0 then room = 0 end
  if remaining == nil or room < remaining
      or (room == remaining and limits[i] < limits[binding]) then
    binding, remaining = i, room
  end
end

local reset = 0
for i = 1, n do
  if newest[i] and newest[i] + window - now > reset then reset = newest[i] + window - now end
end

local retry = 0
if not allowed then
  for i = 1, n do
    if count[i] >= limits[i] then
      -- Room returns when enough of the oldest requests have left: one bucket unless the limit
      -- was lowered below the count.
      local need = count[i] - limits[i] + 1
      local wait = nil
      if oldest_count[i] >= need then
        wait = oldest[i] + window - now
      else
        local start = 0
        while not wait do
          local chunk = redis.call('LRANGE', lists[i], start, start + 127)
          if #chunk == 0 then wait = window end
          for _, e in ipairs(chunk) do
            local ts, c = parse(e)
            need = need - c
            if need <= 0 then
              wait = ts + window - now
              break
            end
          end
          start = start + 128
        end
      end
      if wait > retry then retry = wait end
    end
  end
end

return {allowed and 1 or 0, limits[binding], remaining, reset, retry}
"""
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()  # Redis names cached scripts by SHA-1


def _check(account: str, account_limit: int, key: str | None, key_limit: int | None) -> None:
    """Validate a hit's arguments: a key window needs a key, every limit is at least 1."""
    if account_limit < 1:
        raise ValueError(f"account_limit must be at least 1, got {account_limit}")
    if "{" in account or "}" in account:
        # Braces would move the Redis Cluster hash tag and could make two windows share keys.
        raise ValueError("account must not contain '{' or '}'")
    if key_limit is not None and key is None:
        raise ValueError("key_limit needs a key")
    if key_limit is not None and key_limit < 1:
        raise ValueError(f"key_limit must be at least 1, got {key_limit}")


class RedisLimiter:
    """The shared limiter: exact across every process and machine using the same Redis."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        window_ms: int = DEFAULT_WINDOW_MS,
        prefix: str = "rl",
        pipeline_max: int = 64,
    ) -> None:
        if window_ms < 1:
            raise ValueError(f"window_ms must be at least 1, got {window_ms}")
        self._client = client
        self._window_ms = window_ms
        self._prefix = prefix
        # pipeline_max=1: every call its own round trip, concurrently with the others.
        self._calls: Combiner[_Call, object] | None = (
            Combiner(self._run_pipeline, self._run_one, max_batch=pipeline_max)
            if pipeline_max > 1
            else None
        )

    def hit(
        self,
        *,
        account: str,
        account_limit: int,
        key: str | None = None,
        key_limit: int | None = None,
        guards: Sequence[tuple[str, str]] = (),
    ) -> Decision:
        """Admit and count one request, or refuse it and count nothing.

        `key` has a window of its own only when `key_limit` is given; without one, the request
        counts against the account alone. Raises RateLimiterUnavailable when Redis cannot
        answer; nothing is counted then (a request whose reply was lost, or that the client
        retried after a timeout, may have been counted: that errs towards refusing).

        `guards` are (redis key, expected value) pairs checked first, in the same script: if any
        differs (or is missing), nothing is counted and GuardChanged is raised. Guard keys must
        share the account's hash slot (see `account_key`).
        """
        return self._hit(account, account_limit, key, key_limit, now_ms=None, guards=guards)

    def account_key(self, account: str, name: str) -> str:
        """A Redis key in the account's hash slot, for guards."""
        return f"{self._prefix}:{{{account}}}:{name}"

    def _hit(
        self,
        account: str,
        account_limit: int,
        key: str | None,
        key_limit: int | None,
        *,
        now_ms: int | None,
        guards: Sequence[tuple[str, str]] = (),
    ) -> Decision:
        # now_ms pins the script's clock so tests can compare it with a reference model;
        # production always passes None and Redis's TIME decides.
        _check(account, account_limit, key, key_limit)
        base = f"{self._prefix}:{{{account}}}"
        keys = [f"{base}:al", f"{base}:an"]
        limits = [account_limit]
        if key_limit is not None:
            keys += [f"{base}:kl:{key}", f"{base}:kn:{key}"]
            limits.append(key_limit)
        args: list[int | str] = [
            self._window_ms,
            "" if now_ms is None else now_ms,
            len(limits),
            *limits,
        ]
        for guard_key, expected in guards:
            keys.append(guard_key)
            args.append(expected)
        try:
            if self._calls is None:
                raw = self._run_one((keys, args))
            else:
                raw = self._calls.submit(None, (keys, args))
        except redis.exceptions.RedisError as exc:
            raise RateLimiterUnavailable(f"rate limiter unavailable: {exc}") from exc
        allowed, limit, remaining, reset_ms, retry_after_ms = (int(v) for v in raw)
        if allowed < 0:
            raise GuardChanged()
        return Decision(
            allowed=bool(allowed),
            limit=limit,
            remaining=remaining,
            reset_ms=reset_ms,
            retry_after_ms=retry_after_ms,
        )

    def _run_one(self, call: _Call) -> object:
        keys, args = call
        try:
            return self._client.evalsha(_SHA, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # Script cache emptied (SCRIPT FLUSH, restart, failover): EVAL runs and caches it.
            return self._client.eval(_SCRIPT, len(keys), *keys, *args)

    def _run_pipeline(self, calls: Sequence[_Call]) -> list[object]:
        """Calls that queued while one was on the wire, in one round trip. A call whose script
        Redis no longer has runs alone afterwards (EVAL); an error reply belongs to its call;
        a failed round trip fails them all (each then runs alone and fails or not on its own)."""
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(_SHA, len(keys), *keys, *args)
        replies = pipe.execute(raise_on_error=False)
        return [ALONE if isinstance(r, redis.exceptions.NoScriptError) else r for r in replies]


_Call = tuple[list[str], list[int | str]]


class _Window:
    """One rolling window in memory: [ms, count] buckets oldest first, and their sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def slide(self, now: int, window_ms: int) -> None:
        cutoff = now - window_ms
        while self.buckets and self.buckets[0][0] <= cutoff:
            self.total -= self.buckets.popleft()[1]

    def add(self, now: int) -> None:
        if self.buckets and self.buckets[-1][0] == now:
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([now, 1])
        self.total += 1

    def wait(self, limit: int, now: int, window_ms: int) -> int:
        """Ms until this full window has room: enough of its oldest requests have left."""
        need = self.total - limit + 1
        for ts, count in self.buckets:
            need -= count
            if need <= 0:
                return ts + window_ms - now
        return window_ms


class LocalLimiter:
    """The same limits in this process's memory: thread-safe, exact within one process only.

    For the embedded default (one process, no Redis). Idle windows are dropped at most one
    window after their last request, so memory follows the accounts active in the last window.
    """

    def __init__(
        self, *, window_ms: int = DEFAULT_WINDOW_MS, clock: Callable[[], float] | None = None
    ) -> None:
        """`clock` returns seconds (time.monotonic by default); it is read in whole ms."""
        if window_ms < 1:
            raise ValueError(f"window_ms must be at least 1, got {window_ms}")
        self._window_ms = window_ms
        self._clock = clock or time.monotonic
        self._windows: dict[tuple[str, ...], _Window] = {}
        self._lock = threading.Lock()
        self._next_sweep: int | None = None

    def hit(
        self,
        *,
        account: str,
        account_limit: int,
        key: str | None = None,
        key_limit: int | None = None,
        guards: Sequence[tuple[str, str]] = (),
    ) -> Decision:
        """Admit and count one request, or refuse it and count nothing (same as RedisLimiter)."""
        _check(account, account_limit, key, key_limit)
        ids: list[tuple[str, ...]] = [("a", account)]
        limits = [account_limit]
        if key is not None and key_limit is not None:
            ids.append(("k", account, key))
            limits.append(key_limit)
        with self._lock:
            # Round to the microsecond before truncating to the ms: 1.001 s in binary floating
            # point is 1000.9999... ms.
            now = round(self._clock() * 1_000_000) // 1000
            windows = [self._windows.get(i) or _Window() for i in ids]
            for w in windows:
                if w.buckets:
                    # A clock that stepped back keeps time still for the window (see Redis).
                    now = max(now, w.buckets[-1][0])
            self._sweep(now)
            return self._decide(ids, windows, limits, now)

    def tracked_windows(self) -> int:
        """How many windows hold state (idle ones are dropped within one window)."""
        with self._lock:
            return len(self._windows)

    def _decide(
        self, ids: Sequence[tuple[str, ...]], windows: list[_Window], limits: list[int], now: int
    ) -> Decision:
        for w in windows:
            w.slide(now, self._window_ms)
        allowed = all(w.total < limit for w, limit in zip(windows, limits, strict=True))
        if allowed:
            for i, w in zip(ids, windows, strict=True):
                w.add(now)
                self._windows[i] = w
        binding = min(
            range(len(windows)),
            key=lambda i: (max(0, limits[i] - windows[i].total), limits[i]),
        )
        reset = max(
            (w.buckets[-1][0] + self._window_ms - now for w in windows if w.buckets), default=0
        )
        retry = 0
        if not allowed:
            retry = max(
                w.wait(limit, now, self._window_ms)
                for w, limit in zip(windows, limits, strict=True)
                if w.total >= limit
            )
        return Decision(
            allowed=allowed,
            limit=limits[binding],
            remaining=max(0, limits[binding] - windows[binding].total),
            reset_ms=max(0, reset),
            retry_after_ms=retry,
        )

    def _sweep(self, now: int) -> None:
        # Amortised: one pass over the windows per window length of time.
        if self._next_sweep is not None and now < self._next_sweep:
            return
        self._next_sweep = now + self._window_ms
        cutoff = now - self._window_ms
        for i in [
            i for i, w in self._windows.items() if not w.buckets or w.buckets[-1][0] <= cutoff
        ]:
            del self._windows[i]


def format_reset(ms: int) -> str:
    """A duration as OpenAI writes x-ratelimit-reset-*: Go's time.Duration format.

    "0s", "20ms", "1s", "1.5s", "6m0s", "1h0m0s"; negative durations read "0s".
    """
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0") if millis else str(seconds)
    text += "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text
