"""Direct Fourier inversion: chunking invariance, accuracy on noise-free data, symmetry, errors."""

from __future__ import annotations

import pytest
import torch

from cryoglass.ctf import CTFParams
from cryoglass.geometry import random_rotations, symmetry_matrices
from cryoglass.projection import project
from cryoglass.reconstruct import (
    accumulate,
    empty_accumulator,
    finalize,
    memory_estimate_bytes,
    merge,
    reconstruct,
    shell_mean_weight,
    split_halves,
    tau2_from_fsc,
)
from cryoglass.simulate.phantom import gaussian_map

N = 24


def _blobs(generator: torch.Generator, count: int = 10, *, symmetry: str | None = None):
    """Smooth map of Gaussian blobs (σ = 1.5 px) within N/4 of the centre."""
    centres = (torch.rand(count, 3, generator=generator, dtype=torch.float64) - 0.5) * N / 2
    if symmetry is not None:
        ops = symmetry_matrices(symmetry, dtype=torch.float64)
        centres = torch.einsum("gij,mj->gmi", ops, centres).reshape(-1, 3)
    return gaussian_map(centres, shape=(N, N, N), pixel_size_angstrom=1.0, sigma_angstrom=1.5)


def _masked_ncc(a: torch.Tensor, b: torch.Tensor, radius: float = N / 2 - 2) -> float:
    axis = torch.arange(N, dtype=torch.float64) - N // 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    inside = r < radius
    x, y = a[inside] - a[inside].mean(), b[inside] - b[inside].mean()
    return float((x * y).sum() / (x.norm() * y.norm()))


@pytest.fixture(scope="module")
def dataset():
    g = torch.Generator().manual_seed(3)
    volume = _blobs(g)
    rotations = random_rotations(700, generator=g, dtype=torch.float64)
    shifts = torch.randn(700, 2, generator=g, dtype=torch.float64) * 2
    du = 6000 + 15000 * torch.rand(700, generator=g, dtype=torch.float64)
    ctf = CTFParams(defocus_u_angstrom=du, defocus_v_angstrom=du - 500.0)
    images = project(volume, rotations, shift_angstrom=shifts, ctf=ctf, pixel_size_angstrom=1.0)
    return volume, rotations, shifts, ctf, images


def _accumulate_chunks(dataset, chunks: int, order: torch.Tensor):
    _, rotations, shifts, ctf, images = dataset
    partials = []
    for part in torch.tensor_split(order, chunks):
        acc = empty_accumulator(N, dtype=torch.float64)
        partials.append(
            accumulate(
                acc,
                images[part],
                rotations[part],
                shift_angstrom=shifts[part],
                ctf=ctf[part],
                pixel_size_angstrom=1.0,
            )
        )
    return merge(*partials)


def test_chunking_and_order_do_not_change_the_map(dataset):
    count = dataset[1].shape[0]
    one = _accumulate_chunks(dataset, 1, torch.arange(count))
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(1))
    seven = _accumulate_chunks(dataset, 7, perm)
    hundred = _accumulate_chunks(dataset, 100, perm.flip(0))
    maps = [finalize(acc) for acc in (one, seven, hundred)]
    assert one.count == seven.count == hundred.count == count
    for other in maps[1:]:
        torch.testing.assert_close(
            other, maps[0], rtol=1e-9, atol=1e-9 * float(maps[0].abs().max())
        )
    torch.testing.assert_close(seven.weight, one.weight, rtol=1e-9, atol=1e-9)


def test_accumulate_is_pure_and_merge_sums(dataset):
    _, rotations, shifts, ctf, images = dataset
    empty = empty_accumulator(N, dtype=torch.float64)
    a = accumulate(empty, images[:5], rotations[:5], shift_angstrom=shifts[:5], ctf=ctf[:5])
    assert float(empty.weight.abs().sum()) == 0.0 and float(empty.data.abs().sum()) == 0.0
    b = accumulate(a, images[5:9], rotations[5:9], shift_angstrom=shifts[5:9], ctf=ctf[5:9])
    c = merge(
        a, accumulate(empty, images[5:9], rotations[5:9], shift_angstrom=shifts[5:9], ctf=ctf[5:9])
    )
    torch.testing.assert_close(b.data, c.data)
    assert b.count == c.count == 9
    with pytest.raises(ValueError, match="differ"):
        merge(a, empty_accumulator(N + 2, dtype=torch.float64))
    before = (b.data.clone(), b.weight.clone())
    finalize(b)
    finalize(b, regularisation="none", gridding_iterations=1)
    assert torch.equal(b.data, before[0]) and torch.equal(b.weight, before[1])


def test_reconstruction_from_noise_free_ctf_projections_matches_truth(dataset):
    volume, rotations, shifts, ctf, images = dataset
    rec = reconstruct(images, rotations, shift_angstrom=shifts, ctf=ctf, pixel_size_angstrom=1.0)
    assert rec.dtype == torch.float64
    assert _masked_ncc(rec, volume) > 0.99
    # wrong shifts must hurt: the test can fail
    wrong = reconstruct(images, rotations, shift_angstrom=-shifts, ctf=ctf)
    assert _masked_ncc(wrong, volume) < 0.95


def test_reconstruction_without_ctf_at_uniform_poses_is_accurate_in_scale(generator):
    volume = _blobs(generator).double()
    rotations = random_rotations(1500, generator=generator, dtype=torch.float64)
    images = project(volume, rotations)
    rec = reconstruct(images, rotations, regularisation="none", mask=None)
    assert _masked_ncc(rec, volume) > 0.995
    axis = torch.arange(N) - N // 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    inside = r < N / 2 - 2
    error = (rec - volume)[inside].norm() / volume[inside].norm()
    assert float(error) < 0.15


def test_iterative_gridding_and_nearest_interpolation_also_reconstruct(generator):
    volume = _blobs(generator).double()
    rotations = random_rotations(800, generator=generator, dtype=torch.float64)
    images = project(volume, rotations)
    iterative = reconstruct(images, rotations, gridding_iterations=3)
    assert _masked_ncc(iterative, volume) > 0.99
    nearest = reconstruct(images, rotations, interpolation="nearest", pad=2)
    assert _masked_ncc(nearest, volume) > 0.97


def test_c4_from_a_quarter_matches_c1_from_all(generator):
    volume = _blobs(generator, count=4, symmetry="C4").double()
    rotations = random_rotations(1200, generator=generator, dtype=torch.float64)
    images = project(volume, rotations)
    full = reconstruct(images, rotations)
    quarter = reconstruct(images[:300], rotations[:300], symmetry="C4")
    assert _masked_ncc(quarter, full) > 0.99
    plain_quarter = reconstruct(images[:300], rotations[:300])  # worse without symmetry
    assert _masked_ncc(quarter, volume) > _masked_ncc(plain_quarter, volume)


def test_tau2_from_fsc_follows_relion_formula(dataset):
    _, rotations, shifts, ctf, images = dataset
    acc = accumulate(
        empty_accumulator(N, dtype=torch.float64), images, rotations, shift_angstrom=shifts, ctf=ctf
    )
    fsc = torch.linspace(1.0, -0.1, N // 2 + 1, dtype=torch.float64)
    tau2 = tau2_from_fsc(acc, fsc)
    mean_w = shell_mean_weight(acc)
    f = fsc.clamp(0.001, 0.999)
    torch.testing.assert_close(tau2, f / (1 - f) / mean_w)
    whole = tau2_from_fsc(acc, fsc, whole_map=True)
    assert bool((whole[1:-1] >= tau2[1:-1]).all())
    # strong regularisation (tiny tau2 at high shells) low-passes the map
    sharp = finalize(acc, regularisation="none")
    smooth = finalize(acc, regularisation=tau2)
    high = lambda v: torch.fft.rfftn(v)[..., N // 3 :].abs().sum()  # noqa: E731
    assert float(high(smooth)) < float(high(sharp))
    with pytest.raises(ValueError, match="shells"):
        tau2_from_fsc(acc, fsc[:-1])


def test_finalize_and_accumulate_reject_bad_options():
    acc = empty_accumulator(8, dtype=torch.float64)
    with pytest.raises(ValueError, match="regularisation"):
        finalize(acc, regularisation="huge")
    with pytest.raises(ValueError, match="mask"):
        finalize(acc, mask="sphere")
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        accumulate(acc, torch.zeros(1, 6, 6), torch.eye(3)[None])
    with pytest.raises(ValueError, match="pad"):
        empty_accumulator(8, pad=0)


def test_memory_estimate_grows_with_box_and_halves():
    small = memory_estimate_bytes(64)
    assert memory_estimate_bytes(256, batch_size=16) > 7 * memory_estimate_bytes(128, batch_size=16)
    assert memory_estimate_bytes(64, accumulators=2) > small
    # 128 box, pad 2: the guarded complex64 + float32 table is about 100 MB
    assert 100e6 < memory_estimate_bytes(128) < 1e9
    assert memory_estimate_bytes(128, batch_size=512) > memory_estimate_bytes(128, batch_size=8)


def test_split_halves_uses_random_subset_or_a_seeded_split():
    subset = torch.tensor([1, 2, 2, 1, 2])
    torch.testing.assert_close(split_halves(5, random_subset=subset), subset)
    a = split_halves(101, generator=torch.Generator().manual_seed(4))
    b = split_halves(101, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert int((a == 1).sum()) == 51 and int((a == 2).sum()) == 50
    with pytest.raises(ValueError, match="1 or 2"):
        split_halves(3, random_subset=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="same half"):
        split_halves(3, random_subset=torch.tensor([1, 1, 1]))


def test_accumulate_subsets_keeps_half_sets_apart_for_any_batching(dataset):
    from cryoglass.geometry import matrix_to_euler
    from cryoglass.reconstruct import accumulate_subsets

    _, rotations, shifts, ctf, images = dataset
    count = 200
    euler = matrix_to_euler(rotations[:count])
    labels = split_halves(count, generator=torch.Generator().manual_seed(5))

    def run(batch: int, groups=(1, 2)):
        batches = (
            (torch.arange(i, min(i + batch, count)), images[i : i + batch])
            for i in range(0, count, batch)
        )
        return accumulate_subsets(
            batches,
            labels=labels,
            euler_deg=euler,
            shift_angstrom=shifts[:count],
            ctf=ctf[torch.arange(count)],
            box=N,
            pixel_size_angstrom=1.0,
            groups=groups,
        )

    one, many = run(count), run(37)
    for h in (1, 2):
        assert one[h].count == many[h].count == int((labels == h).sum())
        torch.testing.assert_close(one[h].weight, many[h].weight, rtol=1e-4, atol=1e-4)
        # each half holds exactly its own particles: the same as accumulating them alone
        own = (labels == h).nonzero().squeeze(1)
        alone = accumulate(
            empty_accumulator(N),
            images[own],
            rotations[own].float(),
            shift_angstrom=shifts[own],
            ctf=ctf[own],
            pixel_size_angstrom=1.0,
        )
        torch.testing.assert_close(one[h].data, alone.data, rtol=1e-3, atol=1e-3)
    assert set(run(50, groups=(2,))) == {2}
