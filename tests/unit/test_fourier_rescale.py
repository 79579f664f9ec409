"""Fourier cropping/padding and rescaling to a new pixel size."""

from __future__ import annotations

import pytest
import torch

from cryoglass.fourier import (
    coordinate_grid,
    fftn_centered,
    fourier_crop,
    fourier_pad,
    ifftn_centered,
    rescale,
    resize_fourier,
    resize_spectrum,
)


def _band_limited(shape, limit, generator):
    """Real random signal whose spectrum lies strictly inside |index| < limit on every axis."""
    ndim = len(shape)
    f = fftn_centered(torch.randn(2, *shape, generator=generator, dtype=torch.float64), ndim=ndim)
    mask = torch.ones(shape, dtype=torch.bool)
    for axis, n in enumerate(shape):
        idx = (torch.arange(n) - n // 2).abs() < limit
        mask = mask & idx.reshape([-1 if a == axis else 1 for a in range(ndim)])
    return ifftn_centered(f * mask, ndim=ndim).real


def _gaussian(shape, pixel, sigma):
    r = coordinate_grid(shape, dtype=torch.float64) * pixel
    return torch.exp(-r.square().sum(-1) / (2 * sigma**2))


@pytest.mark.parametrize(
    ("shape", "small"), [((16, 16), (8, 8)), ((15, 16), (9, 7)), ((12, 10, 9), (8, 7, 6))]
)
def test_crop_then_pad_round_trip_on_band_limited(shape, small, generator):
    x = _band_limited(
        shape, min(small) // 2 - 1 if min(small) % 2 == 0 else min(small) // 2, generator
    )
    y = fourier_pad(fourier_crop(x, small), shape)
    torch.testing.assert_close(y, x)


@pytest.mark.parametrize(
    ("small", "big"), [((8, 8), (16, 16)), ((7, 8), (12, 11)), ((6, 6, 5), (9, 8, 8))]
)
def test_pad_then_crop_is_identity(small, big, generator):
    """Splitting the Nyquist bin on padding and folding it back on cropping is exact."""
    x = torch.randn(3, *small, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(fourier_crop(fourier_pad(x, big), small), x)


def test_crop_folds_nyquist_cosine_exactly():
    """A cosine at the new Nyquist frequency is sampled as (-1)^n, not halved."""
    n, m = 16, 8
    x = torch.arange(n, dtype=torch.float64)
    signal = torch.cos(torch.pi * x / 2).expand(n, n)  # period 4 px along x -> Nyquist of 8
    y = fourier_crop(signal, (m, m))
    expected = torch.cos(torch.pi * torch.arange(m, dtype=torch.float64)).expand(m, m)
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resize_preserves_mean(dtype, generator):
    x = torch.rand(4, 20, 20, generator=generator, dtype=torch.float64).to(dtype) + 3.0
    for shape in [(13, 13), (20, 31), (8, 9)]:
        y = resize_fourier(x, shape)
        assert y.dtype == dtype and y.shape == (4, *shape)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(y.mean((-2, -1)), x.mean((-2, -1)), rtol=tol, atol=0)


@pytest.mark.parametrize(
    ("box", "pixel", "new_pixel"), [(64, 1.0, 1.6), (64, 2.0, 1.3), (45, 1.1, 2.2)]
)
def test_rescale_matches_analytic_gaussian(box, pixel, new_pixel):
    sigma = 4.0  # Å: band-limited at both pixel sizes and ~0 at the box edge
    x = _gaussian((box, box), pixel, sigma)
    y, actual = rescale(x, pixel_size_angstrom=pixel, new_pixel_size_angstrom=new_pixel, ndim=2)
    m = round(box * pixel / new_pixel)
    assert y.shape == (m, m)
    assert actual == pytest.approx(pixel * box / m)
    torch.testing.assert_close(y, _gaussian((m, m), actual, sigma), atol=1e-6, rtol=0)


def test_rescale_volume_gaussian():
    x = _gaussian((30, 30, 30), 1.0, 2.5)
    y, actual = rescale(x, pixel_size_angstrom=1.0, new_pixel_size_angstrom=1.5, ndim=3)
    assert y.shape == (20, 20, 20) and actual == pytest.approx(1.5)
    torch.testing.assert_close(y, _gaussian((20, 20, 20), 1.5, 2.5), atol=1e-5, rtol=0)


def test_resize_spectrum_shapes_and_errors():
    f = torch.ones(2, 8, 8, dtype=torch.complex128)
    assert resize_spectrum(f, (5, 12)).shape == (2, 5, 12)
    with pytest.raises(ValueError, match="larger"):
        fourier_crop(torch.zeros(8, 8), (10, 8))
    with pytest.raises(ValueError, match="smaller"):
        fourier_pad(torch.zeros(8, 8), (6, 8))
    with pytest.raises(ValueError, match="square/cubic"):
        rescale(torch.zeros(10, 20), pixel_size_angstrom=1.0, new_pixel_size_angstrom=1.5, ndim=2)


# ------------------------------------------------- relion_image_handler's box, real-space window
@pytest.mark.parametrize(
    ("box", "pixel", "new_pixel", "expected"),
    [(256, 1.06, 2.5, 108), (256, 2.806, 5.0, 144), (64, 1.0, 0.5, 128), (100, 1.0, 1.9, 52)],
)
def test_rescaled_box_size_is_relions_even_rounding(box, pixel, new_pixel, expected):
    from cryoglass.fourier.rescale import rescaled_box_size

    new_box, actual = rescaled_box_size(
        box, pixel_size_angstrom=pixel, new_pixel_size_angstrom=new_pixel
    )
    assert new_box == expected and new_box % 2 == 0
    assert actual == pytest.approx(box * pixel / new_box)
    with pytest.raises(ValueError, match="less than 2 pixels"):
        rescaled_box_size(8, pixel_size_angstrom=1.0, new_pixel_size_angstrom=9.0)


@pytest.mark.parametrize("shape", [(10, 10), (9, 11), (8, 8, 8)])
@pytest.mark.parametrize("new", [3, 6, 7, 16])
def test_center_window_keeps_the_origin_and_round_trips(shape, new, generator):
    from cryoglass.fourier.rescale import center_window

    x = torch.randn(2, *shape, generator=generator)
    new_shape = (new,) * len(shape)
    y = center_window(x, new_shape)
    assert y.shape == (2, *new_shape)
    origin = (..., *[n // 2 for n in shape])
    assert torch.equal(y[(..., *[m // 2 for m in new_shape])], x[origin])
    if all(m >= n for m, n in zip(new_shape, shape, strict=True)):
        assert torch.equal(center_window(y, shape), x)  # pad, then crop back
        assert float(y.abs().sum()) == pytest.approx(float(x.abs().sum()))


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (10, 6), (6, 6, 6), (5, 8, 7)])
def test_resize_fourier_equals_the_centred_spectrum_recipe(shape, generator):
    """The real-FFT implementation gives the numbers of resize_spectrum on centred spectra."""
    import itertools
    import math

    from cryoglass.fourier.fft import fftn_centered, ifftn_centered

    x = torch.randn(2, *shape, generator=generator, dtype=torch.float64)
    ndim = len(shape)
    for new in itertools.product(*[(n - 3, n - 1, n, n + 1, n + 4) for n in shape]):
        if min(new) < 1:
            continue
        spectrum = resize_spectrum(fftn_centered(x, ndim=ndim), new)
        expected = ifftn_centered(spectrum, ndim=ndim).real * math.prod(new) / math.prod(shape)
        torch.testing.assert_close(resize_fourier(x, new), expected, atol=1e-12, rtol=0)
