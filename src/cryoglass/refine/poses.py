r"""The pose sets searched by refinement: global SO(3) grids, local neighbourhoods, origin grids.

Global search (RELION's coarse pass)
    Every rotation of :func:`cryoglass.geometry.so3_grid` at HEALPix order ``o`` (angular step
    ``60°/2^o``), restricted to the asymmetric unit of cyclic and dihedral point groups (the
    projections of ``A·L`` and ``A`` are the same for every symmetry operator ``L``).
Local search (RELION's oversampling and auto-local searches)
    Around a pose ``A``: ``A·exp([δ]ₓ)`` for the rotation vectors ``δ`` of a cubic lattice of
    spacing ``step`` inside a ball of ``radius`` lattice steps (so the neighbourhood is
    isotropic and its spacing is the angular step).  ``A·exp([δ]ₓ)`` turns the map by ``δ`` before
    ``A`` (RELION's convention: ``A`` takes map to image coordinates).
Origins
    RELION origins ``o`` [pixels] on a square grid of spacing ``step`` inside a disc of radius
    ``range`` (RELION's ``offset_range`` and ``offset_step``), around zero or a previous origin.

References
----------
Scheres, S. H. W. (2012) RELION: implementation of a Bayesian approach to cryo-EM structure
determination. J. Struct. Biol. 180:519-530. https://doi.org/10.1016/j.jsb.2012.09.006
"""

from __future__ import annotations

import math
import re

import torch

from cryoglass.geometry import euler_to_matrix, so3_grid
from cryoglass.geometry.so3_grid import angular_step_for_order

__all__ = [
    "global_rotations",
    "local_rotations",
    "origin_grid",
    "rotation_lattice",
]


def _asymmetric_limits(symmetry: str) -> tuple[float, float]:
    """(largest rot [deg], largest tilt [deg]) of the asymmetric unit of C/D groups."""
    text = symmetry.strip().upper()
    match = re.fullmatch(r"([CD])(\d+)", text)
    if match is None:
        return 360.0, 180.0  # T, O, I: the full sphere (correct, not the fastest)
    n = int(match.group(2))
    if n < 1:
        raise ValueError(f"symmetry {symmetry!r}: the order must be at least 1")
    return 360.0 / n, 90.0 if match.group(1) == "D" else 180.0


def global_rotations(
    order: int, *, symmetry: str = "C1", dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotations of a global search at HEALPix ``order``.

    Parameters
    ----------
    order : int
        HEALPix order (angular step ``60°/2^order``: 2 → 15°, 3 → 7.5°).
    symmetry : str
        Point group; ``Cn`` keeps ``rot < 360°/n``, ``Dn`` also ``tilt ≤ 90°``; other groups
        search the whole sphere.
    dtype : torch dtype

    Returns
    -------
    rotations : Tensor, (R, 3, 3)
        RELION matrices ``A``.
    euler_deg : Tensor, (R, 3)
        The same as (rot, tilt, psi) [degrees].

    Examples
    --------
    >>> global_rotations(1)[0].shape  # 48 directions × 12 psi
    torch.Size([576, 3, 3])
    >>> global_rotations(1, symmetry="C4")[0].shape[0]
    144
    """
    euler = so3_grid(order, dtype=torch.float64)
    max_rot, max_tilt = _asymmetric_limits(symmetry)
    keep = (euler[:, 0] < max_rot - 1e-6) & (euler[:, 1] <= max_tilt + 1e-6)
    euler = euler[keep]
    return euler_to_matrix(euler).to(dtype), euler.to(dtype)


def rotation_lattice(
    step_deg: float, *, radius_steps: float = 1.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Small rotations ``exp([δ]ₓ)`` for a cubic lattice of rotation vectors in a ball.

    Parameters
    ----------
    step_deg : float
        Lattice spacing [degrees] (the angular step).
    radius_steps : float
        Ball radius in lattice steps (1 → 7 rotations, 1.5 → 19, 2 → 33).
    dtype : torch dtype

    Returns
    -------
    Tensor, (Q, 3, 3)
        Identity first.

    Examples
    --------
    >>> rotation_lattice(5.0).shape, rotation_lattice(5.0, radius_steps=2).shape
    (torch.Size([7, 3, 3]), torch.Size([33, 3, 3]))
    """
    r = int(math.floor(radius_steps + 1e-9))
    axis = torch.arange(-r, r + 1, dtype=torch.float64)
    lattice = torch.cartesian_prod(axis, axis, axis)
    lattice = lattice[(lattice**2).sum(1) <= radius_steps**2 + 1e-9]
    order = torch.argsort((lattice**2).sum(1), stable=True)  # identity first
    vectors = lattice[order] * math.radians(step_deg)
    return _rotvec_to_matrix(vectors).to(dtype)


def _rotvec_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotation matrices (..., 3, 3) of rotation vectors (..., 3) [radians]."""
    theta = v.norm(dim=-1, keepdim=True)
    k = v / theta.clamp_min(1e-12)
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    cross = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], dim=-1).reshape(
        *v.shape[:-1], 3, 3
    )
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(cross)
    return eye + s * cross + (1 - c) * cross @ cross


def local_rotations(centre: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
    """Rotations around each centre pose: ``A_b · Δ_q``.

    Parameters
    ----------
    centre : Tensor, (..., 3, 3)
        RELION matrices ``A``.
    lattice : Tensor, (Q, 3, 3)
        From :func:`rotation_lattice`.

    Returns
    -------
    Tensor, (..., Q, 3, 3)
    """
    return centre[..., None, :, :] @ lattice.to(centre.dtype)


def origin_grid(
    range_px: float, step_px: float, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """RELION origins [pixels] on a square grid of spacing ``step_px`` inside a disc.

    Parameters
    ----------
    range_px : float
        Disc radius (``0`` gives only the centre).
    step_px : float
        Grid spacing, > 0.

    Returns
    -------
    Tensor, (S, 2)
        ``(o_x, o_y)``, the centre first.

    Examples
    --------
    >>> origin_grid(1.0, 1.0).shape, origin_grid(2.0, 1.0).shape
    (torch.Size([5, 2]), torch.Size([13, 2]))
    """
    if not step_px > 0:
        raise ValueError(f"the origin step must be > 0 pixels, got {step_px}")
    r = int(math.floor(max(range_px, 0.0) / step_px + 1e-9))
    axis = torch.arange(-r, r + 1, dtype=torch.float64) * step_px
    grid = torch.cartesian_prod(axis, axis)
    grid = grid[(grid**2).sum(1) <= max(range_px, 0.0) ** 2 + 1e-9]
    order = torch.argsort((grid**2).sum(1), stable=True)
    return grid[order].to(dtype)


def step_for_order(order: int) -> float:
    """Angular step [degrees] of a HEALPix order (RELION's ``60/2^order``)."""
    return angular_step_for_order(order)
