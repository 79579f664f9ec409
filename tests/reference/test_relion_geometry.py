"""Agreement of cryoglass.geometry with the RELION 3.1 binaries.

* Euler matrix: ``relion_project`` of a small asymmetric map equals our real-space projection
  P(x, y) = Σ_z V(Aᵀ (x, y, z)) with A = ``euler_to_matrix``; the transposed matrix does not.
* Symmetry groups: ``relion_refine --print_symmetry_ops`` prints the same set of matrices.
* Pose expansion: ``relion_particle_symmetry_expand`` gives the same set of poses (A·L) per
  particle; the left product L·A does not.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch
from conftest import run_relion

from cryoglass.geometry import euler_to_matrix, expand_poses, symmetry_matrices

pytestmark = pytest.mark.relion

BOX = 48  # even: for odd boxes RELION's projections are offset by one pixel (data README)


# --------------------------------------------------------------------------- helpers


def _blob_map(box: int) -> torch.Tensor:
    """A few off-centre Gaussian blobs of different sizes: no symmetry, [z, y, x] float64."""
    c = torch.arange(box, dtype=torch.float64) - box // 2
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    blobs = [
        ((6, -4, 3), 3.0, 1.0),
        ((-8, 5, 0), 2.5, 0.7),
        ((0, 9, -7), 2.0, 1.3),
        ((3, 3, 10), 3.5, 0.5),
    ]
    volume = torch.zeros_like(x)
    for (bx, by, bz), sigma, amplitude in blobs:
        r2 = (x - bx) ** 2 + (y - by) ** 2 + (z - bz) ** 2
        volume += amplitude * torch.exp(-r2 / (2 * sigma**2))
    return volume


def _project_real_space(volume: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """P[y, x] = Σ_z V(Mᵀ r), r = (x, y, z) - N//2, trilinear sampling, zero outside."""
    n = volume.shape[-1]
    c = torch.arange(n, dtype=volume.dtype) - n // 2
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    r = torch.stack([x, y, z], dim=-1)  # (z, y, x, 3) ordered (x, y, z)
    sample = r @ matrix  # row-vector form of Mᵀ r
    # align_corners=True: normalised -1 is index 0 and +1 is index n-1; grid order (x, y, z).
    grid = (sample + n // 2) * (2.0 / (n - 1)) - 1.0
    rotated = torch.nn.functional.grid_sample(
        volume[None, None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=True
    )[0, 0]
    return rotated.sum(dim=0)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))


def _write_particles(path: Path, euler_deg: np.ndarray) -> None:
    optics = (
        "data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnOpticsGroupName #2\n"
        "_rlnImagePixelSize #3\n_rlnImageSize #4\n_rlnImageDimensionality #5\n_rlnVoltage #6\n"
        "_rlnSphericalAberration #7\n_rlnAmplitudeContrast #8\n"
        "1 opticsGroup1 1.000000 48 2 300.000000 2.700000 0.100000\n\n"
    )
    header = (
        "data_particles\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\n_rlnAngleTilt #3\n"
        "_rlnAnglePsi #4\n_rlnOriginXAngst #5\n_rlnOriginYAngst #6\n_rlnOpticsGroup #7\n"
    )
    rows = "".join(
        f"{i + 1:06d}@particles.mrcs {rot:.6f} {tilt:.6f} {psi:.6f} 0.000000 0.000000 1\n"
        for i, (rot, tilt, psi) in enumerate(euler_deg)
    )
    path.write_text("\n# version 30001\n\n" + optics + "\n# version 30001\n\n" + header + rows)


def _parse_symmetry_ops(text: str) -> torch.Tensor:
    """Matrices printed by ``relion_refine --print_symmetry_ops`` (3 rows after each 'R(k)=')."""
    lines = text.splitlines()
    mats = [
        [[float(v) for v in lines[i + k].split()] for k in (1, 2, 3)]
        for i, line in enumerate(lines)
        if line.strip().startswith("R(")
    ]
    return torch.tensor(mats, dtype=torch.float64)


def _set_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest distance from an element of one set to the nearest element of the other."""
    d = (a[:, None] - b[None, :]).abs().amax(dim=(-1, -2))
    return float(torch.maximum(d.amin(dim=1).max(), d.amin(dim=0).max()))


# --------------------------------------------------------------------------- Euler matrix


def test_euler_matrix_matches_relion_project(tmp_path: Path) -> None:
    volume = _blob_map(BOX)
    with mrcfile.new(tmp_path / "map.mrc") as mrc:
        mrc.set_data(volume.numpy().astype(np.float32))
        mrc.voxel_size = 1.0
    # Generic angles; A^T has Euler angles (180 - psi, tilt, 180 - rot), far from each of these.
    angles = torch.tensor(
        [[30.0, 40.0, 50.0], [-120.0, 100.0, 10.0], [75.0, 130.0, -160.0], [170.0, 65.0, -35.0]],
        dtype=torch.float64,
    )
    for k, (rot, tilt, psi) in enumerate(angles.tolist()):
        out = f"proj{k}.mrc"
        args = ["relion_project", "--i", "map.mrc", "--o", out, "--angpix", "1"]
        run_relion([*args, "--rot", f"{rot}", "--tilt", f"{tilt}", "--psi", f"{psi}"], cwd=tmp_path)
        with mrcfile.open(tmp_path / out) as mrc:
            relion = torch.from_numpy(mrc.data.astype(np.float64)).reshape(BOX, BOX)
        matrix = euler_to_matrix(angles[k])
        ours = _project_real_space(volume, matrix)
        transposed = _project_real_space(volume, matrix.T)
        assert _correlation(ours, relion) > 0.99, (k, angles[k])
        assert _correlation(transposed, relion) < 0.9, (k, angles[k])


# --------------------------------------------------------------------------- symmetry groups

GROUPS = ["C3", "D2", "D7", "T", "O", "I", "I1", "I2", "I3", "I4"]


@pytest.mark.parametrize("group", GROUPS)
def test_symmetry_matrices_match_relion(group: str, tmp_path: Path) -> None:
    proc = run_relion(["relion_refine", "--sym", group, "--print_symmetry_ops"], cwd=tmp_path)
    relion = _parse_symmetry_ops(proc.stdout)
    ours = symmetry_matrices(group, dtype=torch.float64)
    assert relion.shape == ours.shape
    assert _set_distance(ours, relion) < 1e-4  # RELION prints about 5 significant digits


@pytest.mark.parametrize("group", ["C3", "D2", "D7", "T", "O", "I", "I1", "I3"])
def test_expand_poses_matches_relion_particle_symmetry_expand(group: str, tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    euler = torch.rand(3, 3, generator=gen, dtype=torch.float64) * torch.tensor(
        [360.0, 180.0, 360.0], dtype=torch.float64
    ) - torch.tensor([180.0, 0.0, 180.0], dtype=torch.float64)
    _write_particles(tmp_path / "in.star", euler.numpy())
    run_relion(
        ["relion_particle_symmetry_expand", "--i", "in.star", "--o", "out.star", "--sym", group],
        cwd=tmp_path,
    )
    particles = starfile.read(tmp_path / "out.star", always_dict=True)["particles"]
    n_sym = symmetry_matrices(group).shape[0]
    assert len(particles) == 3 * n_sym
    particles = particles.sort_values("rlnImageName", kind="stable")
    columns = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    relion = torch.tensor(particles[columns].to_numpy(), dtype=torch.float64).reshape(3, n_sym, 3)
    relion_matrices = euler_to_matrix(relion)
    ours = euler_to_matrix(expand_poses(euler, group))
    left = symmetry_matrices(group, dtype=torch.float64) @ euler_to_matrix(euler)[:, None]
    for i in range(3):
        assert _set_distance(ours[i], relion_matrices[i]) < 1e-4
    worst_left = max(_set_distance(left[i], relion_matrices[i]) for i in range(3))
    assert worst_left > 1e-2  # composing on the other side is distinguishable
