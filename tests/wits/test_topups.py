"""Top-ups end to end: /pricing, orders, Stripe Checkout against a local fake of Stripe's API,
webhooks signed as Stripe signs them, and bank transfers confirmed in the admin.

Every path that must not credit asserts that nothing changed: balance, topup entries, order
state and recorded payment events.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

import pytest
from django.test import Client

from tests.fakes.stripe_api import FakeStripe, sign
from wits import ledger
from wits.models import LedgerEntry, PaymentEvent, TopupOrder

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_test_0123456789abcdefghijklmnopqrstuv"
PUBLIC_BASE_URL = "https://clawwits.example"
PRO_PER_MILLION = 45_000  # accounts.tiers: the "pro" tier's price of 1M Wits


@pytest.fixture
def fake_stripe():
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture
def stripe_on(settings, fake_stripe):
    settings.STRIPE_SECRET_KEY = fake_stripe.api_key
    settings.STRIPE_API_BASE = fake_stripe.base_url
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    settings.WITS_CURRENCY = "VND"
    return fake_stripe


@pytest.fixture
def buyer(make_user):
    return make_user("buyer@example.com", tier="pro", wits=0)


@pytest.fixture
def buyer_client(buyer):
    client = Client()
    client.force_login(buyer)
    return client


@pytest.fixture
def admin_client(make_user):
    staff = make_user("staff@example.com", staff=True, wits=0)
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def stripe_client():
    """Stripe's servers: no session, no CSRF token (the view must not ask for one)."""
    return Client(enforce_csrf_checks=True)


@dataclass(frozen=True)
class Money:
    balance: ledger.Balance
    topup_entries: int
    order_states: tuple[str, ...]
    payment_events: int


def money(user) -> Money:
    return Money(
        balance=ledger.balance(user_id=user.id),
        topup_entries=LedgerEntry.objects.filter(wallet_id=user.id, kind="topup").count(),
        order_states=tuple(
            TopupOrder.objects.filter(user=user)
            .order_by("created_at")
            .values_list("state", flat=True)
        ),
        payment_events=PaymentEvent.objects.count(),
    )


def start_order(client: Client, *, wits: int = 5_000_000, method: str = "stripe") -> TopupOrder:
    response = client.post("/topups", {"pack": str(wits), "method": method})
    assert response.status_code == 303, response.content
    return TopupOrder.objects.order_by("-created_at").first()


def deliver(
    client: Client,
    event: dict,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
):
    payload = json.dumps(event)
    header = signature if signature is not None else sign(payload, secret, timestamp)
    return client.post(
        "/webhooks/stripe",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": header},
    )


def admin_action(client: Client, action: str, order: TopupOrder):
    return client.post(
        "/admin/wits/topuporder/",
        {"action": action, "_selected_action": [str(order.id)], "index": "0"},
    )


# --- /pricing ---------------------------------------------------------------------------------


def test_pricing_page_shows_every_tier_with_its_rate_and_price_to_visitors(client, make_user):
    make_user()  # seeds the tiers

    response = client.get("/pricing")

    assert response.status_code == 200
    page = response.content.decode()
    for name, rpm, price in [
        ("Free trial", "30", "60.000 ₫"),
        ("Starter", "300", "55.000 ₫"),
        ("Pro", "5,000", "45.000 ₫"),
        ("Enterprise", "1,000,000", "30.000 ₫"),
    ]:
        assert f"<td>{name}</td>" in page
        assert f"<td>{rpm}</td>" in page
        assert f"<td>{price}</td>" in page
    assert 'class="current"' not in page
    # Visitors see packs at a new account's (free trial) rate, and no order form.
    assert '<span class="price" data-wits="1000000">60.000 ₫</span>' in page
    assert 'id="topup"' not in page


def test_pricing_page_highlights_the_viewer_tier_and_prices_packs_at_it(buyer_client, stripe_on):
    page = buyer_client.get("/pricing").content.decode()

    assert '<tr data-tier="pro" class="current">' in page
    assert page.count('class="current"') == 1
    assert '<span class="price" data-wits="1000000">45.000 ₫</span>' in page
    assert '<span class="price" data-wits="5000000">225.000 ₫</span>' in page
    assert '<span class="price" data-wits="20000000">900.000 ₫</span>' in page
    assert '<span class="price" data-wits="100000000">4.500.000 ₫</span>' in page
    assert 'name="method" value="stripe"' in page
    assert 'name="method" value="bank"' in page


def test_stripe_is_not_offered_without_a_secret_key(buyer, buyer_client, settings):
    settings.STRIPE_SECRET_KEY = None

    page = buyer_client.get("/pricing").content.decode()
    refused = buyer_client.post("/topups", {"pack": "1000000", "method": "stripe"})

    assert 'value="stripe"' not in page
    assert 'name="method" value="bank"' in page
    assert refused.status_code == 400
    assert TopupOrder.objects.count() == 0


# --- starting an order ------------------------------------------------------------------------


def test_visitor_cannot_start_an_order(client, make_user, stripe_on):
    make_user()

    response = client.post("/topups", {"pack": "1000000", "method": "stripe"})

    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=/topups")
    assert TopupOrder.objects.count() == 0
    assert stripe_on.requests == []


def test_starting_an_order_needs_a_csrf_token(buyer, stripe_on):
    client = Client(enforce_csrf_checks=True)
    client.force_login(buyer)

    response = client.post("/topups", {"pack": "1000000", "method": "stripe"})

    assert response.status_code == 403
    assert TopupOrder.objects.count() == 0
    assert stripe_on.requests == []


@pytest.mark.parametrize(
    ("currency", "stripe_currency", "price"),
    [("VND", "vnd", 225_000), ("USD", "usd", 225_000)],
)
def test_stripe_order_redirects_to_a_checkout_session_for_the_order_amount(
    buyer, buyer_client, stripe_on, settings, currency, stripe_currency, price
):
    # Given prices in the currency's smallest unit (dong; cents for USD)
    settings.WITS_CURRENCY = currency

    # When the buyer orders the 5M pack with Stripe
    response = buyer_client.post("/topups", {"pack": "5000000", "method": "stripe"})

    # Then one pending order exists and the browser goes to the session's hosted page
    order = TopupOrder.objects.get()
    [request] = stripe_on.requests
    session = stripe_on.session(order.external_id)
    assert response.status_code == 303
    assert response["Location"] == session["url"]
    assert (order.user_id, order.wits, order.price, order.currency) == (
        buyer.id,
        5_000_000,
        price,
        currency,
    )
    assert (order.provider, order.state) == ("stripe", "pending")
    assert order.external_id.startswith("cs_test_")
    # And Stripe was asked for exactly the order's amount, tagged with the order
    assert (request.method, request.path) == ("POST", "/v1/checkout/sessions")
    assert request.headers["authorization"] == f"Bearer {stripe_on.api_key}"
    assert request.headers["idempotency-key"] == f"topup-{order.id}"
    assert request.params["mode"] == "payment"
    assert request.params["line_items"] == [
        {
            "quantity": "1",
            "price_data": {
                "currency": stripe_currency,
                "unit_amount": str(price),
                "product_data": {"name": "5,000,000 Wits"},
            },
        }
    ]
    assert request.params["client_reference_id"] == str(order.id)
    assert request.params["metadata"] == {"order_id": str(order.id), "reference": order.reference}
    assert request.params["customer_email"] == "buyer@example.com"
    assert request.params["success_url"] == f"{PUBLIC_BASE_URL}/topups/{order.id}?checkout=success"
    assert request.params["cancel_url"] == f"{PUBLIC_BASE_URL}/topups/{order.id}?checkout=canceled"
    assert (session["amount_total"], session["currency"]) == (price, stripe_currency)
    assert session["payment_status"] == "unpaid"
    # And nothing was credited yet
    assert ledger.balance(user_id=buyer.id) == ledger.Balance(0, 0, 0)


def test_custom_amount_is_ordered_at_the_tier_price_rounded_up(buyer, buyer_client, stripe_on):
    response = buyer_client.post(
        "/topups", {"pack": "custom", "custom_wits": "2500001", "method": "bank"}
    )

    order = TopupOrder.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"/topups/{order.id}"
    # 2,500,001 * 45,000 / 1,000,000 = 112,500.045 dong
    assert (order.wits, order.price, order.provider) == (2_500_001, 112_501, "bank")
    assert stripe_on.requests == []


@pytest.mark.parametrize(
    "form",
    [
        {"pack": "custom", "custom_wits": "999999", "method": "bank"},
        {"pack": "custom", "custom_wits": "1000000001", "method": "bank"},
        {"pack": "custom", "custom_wits": "", "method": "bank"},
        {"pack": "custom", "custom_wits": "lots", "method": "bank"},
        {"pack": "123", "method": "bank"},
        {"pack": "1000000", "method": "paypal"},
        {"pack": "1000000"},
        {},
    ],
)
def test_an_invalid_order_form_is_refused_and_creates_nothing(buyer_client, stripe_on, form):
    response = buyer_client.post("/topups", form)

    assert response.status_code == 400
    assert b'id="topup"' in response.content
    assert TopupOrder.objects.count() == 0
    assert stripe_on.requests == []


def test_provider_refusal_cancels_the_order_and_shows_an_error(buyer, buyer_client, stripe_on):
    stripe_on.fail_next(400, "Amount must convert to at least 50 cents.")

    response = buyer_client.post("/topups", {"pack": "1000000", "method": "stripe"})

    assert response.status_code == 503
    assert b"The payment could not be started" in response.content
    assert b"50 cents" not in response.content
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("canceled",), 0)


# --- the Stripe webhook -----------------------------------------------------------------------


def test_signed_completed_event_credits_the_order_once(
    buyer, buyer_client, stripe_on, stripe_client
):
    # Given a Stripe order the buyer has paid
    order = start_order(buyer_client)
    event = stripe_on.event(order.external_id)

    # When Stripe delivers checkout.session.completed
    response = deliver(stripe_client, event)

    # Then the order is credited: one topup entry, the balance, one recorded event
    assert response.status_code == 200
    assert response.json() == {"received": True, "result": "credited"}
    order.refresh_from_db()
    assert order.state == "credited"
    assert order.credited_at is not None
    assert ledger.balance(user_id=buyer.id) == ledger.Balance(5_000_000, 0, 0)
    [entry] = LedgerEntry.objects.filter(wallet_id=buyer.id)
    assert (entry.kind, entry.amount, entry.order_id, entry.actor) == (
        "topup",
        5_000_000,
        order.id,
        "stripe",
    )
    assert event["id"] in entry.note
    [recorded] = PaymentEvent.objects.all()
    assert (recorded.provider, recorded.event_id, recorded.kind, recorded.order_id) == (
        "stripe",
        event["id"],
        "checkout.session.completed",
        order.id,
    )
    assert ledger.check() == []


def test_a_replayed_event_credits_nothing(buyer, buyer_client, stripe_on, stripe_client):
    order = start_order(buyer_client)
    event = stripe_on.event(order.external_id)
    deliver(stripe_client, event)
    before = money(buyer)

    replay = deliver(stripe_client, event)

    assert replay.status_code == 200
    assert replay.json() == {"received": True, "result": "duplicate"}
    assert money(buyer) == before == Money(ledger.Balance(5_000_000, 0, 0), 1, ("credited",), 1)


def test_another_event_for_the_same_order_credits_nothing_more(
    buyer, buyer_client, stripe_on, stripe_client
):
    order = start_order(buyer_client)
    deliver(stripe_client, stripe_on.event(order.external_id))

    second = deliver(
        stripe_client,
        stripe_on.event(order.external_id, type="checkout.session.async_payment_succeeded"),
    )

    assert second.status_code == 200
    assert second.json()["result"] == "already_settled"
    assert money(buyer) == Money(ledger.Balance(5_000_000, 0, 0), 1, ("credited",), 2)


@pytest.mark.parametrize(
    "forgery",
    ["wrong_secret", "tampered_payload", "no_header", "garbage_header", "no_v1", "empty_v1"],
)
def test_a_forged_webhook_is_refused_and_changes_nothing(
    buyer, buyer_client, stripe_on, stripe_client, forgery
):
    # Given a pending order and a genuine-looking paid event for it
    order = start_order(buyer_client)
    event = stripe_on.event(order.external_id)
    payload = json.dumps(event)
    before = money(buyer)

    # When it arrives without a valid signature
    good = sign(payload, WEBHOOK_SECRET)
    headers = {
        "wrong_secret": sign(payload, "whsec_not_ours"),
        "tampered_payload": good,
        "no_header": None,
        "garbage_header": "not a signature",
        "no_v1": good.replace("v1=", "v0="),
        "empty_v1": f"t={int(time.time())},v1=",
    }
    if forgery == "tampered_payload":
        payload = payload.replace('"amount_total": 225000', '"amount_total": 1')
    response = stripe_client.post(
        "/webhooks/stripe",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": headers[forgery]} if headers[forgery] else {},
    )

    # Then it is refused as JSON and nothing moved
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "invalid_request"
    assert money(buyer) == before == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 0)


def test_a_stale_signature_timestamp_is_refused(buyer, buyer_client, stripe_on, stripe_client):
    order = start_order(buyer_client)
    event = stripe_on.event(order.external_id)

    response = deliver(stripe_client, event, timestamp=int(time.time()) - 600)

    assert response.status_code == 400
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 0)


def test_webhooks_are_refused_while_no_webhook_secret_is_set(
    buyer, buyer_client, stripe_on, stripe_client, settings
):
    order = start_order(buyer_client)
    settings.STRIPE_WEBHOOK_SECRET = None

    response = deliver(stripe_client, stripe_on.event(order.external_id))

    assert response.status_code == 400
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 0)


@pytest.mark.parametrize("payload", ["not json", "[]", '"event"', '{"type": 5}', "{}"])
def test_a_signed_but_malformed_payload_is_refused(stripe_client, stripe_on, payload):
    response = stripe_client.post(
        "/webhooks/stripe",
        data=payload,
        content_type="application/json",
        headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET)},
    )

    assert response.status_code == 400
    assert PaymentEvent.objects.count() == 0


@pytest.mark.parametrize(
    "changes",
    [{"amount_total": 224_999}, {"amount_total": 2_250_000}, {"currency": "usd"}],
)
def test_an_amount_mismatch_credits_nothing_and_is_logged(
    buyer, buyer_client, stripe_on, stripe_client, caplog, changes
):
    order = start_order(buyer_client)
    event = stripe_on.event(order.external_id, **changes)

    with caplog.at_level(logging.ERROR, logger="wits.topups"):
        response = deliver(stripe_client, event)

    assert response.status_code == 200
    assert response.json()["result"] == "amount_mismatch"
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 1)
    [record] = [r for r in caplog.records if r.name == "wits.topups"]
    assert record.levelno == logging.ERROR
    assert str(order.id) in record.getMessage()
    assert "not credited" in record.getMessage()


@pytest.mark.parametrize(
    "kind", ["payment_intent.succeeded", "charge.refunded", "customer.created"]
)
def test_an_unknown_event_type_is_acknowledged_and_ignored(
    buyer, buyer_client, stripe_on, stripe_client, kind
):
    order = start_order(buyer_client)

    response = deliver(stripe_client, stripe_on.event(order.external_id, type=kind))

    assert response.status_code == 200
    assert response.json() == {"received": True, "result": "ignored"}
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 0)


def test_an_unpaid_completion_waits_for_the_async_payment(
    buyer, buyer_client, stripe_on, stripe_client
):
    order = start_order(buyer_client)

    waiting = deliver(stripe_client, stripe_on.event(order.external_id, payment_status="unpaid"))
    after_wait = money(buyer)
    paid = deliver(
        stripe_client,
        stripe_on.event(order.external_id, type="checkout.session.async_payment_succeeded"),
    )

    assert waiting.json()["result"] == "pending"
    assert after_wait == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 1)
    assert paid.json()["result"] == "credited"
    assert money(buyer) == Money(ledger.Balance(5_000_000, 0, 0), 1, ("credited",), 2)


@pytest.mark.parametrize(
    "kind", ["checkout.session.expired", "checkout.session.async_payment_failed"]
)
def test_a_failed_checkout_cancels_the_order_for_good(
    buyer, buyer_client, stripe_on, stripe_client, caplog, kind
):
    order = start_order(buyer_client)

    failed = deliver(
        stripe_client, stripe_on.event(order.external_id, type=kind, payment_status="unpaid")
    )
    with caplog.at_level(logging.ERROR, logger="wits.topups"):
        late = deliver(stripe_client, stripe_on.event(order.external_id))

    assert failed.json()["result"] == "canceled"
    assert late.json()["result"] == "already_settled"
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("canceled",), 2)
    assert any("which is canceled" in r.getMessage() for r in caplog.records)


def test_an_event_naming_another_session_credits_nothing(
    buyer, buyer_client, stripe_on, stripe_client
):
    order = start_order(buyer_client)
    event = stripe_on.event(order.external_id, id="cs_test_a1someoneelse")

    response = deliver(stripe_client, event)

    assert response.json()["result"] == "order_mismatch"
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 1)


def test_a_stripe_event_cannot_credit_a_bank_order(buyer, buyer_client, stripe_on, stripe_client):
    bank_order = start_order(buyer_client, method="bank")
    stripe_order = start_order(buyer_client)
    event = stripe_on.event(
        stripe_order.external_id,
        client_reference_id=str(bank_order.id),
        metadata={"order_id": str(bank_order.id)},
    )

    response = deliver(stripe_client, event)

    assert response.json()["result"] == "order_mismatch"
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending", "pending"), 1)


def test_an_event_for_an_unknown_order_credits_nothing(
    buyer, buyer_client, stripe_on, stripe_client
):
    order = start_order(buyer_client)
    event = stripe_on.event(order.external_id, client_reference_id=str(uuid.uuid4()), metadata={})

    response = deliver(stripe_client, event)

    assert response.status_code == 200
    assert response.json()["result"] == "unknown_order"
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 1)


def test_a_canceled_stripe_order_is_never_credited(
    buyer, buyer_client, admin_client, stripe_on, stripe_client
):
    order = start_order(buyer_client)
    admin_action(admin_client, "cancel_orders", order)

    response = deliver(stripe_client, stripe_on.event(order.external_id))

    assert response.json()["result"] == "already_settled"
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("canceled",), 1)


def test_the_webhook_answers_only_post(stripe_client, stripe_on):
    assert stripe_client.get("/webhooks/stripe").status_code == 405


# --- bank transfer ----------------------------------------------------------------------------


def test_bank_order_page_shows_the_instructions_and_the_reference(
    buyer, buyer_client, settings, stripe_on
):
    settings.BANK_TRANSFER_INSTRUCTIONS = "Vietcombank 0123456789, ClawWits JSC"

    order = start_order(buyer_client, wits=1_000_000, method="bank")
    page = buyer_client.get(f"/topups/{order.id}").content.decode()

    assert order.reference.startswith("CW")
    assert len(order.reference) == 10
    assert (order.provider, order.state, order.price, order.external_id) == (
        "bank",
        "pending",
        45_000,
        "",
    )
    assert "Vietcombank 0123456789, ClawWits JSC" in page
    assert f'<code id="reference">{order.reference}</code>' in page
    assert "<strong>45.000 ₫</strong>" in page
    assert ledger.balance(user_id=buyer.id) == ledger.Balance(0, 0, 0)


def test_admin_confirmation_credits_a_bank_order_exactly_once(
    buyer, buyer_client, admin_client, stripe_on
):
    # Given a pending bank-transfer order
    order = start_order(buyer_client, wits=20_000_000, method="bank")

    # When staff confirm it, twice
    first = admin_action(admin_client, "confirm_and_credit", order)
    second = admin_action(admin_client, "confirm_and_credit", order)

    # Then it is credited once, audited with the admin's email
    assert (first.status_code, second.status_code) == (302, 302)
    assert money(buyer) == Money(ledger.Balance(20_000_000, 0, 0), 1, ("credited",), 0)
    entry = LedgerEntry.objects.get(wallet_id=buyer.id)
    assert (entry.kind, entry.amount, entry.order_id, entry.actor) == (
        "topup",
        20_000_000,
        order.id,
        "admin:staff@example.com",
    )
    assert order.reference in entry.note
    page = buyer_client.get(f"/topups/{order.id}").content.decode()
    assert 'id="bank-instructions"' not in page
    assert ledger.check() == []


def test_admin_confirmation_never_credits_a_stripe_order(
    buyer, buyer_client, admin_client, stripe_on
):
    order = start_order(buyer_client)

    admin_action(admin_client, "confirm_and_credit", order)

    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 0)


def test_a_canceled_bank_order_is_never_credited(buyer, buyer_client, admin_client, stripe_on):
    order = start_order(buyer_client, method="bank")

    admin_action(admin_client, "cancel_orders", order)
    admin_action(admin_client, "confirm_and_credit", order)

    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("canceled",), 0)


def test_a_credited_order_cannot_be_canceled(buyer, buyer_client, admin_client, stripe_on):
    order = start_order(buyer_client, method="bank")
    admin_action(admin_client, "confirm_and_credit", order)

    admin_action(admin_client, "cancel_orders", order)

    assert money(buyer) == Money(ledger.Balance(5_000_000, 0, 0), 1, ("credited",), 0)


# --- order pages ------------------------------------------------------------------------------


def test_orders_of_another_user_are_not_found(buyer_client, make_user, stripe_on):
    other = make_user("other@example.com", tier="pro", wits=0)
    other_client = Client()
    other_client.force_login(other)
    theirs = start_order(other_client, method="bank")
    mine = start_order(buyer_client, method="bank")

    foreign = buyer_client.get(f"/topups/{theirs.id}")
    missing = buyer_client.get(f"/topups/{uuid.uuid4()}")
    listing = buyer_client.get("/topups").content.decode()

    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert theirs.reference not in foreign.content.decode()
    assert f'data-order-id="{mine.id}"' in listing
    assert str(theirs.id) not in listing
    assert theirs.reference not in listing


def test_order_pages_need_a_login(client, buyer_client, stripe_on):
    order = start_order(buyer_client, method="bank")

    for url in ["/topups", f"/topups/{order.id}"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login?next=")


def test_returning_from_checkout_credits_nothing_until_the_webhook(buyer, buyer_client, stripe_on):
    order = start_order(buyer_client)

    page = buyer_client.get(f"/topups/{order.id}?checkout=success").content.decode()

    assert 'id="checkout-success"' in page
    assert money(buyer) == Money(ledger.Balance(0, 0, 0), 0, ("pending",), 0)
