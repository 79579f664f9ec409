"""Properties of back-projection and Fourier inversion (hypothesis, small sizes)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoglass.geometry import random_rotations
from cryoglass.projection import project
from cryoglass.reconstruct import accumulate, backproject, empty_accumulator, merge


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(6, 17),
    pad=st.integers(1, 3),
    count=st.integers(1, 5),
    interpolation=st.sampled_from(["linear", "nearest"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_backproject_adjoint_for_any_size(n, pad, count, interpolation, seed):
    g = torch.Generator().manual_seed(seed)
    rotations = random_rotations(count, generator=g, dtype=torch.float64)
    volume = torch.randn(n, n, n, dtype=torch.float64, generator=g)
    images = torch.randn(count, n, n, dtype=torch.float64, generator=g)
    shifts = torch.randn(count, 2, dtype=torch.float64, generator=g) * 3
    options = dict(shift_angstrom=shifts, pad=pad, interpolation=interpolation)
    forward = (project(volume, rotations, **options) * images).sum()
    adjoint = (volume * backproject(images, rotations, **options)).sum()
    assert abs(float(forward - adjoint)) <= 1e-9 * max(abs(float(forward)), 1e-12)


@settings(max_examples=15, deadline=None)
@given(split=st.integers(1, 11), seed=st.integers(0, 2**31 - 1))
def test_accumulation_is_additive_in_any_split(split, seed):
    g = torch.Generator().manual_seed(seed)
    n, count = 10, 12
    rotations = random_rotations(count, generator=g, dtype=torch.float64)
    images = torch.randn(count, n, n, dtype=torch.float64, generator=g)
    empty = empty_accumulator(n, dtype=torch.float64)
    whole = accumulate(empty, images, rotations)
    parts = merge(
        accumulate(empty, images[split:], rotations[split:]),
        accumulate(empty, images[:split], rotations[:split]),
    )
    torch.testing.assert_close(parts.data, whole.data, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(parts.weight, whole.weight, rtol=1e-12, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(0.1, 10.0), seed=st.integers(0, 2**31 - 1))
def test_backprojection_is_linear(scale, seed):
    g = torch.Generator().manual_seed(seed)
    rotations = random_rotations(3, generator=g, dtype=torch.float64)
    a = torch.randn(3, 8, 8, dtype=torch.float64, generator=g)
    b = torch.randn(3, 8, 8, dtype=torch.float64, generator=g)
    combined = backproject(scale * a + b, rotations)
    separate = scale * backproject(a, rotations) + backproject(b, rotations)
    torch.testing.assert_close(combined, separate, rtol=1e-10, atol=1e-10)
