"""Coordinate and frequency grids.

Vectors are ordered (x, y[, z]) in the last axis of every grid; arrays are indexed
[(z,) y, x].  Real-space coordinates are in pixels relative to the origin at index ``N//2``;
frequencies are in 1/Å (``k = index_from_DC / (N * pixel_size_angstrom)``), with DC at index
``N//2`` for centred axes and at index 0 for the rfft half-axis.  Grids of frequencies accept
one pixel size or one per axis, ordered (x, y[, z]) like vectors (maps whose voxels are not
cubes, e.g. an MRC header with different ``cella / mx``, ``/ my``, ``/ mz``).
"""

from __future__ import annotations

import torch

__all__ = [
    "centered_indices",
    "frequency_axis",
    "coordinate_grid",
    "axis_pixel_sizes",
    "frequency_grid",
    "frequency_radius",
]


def centered_indices(
    n: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Integer offsets from the origin at ``n//2``: ``arange(n) - n//2``, shape (n,)."""
    dtype = dtype or torch.get_default_dtype()
    return torch.arange(n, device=device, dtype=dtype) - (n // 2)


def frequency_axis(
    n: int,
    *,
    pixel_size_angstrom: float = 1.0,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Spatial frequencies of one axis [1/Å].

    Centred: ``(arange(n) - n//2) / (n * pixel_size_angstrom)``; rfft half-axis:
    ``arange(n//2 + 1) / (n * pixel_size_angstrom)``.
    """
    dtype = dtype or torch.get_default_dtype()
    if rfft:
        idx = torch.arange(n // 2 + 1, device=device, dtype=dtype)
    else:
        idx = centered_indices(n, device=device, dtype=dtype)
    return idx / (n * pixel_size_angstrom)


def coordinate_grid(
    shape: tuple[int, ...],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Pixel coordinates relative to the origin at N//2.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)

    Returns
    -------
    Tensor, shape (*shape, len(shape))
        Last axis ordered (x, y[, z]).
    """
    axes = [centered_indices(n, device=device, dtype=dtype) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1)


def axis_pixel_sizes(
    pixel_size_angstrom: float | tuple[float, ...], ndim: int
) -> tuple[float, ...]:
    """Pixel size of each array axis, in array order ([z,] y, x).

    ``pixel_size_angstrom`` is one number, or one per axis ordered (x, y[, z]) like vectors.

    Examples
    --------
    >>> axis_pixel_sizes((1.0, 2.0, 3.0), 3)
    (3.0, 2.0, 1.0)
    >>> axis_pixel_sizes(1.5, 2)
    (1.5, 1.5)
    """
    if isinstance(pixel_size_angstrom, tuple | list):
        if len(pixel_size_angstrom) != ndim:
            raise ValueError(
                f"need {ndim} pixel sizes (x, y[, z]), got {tuple(pixel_size_angstrom)}"
            )
        return tuple(float(p) for p in reversed(pixel_size_angstrom))
    return (float(pixel_size_angstrom),) * ndim


def frequency_grid(
    shape: tuple[int, ...],
    *,
    pixel_size_angstrom: float | tuple[float, ...] = 1.0,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Frequency vectors [1/Å] of a centred (or centred-rfft) transform.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
        Real-space shape.  With ``rfft=True`` the last axis has ``w//2 + 1`` entries.
    pixel_size_angstrom : float or tuple of float
        One pixel size, or one per axis ordered (x, y[, z]): ``k_i = j_i / (N_i · p_i)``.

    Returns
    -------
    Tensor, shape (*fourier_shape, len(shape)), last axis ordered (k_x, k_y[, k_z]).
    """
    pixels = axis_pixel_sizes(pixel_size_angstrom, len(shape))
    axes = [
        frequency_axis(n, pixel_size_angstrom=p, device=device, dtype=dtype)
        for n, p in zip(shape[:-1], pixels[:-1], strict=True)
    ]
    axes.append(
        frequency_axis(
            shape[-1],
            pixel_size_angstrom=pixels[-1],
            rfft=rfft,
            device=device,
            dtype=dtype,
        )
    )
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1)


def frequency_radius(
    shape: tuple[int, ...],
    *,
    pixel_size_angstrom: float | tuple[float, ...] = 1.0,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """|k| [1/Å] on a centred (or rfft) Fourier grid, shape ``fourier_shape``."""
    k = frequency_grid(
        shape, pixel_size_angstrom=pixel_size_angstrom, rfft=rfft, device=device, dtype=dtype
    )
    return torch.linalg.vector_norm(k, dim=-1)
