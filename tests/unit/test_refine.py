"""3D refinement: the E-step finds poses, posteriors normalise, halves stay independent."""

from __future__ import annotations

import pytest
import torch

from cryoglass.ctf import CTFParams
from cryoglass.geometry import symmetry_matrices
from cryoglass.projection import prepare_volume_fourier, project
from cryoglass.reconstruct import image_slice_values
from cryoglass.refine import (
    RefineSettings,
    Sampling,
    align_batch,
    global_rotations,
    initial_state,
    origin_grid,
    refine_iteration,
    rotation_lattice,
)
from cryoglass.refine.align import global_table
from cryoglass.refine.likelihood import band, posterior, significant
from cryoglass.simulate.phantom import gaussian_map

N = 32


@pytest.fixture(scope="module")
def volume():
    g = torch.Generator().manual_seed(4)
    centres = (torch.rand(10, 3, generator=g, dtype=torch.float64) - 0.5) * N / 2
    vol = gaussian_map(centres, shape=(N, N, N), pixel_size_angstrom=1.0, sigma_angstrom=1.5)
    return vol.float()


def _angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    trace = (a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.rad2deg(torch.acos(((trace - 1) / 2).clamp(-1, 1)))


def _data(images: torch.Tensor, max_shell: int):
    b = band(N, max_shell)
    x = image_slice_values(images)[:, b.index]
    return x, torch.ones_like(x.real), b


def test_noise_free_projections_at_grid_poses_are_found_exactly(volume):
    rotations, _ = global_rotations(1)
    pick = torch.randperm(rotations.shape[0], generator=torch.Generator().manual_seed(0))[:24]
    origins = torch.tensor([[2.0, 0.0], [0.0, -2.0], [-2.0, 2.0], [0.0, 0.0]]).repeat(6, 1)
    images = project(volume, rotations[pick], shift_angstrom=origins, pixel_size_angstrom=1.0)
    x, ctf, b = _data(images, 10)
    reference = prepare_volume_fourier(volume)
    sampling = Sampling(order=2, origin_range_px=4.0, origin_step_px=1.0)
    table = global_table(reference, rotations, b)
    sigma2 = torch.full((N // 2 + 1,), float(x.abs().square().mean()) * 1e-3)
    result = align_batch(x, ctf, sigma2, reference, b, sampling, table=table)
    assert float(_angles(result.rotations[:, 0], rotations[pick]).max()) < 1e-3
    assert torch.equal(result.origins_px[:, 0], origins)
    assert bool((result.max_probability > 0.99).all())  # sharp posterior without noise
    assert torch.allclose(result.weights.sum(1), torch.ones(24))


def test_local_search_recovers_perturbed_poses_under_noise(volume):
    g = torch.Generator().manual_seed(1)
    rotations, _ = global_rotations(2)
    true = rotations[torch.randperm(rotations.shape[0], generator=g)[:40]]
    images = project(volume, true, pixel_size_angstrom=1.0)
    images = images + 0.5 * images.std() * torch.randn(images.shape, generator=g)
    # start 5° away (two lattice steps of 3.75°/… around the truth) and 1 px off
    start = true @ rotation_lattice(3.75, radius_steps=1.0)[3]
    x, ctf, b = _data(images, 12)
    sigma2 = torch.full((N // 2 + 1,), float((0.5 * images.std()) ** 2 * N * N))
    sampling = Sampling(order=4, local=True, origin_range_px=2.0, origin_step_px=1.0)
    result = align_batch(
        x,
        ctf,
        sigma2,
        prepare_volume_fourier(volume),
        b,
        sampling,
        previous_rotations=start,
        previous_origins_px=torch.ones(40, 2),
    )
    assert float(_angles(result.rotations[:, 0], true).median()) < 1.0
    assert float(result.origins_px[:, 0].abs().max()) == 0.0


def test_posterior_and_significant_poses_normalise():
    logits = torch.randn(5, 300, generator=torch.Generator().manual_seed(2)) * 4
    prob, log_norm = posterior(logits)
    assert torch.allclose(prob.sum(1), torch.ones(5))
    assert torch.allclose(log_norm, torch.logsumexp(logits.double(), dim=1))
    index, weights, count = significant(prob, mass=0.9, keep=8)
    assert torch.allclose(weights.sum(1), torch.ones(5))
    assert bool((weights[:, 0] >= weights[:, 1]).all())
    held = torch.gather(prob, 1, index[:, :1]).squeeze(1)
    assert bool((held == prob.max(1).values).all())
    assert bool((count >= 1).all()) and bool((count <= 300).all())
    sharp = torch.zeros(1, 10)
    sharp[0, 3] = 50.0
    _, w, c = significant(posterior(sharp)[0], mass=0.999, keep=4)
    assert int(c) == 1 and w[0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_pose_sets_have_the_documented_sizes():
    assert global_rotations(2)[0].shape[0] == 192 * 24
    assert global_rotations(2, symmetry="C4")[0].shape[0] == 192 * 24 // 4
    assert (
        global_rotations(1, symmetry="D2")[0].shape[0]
        < global_rotations(1, symmetry="C2")[0].shape[0]
    )
    lattice = rotation_lattice(2.0, radius_steps=2.0)
    assert lattice.shape[0] == 33 and torch.allclose(lattice[0], torch.eye(3))
    angles = _angles(lattice[:1].expand(33, 3, 3), lattice)
    assert float(angles.max()) == pytest.approx(4.0, abs=1e-3)
    assert origin_grid(0.0, 1.0).tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="step must be > 0"):
        origin_grid(2.0, 0.0)


def _dataset(volume, n: int, *, snr_noise: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    from cryoglass.geometry import random_rotations

    rotations = random_rotations(n, generator=g, dtype=torch.float32)
    defocus = 8000 + 12000 * torch.rand(n, generator=g)
    ctf = CTFParams(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus)
    images = project(volume, rotations, ctf=ctf, pixel_size_angstrom=1.0)
    images = images + snr_noise * images.std() * torch.randn(images.shape, generator=g)
    return images, rotations, ctf.expand(n)


def _batches(images: torch.Tensor, size: int = 64):
    def batches():
        for start in range(0, images.shape[0], size):
            yield (
                torch.arange(start, min(start + size, images.shape[0])),
                images[start : start + size],
            )

    return batches


def test_the_halves_never_see_each_others_particles_above_the_join(volume):
    images, _, ctf = _dataset(volume, 80, snr_noise=1.0, seed=3)
    labels = torch.tensor([1, 2] * 40)
    settings = RefineSettings(
        pixel_size_angstrom=1.0,
        particle_diameter_angstrom=28.0,
        initial_order=2,
        low_resol_join_halves_angstrom=8.0,
        firstiter_cc=False,
    )
    state = initial_state(volume, 80, settings)
    altered = images.clone()
    altered[labels == 2] = torch.randn_like(altered[labels == 2])  # half 2: anything else
    _, (joined_a, separate_a) = refine_iteration(
        state, _batches(images), ctf=ctf, labels=labels, settings=settings
    )
    new_b, (joined_b, separate_b) = refine_iteration(
        state, _batches(altered), ctf=ctf, labels=labels, settings=settings
    )
    # half 1's own sums do not depend on half 2's images at all ...
    assert torch.equal(separate_a[0].data, separate_b[0].data)
    # ... and after joining, only the shells below the join resolution (32/8 = 4) do
    from cryoglass.reconstruct.fourier_inversion import _shell_index

    m = joined_a[0].padded_size
    high = _shell_index(N, 2, device="cpu") > 4
    region = (slice(1, 1 + m), slice(1, 1 + m), slice(0, m // 2 + 1))
    assert torch.equal(joined_a[0].data[region][high], joined_b[0].data[region][high])
    assert not torch.equal(joined_a[0].data[region][~high], joined_b[0].data[region][~high])
    assert new_b.iteration == 1 and len(new_b.history) == 1


def test_the_c4_search_space_is_a_quarter_and_covers_the_sphere():
    ops = symmetry_matrices("C4", dtype=torch.float32)
    rotations, _ = global_rotations(1, symmetry="C4")
    full, _ = global_rotations(1)
    assert rotations.shape[0] * 4 == full.shape[0]
    # every full-grid rotation is a C4 copy A'·L of one in the reduced grid
    reduced = rotations[:, None] @ ops[None]  # (R, 4, 3, 3)
    closest = torch.cdist(full.reshape(-1, 9), reduced.reshape(-1, 9)).min(1).values
    assert float(closest.max()) < 1e-3  # float32 (the grid step is 30°)
