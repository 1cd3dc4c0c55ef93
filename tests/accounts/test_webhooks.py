"""Account webhooks: signatures, delivery to a real local receiver, retries (by a real Celery
worker too), low-balance crossings, top-up events, and the /v1/webhooks API per tenant.

The receiver is a threaded HTTP server on 127.0.0.1 (the test runner sets
WEBHOOK_ALLOW_LOOPBACK=1); it records every request and answers from a script of statuses.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import webhooks
from accounts.models import User, WebhookEvent
from tests.fakes.upstream import closed_port
from wits import ledger, payments, topups
from wits.models import TopupOrder

ROOT = Path(__file__).resolve().parents[2]
EVENT_ID = "evt_00000000000000000000000000000000"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float  # time.monotonic() on arrival


class Receiver:
    """A webhook receiver on 127.0.0.1 answering each request with the next scripted status."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, time.monotonic())
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/clawwits"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def hooked(make_user, receiver):
    """An account with 10,000 Wits whose webhook points at the receiver."""
    user = make_user(wits=10_000)
    webhooks.update_settings(user_id=user.id, url=receiver.url, low_balance_threshold=5_000)
    return User.objects.get(pk=user.id)


def _charge(user_id: uuid.UUID, amount: int, *, reserve: int | None = None) -> object:
    """One gateway-like charge: reserve, commit `amount`, then the gateway's hook."""
    held = ledger.reserve(
        user_id=user_id, request_id=f"req_{uuid.uuid4().hex}", amount=reserve or amount
    )
    settlement = ledger.commit(held, actual=amount)
    webhooks.after_charge(user_id=user_id, settlement=settlement)
    return settlement


def _events(user: object, event_type: str | None = None) -> list[WebhookEvent]:
    rows = WebhookEvent.objects.filter(user_id=user.id).order_by("created_at")
    return list(rows.filter(type=event_type) if event_type else rows)


def _payload(event: WebhookEvent) -> dict:
    return json.loads(event.body)


# --- Signing (pure) --------------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_timestamp_dot_body_in_hex():
    body = '{"id":"evt_1","type":"webhook.test"}'

    signed = webhooks.sign(secret="whsec_abc", timestamp=1767225600, body=body)

    expected = hmac.new(b"whsec_abc", b'1767225600.{"id":"evt_1","type":"webhook.test"}', "sha256")
    assert signed == expected.hexdigest()


def test_signature_header_names_the_timestamp_and_the_v1_signature():
    header = webhooks.signature_header(secret="whsec_abc", timestamp=1767225600, body="{}")

    digest = hmac.new(b"whsec_abc", b"1767225600.{}", hashlib.sha256).hexdigest()
    assert header == f"t=1767225600,v1={digest}"


@pytest.mark.parametrize(
    ("secret", "body", "now", "valid"),
    [
        ("whsec_abc", "{}", 1000, True),
        ("whsec_abc", "{}", 1000 + 300, True),
        ("whsec_abc", "{}", 1000 + 301, False),
        ("whsec_abc", "{}", 1000 - 301, False),
        ("whsec_other", "{}", 1000, False),
        ("whsec_abc", "{ }", 1000, False),
    ],
)
def test_verify_accepts_only_the_right_secret_body_and_a_fresh_timestamp(secret, body, now, valid):
    header = webhooks.signature_header(secret="whsec_abc", timestamp=1000, body="{}")

    assert webhooks.verify(secret=secret, header=header, body=body, now=now) is valid


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1000", "t=1000,v1="])
def test_verify_rejects_malformed_headers(header):
    assert webhooks.verify(secret="whsec_abc", header=header, body="{}", now=1000) is False


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 30.0), (2, 60.0), (3, 120.0), (7, 1920.0), (8, 3600.0), (20, 3600.0)],
)
def test_backoff_doubles_from_the_base_up_to_an_hour(attempt, seconds):
    assert webhooks.backoff_seconds(attempt, base=30.0) == seconds


@pytest.mark.parametrize(
    ("threshold", "available_after", "charged", "crossed"),
    [
        (5000, 4000, 2000, True),  # 6000 -> 4000
        (5000, 4999, 1, True),  # 5000 -> 4999: at the threshold counts as above it
        (5000, 5000, 1000, False),  # 6000 -> 5000: not below yet
        (5000, 3000, 1000, False),  # 4000 -> 3000: already below
        (5000, 4000, 0, False),  # nothing charged
        (0, 0, 100, False),  # a threshold of 0 can never be crossed
    ],
)
def test_crosses_only_from_at_or_above_to_below(threshold, available_after, charged, crossed):
    assert (
        webhooks.crosses(threshold=threshold, available_after=available_after, charged=charged)
        is crossed
    )


# --- Delivery to a real receiver ---------------------------------------------------------------


@pytest.mark.django_db
def test_delivery_is_signed_with_the_account_secret_over_timestamp_and_body(hooked, receiver):
    event = webhooks.send_test_event(user_id=hooked.id)

    outcome = webhooks.deliver(event_id=event.id)

    [request] = receiver.requests
    fields = dict(part.split("=", 1) for part in request.headers["ClawWits-Signature"].split(","))
    recomputed = hmac.new(
        hooked.webhook_secret.encode(), f"{fields['t']}.{request.body}".encode(), hashlib.sha256
    ).hexdigest()
    assert set(fields) == {"t", "v1"}
    assert fields["v1"] == recomputed
    assert abs(int(fields["t"]) - int(time.time())) < 600
    assert request.body == event.body
    assert request.path == "/hooks/clawwits"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["ClawWits-Event-Id"] == event.id
    assert request.headers["Idempotency-Key"] == event.id
    assert request.headers["ClawWits-Event-Type"] == "webhook.test"
    assert request.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert (outcome.state, outcome.status, outcome.retry_in) == ("delivered", 200, None)


@pytest.mark.django_db
def test_event_body_carries_its_id_type_time_and_data(hooked):
    event = webhooks.send_test_event(user_id=hooked.id)

    payload = _payload(event)

    assert event.id.startswith("evt_")
    assert len(event.id) == 36
    assert payload == {
        "id": event.id,
        "object": "event",
        "type": "webhook.test",
        "created": int(event.created_at.timestamp()),
        "data": {"userId": str(hooked.id), "message": "This is a test event from ClawWits."},
    }


@pytest.mark.django_db
def test_a_2xx_marks_the_event_delivered_after_one_attempt(hooked, receiver):
    event = webhooks.send_test_event(user_id=hooked.id)

    webhooks.deliver(event_id=event.id)

    event.refresh_from_db()
    assert (event.state, event.attempts, event.last_status, event.last_error) == (
        "delivered",
        1,
        200,
        "",
    )
    assert event.delivered_at is not None
    assert (event.next_attempt_at, event.leased_until) == (None, None)


@pytest.mark.django_db
def test_a_non_2xx_keeps_the_event_pending_until_the_backoff_has_passed(hooked, receiver, settings):
    settings.WEBHOOK_RETRY_BASE_S = 30.0
    receiver.statuses = [500]
    event = webhooks.send_test_event(user_id=hooked.id)

    outcome = webhooks.deliver(event_id=event.id)

    event.refresh_from_db()
    assert (outcome.state, outcome.status, outcome.error, outcome.retry_in) == (
        "pending",
        500,
        "HTTP 500",
        30.0,
    )
    assert (event.state, event.attempts, event.last_status) == ("pending", 1, 500)
    assert event.next_attempt_at == event.last_attempt_at + timedelta(seconds=30)


@pytest.mark.django_db
def test_a_refused_connection_is_a_failed_attempt_with_no_status(make_user, settings):
    user = make_user()
    webhooks.update_settings(user_id=user.id, url=f"http://127.0.0.1:{closed_port()}/hook")
    event = webhooks.send_test_event(user_id=user.id)

    outcome = webhooks.deliver(event_id=event.id)

    event.refresh_from_db()
    assert (outcome.state, outcome.status, outcome.error) == ("pending", None, "connection refused")
    assert (event.attempts, event.last_status, event.last_error) == (1, None, "connection refused")


@pytest.mark.django_db
def test_the_same_attempt_is_sent_once_however_often_it_is_run(hooked, receiver):
    event = webhooks.send_test_event(user_id=hooked.id)

    first = webhooks.deliver(event_id=event.id, attempt=1)
    again = webhooks.deliver(event_id=event.id, attempt=1)
    later = webhooks.deliver(event_id=event.id, attempt=2)

    assert [first.state, again.state, later.state] == ["delivered", "skipped", "skipped"]
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_an_attempt_held_by_another_worker_is_not_sent(hooked, receiver):
    event = webhooks.send_test_event(user_id=hooked.id)
    WebhookEvent.objects.filter(pk=event.id).update(
        leased_until=timezone.now() + timedelta(minutes=1)
    )

    outcome = webhooks.deliver(event_id=event.id)

    assert (outcome.state, receiver.requests) == ("skipped", [])


@pytest.mark.django_db
def test_gives_up_after_the_last_attempt(hooked, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.statuses = [500, 502, 503]
    event = webhooks.send_test_event(user_id=hooked.id)

    outcomes = [webhooks.deliver(event_id=event.id, attempt=n) for n in (1, 2, 3, 4)]

    event.refresh_from_db()
    assert [(o.state, o.status) for o in outcomes] == [
        ("pending", 500),
        ("pending", 502),
        ("failed", 503),
        ("skipped", None),
    ]
    assert (event.state, event.attempts, event.last_status, event.next_attempt_at) == (
        "failed",
        3,
        503,
        None,
    )
    assert [r.headers["ClawWits-Event-Id"] for r in receiver.requests] == [event.id] * 3


@pytest.mark.django_db
def test_an_event_whose_url_was_removed_fails_without_sending(hooked, receiver):
    event = webhooks.send_test_event(user_id=hooked.id)
    webhooks.update_settings(user_id=hooked.id, url="")

    outcome = webhooks.deliver(event_id=event.id)

    assert (outcome.state, outcome.error, receiver.requests) == (
        "failed",
        "no webhook URL is set",
        [],
    )


@pytest.mark.django_db
def test_deliveries_are_signed_with_the_secret_current_at_sending(hooked, receiver):
    event = webhooks.send_test_event(user_id=hooked.id)
    secret = webhooks.regenerate_secret(user_id=hooked.id)

    webhooks.deliver(event_id=event.id)

    [request] = receiver.requests
    assert secret != hooked.webhook_secret
    assert webhooks.verify(
        secret=secret,
        header=request.headers["ClawWits-Signature"],
        body=request.body,
        now=int(time.time()),
    )
    assert not webhooks.verify(
        secret=hooked.webhook_secret,
        header=request.headers["ClawWits-Signature"],
        body=request.body,
        now=int(time.time()),
    )


@pytest.mark.django_db
def test_events_are_enqueued_only_when_their_transaction_commits(
    hooked, receiver, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event = webhooks.send_test_event(user_id=hooked.id)
        assert receiver.requests == []

    event.refresh_from_db()
    assert len(callbacks) == 1
    assert (event.state, event.attempts, len(receiver.requests)) == ("delivered", 1, 1)


@pytest.mark.django_db
def test_eager_tasks_make_one_attempt_and_the_sweep_sends_the_retry(
    hooked, receiver, settings, django_capture_on_commit_callbacks
):
    # Given an embedded install (tasks run inline) and a receiver failing once
    settings.CELERY_TASK_ALWAYS_EAGER = True
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        event = webhooks.send_test_event(user_id=hooked.id)
    event.refresh_from_db()
    assert (event.state, event.attempts, len(receiver.requests)) == ("pending", 1, 1)

    # When the sweep runs before the retry is long overdue, nothing is sent
    assert webhooks.sweep() == 0

    # Then once it is overdue, the sweep sends attempt 2 of the same event
    WebhookEvent.objects.filter(pk=event.id).update(
        next_attempt_at=timezone.now() - webhooks.SWEEP_GRACE - timedelta(seconds=1)
    )
    assert webhooks.sweep() == 1
    event.refresh_from_db()
    assert (event.state, event.attempts, event.last_status) == ("delivered", 2, 200)
    assert [r.body for r in receiver.requests] == [event.body, event.body]


@pytest.mark.django_db
def test_the_embedded_reconcile_loop_sends_overdue_retries(hooked, receiver, settings):
    # Given an embedded install whose first attempt failed long ago
    settings.CELERY_TASK_ALWAYS_EAGER = True
    event = webhooks.send_test_event(user_id=hooked.id)
    WebhookEvent.objects.filter(pk=event.id).update(
        attempts=1, next_attempt_at=timezone.now() - webhooks.SWEEP_GRACE - timedelta(seconds=1)
    )
    out = io.StringIO()

    # When scripts/run's stand-in for beat runs one round
    call_command("reconcile", every=0.01, rounds=1, stdout=out)

    # Then attempt 2 was sent and delivered
    event.refresh_from_db()
    assert (event.state, event.attempts, event.last_status) == ("delivered", 2, 200)
    assert [r.body for r in receiver.requests] == [event.body]
    assert out.getvalue().splitlines()[-1] == "webhooks re-sent=1"


@pytest.mark.django_db
def test_the_sweep_fails_events_whose_last_attempt_died(hooked, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    event = webhooks.send_test_event(user_id=hooked.id)
    WebhookEvent.objects.filter(pk=event.id).update(
        attempts=2, leased_until=timezone.now() - timedelta(seconds=1)
    )

    assert webhooks.sweep() == 0

    event.refresh_from_db()
    assert (event.state, event.attempts) == ("failed", 2)


# --- Retries by a real Celery worker ------------------------------------------------------------


@pytest.fixture
def celery_worker(transactional_db) -> Iterator[subprocess.Popen]:
    """`celery -A clawwits worker` in a subprocess, on this test's database and Redis."""
    from tests.wits.ledger_support import subprocess_env

    env = {
        **subprocess_env(),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "WEBHOOK_ALLOW_LOOPBACK": "1",
        "WEBHOOK_RETRY_BASE_S": "0.5",
        "WEBHOOK_MAX_ATTEMPTS": "5",
    }
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "clawwits", "worker", "--pool=solo"]
            + ["--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            + ["--loglevel=WARNING"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc.log = log
        yield proc
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(predicate, proc: subprocess.Popen, *, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.log.seek(0)
    raise AssertionError(f"condition not reached; worker output:\n{proc.log.read()[-4000:]}")


@pytest.mark.slow
def test_a_celery_worker_retries_with_backoff_until_the_receiver_accepts(
    make_user, receiver, celery_worker, settings
):
    # Given a receiver that answers 500 twice, then 200
    settings.CELERY_TASK_ALWAYS_EAGER = False
    receiver.statuses = [500, 500, 200]
    user = make_user()
    webhooks.update_settings(user_id=user.id, url=receiver.url)

    # When an event is enqueued (committed: the worker is another process)
    event = webhooks.send_test_event(user_id=user.id)

    # Then the worker sends it three times, waiting 0.5 s then 1 s, and it ends delivered
    _wait_for(
        lambda: WebhookEvent.objects.filter(pk=event.id, state="delivered").exists(),
        celery_worker,
    )
    event.refresh_from_db()
    assert (event.state, event.attempts, event.last_status) == ("delivered", 3, 200)
    assert [r.headers["ClawWits-Event-Id"] for r in receiver.requests] == [event.id] * 3
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [event.id] * 3
    assert [r.body for r in receiver.requests] == [event.body] * 3
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    # Not-before bounds (a retry is never early), with slack for clock granularity.
    assert gaps[0] >= 0.45, gaps
    assert gaps[1] >= 0.9, gaps


# --- low_balance ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_low_balance_is_announced_once_when_charges_cross_the_threshold(hooked):
    # Given 10,000 Wits and a threshold of 5,000
    # When five charges take the balance to 8,000, 6,000, 4,000, 2,000 and 1,000
    outcomes = [_charge(hooked.id, amount) for amount in (2000, 2000, 2000, 2000, 1000)]

    # Then exactly the third charge announced it, with the balance it left
    assert [o.available_after for o in outcomes] == [8000, 6000, 4000, 2000, 1000]
    [event] = _events(hooked)
    assert event.type == "low_balance"
    assert _payload(event)["data"] == {
        "userId": str(hooked.id),
        "available": 4000,
        "threshold": 5000,
        "charged": 2000,
    }


@pytest.mark.django_db
def test_low_balance_is_announced_again_after_a_top_up_lifts_the_balance(hooked):
    _charge(hooked.id, 6000)
    ledger.grant(user_id=hooked.id, amount=5000, actor="test", note="top up")

    _charge(hooked.id, 5000)

    assert [_payload(e)["data"]["available"] for e in _events(hooked)] == [4000, 4000]


@pytest.mark.django_db
def test_a_reservation_larger_than_the_charge_counts_only_the_charge(hooked):
    # 10,000 available; 9,000 reserved, 1,000 charged: 9,000 left, above the threshold.
    settlement = _charge(hooked.id, 1000, reserve=9000)

    assert (settlement.available_after, _events(hooked)) == (9000, [])


@pytest.mark.django_db
def test_a_replayed_commit_announces_nothing(hooked):
    held = ledger.reserve(user_id=hooked.id, request_id="req_replay", amount=6000)
    first = ledger.commit(held, actual=6000)
    replay = ledger.commit(held, actual=6000)

    events = [webhooks.after_charge(user_id=hooked.id, settlement=s) for s in (first, replay)]

    assert (replay.applied, replay.available_after) == (False, 0)
    assert events[1] is None
    assert [e.type for e in _events(hooked)] == ["low_balance"]


@pytest.mark.django_db
def test_no_event_is_stored_for_an_account_without_a_webhook_url(make_user):
    user = make_user(wits=10_000)
    webhooks.update_settings(user_id=user.id, low_balance_threshold=5_000)

    _charge(user.id, 6000)

    assert _events(user) == []


@pytest.mark.django_db
def test_a_charge_that_crosses_nothing_costs_no_query(hooked, django_assert_num_queries):
    first = _charge(hooked.id, 100)  # warms this process's copy of the threshold
    held = ledger.reserve(user_id=hooked.id, request_id="req_cheap", amount=100)
    settlement = ledger.commit(held, actual=100)

    with django_assert_num_queries(0):
        assert webhooks.after_charge(user_id=hooked.id, settlement=settlement) is None

    assert (first.available_after, settlement.available_after) == (9900, 9800)


@pytest.mark.django_db
def test_a_stale_threshold_copy_never_invents_an_event(hooked):
    _charge(hooked.id, 100)  # caches threshold 5,000
    User.objects.filter(pk=hooked.id).update(low_balance_threshold=1_000)  # behind its back

    _charge(hooked.id, 6000)  # 9,900 -> 3,900: crosses 5,000 but not 1,000

    assert _events(hooked) == []


@pytest.mark.django_db
def test_a_threshold_change_applies_to_the_next_charge(hooked):
    _charge(hooked.id, 100)
    webhooks.update_settings(user_id=hooked.id, low_balance_threshold=9_000)

    _charge(hooked.id, 1000)  # 9,900 -> 8,900

    assert [_payload(e)["data"]["threshold"] for e in _events(hooked)] == [9000]


@pytest.fixture
def sandbox_model(db, settings):
    """The built-in sandbox chat model behind a local provider (no network)."""
    from gateway import catalog
    from gateway.models import AiModel, Provider, Route

    settings.GATEWAY_CONFIG_TTL_S = 60
    provider = Provider.objects.create(name="local-hooks", kind="local", base_url="")
    model = AiModel.objects.create(
        name="sandbox-hooks",
        kind="chat",
        input_price=Decimal("1"),
        output_price=Decimal("2"),
        cache_read_price=Decimal("0.5"),
        max_output_tokens=100,
    )
    Route.objects.create(model=model, provider=provider, upstream_model="clawwits-sandbox")
    catalog.invalidate()
    yield model.name
    catalog.invalidate()


@pytest.mark.django_db
def test_gateway_charges_announce_low_balance_once(make_user, make_api_key, sandbox_model):
    # Given an account whose threshold is its whole balance, so its first charge crosses it
    user = make_user(tier="max", wits=1_000_000)
    webhooks.update_settings(
        user_id=user.id, url="http://127.0.0.1:9/hook", low_balance_threshold=1_000_000
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(user, 'ai')}")
    chat = {"model": sandbox_model, "messages": [{"role": "user", "content": "hello"}]}

    # When it makes three chat calls through the gateway
    responses = [client.post("/v1/chat/completions", chat, format="json") for _ in range(3)]

    # Then the first charge announced low_balance, the others nothing
    assert [r.status_code for r in responses] == [200, 200, 200]
    charged = responses[0].json()["x_clawwits"]["wits"]
    [event] = _events(user)
    assert _payload(event)["data"] == {
        "userId": str(user.id),
        "available": 1_000_000 - charged,
        "threshold": 1_000_000,
        "charged": charged,
    }


# --- topup.credited ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_confirmed_bank_transfer_announces_topup_credited_after_commit(
    hooked, django_capture_on_commit_callbacks
):
    order = topups.start_order(user=hooked, wits=1_000_000, method="bank")

    with django_capture_on_commit_callbacks() as callbacks:
        assert topups.confirm_bank_payment(order_id=order.order_id, actor="admin:test") is True
        assert topups.confirm_bank_payment(order_id=order.order_id, actor="admin:test") is False

    row = TopupOrder.objects.get(pk=order.order_id)
    [event] = _events(hooked)
    assert len(callbacks) == 1
    assert event.type == "topup.credited"
    assert _payload(event)["data"] == {
        "userId": str(hooked.id),
        "orderId": str(row.id),
        "reference": row.reference,
        "wits": 1_000_000,
        "price": row.price,
        "currency": row.currency,
        "provider": "bank",
        "available": 1_010_000,
    }


@pytest.mark.django_db
def test_a_paid_provider_notice_announces_topup_credited_once(hooked):
    order = TopupOrder.objects.create(
        user=hooked, wits=1_000_000, price=45_000, currency="VND", provider="stripe", reference="T1"
    )
    notice = payments.PaymentNotice(
        provider="stripe",
        event_id="evt_stripe_1",
        kind="checkout.session.completed",
        outcome=payments.Outcome.PAID,
        order_id=order.id,
        amount=45_000,
        currency="VND",
    )

    results = [topups.apply_notice(notice), topups.apply_notice(notice)]

    assert results == ["credited", "duplicate"]
    assert [(e.type, _payload(e)["data"]["orderId"]) for e in _events(hooked)] == [
        ("topup.credited", str(order.id))
    ]


@pytest.mark.django_db
def test_a_rolled_back_credit_leaves_no_event_and_enqueues_nothing(
    hooked, django_capture_on_commit_callbacks
):
    order = topups.start_order(user=hooked, wits=1_000_000, method="bank")

    def credit_then_fail() -> None:
        with transaction.atomic():
            topups.confirm_bank_payment(order_id=order.order_id, actor="admin:test")
            raise RuntimeError("the admin action failed after crediting")

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        credit_then_fail()

    assert (callbacks, _events(hooked)) == ([], [])
    assert TopupOrder.objects.get(pk=order.order_id).state == "pending"


@pytest.mark.django_db
def test_a_top_up_of_an_account_without_a_webhook_stores_no_event(make_user):
    user = make_user()
    order = topups.start_order(user=user, wits=1_000_000, method="bank")

    topups.confirm_bank_payment(order_id=order.order_id, actor="admin:test")

    assert _events(user) == []


# --- /v1/webhooks -----------------------------------------------------------------------------


def _api(make_api_key, user: object, scopes: str = "automation") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(user, scopes)}")
    return client


@pytest.mark.django_db
def test_put_sets_the_url_and_returns_the_new_secret_once(make_user, make_api_key, receiver):
    user = make_user()
    client = _api(make_api_key, user)

    first = client.put("/v1/webhooks", {"url": receiver.url}, format="json")
    second = client.put("/v1/webhooks", {"url": receiver.url + "2"}, format="json")
    listed = client.get("/v1/webhooks")

    stored = User.objects.get(pk=user.id)
    assert first.status_code == 200
    assert first.json()["secret"] == stored.webhook_secret
    assert stored.webhook_secret.startswith("whsec_")
    assert len(stored.webhook_secret) == 54
    assert first["Cache-Control"] == "no-store"
    assert "secret" not in second.json()
    assert listed.json() == {
        "object": "webhook_endpoint",
        "url": receiver.url + "2",
        "secret_set": True,
        "low_balance_threshold": 10_000,
        "recent_events": [],
    }
    assert stored.webhook_secret not in listed.content.decode()


@pytest.mark.django_db
def test_put_with_an_empty_url_clears_it_and_keeps_the_secret(make_user, make_api_key, receiver):
    user = make_user()
    client = _api(make_api_key, user)
    client.put("/v1/webhooks", {"url": receiver.url}, format="json")
    secret = User.objects.get(pk=user.id).webhook_secret

    response = client.put("/v1/webhooks", {"url": ""}, format="json")

    stored = User.objects.get(pk=user.id)
    assert (response.status_code, response.json()["url"]) == (200, "")
    assert (stored.webhook_url, stored.webhook_secret) == ("", secret)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://169.254.169.254/latest/meta-data"},
        {"url": "ftp://example.com/"},
        {"url": 5},
        {},
        {"url": "http://127.0.0.1:9/", "low_balance_threshold": -1},
        {"url": "http://127.0.0.1:9/", "low_balance_threshold": "5"},
    ],
)
def test_put_refuses_bad_input_and_changes_nothing(make_user, make_api_key, body):
    user = make_user()
    before = User.objects.filter(pk=user.id).values().get()

    response = _api(make_api_key, user).put("/v1/webhooks", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert User.objects.filter(pk=user.id).values().get() == before


@pytest.mark.django_db
def test_put_can_set_the_low_balance_threshold(make_user, make_api_key):
    user = make_user()

    response = _api(make_api_key, user).put(
        "/v1/webhooks", {"url": "", "low_balance_threshold": 250}, format="json"
    )

    assert response.json()["low_balance_threshold"] == 250
    assert User.objects.get(pk=user.id).low_balance_threshold == 250


@pytest.mark.django_db
def test_post_test_enqueues_a_test_event_the_list_and_detail_show(
    make_user, make_api_key, receiver
):
    user = make_user()
    client = _api(make_api_key, user)
    client.put("/v1/webhooks", {"url": receiver.url}, format="json")

    created = client.post("/v1/webhooks/test")
    event_id = created.json()["id"]
    listed = client.get("/v1/webhooks").json()["recent_events"]
    detail = client.get(f"/v1/webhooks/events/{event_id}")

    assert created.status_code == 202
    assert [e["id"] for e in listed] == [event_id]
    assert detail.status_code == 200
    assert detail.json()["payload"]["id"] == event_id
    assert (detail.json()["state"], detail.json()["attempts"], detail.json()["type"]) == (
        "pending",
        0,
        "webhook.test",
    )


@pytest.mark.django_db
def test_post_test_without_a_url_is_refused(make_user, make_api_key):
    user = make_user()

    response = _api(make_api_key, user).post("/v1/webhooks/test")

    assert (response.status_code, response.json()["error"]["param"]) == (400, "url")
    assert _events(user) == []


@pytest.mark.django_db
def test_test_events_are_limited_per_minute(make_user, make_api_key, receiver):
    user = make_user()
    client = _api(make_api_key, user)
    client.put("/v1/webhooks", {"url": receiver.url}, format="json")

    statuses = [client.post("/v1/webhooks/test").status_code for _ in range(6)]

    assert statuses == [202] * 5 + [429]
    assert len(_events(user)) == 5


@pytest.mark.django_db
def test_another_tenants_event_is_not_found(make_user, make_api_key, receiver):
    owner, other = make_user(), make_user()
    webhooks.update_settings(user_id=owner.id, url=receiver.url)
    event = webhooks.send_test_event(user_id=owner.id)

    mine = _api(make_api_key, owner).get(f"/v1/webhooks/events/{event.id}")
    theirs = _api(make_api_key, other, "full").get(f"/v1/webhooks/events/{event.id}")
    unknown = _api(make_api_key, owner).get(f"/v1/webhooks/events/{EVENT_ID}")
    listed = _api(make_api_key, other, "full").get("/v1/webhooks")

    assert mine.status_code == 200
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "not_found")
    assert event.id not in theirs.content.decode()
    assert unknown.status_code == 404
    assert (listed.json()["url"], listed.json()["recent_events"]) == ("", [])


@pytest.mark.django_db
@pytest.mark.parametrize("scopes", ["ai", "data"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/webhooks"), ("put", "/v1/webhooks"), ("post", "/v1/webhooks/test")],
)
def test_webhook_apis_need_the_automation_scope(make_user, make_api_key, scopes, method, path):
    user = make_user()

    response = getattr(_api(make_api_key, user, scopes), method)(path, {"url": ""}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (403, "insufficient_scope")


@pytest.mark.django_db
def test_webhook_apis_accept_a_cookie_session_only_with_csrf(make_user):
    from django.conf import settings as django_settings
    from rest_framework_simplejwt.tokens import AccessToken

    user = make_user()
    client = APIClient(enforce_csrf_checks=True)
    client.cookies[django_settings.JWT_ACCESS_COOKIE] = str(AccessToken.for_user(user))

    read = client.get("/v1/webhooks")
    write = client.put("/v1/webhooks", {"url": ""}, format="json")

    assert (read.status_code, write.status_code) == (200, 403)
