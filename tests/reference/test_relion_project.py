"""Agreement with RELION 3.1's relion_project, through the library and the `cryoglass project`
command, and with RELION projections stored in the shared data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch
from conftest import run_relion

from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.projection import project

N = 64
PIXEL = 2.0


def _ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of each image pair (B,)."""
    a = a - a.mean(axis=(-2, -1), keepdims=True)
    b = b - b.mean(axis=(-2, -1), keepdims=True)
    return (a * b).sum((-2, -1)) / np.sqrt((a * a).sum((-2, -1)) * (b * b).sum((-2, -1)))


def _make_inputs(folder: Path, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A 64³ map of anisotropic Gaussian blobs (2 Å) and a RELION 3.1 STAR file of poses/CTFs."""
    rng = np.random.default_rng(seed)
    axis = np.arange(N) - N // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    r = np.stack([x, y, z], -1).astype(np.float64)
    volume = np.zeros((N, N, N))
    for _ in range(5):
        centre = rng.uniform(-N / 6, N / 6, 3)
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        inverse_cov = q @ np.diag(1 / rng.uniform(1.5, 4.0, 3) ** 2) @ q.T
        d = r - centre
        volume += rng.uniform(0.5, 1.5) * np.exp(
            -0.5 * np.einsum("...i,ij,...j->...", d, inverse_cov, d)
        )
    with mrcfile.new(folder / "map.mrc") as mrc:
        mrc.set_data(volume.astype(np.float32))
        mrc.voxel_size = PIXEL
    p = {
        "rot": rng.uniform(-180, 180, count),
        "tilt": np.degrees(np.arccos(rng.uniform(-1, 1, count))),
        "psi": rng.uniform(-180, 180, count),
        "ox": rng.uniform(-10, 10, count),
        "oy": rng.uniform(-10, 10, count),
        "du": rng.uniform(5000, 25000, count),
    }
    p["dv"] = p["du"] - rng.uniform(0, 2000, count)
    p["angle"] = rng.uniform(-180, 180, count)
    optics = (
        "data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n_rlnImagePixelSize #3\n"
        "_rlnImageSize #4\n_rlnImageDimensionality #5\n_rlnVoltage #6\n"
        "_rlnSphericalAberration #7\n_rlnAmplitudeContrast #8\n"
        f"1 opticsGroup1 {PIXEL:.6f} {N} 2 300.0 2.7 0.1\n\n"
    )
    header = "data_particles\n\nloop_\n" + "".join(
        f"_{name} #{i + 1}\n"
        for i, name in enumerate(
            "rlnImageName rlnAngleRot rlnAngleTilt rlnAnglePsi rlnOriginXAngst rlnOriginYAngst "
            "rlnDefocusU rlnDefocusV rlnDefocusAngle rlnOpticsGroup".split()
        )
    )
    rows = "".join(
        f"{i + 1:06d}@none.mrcs {p['rot'][i]:.6f} {p['tilt'][i]:.6f} {p['psi'][i]:.6f} "
        f"{p['ox'][i]:.6f} {p['oy'][i]:.6f} {p['du'][i]:.6f} {p['dv'][i]:.6f} "
        f"{p['angle'][i]:.6f} 1\n"
        for i in range(count)
    )
    (folder / "in.star").write_text(
        f"\n# version 30001\n\n{optics}\n# version 30001\n\n{header}{rows}"
    )
    return {"volume": volume, **p}


def _cryoglass(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cryoglass", "project", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.relion
@pytest.mark.parametrize("with_ctf", [False, True])
def test_cli_agrees_with_relion_project(tmp_path, with_ctf):
    _make_inputs(tmp_path, count=40)
    flag = ["--ctf"] if with_ctf else []
    run_relion(
        [
            "relion_project",
            "--i",
            "map.mrc",
            "--ang",
            "in.star",
            "--o",
            "rel",
            "--angpix",
            str(PIXEL),
            *flag,
        ],
        cwd=tmp_path,
    )
    _cryoglass(["map.mrc", "--star", "in.star", "--out", "ours.mrcs", *flag], cwd=tmp_path)
    relion = mrcfile.read(tmp_path / "rel.mrcs").astype(np.float64)
    ours = mrcfile.read(tmp_path / "ours.mrcs").astype(np.float64)
    assert ours.shape == relion.shape == (40, N, N)
    assert _ncc(ours, relion).min() >= 0.995
    # same algorithm, same scale: agreement to single precision, not just correlation
    assert np.linalg.norm(ours - relion) / np.linalg.norm(relion) < 1e-4
    out_star = starfile.read(tmp_path / "ours.star", always_dict=True)["particles"]
    assert list(out_star["rlnImageName"]) == [f"{k:06d}@ours.mrcs" for k in range(1, 41)]
    np.testing.assert_allclose(
        out_star["rlnAngleRot"],
        starfile.read(tmp_path / "in.star")["particles"]["rlnAngleRot"],
        atol=1e-5,
    )


@pytest.mark.relion
def test_library_agrees_with_relion_and_wrong_conventions_do_not(tmp_path):
    p = _make_inputs(tmp_path, count=12, seed=1)
    run_relion(
        [
            "relion_project",
            "--i",
            "map.mrc",
            "--ang",
            "in.star",
            "--o",
            "rel",
            "--angpix",
            str(PIXEL),
        ],
        cwd=tmp_path,
    )
    relion = mrcfile.read(tmp_path / "rel.mrcs").astype(np.float64)
    volume = torch.tensor(mrcfile.read(tmp_path / "map.mrc"), dtype=torch.float64)
    euler = torch.tensor(np.stack([p["rot"], p["tilt"], p["psi"]], -1))
    shift = torch.tensor(np.stack([p["ox"], p["oy"]], -1))
    rotations = euler_to_matrix(euler)

    def images(rot, sh):
        return project(volume, rot, shift_angstrom=sh, pixel_size_angstrom=PIXEL).numpy()

    assert _ncc(images(rotations, shift), relion).min() >= 0.995
    # the test can fail: wrong conventions break the agreement on most images
    # (a pose with A ≈ Aᵀ, or a tiny shift, can still agree by accident)
    assert (_ncc(images(rotations.transpose(-1, -2), shift), relion) < 0.995).mean() >= 0.75
    assert (_ncc(images(rotations, -shift), relion) < 0.995).mean() >= 0.75


def _shared_projections(shared_data: Path, name: str):
    folder = shared_data / "projections_relion_70S"
    table = starfile.read(folder / f"{name}.star", always_dict=True)["particles"]
    euler = torch.tensor(table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy())
    columns = (
        ["rlnOriginX", "rlnOriginY"]
        if "rlnOriginX" in table
        else ["rlnOriginXAngst", "rlnOriginYAngst"]
    )
    shift = torch.tensor(table[columns].to_numpy(np.float64))  # pixel size 1 Å
    images = mrcfile.read(folder / f"{name}.mrcs").astype(np.float64)
    volume = torch.tensor(
        mrcfile.read(folder / "clean70SRibosome_vol_65p.mrc"), dtype=torch.float64
    )
    return volume, euler, shift, images


def _fourier_crop(volume: torch.Tensor, size: int) -> torch.Tensor:
    from cryoglass.fourier import fft3_centered, ifft3_centered

    n = volume.shape[-1]
    lo = n // 2 - size // 2
    spectrum = fft3_centered(volume)[lo : lo + size, lo : lo + size, lo : lo + size]
    return ifft3_centered(spectrum).real * (size / n) ** 3


@pytest.mark.parametrize("name", ["rln_proj_64_centered", "rln_proj_64_shifted"])
def test_even_box_matches_stored_relion_projections(shared_data, name):
    volume, euler, shift, relion = _shared_projections(shared_data, name)
    ours = project(_fourier_crop(volume, 64), euler_deg=euler, shift_angstrom=shift).numpy()
    assert _ncc(ours, relion).min() > 0.999


@pytest.mark.parametrize("name", ["rln_proj_65", "rln_proj_65_centered", "rln_proj_65_shifted"])
def test_odd_box_relion_projections_are_ours_moved_by_one_pixel(shared_data, name):
    """RELION 3.1's odd-box projections sit one pixel further along +x and +y than the N//2
    origin convention puts them (ASPIRE reports the same); ours keep the convention."""
    volume, euler, shift, relion = _shared_projections(shared_data, name)
    ours = project(volume, euler_deg=euler, shift_angstrom=shift).numpy()
    assert _ncc(np.roll(ours, (1, 1), axis=(-2, -1)), relion).min() > 0.999
    assert _ncc(ours, relion).max() < 0.95
