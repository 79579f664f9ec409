"""Map superposition over rotations, translations and hand (validate.align)."""

from __future__ import annotations

import pytest
import torch

from cryoglass.data import model_map
from cryoglass.geometry import euler_to_matrix, geodesic_distance_deg
from cryoglass.simulate.phantom import gaussian_map
from cryoglass.validate.align import align_maps, mirror_map, transform_map
from cryoglass.validate.fsc import fourier_shell_correlation

N, PIXEL = 32, 5.0


@pytest.fixture(scope="module")
def volume():
    """The TRPV1 model map (C4, chiral)."""
    return model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=5.0)[0].double()


@pytest.fixture(scope="module")
def blobs():
    """Twelve random Gaussian blobs: no symmetry, so the superposition is unique."""
    g = torch.Generator().manual_seed(7)
    centres = (torch.rand(12, 3, generator=g, dtype=torch.float64) - 0.5) * N * PIXEL / 2
    return gaussian_map(centres, shape=(N,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=6.0)


def test_mirror_is_an_involution_and_changes_the_hand(volume):
    twice = mirror_map(mirror_map(volume))
    assert torch.allclose(twice[..., 1:], volume[..., 1:])
    # no rotation turns TRPV1 into its mirror image: the best proper superposition is worse
    mirrored = mirror_map(volume)
    proper = align_maps(volume, mirrored, pixel_size_angstrom=PIXEL, hand=False, search_box=16)
    improper = align_maps(volume, mirrored, pixel_size_angstrom=PIXEL, search_box=16)
    assert improper.mirrored and improper.correlation > 0.99
    assert proper.correlation < improper.correlation - 0.05


@pytest.mark.parametrize(
    ("euler", "shift", "mirrored"),
    [
        ((30.0, 100.0, -70.0), (2.0, -1.5, 3.0), False),
        ((-120.0, 45.0, 10.0), (0.0, 2.5, -2.0), True),
    ],
)
def test_a_moved_map_is_put_back(blobs, euler, shift, mirrored):
    volume = blobs
    turn = euler_to_matrix(torch.tensor(euler, dtype=torch.float64))
    moved = transform_map(volume, turn, torch.tensor(shift, dtype=torch.float64), mirrored=mirrored)
    result = align_maps(volume, moved, pixel_size_angstrom=PIXEL, search_box=16)
    assert result.mirrored == mirrored
    assert result.correlation > 0.95  # after two trilinear rotations of 1.2-voxel blobs
    fsc = fourier_shell_correlation(volume, result.aligned.double())
    assert float(fsc[: N // 4].min()) > 0.9  # two trilinear rotations blur a little
    # composing the found transform with the applied one gives the identity (within 1°)
    if not mirrored:
        assert float(geodesic_distance_deg(result.rotation @ turn, torch.eye(3).double())) < 1.0
        # v' = rotate(v) then shift by s; undone by rotating with turnᵀ and shifting by −turnᵀ s
        expected = -(turn.T @ torch.tensor(shift, dtype=torch.float64))
        assert float((result.shift_px - expected).abs().max()) < 0.3


def test_maps_of_different_shape_are_refused(volume):
    with pytest.raises(ValueError, match="two cubic maps of one shape"):
        align_maps(volume, volume[:-1, :-1, :-1], pixel_size_angstrom=PIXEL)
