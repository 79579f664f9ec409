"""Grids on the sphere and on SO(3) as RELION builds them (HEALPix directions × psi steps).

RELION samples projection directions with HEALPix (Górski et al. 2005) at ``Nside = 2**order``:
``12 Nside²`` equal-area pixels whose centres are the directions, angular step
``≈ 60° / 2**order`` (order 0: 60°, 1: 30°, 2: 15°, 3: 7.5°, ...).  The in-plane angle psi goes
around the circle in the same step.  A direction (θ, φ) becomes Euler angles rot = φ, tilt = θ.

HEALPix is implemented here in torch (NESTED numbering, as RELION uses); no ``healpy``.

References
----------
Górski et al. (2005) HEALPix: a framework for high-resolution discretization and fast analysis of
data distributed on the sphere. Astrophys. J. 622:759-771. https://doi.org/10.1086/427976
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "angular_step_for_order",
    "healpix_directions",
    "healpix_pix2ang_nest",
    "order_for_angular_step",
    "so3_grid",
]

# The 12 base faces: ring number of each face's southern corner in units of Nside (2 = northern
# row, 3 = equatorial row, 4 = southern row) and the longitude of its centre in units of pi/4.
_FACE_RING = (2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4)
_FACE_LON = (1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7)
_MAX_ORDER = 13


def _check_order(order: int) -> int:
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= _MAX_ORDER:
        raise ValueError(f"HEALPix order must be an int in [0, {_MAX_ORDER}], got {order!r}")
    return order


def angular_step_for_order(order: int) -> float:
    """RELION's angular sampling [deg] for a HEALPix order: ``60 / 2**order``.

    Examples
    --------
    >>> angular_step_for_order(3)
    7.5
    """
    return 60.0 / 2 ** _check_order(order)


def order_for_angular_step(angular_step_deg: float) -> int:
    """Smallest HEALPix order whose step ``60 / 2**order`` is at most ``angular_step_deg``.

    Examples
    --------
    >>> order_for_angular_step(7.5), order_for_angular_step(7.0)
    (3, 4)
    """
    if not angular_step_deg > 0:
        raise ValueError(f"angular_step_deg must be > 0, got {angular_step_deg}")
    order = max(0, math.ceil(math.log2(60.0 / angular_step_deg) - 1e-9))
    return _check_order(order)


def _compress_bits(v: torch.Tensor) -> torch.Tensor:
    """Keep the even bits of ``v`` and pack them together (inverse of bit interleaving)."""
    out = torch.zeros_like(v)
    for bit in range(_MAX_ORDER + 1):
        out |= ((v >> (2 * bit)) & 1) << bit
    return out


def healpix_pix2ang_nest(order: int, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of NESTED HEALPix pixels → colatitude θ and longitude φ in **radians**.

    Parameters
    ----------
    order : int
        ``Nside = 2**order``.
    pixels : Tensor of int64, shape (...)
        Pixel numbers in ``[0, 12 Nside²)``.

    Returns
    -------
    theta, phi : Tensor, shape (...) (float64)
        θ in [0, π] from +z, φ in [0, 2π) from +x.

    Notes
    -----
    A NESTED number is ``face * Nside² + interleave(iy, ix)``.  The ring (from the north pole)
    is ``j = face_ring * Nside - ix - iy - 1``; on the polar caps (``j < Nside`` or
    ``j > 3 Nside``) a ring with ``r`` pixels per quadrant has ``z = ±(1 - r²/(3 Nside²))``;
    in the equatorial belt ``z = 2 (2 Nside - j) / (3 Nside)`` and alternate rings are offset by
    half a pixel.  The position within the ring follows from ``ix - iy`` and the face longitude.

    References
    ----------
    Górski et al. (2005), https://doi.org/10.1086/427976
    """
    nside = 2 ** _check_order(order)
    pixels = torch.as_tensor(pixels, dtype=torch.int64)
    npix = 12 * nside * nside
    if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= npix):
        raise ValueError(f"pixels must lie in [0, {npix}) for order {order}")
    face = pixels // (nside * nside)
    within = pixels % (nside * nside)
    ix = _compress_bits(within)
    iy = _compress_bits(within >> 1)
    face_ring = torch.tensor(_FACE_RING, device=pixels.device)[face]
    face_lon = torch.tensor(_FACE_LON, device=pixels.device)[face]
    ring = face_ring * nside - ix - iy - 1  # 1 .. 4 Nside - 1

    north, south = ring < nside, ring > 3 * nside
    per_quadrant = torch.where(north, ring, torch.where(south, 4 * nside - ring, nside))
    r2 = per_quadrant.double() ** 2 / (3.0 * nside * nside)
    z = torch.where(
        north, 1 - r2, torch.where(south, r2 - 1, (2 * nside - ring).double() * 2 / (3 * nside))
    )
    shift = torch.where(north | south, torch.zeros_like(ring), (ring - nside) & 1)
    jp = (face_lon * per_quadrant + ix - iy + 1 + shift) // 2
    jp = torch.where(jp > 4 * nside, jp - 4 * nside, jp)
    jp = torch.where(jp < 1, jp + 4 * nside, jp)
    phi = (jp.double() - (shift.double() + 1) / 2) * (math.pi / 2) / per_quadrant.double()
    theta = torch.acos(z.clamp(-1, 1))
    return theta, phi


def healpix_directions(
    order: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Projection directions of RELION's HEALPix grid as (rot, tilt) in degrees.

    Parameters
    ----------
    order : int
        HEALPix order (``Nside = 2**order``); angular step :func:`angular_step_for_order`.
    dtype, device : optional

    Returns
    -------
    Tensor, shape (12 * 4**order, 2)
        ``(rot, tilt)`` = (φ, θ) of the NESTED pixel centres, pixel order; rot in [0, 360),
        tilt in (0, 180).  Same column order as Euler angles (rot, tilt, psi).

    Examples
    --------
    >>> healpix_directions(1).shape
    torch.Size([48, 2])
    """
    nside = 2 ** _check_order(order)
    pixels = torch.arange(12 * nside * nside, device=device)
    theta, phi = healpix_pix2ang_nest(order, pixels)
    out = torch.rad2deg(torch.stack([phi, theta], dim=-1))
    return out.to(dtype=dtype or torch.get_default_dtype())


def so3_grid(
    order: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """RELION's SO(3) grid: every HEALPix direction with every psi step, as Euler angles.

    Parameters
    ----------
    order : int
        HEALPix order; use :func:`order_for_angular_step` to start from a step in degrees.
    dtype, device : optional

    Returns
    -------
    Tensor, shape (12 * 4**order * n_psi, 3)
        (rot, tilt, psi) in degrees; directions vary slowest, psi fastest.  ``n_psi =
        ceil(360 / step)`` and psi = ``k * 360 / n_psi`` for ``k = 0 .. n_psi - 1``.

    Notes
    -----
    Full sphere, no symmetry reduction (RELION drops directions outside the asymmetric unit of
    the refinement's symmetry group).  The grid has about ``8π² / step³`` points.

    Examples
    --------
    >>> so3_grid(0).shape  # 12 directions x 6 psi
    torch.Size([72, 3])
    """
    step = angular_step_for_order(order)
    n_psi = math.ceil(360.0 / step - 1e-9)
    directions = healpix_directions(order, dtype=torch.float64, device=device)
    psi = torch.arange(n_psi, dtype=torch.float64, device=device) * (360.0 / n_psi)
    n_dir = directions.shape[0]
    grid = torch.cat(
        [
            directions[:, None, :].expand(n_dir, n_psi, 2),
            psi[None, :, None].expand(n_dir, n_psi, 1),
        ],
        dim=-1,
    ).reshape(-1, 3)
    return grid.to(dtype=dtype or torch.get_default_dtype())
