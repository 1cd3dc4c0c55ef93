"""One OS process of the cross-process rate-limit tests: several threads hitting one account.

    python -m tests.gateway.ratelimit_worker {redis|local} ACCOUNT LIMIT THREADS HITS

Reads REDIS_URL from the environment (redis). Prints "ready" once every thread is poised to
fire, waits for one line on stdin so that all processes start together, fires HITS hits over
THREADS threads as fast as it can, and prints {"admitted": a, "refused": r, "elapsed_ms": e}.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import redis

from gateway.ratelimit import LocalLimiter, RedisLimiter


def main(argv: list[str]) -> int:
    kind, account, limit, threads, hits = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    if kind == "redis":
        client = redis.Redis.from_url(os.environ["REDIS_URL"], max_connections=threads + 2)
        limiter: RedisLimiter | LocalLimiter = RedisLimiter(client)
    else:
        client = None
        limiter = LocalLimiter()
    shares = [hits // threads + (1 if i < hits % threads else 0) for i in range(threads)]
    counts = {"admitted": 0, "refused": 0}
    counts_lock = threading.Lock()
    poised = threading.Barrier(threads + 1)
    go = threading.Event()

    def fire(share: int) -> None:
        if client is not None:
            client.ping()  # open this thread's connection before the start line
        poised.wait()
        go.wait()
        admitted = sum(
            limiter.hit(account=account, account_limit=limit).allowed for _ in range(share)
        )
        with counts_lock:
            counts["admitted"] += admitted
            counts["refused"] += share - admitted

    workers = [threading.Thread(target=fire, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    poised.wait()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    started = time.monotonic()
    go.set()
    for worker in workers:
        worker.join()
    counts["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    sys.stdout.write(json.dumps(counts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
