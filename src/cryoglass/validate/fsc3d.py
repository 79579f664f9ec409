r"""Conical FSC ("3DFSC", Tan et al. 2017): directional resolution, sphericity, the 3DFSC map.

Conical FSC
-----------
For a cone axis ``ĉ`` (a unit vector) and half-angle ``θ`` (20° by default), the FSC of shell
``i`` is the ordinary FSC restricted to the voxels of the shell that lie in the *double* cone
``|k̂·ĉ| ≥ cos θ`` (``k`` and ``−k`` carry the same information in a real map):

.. math:: \mathrm{FSC}_i(\hat c) = \frac{\mathrm{Re}\sum_{k\in S_i,\,
          |\hat k\cdot\hat c|\ge\cos\theta}
          F_1 F_2^*}{\sqrt{\sum |F_1|^2 \sum |F_2|^2}} .

Shells are cryoglass's (:mod:`cryoglass.validate.fsc`: ``floor(r + ½)``, rfft half grid with
full-grid counting).  Axes: the vertices of an icosphere (a subdivided icosahedron; level 3 =
642 axes, ≈8° apart, evenly spread and centrally symmetric), which also triangulate the
3DFSC surface for the sphericity.  Tan et al.'s program evaluates one cone per Fourier voxel
(the voxel's own direction); we evaluate it on the axes and give every voxel the FSC of the
cone whose axis is nearest to its direction — the 3DFSC map the program writes, up to the
≈4° quantisation of the directions.  Accumulation: per chunk of voxels, the (voxels × axes) cosine
matrix is thresholded and the voxels' (Re F₁F₂*, |F₁|², |F₂|²) are added (``index_add``) to
the sums of the ≈6 % of (voxel, axis) pairs inside a cone — never a (voxels of the whole box ×
axes) matrix, and no dense float64 product.

Directional resolution
----------------------
Per cone, where its FSC first drops below ``max(0.143, 3/√n)`` (``n`` the cone's voxels in the
shell: the 3σ level of pure noise guards the few-voxel low shells; linear interpolation),
ignoring shells with fewer than ``MIN_CONE_VOXELS`` voxels; NaN ("no resolution") when the
FSC is below that limit already at the first shell with enough voxels.  The global
resolution uses the same rule with the whole shell's ``n`` (None when there is none).  The
histogram of these values over the (nearly equal-area) axes is
the 3DFSC histogram.

Sphericity (Tan et al. 2017, definition of the 3DFSC program)
------------------------------------------------------------
The 3DFSC map is thresholded at **0.5** (the program's ``ThresholdForSphericity`` default),
keeping only voxels connected to the origin through voxels above the threshold along the
radial direction, with every shell coarser than the **high-pass limit of 200 Å** counted as
inside (the program's ``HighPassFilter`` default).  The sphericity is Wadell's

.. math:: \Psi = \frac{\pi^{1/3}\,(6V)^{2/3}}{A}

of the resulting solid (``V`` volume, ``A`` surface area; 1 for a ball, smaller for any
other shape).  In small boxes the lowest shells of a cone hold only a handful of voxels and
their FSC is noise; shells where a cone holds fewer than ``MIN_CONE_VOXELS = 30`` voxels
(``4π s²(1 − cos θ) < 30``, i.e. ``s ≤ 6`` at 20°) are counted as inside as well — at the
program's usual box and pixel sizes the 200 Å high-pass already covers them.  The program
measures ``A`` by marching cubes on the Gaussian-blurred (σ = 1 voxel) binary map and ``V``
as its voxel count; we measure both on the star-shaped polyhedron
with vertices ``r(ĉ)·ĉ``, where ``r(ĉ)`` is the (interpolated) radius at which the cone FSC
along ``ĉ`` first drops below 0.5 — the same surface without voxelisation and blurring (a
perfect ball gives Ψ = 0.998 on the level-3 icosphere, the voxel route about 0.97-0.99).

Best and worst directions
-------------------------
The principal axes of that solid: the eigenvectors of its second-moment tensor
``J = ∫ x xᵀ dV`` (summed exactly over the tetrahedra origin–face).  ``worst_direction`` is
the axis of least extent (smallest eigenvalue), ``best_direction`` that of greatest extent;
unit vectors (x, y, z) in the map frame, sign chosen so that the largest component is
positive.  A whole poorly sampled cap gives a flattened solid, so this is more robust than the
single worst cone.

References
----------
Tan, Y. Z., Baldwin, P. R., Davis, J. H., Williamson, J. R., Potter, C. S., Carragher, B. &
Lyumkis, D. (2017). Addressing preferred specimen orientation in single-particle cryo-EM
through tilting. Nat. Methods 14, 793–796. https://doi.org/10.1038/nmeth.4347

Wadell, H. (1935). Volume, shape, and roundness of quartz particles. J. Geol. 43, 250–280.
https://doi.org/10.1086/624298
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from cryoglass.fourier.radial import crossing_shell
from cryoglass.validate.fsc import (
    fourier_shell_correlation,
    fourier_shell_index,
    fourier_shell_sizes,
)

__all__ = [
    "ThreeDFSC",
    "conical_fsc",
    "icosphere",
    "principal_axes",
    "sphericity",
    "three_d_fsc",
]

_F64 = torch.float64

#: Cones with fewer Fourier voxels than this in a shell give unusable FSC values; such
#: (low) shells are treated like the high-pass region (see the module docstring).
MIN_CONE_VOXELS = 30


# ----------------------------------------------------------------------------- icosphere
@functools.lru_cache(maxsize=8)
def _icosphere_cached(subdivisions: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = (1 + math.sqrt(5)) / 2
    verts = [
        (-1, t, 0),
        (1, t, 0),
        (-1, -t, 0),
        (1, -t, 0),
        (0, -1, t),
        (0, 1, t),
        (0, -1, -t),
        (0, 1, -t),
        (t, 0, -1),
        (t, 0, 1),
        (-t, 0, -1),
        (-t, 0, 1),
    ]
    faces = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    v = torch.tensor(verts, dtype=_F64)
    f = torch.tensor(faces, dtype=torch.long)
    for _ in range(subdivisions):
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(dim=1).values
        unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
        mid = len(v) + inverse.reshape(3, -1)  # midpoint index of edges 01, 12, 20 per face
        v = torch.cat([v, (v[unique[:, 0]] + v[unique[:, 1]]) / 2])
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        ab, bc, ca = mid[0], mid[1], mid[2]
        f = torch.cat(
            [torch.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))]
        )
    return v / v.norm(dim=1, keepdim=True), f


def icosphere(subdivisions: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Evenly spread unit vectors and their triangulation (subdivided icosahedron).

    Parameters
    ----------
    subdivisions : int
        0 → 12 vertices; each level quadruples the faces (3 → 642 vertices, 1280 faces).

    Returns
    -------
    vertices : Tensor, float64, (10·4^s + 2, 3)
        Unit vectors (x, y, z); the set is centrally symmetric.
    faces : LongTensor, (20·4^s, 3)
        Counter-clockwise seen from outside.
    """
    if not 0 <= subdivisions <= 6:
        raise ValueError(f"subdivisions must be in 0..6, got {subdivisions}")
    v, f = _icosphere_cached(int(subdivisions))
    return v.clone(), f.clone()


# ----------------------------------------------------------------------------- cone sums
def _check_pair(map1: torch.Tensor, map2: torch.Tensor) -> None:
    if map1.ndim != 3 or map2.ndim != 3:
        raise ValueError(
            f"3DFSC needs two 3D maps, got shapes {tuple(map1.shape)} and {tuple(map2.shape)}"
        )
    if map1.shape != map2.shape:
        raise ValueError(f"half maps differ in shape: {tuple(map1.shape)} vs {tuple(map2.shape)}")
    if len(set(map1.shape)) != 1:
        raise ValueError(f"3DFSC needs cubic maps, got {tuple(map1.shape)}")


def _check_angle(cone_half_angle_deg: float) -> None:
    if not 0.0 < float(cone_half_angle_deg) < 90.0:
        raise ValueError(f"cone half-angle must be in (0°, 90°), got {cone_half_angle_deg}")


def _half_grid_frequencies(n: int, device) -> torch.Tensor:
    """(n, n, n//2+1, 3) integer frequencies (kx, ky, kz) of torch.fft.rfftn's layout."""
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=_F64, device=device)
    kx = torch.arange(n // 2 + 1, dtype=_F64, device=device)
    kz_, ky_, kx_ = torch.meshgrid(k, k, kx, indexing="ij")
    return torch.stack((kx_, ky_, kz_), dim=-1)


@dataclass(frozen=True)
class _ConeSums:
    fsc: torch.Tensor  # (M, n_shells)
    nearest: torch.Tensor  # (n_inside,) axis index per voxel
    inside: torch.Tensor  # flat indices into the half grid of voxels with shell < n_shells
    shells: torch.Tensor  # shell of each of those voxels
    counts: torch.Tensor  # (M, n_shells) full-grid voxels per cone and shell


def _cone_sums(
    map1: torch.Tensor,
    map2: torch.Tensor,
    axes: torch.Tensor,
    cos_limit: float,
    *,
    chunk_size: int = 16_384,
) -> _ConeSums:
    n = map1.shape[-1]
    n_shells = n // 2 + 1
    f1 = torch.fft.rfftn(map1.to(torch.float32), dim=(-3, -2, -1))
    f2 = torch.fft.rfftn(map2.to(torch.float32), dim=(-3, -2, -1))
    cross = (f1.real * f2.real + f1.imag * f2.imag).reshape(-1)
    p1 = f1.abs().square().reshape(-1)
    p2 = f2.abs().square().reshape(-1)
    shell = fourier_shell_index(
        tuple(map1.shape), rfft=True, centered=False, device=map1.device
    ).reshape(-1)
    kx = torch.arange(n // 2 + 1, device=map1.device).expand(n, n, -1).reshape(-1)
    weight = torch.where((kx == 0) | ((n % 2 == 0) & (kx == n // 2)), 1.0, 2.0).to(_F64)
    inside = torch.nonzero(shell < n_shells).flatten()
    order = torch.argsort(shell[inside], stable=True)
    inside = inside[order]
    shells = shell[inside]
    freq = _half_grid_frequencies(n, map1.device).reshape(-1, 3)[inside]
    unit = (freq / freq.norm(dim=1, keepdim=True).clamp_min(1e-12)).to(torch.float32)
    values = torch.stack((cross[inside], p1[inside], p2[inside]), dim=1).to(_F64)
    values = torch.cat([values, torch.ones_like(values[:, :1])], dim=1) * weight[inside, None]
    axes32 = axes.to(torch.float32)
    m = axes.shape[0]
    sums = torch.zeros(n_shells * m, 4, dtype=_F64, device=map1.device)
    nearest = torch.zeros(len(inside), dtype=torch.long, device=map1.device)
    for start in range(0, len(inside), chunk_size):
        stop = min(start + chunk_size, len(inside))
        cosine = (unit[start:stop] @ axes32.T).abs_()  # (chunk, M)
        nearest[start:stop] = cosine.argmax(dim=1)
        voxel, axis = torch.nonzero(cosine >= cos_limit, as_tuple=True)  # ~6 % of pairs at 20°
        voxel = voxel + start
        sums.index_add_(0, shells[voxel] * m + axis, values[voxel])
    sums = sums.reshape(n_shells, m, 4)
    sums[0] = values[shells == 0].sum(0).expand(m, 4)  # DC belongs to every cone
    num, d1, d2, count = sums.unbind(-1)
    den = (d1 * d2).sqrt()
    fsc = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
    return _ConeSums(fsc.T.contiguous(), nearest, inside, shells, count.T.contiguous())


def conical_fsc(
    map1: torch.Tensor,
    map2: torch.Tensor,
    *,
    cone_half_angle_deg: float = 20.0,
    axes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FSC of two maps inside double cones around given axes.

    Parameters
    ----------
    map1, map2 : Tensor, real, (n, n, n)
        Half maps (masked already if a mask is wanted).
    cone_half_angle_deg : float
        θ in (0°, 90°).
    axes : Tensor, (M, 3), optional
        Unit cone axes (x, y, z); default the 642 vertices of :func:`icosphere` (3).

    Returns
    -------
    fsc : Tensor, float64, (M, n//2 + 1)
        Conical FSC per axis and shell (module docstring); shell 0 is the DC term.
    axes : Tensor, float64, (M, 3)
    """
    _check_pair(map1, map2)
    _check_angle(cone_half_angle_deg)
    if axes is None:
        axes = icosphere(3)[0]
    axes = torch.as_tensor(axes, dtype=_F64, device=map1.device)
    axes = axes / axes.norm(dim=1, keepdim=True)
    sums = _cone_sums(map1, map2, axes, math.cos(math.radians(cone_half_angle_deg)))
    return sums.fsc, axes


# ----------------------------------------------------------------------------- surface
def _tetra_terms(vertices: torch.Tensor, faces: torch.Tensor):
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    volume = (a * torch.linalg.cross(b, c)).sum(dim=1) / 6.0
    area = torch.linalg.cross(b - a, c - a).norm(dim=1) / 2.0
    return a, b, c, volume, area


def sphericity(vertices: torch.Tensor, faces: torch.Tensor) -> float:
    """Wadell sphericity ``π^{1/3}(6V)^{2/3}/A`` of a closed triangulated surface.

    Parameters
    ----------
    vertices : Tensor, (V, 3)
        Points of the surface (e.g. ``r(ĉ)·ĉ``), star-shaped around the origin.
    faces : LongTensor, (F, 3)
        Outward-oriented triangles.

    Returns
    -------
    float
        1 for a ball; ``V`` and ``A`` summed exactly over the tetrahedra origin–face.
    """
    _, _, _, volume, area = _tetra_terms(vertices.to(_F64), faces)
    v, a = float(volume.sum()), float(area.sum())
    if not (v > 0 and a > 0):
        return float("nan")
    return math.pi ** (1 / 3) * (6 * v) ** (2 / 3) / a


def principal_axes(
    vertices: torch.Tensor, faces: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Second-moment tensor's eigen-axes of the solid bounded by a star-shaped surface.

    Parameters
    ----------
    vertices : Tensor, (V, 3)
    faces : LongTensor, (F, 3)

    Returns
    -------
    eigenvalues : Tensor, float64, (3,)
        Ascending.
    axes : Tensor, float64, (3, 3)
        Row ``i`` is the unit axis of eigenvalue ``i`` (largest component made positive).

    Notes
    -----
    For the tetrahedron (0, a, b, c) of volume ``V_t``:
    ``∫ x xᵀ dV = V_t/20 · (aaᵀ + bbᵀ + ccᵀ + s sᵀ)`` with ``s = a + b + c``.
    """
    a, b, c, volume, _ = _tetra_terms(vertices.to(_F64), faces)
    s = a + b + c
    outer = lambda x: x[:, :, None] * x[:, None, :]  # noqa: E731
    j = (volume[:, None, None] / 20.0 * (outer(a) + outer(b) + outer(c) + outer(s))).sum(0)
    values, vectors = torch.linalg.eigh(j)
    axes = vectors.T.clone()
    idx = axes.abs().argmax(dim=1)
    sign = torch.sign(axes[torch.arange(3), idx])
    return values, axes * sign[:, None]


# ----------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class ThreeDFSC:
    """Everything the 3DFSC analysis computes (tensors on the CPU, float64).

    Attributes
    ----------
    axes : (M, 3)
        Cone axes (icosphere vertices).
    cone_fsc : (M, n_shells)
        Conical FSC per axis.
    global_fsc : (n_shells,)
        Ordinary FSC of the (masked) maps.
    frequency_inv_angstrom : (n_shells,)
        ``i / (n · pixel)``.
    directional_resolution_angstrom : (M,)
        Per-cone resolution at ``fsc_threshold`` (NaN where the cone has none).
    global_resolution_angstrom : float or None
        None when the FSC drops below the threshold before shell 3 ("no resolution").
    inside_shells : int
        Shells ``0 … inside_shells`` counted as correlated (high-pass and too-small cones).
    sphericity : float
    best_direction, worst_direction : (3,)
    volume : (n, n, n)
        The 3DFSC map: each Fourier voxel (centred, DC at n//2, volume[z, y, x]) holds the
        FSC of the cone around the axis nearest its direction; 0 beyond Nyquist.
    cone_half_angle_deg, pixel_size_angstrom, fsc_threshold, sphericity_threshold,
    highpass_angstrom : float
        Parameters used.
    """

    axes: torch.Tensor
    cone_fsc: torch.Tensor
    global_fsc: torch.Tensor
    frequency_inv_angstrom: torch.Tensor
    directional_resolution_angstrom: torch.Tensor
    global_resolution_angstrom: float | None
    sphericity: float
    best_direction: torch.Tensor
    worst_direction: torch.Tensor
    volume: torch.Tensor
    cone_half_angle_deg: float
    pixel_size_angstrom: float
    fsc_threshold: float
    sphericity_threshold: float
    highpass_angstrom: float
    inside_shells: int

    def summary(self) -> dict:
        """JSON-ready numbers (resolution min = best, max = worst cone; Å)."""
        valid = self.directional_resolution_angstrom[
            ~torch.isnan(self.directional_resolution_angstrom)
        ]
        return {
            "sphericity": self.sphericity,
            "global_resolution_angstrom": self.global_resolution_angstrom,
            "resolution_min_angstrom": float(valid.min()) if valid.numel() else None,
            "resolution_max_angstrom": float(valid.max()) if valid.numel() else None,
            "best_direction": [float(x) for x in self.best_direction],
            "worst_direction": [float(x) for x in self.worst_direction],
            "cone_half_angle_deg": self.cone_half_angle_deg,
            "n_cones": int(self.axes.shape[0]),
        }


def _full_centered_volume(half: torch.Tensor, n: int) -> torch.Tensor:
    """Real, Friedel-symmetric values on the rfft half grid (FFT order) → centred full grid."""
    neg = (-torch.arange(n, device=half.device)) % n
    flipped = half[neg][:, neg]
    full = half.new_zeros(n, n, n)
    full[:, :, : n // 2 + 1] = half
    full[:, :, n // 2 + 1 :] = flipped[:, :, 1 : (n + 1) // 2].flip(-1)
    return torch.fft.fftshift(full, dim=(-3, -2, -1))


def _resolution(shell: torch.Tensor, n: int, pixel: float) -> torch.Tensor:
    return n * pixel / shell


def three_d_fsc(
    map1: torch.Tensor,
    map2: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    cone_half_angle_deg: float = 20.0,
    mask: torch.Tensor | None = None,
    subdivisions: int = 3,
    fsc_threshold: float = 0.143,
    sphericity_threshold: float = 0.5,
    highpass_angstrom: float = 200.0,
) -> ThreeDFSC:
    """Conical FSC analysis of two half maps (Tan et al. 2017's 3DFSC).

    Parameters
    ----------
    map1, map2 : Tensor, real, (n, n, n)
        Unfiltered half maps of the same cubic box.
    pixel_size_angstrom : float
    cone_half_angle_deg : float
        Cone half-angle θ in (0°, 90°) (default 20°, the program's).
    mask : Tensor, (n, n, n), optional
        Multiplied into both maps first (values in [0, 1]).
    subdivisions : int
        Icosphere level of the cone axes (3 → 642 axes).
    fsc_threshold : float
        Directional/global resolution threshold (0.143).
    sphericity_threshold : float
        3DFSC level of the sphericity surface and principal axes (0.5).
    highpass_angstrom : float
        Shells coarser than this count as correlated for the sphericity (200 Å).

    Returns
    -------
    ThreeDFSC
        Definitions in the module docstring.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = torch.randn(24, 24, 24, generator=g)
    >>> h1 = truth + 0.3 * torch.randn(24, 24, 24, generator=g)
    >>> h2 = truth + 0.3 * torch.randn(24, 24, 24, generator=g)
    >>> result = three_d_fsc(h1, h2, pixel_size_angstrom=1.0, subdivisions=2)
    >>> result.sphericity > 0.95
    True
    """
    _check_pair(map1, map2)
    _check_angle(cone_half_angle_deg)
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    if mask is not None:
        if tuple(mask.shape) != tuple(map1.shape):
            raise ValueError(
                f"mask shape {tuple(mask.shape)} differs from the maps' {tuple(map1.shape)}"
            )
        map1, map2 = map1 * mask, map2 * mask
    n = map1.shape[-1]
    vertices, faces = icosphere(subdivisions)
    axes = vertices.to(map1.device)
    sums = _cone_sums(map1, map2, axes, math.cos(math.radians(cone_half_angle_deg)))
    cone = sums.fsc.cpu()
    global_fsc = fourier_shell_correlation(map1.to(_F64), map2.to(_F64)).cpu()
    n_shells = n // 2 + 1
    freq = torch.arange(n_shells, dtype=_F64) / (n * pixel_size_angstrom)

    # cones hold ~4π s² (1 − cos θ) voxels at shell s: below MIN_CONE_VOXELS their FSC is noise
    cap = 4 * math.pi * (1 - math.cos(math.radians(cone_half_angle_deg)))
    reliable = math.ceil(math.sqrt(MIN_CONE_VOXELS / cap))  # first shell with enough voxels
    highpass_shell = int(math.floor(n * pixel_size_angstrom / highpass_angstrom))
    inside = max(highpass_shell, reliable - 1)

    # resolutions: the FSC must stay above max(threshold, 3/√n_voxels) (3σ of pure noise) on
    # shells with >= MIN_CONE_VOXELS voxels; NaN / None ("no resolution") when it is below
    # already at the first such shell
    def res_or_nan(curves: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        counts = counts.expand_as(curves)
        usable = counts >= MIN_CONE_VOXELS
        limit = torch.where(
            usable, torch.clamp_min(3.0 / counts.clamp_min(1.0).sqrt(), fsc_threshold), -math.inf
        )
        shell = crossing_shell(curves, limit)
        first_usable = torch.argmax(usable.to(torch.int8), dim=-1).to(_F64)
        ok = (shell >= first_usable) & usable.any(dim=-1)
        return torch.where(
            ok, _resolution(shell, n, pixel_size_angstrom), torch.full_like(shell, float("nan"))
        )

    directional = res_or_nan(cone, sums.counts.cpu())
    global_res = float(res_or_nan(global_fsc, fourier_shell_sizes(tuple(map1.shape))))
    global_res = None if math.isnan(global_res) else global_res

    # sphericity surface
    radii = crossing_shell(cone, sphericity_threshold, inside_shells=inside)
    surface = vertices * radii[:, None]
    psi = sphericity(surface, faces)
    _, principal = principal_axes(surface, faces)

    # the 3DFSC map
    half = torch.zeros((n * n * (n // 2 + 1),), dtype=_F64)
    half[sums.inside.cpu()] = cone[sums.nearest.cpu(), sums.shells.cpu()]
    volume = _full_centered_volume(half.reshape(n, n, n // 2 + 1), n).to(torch.float32)

    return ThreeDFSC(
        axes=axes.cpu(),
        cone_fsc=cone,
        global_fsc=global_fsc,
        frequency_inv_angstrom=freq,
        directional_resolution_angstrom=directional,
        global_resolution_angstrom=global_res,
        sphericity=psi,
        best_direction=principal[2],
        worst_direction=principal[0],
        volume=volume,
        cone_half_angle_deg=float(cone_half_angle_deg),
        pixel_size_angstrom=float(pixel_size_angstrom),
        fsc_threshold=float(fsc_threshold),
        sphericity_threshold=float(sphericity_threshold),
        highpass_angstrom=float(highpass_angstrom),
        inside_shells=int(inside),
    )
