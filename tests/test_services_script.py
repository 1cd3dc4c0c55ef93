"""scripts/services.py: the throwaway servers for tests, and the durable PostgreSQL that
benchmarks measure (a ledger's figures mean little on a server that does not flush commits)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from benchmarks import _stack

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("durable", "expected"),
    [
        (
            True,
            "durable commits (fsync on, synchronous_commit on, full_page_writes on)",
        ),
        (
            False,
            "NOT durable (fsync off, synchronous_commit off, full_page_writes off): commits "
            "acknowledged before they are on disk",
        ),
    ],
)
def test_postgres_is_durable_only_when_asked(durable: bool, expected: str) -> None:
    # Given PostgreSQL started the way benchmarks (durable) and tests (not) start it
    services = _stack.services_module()
    with tempfile.TemporaryDirectory(prefix="clawwits-durable-") as work:
        os.chmod(work, 0o755)  # PostgreSQL runs as the postgres user
        with services.postgres(os.path.join(work, "p"), durable=durable) as url:
            # Then the benchmarks' header reads what the server does at commit
            assert _stack.durability(url) == expected


def test_services_script_passes_durable_to_postgres_and_refuses_unknown_options() -> None:
    # Given the command line a benchmark runs under, and one with a mistyped option
    script = str(ROOT / "scripts" / "services.py")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    show = (
        "import os, psycopg; c = psycopg.connect(os.environ['DATABASE_URL']); "
        "print(c.execute('SHOW synchronous_commit').fetchone()[0])"
    )
    durable = subprocess.run(
        [sys.executable, script, "--durable", "--", sys.executable, "-c", show],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    mistyped = subprocess.run(
        [sys.executable, script, "--durible", "--", sys.executable, "-c", "print('ran')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then the first runs on a server that commits synchronously; the second runs nothing
    assert (durable.returncode, durable.stdout.strip()) == (0, "on"), durable.stderr
    assert (mistyped.returncode, mistyped.stdout) == (2, "")
    assert "--durable" in mistyped.stderr
