"""Serving models for streams, side by side: gunicorn + gevent (what ClawWits serves with) and
uvicorn (ASGI on asyncio + uvloop + httptools) with async streaming, each relaying the same
upstream streams through Django (`benchmarks.relayapp`), beside the same streams opened
straight to the upstream in the same run.

    .venv/bin/python -m benchmarks.serving [--streams 1000] [--ramp 3]

Issue 7 asks to choose the serving model by measuring the candidates for streams. gthread and
gevent run the billed path in `benchmarks.run` (`--worker-class`). The billed relay is
synchronous, and under ASGI Django consumes a synchronous streaming iterator whole before it
sends a byte (`StreamingHttpResponse.__aiter__`), so ASGI could only serve it by porting the
relay to async; this measures what such a port would stand on: the server, Django's handler,
one upstream read, one JSON parse and dump and one client write per event, no billing. Each
server runs two workers (one per core) and is measured on the held-streams load of
`benchmarks.run` (~4.2 s streams: 200 ms + 16 tokens x 250 ms), opened all at once and over
`--ramp` seconds, after a warm-up of 200 streams. No database, no Redis; every process is
stopped by PID; every stream is bounded by a 60 s timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _procs, _stack, _streams, run

WORKERS = 2


def _gevent(port: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "benchmarks.relayapp:wsgi", "-k", "gevent",
        "-w", str(WORKERS), "--worker-connections", "2000", "-b", f"127.0.0.1:{port}",
        "--keep-alive", "5", "--log-level", "warning",
    ]  # fmt: skip


def _uvicorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "benchmarks.relayapp:asgi", "--workers", str(WORKERS),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning", "--backlog", "4096",
    ]  # fmt: skip


# Name, command for a port, and whether the relay's view is the asynchronous one.
SERVERS = (
    ("gunicorn + gevent (sync view)", _gevent, False),
    ("uvicorn, ASGI (async view)", _uvicorn, True),
)


def _added(gateway: float | None, straight: float | None) -> float | None:
    return None if gateway is None or straight is None else gateway - straight


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=run.HELD_STREAMS)
    parser.add_argument("--ramp", type=float, default=run.HELD_RAMP_S)
    args = parser.parse_args()
    load = run.LOADS["stream-long"]
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="clawwits-serving-") as work,
        _stack.Stack(log_dir=Path(work)) as stack,
    ):
        env = _stack.base_env(database_url="", redis_url="", var_dir=Path(work) / "var")
        upstream = stack.upstream(run.UPSTREAMS["long"], env)
        headers = {"Authorization": f"Bearer {stack.upstream_key}"}
        straight = _streams.Target(
            "127.0.0.1", upstream.port, load.path, headers, load.encoded(), load.protocol
        )
        baseline = {}
        for over in (0.0, args.ramp):
            outcomes, _, wall = _streams.held(straight, args.streams, over_s=over)
            baseline[over] = run.Bench._stream_side(outcomes, wall)
        for name, command, asynchronous in SERVERS:
            port = _procs.free_port()
            argv = command(port)
            server_env = {
                **env,
                "DJANGO_SETTINGS_MODULE": "benchmarks.relayapp",
                "RELAY_UPSTREAM": f"http://127.0.0.1:{upstream.port}",
                "RELAY_UPSTREAM_KEY": stack.upstream_key,
                "RELAY_ASYNC": "1" if asynchronous else "0",
            }
            started = _procs.start(
                "relay", argv, env=server_env, cwd=_stack.ROOT, log_dir=Path(work)
            )
            stack.started.append(started)
            _procs.wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=60, started=started)
            target = _streams.Target(
                "127.0.0.1", port, load.path, {}, load.encoded(), load.protocol
            )
            _streams.held(target, 200, over_s=1.0)  # warm-up: every worker's first streams
            for over in (0.0, args.ramp):
                _procs.wait_idle([started.pid])
                with _procs.Sampler([started.pid]) as sampler:
                    outcomes, peak, wall = _streams.held(target, args.streams, over_s=over)
                side, base = run.Bench._stream_side(outcomes, wall), baseline[over]
                rows.append(
                    {
                        "server": name,
                        "opened": f"over {over:g} s" if over else "at once",
                        "added_p50_ms": _added(side.p50_ms, base.p50_ms),
                        "added_p99_ms": _added(side.p99_ms, base.p99_ms),
                        "cpu_ms_per_stream": sampler.cpu_s * 1000 / args.streams,
                        "pss_mb": sampler.peak_pss / 2**20,
                        "peak_in_flight": peak,
                        "errors": side.errors,
                        "wall_s": wall,
                    }
                )
            stack.stop(started)
    print(
        f"Serving models for streams: {args.streams} streams of ~4.2 s, {WORKERS} workers each, "
        "Django relay without billing; added = beside the same streams straight to the upstream"
    )
    print()
    print(
        "| server | opened | added TTFT p50 / p99 ms | CPU ms per stream | peak PSS MB "
        "| peak in flight | errors |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['server']} | {row['opened']} | {_fmt(row['added_p50_ms'])} / "
            f"{_fmt(row['added_p99_ms'])} | {row['cpu_ms_per_stream']:.2f} | "
            f"{row['pss_mb']:.0f} | {row['peak_in_flight']} | {row['errors']} |"
        )
    out = _stack.ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / f"serving-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
