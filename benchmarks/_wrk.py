"""wrk as a library: one POST load at a fixed concurrency, summarised by benchmarks/post.lua.

A run that wrk cannot finish in its duration plus `slack_s` is killed and reported as timed out
(the run's hard deadline); a missing summary line is an error, never a silent zero.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("post.lua")
MARK = "WRK_JSON "


class WrkError(RuntimeError):
    """wrk did not produce a summary (missing binary, crash, deadline)."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors + self.timeouts

    @staticmethod
    def parse(stdout: str) -> WrkResult:
        line = next((x for x in stdout.splitlines() if x.startswith(MARK)), None)
        if line is None:
            raise WrkError(f"no summary from wrk:\n{stdout[-2000:]}")
        raw = json.loads(line[len(MARK) :])
        return WrkResult(
            requests=raw["requests"],
            seconds=raw["duration_us"] / 1e6,
            non_2xx=raw["status_errors"],
            socket_errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"],
            timeouts=raw["timeouts"],
            p50_ms=raw["p50_us"] / 1000,
            p90_ms=raw["p90_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            max_ms=raw["max_us"] / 1000,
        )

    @staticmethod
    def combine(parts: list[WrkResult]) -> WrkResult:
        """Several concurrent wrk processes as one load: requests and errors add up, rates add
        up (each part's own duration), latency percentiles are the worst part's (an upper
        bound; wrk does not export its histogram)."""
        requests = sum(p.requests for p in parts)
        rps = sum(p.rps for p in parts)
        return WrkResult(
            requests=requests,
            seconds=requests / rps if rps else 0.0,
            non_2xx=sum(p.non_2xx for p in parts),
            socket_errors=sum(p.socket_errors for p in parts),
            timeouts=sum(p.timeouts for p in parts),
            p50_ms=max(p.p50_ms for p in parts),
            p90_ms=max(p.p90_ms for p in parts),
            p99_ms=max(p.p99_ms for p in parts),
            max_ms=max(p.max_ms for p in parts),
        )


def binary() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if not found:
        raise WrkError("wrk is not installed (Debian: apt-get install wrk)")
    return found


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: Mapping[str, str]


def _argv(
    request: Request, *, connections: int, seconds: float, timeout_s: float, files: Path
) -> list[str]:
    body = files / "body.json"
    headers = files / "headers.txt"
    body.write_bytes(request.body)
    headers.write_text("".join(f"{k}: {v}\n" for k, v in request.headers.items()))
    threads = max(1, min(2, connections))
    return [
        binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds only
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(LUA),
        request.url,
        "--",
        str(body),
        str(headers),
    ]


def run_many(
    requests: list[Request],
    *,
    connections: int,
    seconds: float,
    timeout_s: float = 10.0,
    slack_s: float = 30.0,
) -> list[WrkResult]:
    """Run one wrk per request at once (each with `connections`), wait for all of them."""
    with tempfile.TemporaryDirectory(prefix="clawwits-wrk-") as tmp:
        procs = []
        try:
            for i, request in enumerate(requests):
                files = Path(tmp) / str(i)
                files.mkdir()
                argv = _argv(
                    request, connections=connections, seconds=seconds, timeout_s=timeout_s,
                    files=files,
                )  # fmt: skip
                procs.append(
                    subprocess.Popen(
                        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                    )
                )
            outs = []
            for proc in procs:
                try:
                    out, _ = proc.communicate(timeout=seconds + slack_s)
                except subprocess.TimeoutExpired:
                    raise WrkError(f"wrk overran its deadline ({seconds + slack_s:g}s)") from None
                outs.append(out)
            return [WrkResult.parse(out) for out in outs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def run(
    request: Request,
    *,
    connections: int,
    seconds: float,
    timeout_s: float = 10.0,
    slack_s: float = 30.0,
) -> WrkResult:
    """One wrk run: `connections` keep-alive connections POSTing for `seconds`."""
    return run_many(
        [request], connections=connections, seconds=seconds, timeout_s=timeout_s, slack_s=slack_s
    )[0]
