import pytest

from wits import ledger


@pytest.fixture(params=[True, False], ids=["one-statement", "portable"])
def ledger_path(request, monkeypatch):
    """Run a test on both ledger implementations: PostgreSQL's one-statement steps and the
    portable ORM steps the embedded SQLite default uses."""
    monkeypatch.setattr(ledger, "FAST_SQL", request.param)
    return request.param
