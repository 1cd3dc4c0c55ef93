"""Throughput and latency of RedisLimiter.hit against a plain PING in the same run.

    scripts/services.py -- .venv/bin/python -m benchmarks.ratelimit

Starts nothing: REDIS_URL comes from the environment. Every scenario uses its own account under
a unique prefix, and the prefix's keys are deleted at the end. Limit 30 measures the refused
path (all but the first 30 hits are refused); limit 100,000 the admitted path (no scenario
reaches 100,000 hits).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from gateway.ratelimit import RedisLimiter

OPS_SINGLE = 20_000
OPS_PER_THREAD = 5_000
THREADS = 8
WARMUP = 1_000


@dataclass(frozen=True)
class Result:
    name: str
    threads: int
    ops: int
    seconds: float
    latencies_ns: list[int]

    def line(self) -> str:
        lat = sorted(self.latencies_ns)
        p50 = lat[len(lat) // 2] / 1e6
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6
        rate = self.ops / self.seconds
        return f"{self.name:<34} {self.threads:>7} {rate:>10,.0f} {p50:>9.3f} {p99:>9.3f}"


def measure(name: str, op: Callable[[], object], *, threads: int, ops_per_thread: int) -> Result:
    for _ in range(WARMUP):
        op()
    latencies: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)

    def run(out: list[int]) -> None:
        clock = time.perf_counter_ns
        start.wait()
        for _ in range(ops_per_thread):
            t = clock()
            op()
            out.append(clock() - t)

    workers = [threading.Thread(target=run, args=(out,)) for out in latencies]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    flat = [x for out in latencies for x in out]
    return Result(name, threads, len(flat), seconds, flat)


def main() -> int:
    url = os.environ.get("REDIS_URL")
    if not url:
        print("REDIS_URL is not set (run under scripts/services.py)", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(
        url, socket_connect_timeout=1.0, socket_timeout=2.0, max_connections=64
    )
    prefix = f"bench-rl-{uuid.uuid4().hex[:8]}"
    limiter = RedisLimiter(client, prefix=prefix)
    accounts = iter(f"acct-{i}" for i in range(1_000))

    def hit(limit: int, key_limit: int | None = None) -> Callable[[], object]:
        account = next(accounts)
        key = "key" if key_limit else None
        return lambda: limiter.hit(
            account=account, account_limit=limit, key=key, key_limit=key_limit
        )

    scenarios: list[tuple[str, Callable[[], Callable[[], object]]]] = [
        ("PING (baseline)", lambda: client.ping),
        ("hit, limit 30 (refused path)", lambda: hit(30)),
        ("hit, limit 100,000 (admitted)", lambda: hit(100_000)),
        ("hit, 100,000 + key 50,000", lambda: hit(100_000, 50_000)),
    ]
    info = client.info("server")
    print(f"Redis {info['redis_version']} at {url}; python {sys.version.split()[0]}")
    print(f"{'scenario':<34} {'threads':>7} {'ops/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    try:
        for threads, per_thread in ((1, OPS_SINGLE), (THREADS, OPS_PER_THREAD)):
            for name, make in scenarios:
                result = measure(name, make(), threads=threads, ops_per_thread=per_thread)
                print(result.line(), flush=True)
    finally:
        for key in client.scan_iter(match=f"{prefix}:*", count=1_000):
            client.delete(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
