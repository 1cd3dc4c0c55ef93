"""Processes a benchmark starts, stops and measures (Linux /proc; stdlib only).

Guarantees:
- `start` puts each child in its own session, so a Ctrl-C meant for the benchmark never reaches
  the servers half-way through a row; the benchmark stops them itself.
- `stop` ends exactly the process it was given and that process's descendants, by PID: first
  the given signal to the root, then SIGKILL to whatever is still alive after `grace` seconds.
  It never raises, so it is safe in `finally` blocks.
- `cpu_seconds` and `Sampler` read a process tree (a root and its descendants at the moment of
  reading); a process that exits between two readings takes its CPU time with it, which only
  ever makes the figure smaller, so a respawned worker shows up in `Sampler.pids_seen`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Started:
    name: str
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    name: str, argv: list[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path
) -> Started:
    """Start `argv` with stdout and stderr in `log_dir/<name>.log`."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Started(name, proc, log_path)


def _ppids() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
    return parents


def tree(root: int) -> list[int]:
    """`root` and all its living descendants."""
    parents = _ppids()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in parents:
            out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def stop(started: Started, *, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Stop the process and its descendants; never raises."""
    proc = started.proc
    if proc.poll() is not None:
        return
    family = tree(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    for pid in family:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes (children already reaped included)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        # utime, stime, cutime, cstime: a reaped worker's time moves into its master's c*time.
        total += sum(int(x) for x in fields[11:15])
    return total / _TICK


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over the processes. PSS splits shared pages fairly, so a
    forked worker's copy-on-write pages are not counted once per worker as RSS does."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                rss += int(handle.read().split()[1]) * _PAGE
            with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss


class Sampler:
    """Peak memory of one or more process trees, sampled every `interval` seconds, and their
    CPU time between `__enter__` and `__exit__`."""

    def __init__(self, roots: list[int], *, interval: float = 0.5, tree_every: float = 2.0) -> None:
        # Sampling costs CPU on the machine being measured (a walk of /proc for the trees, and
        # each process's smaps_rollup, ~3 ms for a gateway worker): at 10 Hz the benchmark's
        # own process took 0.18 of a core from a chat run at c=50. Memory under load moves
        # over seconds, so 2 Hz with the trees walked again every 2 s (and whenever a
        # sampled process is gone) keeps the peak and costs ~1% of a core.
        self.roots = roots
        self.interval = interval
        self.tree_every = tree_every
        self._tree: list[int] = []
        self._tree_at = float("-inf")
        self.peak_rss = 0
        self.peak_pss = 0
        self.cpu_s = 0.0
        self.pids_seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu0 = 0.0

    def _pids(self) -> list[int]:
        pids = [pid for root in self.roots for pid in tree(root)]
        self.pids_seen.update(pids)
        self._tree, self._tree_at = pids, time.monotonic()
        return pids

    def _sample(self) -> None:
        pids = self._tree
        if time.monotonic() - self._tree_at >= self.tree_every or not all(map(_alive, pids)):
            pids = self._pids()
        rss, pss = memory(pids)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._cpu0 = cpu_seconds(self._pids())
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu_s = cpu_seconds(self._pids()) - self._cpu0


def wait_idle(
    roots: list[int], *, busy_below: float = 0.1, window: float = 0.3, timeout: float = 60.0
) -> bool:
    """Wait until the process trees use less than `busy_below` of one CPU over `window`
    seconds (requests left queued by a previous load have drained); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [pid for root in roots for pid in tree(root)]
        before = cpu_seconds(pids)
        time.sleep(window)
        if cpu_seconds(pids) - before < busy_below * window:
            return True
    return False


def wait_port(port: int, *, timeout: float, started: Started | None = None) -> None:
    """Return once 127.0.0.1:`port` accepts connections; raise if it does not in time or
    `started` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started is not None and started.proc.poll() is not None:
            raise RuntimeError(f"{started.name} exited early; see {started.log_path}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:g}s")


def wait_http_ok(url: str, *, timeout: float, started: Started | None = None) -> None:
    """Return once GET `url` answers 200; raise if it does not in time or `started` exits."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if started is not None and started.proc.poll() is not None:
            raise RuntimeError(f"{started.name} exited early; see {started.log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"status {response.status}"
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g}s ({last})")
