"""Point-group symmetry in RELION's orientations, and symmetry expansion of poses.

A map ``V`` has symmetry group ``G`` when ``V(L x) = V(x)`` for every ``L`` in ``G``.  The
groups are built here from generators placed as RELION places them (checked against
``relion_refine --print_symmetry_ops`` in ``tests/reference/test_relion_geometry.py``):

=========  ====================================================================================
``Cn``     n-fold about z.
``Dn``     n-fold about z, 2-fold about x.
``T``      3-fold about z, 2-fold about (0, √(2/3), √(1/3)).
``O``      4-folds about x, y, z (3-folds along the cube diagonals).
``I1``     2-folds about x, y, z; 5-fold about (0, 1, φ) (φ = golden ratio).
``I2``     2-folds about x, y, z; 5-fold about (1, 0, φ).  RELION's default ``I``.
``I3``     5-fold about z, 2-fold about y, 5-fold about (−2, 0, 1)/√5.
``I4``     5-fold about z, 2-fold about y, 5-fold about (+2, 0, 1)/√5.
=========  ====================================================================================

Groups with mirrors or inversion (``Ci``, ``Cs``, ``Cnv``, ``Cnh``, ``Sn``, ``Th``, ``Oh``,
``Ih``) are not proper rotations and are not supported (biological particles are chiral).

References
----------
Heymann, Chagoyen & Belnap (2005) Common conventions for interchange and archiving of
three-dimensional electron microscopy information in structural biology.
J. Struct. Biol. 151:196-207. https://doi.org/10.1016/j.jsb.2005.06.001
"""

from __future__ import annotations

import math
import re

import torch

from cryoglass.geometry.euler import euler_to_matrix, matrix_to_euler
from cryoglass.geometry.rotations import rotation_about_axis

__all__ = ["expand_poses", "group_order", "symmetry_matrices"]

_PHI = (1 + math.sqrt(5)) / 2
_X, _Y, _Z = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)

# (fold, axis) generators for the polyhedral groups, in RELION's orientations.
_GENERATORS: dict[str, list[tuple[int, tuple[float, float, float]]]] = {
    "T": [(3, _Z), (2, (0.0, math.sqrt(2 / 3), math.sqrt(1 / 3)))],
    "O": [(4, _Z), (4, _X)],
    "I1": [(2, _X), (2, _Z), (5, (0.0, 1.0, _PHI))],
    "I2": [(2, _X), (2, _Z), (5, (1.0, 0.0, _PHI))],
    "I3": [(5, _Z), (2, _Y), (5, (-2.0, 0.0, 1.0))],
    "I4": [(5, _Z), (2, _Y), (5, (2.0, 0.0, 1.0))],
}
_ORDERS = {"T": 12, "O": 24, "I1": 60, "I2": 60, "I3": 60, "I4": 60}


def _parse_group(group: str) -> tuple[str, int]:
    """Normalise a group name → (kind, n) with kind in C, D, T, O, I1..I4."""
    name = group.strip().upper()
    if name == "I":
        name = "I2"
    if name in _GENERATORS:
        return name, _ORDERS[name]
    match = re.fullmatch(r"([CD])(\d+)", name)
    if match is None or int(match.group(2)) < 1:
        raise ValueError(
            f"symmetry group {group!r} not supported: use Cn or Dn (n >= 1), T, O, I or I1-I4 "
            "(RELION's names; groups with mirrors/inversion are not proper rotations)"
        )
    kind, n = match.group(1), int(match.group(2))
    return kind, n


def group_order(group: str) -> int:
    """Number of elements of a point group: Cn → n, Dn → 2n, T → 12, O → 24, I* → 60."""
    kind, n = _parse_group(group)
    return 2 * n if kind == "D" else n


def _closure(generators: torch.Tensor, order: int) -> torch.Tensor:
    """All products of the generators (G, 3, 3): multiply by generators until nothing is new."""
    elements = torch.eye(3, dtype=generators.dtype)[None]
    while True:
        products = (elements[:, None] @ generators[None, :]).reshape(-1, 3, 3)
        candidates = torch.cat([elements, products])
        distance = (candidates[:, None] - candidates[None, :]).abs().amax(dim=(-1, -2))
        first = (distance < 1e-8).int().argmax(dim=1)  # index of the first equal element
        unique = candidates[first == torch.arange(len(candidates))]
        if len(unique) == len(elements):
            return elements
        if len(unique) > order:
            raise RuntimeError(f"group generation exceeded order {order}")
        elements = unique


def symmetry_matrices(
    group: str, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Rotation matrices of a point group in RELION's orientation, identity first.

    Parameters
    ----------
    group : str
        RELION's name: ``C<n>``, ``D<n>``, ``T``, ``O``, ``I`` (= ``I2``), ``I1``-``I4``
        (case-insensitive).
    dtype, device : optional

    Returns
    -------
    Tensor, shape (G, 3, 3)
        ``G`` = :func:`group_order`.  The set is closed under products and transposes.  The order
        of the elements after the identity is ours, not RELION's.

    Notes
    -----
    Cn: RELION's (passive) ``R_z(360 k / n)``, k = 0..n-1, in RELION's order; Dn adds the
    2-fold about x; T, O, I are generated from the axes in the module docstring by multiplying
    until no new element appears.

    Examples
    --------
    >>> symmetry_matrices("D7").shape
    torch.Size([14, 3, 3])
    """
    kind, n = _parse_group(group)
    dtype = dtype or torch.get_default_dtype()
    f64 = torch.float64
    if kind in ("C", "D"):
        # Negative active angles = RELION's passive Rz(360 k / n), so C_n lists as RELION does.
        angles = torch.arange(n, dtype=f64) * (-360.0 / n)
        cyclic = rotation_about_axis(torch.tensor(_Z, dtype=f64), angles)
        if kind == "C":
            out = cyclic
        else:
            flip = rotation_about_axis(torch.tensor(_X, dtype=f64), 180.0)
            out = torch.cat([cyclic, cyclic @ flip])
    else:
        generators = torch.stack(
            [
                rotation_about_axis(torch.tensor(axis, dtype=f64), 360.0 / fold)
                for fold, axis in _GENERATORS[kind]
            ]
        )
        out = _closure(generators, n)
        if len(out) != n:
            raise RuntimeError(f"group {group} generated {len(out)} elements, expected {n}")
    # Snap round-off (e.g. 6e-17 for cos 90) so exact entries stay exact.
    out = torch.where(out.abs() < 1e-12, torch.zeros_like(out), out)
    return out.to(dtype=dtype, device=device)


def expand_poses(euler_deg: torch.Tensor, group: str) -> torch.Tensor:
    """Symmetry-equivalent Euler angles of each pose, as ``relion_particle_symmetry_expand``.

    Parameters
    ----------
    euler_deg : Tensor, shape (..., 3)
        RELION (rot, tilt, psi) in degrees.
    group : str
        See :func:`symmetry_matrices`.

    Returns
    -------
    Tensor, shape (..., G, 3)
        Euler angles of ``A @ L_g`` for every group element ``L_g`` (identity first), so entry 0
        is the input pose (re-normalised by ``matrix_to_euler``).

    Notes
    -----
    Projecting a map with symmetry ``L`` at pose ``A L``: ``V((A L)^T x) = V(L^T A^T x) =
    V(A^T x)`` — the same image, so all ``G`` poses explain a particle equally well.  RELION's
    expansion multiplies on the right in the same way (pinned by a RELION test); ``L A`` would
    be a different, wrong set.
    """
    euler = torch.as_tensor(euler_deg)
    if not euler.is_floating_point():
        euler = euler.to(torch.get_default_dtype())
    if euler.shape[-1] != 3:
        raise ValueError(f"euler_deg must have shape (..., 3), got {tuple(euler.shape)}")
    ops = symmetry_matrices(group, dtype=euler.dtype, device=euler.device)
    a = euler_to_matrix(euler)[..., None, :, :]
    return matrix_to_euler(a @ ops)
