"""The gateway's speed, each figure beside the same load sent straight to the fake upstream.

    scripts/services.py --durable -- .venv/bin/python -m benchmarks.run [--quick]
        [--only SCENARIO ...] [--worker-class gthread|gevent|sync] [--workers N]
        [--threads N] [--connections N] [--db-pool N] [--unix-sockets] [--seconds S] [--warmup S]

Without DATABASE_URL / REDIS_URL it starts throwaway PostgreSQL and Redis itself (with
scripts/services.py's context managers), over 127.0.0.1 TCP (`--unix-sockets`: over their unix
sockets, as gateway workers on the database's host may). It migrates, creates a bench
account (enterprise tier, a custom limit the limiter never reaches, 10**15 Wits, a key), loads
providers pointing at four fake upstreams (instant; 200 ms before headers; 200 ms + 16 tokens
x 10 ms; 200 ms + 16 tokens x 250 ms), starts the gateway under gunicorn with
deploy/gunicorn.conf.py and production-like settings, and measures:

    chat, chat-stream, messages, messages-stream, embeddings   wrk at each --concurrency
    chat-slow      chat against the 200 ms upstream at c=1, then c=200
    stream-slow    chat stream against the 200 ms + 16 x 10 ms upstream at c=50
    ttft           added time to first content byte (asyncio client, c=10, same upstream)
    max-streams    N streams at once, N stepping up to >= 1000: the largest N with 0 errors
    held-streams   1,000 streams that last ~4.2 s (200 ms + 16 tokens x 250 ms), opened at
                   once, then over 3 s: all in flight together; peak in flight, errors, TTFT
    ledger         benchmarks/ledger.py (reserve+commit pairs/s against SELECT 1/s)
    instances      two gateway instances vs one on the same PostgreSQL + Redis

Every row is measured against its own same-run baseline (the machine is shared and noisy:
read the ratios). Prints one markdown table and writes it, plus the raw figures as JSON, to
benchmarks/out/. Every process it starts is stopped by PID in `finally`; every wrk run, stream
burst and the ledger run has a hard deadline. See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks import _procs, _stack, _streams, _wrk
from benchmarks import ledger as ledger_bench

OUT = Path(__file__).resolve().parent / "out"
PROMPT = "Hello there, how are you today? Please answer in a few words."
ANTHROPIC_VERSION = "2023-06-01"
OPENAI = _streams.OPENAI
ANTHROPIC = _streams.ANTHROPIC

WRK_LOADS = ("chat", "chat-stream", "messages", "messages-stream", "embeddings")
STREAM_STEPS = (100, 250, 500, 750, 1000, 1500, 2000)
QUICK_STREAM_STEPS = (100, 500, 1000)
WARMUP_CONNECTIONS = 8  # enough that every gateway worker accepts one
SCENARIOS = (
    *WRK_LOADS,
    "chat-slow",
    "stream-slow",
    "ttft",
    "max-streams",
    "held-streams",
    "ledger",
    "instances",
)
HELD_STREAMS = 1000
HELD_RAMP_S = 3.0  # shorter than a held stream (~4.2 s), so all of them overlap


@dataclass(frozen=True)
class Load:
    label: str
    path: str
    protocol: str
    upstream: str
    body: dict

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


def _chat(model: str, *, stream: bool = False) -> dict:
    body: dict = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    return body


def _messages(model: str, *, stream: bool = False) -> dict:
    body: dict = {
        "model": model,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        body["stream"] = True
    return body


LOADS: dict[str, Load] = {
    "chat": Load("chat", "/v1/chat/completions", OPENAI, "fast", _chat("bench-chat")),
    "chat-stream": Load(
        "chat stream", "/v1/chat/completions", OPENAI, "fast", _chat("bench-chat", stream=True)
    ),
    "messages": Load("messages", "/v1/messages", ANTHROPIC, "fast", _messages("bench-claude")),
    "messages-stream": Load(
        "messages stream",
        "/v1/messages",
        ANTHROPIC,
        "fast",
        _messages("bench-claude", stream=True),
    ),
    "embeddings": Load(
        "embeddings",
        "/v1/embeddings",
        OPENAI,
        "fast",
        {"model": "bench-embed", "input": PROMPT, "dimensions": 1024},
    ),
    "chat-slow": Load(
        "chat, upstream 200 ms", "/v1/chat/completions", OPENAI, "slow", _chat("bench-chat-slow")
    ),
    "stream-long": Load(
        "chat stream, upstream 200 ms + 16 x 250 ms",
        "/v1/chat/completions",
        OPENAI,
        "long",
        _chat("bench-chat-long", stream=True),
    ),
    "stream-slow": Load(
        "chat stream, upstream 200 ms + 16 x 10 ms",
        "/v1/chat/completions",
        OPENAI,
        "stream",
        _chat("bench-chat-stream", stream=True),
    ),
}

UPSTREAMS = {
    "fast": _stack.UpstreamSpec("fast", workers=2),
    "slow": _stack.UpstreamSpec("slow", delay_ms=200),
    "stream": _stack.UpstreamSpec("stream", delay_ms=200, token_delay_ms=10, reply_tokens=16),
    # Streams long enough (~4.2 s) that a thousand opened at once are all in flight together.
    "long": _stack.UpstreamSpec("long", delay_ms=200, token_delay_ms=250, reply_tokens=16),
}


@dataclass(frozen=True)
class Side:
    """One side of a row: the gateway, or the same load straight to the upstream."""

    rate: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int = 0
    detail: str = ""


@dataclass
class Row:
    scenario: str
    conc: str
    straight: Side | None
    gateway: Side | None
    cpu_ms: float | None = None
    rss_mb: float | None = None
    pss_mb: float | None = None
    note: str = ""
    failed: str = ""
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    seconds: float
    warmup: float
    concurrency: tuple[int, ...]
    stream_steps: tuple[int, ...]
    ledger_seconds: float


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _drain(roots: list[int]) -> None:
    if not _procs.wait_idle(roots, timeout=60):
        log("  the gateway did not go idle within 60 s; measuring anyway")


def _side(result: _wrk.WrkResult) -> Side:
    if result.requests == 0:
        return Side(0.0, None, None, result.errors, "no request completed in the run")
    detail = []
    if result.non_2xx:
        detail.append(f"{result.non_2xx} non-2xx")
    if result.socket_errors:
        detail.append(f"{result.socket_errors} socket")
    if result.timeouts:
        detail.append(f"{result.timeouts} timeout")
    return Side(result.rps, result.p50_ms, result.p99_ms, result.errors, ", ".join(detail))


class Bench:
    """The running stack plus the scenarios measured against it."""

    def __init__(
        self,
        stack: _stack.Stack,
        settings: Settings,
        upstreams: dict[str, _stack.Upstream],
        gateway: _stack.Gateway,
        key: str,
        env: dict[str, str],
        serving: _stack.Serving,
    ) -> None:
        self.stack = stack
        self.settings = settings
        self.upstreams = upstreams
        self.gateway = gateway
        self.key = key
        self.env = env
        self.serving = serving

    # --- requests --------------------------------------------------------------------------

    def _headers(self, protocol: str, *, straight: bool) -> dict[str, str]:
        key = self.upstreams["fast"].key if straight else self.key
        if protocol == ANTHROPIC:
            return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
        return {"Authorization": f"Bearer {key}"}

    def request(
        self, load: Load, *, straight: bool, gateway: _stack.Gateway | None = None
    ) -> _wrk.Request:
        base = (
            self.upstreams[load.upstream].base_url
            if straight
            else (gateway or self.gateway).base_url
        )
        return _wrk.Request(
            base + load.path, load.encoded(), self._headers(load.protocol, straight=straight)
        )

    def target(self, load: Load, *, straight: bool) -> _streams.Target:
        port = self.upstreams[load.upstream].port if straight else self.gateway.port
        return _streams.Target(
            "127.0.0.1",
            port,
            load.path,
            self._headers(load.protocol, straight=straight),
            load.encoded(),
            load.protocol,
        )

    # --- wrk rows ---------------------------------------------------------------------------

    def _wrk(self, requests: list[_wrk.Request], conc: int) -> _wrk.WrkResult:
        s = self.settings
        if s.warmup:
            _wrk.run_many(requests, connections=conc, seconds=s.warmup)
        return _wrk.WrkResult.combine(_wrk.run_many(requests, connections=conc, seconds=s.seconds))

    def _measured(
        self, requests: list[_wrk.Request], conc: int, roots: list[int]
    ) -> tuple[_wrk.WrkResult, _procs.Sampler]:
        s = self.settings
        if s.warmup:
            # At least `WARMUP_CONNECTIONS`: one connection warms the one worker that accepted
            # it, and the measured run's may land on another, whose first request (connections
            # opened, caches filled: ~50 ms) wrk's coordinated-omission correction spreads over
            # the tail (a c=1 row's p99 read 42 ms, ~4 ms once every worker was warm).
            _wrk.run_many(requests, connections=max(conc, WARMUP_CONNECTIONS), seconds=s.warmup)
        # wrk stops sending when its time is up, but requests it already sent are still queued
        # in the gateway: start the measured run (and the next row) only once they drained.
        _drain(roots)
        with _procs.Sampler(roots) as sampler:
            parts = _wrk.run_many(requests, connections=conc, seconds=s.seconds)
        _drain(roots)
        return _wrk.WrkResult.combine(parts), sampler

    def wrk_row(self, name: str, conc: int) -> Row:
        load = LOADS[name]
        straight = self._wrk([self.request(load, straight=True)], conc)
        gateway, sampler = self._measured(
            [self.request(load, straight=False)], conc, [self.gateway.pid]
        )
        return self._row(load.label, str(conc), straight, gateway, sampler)

    def slow_rows(self) -> list[Row]:
        """The 200 ms upstream one call at a time, then at c=200. At c=1 nothing queues: what
        the gateway adds there is its path run cold, after the worker, PostgreSQL and Redis sat
        idle through the upstream's 200 ms (`benchmarks.machine`), the floor under c=200."""
        one = self.wrk_row("chat-slow", 1)
        note = "one call at a time; CPU includes ~2 ms a call of the idle workers' own"
        return [dataclasses.replace(one, note=note), self.wrk_row("chat-slow", 200)]

    def _row(
        self,
        label: str,
        conc: str,
        straight: _wrk.WrkResult,
        gateway: _wrk.WrkResult,
        sampler: _procs.Sampler,
        note: str = "",
    ) -> Row:
        return Row(
            scenario=label,
            conc=conc,
            straight=_side(straight),
            gateway=_side(gateway),
            cpu_ms=sampler.cpu_s * 1000 / gateway.requests if gateway.requests else None,
            rss_mb=sampler.peak_rss / 2**20,
            pss_mb=sampler.peak_pss / 2**20,
            note=note,
            raw={
                "straight": asdict(straight),
                "gateway": asdict(gateway),
                "gateway_cpu_s": sampler.cpu_s,
                "gateway_pids_seen": len(sampler.pids_seen),
            },
        )

    # --- streaming --------------------------------------------------------------------------

    def ttft_row(self) -> Row:
        load = LOADS["stream-slow"]
        seconds = self.settings.seconds
        conc = 10

        def loop(straight: bool, seconds: float = seconds) -> list[_streams.Outcome]:
            return asyncio.run(
                asyncio.wait_for(
                    _streams.closed_loop(
                        self.target(load, straight=straight),
                        concurrency=conc,
                        seconds=seconds,
                        timeout_s=30,
                    ),
                    seconds + 60,
                )
            )

        # Warmed up as the wrk rows are: without it the first streams on each worker pay its
        # first use of the stream path and its connections, which is the p99 of a 10 s run.
        if self.settings.warmup:
            loop(True, self.settings.warmup)
        straight = loop(True)
        _drain([self.gateway.pid])
        if self.settings.warmup:
            loop(False, self.settings.warmup)
            _drain([self.gateway.pid])
        with _procs.Sampler([self.gateway.pid]) as sampler:
            gateway = loop(False)
        s_side, g_side = self._stream_side(straight, seconds), self._stream_side(gateway, seconds)
        return Row(
            scenario="chat stream, added TTFT (upstream 200 ms + 16 x 10 ms)",
            conc=str(conc),
            straight=s_side,
            gateway=g_side,
            cpu_ms=sampler.cpu_s * 1000 / len(gateway) if gateway else None,
            rss_mb=sampler.peak_rss / 2**20,
            pss_mb=sampler.peak_pss / 2**20,
            note="latency columns are time to first content byte",
            raw={"straight_streams": len(straight), "gateway_streams": len(gateway)},
        )

    @staticmethod
    def _stream_side(outcomes: list[_streams.Outcome], seconds: float) -> Side:
        ttfts = [o.ttft_s * 1000 for o in outcomes if o.ok and o.ttft_s is not None]
        failed = [o for o in outcomes if not o.ok]
        reasons: dict[str, int] = {}
        for outcome in failed:
            reasons[outcome.error] = reasons.get(outcome.error, 0) + 1
        detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
        return Side(
            rate=len([o for o in outcomes if o.ok]) / seconds if seconds else 0.0,
            p50_ms=_streams.percentile(ttfts, 50) if ttfts else None,
            p99_ms=_streams.percentile(ttfts, 99) if ttfts else None,
            errors=len(failed),
            detail=detail,
        )

    def _burst_row(self, load: Load, count: int, scenario: str, *, over_s: float = 0.0) -> Row:
        """`count` streams opened at once (or, with `over_s`, at evenly spaced times over that
        many seconds), straight then through the gateway (sampled)."""

        def burst(straight: bool) -> tuple[list, int, float]:
            # Each stream is bounded by its own 60 s timeout, so the burst is too.
            target = self.target(load, straight=straight)
            return _streams.held(target, count, over_s=over_s, timeout_s=60)

        straight, s_peak, s_wall = burst(True)
        _drain([self.gateway.pid])
        with _procs.Sampler([self.gateway.pid]) as sampler:
            gateway, g_peak, g_wall = burst(False)
        return Row(
            scenario=scenario,
            conc=str(count),
            straight=self._stream_side(straight, s_wall),
            gateway=self._stream_side(gateway, g_wall),
            cpu_ms=sampler.cpu_s * 1000 / count,
            rss_mb=sampler.peak_rss / 2**20,
            pss_mb=sampler.peak_pss / 2**20,
            note=(
                f"peak in flight {g_peak} (straight {s_peak}); all done in {g_wall:.1f} s "
                f"(straight {s_wall:.1f} s); latency = TTFT"
            ),
            raw={"straight_peak": s_peak, "gateway_peak": g_peak},
        )

    def max_streams_rows(self) -> list[Row]:
        load = LOADS["stream-slow"]
        steps: list[dict] = []
        best: Row | None = None
        first_failure: Row | None = None
        for count in self.settings.stream_steps:
            row = self._burst_row(load, count, "max concurrent streams (200 ms + 16 x 10 ms)")
            steps.append({"streams": count, **asdict(row)})
            errors = row.gateway.errors if row.gateway else 0
            log(f"  {count} streams: {errors} errors, peak in flight {row.raw['gateway_peak']}")
            if errors:
                first_failure = row
                break
            best = row
        rows = []
        if best is not None:
            best.scenario = "max concurrent streams with 0 errors (200 ms + 16 x 10 ms)"
            rows.append(best)
        if first_failure is not None:
            first_failure.scenario = "first stream step with errors"
            rows.append(first_failure)
        if rows:
            rows[0].raw["steps"] = steps
        return rows

    def held_streams_rows(self) -> list[Row]:
        """`HELD_STREAMS` streams, each ~4.2 s long, opened all at once, then at evenly spaced
        times over `HELD_RAMP_S`: either way the first are still open when the last start, so
        the peak in flight shows whether the gateway held them all at once (the max-streams
        streams end before a burst of them has started). Opened at once, their time to first
        content is how long the burst of starts queues; opened over the ramp, it is what a new
        stream waits while a thousand others are held."""
        load = LOADS["stream-long"]
        return [
            self._burst_row(
                load, HELD_STREAMS, "streams held at once, opened at once (200 ms + 16 x 250 ms)"
            ),
            self._burst_row(
                load,
                HELD_STREAMS,
                f"streams held at once, opened over {HELD_RAMP_S:g} s (200 ms + 16 x 250 ms)",
                over_s=HELD_RAMP_S,
            ),
        ]

    # --- ledger -----------------------------------------------------------------------------

    def ledger_rows(self) -> list[Row]:
        seconds = self.settings.ledger_seconds
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.ledger", "--seconds", str(seconds)],
            cwd=_stack.ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=len(ledger_bench.SCENARIOS) * (seconds * 4 / 3 + 25) + 120,
            check=False,
        )
        pattern = re.compile(
            r"^(hot wallet|100 wallets)\s+(\d+)p x (\d+)([tg])\s+([\d,]+)\s+([\d,]+)"
            r"\s+([\d.]+|inf)$"
        )
        rows = []
        for line in done.stdout.splitlines():
            match = pattern.match(line.strip())
            if not match:
                continue
            name, procs, threads, kind, pairs, select1, _ = match.groups()
            rows.append(
                Row(
                    scenario=f"ledger pairs/s, {name}",
                    conc=f"{procs}p x {threads}{kind}",
                    straight=Side(float(select1.replace(",", "")), None, None),
                    gateway=Side(float(pairs.replace(",", "")), None, None),
                    note="straight = SELECT 1/s on the same connections",
                )
            )
        books = next((x for x in done.stdout.splitlines() if x.startswith("books")), "")
        if done.returncode != 0 or not rows:
            raise RuntimeError(f"benchmarks.ledger exited {done.returncode}: {done.stderr[-2000:]}")
        trips = re.search(r"~(\d+) round trips per pair", done.stdout)
        if trips:
            rows[0].note += f"; ~{trips.group(1)} round trips per pair"
        rows[0].note += f"; {books}"
        return rows

    # --- horizontal -------------------------------------------------------------------------

    def instances_rows(self) -> list[Row]:
        """Two instances against one, each as configured (on one machine both are CPU-bound:
        one instance's workers already use every core), then each with one worker (half the
        cores each), which shows whether a second instance adds throughput on the same
        PostgreSQL and Redis when it has cores of its own."""
        rows = self._instances_pair(self.serving, self.gateway, "")
        single = dataclasses.replace(self.serving, workers=1)
        first = self.stack.gateway("gateway-c", self.env, single)
        try:
            rows += self._instances_pair(single, first, ", 1 worker each")
        finally:
            self.stack.stop(first.started)
        return rows

    def _instances_pair(
        self, serving: _stack.Serving, one_gw: _stack.Gateway, label: str
    ) -> list[Row]:
        load = LOADS["chat"]
        conc = 25
        second = self.stack.gateway("gateway-b", self.env, serving)
        try:
            straight = self._wrk([self.request(load, straight=True)] * 2, conc)
            one, one_s = self._measured(
                [self.request(load, straight=False, gateway=one_gw)] * 2, conc, [one_gw.pid]
            )
            two, two_s = self._measured(
                [
                    self.request(load, straight=False, gateway=one_gw),
                    self.request(load, straight=False, gateway=second),
                ],
                conc,
                [one_gw.pid, second.pid],
            )
        finally:
            self.stack.stop(second.started)
        gain = two.rps / one.rps if one.rps else 0.0
        return [
            self._row(f"chat, 1 instance{label} (2 wrk x c=25)", "50", straight, one, one_s),
            self._row(
                f"chat, 2 instances{label} (wrk c=25 on each)",
                "50",
                straight,
                two,
                two_s,
                note=f"x{gain:.2f} the 1-instance rate",
            ),
        ]


# --- table -----------------------------------------------------------------------------------

COLUMNS = (
    "scenario",
    "conc",
    "straight req/s",
    "gateway req/s",
    "gw / straight",
    "straight p50 / p99 ms",
    "gateway p50 / p99 ms",
    "added p50 / p99 ms",
    "gw CPU ms/req",
    "gw peak RSS MB (PSS)",
    "errors",
    "notes",
)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"


def _pair(a: float | None, b: float | None) -> str:
    return "—" if a is None and b is None else f"{_ms(a)} / {_ms(b)}"


def _diff(g: float | None, s: float | None) -> float | None:
    return None if g is None or s is None else g - s


def cells(row: Row) -> list[str]:
    s, g = row.straight, row.gateway
    if row.failed:
        return [row.scenario, row.conc, *["—"] * 8, "run failed", row.failed[:120]]
    ratio = g.rate / s.rate if s and g and s.rate else None
    errors = str(g.errors) if g else "—"
    if g and g.detail:
        errors += f" ({g.detail})"
    if s and s.errors:
        errors += f"; straight {s.errors}" + (f" ({s.detail})" if s.detail else "")
    rss = "—" if row.rss_mb is None else f"{row.rss_mb:,.0f} ({row.pss_mb:,.0f})"
    return [
        row.scenario,
        row.conc,
        _num(s.rate if s else None),
        _num(g.rate if g else None),
        _num(ratio, 3),
        _pair(s.p50_ms, s.p99_ms) if s else "—",
        _pair(g.p50_ms, g.p99_ms) if g else "—",
        _pair(_diff(g.p50_ms, s.p50_ms), _diff(g.p99_ms, s.p99_ms)) if s and g else "—",
        _num(row.cpu_ms, 2),
        rss,
        errors,
        row.note,
    ]


def table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i in (0, 10, 11) else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="short runs, fewer stream steps")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="SCENARIO")
    parser.add_argument("--worker-class", choices=("gthread", "gevent", "sync"))
    parser.add_argument("--workers", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--connections", type=int, help="gevent: connections per worker")
    parser.add_argument(
        "--db-pool", type=int, help="psycopg pool size per worker (0 = off; default 16 on gevent)"
    )
    parser.add_argument(
        "--unix-sockets",
        action="store_true",
        help="reach the throwaway PostgreSQL and Redis over their unix sockets, not 127.0.0.1 TCP",
    )
    parser.add_argument("--seconds", type=float, help="per measured run (default 10, quick 2)")
    parser.add_argument("--warmup", type=float, help="before each run (default 2, quick 1)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument(
        "--stream-steps",
        type=int,
        nargs="+",
        help="stream counts for max-streams (default 100 250 500 750 1000 1500 2000)",
    )
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    quick = args.quick
    steps = args.stream_steps or (QUICK_STREAM_STEPS if quick else STREAM_STEPS)
    return Settings(
        seconds=args.seconds or (2.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 2.0),
        concurrency=tuple(args.concurrency),
        stream_steps=tuple(steps),
        ledger_seconds=1.0 if quick else 3.0,
    )


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("django", "gunicorn", "gevent", "psycopg", "redis", "requests"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _transport(database_url: str, redis_url: str) -> str:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(database_url).query)
    pg = "unix socket" if query.get("host", [""])[-1].startswith("/") else "TCP"
    redis = "unix socket" if redis_url.startswith("unix:") else "TCP"
    return f"PostgreSQL over {pg}, Redis over {redis}"


def _plan(only: list[str] | None) -> list[str]:
    return [name for name in SCENARIOS if not only or name in only]


def _attempt(name: str, rows: list[Row], make: Callable[[], list[Row]]) -> None:
    began = time.monotonic()
    try:
        made = make()
    except Exception as error:  # noqa: BLE001 - one failed scenario must not lose the others
        log(f"{name}: FAILED: {error}")
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        rows.append(Row(name, "—", None, None, failed=reason))
        return
    rows.extend(made)
    for row in made:
        log(f"{name}: " + " | ".join(cells(row)[:11]))
    log(f"{name}: done in {time.monotonic() - began:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    settings = _settings(args)
    plan = _plan(args.only)
    serving = _stack.Serving(
        worker_class=args.worker_class,
        workers=args.workers,
        threads=args.threads,
        connections=args.connections,
        db_pool=args.db_pool,
    )
    _raise_fd_limit()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    OUT.mkdir(parents=True, exist_ok=True)
    log_dir = OUT / f"{stamp}-logs"
    log_dir.mkdir()
    began = time.monotonic()
    rows: list[Row] = []
    meta: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "serving": serving.effective(),
        "settings": asdict(settings),
        "versions": _versions(),
        "plan": plan,
    }
    log(f"serving {meta['serving']}; {settings.seconds:g} s runs; logs in {log_dir}")
    with (
        tempfile.TemporaryDirectory(prefix="clawwits-bench-") as work,
        _stack.services(sockets=args.unix_sockets) as (database_url, redis_url),
        _stack.Stack(log_dir=log_dir) as stack,
    ):
        meta["services"] = _transport(database_url, redis_url)
        meta["durability"] = _stack.durability(database_url)
        log(f"{meta['services']}; PostgreSQL: {meta['durability']}")
        env = _stack.base_env(
            database_url=database_url, redis_url=redis_url, var_dir=Path(work) / "var"
        )
        wanted = {"fast", "slow"} if "chat-slow" in plan else {"fast"}
        if {"stream-slow", "ttft", "max-streams"} & set(plan):
            wanted.add("stream")
        if "held-streams" in plan:
            wanted.add("long")
        upstreams = {
            name: stack.upstream(UPSTREAMS[name], env) for name in UPSTREAMS if name in wanted
        }
        log("migrating and creating the bench account")
        key = _stack.prepare_database(env, upstreams, Path(work))
        gateway = stack.gateway("gateway-a", env, serving)
        bench = Bench(stack, settings, upstreams, gateway, key, env, serving)
        for name in plan:
            log(f"{name} ...")
            if name in WRK_LOADS:
                for conc in settings.concurrency:
                    _attempt(f"{name} c={conc}", rows, lambda n=name, c=conc: [bench.wrk_row(n, c)])
            elif name == "chat-slow":
                _attempt(name, rows, bench.slow_rows)
            elif name == "stream-slow":
                _attempt(name, rows, lambda: [bench.wrk_row("stream-slow", 50)])
            elif name == "ttft":
                _attempt(name, rows, lambda: [bench.ttft_row()])
            elif name == "max-streams":
                _attempt(name, rows, bench.max_streams_rows)
            elif name == "held-streams":
                _attempt(name, rows, bench.held_streams_rows)
            elif name == "ledger":
                _attempt(name, rows, bench.ledger_rows)
            elif name == "instances":
                _attempt(name, rows, bench.instances_rows)
    elapsed = time.monotonic() - began
    meta["loadavg_after"] = os.getloadavg()
    meta["elapsed_s"] = round(elapsed, 1)
    peaks = [r.rss_mb for r in rows if r.rss_mb is not None]
    meta["gateway_peak_rss_mb"] = max(peaks) if peaks else None
    text = table(rows)
    header = (
        f"ClawWits benchmark {meta['started']}: {meta['cpus']} CPUs, serving "
        f"{meta['serving']}, {settings.seconds:g} s runs after {settings.warmup:g} s warm-up, "
        f"{meta['services']}, PostgreSQL {meta['durability']}, took {elapsed:.0f} s"
    )
    print(header)
    print()
    print(text)
    (OUT / f"bench-{stamp}.md").write_text(header + "\n\n" + text + "\n")
    (OUT / f"bench-{stamp}.json").write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2, default=str)
    )
    log(f"wrote {OUT / f'bench-{stamp}.md'} and .json")
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
