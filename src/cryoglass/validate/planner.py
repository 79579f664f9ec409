r"""Orientation planning: predict directional SSNR, 3DFSC and SCF from a distribution of views.

Model of a half map (Baldwin & Lyumkis 2020, Eq. 2.10–2.13)
------------------------------------------------------------
A Fourier voxel ``k`` (radius ``r = |k|`` in Fourier pixels, direction ``k̂``) of a half map
averaged from particles whose central slabs contain it has

.. math:: \mathrm{SSNR}(k) = S(\hat k; r)\, \sigma(k), \qquad
          S(\hat k; r) = \rho(k)\,\langle S\rangle, \quad
          \langle S\rangle = \tfrac{N}{2}\,G\min(1, 1/(2r)),

with ``S`` the slab count of :mod:`cryoglass.validate.orientations` (``|k̂·d| r < ½``, the
half set's ``N/2`` particles, ``G`` symmetry copies each), ``ρ`` the relative sampling (1 for
uniform views) and ``σ(k) = E²⟨|X|²⟩/⟨|N|²⟩`` the spectral SNR of *one* image (Eq. 2.10).
Going to Eq. 2.11 assumes: the noise of different images is independent and adds in power,
the signal adds coherently (poses exact), signal and noise power depend on ``|k|`` only (not on
``k̂``), and the reconstruction is an unregularised average.  We model ``σ`` as a Guinier
fall-off, ``σ(k) = a e^{−B k²/2} cos^p α`` (``k`` in 1/Å, ``B`` the overall B-factor of
Rosenthal & Henderson 2003, ``α`` the stage tilt; ``p`` is a heuristic loss at tilt: path
length 1/cos α through the ice, defocus gradient, more beam-induced motion — Tan et al. 2017),
and calibrate ``a`` with one number the user knows (:class:`SSNRModel`): *uniform* views of
``N_ref`` particles reach ``d_ref`` at FSC = 0.143 (SSNR = 0.143/0.857 = 1/6).  For uniform
views this gives ``SSNR(k) = (1/6)(N/N_ref)(k_ref/k) e^{−B(k² − k_ref²)/2}`` whatever the box.

Predicted FSC
-------------
If signal power is the same for every voxel of a shell (the assumption above), the expected
FSC over any set of voxels is ``1/(1 + ⟨1/SSNR⟩)`` over that set (numerator Σ P, denominator
Σ (P + P/SSNR)).  Over a whole shell this is Eq. 2.13: ``SSNR_shell = SCF · ⟨S⟩σ``.  Over the
double cone of half-angle θ (20°) around an axis ĉ it is the conical FSC of the 3DFSC
(:mod:`cryoglass.validate.fsc3d`).  ``S`` is counted exactly on the 642 vertices of a
level-3 icosphere (rays) for every integer shell ``r`` and floored at ``min_sampling = ½``:
trilinear insertion spreads a slice over ±1 voxel, so a voxel next to a slab still gets about
half a slice's weight; without a floor one empty ray would drive a cone's FSC to 0.  From the
cone FSCs we take, as :func:`~cryoglass.validate.three_d_fsc` does, the directional resolution
(first drop below 0.143), the sphericity and principal axes of the 0.5-surface (same
high-pass/low-shell rules), i.e. a predicted 3DFSC.

Tilt planning
-------------
:func:`plan_tilt_scan` tilts the directions in silico
(:func:`~cryoglass.validate.orientations.tilt_directions`, random in-plane tilt axis) by
α = 0, 5, …, 50° and predicts each.  The **best tilt minimises the worst directional
resolution** (the largest cone resolution in Å — what limits interpretability along the
worst direction); tilts within 1 % of the optimum count as equal and the smallest wins
(less tilt, fewer practical problems).  SCF* at the uniform-resolution shell is reported for
every tilt as well.

Limitations: poses are assumed exact (no orientation-dependent alignment errors), the signal
isotropic on shells (a flat, elongated particle breaks this), and particle count the only
change between distributions; predictions are about the *expected* FSC, not its noise.

References
----------
Baldwin, P. R. & Lyumkis, D. (2020). Non-uniformity of projection distributions attenuates
resolution in cryo-EM. Prog. Biophys. Mol. Biol. 150, 160–183.
https://doi.org/10.1016/j.pbiomolbio.2019.09.002

Rosenthal, P. B. & Henderson, R. (2003). Optimal determination of particle orientation,
absolute hand, and contrast loss in single-particle electron cryomicroscopy. J. Mol. Biol.
333, 721–745. https://doi.org/10.1016/j.jmb.2003.07.013

Tan, Y. Z. et al. (2017). Addressing preferred specimen orientation in single-particle
cryo-EM through tilting. Nat. Methods 14, 793–796. https://doi.org/10.1038/nmeth.4347

:func:`anisotropic_half_maps` draws two half maps ``truth + noise`` with exactly the SSNR
``ρ(k) g(r)`` per voxel (``g`` the uniform-views SSNR) — a cheap stand-in for
simulate → reconstruct that keeps the orientation effect (and nothing else).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.fourier.radial import crossing_shell
from cryoglass.simulate.distributions import (
    TopSideViews,
    TopUniformViews,
    UniformViews,
    VonMisesFisherViews,
)
from cryoglass.validate.fsc3d import (
    MIN_CONE_VOXELS,
    icosphere,
    principal_axes,
    sphericity,
)
from cryoglass.validate.orientations import (
    OrientationStats,
    directional_sampling,
    sampling_compensation_factors,
    tilt_directions,
)

__all__ = [
    "OrientationPlan",
    "SSNRModel",
    "TiltScan",
    "anisotropic_half_maps",
    "orientation_model",
    "plan_orientations",
    "plan_tilt_scan",
    "relative_sampling_grid",
    "shell_sampling",
]

_F64 = torch.float64


def relative_sampling_grid(
    directions: torch.Tensor, box_size: int, *, chunk_size: int = 4096
) -> torch.Tensor:
    """Relative sampling ``ρ(k) = S(k̂; |k|)/⟨S⟩`` on the rfft half grid (FFT order).

    Parameters
    ----------
    directions : Tensor, (N, 3)
        Projection directions (unit vectors, map frame).
    box_size : int
        Cubic box ``n``.
    chunk_size : int
        Voxels per chunk (memory knob).

    Returns
    -------
    Tensor, float64, (n, n, n//2 + 1)
        ``ρ`` per voxel (DC: 1); brute-force count, O(voxels × N): keep ``N`` to a few thousand.
    """
    d = torch.as_tensor(directions, dtype=_F64)
    d = d / d.norm(dim=1, keepdim=True)
    n = int(box_size)
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=_F64)
    kz, ky, kx = torch.meshgrid(k, k, torch.arange(n // 2 + 1, dtype=_F64), indexing="ij")
    freq = torch.stack((kx, ky, kz), dim=-1).reshape(-1, 3)
    radius = freq.norm(dim=1)
    out = torch.ones(freq.shape[0], dtype=_F64)
    for idx in torch.nonzero(radius > 0).flatten().split(chunk_size):
        f = freq[idx]
        counts = ((f @ d.T).abs() < 0.5).sum(dim=1).to(_F64)  # |k̂·d| r < ½
        mean = d.shape[0] * torch.clamp(0.5 / radius[idx], max=1.0)
        out[idx] = counts / mean
    return out.reshape(n, n, n // 2 + 1)


def anisotropic_half_maps(
    truth: torch.Tensor,
    directions: torch.Tensor,
    *,
    uniform_ssnr: torch.Tensor,
    generator: torch.Generator,
    floor: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two half maps ``truth + noise`` whose per-voxel SSNR follows the views' sampling.

    Parameters
    ----------
    truth : Tensor, real, (n, n, n)
    directions : Tensor, (N, 3)
        Projection directions of the (half-set) particles.
    uniform_ssnr : Tensor, (n//2 + 1,)
        ``g(r)`` per shell ``round(r)``: the SSNR uniform views would give.
    generator : torch.Generator
    floor : float
        Minimum relative sampling (unsampled voxels get SSNR ``floor · g``, ≈ no signal).

    Returns
    -------
    half1, half2 : Tensor, (n, n, n), dtype of ``truth``
        Noise with power ``P_T(r) / (ρ(k) g(r))`` per voxel, ``P_T`` the truth's shell power.
    """
    n = truth.shape[-1]
    rho = relative_sampling_grid(directions, n).clamp_min(floor)
    t = torch.fft.rfftn(truth.to(_F64))
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=_F64)
    kz, ky, kx = torch.meshgrid(k, k, torch.arange(n // 2 + 1, dtype=_F64), indexing="ij")
    shell = torch.floor(torch.sqrt(kx**2 + ky**2 + kz**2) + 0.5).long().clamp_max(n // 2)
    power = t.abs().square()
    shell_power = torch.zeros(n // 2 + 1, dtype=_F64).index_add_(
        0, shell.reshape(-1), power.reshape(-1)
    )
    shell_power /= torch.bincount(shell.reshape(-1), minlength=n // 2 + 1).clamp_min(1)
    g = torch.as_tensor(uniform_ssnr, dtype=_F64)[shell]
    amplitude = torch.sqrt(shell_power[shell] / (rho * g).clamp_min(1e-12) / n**3)
    halves = []
    for _ in range(2):
        white = torch.fft.rfftn(torch.randn(n, n, n, generator=generator, dtype=_F64))
        halves.append(torch.fft.irfftn(t + white * amplitude, s=(n, n, n)).to(truth.dtype))
    return halves[0], halves[1]


# ----------------------------------------------------------------------------- the model
#: SSNR of a half map at FSC = 0.143: 0.143 / (1 − 0.143).
SSNR_AT_0143 = 0.143 / (1 - 0.143)


@dataclass(frozen=True)
class SSNRModel:
    """Per-image spectral SNR ``σ(k) = a e^{−Bk²/2} cos^p α``, calibrated on uniform views.

    Attributes
    ----------
    reference_particles : int
        ``N_ref``: uniform views of this many particles (both half sets) ...
    reference_resolution_angstrom : float
        ... reach ``d_ref`` at FSC = 0.143 [Å].
    bfactor_a2 : float
        Overall B-factor [Å²] of the fall-off (Rosenthal & Henderson).
    tilt_exponent : float
        ``p``: per-image SNR loss ``cos^p α`` at stage tilt α (0 ignores it).
    """

    reference_particles: int = 10_000
    reference_resolution_angstrom: float = 4.0
    bfactor_a2: float = 100.0
    tilt_exponent: float = 1.0

    def image_ssnr(
        self,
        frequency_inv_angstrom: torch.Tensor,
        *,
        box_size: int,
        pixel_size_angstrom: float,
        tilt_deg: float = 0.0,
    ) -> torch.Tensor:
        """``σ(k)`` per image and Fourier voxel (module docstring), float64 like the input."""
        k = torch.as_tensor(frequency_inv_angstrom, dtype=_F64)
        k_ref = 1.0 / self.reference_resolution_angstrom
        r_ref = k_ref * box_size * pixel_size_angstrom
        mean_ref = 0.5 * self.reference_particles * min(1.0, 0.5 / r_ref)
        a = SSNR_AT_0143 / mean_ref * math.exp(self.bfactor_a2 * k_ref**2 / 2)
        loss = math.cos(math.radians(tilt_deg)) ** self.tilt_exponent
        return a * loss * torch.exp(-self.bfactor_a2 * k**2 / 2)


def orientation_model(spec: str):
    """Views of a named model.

    ``"uniform"``; ``"vmf:KAPPA"`` (von Mises–Fisher around z); ``"topside:FRACTION"`` (top
    views, the rest side views); ``"topuniform:FRACTION"`` (top views, the rest uniform: the
    usual preferred-orientation case, e.g. ``topuniform:0.85`` puts 85 % within ~12° of z).

    Returns
    -------
    UniformViews, VonMisesFisherViews, TopSideViews or TopUniformViews
        :mod:`cryoglass.simulate.distributions` (``.sample(n, generator=)`` gives poses).
    """
    expected = "expected 'uniform', 'vmf:KAPPA', 'topside:FRACTION' or 'topuniform:FRACTION'"
    name, _, value = spec.strip().partition(":")
    name = name.lower()
    if name == "uniform" and not value:
        return UniformViews()
    try:
        number = float(value)
    except ValueError:
        what = f"{name} needs a number; " if name in ("vmf", "topside", "topuniform") else ""
        raise ValueError(f"model {spec!r}: {what}{expected}") from None
    if name == "vmf":
        if not number >= 0:
            raise ValueError(f"model {spec!r}: KAPPA must be >= 0")
        return VonMisesFisherViews(kappa=number)
    if name in ("topside", "topuniform"):
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"model {spec!r}: FRACTION must be in [0, 1]")
        views = TopSideViews if name == "topside" else TopUniformViews
        return views(top_fraction=number)
    raise ValueError(f"model {spec!r}: {expected}")


def shell_sampling(
    directions: torch.Tensor, rays: torch.Tensor, n_shells: int, *, chunk_size: int = 8192
) -> torch.Tensor:
    """Slab counts ``S(k̂; r) = #{d : |k̂·d| r < ½}`` for every ray and integer shell ``r``.

    Parameters
    ----------
    directions : Tensor, (N, 3)
        Unit projection directions.
    rays : Tensor, (R, 3)
        Unit ray directions ``k̂``.
    n_shells : int
        Shells ``r = 0 … n_shells − 1`` [Fourier pixels] (shell 0: every direction counts).
    chunk_size : int
        Directions per chunk (memory knob).

    Returns
    -------
    Tensor, float64, (R, n_shells)

    Notes
    -----
    A pair (ray, d) with ``c = |k̂·d|`` counts at every shell ``1 ≤ r < 1/(2c)``, i.e. at
    shells ``1 … m`` with ``m = min(n_shells − 1, ⌈1/(2c)⌉ − 1)``: one ``bincount`` of ``m``
    per ray and a reversed cumulative sum give all shells at once.
    """
    d = torch.as_tensor(directions, dtype=_F64)
    k = torch.as_tensor(rays, dtype=_F64)
    top = n_shells - 1
    hist = torch.zeros(k.shape[0] * n_shells, dtype=torch.int64)
    base = (torch.arange(k.shape[0]) * n_shells)[:, None]
    k32 = k.to(torch.float32)
    for chunk in d.to(torch.float32).split(chunk_size):  # float32: edge pairs may flip
        c = (k32 @ chunk.T).abs_().clamp_min_(1e-12)
        m = c.reciprocal_().mul_(0.5).ceil_().sub_(1).clamp_(0, top).long()
        hist += torch.bincount((m + base).reshape(-1), minlength=hist.numel())
    hist = hist.reshape(k.shape[0], n_shells)
    counts = hist.flip(1).cumsum(1).flip(1).to(_F64)  # counts[:, r] = #{m >= r}
    counts[:, 0] = d.shape[0]
    return counts


# ----------------------------------------------------------------------------- prediction
@dataclass(frozen=True)
class OrientationPlan:
    """Predicted 3DFSC, SSNR and SCF of one distribution at one particle count and tilt.

    Attributes
    ----------
    n_particles, box_size : int
    pixel_size_angstrom, tilt_deg, cone_half_angle_deg : float
    frequency_inv_angstrom : (n_shells,)
        ``r / (box · pixel)``.
    uniform_fsc, global_fsc : (n_shells,)
        Predicted FSC of uniform views (same particles) and of this distribution.
    scf_by_shell : (n_shells,)
        ``1/(⟨S⟩⟨1/S⟩)`` per shell on the rays (``S`` floored; shell 0: 1).
    axes : (M, 3)
        Cone axes (icosphere vertices, x, y, z).
    cone_ssnr, cone_fsc : (M, n_shells)
        Predicted conical SSNR (harmonic mean over the cone) and FSC.
    directional_resolution_angstrom : (M,)
        Where each cone FSC drops below 0.143.
    uniform_resolution_angstrom, global_resolution_angstrom : float
    sphericity : float
        Of the predicted 0.5-surface (:mod:`cryoglass.validate.fsc3d` rules).
    best_direction, worst_direction : (3,)
    orientation : OrientationStats
        SCF, SCF*, empty fraction, efficiency at the shell of ``uniform_resolution_angstrom``.
    """

    n_particles: int
    box_size: int
    pixel_size_angstrom: float
    tilt_deg: float
    cone_half_angle_deg: float
    frequency_inv_angstrom: torch.Tensor
    uniform_fsc: torch.Tensor
    global_fsc: torch.Tensor
    scf_by_shell: torch.Tensor
    axes: torch.Tensor
    cone_ssnr: torch.Tensor
    cone_fsc: torch.Tensor
    directional_resolution_angstrom: torch.Tensor
    uniform_resolution_angstrom: float
    global_resolution_angstrom: float
    sphericity: float
    best_direction: torch.Tensor
    worst_direction: torch.Tensor
    orientation: OrientationStats

    def summary(self) -> dict:
        """JSON-ready numbers (Å, unit vectors x, y, z)."""
        res = self.directional_resolution_angstrom
        return {
            "n_particles": self.n_particles,
            "tilt_deg": self.tilt_deg,
            "uniform_resolution_angstrom": self.uniform_resolution_angstrom,
            "global_resolution_angstrom": self.global_resolution_angstrom,
            "resolution_min_angstrom": float(res.min()),
            "resolution_max_angstrom": float(res.max()),
            "sphericity": self.sphericity,
            "best_direction": [float(x) for x in self.best_direction],
            "worst_direction": [float(x) for x in self.worst_direction],
            "scf": self.orientation.scf,
            "scf_star": self.orientation.scf_star,
            "empty_fraction": self.orientation.empty_fraction,
            "efficiency": self.orientation.efficiency,
            "fourier_radius": self.orientation.fourier_radius,
        }


def _resolution(fsc: torch.Tensor, threshold: float, box: int, pixel: float) -> torch.Tensor:
    shell = crossing_shell(fsc, threshold).clamp_min(1e-6)
    return box * pixel / shell


def _inside_shells(box: int, pixel: float, cone_half_angle_deg: float) -> int:
    """The 3DFSC's high-pass and few-voxel shells (see :mod:`cryoglass.validate.fsc3d`)."""
    cap = 4 * math.pi * (1 - math.cos(math.radians(cone_half_angle_deg)))
    reliable = math.ceil(math.sqrt(MIN_CONE_VOXELS / cap))
    return max(int(math.floor(box * pixel / 200.0)), reliable - 1)


def _subsample(d: torch.Tensor, limit: int) -> torch.Tensor:
    if d.shape[0] <= limit:
        return d
    step = d.shape[0] / limit
    return d[(torch.arange(limit, dtype=_F64) * step).long()]


def _scaled_statistics(
    d: torch.Tensor, n_particles: int, symmetry_order: int, radius: float
) -> OrientationStats:
    """SCF, SCF* ... of ``n_particles · G`` directions distributed like ``d`` (counts scaled)."""
    n_dir = n_particles * symmetry_order
    sampling = directional_sampling(d, fourier_radius=radius)
    values = sampling_compensation_factors(
        sampling.counts * (n_dir / d.shape[0]), mean_sampling=n_dir * min(1.0, 0.5 / radius)
    )
    return OrientationStats(
        n_particles=int(n_particles),
        n_directions=int(n_dir),
        fourier_radius=float(radius),
        **{k: values[k] for k in ("mean_sampling", "scf", "scf_sampled", "scf_star")},
        empty_fraction=values["empty_fraction"],
        efficiency=values["efficiency"],
    )


def plan_orientations(
    directions: torch.Tensor,
    *,
    n_particles: int,
    symmetry_order: int = 1,
    box_size: int = 128,
    pixel_size_angstrom: float = 1.0,
    model: SSNRModel = SSNRModel(),
    tilt_deg: float = 0.0,
    cone_half_angle_deg: float = 20.0,
    min_sampling: float = 0.5,
    max_directions: int = 20_000,
    generator: torch.Generator | None = None,
) -> OrientationPlan:
    """Predict the 3DFSC (directional FSC and resolution), global FSC and SCF of a distribution.

    Parameters
    ----------
    directions : Tensor, (N_d, 3)
        Projection directions that sample the distribution (e.g. a star file's, symmetry
        expanded, or drawn from :func:`orientation_model`); their number only sets the
        precision of ``ρ``.
    n_particles : int
        Particles to plan for (both half sets).
    symmetry_order : int
        ``G``: directions per particle in ``directions`` (symmetry copies).
    box_size : int
        Box [pixels]; with ``pixel_size_angstrom`` fixes the Fourier shells and slab width.
    pixel_size_angstrom : float
    model : SSNRModel
        Per-image SNR (module docstring).
    tilt_deg : float
        Stage tilt α: directions tilted in silico (needs ``generator``) and ``cos^p α`` loss.
    cone_half_angle_deg : float
        Cone of the predicted conical FSC (20°, the 3DFSC's).
    min_sampling : float
        Floor of the slab count ``S`` (module docstring).
    max_directions : int
        At most this many directions are counted (an even subset; speed knob).
    generator : torch.Generator, optional
        Needed when ``tilt_deg != 0``.

    Returns
    -------
    OrientationPlan

    Notes
    -----
    ``SSNR(k̂, k) = S_half(k̂; r) σ(k)`` with ``S_half = counts · (N G/2)/N_d``; conical SSNR
    ``1/⟨1/SSNR⟩_cone``, FSC ``= SSNR/(1 + SSNR)`` (module docstring, Baldwin & Lyumkis
    2020, Eq. 2.10–2.13).
    """
    d = torch.as_tensor(directions, dtype=_F64)
    if d.ndim != 2 or d.shape[-1] != 3 or d.shape[0] == 0:
        raise ValueError(f"directions must have shape (N >= 1, 3), got {tuple(d.shape)}")
    if n_particles < 2:
        raise ValueError(f"n_particles must be >= 2 (two half sets), got {n_particles}")
    if not 0.0 < cone_half_angle_deg < 90.0:
        raise ValueError(f"cone half-angle must be in (0°, 90°), got {cone_half_angle_deg}")
    if box_size < 8 or not pixel_size_angstrom > 0:
        raise ValueError(
            f"need box_size >= 8 and pixel_size_angstrom > 0, got {box_size}, {pixel_size_angstrom}"
        )
    d = torch.nn.functional.normalize(_subsample(d, max_directions), dim=1)
    if tilt_deg != 0.0:
        if generator is None:
            raise ValueError("tilt_deg != 0 needs a generator (random in-plane tilt axes)")
        d = tilt_directions(d, tilt_deg, generator=generator)
    n_shells = box_size // 2 + 1
    shells = torch.arange(n_shells, dtype=_F64)
    freq = shells / (box_size * pixel_size_angstrom)
    sigma = model.image_ssnr(
        freq, box_size=box_size, pixel_size_angstrom=pixel_size_angstrom, tilt_deg=tilt_deg
    )
    n_half = 0.5 * n_particles * symmetry_order
    mean_s = n_half * torch.clamp(0.5 / shells.clamp_min(1e-12), max=1.0)
    uniform_ssnr = mean_s * sigma
    if tilt_deg != 0.0:  # the uniform reference is collected untilted
        uniform_ssnr = uniform_ssnr / math.cos(math.radians(tilt_deg)) ** model.tilt_exponent

    axes, faces = icosphere(3)
    counts = shell_sampling(d, axes, n_shells) * (n_half / d.shape[0])
    s = counts.clamp_min(min_sampling)
    inv_ssnr = 1.0 / (s * sigma)  # (rays, shells)
    in_cone = ((axes @ axes.T).abs() >= math.cos(math.radians(cone_half_angle_deg))).to(_F64)
    cone_ssnr = 1.0 / ((in_cone @ inv_ssnr) / in_cone.sum(1, keepdim=True))
    cone_fsc = cone_ssnr / (1 + cone_ssnr)
    global_ssnr = 1.0 / inv_ssnr.mean(0)
    scf = 1.0 / (mean_s * (1.0 / s).mean(0))
    scf[0] = 1.0

    to_res = lambda f: _resolution(f, 0.143, box_size, pixel_size_angstrom)  # noqa: E731
    uniform_res = float(to_res(uniform_ssnr / (1 + uniform_ssnr)))
    inside = _inside_shells(box_size, pixel_size_angstrom, cone_half_angle_deg)
    radii = crossing_shell(cone_fsc, 0.5, inside_shells=inside)
    surface = axes * radii[:, None]
    _, principal = principal_axes(surface, faces)
    radius_ref = min(box_size * pixel_size_angstrom / uniform_res, box_size / 2)
    stats = _scaled_statistics(d, n_particles, symmetry_order, radius_ref)
    return OrientationPlan(
        n_particles=int(n_particles),
        box_size=int(box_size),
        pixel_size_angstrom=float(pixel_size_angstrom),
        tilt_deg=float(tilt_deg),
        cone_half_angle_deg=float(cone_half_angle_deg),
        frequency_inv_angstrom=freq,
        uniform_fsc=uniform_ssnr / (1 + uniform_ssnr),
        global_fsc=global_ssnr / (1 + global_ssnr),
        scf_by_shell=scf,
        axes=axes,
        cone_ssnr=cone_ssnr,
        cone_fsc=cone_fsc,
        directional_resolution_angstrom=to_res(cone_fsc),
        uniform_resolution_angstrom=uniform_res,
        global_resolution_angstrom=float(to_res(global_ssnr / (1 + global_ssnr))),
        sphericity=sphericity(surface, faces),
        best_direction=principal[2],
        worst_direction=principal[0],
        orientation=stats,
    )


# ----------------------------------------------------------------------------- tilt scan
@dataclass(frozen=True)
class TiltScan:
    """Predictions at several stage tilts and the tilt that best fills Fourier space.

    Attributes
    ----------
    plans : tuple of OrientationPlan
        One per tilt, in the order given.
    best_tilt_deg : float
        Smallest tilt whose worst directional resolution is within 1 % of the minimum.
    """

    plans: tuple[OrientationPlan, ...]
    best_tilt_deg: float

    def table(self) -> list[dict]:
        """Per tilt: tilt, worst/best directional and global resolution [Å], sphericity, SCF*."""
        return [
            {
                "tilt_deg": p.tilt_deg,
                "resolution_max_angstrom": float(p.directional_resolution_angstrom.max()),
                "resolution_min_angstrom": float(p.directional_resolution_angstrom.min()),
                "global_resolution_angstrom": p.global_resolution_angstrom,
                "sphericity": p.sphericity,
                "scf_star": p.orientation.scf_star,
            }
            for p in self.plans
        ]


def plan_tilt_scan(
    directions: torch.Tensor,
    *,
    n_particles: int,
    tilts_deg: tuple[float, ...] = (0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50),
    symmetry_order: int = 1,
    box_size: int = 128,
    pixel_size_angstrom: float = 1.0,
    model: SSNRModel = SSNRModel(),
    cone_half_angle_deg: float = 20.0,
    max_directions: int = 20_000,
    seed: int = 0,
) -> TiltScan:
    """Predict every stage tilt in ``tilts_deg``; best = least worst directional resolution.

    Parameters
    ----------
    directions, n_particles, symmetry_order, box_size, pixel_size_angstrom, model,
    cone_half_angle_deg, max_directions
        As :func:`plan_orientations`.
    tilts_deg : tuple of float
        Stage tilts α [degrees] (default 0–50° in 5° steps).
    seed : int
        Seeds the random in-plane tilt axes (the same draw at every tilt).

    Returns
    -------
    TiltScan
        Criterion in the module docstring (Tilt planning).
    """
    if len(tilts_deg) == 0:
        raise ValueError("tilts_deg is empty")
    plans = tuple(
        plan_orientations(
            directions,
            n_particles=n_particles,
            symmetry_order=symmetry_order,
            box_size=box_size,
            pixel_size_angstrom=pixel_size_angstrom,
            model=model,
            tilt_deg=float(t),
            cone_half_angle_deg=cone_half_angle_deg,
            max_directions=max_directions,
            generator=torch.Generator().manual_seed(seed),
        )
        for t in tilts_deg
    )
    worst = torch.tensor([float(p.directional_resolution_angstrom.max()) for p in plans])
    ok = worst <= 1.01 * worst.min()
    best = min(p.tilt_deg for p, good in zip(plans, ok.tolist(), strict=True) if good)
    return TiltScan(plans=plans, best_tilt_deg=best)
