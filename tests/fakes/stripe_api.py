"""A small fake of Stripe's API for Checkout, on 127.0.0.1, and webhooks signed as Stripe signs.

``FakeStripe(api_key=...).start()`` runs a threaded HTTP server; point the SDK at
``fake.base_url`` (``STRIPE_API_BASE``). It speaks Stripe's wire format: form-encoded request
bodies with bracketed keys (``line_items[0][price_data][unit_amount]=...``), a Bearer secret
key, JSON responses with a ``Request-Id`` header, and Stripe's error envelope
``{"error": {"type", "code", "message", "param"}}``.

Endpoints::

    POST /v1/checkout/sessions        create a session (mode, line_items with price_data)
    GET  /v1/checkout/sessions/{id}   retrieve one

A created session is an ``open``/``unpaid`` ``checkout.session`` with ``amount_total`` the sum
of ``unit_amount * quantity``, a ``url`` on this server, ``client_reference_id``, ``metadata``,
``success_url``/``cancel_url`` as given, and the rest of the fields a real one carries. A
repeated ``Idempotency-Key`` answers the first successful response again, as Stripe does.

Every request is recorded (``fake.requests``) with its decoded params and headers.
``fake.fail_next(status, message)`` makes the next request fail with a Stripe error.

Webhooks: ``fake.event(session_id, ...)`` builds an event envelope around a stored session
(marked complete and paid by default) and ``sign(payload, secret, timestamp)`` computes the
``Stripe-Signature`` header exactly as Stripe does: ``t=<unix>,v1=<hex HMAC-SHA256(secret,
f"{t}.{payload}")>``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2025-03-31.basil"
_ALNUM = string.ascii_letters + string.digits


def stripe_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with `payload` (the raw request body)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding back to nested values: ``a[b][0][c]=1`` → {"a": {"b": [{"c": "1"}]}}.

    Values stay strings, as on the wire.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *re.findall(r"\[([^\]]*)\]", key)]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _lists(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


class StripeApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str = ""):
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {
                "type": "invalid_request_error" if status < 500 else "api_error",
                "code": code or None,
                "message": message,
                "param": param,
                "doc_url": "https://stripe.com/docs/error-codes" + (f"/{code}" if code else ""),
            }
        }


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]


@dataclass
class _State:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    failures: list[tuple[int, str]] = field(default_factory=list)


class FakeStripe:
    def __init__(self, *, api_key: str = "sk_test_fake_clawwits") -> None:
        self.api_key = api_key
        self._state = _State()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- inspection and knobs ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._state.sessions[session_id])

    def fail_next(self, status: int = 400, message: str = "Invalid request.") -> None:
        with self._lock:
            self._state.failures.append((status, message))

    def event(
        self,
        session_id: str,
        *,
        type: str = "checkout.session.completed",  # noqa: A002 - Stripe's field name
        event_id: str | None = None,
        payment_status: str = "paid",
        **session_changes: Any,
    ) -> dict[str, Any]:
        """A webhook event for a stored session, as Stripe would deliver it after payment."""
        session = self.session(session_id)
        session.update(status="complete", payment_status=payment_status)
        if payment_status == "paid":
            session["payment_intent"] = stripe_id("pi_")
        session.update(session_changes)
        return {
            "id": event_id or stripe_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": session},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }

    # --- the API -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: str) -> tuple:
        params = decode_form(body) if method == "POST" else {}
        with self._lock:
            self._state.requests.append(RecordedRequest(method, path, headers, params))
            key = headers.get("idempotency-key")
            if method == "POST" and key and key in self._state.idempotent:
                return self._state.idempotent[key]
            try:
                if self._state.failures:
                    status, message = self._state.failures.pop(0)
                    raise StripeApiError(status, message)
                if headers.get("authorization") != f"Bearer {self.api_key}":
                    raise StripeApiError(401, "Invalid API Key provided.")
                answer = (200, self._route(method, path, params))
            except StripeApiError as exc:
                answer = (exc.status, exc.body)
            # Like Stripe, only a request that ran is replayed; a refused one may be retried.
            if method == "POST" and key and answer[0] == 200:
                self._state.idempotent[key] = answer
            return answer

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        found = re.fullmatch(r"/v1/checkout/sessions/([A-Za-z0-9_]+)", path)
        if method == "GET" and found:
            session = self._state.sessions.get(found.group(1))
            if session is None:
                raise StripeApiError(
                    404, f"No such checkout.session: '{found.group(1)}'", code="resource_missing"
                )
            return session
        raise StripeApiError(404, f"Unrecognized request URL ({method}: {path}).")

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        if mode not in {"payment", "setup", "subscription"}:
            raise StripeApiError(400, "Missing required param: mode.", param="mode")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeApiError(400, "Missing required param: line_items.", param="line_items")
        total = 0
        currency = None
        for i, item in enumerate(items):
            data = item.get("price_data") or {}
            try:
                unit = int(data["unit_amount"])
                quantity = int(item.get("quantity", "1"))
                item_currency = data["currency"]
            except (KeyError, ValueError):
                raise StripeApiError(
                    400, "Invalid line item.", param=f"line_items[{i}][price_data]"
                ) from None
            if currency not in (None, item_currency):
                raise StripeApiError(400, "Line items must share one currency.")
            currency = item_currency
            total += unit * quantity
        session_id = stripe_id("cs_test_a1", 56)
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currency,
            "custom_fields": [],
            "custom_text": {"after_submit": None, "shipping_address": None, "submit": None},
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": now + 24 * 3600,
            "invoice": None,
            "livemode": False,
            "locale": None,
            "metadata": params.get("metadata") or {},
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "if_required",
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": params.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{self.base_url}/c/pay/{session_id}",
        }
        self._state.sessions[session_id] = session
        return session


class _Handler(BaseHTTPRequestHandler):
    owner: FakeStripe
    protocol_version = "HTTP/1.1"

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.owner.handle(method, urlsplit(self.path).path, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", stripe_id("req_", 14))
        self.send_header("Stripe-Version", headers.get("stripe-version", API_VERSION))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass
