"""The wits management commands (DESIGN.md §8): grantwits, reconcile, checkledger, and the
ledger side of createaccount. Exit codes are checked on real `manage.py` processes."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import User
from tests.wits.ledger_support import snapshot, subprocess_env
from wits import ledger
from wits.models import LedgerEntry, Wallet

ROOT = Path(__file__).resolve().parents[2]
B = ledger.Balance


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def corrupt_wallet(user_id: object, wits: int) -> None:
    """An entry-less change to available and credited: every constraint holds, the books don't.

    Raw SQL that bypasses the ledger, in this test module only.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wits_wallet SET available = available + %s, credited = credited + %s "
            "WHERE user_id = %s",
            [wits, wits, user_id],
        )


# --- grantwits --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_grantwits_grants_and_prints_the_new_balance(make_user):
    user = make_user("ann@example.com", wits=100)

    output = run("grantwits", "ann@example.com", "250", "--note", "conference credit")

    assert output == "available=350\n"
    entry = LedgerEntry.objects.filter(wallet_id=user.id).latest("id")
    assert (entry.kind, entry.amount, entry.actor, entry.note) == (
        "grant",
        250,
        "command:grantwits",
        "conference credit",
    )
    assert snapshot(user.id).balance == B(350, 0, 0)
    assert ledger.check() == []


@pytest.mark.django_db
def test_grantwits_negative_amount_is_an_adjustment(make_user):
    user = make_user("bob@example.com", wits=100)

    output = run("grantwits", "BOB@example.com", "-30")

    assert output == "available=70\n"
    entry = LedgerEntry.objects.filter(wallet_id=user.id).latest("id")
    assert (entry.kind, entry.amount, entry.available_delta) == ("adjustment", -30, -30)
    after = snapshot(user.id)
    assert (after.balance, after.credited) == (B(70, 0, 0), 70)
    assert ledger.check() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("email", "amount", "message"),
    [
        ("nobody@example.com", "10", "no account with email nobody@example.com"),
        ("cat@example.com", "-101", "the wallet holds less than 101 available Wits"),
        ("cat@example.com", "0", "amount must be a non-zero integer"),
    ],
)
def test_grantwits_refusals_raise_command_error_and_change_nothing(
    make_user, email, amount, message
):
    user = make_user("cat@example.com", wits=100)
    before = snapshot(user.id)

    with pytest.raises(CommandError, match=message):
        run("grantwits", email, amount)

    assert snapshot(user.id) == before
    assert LedgerEntry.objects.count() == 1


# --- reconcile --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reconcile_command_prints_what_it_settled(make_user):
    user = make_user(wits=1000)
    # A ttl must be positive: these expire a millisecond after they are made.
    gone = timedelta(milliseconds=1)
    with_usage = ledger.reserve(user_id=user.id, request_id="a", amount=100, ttl=gone)
    ledger.record_usage(with_usage, actual=25)
    ledger.reserve(user_id=user.id, request_id="b", amount=100, ttl=gone)
    ledger.reserve(user_id=user.id, request_id="c", amount=100, ttl=gone)
    ledger.reserve(user_id=user.id, request_id="live", amount=100)
    time.sleep(0.01)

    first = run("reconcile")
    second = run("reconcile")

    assert first == "committed=1 released=2 skipped=0\n"
    assert second == "committed=0 released=0 skipped=0\n"
    assert snapshot(user.id).balance == B(875, 100, 25)
    assert ledger.check() == []


# --- checkledger ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_checkledger_reports_ok_on_clean_books(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="r", amount=10)
    ledger.commit(res, actual=4)
    make_user(wits=0)

    assert run("checkledger") == "ok: 2 wallet(s) conserve exactly\n"


@pytest.mark.django_db
def test_checkledger_names_the_drifting_wallet_and_exits_1(make_user):
    make_user(wits=100)
    victim = make_user(wits=100)
    corrupt_wallet(victim.id, 7)
    out = StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("checkledger", stdout=out)

    assert exited.value.code == 1
    assert out.getvalue().splitlines() == [
        f"DRIFT {victim.id}: replay gives available=100 reserved=0 used=0 credited=100; "
        "wallet has 107/0/0/107",
        "1 problem(s) in 2 wallet(s)",
    ]


@pytest.mark.django_db
def test_checkledger_finds_a_reservation_without_its_settle_entry(make_user):
    user = make_user(wits=100)
    res = ledger.reserve(user_id=user.id, request_id="r", amount=10)
    ledger.commit(res, actual=4)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM wits_ledgerentry WHERE kind = 'commit'")

    problems = [d.problem for d in ledger.check()]

    assert f"reservation {res.id} (committed) has entries ['reserve']" in problems


@pytest.mark.django_db(transaction=True)
def test_checkledger_process_exits_0_when_clean_and_1_after_corruption(make_user):
    # given
    user = make_user(wits=500)
    ledger.commit(ledger.reserve(user_id=user.id, request_id="r", amount=50), actual=20)

    # when / then: clean
    clean = manage("checkledger")
    assert (clean.returncode, clean.stdout) == (0, "ok: 1 wallet(s) conserve exactly\n")

    # when / then: an entry-less change to the wallet
    corrupt_wallet(user.id, 3)
    drifted = manage("checkledger")
    assert drifted.returncode == 1
    assert drifted.stdout.splitlines()[-1] == "1 problem(s) in 1 wallet(s)"
    assert drifted.stdout.startswith(f"DRIFT {user.id}: replay gives available=480 ")


@pytest.mark.django_db(transaction=True)
def test_grantwits_process_exit_codes(make_user):
    user = make_user("dee@example.com", wits=10)

    granted = manage("grantwits", "dee@example.com", "5", "--note", "thanks")
    unknown = manage("grantwits", "nobody@example.com", "5")
    overdrawn = manage("grantwits", "dee@example.com", "-16")

    assert (granted.returncode, granted.stdout) == (0, "available=15\n")
    assert unknown.returncode == 1
    assert "no account with email nobody@example.com" in unknown.stderr
    assert overdrawn.returncode == 1
    assert "less than 16 available Wits" in overdrawn.stderr
    assert snapshot(user.id).balance == B(15, 0, 0)
    assert ledger.check() == []


# --- createaccount ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_createaccount_with_grant_writes_exactly_one_grant_entry():
    output = run("createaccount", "eve@example.com", "--password", "pw-123456", "--grant", "500")

    user = User.objects.get(email="eve@example.com")
    assert output == f"{user.id}\n"
    entries = list(LedgerEntry.objects.filter(wallet_id=user.id))
    assert [(e.kind, e.amount, e.actor, e.note) for e in entries] == [
        ("grant", 500, "command:createaccount", "welcome grant")
    ]
    assert snapshot(user.id).balance == B(500, 0, 0)
    assert ledger.check() == []


@pytest.mark.django_db
def test_createaccount_with_zero_grant_opens_an_empty_wallet():
    run("createaccount", "fay@example.com", "--password", "pw-123456", "--grant", "0")

    user = User.objects.get(email="fay@example.com")
    assert Wallet.objects.filter(user_id=user.id).exists()
    assert (snapshot(user.id).balance, snapshot(user.id).entries) == (B(0, 0, 0), 0)


@pytest.mark.django_db
def test_createaccount_negative_grant_is_refused_and_creates_nothing():
    with pytest.raises(CommandError, match="--grant cannot be negative"):
        run("createaccount", "gus@example.com", "--password", "pw-123456", "--grant", "-5")

    assert not User.objects.filter(email="gus@example.com").exists()
    assert (Wallet.objects.count(), LedgerEntry.objects.count()) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_createaccount_process_grants_once():
    result = manage("createaccount", "hal@example.com", "--password", "pw-123456", "--grant", "42")

    assert result.returncode == 0
    user = User.objects.get(email="hal@example.com")
    assert result.stdout == f"{user.id}\n"
    kinds = list(LedgerEntry.objects.filter(wallet_id=user.id).values_list("kind", "amount"))
    assert kinds == [("grant", 42)]
