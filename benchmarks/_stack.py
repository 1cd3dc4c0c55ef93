"""What benchmarks/run.py stands up: fake upstreams, a migrated database with a bench account,
and gateway instances under gunicorn with production-like settings.

Guarantees:
- Everything listens on 127.0.0.1 and is started by `Stack`, which stops every process it
  started, by PID, when it closes (also on errors and Ctrl-C).
- The bench account is on the enterprise tier with a custom limit the limiter never reaches,
  holds 10**15 Wits, and pays for every request (models are priced), so the full billed path
  runs: key auth, scope, rate limit, validation, screening, reserve, relay, commit, usage record.
- The account, key and providers are created through the product's own management commands,
  the way an operator would.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

from benchmarks import _procs

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
UPSTREAM_KEY_ENV = "BENCH_UPSTREAM_KEY"
BENCH_GRANT = 10**15
BENCH_RPM = 10**9
PRICES = {"input_price": 1, "output_price": 2, "cache_read_price": 0.5}


@dataclass(frozen=True)
class Serving:
    """How gunicorn serves the gateway; None leaves deploy/gunicorn.conf.py's default."""

    worker_class: str | None = None
    workers: int | None = None
    threads: int | None = None
    connections: int | None = None
    db_pool: int | None = None  # None: a pool of 16 per worker under gevent, else none

    def effective(self) -> dict[str, object]:
        """What gunicorn will run with: deploy/gunicorn.conf.py read in a child process.

        Not here: with gevent workers the file monkey-patches the standard library (the
        preloading master must), and this process runs the benchmarks' asyncio clients, whose
        event loop would then poll through gevent's select emulation (`GeventSelector`)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WEB_")}
        read = (
            "import json, runpy, sys; conf = runpy.run_path(sys.argv[1]); "
            "print(json.dumps({k: conf[k] for k in sys.argv[2:]}))"
        )
        names = ("worker_class", "workers", "threads", "worker_connections")
        done = subprocess.run(
            [sys.executable, "-c", read, str(GUNICORN_CONF), *names],
            env={**clean, **self.env()},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        conf = json.loads(done.stdout)
        return {
            "worker_class": conf["worker_class"],
            "workers": conf["workers"],
            "threads": conf["threads"],
            "worker_connections": conf["worker_connections"],
            "db_pool_max": self.pool_size(conf["worker_class"]),
        }

    def pool_size(self, worker_class: str) -> int:
        if self.db_pool is not None:
            return self.db_pool
        # One PostgreSQL connection per greenlet would exceed max_connections long before 1,000
        # streams; a per-worker pool is how a gevent deployment runs.
        return 16 if worker_class == "gevent" else 0

    def env(self) -> dict[str, str]:
        env = {}
        for name, value in (
            ("WEB_WORKER_CLASS", self.worker_class),
            ("WEB_WORKERS", self.workers),
            ("WEB_THREADS", self.threads),
            ("WEB_WORKER_CONNECTIONS", self.connections),
        ):
            if value is not None:
                env[name] = str(value)
        return env


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    delay_ms: float = 0.0
    token_delay_ms: float = 0.0
    reply_tokens: int = 8
    workers: int = 1


@dataclass(frozen=True)
class Upstream:
    spec: UpstreamSpec
    port: int
    key: str
    started: _procs.Started

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Gateway:
    port: int
    started: _procs.Started

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.started.pid


def base_env(*, database_url: str, redis_url: str, var_dir: Path) -> dict[str, str]:
    """Production-like settings for manage.py and gunicorn (no DEBUG, real services)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEB_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "clawwits.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DEBUG": "0",
            "SECURE_SSL_REDIRECT": "0",
            "SECRET_KEY": "bench-" + "k" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CLAWWITS_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("WEB_ACCESS_LOG", None)
    return env


def providers_toml(upstreams: dict[str, Upstream]) -> str:
    """An OpenAI-kind and an Anthropic-kind provider per fake upstream, and the bench models."""
    lines: list[str] = []
    for name, up in upstreams.items():
        for kind, suffix in (("openai", "/v1"), ("anthropic", "")):
            lines += [
                "[[providers]]",
                f'name = "bench-{name}-{kind}"',
                f'kind = "{kind}"',
                f'base_url = "{up.base_url}{suffix}"',
                f'api_key_env = "{UPSTREAM_KEY_ENV}"',
                "timeout_s = 60",
                "connect_timeout_s = 5",
                "",
            ]
    models = [
        ("bench-chat", "chat", "fast", "openai", "fake-gpt"),
        ("bench-claude", "chat", "fast", "anthropic", "fake-claude"),
        ("bench-embed", "embedding", "fast", "openai", "fake-embed"),
        ("bench-chat-slow", "chat", "slow", "openai", "fake-gpt"),
        ("bench-chat-stream", "chat", "stream", "openai", "fake-gpt"),
        ("bench-claude-stream", "chat", "stream", "anthropic", "fake-claude"),
        ("bench-chat-long", "chat", "long", "openai", "fake-gpt"),
    ]
    for model, kind, upstream, provider_kind, upstream_model in models:
        if upstream not in upstreams:
            continue
        output = 0 if kind == "embedding" else PRICES["output_price"]
        lines += [
            "[[models]]",
            f'name = "{model}"',
            f'kind = "{kind}"',
            f"input_price = {PRICES['input_price']}",
            f"output_price = {output}",
            f"cache_read_price = {PRICES['cache_read_price']}",
            "max_output_tokens = 4096",
            f'routes = [ {{ provider = "bench-{upstream}-{provider_kind}", '
            f'model = "{upstream_model}" }} ]',
            "",
        ]
    return "\n".join(lines)


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run `manage.py ARGS`; return its stdout; raise with its stderr on failure."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def prepare_database(env: dict[str, str], upstreams: dict[str, Upstream], work: Path) -> str:
    """Migrate, create the bench account and its key, load the providers; return the key."""
    manage(env, "migrate", "--noinput", timeout=300)
    email = f"bench-{time.time_ns()}@bench.example.com"
    # `--password=` form: a token starting with "-" would read as an option.
    manage(
        env, "createaccount", email, f"--password={secrets.token_urlsafe(16)}",
        "--tier", "enterprise", "--grant", "0",
    )  # fmt: skip
    manage(
        env,
        "shell",
        "-c",
        "from accounts.models import User; "
        f"User.objects.filter(email={email!r}).update(rate_limit_rpm={BENCH_RPM})",
    )
    manage(env, "grantwits", email, str(BENCH_GRANT), "--note", "benchmark")
    key = manage(env, "createapikey", email, "--scopes", "ai", "--name", "bench").splitlines()[-1]
    toml = work / "providers.toml"
    toml.write_text(providers_toml(upstreams))
    manage(env, "loadproviders", str(toml))
    return key


class Stack:
    """Owns every process a benchmark run starts; closing it stops them all, by PID."""

    def __init__(self, *, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[_procs.Started] = []
        self.upstream_key = "bench-upstream-" + secrets.token_hex(8)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self.started:
            self.stop(self.started[-1])

    def stop(self, started: _procs.Started) -> None:
        # gunicorn: SIGINT is its quick shutdown (TERM would wait for streams to drain).
        _procs.stop(started, sig=signal.SIGINT, grace=10)
        with contextlib.suppress(ValueError):
            self.started.remove(started)

    def upstream(self, spec: UpstreamSpec, env: dict[str, str]) -> Upstream:
        port = _procs.free_port()
        argv = [
            sys.executable, "-m", "tests.fakes.upstream", "--port", str(port),
            "--api-key", self.upstream_key, "--delay-ms", str(spec.delay_ms),
            "--token-delay-ms", str(spec.token_delay_ms), "--reply-tokens",
            str(spec.reply_tokens), "--workers", str(spec.workers),
        ]  # fmt: skip
        started = _procs.start(
            f"upstream-{spec.name}", argv, env=env, cwd=ROOT, log_dir=self.log_dir
        )
        self.started.append(started)
        _procs.wait_port(port, timeout=30, started=started)
        return Upstream(spec, port, self.upstream_key, started)

    def gateway(self, name: str, env: dict[str, str], serving: Serving) -> Gateway:
        port = _procs.free_port()
        worker_class = serving.effective()["worker_class"]
        pool = serving.pool_size(str(worker_class))
        env = {
            **env,
            **serving.env(),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            UPSTREAM_KEY_ENV: self.upstream_key,
        }
        if pool:
            env.update({"DB_POOL": "1", "DB_POOL_MAX": str(pool), "DB_POOL_MIN": "1"})
        argv = [sys.executable, "-m", "gunicorn", "clawwits.wsgi", "-c", str(GUNICORN_CONF)]
        started = _procs.start(name, argv, env=env, cwd=ROOT, log_dir=self.log_dir)
        self.started.append(started)
        _procs.wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=60, started=started)
        return Gateway(port, started)


@functools.cache
def services_module() -> ModuleType:
    """scripts/services.py as a module (it is a script, not in a package): its `postgres` and
    `redis` context managers start the throwaway servers, for benchmarks and for tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "clawwits_services", ROOT / "scripts" / "services.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def services(*, sockets: bool = False) -> Iterator[tuple[str, str]]:
    """DATABASE_URL and REDIS_URL from the environment, or throwaway servers started with
    scripts/services.py's context managers (and stopped on exit), reached over 127.0.0.1 TCP or,
    with `sockets`, over their unix sockets (as a single-host deployment may). PostgreSQL
    started here is durable (every commit flushed before it is acknowledged), as in production;
    `durability` says what a configured one does."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    with contextlib.ExitStack() as stack:
        if not database_url or not redis_url:
            module = services_module()
            svc = stack.enter_context(tempfile.TemporaryDirectory(prefix="clawwits-bench-svc-"))
            os.chmod(svc, 0o755)
            if not database_url:
                pg_dir = os.path.join(svc, "p")
                database_url = stack.enter_context(module.postgres(pg_dir, durable=True))
                if sockets:
                    database_url = module.postgres_socket_url(database_url, pg_dir)
            if not redis_url:
                redis_dir = os.path.join(svc, "r")
                redis_url = stack.enter_context(module.redis(redis_dir))
                if sockets:
                    redis_url = module.redis_socket_url(redis_dir)
        if not database_url.startswith("postgres"):
            raise RuntimeError("DATABASE_URL must be PostgreSQL for the benchmark")
        yield database_url, redis_url


def durability(database_url: str) -> str:
    """What the PostgreSQL server at `database_url` does at commit, for a benchmark's header: a
    ledger's figures mean little on a server that acknowledges commits it has not written."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        values = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        }
    settings = ", ".join(f"{name} {value}" for name, value in values.items())
    if values["fsync"] == "on" and values["synchronous_commit"] != "off":
        return f"durable commits ({settings})"
    return f"NOT durable ({settings}): commits acknowledged before they are on disk"
