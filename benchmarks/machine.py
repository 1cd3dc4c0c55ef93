"""What the machine itself adds to a latency: waking a process that slept, and kernel bursts.

    .venv/bin/python scripts/services.py --durable -- .venv/bin/python -m benchmarks.machine

Runs ~25 s, starts no server of its own and changes nothing on the machine. Prints:

- the round trip to a child process over a socket pair, and (when DATABASE_URL names a
  PostgreSQL, as `scripts/services.py` sets it) `SELECT 1` and a commit that waits for the
  disk, each back to back and after the caller slept 10, 50 and 200 ms: the gateway's chain of
  processes pays such a wake-up at every hop once they were idle (a 200 ms upstream leaves
  PostgreSQL, Redis and the client idle that long at low concurrency);
- the CPU idle driver, and the kernel's DAMON monitor threads (`kdamond`): their bursts of
  CPU over 3 s, sampled every 0.5 ms from `/proc/PID/schedstat` (a burst on the core a request
  runs on delays it by that much; at c=1 it meets about one request in a hundred).

Figures belong to the machine, not to the gateway: compare them across machines, or across
runs when the benchmarks' absolute figures moved.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path

GAPS_MS = (0, 10, 50, 200)
SAMPLES = 20
DAMON = Path("/sys/kernel/mm/damon/admin/kdamonds")


def _after_gaps(label: str, call: Callable[[], object]) -> None:
    for _ in range(SAMPLES):  # warm: the first calls on a fresh connection or child are slow
        call()
    cells = []
    for gap in GAPS_MS:
        took = []
        for _ in range(SAMPLES * (10 if not gap else 1)):
            if gap:
                time.sleep(gap / 1000)
            start = time.perf_counter()
            call()
            took.append((time.perf_counter() - start) * 1000)
        cells.append(f"{statistics.median(took):7.3f}")
    print(f"  {label:44} {' '.join(cells)}")


def _child_echo() -> tuple[Callable[[], object], Callable[[], None]]:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child: echo until the socket closes
        ours.close()
        while data := theirs.recv(64):
            theirs.sendall(data)
        os._exit(0)
    theirs.close()

    def call() -> object:
        ours.sendall(b"x")
        return ours.recv(64)

    def stop() -> None:
        ours.close()
        os.waitpid(pid, 0)

    return call, stop


def _postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        _after_gaps("PostgreSQL SELECT 1", lambda: conn.execute("SELECT 1").fetchone())
        # A transactional WAL message: its commit waits for the disk to hold it (with
        # synchronous_commit on), as a ledger step's does, and no table is written.
        conn.execute("SET synchronous_commit = on")
        message = "SELECT pg_logical_emit_message(true, 'clawwits.machine', '')"
        try:
            _after_gaps(
                "PostgreSQL commit, waiting for the disk", lambda: conn.execute(message).fetchone()
            )
        except psycopg.errors.InsufficientPrivilege:
            print("  (PostgreSQL commit: pg_logical_emit_message needs a superuser here)")


def _kdamonds() -> list[int]:
    pids = []
    for state in sorted(DAMON.glob("*/state")) if DAMON.is_dir() else []:
        if state.read_text().strip() == "on":
            pids.append(int((state.parent / "pid").read_text()))
    return pids


def _bursts(pid: int, seconds: float) -> list[tuple[float, float]]:
    """(time, ms of CPU) for each 0.5 ms sample in which the thread ran."""
    fd = os.open(f"/proc/{pid}/schedstat", os.O_RDONLY)
    try:
        prev = int(os.pread(fd, 64, 0).split()[0])
        start = time.monotonic()
        out = []
        while (now := time.monotonic()) - start < seconds:
            time.sleep(0.0005)
            ran = int(os.pread(fd, 64, 0).split()[0])
            if ran != prev:
                out.append((now - start, (ran - prev) / 1e6))
            prev = ran
        return out
    finally:
        os.close(fd)


def _kernel(seconds: float) -> None:
    idle = Path("/sys/devices/system/cpu/cpuidle/current_driver")
    print(f"  CPU idle driver: {idle.read_text().strip() if idle.exists() else 'none'}")
    try:
        pids = _kdamonds()
    except OSError as error:  # DAMON's sysfs is root's to read
        print(f"  DAMON: not readable here ({error.strerror})")
        return
    if not pids:
        print("  DAMON: no kdamond running")
        return
    for pid in pids:
        samples = _bursts(pid, seconds)
        # Samples less than 2 ms apart are one burst.
        bursts: list[list[float]] = []
        for at, ms in samples:
            if bursts and at - bursts[-1][1] < 0.002:
                bursts[-1][1], bursts[-1][2] = at, bursts[-1][2] + ms
            else:
                bursts.append([at, at, ms])
        big = [b for b in bursts if b[2] >= 0.5]
        total = sum(ms for _, ms in samples)
        gaps = [b[0] - a[0] for a, b in zip(big, big[1:], strict=False)]
        every = f", one every {statistics.median(gaps) * 1000:.0f} ms" if gaps else ""
        sizes = ", ".join(f"{b[2]:.1f}" for b in big[:8])
        print(
            f"  kdamond (pid {pid}): {total / seconds:.1f} ms of CPU a second; {len(big)} bursts"
            f" of 0.5 ms or more in {seconds:.0f} s{every} ({sizes} ms)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="kernel sampling time")
    args = parser.parse_args()
    print(f"Round trips after the caller slept (p50 ms; {SAMPLES} samples, 200 back to back)")
    print(f"  {'':44} {'  '.join(f'{g:>4} ms' for g in GAPS_MS)}")
    call, stop = _child_echo()
    try:
        _after_gaps("child process over a socket pair", call)
    finally:
        stop()
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        _postgres(url)
    else:
        print("  (PostgreSQL: no DATABASE_URL; run under scripts/services.py to include it)")
    print("Kernel")
    _kernel(args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
