"""Ab initio by SGD: the schedule, the refusals, and a map from particles without poses."""

from __future__ import annotations

import pytest
import torch

from cryoglass.refine.abinitio import (
    AbinitioSettings,
    abinitio,
    check_abinitio_inputs,
    schedule,
)
from cryoglass.validate.align import align_maps, mirror_map
from cryoglass.validate.fsc import fourier_shell_correlation

N, PIXEL = 32, 5.0


@pytest.fixture(scope="module")
def dataset():
    """300 noisy CTF-modulated TRPV1 particles at random poses and origins (no poses kept)."""
    from cryoglass.data import model_map
    from cryoglass.simulate.dataset import (
        ParticleDistributions,
        ParticleParameters,
        simulate_dataset,
    )

    truth = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=PIXEL)[0].float()
    chunks = list(
        simulate_dataset(
            truth,
            n=300,
            pixel_size_angstrom=PIXEL,
            distributions=ParticleDistributions(shift_scale_angstrom=PIXEL),
            snr=0.3,
            seed=2,
        )
    )
    images = torch.cat([c.images for c in chunks])
    ctf = ParticleParameters.concatenate([c.parameters for c in chunks]).ctf
    return truth, images / images.std(), ctf


def test_schedule_ramps_resolution_batch_and_sampling():
    s = AbinitioSettings(4.0, 150.0, iterations=60, initial_batch=100, final_batch=300)
    rows = [schedule(i, s, 48) for i in range(60)]
    resolutions = [r[0] for r in rows]
    batches = [r[1] for r in rows]
    assert resolutions[0] == 35.0 and resolutions[-1] == 15.0
    assert all(a >= b for a, b in zip(resolutions, resolutions[1:], strict=False))
    assert all(a <= b for a, b in zip(batches, batches[1:], strict=False))
    assert rows[0][2] <= rows[-1][2]  # the angular sampling gets finer, never coarser


def test_bad_runs_are_refused():
    with pytest.raises(ValueError, match="needs at least 100"):
        check_abinitio_inputs(99, N, AbinitioSettings(PIXEL, 100.0))
    with pytest.raises(ValueError, match="needs at least 150"):
        check_abinitio_inputs(120, N, AbinitioSettings(PIXEL, 100.0, n_classes=3))
    with pytest.raises(ValueError, match="particle diameter 200 Å"):
        check_abinitio_inputs(300, N, AbinitioSettings(PIXEL, 200.0))
    with pytest.raises(ValueError, match="beyond Nyquist"):
        check_abinitio_inputs(300, N, AbinitioSettings(PIXEL, 100.0, final_resolution_angstrom=8.0))
    check_abinitio_inputs(300, N, AbinitioSettings(PIXEL, 100.0))


def _run(dataset, seed: int, iterations: int = 24):
    truth, images, ctf = dataset
    settings = AbinitioSettings(
        PIXEL,
        150.0,
        iterations=iterations,
        initial_resolution_angstrom=35.0,
        final_resolution_angstrom=15.0,
        initial_batch=50,
        final_batch=120,
        seed=seed,
    )
    state = abinitio(
        lambda index: images[index], n_particles=images.shape[0], size=N, ctf=ctf,
        settings=settings,
    )  # fmt: skip
    return truth, state


def _check_structure(truth, state, *, last_shell: int, hand: bool = False):
    model = state.references[0].double()
    result = align_maps(truth.double(), model, pixel_size_angstrom=PIXEL)
    fsc = fourier_shell_correlation(truth.double(), result.aligned.double())
    # FSC to the (unfiltered) truth ≥ 0.5 out to last_shell (4: 40 Å, 5: 32 Å)
    assert float(fsc[1 : last_shell + 1].min()) > 0.5, fsc[:8]
    assert result.correlation > 0.8
    if not hand:
        return
    # the other hand, superposed as well as it can be, fits worse: TRPV1 is chiral, so the
    # hand found is one of two distinct answers (which one is chance: projections can't tell)
    other = align_maps(
        truth.double(), mirror_map(result.aligned.double()), pixel_size_angstrom=PIXEL, hand=False
    )
    assert other.correlation < result.correlation - 0.01


def test_abinitio_finds_the_structure_from_a_random_start(dataset):
    truth, state = _run(dataset, seed=0)
    assert state.iteration == 24 and len(state.history) == 24
    assert [r["resolution_angstrom"] for r in state.history][-1] == 15.0
    _check_structure(truth, state, last_shell=4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(
            1,
            marks=pytest.mark.xfail(
                strict=True,
                reason="issue 17, open: with seed 1 the model's FSC to the truth falls to 0.38 "
                "before the last checked shell (2026-12-07)",
            ),
        ),
        2,
        3,
    ],
)
def test_abinitio_finds_the_structure_across_seeds(dataset, seed):
    truth, state = _run(dataset, seed=seed, iterations=40)
    _check_structure(truth, state, last_shell=5, hand=True)


def test_abinitio_is_seeded(dataset):
    _, a = _run(dataset, seed=3, iterations=4)
    _, b = _run(dataset, seed=3, iterations=4)
    _, c = _run(dataset, seed=4, iterations=4)
    assert torch.equal(a.references, b.references)
    assert not torch.equal(a.references, c.references)
