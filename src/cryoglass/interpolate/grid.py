r"""Interpolation of real or complex 2D/3D grids at arbitrary (batched) coordinates.

Coordinates are in pixels relative to the origin at index ``N//2`` of every axis and ordered
``(x, y[, z])``, as everywhere in cryoglass; a grid is indexed ``[(z,) y, x]``.  Samples that
fall outside the grid are zero ("zero padding"): a coordinate more than one kernel half-width
outside gives exactly 0, one near the edge mixes real samples with zeros.

Two implementations of the same maths live here:

* :func:`interpolate_grid` — the fast path.  Nearest and (bi/tri)linear use
  :func:`torch.nn.functional.grid_sample`; cubic uses the separable gather below.
* :func:`interpolate_grid_reference` — a readable reference: for every output point it gathers
  the ``S**ndim`` neighbouring samples (``S = 1, 2, 4`` for nearest, linear, cubic) and sums them
  with separable weights ``w(u) = Π_d k(u_d)``.  Tests check the fast path against it.

Complex grids are interpolated as two real channels (real and imaginary part).  That is exactly
right because every kernel here is *linear* in the samples: interp(a + ib) = interp(a) +
i·interp(b).  What does not commute with interpolation is a non-linear map such as amplitude
and phase: interpolating |F| and arg F separately is wrong near phase wraps.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as nnf

__all__ = ["interpolate_grid", "interpolate_grid_reference", "cubic_kernel", "linear_kernel"]

_METHODS = ("nearest", "linear", "cubic")


def linear_kernel(u: torch.Tensor) -> torch.Tensor:
    """Triangle (linear) kernel ``max(0, 1 − |u|)``; ``u`` in pixels."""
    return (1.0 - u.abs()).clamp_min(0.0)


def cubic_kernel(u: torch.Tensor, *, a: float = -0.5) -> torch.Tensor:
    r"""Keys' cubic convolution kernel (``a = −0.5``: the Catmull-Rom spline).

    Notes
    -----
    .. math::

        k(u) = \begin{cases} (a+2)|u|^3 - (a+3)|u|^2 + 1 & |u| \le 1 \\
               a|u|^3 - 5a|u|^2 + 8a|u| - 4a & 1 < |u| < 2 \\ 0 & \text{otherwise} \end{cases}

    It interpolates (``k(0) = 1``, ``k(±1) = k(±2) = 0``) and reproduces quadratics exactly.

    References
    ----------
    Keys, R. (1981). Cubic convolution interpolation for digital image processing.
    IEEE Trans. Acoust. Speech Signal Process. 29, 1153-1160. https://doi.org/10.1109/TASSP.1981.1163711
    """
    s = u.abs()
    inner = ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0
    outer = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
    return torch.where(s <= 1.0, inner, torch.where(s < 2.0, outer, torch.zeros_like(s)))


def _check(grid: torch.Tensor, coords: torch.Tensor, method: str) -> int:
    ndim = coords.shape[-1] if coords.ndim else 0
    if ndim not in (2, 3):
        raise ValueError(
            "coords must have a last axis of length 2 (x, y) or 3 (x, y, z), "
            f"got shape {tuple(coords.shape)}"
        )
    if grid.ndim != ndim:
        raise ValueError(
            f"grid must have {ndim} axes for {ndim}D coordinates, got shape {tuple(grid.shape)}"
        )
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return ndim


def _as_channels(grid: torch.Tensor) -> torch.Tensor:
    """(…spatial) real or complex → (C, …spatial) real, C = 1 or 2 (real, imaginary)."""
    if grid.is_complex():
        return torch.movedim(torch.view_as_real(grid), -1, 0)
    return grid.unsqueeze(0)


def _from_channels(values: torch.Tensor, complex_out: bool) -> torch.Tensor:
    """(C, …points) → (…points), complex when C = 2 came from a complex grid."""
    if complex_out:
        return torch.complex(values[0], values[1])
    return values[0]


def interpolate_grid(
    grid: torch.Tensor, coords: torch.Tensor, *, method: str = "linear"
) -> torch.Tensor:
    """Sample a real or complex 2D/3D grid at arbitrary coordinates (fast path).

    Parameters
    ----------
    grid : Tensor, shape (h, w) or (d, h, w), real or complex
        Samples; the origin is at index ``n//2`` of each axis.
    coords : Tensor, shape (..., 2) or (..., 3)
        Points in pixels relative to the origin, ordered (x, y[, z]).
    method : {"nearest", "linear", "cubic"}
        Interpolation kernel (linear = bi/trilinear; cubic = Keys/Catmull-Rom, separable).

    Returns
    -------
    Tensor, shape (...), dtype of ``grid``
        Interpolated values; zero outside the grid.

    Notes
    -----
    ``grid_sample`` with ``align_corners=True`` maps the normalised coordinate −1 (+1) to the
    centre of the first (last) sample, so index ``i`` on an axis of length ``n`` is
    ``g = 2 i / (n − 1) − 1``, with ``i = x + n//2``.  Its grid's last axis is ordered (x, y, z)
    for an input indexed (N, C, D, H, W) — the same order as cryoglass coordinates.

    Examples
    --------
    >>> import torch
    >>> g = torch.arange(16.0).reshape(4, 4)          # origin at index 2
    >>> interpolate_grid(g, torch.tensor([[0.5, 0.0]])) # halfway between g[2,2] and g[2,3]
    tensor([10.5000])
    """
    ndim = _check(grid, coords, method)
    if method == "cubic":
        return interpolate_grid_reference(grid, coords, method="cubic")
    shape = torch.tensor(grid.shape[::-1], dtype=coords.dtype, device=coords.device)  # (w, h[, d])
    index = coords + torch.div(shape, 2, rounding_mode="floor")
    normalised = 2.0 * index / (shape - 1).clamp_min(1) - 1.0
    points = normalised.reshape(1, *([1] * (ndim - 1)), -1, ndim).to(grid.real.dtype)
    channels = _as_channels(grid).unsqueeze(0)
    mode = "nearest" if method == "nearest" else "bilinear"
    values = nnf.grid_sample(channels, points, mode=mode, padding_mode="zeros", align_corners=True)
    values = values.reshape(values.shape[1], *coords.shape[:-1])
    return _from_channels(values, grid.is_complex())


def interpolate_grid_reference(
    grid: torch.Tensor, coords: torch.Tensor, *, method: str = "linear"
) -> torch.Tensor:
    """Readable reference interpolation: explicit gather of the neighbouring samples.

    Parameters
    ----------
    grid : Tensor, shape (h, w) or (d, h, w), real or complex
    coords : Tensor, shape (..., 2) or (..., 3)
        Pixels relative to the origin at ``n//2``, ordered (x, y[, z]).
    method : {"nearest", "linear", "cubic"}

    Returns
    -------
    Tensor, shape (...)
        ``Σ_corners grid[corner] · Π_d k(x_d − corner_d)`` over the ``S**ndim`` corners around
        each point (``S`` = 1, 2, 4); corners outside the grid contribute zero.

    Notes
    -----
    Trilinear interpolation (``S = 2``) in 3D, with ``x0 = ⌊x⌋`` and ``f = x − x0`` per axis:

    .. math:: v = \\sum_{a,b,c \\in \\{0,1\\}} V[z_0+c, y_0+b, x_0+a]\\,
                  (f_x^a (1-f_x)^{1-a}) (f_y^b (1-f_y)^{1-b}) (f_z^c (1-f_z)^{1-c})
    """
    ndim = _check(grid, coords, method)
    sizes = grid.shape[::-1]  # (w, h[, d]) matches (x, y[, z])
    index = torch.stack([coords[..., d] + sizes[d] // 2 for d in range(ndim)], dim=-1)
    if method == "nearest":
        support, first = 1, torch.floor(index + 0.5)
    else:
        support = 2 if method == "linear" else 4
        first = torch.floor(index) - (support // 2 - 1)
    flat = grid.reshape(-1)
    out = torch.zeros(coords.shape[:-1], dtype=grid.dtype, device=grid.device)
    for offsets in itertools.product(range(support), repeat=ndim):
        corner = first + torch.tensor(offsets, dtype=index.dtype, device=index.device)
        weight = torch.ones_like(index[..., 0])
        inside = torch.ones_like(weight, dtype=torch.bool)
        linear_index = torch.zeros_like(weight, dtype=torch.long)
        for d in reversed(range(ndim)):  # z (slowest) … x (fastest)
            u = index[..., d] - corner[..., d]
            if method == "linear":
                weight = weight * linear_kernel(u)
            elif method == "cubic":
                weight = weight * cubic_kernel(u)
            inside = inside & (corner[..., d] >= 0) & (corner[..., d] <= sizes[d] - 1)
            linear_index = linear_index * sizes[d] + corner[..., d].long().clamp(0, sizes[d] - 1)
        values = flat[linear_index.reshape(-1)].reshape(weight.shape)
        out = out + torch.where(inside, weight, torch.zeros_like(weight)) * values
    return out
