#!/usr/bin/env python3
"""Throwaway PostgreSQL and Redis for tests and benchmarks (stdlib only).

    python scripts/services.py [--durable] -- COMMAND [ARGS...]

When DATABASE_URL / REDIS_URL are unset, starts PostgreSQL 15 (as the `postgres` user when run
as root) and Redis on free 127.0.0.1 ports in a temporary directory, exports the URLs to
COMMAND, and stops both when COMMAND ends, whatever way it ends. Exits with COMMAND's status.
Configured URLs are used as they are and nothing is started for them.

PostgreSQL runs without durability (no fsync, asynchronous commits: fast tests) unless
`--durable` is given: then with its own defaults, every commit flushed to disk before it is
acknowledged, as a ledger must run in production and as benchmarks measure it.

Both also listen on unix sockets in that directory: DATABASE_SOCKET_URL and REDIS_SOCKET_URL
name them (for the servers started here only), the forms a single-host deployment would use.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from urllib.parse import urlsplit


def log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"missing {' '.join(packages)} and cannot install it (need root + apt)")
    log(f"installing {' '.join(packages)} from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    apt_install("postgresql-15")
    return pg_bin(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def postgres(workdir: str, *, durable: bool = False) -> Iterator[str]:
    port = free_port()
    data = os.path.join(workdir, "pg")
    os.makedirs(data)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        os.chown(data, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        _as_postgres(
            [
                pg_bin("initdb"),
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # Enough connections for the concurrency tests (hundreds of threads, each with its own
    # connection). A throwaway server for tests runs with durability off, for speed.
    options = (
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c max_connections=500 "
        "-c shared_buffers=128MB"
    )
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    logfile = os.path.join(workdir, "pg.log")
    subprocess.run(
        _as_postgres([pg_bin("pg_ctl"), "-D", data, "-l", logfile, "-o", options, "-w", "start"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            _as_postgres(
                [
                    pg_bin("psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-q",
                    "-c",
                    "CREATE ROLE clawwits LOGIN SUPERUSER",
                    "-c",
                    "CREATE DATABASE clawwits OWNER clawwits",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        log(f"PostgreSQL on 127.0.0.1:{port}")
        yield f"postgres://clawwits@127.0.0.1:{port}/clawwits"
    finally:
        subprocess.run(
            _as_postgres([pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def postgres_socket_url(url: str, workdir: str) -> str:
    """The unix-socket form of `postgres()`'s URL (its socket is in `workdir`)."""
    return f"postgres://clawwits@/clawwits?host={workdir}&port={urlsplit(url).port}"


def redis_socket_url(workdir: str) -> str:
    """The unix-socket form of `redis()`'s URL (its socket is in `workdir`)."""
    return f"unix://{os.path.join(workdir, 'redis.sock')}?db=0"


@contextlib.contextmanager
def redis(workdir: str) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        apt_install("redis-server")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--unixsocket",
            os.path.join(workdir, "redis.sock"),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=10, what="redis-server")
        log(f"Redis on 127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    options = argv[: argv.index("--")]
    if set(options) - {"--durable"}:
        print(__doc__, file=sys.stderr)
        return 2
    durable = "--durable" in options
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="clawwits-svc-"))
        os.chmod(workdir, 0o755)
        if not env.get("DATABASE_URL"):
            pg_dir = os.path.join(workdir, "p")
            env["DATABASE_URL"] = stack.enter_context(postgres(pg_dir, durable=durable))
            env["DATABASE_SOCKET_URL"] = postgres_socket_url(env["DATABASE_URL"], pg_dir)
        if not env.get("REDIS_URL"):
            redis_dir = os.path.join(workdir, "r")
            env["REDIS_URL"] = stack.enter_context(redis(redis_dir))
            env["REDIS_SOCKET_URL"] = redis_socket_url(redis_dir)
        child = subprocess.Popen(command, env=env)
        # Forward Ctrl-C / TERM so the child can clean up, then we stop the services.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: child.send_signal(signum))
        return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
