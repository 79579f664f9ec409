r"""Orientation distributions and how well they sample Fourier space (SCF, SCF*).

Projection directions
---------------------
A particle at RELION pose ``A`` is a projection along ``d = Aᵀ e_z`` (the third row of ``A``,
:func:`cryoglass.simulate.viewing_direction`), given in the map's frame.  By the Fourier-slice
theorem its 2D transform is the central section of the 3D transform *perpendicular* to ``d``.
With point-group symmetry every pose stands for ``G`` poses ``A·L_g``
(:func:`cryoglass.geometry.expand_poses`), hence ``G`` directions.

Sampling of a Fourier shell
---------------------------
Baldwin & Lyumkis (2020) count, for a point ``k = R k̂`` at Fourier radius ``R`` (in Fourier
pixels), the projections whose central slab of unit thickness contains it:

.. math:: S(\hat k; R) = \#\{\,i : |\hat k\cdot d_i|\, R < \tfrac12 \,\}.

Averaged over the shell, :math:`\langle S\rangle = N/(2R)` for *any* distribution of ``N``
directions (each slab covers the fraction ``1/(2R)`` of the sphere of ``k̂``) — this is where
the particle count and the Fourier radius enter explicitly.  The distribution's shape enters
only through the relative sampling ``ρ(k̂) = S/⟨S⟩``.

SCF and SCF*
------------
The FSC of two half maps is a ratio of shell sums; if the signal and noise power do not depend
on the direction in the shell and a voxel averaged from ``S`` images has noise power ``σ²/S``
(Eq. 2.10 → 2.11 of Baldwin & Lyumkis 2020: independent noise, signal power isotropic on the
shell, no regularisation), the shell's SSNR is

.. math:: \mathrm{SSNR}(R) = \frac{E^2\langle|X|^2\rangle}{\langle|N|^2\rangle\,
          \langle 1/S\rangle} = \mathrm{SCF}\cdot \frac{N}{2R}\,
          \frac{E^2\langle|X|^2\rangle}{\langle|N|^2\rangle},\qquad
          \mathrm{SCF} = \frac{1}{\langle S\rangle\,\langle 1/S\rangle}

(Eq. 2.12–2.13): the harmonic over the arithmetic mean of the sampling, 1 for a uniform
distribution and smaller for any other (Jensen).  ``N·SCF`` uniformly spread particles give the
same FSC.  Where part of the shell is never sampled, ``⟨1/S⟩`` diverges and SCF = 0
(:attr:`OrientationStats.scf` follows this exactly).  The authors' command-line program
(LyumkisLab/CommandLineSCF; Baldwin & Lyumkis 2021) reports

.. math:: \mathrm{SCF}_0 = \frac{1}{\langle S\rangle_{\text{all}}\,
          \langle 1/S\rangle_{S>0}},\qquad
          \mathrm{SCF}^* = \frac{\mathrm{SCF}_0}{1 + \frac{Q}{P}\,
          \frac{\langle S\rangle_{\text{all}}\,\mathrm{SCF}_0}{2}},

with ``Q`` the fraction of unsampled points and ``P = 1 − Q``; SCF* depends on ``N/(2R)``
explicitly and goes to 0 as the empty fraction grows.  These are the program's definitions;
we evaluate them on the same kind of ray set (≈5000 equal-area directions on a half sphere,
``S(k̂) = S(−k̂)``) with an exact, faster counting algorithm
(:func:`directional_sampling`).  Approximations: the slab of unit thickness stands for
trilinear insertion; the continuous ``⟨·⟩`` over the shell is a 5000-point quadrature; the
Poisson noise of ``S`` biases ``SCF`` low by about ``2R/N``.

Efficiency
----------
:attr:`OrientationStats.efficiency` is our own, simpler number: the fraction of the shell
sampled at least half as densely as a uniform distribution of the same particles would
(``S ≥ ⟨S⟩/2``); 1 for uniform or side-view data, small for top views.

In-silico tilt
--------------
Collecting at stage tilt α tilts every projection direction by α about an axis in the image
plane; the axis's angle in that plane is random for randomly oriented particles.  We model it
as ``d' = cos α · d + sin α · (cos β · u + sin β · v)`` with ``(u, v)`` an orthonormal basis
of the plane ⟂ ``d`` and β uniform in [0, 2π) (:func:`tilt_directions`), as the authors'
program does (random psi before a tilt about the image y axis).

References
----------
Baldwin, P. R. & Lyumkis, D. (2020). Non-uniformity of projection distributions attenuates
resolution in cryo-EM. Prog. Biophys. Mol. Biol. 150, 160–183.
https://doi.org/10.1016/j.pbiomolbio.2019.09.002

Baldwin, P. R. & Lyumkis, D. (2021). Tools for visualizing and analyzing Fourier space
sampling in cryo-EM. Prog. Biophys. Mol. Biol. 160, 53–65.
https://doi.org/10.1016/j.pbiomolbio.2020.06.003

Tan, Y. Z. et al. (2017). Addressing preferred specimen orientation in single-particle
cryo-EM through tilting. Nat. Methods 14, 793–796. https://doi.org/10.1038/nmeth.4347
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.geometry import expand_poses, healpix_directions
from cryoglass.simulate.distributions import viewing_direction

__all__ = [
    "OrientationStats",
    "SamplingMap",
    "direction_density",
    "directional_sampling",
    "orientation_bild",
    "orientation_statistics",
    "projection_directions",
    "sampling_compensation_factors",
    "tilt_directions",
]

_F64 = torch.float64


# ----------------------------------------------------------------------------- directions
def projection_directions(euler_deg: torch.Tensor, *, symmetry: str = "C1") -> torch.Tensor:
    """Projection directions ``d = Aᵀ e_z`` of RELION poses, expanded by a point group.

    Parameters
    ----------
    euler_deg : Tensor, shape (N, 3)
        RELION (rot, tilt, psi) [degrees].
    symmetry : str
        Point group (``"C1"``, ``"C4"``, ``"D7"``, ``"O"``, ``"I"`` ...).

    Returns
    -------
    Tensor, float64, shape (N·G, 3)
        Unit vectors (x, y, z) in the map frame; the ``G`` equivalents of particle ``i`` are
        rows ``i·G … i·G + G − 1``.
    """
    euler = torch.as_tensor(euler_deg).to(_F64)
    if euler.ndim != 2 or euler.shape[-1] != 3:
        raise ValueError(f"euler_deg must have shape (N, 3), got {tuple(euler.shape)}")
    if symmetry.upper() != "C1":
        euler = expand_poses(euler, symmetry).reshape(-1, 3)
    return viewing_direction(euler)


def _orthonormal_complement(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors ``u, v`` (…, 3) with ``(u, v, d)`` orthonormal."""
    helper = torch.zeros_like(d)
    use_x = d[..., 0].abs() < 0.9
    helper[..., 0] = use_x.to(d.dtype)
    helper[..., 1] = (~use_x).to(d.dtype)
    u = torch.linalg.cross(d, helper)
    u = u / u.norm(dim=-1, keepdim=True)
    return u, torch.linalg.cross(d, u)


def tilt_directions(
    directions: torch.Tensor, tilt_deg: float, *, generator: torch.Generator
) -> torch.Tensor:
    """Projection directions of the same particles imaged at stage tilt α (in silico).

    Parameters
    ----------
    directions : Tensor, shape (N, 3)
        Unit projection directions at zero tilt.
    tilt_deg : float
        Stage tilt α [degrees].
    generator : torch.Generator
        Draws the in-plane tilt axis of every particle.

    Returns
    -------
    Tensor, shape (N, 3)
        ``cos α · d + sin α · (cos β · u + sin β · v)``, β uniform in [0, 2π), ``(u, v)`` ⟂ ``d``
        (module docstring): each direction tilted by α about a random axis in the image plane.
    """
    d = torch.as_tensor(directions)
    if d.ndim != 2 or d.shape[-1] != 3:
        raise ValueError(f"directions must have shape (N, 3), got {tuple(d.shape)}")
    alpha = math.radians(float(tilt_deg))
    beta = 2 * math.pi * torch.rand(d.shape[0], generator=generator, dtype=_F64).to(d)
    u, v = _orthonormal_complement(d)
    sideways = torch.cos(beta)[:, None] * u + torch.sin(beta)[:, None] * v
    return math.cos(alpha) * d + math.sin(alpha) * sideways


# ----------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class SamplingMap:
    """Sampling counts ``S(k̂; R)`` on an equal-area set of rays (half sphere, z > 0).

    Attributes
    ----------
    ray_directions : Tensor, float64, (n_rings, n_azimuths, 3)
        Ray ``(j, m)`` has ``z = (j + ½)/n_rings`` and azimuth ``2π m / n_azimuths`` (every ray
        stands for the same solid angle, Archimedes' hat-box theorem).
    counts : Tensor, float64, (n_rings, n_azimuths)
        Number of projection slabs containing the point at radius R along each ray.
    fourier_radius : float
        R [Fourier pixels].
    n_directions : int
        Number of projection directions counted.
    """

    ray_directions: torch.Tensor
    counts: torch.Tensor
    fourier_radius: float
    n_directions: int


def _ray_grid(n_rings: int, n_azimuths: int) -> tuple[torch.Tensor, torch.Tensor]:
    z = (torch.arange(n_rings, dtype=_F64) + 0.5) / n_rings
    phi = torch.arange(n_azimuths, dtype=_F64) * (2 * math.pi / n_azimuths)
    s = torch.sqrt(1 - z * z)
    rays = torch.stack(
        (
            s[:, None] * torch.cos(phi),
            s[:, None] * torch.sin(phi),
            z[:, None].expand(-1, n_azimuths),
        ),
        dim=-1,
    )
    return z, rays


def directional_sampling(
    directions: torch.Tensor,
    *,
    fourier_radius: float = 50.0,
    n_rings: int = 50,
    n_azimuths: int = 100,
    chunk_size: int = 16_384,
    dtype: torch.dtype = torch.float32,
) -> SamplingMap:
    """Count, for every ray k̂, the directions d with ``|k̂·d| R < ½`` (exact, O(N·n_rings)).

    Parameters
    ----------
    directions : Tensor, shape (N, 3)
        Projection directions (need not be unit length; normalised here).
    fourier_radius : float
        R [Fourier pixels] (the program's default is 50).
    n_rings, n_azimuths : int
        Ray grid (default 50 × 100 = 5000 rays, as the authors' program uses at most).
    chunk_size : int
        Directions per chunk (memory knob; the result does not depend on it).
    dtype : torch.dtype
        Precision of the angle arithmetic (float64 for exact agreement with a brute-force
        count; float32 is ~2× faster and differs only on rays within ~1e-6 rad of a slab edge).

    Returns
    -------
    SamplingMap

    Notes
    -----
    For a ring of rays at height ``z_j`` (radius ``s_j = √(1 − z_j²)``) and a direction
    ``d = (sin θ cos φ_d, sin θ sin φ_d, cos θ)``, ``k̂·d = s_j sin θ cos(φ − φ_d) + z_j cos θ``;
    the slab condition ``|k̂·d| < ε = 1/(2R)`` holds on the two arcs
    ``φ − φ_d ∈ ±[arccos b, arccos a)`` (half-open, so a pole's two half circles tile the
    ring once) with ``a, b = (∓ε − z_j cos θ)/(s_j sin θ)`` clipped to
    [−1, 1].  Each arc adds 1 to a run of ray azimuths, accumulated with a difference array
    (one ``bincount`` for the run starts and one for the ends) and a cumulative sum — no
    (rays × directions) matrix.  Speed: about 25 element-wise passes over (rings × chunk)
    arrays; chunks of 16k directions keep them in cache.
    """
    d = torch.as_tensor(directions).to(_F64)
    if d.ndim != 2 or d.shape[-1] != 3:
        raise ValueError(f"directions must have shape (N, 3), got {tuple(d.shape)}")
    if not fourier_radius > 0:
        raise ValueError(f"fourier_radius must be > 0, got {fourier_radius}")
    if n_rings < 1 or n_azimuths < 1:
        raise ValueError(f"n_rings and n_azimuths must be >= 1, got {n_rings}, {n_azimuths}")
    norms = d.norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("directions contain a zero vector")
    d = d / norms
    z, rays = _ray_grid(n_rings, n_azimuths)
    eps = 0.5 / float(fourier_radius)
    width = 2 * n_azimuths + 1  # run starts in [0, 2M), ends up to 2M: fold after the cumsum
    size = n_rings * width
    diff = torch.zeros(size, dtype=torch.int64)
    sr = torch.sqrt(1 - z * z)
    cot_r = (z / sr).to(dtype)[:, None]  # z_j / s_j
    eps_r = (eps / sr).to(dtype)[:, None]  # ε / s_j
    # ring j's runs live in [j·width, (j+1)·width); +M keeps every run start non-negative
    offset = (torch.arange(n_rings, dtype=dtype) * width + n_azimuths)[:, None]
    to_steps = n_azimuths / (2 * math.pi)
    for chunk in d.split(chunk_size):
        sin_t = (
            torch.hypot(chunk[:, 0], chunk[:, 1]).to(dtype).clamp_min_(1e-30)
        )  # poles: finite, huge
        phi = (torch.atan2(chunk[:, 1], chunk[:, 0]) * to_steps).to(dtype)  # azimuth steps
        # arc ends: acos of (∓ε − z_j cos θ)/(s_j sin θ) = −cot_j cot θ ∓ (ε/s_j)/sin θ
        centre = torch.outer(cot_r[:, 0], -(chunk[:, 2].to(dtype) / sin_t))
        half = torch.outer(eps_r[:, 0], 1.0 / sin_t)
        ends = torch.stack((centre - half, centre + half)).clamp_(-1, 1).acos_().mul_(to_steps)
        outer, inner = ends[0], ends[1]  # outer ≥ inner: arcs ±[inner, outer)
        bounds = torch.stack((phi + inner, phi + outer, phi - outer, phi - inner)).ceil_()
        index = bounds.add_(offset).long()  # ray azimuths in the half-open arcs [lo, hi)
        diff += torch.bincount(index[0::2].reshape(-1), minlength=size)
        diff -= torch.bincount(index[1::2].reshape(-1), minlength=size)
    runs = diff.reshape(n_rings, width).cumsum(dim=1)
    counts = (runs[:, :n_azimuths] + runs[:, n_azimuths : 2 * n_azimuths]).to(_F64)
    return SamplingMap(rays, counts, float(fourier_radius), int(d.shape[0]))


@dataclass(frozen=True)
class OrientationStats:
    """Sampling statistics of a set of projection directions at one Fourier radius.

    Attributes
    ----------
    n_particles : int
        Particles (before symmetry expansion).
    n_directions : int
        Directions counted (``n_particles · G``; tilted copies included).
    fourier_radius : float
        R [Fourier pixels].
    mean_sampling : float
        ``⟨S⟩`` over the shell, exactly ``n_directions · min(1, 1/(2R))`` (used for SCF:
        the continuum average, free of the ray quadrature's error).
    scf : float
        Baldwin & Lyumkis (2020) SCF ``1/(⟨S⟩⟨1/S⟩)``; 0 when part of the shell is unsampled.
    scf_sampled : float
        The program's SCF₀ (``⟨1/S⟩`` over sampled rays only; can exceed 1 with holes).
    scf_star : float
        SCF* (module docstring).
    empty_fraction : float
        Fraction ``Q`` of the shell sampled by no projection.
    efficiency : float
        Fraction of the shell with ``S ≥ ⟨S⟩/2``.
    """

    n_particles: int
    n_directions: int
    fourier_radius: float
    mean_sampling: float
    scf: float
    scf_sampled: float
    scf_star: float
    empty_fraction: float
    efficiency: float

    def as_dict(self) -> dict:
        """Plain ``dict`` (JSON-ready)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def sampling_compensation_factors(
    counts: torch.Tensor, *, mean_sampling: float | None = None
) -> dict[str, float]:
    """SCF, SCF₀, SCF*, empty fraction and efficiency from equal-area sampling counts.

    Parameters
    ----------
    counts : Tensor, (...)
        ``S`` on equal-area rays (any shape; all entries are rays of one shell).  They may be
        scaled (e.g. to another particle count) — only ratios and ``⟨S⟩`` matter.
    mean_sampling : float, optional
        The exact shell average ``⟨S⟩ = N·min(1, 1/(2R))``; default: the mean of ``counts``
        (the program's choice, which under-estimates ``⟨S⟩`` when ``S`` has integrable peaks,
        e.g. at the poles for side views, and so over-estimates SCF by a few per cent).

    Returns
    -------
    dict with keys ``scf``, ``scf_sampled``, ``scf_star``, ``empty_fraction``, ``efficiency``,
    ``mean_sampling`` (floats; formulas in the module docstring).
    """
    s = torch.as_tensor(counts).to(_F64).reshape(-1)
    if s.numel() == 0 or bool((s < 0).any()):
        raise ValueError("counts must be a non-empty tensor of non-negative numbers")
    mean = float(s.mean()) if mean_sampling is None else float(mean_sampling)
    good = s > 0
    p = float(good.to(_F64).mean())
    q = 1.0 - p
    if p == 0.0:
        return dict(
            scf=0.0,
            scf_sampled=0.0,
            scf_star=0.0,
            empty_fraction=1.0,
            efficiency=0.0,
            mean_sampling=mean,
        )
    scf_sampled = 1.0 / (float((1.0 / s[good]).mean()) * mean)
    scf_star = scf_sampled / (1.0 + (q / p) * mean * scf_sampled / 2.0)
    return dict(
        scf=scf_sampled if q == 0.0 else 0.0,
        scf_sampled=scf_sampled,
        scf_star=scf_star,
        empty_fraction=q,
        efficiency=float((s >= 0.5 * mean).to(_F64).mean()),
        mean_sampling=mean,
    )


def orientation_statistics(
    directions: torch.Tensor,
    *,
    fourier_radius: float = 50.0,
    n_particles: int | None = None,
    n_rings: int = 50,
    n_azimuths: int = 100,
) -> OrientationStats:
    """SCF, SCF*, empty fraction and efficiency of projection directions at radius R.

    Parameters
    ----------
    directions : Tensor, shape (N, 3)
        From :func:`projection_directions` (and :func:`tilt_directions`).
    fourier_radius : float
        R [Fourier pixels].
    n_particles : int, optional
        Particle count to report (default ``N``; pass it when ``directions`` is symmetry
        expanded).
    n_rings, n_azimuths : int
        Ray grid of :func:`directional_sampling`.

    Returns
    -------
    OrientationStats

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> d = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    >>> abs(orientation_statistics(d).scf - 1.0) < 0.01
    True
    """
    sampling = directional_sampling(
        directions, fourier_radius=fourier_radius, n_rings=n_rings, n_azimuths=n_azimuths
    )
    n_dir = sampling.n_directions
    exact_mean = n_dir * min(1.0, 0.5 / float(fourier_radius))
    values = sampling_compensation_factors(sampling.counts, mean_sampling=exact_mean)
    return OrientationStats(
        n_particles=int(n_particles if n_particles is not None else n_dir),
        n_directions=n_dir,
        fourier_radius=float(fourier_radius),
        mean_sampling=values["mean_sampling"],
        scf=values["scf"],
        scf_sampled=values["scf_sampled"],
        scf_star=values["scf_star"],
        empty_fraction=values["empty_fraction"],
        efficiency=values["efficiency"],
    )


# ----------------------------------------------------------------------------- density, plots
def direction_density(
    directions: torch.Tensor, *, n_azimuths: int = 72, n_bands: int = 36
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Density of projection directions per steradian on equal-area cells.

    Parameters
    ----------
    directions : Tensor, shape (N, 3)
    n_azimuths, n_bands : int
        Cells: azimuth φ in ``n_azimuths`` equal steps of [−π, π), ``z = cos θ`` in ``n_bands``
        equal steps of [−1, 1] (every cell has solid angle ``4π/(n_azimuths·n_bands)``).

    Returns
    -------
    density : Tensor, float64, (n_bands, n_azimuths)
        Fraction of directions per steradian (a uniform distribution gives ``1/(4π)``).
    azimuth_edges_rad : Tensor, (n_azimuths + 1,)
    latitude_edges_rad : Tensor, (n_bands + 1,)
        ``asin(z)`` of the band edges (for Mollweide/Hammer axes).
    """
    d = torch.as_tensor(directions).to(_F64)
    d = d / d.norm(dim=-1, keepdim=True)
    phi = torch.atan2(d[:, 1], d[:, 0])
    ia = ((phi + math.pi) / (2 * math.pi) * n_azimuths).long().clamp(0, n_azimuths - 1)
    iz = ((d[:, 2] + 1) / 2 * n_bands).long().clamp(0, n_bands - 1)
    counts = torch.bincount(iz * n_azimuths + ia, minlength=n_bands * n_azimuths).to(_F64)
    cell = 4 * math.pi / (n_azimuths * n_bands)
    density = counts.reshape(n_bands, n_azimuths) / (max(d.shape[0], 1) * cell)
    az = torch.linspace(-math.pi, math.pi, n_azimuths + 1, dtype=_F64)
    lat = torch.asin(torch.linspace(-1, 1, n_bands + 1, dtype=_F64))
    return density, az, lat


def orientation_bild(
    directions: torch.Tensor,
    *,
    order: int = 2,
    radius: float = 50.0,
    max_length: float = 30.0,
    width: float = 1.0,
    center: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> str:
    """ChimeraX/Chimera ``.bild`` text: one cylinder per HEALPix cell, length ∝ count.

    Parameters
    ----------
    directions : Tensor, shape (N, 3)
    order : int
        HEALPix order of the cells (2 → 192 cells, ≈15°).
    radius : float
        Cylinders start at ``center + radius·d`` [Å] (just outside the particle).
    max_length : float
        Length of the most populated cell's cylinder [Å].
    width : float
        Cylinder radius [Å].
    center : (3,)
        Map centre in ChimeraX coordinates [Å] (``box·pixel/2`` for a map at the origin).

    Returns
    -------
    str
        ``.color r g b`` + ``.cylinder x1 y1 z1 x2 y2 z2 r`` lines, colour blue → red with count.
    """
    d = torch.as_tensor(directions).to(_F64)
    d = d / d.norm(dim=-1, keepdim=True)
    cells = healpix_directions(order, dtype=_F64)
    cell_dir = projection_directions(torch.cat([cells, torch.zeros(len(cells), 1, dtype=_F64)], 1))
    nearest = torch.cat([(c @ cell_dir.T).argmax(dim=1) for c in d.split(100_000)])
    counts = torch.bincount(nearest, minlength=len(cells)).to(_F64)
    top = float(counts.max()) if counts.numel() else 0.0
    c0 = torch.tensor(center, dtype=_F64)
    lines = [f".comment {d.shape[0]} projection directions, HEALPix order {order}"]
    for k in torch.nonzero(counts > 0).flatten().tolist():
        frac = float(counts[k]) / top
        start = c0 + radius * cell_dir[k]
        end = c0 + (radius + max(frac * max_length, 0.05)) * cell_dir[k]
        lines.append(f".color {frac:.3f} 0.000 {1 - frac:.3f}")
        lines.append(
            ".cylinder "
            + " ".join(f"{v:.3f}" for v in (*start.tolist(), *end.tolist()))
            + f" {width:.3f}"
        )
    return "\n".join(lines) + "\n"
