import pytest

from wits import ledger


@pytest.mark.django_db
def test_reserve_then_commit_charges_usage_and_returns_rest(make_user):
    user = make_user(wits=1000)
    res = ledger.reserve(user_id=user.id, request_id="r1", amount=300)
    assert ledger.balance(user_id=user.id) == ledger.Balance(700, 300, 0)

    outcome = ledger.commit(res, actual=120)

    assert (outcome.applied, outcome.charged, outcome.loss) == (True, 120, 0)
    assert ledger.balance(user_id=user.id) == ledger.Balance(880, 0, 120)
    assert ledger.check() == []
