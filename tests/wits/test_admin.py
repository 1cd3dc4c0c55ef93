"""The wits admin: read-only money rows, the audited "Grant / adjust Wits" action.

Driven through the Django test client as a staff user, the way staff use it.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from tests.wits.ledger_support import snapshot
from wits import ledger
from wits.models import LedgerEntry, Reservation, TopupOrder, Wallet

pytestmark = pytest.mark.django_db

MODELS = ["wallet", "reservation", "ledgerentry", "topuporder", "paymentevent"]


@pytest.fixture
def staff(make_user):
    return make_user("admin@example.com", staff=True, wits=0)


@pytest.fixture
def admin_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def customer(make_user):
    return make_user("customer@example.com", wits=10_000)


def grant_step(client: Client, wallets: list, **form: str):
    """POST the wallet changelist's grant action: the form page, or with `form` its submit."""
    data = {"action": "grant_wits", "_selected_action": [str(w.id) for w in wallets]}
    if form:
        data.update(apply="1", **form)
    else:
        data["index"] = "0"
    return client.post("/admin/wits/wallet/", data)


def entries_of(user) -> list[tuple]:
    rows = LedgerEntry.objects.filter(wallet_id=user.id).order_by("id")
    return list(rows.values_list("kind", "amount", "actor", "note"))


# --- pages ------------------------------------------------------------------------------------


def test_every_wits_admin_page_loads_with_filters_and_search(admin_client, customer):
    # Given a wallet with a grant, a reservation, a commit, and an order
    reservation = ledger.reserve(user_id=customer.id, request_id="req_admin_pages", amount=300)
    ledger.commit(reservation, actual=120)
    order = TopupOrder.objects.create(
        user=customer,
        wits=1_000_000,
        price=60_000,
        currency="VND",
        provider="bank",
        reference="CWPAGES1",
    )
    entry = LedgerEntry.objects.filter(wallet_id=customer.id).first()
    urls = [
        "/admin/wits/",
        "/admin/wits/wallet/",
        "/admin/wits/wallet/?q=customer%40example.com",
        f"/admin/wits/wallet/{customer.id}/change/",
        "/admin/wits/reservation/",
        "/admin/wits/reservation/?state__exact=committed",
        "/admin/wits/reservation/?q=req_admin_pages",
        f"/admin/wits/reservation/{reservation.id}/change/",
        "/admin/wits/ledgerentry/",
        "/admin/wits/ledgerentry/?kind__exact=commit",
        "/admin/wits/ledgerentry/?q=customer%40example.com",
        "/admin/wits/ledgerentry/?q=req_admin_pages",
        f"/admin/wits/ledgerentry/?created_at__year={entry.created_at.year}",
        f"/admin/wits/ledgerentry/{entry.id}/change/",
        "/admin/wits/topuporder/",
        "/admin/wits/topuporder/?state__exact=pending&provider__exact=bank",
        "/admin/wits/topuporder/?q=CWPAGES1",
        f"/admin/wits/topuporder/{order.id}/change/",
        "/admin/wits/paymentevent/",
    ]

    # When staff open each page, then each answers 200
    statuses = {url: admin_client.get(url).status_code for url in urls}

    assert statuses == dict.fromkeys(urls, 200)


def test_ledger_search_finds_by_email_and_by_request_id(admin_client, customer, make_user):
    other = make_user("other@example.com", wits=500)
    ledger.reserve(user_id=customer.id, request_id="req_needle", amount=100)
    ledger.reserve(user_id=other.id, request_id="req_haystack", amount=100)

    by_email = admin_client.get("/admin/wits/ledgerentry/?q=other%40example.com").content.decode()
    by_request = admin_client.get("/admin/wits/reservation/?q=req_needle").content.decode()

    assert "other@example.com" in by_email
    assert "customer@example.com" not in by_email
    assert "req_needle" in by_request
    assert "req_haystack" not in by_request


def test_reservation_list_filters_by_state(admin_client, customer):
    held = ledger.reserve(user_id=customer.id, request_id="req_held", amount=100)
    done = ledger.reserve(user_id=customer.id, request_id="req_released", amount=100)
    ledger.release(done, reason="upstream_error")

    page = admin_client.get("/admin/wits/reservation/?state__exact=held").content.decode()

    assert held.request_id in page
    assert "req_released" not in page


def test_non_staff_users_are_sent_to_the_admin_login(customer):
    client = Client()
    client.force_login(customer)

    response = client.get("/admin/wits/wallet/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- read-only --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_money_rows_cannot_be_added_changed_or_deleted(admin_client, customer, model):
    # Given one row of each kind
    reservation = ledger.reserve(user_id=customer.id, request_id="req_readonly", amount=100)
    order = TopupOrder.objects.create(
        user=customer,
        wits=1_000_000,
        price=60_000,
        currency="VND",
        provider="bank",
        reference="CWREAD01",
    )
    ledger.credit_order(order_id=order.id, actor="test")
    from wits.models import PaymentEvent

    event = PaymentEvent.objects.create(provider="stripe", event_id="evt_readonly", kind="x")
    pk = {
        "wallet": customer.id,
        "reservation": reservation.id,
        "ledgerentry": LedgerEntry.objects.filter(wallet_id=customer.id).first().id,
        "topuporder": order.id,
        "paymentevent": event.id,
    }[model]
    before = snapshot(customer.id)
    base = f"/admin/wits/{model}/"

    # When staff try to add, change and delete
    add = admin_client.get(f"{base}add/")
    view = admin_client.get(f"{base}{pk}/change/")
    change = admin_client.post(f"{base}{pk}/change/", {"available": "999999", "amount": "1"})
    delete_page = admin_client.get(f"{base}{pk}/delete/")
    delete = admin_client.post(f"{base}{pk}/delete/", {"post": "yes"})
    bulk_delete = admin_client.post(
        base,
        {"action": "delete_selected", "_selected_action": [str(pk)], "index": "0", "post": "yes"},
    )
    changelist = admin_client.get(base).content.decode()

    # Then each is refused, the detail page is view-only, and nothing changed
    assert add.status_code == 403
    assert view.status_code == 200
    assert b'name="_save"' not in view.content
    assert (change.status_code, delete_page.status_code, delete.status_code) == (403, 403, 403)
    assert b"Are you sure" not in bulk_delete.content
    assert "delete_selected" not in changelist
    assert snapshot(customer.id) == before
    assert Wallet.objects.filter(user_id=customer.id).exists()
    assert Reservation.objects.filter(pk=reservation.id, state="held").exists()
    assert TopupOrder.objects.get(pk=order.id).state == "credited"


# --- grant / adjust ---------------------------------------------------------------------------


def test_grant_action_first_shows_its_form_and_writes_nothing(admin_client, customer):
    before = snapshot(customer.id)

    response = grant_step(admin_client, [customer])

    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="grant-form"' in page
    assert "customer@example.com" in page
    assert f'name="_selected_action" value="{customer.id}"' in page
    assert snapshot(customer.id) == before


def test_grant_action_writes_exactly_one_audited_grant(admin_client, customer):
    response = grant_step(admin_client, [customer], amount="5000", note="Support credit #42")

    assert response.status_code == 302
    assert entries_of(customer) == [
        ("grant", 10_000, "system", "welcome grant"),
        ("grant", 5_000, "admin:admin@example.com", "Support credit #42"),
    ]
    assert ledger.balance(user_id=customer.id) == ledger.Balance(15_000, 0, 0)
    assert ledger.check() == []


def test_a_negative_amount_is_written_as_an_adjustment(admin_client, customer):
    response = grant_step(admin_client, [customer], amount="-2500", note="Refunded by card")

    assert response.status_code == 302
    assert entries_of(customer)[-1] == (
        "adjustment",
        -2_500,
        "admin:admin@example.com",
        "Refunded by card",
    )
    assert ledger.balance(user_id=customer.id) == ledger.Balance(7_500, 0, 0)


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"amount": "5000", "note": ""}, "This field is required."),
        ({"amount": "5000", "note": "   "}, "This field is required."),
        ({"amount": "0", "note": "nothing"}, "Enter a non-zero amount."),
        ({"amount": "", "note": "no amount"}, "This field is required."),
        ({"amount": "1.5", "note": "fraction"}, "Enter a whole number."),
        ({"amount": "-10001", "note": "too much"}, "less than 10001 available Wits"),
    ],
)
def test_a_refused_grant_shows_the_form_again_and_writes_nothing(
    admin_client, customer, form, error
):
    before = snapshot(customer.id)

    response = grant_step(admin_client, [customer], **form)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert snapshot(customer.id) == before


def test_a_grant_over_several_wallets_writes_all_or_nothing(admin_client, customer, make_user):
    poor = make_user("poor@example.com", wits=100)
    before = (snapshot(customer.id), snapshot(poor.id))

    refused = grant_step(admin_client, [customer, poor], amount="-500", note="clawback")
    after_refusal = (snapshot(customer.id), snapshot(poor.id))
    granted = grant_step(admin_client, [customer, poor], amount="250", note="apology")

    assert refused.status_code == 400
    assert after_refusal == before
    assert granted.status_code == 302
    assert ledger.balance(user_id=customer.id).available == 10_250
    assert ledger.balance(user_id=poor.id).available == 350


def test_staff_without_change_permission_cannot_grant(customer, make_user):
    # Given a staff member who may only view wallets
    viewer = User.objects.create_user("viewer@example.com", "pw-viewer-9", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_wallet"))
    client = Client()
    client.force_login(viewer)
    before = snapshot(customer.id)

    # When they open the list and try the action anyway
    page = client.get("/admin/wits/wallet/")
    response = grant_step(client, [customer], amount="5000", note="sneaky")

    # Then the action is not offered and nothing is written
    assert page.status_code == 200
    assert "grant_wits" not in page.content.decode()
    assert b'id="grant-form"' not in response.content
    assert snapshot(customer.id) == before
