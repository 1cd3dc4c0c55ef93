"""One process of a gevent scenario of `benchmarks.ledger` (the gateway's serving model).

    python -m benchmarks._ledger_gevent WALLETS GREENLETS SECONDS START_AT

Monkey-patched before anything else is imported, as gunicorn's gevent workers are, so each
greenlet has its own database connection and waits on it cooperatively. Runs `SELECT 1` for a
third of SECONDS from the unix time START_AT, then reserve+commit pairs for SECONDS, each on
GREENLETS greenlets picking one of WALLETS (comma-separated ids) at random; prints one JSON
line: {"select1": per second, "pairs": per second}.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402


def _run(op: Callable[[], None], greenlets: int, seconds: float, start_at: float) -> float:
    import gevent
    from django.db import connections

    counts = [0] * greenlets
    stop = False

    def body(i: int) -> None:
        op()  # opens this greenlet's connection before the clock starts
        gevent.sleep(max(0.0, start_at - time.time()))
        n = 0
        while not stop:
            op()
            n += 1
        counts[i] = n

    workers = [gevent.spawn(body, i) for i in range(greenlets)]
    gevent.sleep(max(0.0, start_at - time.time()) + seconds)
    stop = True
    gevent.joinall(workers, raise_error=True)
    for worker in workers:
        worker.kill()
    connections.close_all()
    return sum(counts) / seconds


def main() -> int:
    wallets = [uuid.UUID(w) for w in sys.argv[1].split(",")]
    greenlets, seconds, start_at = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")
    import django

    django.setup()
    from benchmarks.ledger import pair, select1
    from wits import ledger

    rng = random.Random(os.getpid())
    base = _run(select1, greenlets, seconds / 3, start_at)
    pairs = _run(
        lambda: pair(ledger, rng.choice(wallets)), greenlets, seconds, start_at + seconds / 3 + 1
    )
    print(json.dumps({"select1": base, "pairs": pairs}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
