"""Unit tests of cryoglass.ctf.correct: multiply, phase flip, Wiener filter."""

from __future__ import annotations

import pytest
import torch

from cryoglass.ctf import CTFParams, ctf_2d, multiply_ctf, phase_flip, wiener_filter
from cryoglass.fourier import rfft2_centered

F64 = torch.float64
PIXEL = 1.4


def _params() -> CTFParams:
    return CTFParams(
        defocus_u_angstrom=torch.tensor([9000.0, 14000.0, 21000.0], dtype=F64),
        defocus_v_angstrom=torch.tensor([8000.0, 15000.0, 20000.0], dtype=F64),
        astigmatism_angle_deg=torch.tensor([10.0, -50.0, 120.0], dtype=F64),
        bfactor_a2=torch.tensor([0.0, 40.0, 0.0], dtype=F64),
    )


def _images(generator: torch.Generator, shape=(3, 40, 36)) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=F64)


def _spectrum_ratio(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    return torch.fft.rfft2(after) / torch.fft.rfft2(before)


def _inner(x: torch.Tensor) -> torch.Tensor:
    """Drop the Nyquist row and column of an even-sized rfft grid (FFT order), where ±k alias
    and an astigmatic CTF cannot be applied exactly to a real image."""
    h = x.shape[-2]
    rows = [i for i in range(h) if i != h // 2]
    return x[..., rows, :-1]


def test_multiply_ctf_of_centred_delta_is_the_ctf() -> None:
    delta = torch.zeros(3, 32, 32, dtype=F64)
    delta[:, 16, 16] = 1.0
    image = multiply_ctf(delta, _params(), pixel_size_angstrom=PIXEL)
    spectrum = rfft2_centered(image)
    expected = ctf_2d(_params(), image_size=32, pixel_size_angstrom=PIXEL)
    assert spectrum.imag.abs().max() < 1e-12
    # centred layout: row 0 and column 16 are the Nyquist row/column (±k alias there)
    torch.testing.assert_close(spectrum.real[:, 1:, :-1], expected[:, 1:, :-1], rtol=0, atol=1e-12)


def test_multiply_ctf_is_a_fourier_multiplication(generator: torch.Generator) -> None:
    images = _images(generator)
    out = multiply_ctf(images, _params(), pixel_size_angstrom=PIXEL)
    ctf = ctf_2d(_params(), image_size=(40, 36), pixel_size_angstrom=PIXEL, centered=False)
    ratio = _spectrum_ratio(out, images)
    torch.testing.assert_close(_inner(ratio.real), _inner(ctf), rtol=0, atol=1e-9)


def test_phase_flip_keeps_amplitudes_and_undoes_sign(generator: torch.Generator) -> None:
    images = _images(generator)
    observed = multiply_ctf(images, _params(), pixel_size_angstrom=PIXEL)
    flipped = phase_flip(observed, _params(), pixel_size_angstrom=PIXEL)
    ctf = ctf_2d(_params(), image_size=(40, 36), pixel_size_angstrom=PIXEL, centered=False)
    ratio = _spectrum_ratio(flipped, images)
    torch.testing.assert_close(_inner(ratio.real), _inner(ctf.abs()), rtol=0, atol=1e-9)
    twice = phase_flip(
        phase_flip(images, _params(), pixel_size_angstrom=PIXEL),
        _params(),
        pixel_size_angstrom=PIXEL,
    )
    # flipping twice is the identity (except on the aliased Nyquist lines)
    torch.testing.assert_close(
        _inner(_spectrum_ratio(twice, images)).real, torch.ones(3, 39, 18, dtype=F64)
    )


def test_wiener_filter_response(generator: torch.Generator) -> None:
    images = _images(generator)
    observed = multiply_ctf(images, _params(), pixel_size_angstrom=PIXEL)
    restored = wiener_filter(observed, _params(), pixel_size_angstrom=PIXEL, wiener_constant=0.05)
    ctf = ctf_2d(_params(), image_size=(40, 36), pixel_size_angstrom=PIXEL, centered=False)
    ratio = _spectrum_ratio(restored, images)
    expected = ctf**2 / (ctf**2 + 0.05)
    torch.testing.assert_close(_inner(ratio.real), _inner(expected), rtol=0, atol=1e-9)
    by_snr = wiener_filter(observed, _params(), pixel_size_angstrom=PIXEL, snr=20.0)
    torch.testing.assert_close(by_snr, restored, rtol=0, atol=1e-12)
    # restores the image better than the observation does
    assert (restored - images).norm() < (observed - images).norm()


def test_wiener_filter_argument_errors(generator: torch.Generator) -> None:
    images = _images(generator)
    with pytest.raises(ValueError, match="not both"):
        wiener_filter(images, _params(), pixel_size_angstrom=PIXEL, snr=1.0, wiener_constant=1.0)
    with pytest.raises(ValueError, match="snr"):
        wiener_filter(images, _params(), pixel_size_angstrom=PIXEL, snr=0.0)
    with pytest.raises(ValueError, match="images must be a real floating tensor"):
        multiply_ctf(torch.zeros(8, dtype=F64), _params(), pixel_size_angstrom=PIXEL)


def test_batches_broadcast_and_inputs_are_untouched(generator: torch.Generator) -> None:
    images = _images(generator, (2, 1, 24, 24))
    before = images.clone()
    out = phase_flip(images, _params(), pixel_size_angstrom=PIXEL)
    assert out.shape == (2, 3, 24, 24)
    assert torch.equal(images, before)
    single = phase_flip(images[1, 0], _params()[2], pixel_size_angstrom=PIXEL)
    torch.testing.assert_close(out[1, 2], single, rtol=0, atol=1e-12)
    assert multiply_ctf(images.float(), _params(), pixel_size_angstrom=PIXEL).dtype == torch.float32
