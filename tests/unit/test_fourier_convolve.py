"""FFT convolution: linear (zero-padded) and circular, against direct summation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from cryoglass.fourier import circular_convolve, convolve, coordinate_grid, gaussian_lowpass


@pytest.mark.parametrize(
    ("x_shape", "k_shape"),
    [((17,), (5,)), ((9, 11), (3, 5)), ((12, 10), (7, 7)), ((6, 7, 5), (3, 3, 5))],
)
@pytest.mark.parametrize("mode", ["full", "same"])
def test_convolve_matches_scipy_direct(x_shape, k_shape, mode, generator):
    x = torch.randn(x_shape, generator=generator, dtype=torch.float64)
    h = torch.randn(k_shape, generator=generator, dtype=torch.float64)
    got = convolve(x, h, ndim=len(x_shape), mode=mode)
    expected = scipy.signal.convolve(x.numpy(), h.numpy(), mode=mode, method="direct")
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_convolve_even_kernel_same_is_full_offset(generator):
    """Kernel origin at K//2: 'same' is the full result starting at K//2 (scipy uses (K-1)//2)."""
    x = torch.randn(10, 9, generator=generator, dtype=torch.float64)
    h = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    full = scipy.signal.convolve(x.numpy(), h.numpy(), mode="full", method="direct")
    got = convolve(x, h, ndim=2, mode="same")
    np.testing.assert_allclose(got.numpy(), full[2 : 2 + 10, 3 : 3 + 9], atol=1e-12)


@pytest.mark.parametrize("k_shape", [(5, 5), (4, 6), (8, 8)])
def test_convolve_with_centred_delta_is_identity(k_shape, generator):
    x = torch.randn(3, 12, 13, generator=generator)
    delta = torch.zeros(k_shape)
    delta[k_shape[0] // 2, k_shape[1] // 2] = 1.0
    y = convolve(x, delta, ndim=2)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


def test_convolve_batches_broadcast(generator):
    x = torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    h = torch.randn(3, 3, 3, generator=generator, dtype=torch.float64)
    y = convolve(x, h, ndim=2)
    assert y.shape == (2, 3, 8, 8)
    direct = scipy.signal.convolve(x[1, 0].numpy(), h[2].numpy(), mode="same", method="direct")
    np.testing.assert_allclose(y[1, 2].numpy(), direct, atol=1e-12)


def test_convolve_complex(generator):
    x = torch.randn(9, generator=generator, dtype=torch.complex128)
    h = torch.randn(3, generator=generator, dtype=torch.float64)
    expected = np.convolve(x.numpy(), h.numpy(), mode="full")
    np.testing.assert_allclose(convolve(x, h, ndim=1, mode="full").numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 8), (7, 6), (5, 4, 6)])
def test_circular_convolve_matches_periodic_sum(shape, generator):
    """y[r] = sum_s x[(r - s) mod N] h[s], with s measured from the kernel origin N//2."""
    ndim = len(shape)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    h = torch.randn(shape, generator=generator, dtype=torch.float64)
    expected = torch.zeros(shape, dtype=torch.float64)
    for idx in np.ndindex(*shape):
        s = tuple(i - n // 2 for i, n in zip(idx, shape, strict=True))
        expected += h[idx] * torch.roll(x, s, dims=tuple(range(ndim)))
    torch.testing.assert_close(circular_convolve(x, h, ndim=ndim), expected)


def test_circular_delta_is_identity_and_wraps(generator):
    x = torch.randn(2, 9, 8, generator=generator, dtype=torch.float64)
    delta = torch.zeros(9, 8, dtype=torch.float64)
    delta[4, 4] = 1.0
    torch.testing.assert_close(circular_convolve(x, delta, ndim=2), x)
    shifted = torch.zeros(9, 8, dtype=torch.float64)
    shifted[4, 7] = 1.0  # origin + 3 px in x: circular shift, content wraps around
    torch.testing.assert_close(circular_convolve(x, shifted, ndim=2), torch.roll(x, 3, dims=-1))


def test_gaussian_filter_equals_convolution_with_sampled_gaussian(generator):
    """Convolution theorem: multiplying by exp(-2π²σ²k²) == convolving with a unit-area Gaussian."""
    pixel, sigma = 1.0, 2.0  # 2 px: the sampled kernel is band-limited to ~1e-9
    x = torch.randn(32, 32, generator=generator, dtype=torch.float64)
    r2 = (coordinate_grid((32, 32), dtype=torch.float64) * pixel).square().sum(-1)
    kernel = torch.exp(-r2 / (2 * sigma**2)) / (2 * torch.pi * sigma**2) * pixel**2
    y = circular_convolve(x, kernel, ndim=2)
    torch.testing.assert_close(
        gaussian_lowpass(x, ndim=2, sigma_angstrom=sigma, pixel_size_angstrom=pixel),
        y,
        atol=1e-7,
        rtol=0,
    )


def test_convolve_errors():
    with pytest.raises(ValueError, match="mode"):
        convolve(torch.zeros(4, 4), torch.zeros(3, 3), ndim=2, mode="valid")
    with pytest.raises(ValueError, match="must equal"):
        circular_convolve(torch.zeros(4, 4), torch.zeros(3, 3), ndim=2)
