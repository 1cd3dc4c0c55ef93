"""gateway.screening.warm: what screening builds on first use is built before a server serves.

Each test runs in a fresh interpreter: in this one, other tests have already built the tables
and compiled checks, so nothing here could tell whether `warm` did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Prints, as JSON: whether the token table is built, the checks compiled per scanner word,
# then the same after screening every labelled text and three 32 KB ones.
_PROBE = """
import json
from pathlib import Path
from gateway import screening

def state():
    return {
        "table": screening._token_table_ is not None,
        "checks": {word: len(s.compiled) for word, s in screening._SCANNERS.items()},
    }

{warm}
before = state()
texts = [json.loads(line)["text"] for line in Path("tests/data/screening_eval.jsonl").open()]
texts += [(unit * 3000)[:32768] for unit in ("ignore all previous ", "s y s t e m ", "1gn0r3 ")]
blocked = sum(screening.screen([text], cache=False).blocked for text in texts)
print(json.dumps({"before": before, "after": state(), "blocked": blocked}))
"""


def _probe(warm: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "clawwits.settings"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("{warm}", warm)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_warm_screening_builds_nothing_more() -> None:
    warmed = _probe("screening.warm()")
    assert warmed["before"]["table"] is True
    assert warmed["after"] == warmed["before"]
    # The negative control: without `warm`, the same texts build the table and compile checks
    # on the way, so the comparison above is one that can fail.
    cold = _probe("")
    assert cold["before"]["table"] is False
    assert sum(cold["after"]["checks"].values()) > sum(cold["before"]["checks"].values())
    # Same verdicts either way.
    assert warmed["blocked"] == cold["blocked"]


def test_the_wsgi_application_is_warm_when_imported() -> None:
    loaded = _probe("import clawwits.wsgi")
    assert loaded["before"]["table"] is True
    assert loaded["after"] == loaded["before"]
