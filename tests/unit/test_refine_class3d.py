"""3D classification: the class × pose E-step, the τ² of a class's own map, the EM loop."""

from __future__ import annotations

import pytest
import torch

from cryoglass.classify import adjusted_rand_index
from cryoglass.ctf import CTFParams
from cryoglass.geometry import random_rotations
from cryoglass.projection import prepare_volume_fourier, project, slice_frequencies, slice_values
from cryoglass.reconstruct import ctf_slice_values, image_slice_values
from cryoglass.reconstruct.fourier_inversion import (
    accumulate_values,
    empty_accumulator,
    shell_mean_weight,
)
from cryoglass.refine import Sampling, align_batch, global_rotations
from cryoglass.refine.align import global_table
from cryoglass.refine.class3d import (
    Class3DSettings,
    check_class3d_inputs,
    classify_3d,
    initial_class3d_state,
    reference_tau2,
    seed_classes,
)
from cryoglass.refine.class3d_checkpoint import (
    class3d_from_checkpoint,
    class3d_record,
    class3d_tensors,
)
from cryoglass.refine.classes import align_batch_classes, class_table
from cryoglass.refine.likelihood import band
from cryoglass.simulate.phantom import gaussian_map
from cryoglass.validate.fsc import fourier_shell_correlation


def _two_maps(n: int, *, moved: int = 3, seed: int = 4, pixel: float = 1.0):
    """Two maps of 12 Gaussian blobs; ``moved`` of them are elsewhere in the second."""
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(12, 3, generator=g, dtype=torch.float64) - 0.5) * n * pixel / 2
    other = centres.clone()
    other[:moved] = (torch.rand(moved, 3, generator=g, dtype=torch.float64) - 0.5) * n * pixel / 2
    return [
        gaussian_map(
            c, shape=(n,) * 3, pixel_size_angstrom=pixel, sigma_angstrom=1.5 * pixel
        ).float()
        for c in (centres, other)
    ]


def _particles(maps, count: int, *, noise: float, seed: int, pixel: float = 1.0):
    """Images of ``maps`` (alternating), random poses, CTF, white noise ``noise`` × signal σ."""
    g = torch.Generator().manual_seed(seed)
    n = maps[0].shape[-1]
    labels = torch.arange(count) % len(maps)
    rotations = random_rotations(count, generator=g, dtype=torch.float32)
    defocus = 8000 + 12000 * torch.rand(count, generator=g)
    images = torch.empty(count, n, n)
    for k, volume in enumerate(maps):
        rows = labels == k
        ctf = CTFParams(defocus_u_angstrom=defocus[rows], defocus_v_angstrom=defocus[rows])
        images[rows] = project(volume, rotations[rows], ctf=ctf, pixel_size_angstrom=pixel)
    images = images + noise * images.std() * torch.randn(images.shape, generator=g)
    ctf = CTFParams(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus).expand(count)
    return images, labels, ctf


def _batches(images: torch.Tensor, size: int = 100):
    def batches():
        for start in range(0, images.shape[0], size):
            stop = min(start + size, images.shape[0])
            yield torch.arange(start, stop), images[start:stop]

    return batches


N = 24


def test_noise_free_projections_of_two_maps_get_their_class_and_pose():
    maps = _two_maps(N)
    rotations, _ = global_rotations(1)
    pick = torch.randperm(rotations.shape[0], generator=torch.Generator().manual_seed(0))[:16]
    truth = torch.arange(16) % 2
    images = torch.stack(
        [
            project(maps[int(c)], rotations[p][None], pixel_size_angstrom=1.0)[0]
            for p, c in zip(pick, truth, strict=True)
        ]
    )
    b = band(N, 8)
    x = image_slice_values(images)[:, b.index]
    refs = [prepare_volume_fourier(m) for m in maps]
    sigma2 = torch.full((N // 2 + 1,), float(x.abs().square().mean()) * 1e-3)
    result = align_batch_classes(
        x,
        torch.ones_like(x.real),
        sigma2,
        refs,
        b,
        Sampling(order=2, origin_range_px=2.0),
        table=class_table(refs, rotations, b),
    )
    assert torch.equal(result.classes[:, 0], truth)
    assert bool((result.class_probability.gather(1, truth[:, None]) > 0.999).all())
    assert torch.allclose(result.class_probability.sum(1), torch.ones(16))
    assert torch.allclose(result.weights.sum(1), torch.ones(16))
    trace = (result.rotations[:, 0].transpose(1, 2) @ rotations[pick]).diagonal(0, 1, 2).sum(-1)
    assert float(trace.min()) > 3 - 1e-4  # the grid pose itself
    assert float(result.origins_px[:, 0].abs().max()) == 0.0


def test_one_class_is_align_batch():
    maps = _two_maps(N)
    images, _, _ = _particles(maps[:1], 12, noise=1.0, seed=1)
    b = band(N, 7)
    x = image_slice_values(images)[:, b.index]
    c = torch.ones_like(x.real)
    ref = prepare_volume_fourier(maps[0])
    rotations, _ = global_rotations(1)
    sigma2 = torch.full((N // 2 + 1,), float(x.abs().square().mean()))
    sampling = Sampling(order=2, origin_range_px=2.0)
    one = align_batch(x, c, sigma2, ref, b, sampling, table=global_table(ref, rotations, b))
    many = align_batch_classes(
        x, c, sigma2, [ref], b, sampling, table=class_table([ref], rotations, b)
    )
    assert torch.allclose(one.rotations[:, 0], many.rotations[:, 0])
    assert torch.equal(one.origins_px, many.origins_px)
    assert torch.allclose(one.weights, many.weights, atol=1e-6)
    assert torch.allclose(one.log_likelihood, many.log_likelihood, rtol=1e-9)


def test_identical_references_give_the_prior_as_class_posterior():
    maps = _two_maps(N)
    images, _, _ = _particles(maps[:1], 8, noise=0.5, seed=2)
    b = band(N, 6)
    x = image_slice_values(images)[:, b.index]
    ref = prepare_volume_fourier(maps[0])
    rotations, _ = global_rotations(1)
    prior = torch.tensor([0.2, 0.5, 0.3])
    sigma2 = torch.full((N // 2 + 1,), float(x.abs().square().mean()))
    result = align_batch_classes(
        x,
        torch.ones_like(x.real),
        sigma2,
        [ref] * 3,
        b,
        Sampling(order=2, origin_range_px=1.0),
        table=class_table([ref] * 3, rotations, b),
        log_prior=prior.log(),
    )
    assert torch.allclose(result.class_probability, prior.expand(8, 3), atol=1e-5)
    excluded = align_batch_classes(
        x,
        torch.ones_like(x.real),
        sigma2,
        [ref] * 3,
        b,
        Sampling(order=2, origin_range_px=1.0),
        table=class_table([ref] * 3, rotations, b),
        log_prior=torch.tensor([0.0, -torch.inf, 0.0]),
    )
    assert float(excluded.class_probability[:, 1].max()) == 0.0
    assert not bool((excluded.classes == 1).any())


def test_tau2_is_the_power_of_the_reference_projections_over_sigma2():
    """The 3D DFT power of a map per shell is the power of its central slices (unnormalised)."""
    volume = _two_maps(N)[0]
    rotations = random_rotations(256, generator=torch.Generator().manual_seed(3))
    p = slice_values(prepare_volume_fourier(volume), rotations.float())
    k, _ = slice_frequencies(N)
    shell = torch.floor(k.double().norm(dim=1) + 0.5).long()
    sums = torch.zeros(N // 2 + 1, dtype=torch.float64)
    sums.index_add_(0, shell, (p.abs().square()).double().mean(0))
    slice_power = sums / torch.bincount(shell, minlength=N // 2 + 1).double()
    sigma2 = torch.full((N // 2 + 1,), 2.0)
    acc = empty_accumulator(N)
    tau2 = reference_tau2(volume, sigma2, acc, tau2_fudge=4.0)
    # within the scatter of 256 random planes through an anisotropic map's shells
    assert torch.allclose(tau2[2:9] * 2.0 / 8, slice_power[2:9], rtol=0.2)  # pad³ = 8
    # a map without any power gets RELION's tau2 = 0 rule: 1/(T tau2) = <W>/1000 per shell
    filled = accumulate_values(
        empty_accumulator(N),
        torch.ones(4, k.shape[0], dtype=torch.complex64),
        rotations[:4].float(),
    )
    floor = reference_tau2(torch.zeros_like(volume), sigma2, filled, tau2_fudge=4.0)
    weight = shell_mean_weight(filled)
    assert torch.allclose(1.0 / (4.0 * floor[1:]), weight[1:] / 1000.0)


def test_inputs_and_seeds():
    settings = Class3DSettings(
        pixel_size_angstrom=1.0, particle_diameter_angstrom=20.0, n_classes=3
    )
    with pytest.raises(ValueError, match="need at least 10 per class"):
        check_class3d_inputs(29, N, settings)
    with pytest.raises(ValueError, match=r"must be in \(0, 24\]"):
        check_class3d_inputs(100, N, Class3DSettings(1.0, 30.0, n_classes=2))
    check_class3d_inputs(30, N, settings)
    seeds = seed_classes(301, 3, seed=5)
    assert seeds.bincount().tolist() == [101, 100, 100]
    assert torch.equal(seeds, seed_classes(301, 3, seed=5))
    assert not torch.equal(seeds, seed_classes(301, 3, seed=6))


def _classify(noise: float, seed: int, count: int = 200, iterations: int = 7):
    maps = _two_maps(N, seed=seed)
    images, labels, ctf = _particles(maps, count, noise=noise, seed=seed + 10)
    settings = Class3DSettings(
        pixel_size_angstrom=1.0,
        particle_diameter_angstrom=20.0,
        n_classes=2,
        ini_high_angstrom=6.0,
        order=2,
        offset_range_px=2.0,
        seed=seed,
    )
    state = classify_3d(
        (maps[0] + maps[1]) / 2,
        _batches(images),
        n_particles=count,
        ctf=ctf,
        settings=settings,
        iterations=iterations,
    )
    return state, labels, maps, (images, ctf)


def _oracle_ari(maps, images, ctf, labels, sigma2) -> float:
    """ARI of the classes given the true maps (the best the data allow)."""
    b = band(N, 8)
    x = image_slice_values(images)[:, b.index]
    c = ctf_slice_values(ctf, size=N, pixel_size_angstrom=1.0, like=images)[:, b.index]
    refs = [prepare_volume_fourier(m) for m in maps]
    rotations, _ = global_rotations(1)
    result = align_batch_classes(
        x,
        c,
        sigma2,
        refs,
        b,
        Sampling(order=2, origin_range_px=2.0),
        table=class_table(refs, rotations, b),
    )
    return adjusted_rand_index(labels, result.classes[:, 0])


def _recovered(state, maps) -> list[float]:
    """For each true map, the best mean FSC over shells 1..6 among the class maps."""
    return [
        max(
            float(fourier_shell_correlation(m.double(), state.references[c].double())[1:7].mean())
            for c in range(state.n_classes)
        )
        for m in maps
    ]


def test_class3d_separates_two_maps_and_recovers_both():
    state, labels, maps, _ = _classify(noise=0.6, seed=0)
    assert adjusted_rand_index(labels, state.classes) > 0.85  # the true maps give 0.98
    assert min(_recovered(state, maps)) > 0.85
    kinds = [r["kind"] for r in state.history]
    assert kinds[:3] == ["cc", "seed", "classify"]
    assert abs(sum(state.history[-1]["class_distribution"]) - 1) < 1e-3
    # a checkpoint round trip gives the same state
    back = class3d_from_checkpoint(class3d_tensors(state), class3d_record(state, {"run": 1}))
    assert torch.equal(back.references, state.references) and back.history == state.history


_BELOW_TRUE_MAPS = pytest.mark.xfail(
    strict=True,
    reason="issue 17, open: class3d separates the classes far less often than an E-step with "
    "the true maps at noise ≥ 1.0 (ARI 0.007 / 0.57 / 0.08 vs 0.95 / 0.97 / 0.81 on 2026-12-07); "
    "relion_refine --K 2 on the same particles (noise 1.0, seed 2) reaches ARI 0.000",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("noise", "seed"),
    [
        (0.6, 1),
        pytest.param(1.0, 2, marks=_BELOW_TRUE_MAPS),
        pytest.param(1.0, 3, marks=_BELOW_TRUE_MAPS),
        pytest.param(1.4, 4, marks=_BELOW_TRUE_MAPS),
    ],
)
def test_class3d_comes_near_the_true_maps_classes_across_noise_and_seeds(noise, seed):
    state, labels, maps, (images, ctf) = _classify(noise=noise, seed=seed, count=300, iterations=10)
    oracle = _oracle_ari(maps, images, ctf, labels, state.sigma2)
    assert adjusted_rand_index(labels, state.classes) > oracle - 0.12
    assert min(_recovered(state, maps)) > 0.7


def test_initial_state_is_the_low_passed_reference_for_every_class():
    maps = _two_maps(N)
    settings = Class3DSettings(1.0, 20.0, n_classes=3, ini_high_angstrom=6.0)
    state = initial_class3d_state(maps[0], 50, settings)
    assert state.references.shape == (3, N, N, N)
    assert torch.equal(state.references[0], state.references[2])
    fsc = fourier_shell_correlation(state.references[0].double(), maps[0].double())
    assert float(fsc[2]) > 0.95
    assert bool((state.classes == -1).all())
