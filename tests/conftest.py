"""Shared fixtures: seeded generators, the shared real-data folder, and RELION binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# Property tests draw their examples from a fixed seed: the same examples on every run and in CI
# (a failure is reproducible), and no example database written into the checkout.
settings.register_profile("cryoglass", derandomize=True, database=None)
settings.load_profile("cryoglass")

REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [REPO.parent / "shared" / "data", Path("/work/shared/data")]
SHARED_DATA = Path(
    os.environ.get(
        "CRYOGLASS_SHARED_DATA",
        next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0]),
    )
)
REQUIRE_RELION = os.environ.get("CRYOGLASS_REQUIRE_RELION", "") == "1"


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator (seed 0)."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The third-party real data in ../shared/data (read in place, never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA} (set CRYOGLASS_SHARED_DATA)")
    return SHARED_DATA


def relion_binary(name: str) -> str:
    """Path of a RELION binary: skip when absent, fail in CI (CRYOGLASS_REQUIRE_RELION=1)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install RELION 3.1 (apt-get install relion)"
        if REQUIRE_RELION:
            pytest.fail(message + " — required in CI (CRYOGLASS_REQUIRE_RELION=1)")
        pytest.skip(message)
    return path


def run_relion(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    """Run a RELION command in ``cwd``; raise with its output if it fails."""
    binary = relion_binary(args[0])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [binary, *args[1:]], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


@pytest.fixture
def busy_worker_killer():
    """``kill = busy_worker_killer(client)``: a Dask progress callback that SIGKILLs the first
    worker it finds busy (once; it waits up to 5 s for one); ``kill.killed`` lists it."""
    import signal
    import time

    def make(client):
        pids = client.run(os.getpid)
        killed = []

        def kill(count):
            if killed:
                return
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                    return
                time.sleep(0.01)

        kill.killed = killed
        return kill

    return make
