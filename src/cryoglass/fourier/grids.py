"""Coordinate and frequency grids.

Vectors are ordered (x, y[, z]) in the last axis of every grid; arrays are indexed
[(z,) y, x].  Real-space coordinates are in pixels relative to the origin at index ``N//2``;
frequencies are in 1/Å (``k = index_from_DC / (N * pixel_size_angstrom)``), with DC at index
``N//2`` for centred axes and at index 0 for the rfft half-axis.
"""

from __future__ import annotations

import torch

__all__ = [
    "centered_indices",
    "frequency_axis",
    "coordinate_grid",
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


def frequency_grid(
    shape: tuple[int, ...],
    *,
    pixel_size_angstrom: float = 1.0,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Frequency vectors [1/Å] of a centred (or centred-rfft) transform.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
        Real-space shape.  With ``rfft=True`` the last axis has ``w//2 + 1`` entries.

    Returns
    -------
    Tensor, shape (*fourier_shape, len(shape)), last axis ordered (k_x, k_y[, k_z]).
    """
    axes = [
        frequency_axis(n, pixel_size_angstrom=pixel_size_angstrom, device=device, dtype=dtype)
        for n in shape[:-1]
    ]
    axes.append(
        frequency_axis(
            shape[-1],
            pixel_size_angstrom=pixel_size_angstrom,
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
    pixel_size_angstrom: float = 1.0,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """|k| [1/Å] on a centred (or rfft) Fourier grid, shape ``fourier_shape``."""
    k = frequency_grid(
        shape, pixel_size_angstrom=pixel_size_angstrom, rfft=rfft, device=device, dtype=dtype
    )
    return torch.linalg.vector_norm(k, dim=-1)
