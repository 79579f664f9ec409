"""`cryoglass project` as a user meets it: outputs, and bad input that writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch

from cryoglass.io import read_particles
from cryoglass.simulate import gaussian_map


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cryoglass", "project", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _write_inputs(
    folder: Path, *, map_pixel: float = 2.0, star_pixel: float = 2.0, n: int = 6, box: int = 32
) -> tuple[Path, Path]:
    generator = torch.Generator().manual_seed(3)
    centres = (torch.rand(12, 3, generator=generator) - 0.5) * box * map_pixel * 0.5
    volume = gaussian_map(
        centres, shape=(box,) * 3, pixel_size_angstrom=map_pixel, sigma_angstrom=2 * map_pixel
    )
    map_path = folder / "map.mrc"
    with mrcfile.new(map_path) as mrc:
        mrc.set_data(volume.numpy().astype(np.float32))
        mrc.voxel_size = map_pixel
    angles = torch.rand(n, 3, generator=generator).numpy() * [360, 180, 360]
    optics = {
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnImagePixelSize": [star_pixel],
        "rlnImageSize": [box],
        "rlnImageDimensionality": [2],
        "rlnVoltage": [300.0],
        "rlnSphericalAberration": [2.7],
        "rlnAmplitudeContrast": [0.1],
    }
    particles = {
        "rlnImageName": [f"{i + 1:06d}@raw.mrcs" for i in range(n)],
        "rlnAngleRot": angles[:, 0],
        "rlnAngleTilt": angles[:, 1],
        "rlnAnglePsi": angles[:, 2],
        "rlnOriginXAngst": np.linspace(-6, 6, n),
        "rlnOriginYAngst": np.linspace(4, -4, n),
        "rlnDefocusU": np.full(n, 12000.0),
        "rlnDefocusV": np.full(n, 11000.0),
        "rlnDefocusAngle": np.full(n, 30.0),
        "rlnOpticsGroup": np.ones(n, dtype=int),
    }
    import pandas as pd

    star_path = folder / "in.star"
    starfile.write(
        {"optics": pd.DataFrame(optics), "particles": pd.DataFrame(particles)}, star_path
    )
    return map_path, star_path


def test_project_writes_stack_and_star_in_order(tmp_path: Path):
    map_path, star_path = _write_inputs(tmp_path)
    out = tmp_path / "proj.mrcs"
    proc = _run(str(map_path), "--star", str(star_path), "--ctf", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (6, 32, 32)
        assert float(mrc.voxel_size.x) == pytest.approx(2.0)
    written = read_particles(tmp_path / "proj.star")
    original = read_particles(star_path)
    torch.testing.assert_close(written.euler_deg, original.euler_deg)
    torch.testing.assert_close(written.shift_angstrom, original.shift_angstrom)
    assert written.image_names[0].startswith("000001@") and written.image_index.tolist() == list(
        range(6)
    )


def test_pixel_size_disagreement_is_refused_and_nothing_written(tmp_path: Path):
    map_path, star_path = _write_inputs(tmp_path, map_pixel=2.0, star_pixel=2.1)
    out = tmp_path / "proj.mrcs"
    proc = _run(str(map_path), "--star", str(star_path), "--out", str(out))
    assert proc.returncode != 0
    assert "pixel" in proc.stderr.lower() and "map.mrc" in proc.stderr
    assert not out.exists() and not (tmp_path / "proj.star").exists()


def test_missing_angles_are_named(tmp_path: Path):
    map_path, star_path = _write_inputs(tmp_path)
    tables = starfile.read(star_path)
    tables["particles"] = tables["particles"].drop(columns=["rlnAngleTilt"])
    starfile.write(tables, star_path, overwrite=True)
    proc = _run(str(map_path), "--star", str(star_path), "--out", str(tmp_path / "p.mrcs"))
    assert proc.returncode != 0
    assert "rlnAngleTilt" in proc.stderr or "Euler" in proc.stderr
    assert not (tmp_path / "p.mrcs").exists()


def test_nan_map_is_refused(tmp_path: Path):
    map_path, star_path = _write_inputs(tmp_path)
    with mrcfile.open(map_path, mode="r+") as mrc:
        mrc.data[3, 4, 5] = np.nan
    proc = _run(str(map_path), "--star", str(star_path), "--out", str(tmp_path / "p.mrcs"))
    assert proc.returncode != 0
    assert "map.mrc" in proc.stderr and ("NaN" in proc.stderr or "finite" in proc.stderr)
    assert not (tmp_path / "p.mrcs").exists()


def test_output_never_overwrites_an_input(tmp_path: Path):
    map_path, star_path = _write_inputs(tmp_path)
    before = map_path.read_bytes()
    proc = _run(str(map_path), "--star", str(star_path), "--out", str(map_path), "--overwrite")
    assert proc.returncode != 0
    assert map_path.read_bytes() == before
