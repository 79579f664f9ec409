"""SIGTERM and SIGINT mid-run: the temporary file is removed, the input is intact, a rerun works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _badinput import snapshot, write_map

REPO = Path(__file__).resolve().parents[2]


def _start_simulate(folder: Path, out: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    args = ["simulate", "--volume", "h1.mrc", "--n-particles", "400000", "--chunk-size", "500"]
    return subprocess.Popen(
        [sys.executable, "-m", "cryoglass", *args, "--out", out, "--seed", "1"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") and ".tmp" in p.name]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_simulate_interrupted_leaves_no_temporary_file(tmp_path, signum):
    grid = np.indices((24,) * 3) - 12
    write_map(tmp_path / "h1.mrc", np.exp(-(grid**2).sum(0) / 4.0))  # a compact blob
    inputs = snapshot(tmp_path)
    process = _start_simulate(tmp_path, "sim")
    try:
        deadline = time.monotonic() + 60
        while not _temporaries(tmp_path) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert _temporaries(tmp_path), "the stack's temporary file never appeared"
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    assert "Traceback" not in err, err
    assert _temporaries(tmp_path) == []
    assert not (tmp_path / "sim" / "particles.mrcs").exists()
    after = snapshot(tmp_path)
    assert {k: after[k] for k in inputs} == inputs
    if signum == signal.SIGINT:
        return
    assert process.returncode == 128 + signal.SIGTERM
    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "cryoglass",
            "simulate",
            "--volume",
            "h1.mrc",
            "--n-particles",
            "20",
            "--out",
            "sim",
            "--overwrite",
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "sim" / "particles.mrcs").is_file() and _temporaries(tmp_path) == []
