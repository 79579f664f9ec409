"""Soft spheres, relion_reconstruct's sphere, threshold + dilate + cosine masks, Otsu."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from cryoglass.validate import (
    auto_mask,
    otsu_threshold,
    relion_reconstruct_sphere_mask,
    soft_mask_outside_sphere,
    soft_sphere_mask,
    squared_distance_to_mask,
    threshold_mask,
)


def _radius(shape):
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    return np.sqrt(sum(g.astype(float) ** 2 for g in grids))


def test_soft_sphere_profile():
    mask = soft_sphere_mask((21, 21, 21), radius_px=5.0, edge_width_px=4.0, dtype=torch.float64)
    r = _radius((21, 21, 21))
    expected = np.where(r <= 5, 1.0, np.where(r >= 9, 0.0, 0.5 * (1 + np.cos(np.pi * (r - 5) / 4))))
    np.testing.assert_allclose(mask.numpy(), expected, atol=1e-12)
    assert float(mask[10, 10, 10]) == 1.0 and float(mask[10, 10, 17]) == 0.5  # r = 7


def test_relion_reconstruct_sphere_and_background_blend(generator):
    shape = (16, 16, 16)
    mask = relion_reconstruct_sphere_mask(shape, dtype=torch.float64)
    torch.testing.assert_close(
        mask, soft_sphere_mask(shape, radius_px=8.0, edge_width_px=3.0, dtype=torch.float64)
    )
    constant = torch.full(shape, 2.5, dtype=torch.float64)
    torch.testing.assert_close(soft_mask_outside_sphere(constant), constant)
    x = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    y = soft_mask_outside_sphere(x)
    inside = mask == 1
    torch.testing.assert_close(y[:, inside], x[:, inside])
    outside = mask == 0
    weights = 1 - mask
    background = (x * weights).sum(dim=(-3, -2, -1)) / weights.sum()
    torch.testing.assert_close(y[:, outside], background[:, None].expand(2, int(outside.sum())))


def test_squared_distance_matches_scipy_edt(generator):
    binary = torch.rand(20, 22, 24, generator=generator) > 0.995
    d2 = squared_distance_to_mask(binary, max_distance_px=5.0)
    edt = ndimage.distance_transform_edt(~binary.numpy()) ** 2
    within = edt <= 25  # inside the search cube the distance is exact
    np.testing.assert_allclose(d2.numpy()[within], edt[within], atol=1e-5)
    assert bool(torch.isinf(d2[torch.from_numpy(edt > 75)]).all())  # beyond the cube: inf


def test_threshold_mask_grows_and_softens_a_point():
    volume = torch.zeros(25, 25, 25, dtype=torch.float64)
    volume[12, 12, 12] = 1.0
    mask = threshold_mask(volume, threshold=0.5, extend_px=3.0, soft_edge_px=4.0)
    r = _radius((25, 25, 25))
    grown = r**2 < 9  # RELION: r² < extend²
    # distance from every voxel to the grown (discrete) ball
    dist = ndimage.distance_transform_edt(~grown)
    expected = np.where(grown, 1.0, np.where(dist < 4, 0.5 + 0.5 * np.cos(np.pi * dist / 4), 0.0))
    np.testing.assert_allclose(mask.numpy(), expected, atol=1e-6)
    hard = threshold_mask(volume, threshold=0.5, extend_px=0.0, soft_edge_px=0.0)
    assert float(hard.sum()) == 1.0


def test_otsu_separates_two_populations(generator):
    low = torch.randn(5000, generator=generator) * 0.3
    high = 4.0 + torch.randn(1000, generator=generator) * 0.3
    values = torch.cat([low, high]).reshape(10, 20, 30)
    t = float(otsu_threshold(values))
    assert 1.0 < t < 3.0
    batch = torch.stack([values, values + 10.0])
    torch.testing.assert_close(otsu_threshold(batch), torch.tensor([t, t + 10.0]))


def test_auto_mask_covers_the_object(generator):
    from cryoglass.simulate import gaussian_map

    centers = torch.randn(60, 3, generator=generator, dtype=torch.float64) * 6.0
    truth = gaussian_map(centers, shape=(40, 40, 40), pixel_size_angstrom=1.5, sigma_angstrom=2.0)
    noisy = truth + 0.05 * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    mask = auto_mask(noisy, pixel_size_angstrom=1.5)
    assert float(mask.min()) >= 0.0 and float(mask.max()) == 1.0
    strong = truth > 0.5 * truth.max()
    assert bool((mask[strong] == 1).all())  # every strong voxel inside
    assert float((mask > 0).double().mean()) < 0.5  # but not the whole box
    corner = mask[:5, :5, :5]
    assert float(corner.max()) == 0.0


def test_mask_bad_inputs():
    with pytest.raises(ValueError, match="must be >= 0"):
        soft_sphere_mask((8, 8, 8), radius_px=-1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        threshold_mask(torch.zeros(8, 8, 8), threshold=0.1, soft_edge_px=-2.0)
    assert math.isfinite(float(otsu_threshold(torch.zeros(4, 4, 4))))


# --------------------------------------------------------------- relion_mask_create (issue 20)
def test_negative_extend_shrinks_like_an_erosion_by_a_ball():
    from cryoglass.validate.masks import threshold_mask

    g = torch.Generator().manual_seed(4)
    volume = torch.rand(24, 26, 22, generator=g, dtype=torch.float64)
    volume = torch.nn.functional.avg_pool3d(volume[None, None], 5, 1, 2)[0, 0]
    seed = (volume >= 0.5).numpy()
    for extend in (1.0, 2.0, 2.5):
        got = threshold_mask(volume, threshold=0.5, extend_px=-extend, soft_edge_px=0.0)
        # RELION: a seed voxel leaves when a non-seed voxel inside the box is closer than |e|
        reach = int(np.ceil(extend))
        o = np.arange(-reach, reach + 1)
        ball = (o[:, None, None] ** 2 + o[None, :, None] ** 2 + o[None, None, :] ** 2) < extend**2
        outside = ~seed
        near = ndimage.binary_dilation(outside, structure=ball) & seed
        np.testing.assert_array_equal(got.numpy().astype(bool), seed & ~near)


def test_mask_from_map_rounds_the_lowpass_to_a_shell_and_finds_otsu():
    from cryoglass.fourier import lowpass
    from cryoglass.validate.masks import mask_from_map, relion_lowpass_resolution

    # 64 px at 1.5 Å: 96 Å box; 15 Å → shell 6.4 → 6 → 16 Å; 13 Å → 7.38 → 7 → 13.71 Å
    assert relion_lowpass_resolution(15.0, box=64, pixel_size_angstrom=1.5) == 16.0
    assert abs(relion_lowpass_resolution(13.0, box=64, pixel_size_angstrom=1.5) - 96 / 7) < 1e-12
    assert relion_lowpass_resolution(19.2, box=64, pixel_size_angstrom=1.5) == 96 / 5  # half up
    g = torch.Generator().manual_seed(5)
    centers = torch.randn(30, 3, generator=g, dtype=torch.float64) * 8.0
    from cryoglass.simulate import gaussian_map

    volume = gaussian_map(centers, shape=(32, 32, 32), pixel_size_angstrom=1.5, sigma_angstrom=2.0)
    mask, t = mask_from_map(
        volume,
        threshold=None,
        extend_px=2.0,
        soft_edge_px=3.0,
        lowpass_angstrom=8.0,
        pixel_size_angstrom=1.5,
    )
    filtered = lowpass(volume, ndim=3, resolution_angstrom=48 / 6, pixel_size_angstrom=1.5)
    assert t == pytest.approx(float(otsu_threshold(filtered)))
    expected = threshold_mask(filtered, threshold=t, extend_px=2.0, soft_edge_px=3.0)
    torch.testing.assert_close(mask, expected)
    assert float(mask.min()) >= 0.0 and float(mask.max()) == 1.0
    with pytest.raises(ValueError, match="cubic"):
        mask_from_map(
            torch.zeros(8, 8, 10), threshold=0.1, lowpass_angstrom=5.0, pixel_size_angstrom=1.0
        )
    with pytest.raises(ValueError, match="pixel_size_angstrom"):
        mask_from_map(torch.zeros(8, 8, 8), threshold=0.1, lowpass_angstrom=5.0)
