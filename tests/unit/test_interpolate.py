"""Unit tests of cryoglass.interpolate: fast path vs the explicit-gather reference, exactness."""

from __future__ import annotations

import pytest
import torch

from cryoglass.interpolate import (
    cubic_kernel,
    interpolate_grid,
    interpolate_grid_reference,
)


@pytest.mark.parametrize("method", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("shape", [(9, 8), (7, 8, 9)])
@pytest.mark.parametrize("complex_grid", [False, True])
def test_fast_path_matches_reference(generator, method, shape, complex_grid):
    dtype = torch.complex128 if complex_grid else torch.float64
    grid = torch.randn(shape, generator=generator, dtype=dtype)
    # avoid exact half-pixel ties (nearest rounds them differently) by a tiny irrational offset
    coords = (torch.rand(5, 7, len(shape), generator=generator, dtype=torch.float64) - 0.5) * 12
    coords = coords + 1e-3 * torch.pi
    fast = interpolate_grid(grid, coords, method=method)
    slow = interpolate_grid_reference(grid, coords, method=method)
    assert fast.shape == (5, 7) and fast.dtype == dtype
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


def test_samples_at_grid_points_are_returned_exactly(generator):
    grid = torch.randn(6, 7, 8, generator=generator, dtype=torch.complex128)
    z, y, x = 1, 4, 6  # indices; coordinates are relative to n//2
    coords = torch.tensor([[x - 4.0, y - 3.0, z - 3.0]], dtype=torch.float64)
    for method in ("nearest", "linear", "cubic"):
        value = interpolate_grid(grid, coords, method=method)
        torch.testing.assert_close(value, grid[z, y, x].reshape(1))


def test_linear_reproduces_linear_functions_and_cubic_quadratics(generator):
    n = 16
    axis = torch.arange(n, dtype=torch.float64) - n // 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    coords = (torch.rand(200, 2, generator=generator, dtype=torch.float64) - 0.5) * 10
    plane = 0.3 * x - 1.7 * y + 2.0
    expected = 0.3 * coords[:, 0] - 1.7 * coords[:, 1] + 2.0
    torch.testing.assert_close(interpolate_grid(plane, coords), expected)
    quadratic = x**2 - 0.5 * x * y
    expected_q = coords[:, 0] ** 2 - 0.5 * coords[:, 0] * coords[:, 1]
    cubic = interpolate_grid(quadratic, coords, method="cubic")
    torch.testing.assert_close(cubic, expected_q)
    linear = interpolate_grid(quadratic, coords, method="linear")
    assert (linear - expected_q).abs().max() > 1e-2  # linear cannot reproduce a quadratic


def test_complex_equals_real_and_imaginary_parts(generator):
    grid = torch.randn(8, 8, 8, generator=generator, dtype=torch.complex64)
    coords = (torch.rand(50, 3, generator=generator) - 0.5) * 6
    both = interpolate_grid(grid, coords)
    torch.testing.assert_close(both.real, interpolate_grid(grid.real.contiguous(), coords))
    torch.testing.assert_close(both.imag, interpolate_grid(grid.imag.contiguous(), coords))


def test_out_of_bounds_is_zero(generator):
    grid = torch.randn(8, 8, generator=generator) + 5.0
    coords = torch.tensor([[10.0, 0.0], [0.0, -9.5], [-4.0, 0.0], [-4.5, 0.0]])
    for method in ("nearest", "linear", "cubic"):
        out = interpolate_grid(grid, coords, method=method)
        assert out[0] == 0 and out[1] == 0
        assert out[2] != 0  # first column is inside
    half = interpolate_grid(grid, coords[3:], method="linear")  # halfway to the zero padding
    torch.testing.assert_close(half, 0.5 * grid[4, 0].reshape(1))


def test_cubic_kernel_interpolates():
    u = torch.tensor([0.0, 1.0, 2.0, -1.0, 2.5])
    torch.testing.assert_close(cubic_kernel(u), torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]))


def test_errors_are_specific():
    with pytest.raises(ValueError, match="last axis of length 2"):
        interpolate_grid(torch.zeros(4, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="grid must have 3 axes"):
        interpolate_grid(torch.zeros(4, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="method must be one of"):
        interpolate_grid(torch.zeros(4, 4), torch.zeros(3, 2), method="spline")
