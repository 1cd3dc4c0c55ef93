"""/billing: the owner's ledger entries (filterable, paged) and top-up orders with their states."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from wits import ledger, topups

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _entries(response) -> list[tuple[str, str, str, str, str]]:
    """(kind, amount, change, available after, reserved after) of each ledger row, in order."""
    body = response.content.decode()
    rows = re.findall(r'<tr data-entry-id="\d+" class="kind-(\w+)">(.*?)</tr>', body, re.S)
    result = []
    for kind, row in rows:
        numbers = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
        result.append((kind, *numbers))
    return result


@pytest.fixture
def owner(make_user):
    """Welcome grant 5,000; a credited 1M bank top-up; a request that held 100 and used 60."""
    user = make_user(wits=5_000)
    paid = topups.start_order(user=user, wits=1_000_000, method="bank")
    topups.confirm_bank_payment(order_id=paid.order_id, actor="admin:test")
    topups.start_order(user=user, wits=2_000_000, method="bank")
    held = ledger.reserve(user_id=user.id, request_id="req_bill_1", amount=100)
    ledger.commit(held, actual=60)
    return user


def test_billing_needs_a_login():
    response = Client().get("/billing")

    assert (response.status_code, response["Location"]) == (302, "/login?next=/billing")


def test_ledger_lists_every_entry_newest_first_with_balances_after(owner):
    response = _client(owner).get("/billing")

    assert response.status_code == 200
    assert _entries(response) == [
        ("commit", "60", "+40", "1,004,940", "0"),
        ("reserve", "100", "-100", "1,004,900", "100"),
        ("topup", "1,000,000", "+1,000,000", "1,005,000", "0"),
        ("grant", "5,000", "+5,000", "5,000", "0"),
    ]
    body = response.content.decode()
    assert "<code>req_bill_1</code>" in body
    assert "welcome grant" in body
    assert '<strong id="available">1,004,940</strong>' in body
    assert '<strong id="used">60</strong>' in body


def test_entry_kinds_are_named_for_people(owner):
    body = _client(owner).get("/billing").content.decode()

    kinds = re.findall(r'<td class="kind">([^<]+)</td>', body)
    assert kinds == ["Charge", "Reserve", "Top-up", "Grant"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("credits", ["topup", "grant"]),
        ("usage", ["commit", "reserve"]),
        ("commit", ["commit"]),
        ("adjustment", []),
        ("", ["commit", "reserve", "topup", "grant"]),
    ],
)
def test_kind_filter_selects_exactly_those_entries(owner, kind, expected):
    response = _client(owner).get("/billing", {"kind": kind})

    assert [entry[0] for entry in _entries(response)] == expected


def test_orders_show_their_state_price_and_link(owner):
    body = _client(owner).get("/billing").content.decode()

    rows = re.findall(r'<tr data-order-id="([0-9a-f-]+)">(.*?)</tr>', body, re.S)
    assert len(rows) == 2
    (pending_id, pending), (credited_id, credited) = rows
    assert '<td class="num">2,000,000</td>' in pending
    assert '<td class="num price">120,000 ₫</td>' in pending
    assert re.search(r'<td class="state state-pending">Waiting for payment\s*</td>', pending)
    assert f'<a href="/topups/{pending_id}">' in pending
    assert '<td class="num price">60,000 ₫</td>' in credited
    assert re.search(r'<td class="state state-credited">Credited\s*</td>', credited)
    assert "<td>Bank transfer</td>" in credited
    assert f'href="/topups/{credited_id}"' in body


def test_billing_links_to_pricing(owner):
    body = _client(owner).get("/billing").content.decode()

    assert '<a class="button" href="/pricing">Buy Wits</a>' in body


def test_ledger_pages_follow_the_cursor(make_user):
    user = make_user(wits=1)
    for n in range(2, 56):
        ledger.grant(user_id=user.id, amount=n, actor="test")
    client = _client(user)

    first = client.get("/billing")
    older = re.search(r'<a href="\?after=(\d+)" id="older">', first.content.decode()).group(1)
    second = client.get("/billing", {"after": older})

    assert [e[1] for e in _entries(first)] == [str(n) for n in range(55, 5, -1)]
    assert [e[1] for e in _entries(second)] == ["5", "4", "3", "2", "1"]
    assert 'id="older"' not in second.content.decode()


def test_another_tenants_ledger_and_orders_never_appear(owner, make_user):
    # (an amount no id on the page can spell by chance: ids are hex, with no commas, and seven
    # given digits in a row are ~1 in 10**7 per id; "777" alone was in a random order id)
    other = make_user(wits=7_770_777)
    theirs = topups.start_order(user=other, wits=3_000_000, method="bank")

    mine = _client(owner).get("/billing").content.decode()
    their_view = _client(other).get("/billing")

    assert str(theirs.order_id) not in mine
    assert "7,770,777" not in mine
    assert "7770777" not in mine
    assert "7,770,777" in their_view.content.decode()
    assert [e[0] for e in _entries(their_view)] == ["grant"]
    assert re.findall(r'<tr data-order-id="([0-9a-f-]+)">', their_view.content.decode()) == [
        str(theirs.order_id)
    ]


def test_an_unknown_kind_answers_400(owner):
    response = _client(owner).get("/billing", {"kind": "bonus"})

    assert response.status_code == 400
    assert "kind: must be credits, usage or a ledger entry kind." in response.content.decode()


def test_a_new_account_shows_empty_orders(make_user):
    body = _client(make_user(wits=0)).get("/billing").content.decode()

    assert 'No top-ups yet. <a href="/pricing">Buy Wits</a> when you need more.' in body
    assert "No ledger entries match." in body
