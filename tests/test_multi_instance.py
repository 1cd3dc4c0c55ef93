"""Two gateway instances (gunicorn, two workers each; gthread and gevent) on one PostgreSQL and
one Redis.

Limits and balances are exact across instances: a 30/min account admits exactly 30 requests
whichever instance and worker serves them, every admitted request is billed exactly once, a
reservation the balance cannot cover is 402 on either instance, and requests refused with 429
or 402 never reach the upstream and leave no reservation.

The instances are real subprocesses against this test's database (a transactional test, so
they see its committed rows) and the suite's Redis; the upstream is the fake, in-process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
UPSTREAM_KEY = "multi-instance-upstream-key"
MODEL = "mi-chat"
PROMPT = "Hello from the multi instance test"  # 6 words: the fake bills 6 prompt tokens
MAX_TOKENS = 8  # the fake replies 8 words, so every call is billed 6 * 1 + 8 * 2 = 22 Wits
CHARGE = 6 * 1 + 8 * 2
TIER_RPM = 30
GRANT = 10_000
BODY = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}


@dataclass(frozen=True)
class Instance:
    url: str
    proc: subprocess.Popen
    log: Path

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_database_url() -> str:
    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _stop(instance: Instance) -> None:
    proc = instance.proc
    if proc.poll() is not None:
        return
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(5)


def _wait_ready(instance: Instance, *, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if instance.proc.poll() is not None:
            pytest.fail(f"gateway at {instance.url} exited:\n{instance.tail()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(instance.url + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"gateway at {instance.url} never became ready:\n{instance.tail()}")


def start_gateway(work: Path, name: str, env: dict[str, str]) -> Instance:
    """A gateway under gunicorn with deploy/gunicorn.conf.py on a free port, against this
    test's database and the suite's Redis, with production settings plus `env` (serving model,
    pool, upstream keys); its output goes to `work`/gateway-`name`.log. Not yet ready."""
    port = _free_port()
    log = work / f"gateway-{name}.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WEB_")},
        "DATABASE_URL": _test_database_url(),
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECRET_KEY": "multi-instance-" + "s" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CLAWWITS_VAR_DIR": str(work / "var"),
        "LOG_LEVEL": "WARNING",
        "GATEWAY_CONFIG_TTL_S": "0",
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "clawwits.wsgi", "-c", str(GUNICORN_CONF)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Instance(f"http://127.0.0.1:{port}", proc, log)


def apply_catalogue(upstream: FakeUpstream, model: str, key_env: str) -> None:
    """`upstream.catalogue(model, key_env)` applied to this test's database."""
    from gateway import providerfile

    providerfile.apply(providerfile.parse(upstream.catalogue(model, key_env)))


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream(api_key=UPSTREAM_KEY).start()
    yield server
    server.stop()


# gthread is the embedded default's serving model; gevent with the database pool is the
# production one (the application preloaded in the master, each wallet's concurrent ledger
# calls batched per worker).
SERVING = {
    "gthread": {"WEB_WORKER_CLASS": "gthread", "WEB_WORKERS": "2", "WEB_THREADS": "8"},
    "gevent": {"WEB_WORKER_CLASS": "gevent", "WEB_WORKERS": "2", "DB_POOL": "1"},
}


@pytest.fixture(scope="module", params=sorted(SERVING))
def instances(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[Instance]]:
    """Two gateways for the whole module (starting them is the slow part); each test brings
    its own catalogue and accounts, which they read fresh (GATEWAY_CONFIG_TTL_S=0)."""
    work = tmp_path_factory.mktemp("instances")
    env = {"MI_UPSTREAM_KEY": UPSTREAM_KEY, **SERVING[request.param]}
    started: list[Instance] = []
    try:
        for name in ("a", "b"):
            started.append(start_gateway(work, name, env))
        for instance in started:
            _wait_ready(instance)
        yield started
    finally:
        for instance in started:
            _stop(instance)


@pytest.fixture
def catalogue(transactional_db: None, upstream: FakeUpstream) -> FakeUpstream:
    """The model the instances route to; returns the upstream with its record cleared."""
    apply_catalogue(upstream, MODEL, "MI_UPSTREAM_KEY")
    upstream.clear()
    return upstream


def _post(instance: Instance, key: str) -> requests.Response:
    return requests.post(
        instance.url + "/v1/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _reservation_for_body() -> int:
    import json

    from wits import pricing

    raw = json.dumps(BODY)  # what requests sends for json=BODY
    bound = pricing.prompt_upper_bound(text_bytes=len(raw.encode()), messages=1)
    price = pricing.Price(input=Decimal(1), output=Decimal(2), cache_read=Decimal(0))
    return pricing.reservation_for(price, prompt_upper_bound=bound, output_cap=MAX_TOKENS)


def test_probes_answer_on_both_instances(instances):
    for instance in instances:
        health = requests.get(instance.url + "/healthz", timeout=10)
        ready = requests.get(instance.url + "/readyz", timeout=10)

        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert (ready.status_code, ready.json()) == (
            200,
            {"status": "ok", "database": "ok", "redis": "ok"},
        )


def test_limit_and_ledger_are_exact_across_two_instances(
    instances, catalogue, make_user, make_api_key
):
    from gateway.models import UsageRecord
    from wits import ledger
    from wits.models import Reservation

    # Given a 30/min account whose balance covers 30 reservations held at once
    user = make_user(tier="free_trial", wits=GRANT)
    key = make_api_key(user, "ai")
    assert user.requests_per_minute == TIER_RPM
    assert TIER_RPM * _reservation_for_body() <= GRANT
    a, b = instances

    # When 10 requests go one by one, alternating, then 50 at once, alternating
    sequential = [_post(instance, key) for instance in (a, b) * 5]
    targets = [(a, b)[i % 2] for i in range(50)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        concurrent = list(pool.map(lambda instance: _post(instance, key), targets))
    responses = sequential + concurrent

    # Then exactly 30 are admitted (all 10 sequential ones among them) and 30 refused with 429
    assert [r.status_code for r in sequential] == [200] * 10
    assert Counter(r.status_code for r in responses) == {200: 30, 429: 30}
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after-ms"]) >= 1
    # And each admitted call was billed exactly, and only admitted calls reached the upstream
    charges = [r.json()["x_clawwits"]["wits"] for r in responses if r.status_code == 200]
    assert charges == [CHARGE] * 30
    assert len(catalogue.requests) == 30
    assert ledger.balance(user_id=user.id) == ledger.Balance(
        available=GRANT - 30 * CHARGE, reserved=0, lifetime_used=30 * CHARGE
    )
    settled = Reservation.objects.filter(wallet_id=user.id)
    assert Counter(settled.values_list("state", flat=True)) == {"committed": 30}
    assert sum(settled.values_list("charged", flat=True)) == 30 * CHARGE
    assert (
        list(UsageRecord.objects.filter(user_id=user.id).values_list("status", flat=True))
        == [200] * 30
    )
    assert ledger.check() == []


def test_uncoverable_reservation_is_402_on_either_instance(
    instances, catalogue, make_user, make_api_key
):
    from wits import ledger
    from wits.models import Reservation

    # Given an account holding one Wit less than a request's reservation
    short = _reservation_for_body() - 1
    user = make_user(tier="free_trial", wits=short)
    key = make_api_key(user, "ai")

    # When it calls each instance
    responses = [_post(instance, key) for instance in instances]

    # Then both refuse with 402, and nothing was reserved, charged or sent upstream
    assert [r.status_code for r in responses] == [402, 402]
    assert [r.json()["error"]["code"] for r in responses] == ["insufficient_wits"] * 2
    assert ledger.balance(user_id=user.id) == ledger.Balance(
        available=short, reserved=0, lifetime_used=0
    )
    assert not Reservation.objects.filter(wallet_id=user.id).exists()
    assert catalogue.requests == []
    assert ledger.check() == []


def test_concurrent_calls_beyond_the_balance_bill_exactly_what_was_admitted(
    instances, catalogue, make_user, make_api_key
):
    from gateway.models import UsageRecord
    from wits import ledger
    from wits.models import Reservation

    # Given an account whose balance covers 12 reservations held at once (more once commits
    # return what the calls did not use), and no rate limit in the way
    reservation = _reservation_for_body()
    grant = 12 * reservation
    user = make_user(tier="max", wits=grant)
    key = make_api_key(user, "ai")
    a, b = instances

    # When 60 calls go at once, alternating between the instances
    targets = [(a, b)[i % 2] for i in range(60)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        responses = list(pool.map(lambda instance: _post(instance, key), targets))

    # Then each is either billed exactly or refused with 402 (never both, never neither)
    statuses = Counter(r.status_code for r in responses)
    admitted = statuses[200]
    assert set(statuses) <= {200, 402}
    assert 12 <= admitted <= grant // CHARGE
    assert all(
        r.json()["error"]["code"] == "insufficient_wits" for r in responses if r.status_code == 402
    )
    assert [r.json()["x_clawwits"]["wits"] for r in responses if r.status_code == 200] == [
        CHARGE
    ] * admitted
    # And the books hold exactly the admitted calls: charged, settled, recorded, sent upstream
    assert len(catalogue.requests) == admitted
    assert ledger.balance(user_id=user.id) == ledger.Balance(
        available=grant - admitted * CHARGE, reserved=0, lifetime_used=admitted * CHARGE
    )
    settled = Reservation.objects.filter(wallet_id=user.id)
    assert Counter(settled.values_list("state", flat=True)) == {"committed": admitted}
    records = Counter(UsageRecord.objects.filter(user_id=user.id).values_list("status", flat=True))
    # (Counters compare missing keys as 0: no 402 at all is {200: admitted})
    assert records == Counter({200: admitted, 402: statuses[402]})
    assert ledger.check() == []
