"""Hypothesis properties of the Fourier toolkit (small sizes, few examples)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoglass.fourier import (
    apply_bfactor,
    convolve,
    fftn_centered,
    fourier_crop,
    fourier_pad,
    radial_average,
    shift_image,
)

sizes = st.integers(min_value=3, max_value=12)
shifts = st.floats(min_value=-6.0, max_value=6.0, allow_nan=False)


def _randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(h=sizes, w=sizes, seed=st.integers(0, 2**16))
def test_parseval_any_shape(h, w, seed):
    x = _randn((h, w), seed)
    f = fftn_centered(x, ndim=2)
    torch.testing.assert_close(f.abs().square().sum() / (h * w), x.square().sum())


@settings(max_examples=25, deadline=None)
@given(h=sizes, w=sizes, a=shifts, b=shifts, c=shifts, d=shifts, seed=st.integers(0, 2**16))
def test_shifts_compose(h, w, a, b, c, d, seed):
    """shift(shift(x, s1), s2) == shift(x, s1 + s2) on odd boxes (no Nyquist ambiguity)."""
    h, w = 2 * (h // 2) + 1, 2 * (w // 2) + 1
    x = _randn((h, w), seed)
    s1 = torch.tensor([a, b], dtype=torch.float64)
    s2 = torch.tensor([c, d], dtype=torch.float64)
    two = shift_image(shift_image(x, s1, pixel_size_angstrom=1.3), s2, pixel_size_angstrom=1.3)
    torch.testing.assert_close(two, shift_image(x, s1 + s2, pixel_size_angstrom=1.3))


@settings(max_examples=25, deadline=None)
@given(h=sizes, w=sizes, dh=st.integers(0, 6), dw=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_pad_then_crop_identity(h, w, dh, dw, seed):
    x = _randn((2, h, w), seed)
    torch.testing.assert_close(fourier_crop(fourier_pad(x, (h + dh, w + dw)), (h, w)), x)


@settings(max_examples=25, deadline=None)
@given(n=sizes, k=st.integers(1, 6), alpha=st.floats(-3, 3), seed=st.integers(0, 2**16))
def test_convolution_is_linear_and_commutative(n, k, alpha, seed):
    x, y = _randn((n, n), seed), _randn((n, n), seed + 1)
    h = _randn((k, k), seed + 2)
    lhs = convolve(x + alpha * y, h, ndim=2, mode="full")
    rhs = convolve(x, h, ndim=2, mode="full") + alpha * convolve(y, h, ndim=2, mode="full")
    torch.testing.assert_close(lhs, rhs)
    torch.testing.assert_close(
        convolve(h, x, ndim=2, mode="full"), convolve(x, h, ndim=2, mode="full")
    )


@settings(max_examples=25, deadline=None)
@given(n=sizes, b=st.floats(-50, 200), value=st.floats(-5, 5), seed=st.integers(0, 2**16))
def test_bfactor_keeps_mean_and_radial_average_of_constant(n, b, value, seed):
    x = _randn((n, n), seed)
    y = apply_bfactor(x, ndim=2, bfactor_a2=b, pixel_size_angstrom=1.0)
    torch.testing.assert_close(y.mean(), x.mean())
    const = torch.full((n, n), value, dtype=torch.float64)
    torch.testing.assert_close(
        radial_average(const, ndim=2), torch.full((n // 2 + 1,), value, dtype=torch.float64)
    )
