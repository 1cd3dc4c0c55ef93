"""clawwits.malloc: a request's large temporaries reuse the heap's pages instead of fresh ones.

Each test runs its workload in a fresh interpreter, whose malloc is as glibc starts it (this
one's may already be set), and counts the page faults the workload causes once warm.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Four touched arrays of 600 KB, freed together, fifty times over (as a request's numpy
# temporaries are): prints whether the thresholds were set, then the page faults it took.
_WORKLOAD = """
import resource
{setup}
import numpy as np

def request():
    arrays = [np.ones(75_000) for _ in range(4)]
    return sum(float(a[-1]) for a in arrays)

request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    request()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only"
)


def _faults(setup: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _WORKLOAD.replace("{setup}", setup)],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "clawwits.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    kept, faults = done.stdout.split()[-2:]
    return kept, int(faults)


def test_kept_freed_memory_serves_the_next_requests_temporaries_without_page_faults() -> None:
    kept, faults = _faults("from clawwits import malloc\nkept = malloc.keep_freed_memory()")
    assert (kept, faults) == ("True", 0)
    # The negative control: glibc's own thresholds give the freed pages back each time, and the
    # next request faults them in again (~150 faults per array), so the count above can fail.
    kept, faults = _faults("kept = None")
    assert kept == "None"
    assert faults > 50 * 4 * 100


def test_the_wsgi_entry_point_keeps_freed_memory() -> None:
    kept, faults = _faults("import clawwits.wsgi\nkept = 'wsgi'")
    assert (kept, faults) == ("wsgi", 0)


def test_thresholds_of_ones_own_in_the_environment_are_left_alone() -> None:
    setup = "from clawwits import malloc\nkept = malloc.keep_freed_memory()"
    kept, faults = _faults(setup, MALLOC_TRIM_THRESHOLD_="1")
    assert kept == "False"
    assert faults > 50 * 4 * 100
