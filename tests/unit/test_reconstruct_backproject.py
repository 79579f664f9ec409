"""Back-projection is the exact adjoint of the Fourier-slice projector."""

from __future__ import annotations

import pytest
import torch

from cryoglass.ctf import CTFParams
from cryoglass.geometry import random_rotations
from cryoglass.projection import VolumeFourier, extract_slices, project
from cryoglass.reconstruct import backproject, expand_rotations, insert_slices, table_shape


def _random_table(n: int, pad: int, generator: torch.Generator) -> torch.Tensor:
    """A guarded table with random complex entries and zero guards."""
    m = pad * n
    table = torch.zeros(table_shape(n, pad=pad), dtype=torch.complex128)
    table[1 : 1 + m, 1 : 1 + m, : m // 2 + 1] = torch.randn(
        m, m, m // 2 + 1, dtype=torch.complex128, generator=generator
    )
    return table


@pytest.mark.parametrize("n", [16, 15])
@pytest.mark.parametrize("pad", [1, 2])
@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_insert_slices_is_adjoint_of_extract_slices(n, pad, interpolation, generator):
    rotations = random_rotations(6, generator=generator, dtype=torch.float64)
    table = _random_table(n, pad, generator)
    prepared = VolumeFourier(table=table, size=n, pad=pad, interpolation=interpolation)
    slices = torch.randn(6, n, n // 2 + 1, dtype=torch.complex128, generator=generator)
    lhs = (extract_slices(prepared, rotations).conj() * slices).real.sum()
    inserted = insert_slices(slices, rotations, pad=pad, interpolation=interpolation)
    rhs = (table.conj() * inserted).real.sum()
    assert abs(float(lhs - rhs)) <= 1e-10 * abs(float(lhs))


@pytest.mark.parametrize("pad", [1, 2])
@pytest.mark.parametrize("with_ctf", [False, True])
@pytest.mark.parametrize("with_shift", [False, True])
def test_backproject_is_adjoint_of_project(pad, with_ctf, with_shift, generator):
    n, count, pixel = 16, 9, 1.7
    rotations = random_rotations(count, generator=generator, dtype=torch.float64)
    volume = torch.randn(n, n, n, dtype=torch.float64, generator=generator)
    images = torch.randn(count, n, n, dtype=torch.float64, generator=generator)
    shift = (
        torch.randn(count, 2, dtype=torch.float64, generator=generator) * 4 if with_shift else None
    )
    ctf = None
    if with_ctf:
        du = 5000 + 20000 * torch.rand(count, dtype=torch.float64, generator=generator)
        ctf = CTFParams(
            defocus_u_angstrom=du, defocus_v_angstrom=du - 300.0, astigmatism_angle_deg=30.0
        )
    options = dict(shift_angstrom=shift, ctf=ctf, pixel_size_angstrom=pixel, pad=pad)
    forward = (project(volume, rotations, **options) * images).sum()
    adjoint = (volume * backproject(images, rotations, batch_size=4, **options)).sum()
    assert abs(float(forward - adjoint)) <= 1e-5 * abs(float(forward))


def test_backproject_symmetry_is_adjoint_of_projecting_all_equivalent_poses(generator):
    n = 12
    rotations = random_rotations(3, generator=generator, dtype=torch.float64)
    volume = torch.randn(n, n, n, dtype=torch.float64, generator=generator)
    images = torch.randn(3, n, n, dtype=torch.float64, generator=generator)
    expanded = expand_rotations(rotations, "D2")  # (3, 4, 3, 3)
    forward = (project(volume, expanded) * images[:, None]).sum()
    adjoint = (volume * backproject(images, rotations, symmetry="D2")).sum()
    assert abs(float(forward - adjoint)) <= 1e-10 * abs(float(forward))


def test_backproject_accepts_euler_angles_and_matches_matrices(generator):
    from cryoglass.geometry import euler_to_matrix

    euler = torch.tensor([[10.0, 40.0, -70.0], [100.0, 120.0, 5.0]], dtype=torch.float64)
    images = torch.randn(2, 10, 10, dtype=torch.float64, generator=generator)
    a = backproject(images, euler_deg=euler)
    b = backproject(images, euler_to_matrix(euler))
    torch.testing.assert_close(a, b)


def test_expand_rotations_first_is_input_and_equivalent_poses_project_equally(generator):
    from cryoglass.geometry import symmetry_matrices

    rotations = random_rotations(2, generator=generator, dtype=torch.float64)
    expanded = expand_rotations(rotations, "C4")
    torch.testing.assert_close(expanded[:, 0], rotations)
    # a C4-symmetric map gives the same projection at A and A·L
    ops = symmetry_matrices("C4", dtype=torch.float64)
    centres = torch.tensor([[3.0, 1.0, 2.0], [-2.0, 0.5, -1.0]], dtype=torch.float64)
    from cryoglass.simulate.phantom import gaussian_map

    all_centres = torch.einsum("gij,mj->gmi", ops, centres).reshape(-1, 3)
    volume = gaussian_map(
        all_centres, shape=(16, 16, 16), pixel_size_angstrom=1.0, sigma_angstrom=1.5
    )
    images = project(volume, expanded)
    # equal up to the interpolation at the edge of the Fourier sphere (|k| = N//2)
    difference = (images[:, 1:] - images[:, :1]).abs().max()
    assert float(difference) < 2e-3 * float(images.abs().max())
    other = project(volume, random_rotations(2, generator=generator, dtype=torch.float64))
    assert float((other - images[:, 0]).abs().max()) > 0.1 * float(images.abs().max())


def test_insert_slices_rejects_bad_shapes():
    rotations = torch.eye(3)[None]
    with pytest.raises(ValueError, match="complex"):
        insert_slices(torch.zeros(1, 8, 5), rotations)
    with pytest.raises(ValueError, match="do not match"):
        insert_slices(torch.zeros(2, 8, 5, dtype=torch.complex64), rotations)
    with pytest.raises(ValueError, match="interpolation"):
        insert_slices(torch.zeros(1, 8, 5, dtype=torch.complex64), rotations, interpolation="cubic")


def test_backproject_rejects_bad_input():
    images = torch.zeros(2, 8, 8)
    with pytest.raises(ValueError, match="exactly one"):
        backproject(images)
    with pytest.raises(ValueError, match="2 images but 1 rotations"):
        backproject(images, torch.eye(3)[None])
    with pytest.raises(ValueError, match=r"\(B, N, N\)"):
        backproject(torch.zeros(2, 8, 6), torch.eye(3).expand(2, 3, 3))
