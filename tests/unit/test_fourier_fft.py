"""Centred FFTs: Parseval, centring convention, round trips, fast sizes."""

from __future__ import annotations

import pytest
import torch

from cryoglass.fourier import (
    fftn_centered,
    ifftn_centered,
    irfftn_centered,
    next_fast_size,
    rfftn_centered,
)


def _half(full: torch.Tensor, width: int) -> torch.Tensor:
    """The rfft half grid cut from a centred full grid (Nyquist column is index 0 of full)."""
    half = full[..., width // 2 :]
    return torch.cat([half, full[..., :1]], dim=-1) if width % 2 == 0 else half


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (6, 5, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parseval(shape, dtype, generator):
    """sum |x|^2 == sum |F|^2 / N_total with the unscaled ("backward") forward DFT."""
    x = torch.randn(2, *shape, generator=generator, dtype=torch.float64).to(dtype)
    ndim = len(shape)
    f = fftn_centered(x, ndim=ndim)
    n_total = torch.tensor(shape).prod().item()
    lhs = x.square().sum(dim=tuple(range(-ndim, 0)))
    rhs = f.abs().square().sum(dim=tuple(range(-ndim, 0))) / n_total
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(rhs, lhs, rtol=tol, atol=0)


@pytest.mark.parametrize("n", [8, 9])
def test_delta_at_origin_has_flat_real_transform(n):
    """A delta at index N//2 is the real-space origin: its centred transform is exactly 1."""
    x = torch.zeros(n, n, dtype=torch.float64)
    x[n // 2, n // 2] = 1.0
    f = fftn_centered(x, ndim=2)
    torch.testing.assert_close(f, torch.ones(n, n, dtype=torch.complex128))


@pytest.mark.parametrize("shape", [(8, 6), (7, 5), (4, 6, 5)])
def test_round_trips(shape, generator):
    x = torch.randn(3, *shape, generator=generator, dtype=torch.float64)
    ndim = len(shape)
    torch.testing.assert_close(ifftn_centered(fftn_centered(x, ndim=ndim), ndim=ndim).real, x)
    h = rfftn_centered(x, ndim=ndim)
    torch.testing.assert_close(irfftn_centered(h, ndim=ndim, last_size=shape[-1]), x)
    full = fftn_centered(x, ndim=ndim)
    torch.testing.assert_close(h, _half(full, shape[-1]))


def test_next_fast_size():
    assert [next_fast_size(n) for n in (1, 11, 13, 97, 128, 257)] == [1, 12, 14, 98, 128, 270]
    with pytest.raises(ValueError, match="n must be"):
        next_fast_size(0)
