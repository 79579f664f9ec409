"""In-plane rotations, masks and scores used by 2D classification."""

from __future__ import annotations

import torch

from cryoglass.classify import adjusted_rand_index, inplane_error_deg, rotate_images, wrap_angle_deg
from cryoglass.classify.geometry2d import full_from_half_even, half_from_full, shift_grid_mask
from cryoglass.data import model_map
from cryoglass.projection import project


def test_rotation_by_90_degrees_is_exact_and_follows_the_convention():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(9, 9, generator=g)
    out = rotate_images(image, torch.tensor(90.0), mode="bilinear")
    # out(x, y) = image(R(x, y)) with R(x, y) = (−y, x): out[y, x] = image[x, −y] about N//2
    c = 4
    expected = torch.empty_like(image)
    for y in range(9):
        for x in range(9):
            xs, ys = -(y - c) + c, (x - c) + c
            expected[y, x] = image[ys, xs]
    assert torch.allclose(out, expected, atol=1e-5)


def test_rotating_a_psi_zero_projection_gives_relion_psi():
    """project(rot, tilt, psi) = rotate_images(project(rot, tilt, 0), psi) (RELION's 2D psi)."""
    volume = model_map(box=32, pixel_size_angstrom=5.0, sigma_angstrom=5.0)[0]
    euler = torch.tensor([[30.0, 70.0, 0.0], [30.0, 70.0, 40.0], [30.0, 70.0, -40.0]])
    p = project(volume, euler_deg=euler, pixel_size_angstrom=5.0)
    turned = rotate_images(p[0], torch.tensor([40.0, -40.0]))
    for k in range(2):
        a, b = turned[k] - turned[k].mean(), p[k + 1] - p[k + 1].mean()
        assert float((a * b).sum() / (a.norm() * b.norm())) > 0.99


def test_half_full_round_trip_of_an_even_function():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 10, 10, generator=g)
    power = torch.fft.rfft2(x).abs() ** 2  # |F|² of a real image is even
    full = full_from_half_even(power, 10)
    reference = torch.fft.fftshift(torch.fft.fft2(x).abs() ** 2, dim=(-2, -1))
    assert torch.allclose(full, reference, rtol=1e-4)
    assert torch.allclose(half_from_full(full), power)


def test_shift_grid_mask_counts_the_disc():
    mask = shift_grid_mask(32, range_px=2.0, step_px=1)
    assert int(mask.sum()) == 13
    assert bool(mask[0, 0]) and bool(mask[0, 30]) and not bool(mask[2, 2])


def test_adjusted_rand_index_known_values():
    assert adjusted_rand_index(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 0, 0])) == 1.0
    # value quoted in the scikit-learn documentation for this pair
    value = adjusted_rand_index(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 2]))
    assert abs(value - 0.5714285714285715) < 1e-12
    assert adjusted_rand_index(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 1, 2, 3])) == 0.0


def test_inplane_error_removes_one_offset_per_class():
    true = torch.tensor([10.0, 100.0, -170.0, 50.0])
    labels = torch.tensor([0, 0, 0, 1])
    found = wrap_angle_deg(true + torch.tensor([30.0, 30.0, 30.0, -80.0]))
    assert torch.allclose(
        inplane_error_deg(found, true, labels), torch.zeros(4, dtype=torch.float64), atol=1e-9
    )
    found2 = found.clone()
    found2[0] += 20.0
    assert float(inplane_error_deg(found2, true, labels)[0]) > 10.0
