"""SIGTERM and SIGINT mid-run: the temporary file is removed, the input is intact, a rerun works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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


# ------------------------------------------------- reconstruct, class2d, vae train: same checks


def _particles_cycling(folder: Path, rows: int, *, box: int = 32, images: int = 40) -> Path:
    """big.star (``rows`` particles cycling over a small stack of ``images``) and small.star."""
    from _badinput import COLUMNS, particle_rows, star_text

    rng = np.random.default_rng(4)
    write_map(folder / "particles.mrcs", rng.standard_normal((images, box, box)), pixel=2.0)
    for name, count in (("big.star", rows), ("small.star", 2 * images)):
        table = particle_rows(count)
        for i, row in enumerate(table):
            row["rlnImageName"] = f"{i % images + 1:06d}@particles.mrcs"
            row["rlnAngleRot"], row["rlnAngleTilt"] = (37.0 * i) % 360, (11.0 * i) % 180
        (folder / name).write_text(star_text(table, COLUMNS).replace(" 16 2 300", f" {box} 2 300"))
    return folder / "big.star"


def _run_until(folder: Path, args: list[str], ready: str, signum: int) -> tuple[int, str]:
    """Start ``cryoglass ARGS``, wait for a stderr line containing ``ready``, send ``signum``."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "cryoglass", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if ready in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(120), f"no {ready!r} on stderr: {''.join(lines)}"
        assert process.poll() is None, f"finished before the signal: {''.join(lines)}"
        process.send_signal(signum)
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        process.stderr.close()
    return process.returncode, "".join(lines)


def _rerun(folder: Path, args: list[str]) -> None:
    rerun = subprocess.run(
        [sys.executable, "-m", "cryoglass", *args],
        cwd=folder,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr


def _check_interrupted(folder, code, err, signum, inputs, partial: list[str]) -> None:
    assert code == (128 + signum if signum == signal.SIGTERM else code) and code != 0, err
    assert "Traceback" not in err, err
    assert _temporaries(folder) == []
    left = [name for name in partial if (folder / name).exists()]
    assert left == [], f"partial outputs left: {left}"
    after = snapshot(folder)
    assert {k: after.get(k) for k in inputs} == inputs


#: SIGTERM in the default suite; SIGINT (the same unwinding, as KeyboardInterrupt) as slow.
SIGNALS = pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
    ids=["TERM", "INT"],
)


@SIGNALS
def test_reconstruct_interrupted(tmp_path, signum):
    _particles_cycling(tmp_path, 60_000)
    inputs = snapshot(tmp_path)
    args = ["reconstruct", "big.star", "--out", "m.mrc"]
    code, err = _run_until(tmp_path, args, "needs about", signum)
    _check_interrupted(tmp_path, code, err, signum, inputs, ["m.mrc"])
    _rerun(tmp_path, ["reconstruct", "small.star", "--out", "m.mrc"])
    assert (tmp_path / "m.mrc").is_file() and _temporaries(tmp_path) == []


@SIGNALS
def test_class2d_interrupted_resumes(tmp_path, signum):
    _particles_cycling(tmp_path, 800)
    inputs = snapshot(tmp_path)
    args = ["class2d", "big.star", "-K", "2", "--iterations", "50", "--out", "c"]
    code, err = _run_until(tmp_path, args, "iteration 1:", signum)
    outputs = [f"c/{n}" for n in ("classes.mrcs", "particles.star", "model.json", "report.html")]
    _check_interrupted(tmp_path, code, err, signum, inputs, outputs)
    # the checkpoint of iteration 1 (or later) is kept: the run resumes from it
    _rerun(tmp_path, [*args[:4], "--iterations", "3", "--out", "c", "--continue"])
    assert all((tmp_path / name).is_file() for name in outputs)
    assert _temporaries(tmp_path) == []


@SIGNALS
def test_vae_train_interrupted(tmp_path, signum):
    _particles_cycling(tmp_path, 3000)
    inputs = snapshot(tmp_path)
    args = ["vae", "train", "big.star", "--epochs", "50", "--out", "v"]
    code, err = _run_until(tmp_path, args, "epoch 1/", signum)
    _check_interrupted(tmp_path, code, err, signum, inputs, [])
    _rerun(tmp_path, ["vae", "train", "small.star", "--epochs", "1", "--out", "v", "--overwrite"])
    # --overwrite starts afresh: only the new run's checkpoint is there
    assert [p.name for p in (tmp_path / "v").glob("checkpoint.*.pt")] == ["checkpoint.1.pt"]
    assert _temporaries(tmp_path) == []
