"""Idle OpenMP threads sleep instead of spinning (issue 21, "under load").

The ``cryoglass`` entry point sets ``OMP_WAIT_POLICY=PASSIVE`` (``_allocator.tune_threads``)
before torch is imported; the setting only works if nothing imports torch earlier, and it
must reach the processes a command starts.  The speed itself is measured in
``benchmarks/bench_load.py`` (benchmarks/RESULTS.md), not here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryoglass._allocator import tune_threads

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import os, sys
sys.argv = ["cryoglass", "--version"]
from cryoglass.cli import main
assert "torch" not in sys.modules, "a command module imports torch at import time"
try:
    main.run()
except SystemExit:
    pass
print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules)
"""


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, "PYTHONPATH": str(REPO / "src"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[-2]


def test_entry_point_sets_passive_waiting_before_torch():
    assert _probe() == "PASSIVE False"


def test_a_users_wait_policy_wins():
    assert _probe(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"
    assert _probe(GOMP_SPINCOUNT="300000") == "None False"


def test_tune_threads_only_fills_in():
    env: dict[str, str] = {"OMP_WAIT_POLICY": "active"}
    assert tune_threads(env) is False and env == {"OMP_WAIT_POLICY": "active"}
    env = {}
    assert tune_threads(env) is True and env == {"OMP_WAIT_POLICY": "PASSIVE"}
