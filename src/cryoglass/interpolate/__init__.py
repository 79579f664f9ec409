"""Interpolation of real and complex grids (nearest, linear, cubic) at arbitrary coordinates."""

from cryoglass.interpolate.grid import (
    cubic_kernel,
    interpolate_grid,
    interpolate_grid_reference,
    linear_kernel,
)

__all__ = ["cubic_kernel", "interpolate_grid", "interpolate_grid_reference", "linear_kernel"]
