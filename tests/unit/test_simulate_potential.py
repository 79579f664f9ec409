"""Electrostatic potential maps and projected potentials from atoms."""

import math

import pytest
import torch

from cryoglass.constants import ELECTRON_MASS_KG, ELEMENTARY_CHARGE_C, PLANCK_J_S
from cryoglass.geometry import euler_to_matrix
from cryoglass.simulate.potential import (
    POTENTIAL_CONSTANT_VOLT_ANGSTROM2,
    model_center_angstrom,
    potential_map,
    projected_potential,
    required_box_size,
)
from cryoglass.simulate.scattering import scattering_parameters


def _atoms(generator, n=40, spread=4.0):
    xyz = torch.randn(n, 3, generator=generator, dtype=torch.float64) * spread
    elements = ["C", "N", "O", "S", "H"] * (n // 5)
    return xyz, elements


def test_prefactor_is_h2_over_2pi_m0_e():
    # 47.878 V Å² (Kirkland 2020, App. C); recomputed here in SI then converted.
    value = PLANCK_J_S**2 / (2 * math.pi * ELECTRON_MASS_KG * ELEMENTARY_CHARGE_C) / 1e-20
    assert POTENTIAL_CONSTANT_VOLT_ANGSTROM2 == pytest.approx(value, rel=1e-12)
    assert POTENTIAL_CONSTANT_VOLT_ANGSTROM2 == pytest.approx(47.878, abs=1e-3)


@pytest.mark.parametrize("element,bfactor", [("C", 0.0), ("O", 30.0), ("Fe", 80.0)])
def test_one_atom_integrates_to_c_times_fe0(element, bfactor):
    xyz = torch.tensor([[0.3, -0.2, 0.1]], dtype=torch.float64)
    v = potential_map(
        xyz,
        [element],
        shape=(40, 40, 40),
        pixel_size_angstrom=0.5,
        bfactors_a2=bfactor,
        origin_angstrom=torch.zeros(3, dtype=torch.float64),
    )
    a, _ = scattering_parameters([element])
    expected = POTENTIAL_CONSTANT_VOLT_ANGSTROM2 * float(a.sum())
    assert float(v.sum()) * 0.5**3 == pytest.approx(expected, rel=2e-4)


def test_point_sampling_matches_formula():
    xyz = torch.zeros(1, 3, dtype=torch.float64)
    bfac = 40.0
    v = potential_map(
        xyz,
        ["N"],
        shape=(24, 24, 24),
        pixel_size_angstrom=0.5,
        bfactors_a2=bfac,
        sampling="point",
        cutoff_sigmas=6.0,
    )
    a, b = scattering_parameters(["N"])
    r2 = torch.tensor([0.0, 0.25, 1.0, 4.0], dtype=torch.float64)  # voxels (12+k, 12, 12), k=0..
    width = b[0] + bfac
    expected = POTENTIAL_CONSTANT_VOLT_ANGSTROM2 * (
        a[0] * (4 * math.pi / width) ** 1.5 * torch.exp(-4 * math.pi**2 * r2[:, None] / width)
    ).sum(dim=1)
    got = v[12, 12, torch.tensor([12, 13, 14, 16])]
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


def test_map_summed_along_z_equals_direct_projection(generator):
    xyz, elements = _atoms(generator)
    bfactors = torch.rand(len(elements), generator=generator, dtype=torch.float64) * 40 + 10
    v = potential_map(
        xyz, elements, shape=(48, 48, 48), pixel_size_angstrom=1.0, bfactors_a2=bfactors
    )
    p = projected_potential(
        xyz, elements, image_size=48, pixel_size_angstrom=1.0, bfactors_a2=bfactors
    )
    torch.testing.assert_close(v.sum(dim=0), p[0], rtol=1e-4, atol=1e-4 * float(p.max()))


def test_chunking_and_dtype(generator):
    xyz, elements = _atoms(generator)
    full = potential_map(
        xyz, elements, shape=(40, 40, 40), pixel_size_angstrom=1.0, bfactors_a2=20.0
    )
    small = potential_map(
        xyz, elements, shape=(40, 40, 40), pixel_size_angstrom=1.0, bfactors_a2=20.0, chunk_size=7
    )
    torch.testing.assert_close(full, small)
    single = potential_map(
        xyz.float(), elements, shape=(40, 40, 40), pixel_size_angstrom=1.0, bfactors_a2=20.0
    )
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), full, rtol=1e-4, atol=1e-4)


def test_origin_and_centre_of_mass(generator):
    xyz, elements = _atoms(generator)
    com = model_center_angstrom(xyz, elements)
    default = potential_map(
        xyz, elements, shape=(40, 40, 40), pixel_size_angstrom=1.0, bfactors_a2=20.0
    )
    given = potential_map(
        xyz,
        elements,
        shape=(40, 40, 40),
        pixel_size_angstrom=1.0,
        bfactors_a2=20.0,
        origin_angstrom=com,
    )
    torch.testing.assert_close(default, given)
    # moving the model by whole voxels moves the map by the same voxels
    shifted = potential_map(
        xyz + torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64),
        elements,
        shape=(40, 40, 40),
        pixel_size_angstrom=1.0,
        bfactors_a2=20.0,
        origin_angstrom=com,
    )
    torch.testing.assert_close(
        shifted, torch.roll(default, shifts=(-1, 2), dims=(0, 2)), rtol=1e-6, atol=1e-6
    )


def test_rotated_projection_equals_projection_of_rotated_atoms(generator):
    xyz, elements = _atoms(generator)
    euler = torch.tensor([[30.0, 70.0, -20.0]], dtype=torch.float64)
    a = euler_to_matrix(euler)[0]
    center = model_center_angstrom(xyz, elements)
    p_pose = projected_potential(
        xyz, elements, image_size=40, pixel_size_angstrom=1.0, euler_deg=euler, bfactors_a2=15.0
    )
    rotated = (xyz - center) @ a.T
    p_rot = projected_potential(
        rotated,
        elements,
        image_size=40,
        pixel_size_angstrom=1.0,
        bfactors_a2=15.0,
        origin_angstrom=torch.zeros(3, dtype=torch.float64),
    )
    torch.testing.assert_close(p_pose, p_rot)


def test_shift_has_relion_origin_meaning(generator):
    xyz, elements = _atoms(generator)
    centred = projected_potential(
        xyz, elements, image_size=40, pixel_size_angstrom=1.0, bfactors_a2=20.0
    )
    origin = torch.tensor([[3.0, -2.0]], dtype=torch.float64)
    shifted = projected_potential(
        xyz,
        elements,
        image_size=40,
        pixel_size_angstrom=1.0,
        bfactors_a2=20.0,
        shift_angstrom=origin,
    )
    # shifted(r) = centred(r + origin): content moves by -origin
    expected = torch.roll(centred, shifts=(2, -3), dims=(1, 2))
    torch.testing.assert_close(shifted[:, 5:-5, 5:-5], expected[:, 5:-5, 5:-5])


def test_batched_poses_and_pixel_sum(generator):
    xyz, elements = _atoms(generator, spread=3.0)
    rotations = euler_to_matrix(torch.rand(3, 3, generator=generator, dtype=torch.float64) * 180)
    p = projected_potential(
        xyz,
        elements,
        image_size=80,
        pixel_size_angstrom=0.5,
        rotation_matrices=rotations,
        bfactors_a2=20.0,
    )
    a, _ = scattering_parameters(elements)
    total = POTENTIAL_CONSTANT_VOLT_ANGSTROM2 * float(a.sum())
    torch.testing.assert_close(
        p.sum(dim=(1, 2)) * 0.25, torch.full((3,), total, dtype=torch.float64), rtol=1e-3, atol=0.0
    )


def test_bad_inputs(generator):
    xyz, elements = _atoms(generator, spread=8.0)
    with pytest.raises(ValueError, match=r"a box of at least \(\d+, \d+, \d+\) voxels"):
        potential_map(xyz, elements, shape=(16, 16, 16), pixel_size_angstrom=1.0)
    clipped = potential_map(
        xyz, elements, shape=(16, 16, 16), pixel_size_angstrom=1.0, outside="ignore"
    )
    assert clipped.shape == (16, 16, 16) and float(clipped.sum()) > 0
    with pytest.raises(ValueError, match="no atoms"):
        potential_map(torch.zeros(0, 3), [], shape=(8, 8, 8), pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="elements for"):
        potential_map(xyz, elements[:-1], shape=(64, 64, 64), pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="sampling"):
        potential_map(xyz, elements, shape=(64, 64, 64), pixel_size_angstrom=1.0, sampling="x")
    with pytest.raises(ValueError, match="Xx"):
        potential_map(xyz[:1], ["Xx"], shape=(64, 64, 64), pixel_size_angstrom=1.0)
    n = required_box_size(xyz, pixel_size_angstrom=1.0, margin_angstrom=0.0)
    extent = (xyz - xyz.mean(dim=0)).abs().max().item()
    assert n % 2 == 0 and n / 2 >= extent > n / 2 - 1
