"""Ledger throughput: reserve+commit pairs per second, against a `SELECT 1` baseline (BAR 21).

    scripts/services.py --durable -- .venv/bin/python -m benchmarks.ledger [--seconds S]

DATABASE_URL (PostgreSQL) comes from the environment. The benchmark creates a fresh database
next to it, migrates it, runs every scenario for a fixed time, verifies the books
(`ledger.check()`), prints the table and drops the database again.

Scenarios: one hot wallet (every pair locks the same row) and 100 wallets (each pair picks one
at random), with 1, 8 and 32 threads of one process, with 4 processes of one thread each, and
with 32 and 128 greenlets in one or two gevent-patched processes (`benchmarks._ledger_gevent`: the
gateway's serving model, where concurrent calls on one wallet are batched: `WITS_BATCH_MAX`).
Each scenario's baseline is `SELECT 1` round trips per second on the same connections with the
same concurrency, measured right before it, so the figures read as ratios on any machine:
a pair costs `baseline / pairs` round-trip times.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from benchmarks import _stack

WALLETS = 100
GRANT = 10**15
RESERVE = 100
USAGE = 60


@dataclass(frozen=True)
class Scenario:
    name: str
    wallets: int
    threads: int
    processes: int
    # Greenlets of gevent-patched processes (the gateway's serving model) instead of threads.
    greenlets: bool = False


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    pairs_per_s: float
    select1_per_s: float

    def line(self) -> str:
        s = self.scenario
        conc = f"{s.processes}p x {s.threads}{'g' if s.greenlets else 't'}"
        ratio = self.select1_per_s / self.pairs_per_s if self.pairs_per_s else float("inf")
        return (
            f"{s.name:<18} {conc:>9} {self.pairs_per_s:>12,.0f} {self.select1_per_s:>12,.0f} "
            f"{ratio:>10.1f}"
        )


SCENARIOS = [
    Scenario("hot wallet", 1, 1, 1),
    Scenario("hot wallet", 1, 8, 1),
    Scenario("hot wallet", 1, 32, 1),
    Scenario("hot wallet", 1, 1, 4),
    Scenario("hot wallet", 1, 32, 1, greenlets=True),
    Scenario("hot wallet", 1, 32, 2, greenlets=True),
    Scenario("hot wallet", 1, 128, 1, greenlets=True),
    Scenario("hot wallet", 1, 128, 2, greenlets=True),
    Scenario("100 wallets", WALLETS, 1, 1),
    Scenario("100 wallets", WALLETS, 8, 1),
    Scenario("100 wallets", WALLETS, 32, 1),
    Scenario("100 wallets", WALLETS, 1, 4),
    Scenario("100 wallets", WALLETS, 32, 1, greenlets=True),
]


def fresh_database(url: str) -> tuple[str, Callable[[], None]]:
    """Create an empty database beside the one in `url`; return its URL and a dropper."""
    import psycopg

    parts = urlsplit(url)
    name = f"clawwits_bench_{os.getpid()}"
    admin = psycopg.connect(url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def pair(ledger, wallet: uuid.UUID) -> None:
    res = ledger.reserve(user_id=wallet, request_id=uuid.uuid4().hex, amount=RESERVE)
    ledger.commit(res, actual=USAGE)


def select1() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def run_for(seconds: float, op: Callable[[], None], threads: int) -> int:
    """Run `op` on `threads` threads for `seconds`; return how many completed."""
    from django.db import connections

    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def body(i: int) -> None:
        op()  # opens this thread's connection before the clock starts
        start.wait()
        n = 0
        while not stop.is_set():
            op()
            n += 1
        counts[i] = n
        connections.close_all()

    workers = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(counts)


def measure_in_process(scenario: Scenario, wallets: list[uuid.UUID], seconds: float) -> tuple:
    from wits import ledger

    rng = random.Random(scenario.threads)
    pool = wallets[: scenario.wallets]
    base = run_for(seconds / 3, select1, scenario.threads) / (seconds / 3)
    pairs = run_for(seconds, lambda: pair(ledger, rng.choice(pool)), scenario.threads) / seconds
    return pairs, base


def _child(scenario: Scenario, wallets: list[uuid.UUID], seconds: float, barrier, out) -> None:
    from django.db import connections

    connections.close_all()
    from wits import ledger

    rng = random.Random(os.getpid())
    pool = wallets[: scenario.wallets]
    results = []
    for what, op, duration in (
        ("select1", select1, seconds / 3),
        ("pairs", lambda: pair(ledger, rng.choice(pool)), seconds),
    ):
        op()
        barrier.wait()
        began, n = time.perf_counter(), 0
        while time.perf_counter() - began < duration:
            op()
            n += 1
        results.append((what, n / duration))
    connections.close_all()
    out.put(dict(results))


def measure_processes(scenario: Scenario, wallets: list[uuid.UUID], seconds: float) -> tuple:
    from django.db import connections

    connections.close_all()  # children must not share the parent's socket
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(scenario.processes)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(scenario, wallets, seconds, barrier, out))
        for _ in range(scenario.processes)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds * 4 + 60) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(r["pairs"] for r in results), sum(r["select1"] for r in results)


def measure_greenlets(scenario: Scenario, wallets: list[uuid.UUID], seconds: float) -> tuple:
    """Each process a fresh interpreter (`benchmarks._ledger_gevent`): gevent must patch before
    Django or psycopg is imported, so these cannot be forked from this process."""
    from django.db import connections

    connections.close_all()
    # Time for the children to import Django and connect before the shared start.
    start_at = time.time() + 8
    ids = ",".join(str(w) for w in wallets[: scenario.wallets])
    argv = [sys.executable, "-m", "benchmarks._ledger_gevent", ids, str(scenario.threads)]
    argv += [str(seconds), str(start_at)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        for _ in range(scenario.processes)
    ]
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds * 4 / 3 + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"a gevent ledger process exited {proc.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return sum(r["pairs"] for r in results), sum(r["select1"] for r in results)


def round_trips_per_pair(wallet: uuid.UUID) -> int:
    from django.db import connection

    from wits import ledger

    statements: list[str] = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        pair(ledger, wallet)
    # The portable path's two transactions also send BEGIN and COMMIT, which Django does not
    # route through wrappers; the one-statement path runs each step in autocommit.
    return len(statements) + (0 if ledger._fast() else 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per scenario (default 3)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        print(
            "DATABASE_URL must be a PostgreSQL URL (run under scripts/services.py)", file=sys.stderr
        )
        return 2

    bench_url, drop = fresh_database(url)
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        from accounts import services
        from wits import ledger

        call_command("migrate", verbosity=0)
        wallets = [
            services.create_account(
                email=f"bench{i}@example.com", password=None, welcome_wits=GRANT
            ).id
            for i in range(WALLETS)
        ]
        trips = round_trips_per_pair(wallets[0])
        print(
            f"ledger benchmark: {args.seconds:g} s per scenario, reserve {RESERVE} + commit "
            f"{USAGE} per pair, ~{trips} round trips per pair; {os.cpu_count()} CPUs shared "
            f"by PostgreSQL and Python; PostgreSQL {_stack.durability(bench_url)}"
        )
        print(f"{'scenario':<18} {'conc':>9} {'pairs/s':>12} {'SELECT 1/s':>12} {'ratio':>10}")
        rows = []
        for scenario in SCENARIOS:
            if scenario.greenlets:
                pairs, base = measure_greenlets(scenario, wallets, args.seconds)
            elif scenario.processes > 1:
                pairs, base = measure_processes(scenario, wallets, args.seconds)
            else:
                pairs, base = measure_in_process(scenario, wallets, args.seconds)
            rows.append(Row(scenario, pairs, base))
            print(rows[-1].line(), flush=True)
        connections.close_all()
        drifts = ledger.check()
        print(f"books after the run: {'exact' if not drifts else f'{len(drifts)} drift(s)'}")
        print(
            "ratio = SELECT 1 rate / pair rate: how many bare round trips one reserve+commit "
            f"pair costs (~{trips} is the floor for {trips} sequential round trips)"
        )
        connections.close_all()
        return 1 if drifts else 0
    finally:
        from django.db import connections

        connections.close_all()
        drop()


if __name__ == "__main__":
    sys.exit(main())
