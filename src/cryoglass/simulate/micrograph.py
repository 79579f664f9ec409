r"""Micrographs and movies of a field of particles in amorphous ice, with their ground truth.

What a direct-electron detector records when a grid square holding particles in vitreous ice is
exposed, frame by frame, and what the preprocessing steps of a cryo-EM study (motion correction,
CTF estimation, picking, extraction) are meant to recover.  Every random choice of micrograph
``j`` is drawn from generators seeded by ``(seed, j)``, so micrographs can be made in any order,
one per Dask task, and are the same.

The specimen (projected Coulomb potential, V·Å)
------------------------------------------------
On a canvas larger than the field of view (a margin for the CTF's delocalisation and the beam
-induced motion; particles never straddle the edge of the field of view, so every particle
visible in the micrograph is in the truth):

* **particles** — the map (a Coulomb potential in volts, as
  :func:`cryoglass.simulate.potential.potential_map` makes) projected at uniformly random poses
  (:func:`cryoglass.projection.project`, ``p · Σ_z V`` in V·Å), placed at random positions that
  keep centres at least ``min_distance_factor ×`` the particle diameter apart (random
  sequential addition).  ``crowding`` is the fraction of the area covered by the particles'
  discs (random sequential addition jams at ≈ 0.55); ``n_particles`` fixes the number instead.
  All particles sit in the plane of the micrograph's defocus (no height spread in the ice), and
  their potential is that of the molecule in vacuum (no solvent displacement).
* **amorphous ice** of thickness ``t``: the fluctuations of the projected potential of
  ``n_w t`` water molecules per Å² (``n_w = 0.0314 Å⁻³``, 0.94 g/cm³), a Gaussian random field
  whose power spectrum is that of randomly placed molecules times a structure factor,

  .. math:: \mathrm{PS}(k) = n_w\, t\, |\hat V_m(k)|^2\, S(k), \qquad
            \hat V_m(k) = \frac{h^2}{2\pi m_0 e}\,\big[f_O(k/2) + 2 f_H(k/2)\big],

  with the Peng et al. (1996) scattering factors and a smooth model of the liquid-like
  structure factor ``S`` (small at low ``k``, a peak at 1/3.7 Å⁻¹: the ring of vitreous ice,
  Dubochet et al. 1988).  Its mean (a uniform phase) gives no contrast and is left out.
  Inelastic scattering in the ice removes electrons from the elastic image; without an energy
  filter they still reach the detector as a uniform background, so the contrast is multiplied
  by ``exp(−t/λ_in)`` (``λ_in ≈ 3100 Å`` at 300 kV, scaled with ``β²`` to other voltages).
* an optional **carbon edge**: a straight edge across the field, covering 15–35 % of it, beyond
  which a film of amorphous carbon (``n_C = 0.100 Å⁻³``, 2.0 g/cm³) adds its mean potential
  ``n_C · ĥ_C(0)`` (≈ 12 V) times its thickness and its own fluctuations (same model); the
  contrast there is also multiplied by ``exp(−t_C/λ_in)``.  Particles stay in the hole.

Image formation (weak phase, RELION's CTF)
-----------------------------------------
As in :mod:`cryoglass.simulate.dataset`'s dose path, the image intensity is ``1 + c`` with the
contrast

.. math:: c(\mathbf r) = -\frac{2\sigma_e}{\sqrt{1 - Q_0^2}}\; a(\mathbf r)\,
          \mathcal F^{-1}\!\big[\mathrm{CTF}(\mathbf k)\, E(k)\,\sqrt{\mathrm{DQE}(\mathbf k)}\,
          \hat P(\mathbf k)\big],

``P`` the projected potential [V·Å], ``σ_e`` the interaction constant, ``CTF`` RELION's (positive
``Q0`` at low frequency for underfocus: **protein is dark** in the raw data), ``E = exp(−B k²/4)``
a coherence envelope (``envelope_bfactor_a2``, not part of the CTF written to the truth), the
counting detector's DQE (:mod:`cryoglass.simulate.detector`; its value at DC is taken as 1 so
the mean is kept, as :func:`~cryoglass.simulate.detector.apply_dqe`) and ``a`` the inelastic
attenuation above.  A frame of dose ``D`` [e⁻/Å²] on pixels of ``p`` Å counts
``Poisson(D p² (1 + c))`` electrons per pixel (white noise: NTF = 1); a gain reference ``g``
(``gain_spread > 0``) makes the raw frames ``Poisson(D p² (1 + c) / g)`` and is returned for the
motion correction to multiply by.

Radiation damage and motion (movies)
------------------------------------
Frame ``f`` (``f = 1 … n``) sees the particles' potential after the exposure at its middle,
``N_f = N_0 + (f − ½) D``, damped by the exposure filter of Grant & Grigorieff (2015)
(:func:`cryoglass.ctf.exposure.exposure_filter`); the ice and the carbon are not damaged.  The
specimen moves between frames (not within a frame): a point at ``r`` in frame 1 is at
``r + d_f(r)`` in frame ``f``, with

.. math:: d_f(\mathbf r) = \mathbf g_f + s_f\, \boldsymbol\Phi(\mathbf r), \qquad
          \mathbf g_1 = 0,\; s_1 = 0,

a smooth **global drift** ``g`` (speed decaying as ``exp(−f/τ)``, ``τ`` = a quarter of the
frames, along a slowly turning direction, total path ``drift_angstrom``) and a **local
deformation**: a smooth random vector field ``Φ`` (a Gaussian random field of correlation length
60 % of the field of view, as 64 random Fourier features; zero mean and RMS
``local_motion_angstrom`` over the field of view: mostly a tilt, bowl or saddle) that grows in time
as ``s_f = (1 − e^{−(f−1)/τ}) / (1 − e^{−(n−1)/τ})``.  Particles are placed at their moved
centres by exact Fourier shifts; the ice and carbon move by an exact Fourier shift (global part)
and a bicubic warp (local part).  So frame 1 is the reference: the motion-corrected micrograph
aligned to frame 1, as RELION aligns it, shows the particles at the truth coordinates, and
RELION's ``rlnMicrographShiftX/Y`` of frame ``f`` (the shift that re-aligns it, in pixels) is
``−g_f / p``.

References
----------
Grant, T. & Grigorieff, N. (2015). eLife 4, e06980. https://doi.org/10.7554/eLife.06980

Dubochet, J. et al. (1988). Cryo-electron microscopy of vitrified specimens. Q. Rev. Biophys. 21,
129-228. https://doi.org/10.1017/S0033583500004297

Peng, L.-M. et al. (1996). Acta Cryst. A52, 257-276. https://doi.org/10.1107/S0108767395014371

McMullan, G. et al. (2014). Ultramicroscopy 147, 156-163.
https://doi.org/10.1016/j.ultramic.2014.08.002

Scheres, S. H. W. (2012). RELION. J. Struct. Biol. 180, 519-530.
https://doi.org/10.1016/j.jsb.2012.09.006
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf

from cryoglass.ctf.ctf import ctf_2d, electron_wavelength_angstrom
from cryoglass.ctf.exposure import exposure_filter, frame_exposures
from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.fft import irfft2_centered, next_fast_size, rfft2_centered
from cryoglass.fourier.grids import frequency_radius
from cryoglass.fourier.shift import phase_ramp
from cryoglass.projection.project import project
from cryoglass.simulate.dataset import block_generator, particle_diameter_angstrom
from cryoglass.simulate.detector import counting_detector_dqe
from cryoglass.simulate.distributions import random_defocus, uniform_orientations
from cryoglass.simulate.image import interaction_constant_rad_per_volt_angstrom
from cryoglass.simulate.potential import POTENTIAL_CONSTANT_VOLT_ANGSTROM2
from cryoglass.simulate.scattering import electron_scattering_factor_angstrom

__all__ = [
    "AMORPHOUS_CARBON",
    "VITREOUS_ICE",
    "AmorphousMaterial",
    "BeamMotion",
    "Exposure",
    "Microscope",
    "MicrographTruth",
    "SimulatedMicrograph",
    "Specimen",
    "amorphous_projected_potential",
    "beam_motion",
    "detector_gain",
    "inelastic_mean_free_path_angstrom",
    "mean_inner_potential_volt",
    "place_particles",
    "simulate_micrograph",
    "simulate_micrographs",
]

_F64 = torch.float64
_LAYOUT, _BACKGROUND, _NOISE, _GAIN = 0, 1, 2, 3  # random streams of a micrograph
_MAX_DELOCALISATION_PX = 256
_LOCAL_CORRELATION = 0.6  # of the field of view: the local deformation's correlation length


# ----------------------------------------------------------------------------- parameter bundles


@dataclass(frozen=True)
class Microscope:
    """Lens, illumination and detector.

    Attributes
    ----------
    pixel_size_angstrom : float
        Pixel size at the specimen [Å] (rlnMicrographOriginalPixelSize).
    voltage_kv, cs_mm, amplitude_contrast : float
        rlnVoltage [kV], rlnSphericalAberration [mm], rlnAmplitudeContrast.
    defocus_min_angstrom, defocus_max_angstrom : float
        Range of each micrograph's mean defocus [Å] (positive = underfocus).
    astigmatism_max_angstrom : float
        Each micrograph's ``ΔU − ΔV`` is uniform in [0, this] [Å]; its angle uniform in
        [0°, 180°).
    envelope_bfactor_a2 : float
        Coherence envelope ``exp(−B k²/4)`` [Å²] applied with the CTF (not written to the
        truth's CTF).
    dqe_zero, charge_spread_px : float
        Counting detector: DQE(0) and a Gaussian charge spread [pixels]
        (:func:`cryoglass.simulate.detector.counting_detector_dqe`).
    """

    pixel_size_angstrom: float
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    defocus_min_angstrom: float = 8000.0
    defocus_max_angstrom: float = 25000.0
    astigmatism_max_angstrom: float = 1000.0
    envelope_bfactor_a2: float = 40.0
    dqe_zero: float = 0.8
    charge_spread_px: float = 0.0


@dataclass(frozen=True)
class Specimen:
    """The field of view and what lies in it.

    Attributes
    ----------
    shape_px : (h, w)
        Micrograph size [pixels].
    ice_thickness_angstrom : float
        Thickness of the vitreous ice [Å] (≥ 0).
    crowding : float
        Fraction of the hole's area covered by particle discs (0 … 0.5).
    n_particles : int, optional
        Number of particle centres on the whole canvas, instead of ``crowding``.
    min_distance_factor : float
        Centres at least this many particle diameters apart (1: discs do not overlap).
    carbon_edge : bool
        A carbon film across part of the field.
    carbon_thickness_angstrom : float
        Its thickness [Å].
    """

    shape_px: tuple[int, int] = (1024, 1024)
    ice_thickness_angstrom: float = 300.0
    crowding: float = 0.15
    n_particles: int | None = None
    min_distance_factor: float = 1.0
    carbon_edge: bool = False
    carbon_thickness_angstrom: float = 120.0


@dataclass(frozen=True)
class Exposure:
    """Frames, dose and beam-induced motion.

    Attributes
    ----------
    n_frames : int
        Frames per movie (≥ 3: motion correction needs them).
    dose_per_frame : float
        Exposure per frame [e⁻/Å²].
    pre_exposure : float
        Exposure before the first frame [e⁻/Å²].
    drift_angstrom : float
        Length of the global drift path over the movie [Å].
    local_motion_angstrom : float
        RMS over the field of the local deformation at the last frame [Å].
    gain_spread : float
        Relative standard deviation of the detector's per-pixel gain (0: no gain reference).
    """

    n_frames: int = 20
    dose_per_frame: float = 2.0
    pre_exposure: float = 0.0
    drift_angstrom: float = 15.0
    local_motion_angstrom: float = 2.0
    gain_spread: float = 0.0

    @property
    def total_dose(self) -> float:
        """Exposure of the whole movie [e⁻/Å²]."""
        return self.n_frames * self.dose_per_frame


@dataclass(frozen=True)
class AmorphousMaterial:
    """An amorphous solid as randomly placed scatterers with a liquid-like structure factor.

    Attributes
    ----------
    number_density_per_a3 : float
        Scatterers (molecules or atoms) per Å³.
    elements : tuple of str
        The atoms of one scatterer (their scattering factors add).
    structure_low : float
        ``S(k → 0)`` (a dense liquid's low compressibility: well below 1).
    structure_cutoff_inv_angstrom : float
        ``S`` rises from ``structure_low`` to 1 over this frequency scale [1/Å].
    peak_inv_angstrom, peak_width_inv_angstrom, peak_height : float
        The first diffraction peak of ``S``: position, Gaussian width [1/Å] and height above 1.
    """

    number_density_per_a3: float
    elements: tuple[str, ...]
    structure_low: float
    structure_cutoff_inv_angstrom: float
    peak_inv_angstrom: float
    peak_width_inv_angstrom: float
    peak_height: float


#: Vitreous (low-density amorphous) ice: 0.94 g/cm³, first peak at 3.7 Å (Dubochet et al. 1988).
VITREOUS_ICE = AmorphousMaterial(
    number_density_per_a3=0.0314,
    elements=("O", "H", "H"),
    structure_low=0.06,
    structure_cutoff_inv_angstrom=0.15,
    peak_inv_angstrom=1 / 3.7,
    peak_width_inv_angstrom=0.03,
    peak_height=1.3,
)

#: Amorphous carbon film: 2.0 g/cm³ (0.100 atoms/Å³), first peak near 2.1 Å.
AMORPHOUS_CARBON = AmorphousMaterial(
    number_density_per_a3=0.100,
    elements=("C",),
    structure_low=0.1,
    structure_cutoff_inv_angstrom=0.2,
    peak_inv_angstrom=1 / 2.1,
    peak_width_inv_angstrom=0.05,
    peak_height=1.0,
)


@dataclass(frozen=True)
class BeamMotion:
    """Beam-induced motion of one movie: ``d_f(r) = g_f + s_f Φ(r)`` (module docstring).

    Attributes
    ----------
    global_px : Tensor, float64, shape (n_frames, 2)
        ``g_f`` (x, y) [pixels]; ``g_1 = 0``.
    local_scale : Tensor, float64, shape (n_frames,)
        ``s_f``; 0 at the first frame, 1 at the last.
    wavevectors_per_px : Tensor, float64, shape (M, 2)
        Φ's random Fourier features: ``Φ(r) = Σ_j a_j cos(2π k_j·r + φ_j) − offset``.
    phases : Tensor, float64, shape (M,)
        ``φ_j`` [radians].
    amplitudes_px : Tensor, float64, shape (M, 2)
        ``a_j`` [pixels].
    offset_px : Tensor, float64, shape (2,)
        Subtracted so that Φ's mean over the field of view is 0.
    shape_px : (h, w)
        The field of view.
    """

    global_px: torch.Tensor
    local_scale: torch.Tensor
    wavevectors_per_px: torch.Tensor
    phases: torch.Tensor
    amplitudes_px: torch.Tensor
    offset_px: torch.Tensor
    shape_px: tuple[int, int]

    @property
    def n_frames(self) -> int:
        return int(self.global_px.shape[0])

    def local_field_px(self, points_px: torch.Tensor) -> torch.Tensor:
        """``Φ`` at points ``(x, y)`` [pixels of the field of view], shape (..., 2)."""
        points = torch.as_tensor(points_px, dtype=_F64)
        flat = points.reshape(-1, 2)
        waves = torch.cos(2 * math.pi * flat @ self.wavevectors_per_px.T + self.phases)
        values = waves @ self.amplitudes_px
        return (values - self.offset_px).reshape(*points.shape[:-1], 2)

    def displacement_px(self, points_px: torch.Tensor) -> torch.Tensor:
        """``d_f`` at points (x, y) of frame 1 [pixels], shape (n_frames, ..., 2)."""
        field = self.local_field_px(points_px)
        extra = [1] * (field.ndim - 1)
        return self.global_px.reshape(-1, *extra, 2) + self.local_scale.reshape(
            -1, *extra, 1
        ) * field.unsqueeze(0)

    def relion_shifts_px(self, points_px: torch.Tensor | None = None) -> torch.Tensor:
        """RELION's ``rlnMicrographShiftX/Y`` [pixels]: ``−d_f`` (global only without points).

        Returns
        -------
        Tensor, float64, shape (n_frames, 2) or (n_frames, ..., 2)
        """
        if points_px is None:
            return -self.global_px.clone()
        return -self.displacement_px(points_px)


@dataclass(frozen=True)
class MicrographTruth:
    """What a micrograph holds, for scoring each preprocessing step.

    Attributes
    ----------
    ctf : CTFParams
        The micrograph's CTF (scalars): defocus U/V [Å], angle [°], voltage, Cs, Q0.
    coordinates_px : Tensor, float64, shape (n, 2)
        Particle centres (x, y) [pixels, 0-based, pixel centres at integers] in frame 1 (the
        frame RELION aligns to), inside the field of view.
    euler_deg : Tensor, float64, shape (n, 3)
        Their RELION poses (rot, tilt, psi) [degrees].
    diameter_angstrom : float
        The particle's diameter.
    motion : BeamMotion or None
        The movie's motion (None for a micrograph made without frames).
    carbon_fraction : float
        Fraction of the field covered by carbon.
    """

    ctf: CTFParams
    coordinates_px: torch.Tensor
    euler_deg: torch.Tensor
    diameter_angstrom: float
    motion: BeamMotion | None
    carbon_fraction: float


@dataclass(frozen=True)
class SimulatedMicrograph:
    """One simulated exposure.

    Attributes
    ----------
    index : int
        Its number in the dataset (0-based; the seed of its random streams).
    frames : Tensor, float32, shape (n_frames, h, w) or None
        Raw electron counts per frame (divided by the gain, see ``gain``), or None.
    micrograph : Tensor, float32, shape (h, w) or None
        Without frames: the motion-free sum of the exposure [e⁻ per pixel].
    gain : Tensor, float32, shape (h, w) or None
        Gain reference: multiply raw frames by it (RELION's ``--gainref``).  One detector: the
        same for every micrograph of a seed.
    truth : MicrographTruth
    """

    index: int
    frames: torch.Tensor | None
    micrograph: torch.Tensor | None
    gain: torch.Tensor | None
    truth: MicrographTruth


# ----------------------------------------------------------------------------- materials


def mean_inner_potential_volt(material: AmorphousMaterial) -> float:
    """Mean Coulomb potential of an amorphous material [V]: ``n · (h²/2πm₀e) · Σ f_e(0)``.

    Examples
    --------
    >>> round(mean_inner_potential_volt(AMORPHOUS_CARBON), 1)
    12.0
    """
    f0 = electron_scattering_factor_angstrom(list(material.elements), torch.zeros(1, dtype=_F64))
    return float(material.number_density_per_a3 * POTENTIAL_CONSTANT_VOLT_ANGSTROM2 * f0.sum())


def inelastic_mean_free_path_angstrom(voltage_kv: float) -> float:
    r"""Inelastic mean free path of electrons in vitreous ice [Å]: 3100 Å at 300 kV, ∝ ``β²``.

    Notes
    -----
    .. math:: \lambda_{in}(V) = 3100\,\text{Å}\;\frac{\beta^2(V)}{\beta^2(300\,\text{kV})},
              \qquad \beta^2 = 1 - \Big(\frac{m_0c^2}{m_0c^2 + eV}\Big)^2

    (the inelastic cross-section falls roughly as ``1/β²``); about 2500 Å at 200 kV.

    Examples
    --------
    >>> round(inelastic_mean_free_path_angstrom(200.0))
    2485
    """

    def beta2(kv: float) -> float:
        return 1.0 - (511.0 / (511.0 + kv)) ** 2

    return 3100.0 * beta2(voltage_kv) / beta2(300.0)


def _structure_factor(material: AmorphousMaterial, k: torch.Tensor) -> torch.Tensor:
    low = material.structure_low
    rise = 1 - torch.exp(-((k / material.structure_cutoff_inv_angstrom) ** 2))
    peak = material.peak_height * torch.exp(
        -0.5 * ((k - material.peak_inv_angstrom) / material.peak_width_inv_angstrom) ** 2
    )
    return low + (1 - low) * rise + peak


def amorphous_projected_potential(
    shape_px: tuple[int, int],
    *,
    pixel_size_angstrom: float,
    thickness_angstrom: float,
    material: AmorphousMaterial,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Zero-mean fluctuations of the projected potential of an amorphous slab [V·Å].

    Parameters
    ----------
    shape_px : (h, w)
    pixel_size_angstrom : float
    thickness_angstrom : float
        Slab thickness ``t`` [Å] (≥ 0).
    material : AmorphousMaterial
        :data:`VITREOUS_ICE` or :data:`AMORPHOUS_CARBON`.
    generator : torch.Generator
        On ``device``.
    device : optional

    Returns
    -------
    Tensor, float32, shape (h, w)

    Notes
    -----
    A Gaussian field with power spectrum ``PS(k) = n t |V̂_m(k)|² S(k)`` [(V·Å)² Å²]: white noise
    ``X`` is filtered as ``F_k = X_k √PS(k) / p`` (for a DFT of a field sampled at ``p`` Å,
    ``E|F_k|² = PS(k) · h w / p²``), and the DC term is set to 0.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> ice = amorphous_projected_potential((64, 64), pixel_size_angstrom=1.0,
    ...     thickness_angstrom=300.0, material=VITREOUS_ICE, generator=g)
    >>> ice.shape, abs(float(ice.mean())) < 1e-3
    (torch.Size([64, 64]), True)
    """
    if thickness_angstrom < 0:
        raise ValueError(f"thickness_angstrom must be >= 0, got {thickness_angstrom}")
    h, w = shape_px
    white = torch.randn(h, w, generator=generator, device=device, dtype=torch.float32)
    # PS(k) is radial: tabulate it on 4097 radii up to the grid's corner, interpolate linearly
    k_max = math.sqrt(0.5) / pixel_size_angstrom
    table_k = torch.linspace(0.0, k_max, 4097, dtype=_F64)
    form = electron_scattering_factor_angstrom(list(material.elements), table_k / 2).sum(dim=0)
    table = (
        material.number_density_per_a3
        * thickness_angstrom
        * (POTENTIAL_CONSTANT_VOLT_ANGSTROM2 * form) ** 2
        * _structure_factor(material, table_k)
    ).sqrt() / pixel_size_angstrom
    table = table.to(device=white.device, dtype=torch.float32)
    k = frequency_radius(
        (h, w), pixel_size_angstrom=pixel_size_angstrom, rfft=True, device=white.device
    )
    position = (k / k_max * 4096).clamp(max=4096)
    lower = position.floor().long().clamp(max=4095)
    weight = position - lower
    amplitude = table[lower] * (1 - weight) + table[lower + 1] * weight
    amplitude[h // 2, 0] = 0.0  # no DC: the mean potential is handled separately
    return irfft2_centered(rfft2_centered(white) * amplitude, width=w)


# ----------------------------------------------------------------------------- layout


def place_particles(
    n: int,
    *,
    shape_px: tuple[int, int],
    min_distance_px: float,
    generator: torch.Generator,
    allowed=None,
    max_tries: int = 50,
) -> torch.Tensor:
    """Random non-overlapping positions by random sequential addition.

    Parameters
    ----------
    n : int
        Positions wanted (fewer are returned when the area jams).
    shape_px : (h, w)
        Region; positions (x, y) lie in [0, w) × [0, h).
    min_distance_px : float
        Smallest distance between two positions [pixels].
    generator : torch.Generator
    allowed : callable, optional
        ``allowed(points (m, 2)) -> bool (m,)``: candidates it refuses are skipped (e.g. over
        carbon, or straddling the edge of the field of view).
    max_tries : int
        Candidates drawn per position wanted.

    Returns
    -------
    Tensor, float64, shape (m, 2), m ≤ n

    Examples
    --------
    >>> p = place_particles(20, shape_px=(100, 100), min_distance_px=10.0,
    ...                     generator=torch.Generator().manual_seed(0))
    >>> bool(torch.pdist(p).min() >= 10.0)
    True
    """
    h, w = shape_px
    candidates = torch.rand(max(n, 1) * max_tries, 2, generator=generator, dtype=_F64)
    candidates = candidates * torch.tensor([w, h], dtype=_F64)
    if allowed is not None:
        candidates = candidates[allowed(candidates)]
    # A cell list keeps each test local: cells of side min_distance, neighbours in 3 × 3 cells.
    cell = max(min_distance_px, 1e-9)
    grid: dict[tuple[int, int], list[int]] = {}
    accepted: list[torch.Tensor] = []
    d2 = min_distance_px**2
    values = candidates.tolist()
    for x, y in values:
        if len(accepted) >= n:
            break
        cx, cy = int(x // cell), int(y // cell)
        ok = True
        for gx in (cx - 1, cx, cx + 1):
            for gy in (cy - 1, cy, cy + 1):
                for i in grid.get((gx, gy), ()):
                    px, py = accepted[i]
                    if (px - x) ** 2 + (py - y) ** 2 < d2:
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            grid.setdefault((cx, cy), []).append(len(accepted))
            accepted.append((x, y))
    return torch.tensor(accepted, dtype=_F64).reshape(-1, 2)


# ----------------------------------------------------------------------------- motion


def beam_motion(
    exposure: Exposure,
    *,
    shape_px: tuple[int, int],
    pixel_size_angstrom: float,
    generator: torch.Generator,
) -> BeamMotion:
    """Draw a movie's global drift and local deformation (module docstring).

    Parameters
    ----------
    exposure : Exposure
        ``n_frames``, ``drift_angstrom``, ``local_motion_angstrom``.
    shape_px : (h, w)
        Field of view.
    pixel_size_angstrom : float
    generator : torch.Generator

    Returns
    -------
    BeamMotion

    Examples
    --------
    >>> m = beam_motion(Exposure(n_frames=10, drift_angstrom=20.0), shape_px=(256, 256),
    ...                 pixel_size_angstrom=1.0, generator=torch.Generator().manual_seed(1))
    >>> m.global_px[0].tolist(), round(float(m.global_px.diff(dim=0).norm(dim=1).sum()), 3)
    ([0.0, 0.0], 20.0)
    """
    n = exposure.n_frames
    tau = max(n / 4.0, 1.0)
    t = torch.arange(n - 1, dtype=_F64)
    start, turn = (
        torch.rand(2, generator=generator, dtype=_F64) * torch.tensor([2 * math.pi, 2.0])
        - torch.tensor([0.0, 1.0])
    ).tolist()
    speed = torch.exp(-t / tau) + 0.15
    angle = start + turn * t / max(n - 1, 1)
    steps = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1) * speed[:, None]
    length = float(steps.norm(dim=-1).sum())
    steps = steps * (exposure.drift_angstrom / pixel_size_angstrom / max(length, 1e-12))
    global_px = torch.cat([torch.zeros(1, 2, dtype=_F64), steps.cumsum(dim=0)])
    frames = torch.arange(n, dtype=_F64)
    scale = (1 - torch.exp(-frames / tau)) / (1 - math.exp(-(n - 1) / tau)) if n > 1 else frames
    h, w = shape_px
    features = 64
    length = _LOCAL_CORRELATION * max(h, w)  # correlation length of Φ [pixels]
    wavevectors = torch.randn(features, 2, generator=generator, dtype=_F64) / (2 * math.pi * length)
    phases = 2 * math.pi * torch.rand(features, generator=generator, dtype=_F64)
    amplitudes = torch.randn(features, 2, generator=generator, dtype=_F64)
    unit = BeamMotion(
        global_px, scale, wavevectors, phases, amplitudes, torch.zeros(2, dtype=_F64), (h, w)
    )
    ys, xs = torch.meshgrid(
        torch.linspace(0, h - 1, 32, dtype=_F64),
        torch.linspace(0, w - 1, 32, dtype=_F64),
        indexing="ij",
    )
    field = unit.local_field_px(torch.stack([xs, ys], dim=-1).reshape(-1, 2))
    mean = field.mean(dim=0)
    rms = float((field - mean).pow(2).sum(dim=-1).mean().sqrt())
    factor = exposure.local_motion_angstrom / pixel_size_angstrom / max(rms, 1e-12)
    return BeamMotion(
        global_px, scale, wavevectors, phases, amplitudes * factor, mean * factor, (h, w)
    )


# ----------------------------------------------------------------------------- the micrograph


def _check(microscope: Microscope, specimen: Specimen, exposure: Exposure, volume) -> None:
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"the map must be a cubic volume, got shape {tuple(volume.shape)}")
    h, w = specimen.shape_px
    if min(h, w) < 2 * volume.shape[-1]:
        raise ValueError(
            f"a micrograph of {w} × {h} px is too small for particles in a {volume.shape[-1]} px "
            "box: make it at least twice the box on each side"
        )
    if not microscope.pixel_size_angstrom > 0:
        raise ValueError(f"pixel size must be > 0 Å, got {microscope.pixel_size_angstrom}")
    if not 0 <= microscope.defocus_min_angstrom <= microscope.defocus_max_angstrom:
        raise ValueError("need 0 <= defocus_min_angstrom <= defocus_max_angstrom")
    if exposure.n_frames < 1 or not exposure.dose_per_frame > 0:
        raise ValueError("need n_frames >= 1 and dose_per_frame > 0")
    if not 0 <= specimen.crowding <= 0.5:
        raise ValueError(f"crowding must be in [0, 0.5], got {specimen.crowding}")
    if specimen.ice_thickness_angstrom < 0 or exposure.gain_spread < 0:
        raise ValueError("ice thickness and gain spread must be >= 0")


@dataclass(frozen=True)
class _Layout:
    """Where everything is on the canvas (field of view at ``margin`` from its corner)."""

    canvas: tuple[int, int]
    margin: tuple[int, int]
    centres: torch.Tensor  # (n, 2) canvas pixels
    euler_deg: torch.Tensor  # (n, 3)
    carbon: torch.Tensor | None  # (H, W) in [0, 1]
    carbon_fraction: float
    ctf: CTFParams
    motion: BeamMotion | None


def _margin_px(microscope: Microscope, specimen: Specimen, exposure: Exposure, box: int) -> int:
    """Canvas margin: the CTF's delocalisation at Nyquist (capped), the motion and a box."""
    p = microscope.pixel_size_angstrom
    wavelength = electron_wavelength_angstrom(microscope.voltage_kv)
    spread = microscope.defocus_max_angstrom + microscope.astigmatism_max_angstrom / 2
    delocal = min(wavelength * spread / (2 * p * p), _MAX_DELOCALISATION_PX)
    motion = (exposure.drift_angstrom + 4 * exposure.local_motion_angstrom) / p
    return int(math.ceil(delocal + motion)) + box // 2 + 8


def _carbon_mask(h, w, margin, fov, pixel, generator) -> tuple[torch.Tensor, float]:
    """A straight carbon edge (soft over ~4 Å) covering 15–35 % of the field of view."""
    angle, fraction = torch.rand(2, generator=generator, dtype=_F64).tolist()
    angle *= 2 * math.pi
    fraction = 0.15 + 0.2 * fraction
    normal = torch.tensor([math.cos(angle), math.sin(angle)], dtype=_F64)
    fy, fx = fov
    ys, xs = torch.meshgrid(
        torch.linspace(0, fy - 1, 64, dtype=_F64),
        torch.linspace(0, fx - 1, 64, dtype=_F64),
        indexing="ij",
    )
    projection = (xs * normal[0] + ys * normal[1]).reshape(-1)
    offset = float(torch.quantile(projection, 1 - fraction))
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=_F64) - margin[0],
        torch.arange(w, dtype=_F64) - margin[1],
        indexing="ij",
    )
    distance = (xx * normal[0] + yy * normal[1] - offset) * pixel  # Å beyond the edge
    mask = 0.5 * (1 + torch.erf(distance / 4.0))
    inside = mask[margin[0] : margin[0] + fy, margin[1] : margin[1] + fx]
    return mask.to(torch.float32), float(inside.mean())


def _layout(volume, microscope, specimen, exposure, *, diameter_px, seed, index, movie) -> _Layout:
    """Draw the micrograph's CTF, carbon, particle positions and poses, and motion."""
    generator = block_generator(seed, index, _LAYOUT)
    fy, fx = specimen.shape_px
    box = volume.shape[-1]
    margin = _margin_px(microscope, specimen, exposure, box)
    canvas = (next_fast_size(fy + 2 * margin), next_fast_size(fx + 2 * margin))
    margins = ((canvas[0] - fy) // 2, (canvas[1] - fx) // 2)
    u, v, angle = random_defocus(
        1,
        defocus_min_um=microscope.defocus_min_angstrom / 1e4,
        defocus_max_um=microscope.defocus_max_angstrom / 1e4,
        astigmatism_angstrom=microscope.astigmatism_max_angstrom,
        generator=generator,
    )
    ctf = CTFParams(
        defocus_u_angstrom=float(u),
        defocus_v_angstrom=float(v),
        astigmatism_angle_deg=float(angle),
        voltage_kv=microscope.voltage_kv,
        cs_mm=microscope.cs_mm,
        amplitude_contrast=microscope.amplitude_contrast,
    )
    carbon, carbon_fraction = None, 0.0
    if specimen.carbon_edge:
        carbon, carbon_fraction = _carbon_mask(
            *canvas, margins, specimen.shape_px, microscope.pixel_size_angstrom, generator
        )
    radius = diameter_px / 2
    p = microscope.pixel_size_angstrom

    reach = box / 2 + (exposure.drift_angstrom + 4 * exposure.local_motion_angstrom) / p + 1

    def allowed(points: torch.Tensor) -> torch.Tensor:
        x, y = points[:, 0], points[:, 1]
        # the box stays on the canvas in every frame
        ok = (x >= reach) & (x <= canvas[1] - reach) & (y >= reach) & (y <= canvas[0] - reach)
        # no disc crosses the edge of the field of view
        gx, gy = x - margins[1], y - margins[0]
        inside = (gx >= 0) & (gx <= fx) & (gy >= 0) & (gy <= fy)
        to_edge_inside = torch.minimum(torch.minimum(gx, fx - gx), torch.minimum(gy, fy - gy))
        dx = torch.clamp(torch.maximum(-gx, gx - fx), min=0)
        dy = torch.clamp(torch.maximum(-gy, gy - fy), min=0)
        to_edge = torch.where(inside, to_edge_inside, torch.sqrt(dx * dx + dy * dy))
        straddle = to_edge < radius + 2
        ok &= ~straddle
        if carbon is not None:
            iy = y.round().long().clamp(0, canvas[0] - 1)
            ix = x.round().long().clamp(0, canvas[1] - 1)
            ok &= carbon[iy, ix] < 1e-3
            # the whole disc in the hole: test the point one radius towards the carbon
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                jx = (x + dx * radius).round().long().clamp(0, canvas[1] - 1)
                jy = (y + dy * radius).round().long().clamp(0, canvas[0] - 1)
                ok &= carbon[jy, jx] < 1e-3
        return ok

    area = canvas[0] * canvas[1] * (1 - carbon_fraction)
    n = specimen.n_particles
    if n is None:
        n = int(round(specimen.crowding * area / (math.pi * radius**2)))
    centres = place_particles(
        n,
        shape_px=canvas,
        min_distance_px=specimen.min_distance_factor * diameter_px,
        generator=generator,
        allowed=allowed,
    )
    euler = uniform_orientations(len(centres), generator=generator)
    motion = None
    if movie:
        motion = beam_motion(
            exposure,
            shape_px=specimen.shape_px,
            pixel_size_angstrom=microscope.pixel_size_angstrom,
            generator=generator,
        )
    return _Layout(canvas, margins, centres, euler, carbon, carbon_fraction, ctf, motion)


def _transfer(microscope: Microscope, ctf: CTFParams, canvas, device) -> torch.Tensor:
    """``−2σ_e/√(1−Q0²) · CTF · E · √DQE`` on the canvas' rfft grid in plain FFT order.

    ``√DQE`` is taken as 1 at DC (the mean intensity is kept, as
    :func:`~cryoglass.simulate.detector.apply_dqe`).
    """
    p = microscope.pixel_size_angstrom
    grid = {"image_size": canvas, "centered": False, "device": device}
    values = ctf_2d(ctf, pixel_size_angstrom=p, dtype=torch.float32, **grid)
    k = torch.fft.fftfreq(canvas[0], d=p, device=device)[:, None] ** 2
    k = k + torch.fft.rfftfreq(canvas[1], d=p, device=device)[None, :] ** 2
    envelope = torch.exp(-microscope.envelope_bfactor_a2 * k / 4)
    dqe = counting_detector_dqe(
        canvas,
        dqe_zero=microscope.dqe_zero,
        charge_spread_px=microscope.charge_spread_px,
        centered=False,
        device=device,
    )
    root = dqe.sqrt()
    root[0, 0] = 1.0
    sigma = interaction_constant_rad_per_volt_angstrom(microscope.voltage_kv)
    factor = -2 * sigma / math.sqrt(1 - microscope.amplitude_contrast**2)
    return factor * values * envelope * root


class _Particles:
    """The particles' projected potentials, ready to be damaged, moved and pasted."""

    def __init__(self, volume, euler_deg, centres, *, pixel, canvas, device, diameter_angstrom):
        self.diameter_angstrom = diameter_angstrom
        self.box = volume.shape[-1]
        self.canvas = canvas
        self.pixel = pixel
        images = project(volume.to(device), euler_deg=euler_deg.to(volume.dtype), device=device)
        self.spectra = rfft2_centered(images * pixel)  # V·Å
        self.centres = centres
        k = frequency_radius(
            (self.box, self.box),
            pixel_size_angstrom=pixel,
            rfft=True,
            device=device,
            dtype=torch.float64,
        )
        self.frequency = k
        offsets = torch.arange(self.box, device=device) - self.box // 2
        self._dy, self._dx = torch.meshgrid(offsets, offsets, indexing="ij")

    def paste(
        self, canvas_image: torch.Tensor, positions: torch.Tensor, damage: torch.Tensor | None
    ) -> None:
        """Add every particle, its centre at ``positions`` (n, 2) [canvas px], into the canvas."""
        if len(positions) == 0:
            return
        whole = positions.floor()
        fraction = (positions - whole) * self.pixel  # Å
        spectra = self.spectra
        if damage is not None:
            spectra = spectra * damage.to(spectra.real.dtype)
        ramp = _separable_ramp(fraction.to(spectra.real.dtype), (self.box, self.box), self.pixel)
        images = irfft2_centered(spectra * ramp, width=self.box)
        w = self.canvas[1]
        iy = whole[:, 1].long().to(images.device)[:, None, None] + self._dy
        ix = whole[:, 0].long().to(images.device)[:, None, None] + self._dx
        # every box lies inside the canvas (the layout keeps centres a half box from its edge)
        canvas_image.view(-1).index_add_(
            0, (iy * w + ix).reshape(-1), images.reshape(-1).to(canvas_image.dtype)
        )


def _separable_ramp(
    shift_angstrom: torch.Tensor, shape: tuple[int, int], pixel: float, *, centered: bool = True
) -> torch.Tensor:
    """``exp(−2πi k·s)`` on an rfft grid as the product of a row and a column ramp.

    :func:`cryoglass.fourier.shift.phase_ramp` along each axis separately (a (1, w) and an
    (h, 1) image), multiplied: the same ramp except on the corner Nyquist bin, for the cost of
    ``h + w`` exponentials instead of ``h · w``.  ``centered=False`` puts the rows in plain FFT
    order (as ``torch.fft.rfft2``).  ``shift_angstrom`` (..., 2) → (..., h, w//2 + 1).
    """
    h, w = shape
    zeros = torch.zeros_like(shift_angstrom[..., :1])
    along_x = torch.cat([shift_angstrom[..., :1], zeros], dim=-1)
    along_y = torch.cat([zeros, shift_angstrom[..., 1:]], dim=-1)
    row = phase_ramp(along_x, pixel_size_angstrom=pixel, image_shape=(1, w), rfft=True)
    column = phase_ramp(along_y, pixel_size_angstrom=pixel, image_shape=(h, 1), rfft=True)
    if not centered:
        column = torch.fft.ifftshift(column, dim=-2)
    return column * row


def _background(specimen, microscope, layout, generator, device) -> torch.Tensor:
    """Ice fluctuations plus the carbon film's potential on the canvas [V·Å]."""
    p = microscope.pixel_size_angstrom
    background = amorphous_projected_potential(
        layout.canvas,
        pixel_size_angstrom=p,
        thickness_angstrom=specimen.ice_thickness_angstrom,
        material=VITREOUS_ICE,
        generator=generator,
        device=device,
    )
    if layout.carbon is not None:
        carbon = amorphous_projected_potential(
            layout.canvas,
            pixel_size_angstrom=p,
            thickness_angstrom=specimen.carbon_thickness_angstrom,
            material=AMORPHOUS_CARBON,
            generator=generator,
            device=device,
        )
        mean = mean_inner_potential_volt(AMORPHOUS_CARBON) * specimen.carbon_thickness_angstrom
        background = background + layout.carbon.to(device) * (carbon + mean)
    return background


def _attenuation(specimen, microscope, layout, device) -> torch.Tensor | float:
    """Elastic fraction ``exp(−t/λ_in)`` over the field of view (ice, plus carbon)."""
    mfp = inelastic_mean_free_path_angstrom(microscope.voltage_kv)
    ice = math.exp(-specimen.ice_thickness_angstrom / mfp)
    if layout.carbon is None:
        return ice
    fy, fx = specimen.shape_px
    (my, mx) = layout.margin
    carbon = layout.carbon[my : my + fy, mx : mx + fx].to(device)
    return ice * torch.exp(-carbon * specimen.carbon_thickness_angstrom / mfp)


class _Warp:
    """``image(r − s · Φ(r))`` on the canvas by bicubic interpolation (the local motion)."""

    def __init__(self, motion: BeamMotion, canvas, margin, device) -> None:
        h, w = canvas
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=_F64) - margin[0],
            torch.arange(w, dtype=_F64) - margin[1],
            indexing="ij",
        )
        field = motion.local_field_px(torch.stack([xs, ys], dim=-1).reshape(-1, 2))
        field = field.reshape(h, w, 2).to(device=device, dtype=torch.float32)
        self.base = torch.stack(
            [
                2 * (xs + margin[1]) / (w - 1) - 1,
                2 * (ys + margin[0]) / (h - 1) - 1,
            ],
            dim=-1,
        ).to(device=device, dtype=torch.float32)
        self.step = field * torch.tensor([2 / (w - 1), 2 / (h - 1)], device=device)

    def __call__(self, image: torch.Tensor, scale: float) -> torch.Tensor:
        if scale == 0.0:
            return image
        grid = self.base - scale * self.step
        return nnf.grid_sample(
            image[None, None], grid[None], mode="bicubic", padding_mode="border", align_corners=True
        )[0, 0]


@dataclass
class _Scene:
    """Everything a micrograph's frames are rendered from (internal)."""

    layout: _Layout
    particles: _Particles
    background: torch.Tensor  # canvas [V·Å]
    transfer: torch.Tensor  # plain-order rfft grid of the canvas
    attenuation: torch.Tensor | float  # field of view
    field: tuple[int, int]

    def contrast(self, potential: torch.Tensor) -> torch.Tensor:
        """Contrast ``c`` over the field of view of a canvas of projected potential."""
        h, w = self.layout.canvas
        image = torch.fft.irfft2(torch.fft.rfft2(potential) * self.transfer, s=(h, w))
        (my, mx), (fy, fx) = self.layout.margin, self.field
        return image[my : my + fy, mx : mx + fx] * self.attenuation


def _scene(volume, microscope, specimen, exposure, *, seed, index, movie, device) -> _Scene:
    p = microscope.pixel_size_angstrom
    diameter = particle_diameter_angstrom(volume, pixel_size_angstrom=p)
    layout = _layout(
        volume,
        microscope,
        specimen,
        exposure,
        diameter_px=diameter / p,
        seed=seed,
        index=index,
        movie=movie,
    )
    generator = block_generator(seed, index, _BACKGROUND, device=device)
    return _Scene(
        layout=layout,
        particles=_Particles(
            volume.to(torch.float32),
            layout.euler_deg,
            layout.centres,
            pixel=p,
            canvas=layout.canvas,
            device=device,
            diameter_angstrom=diameter,
        ),
        background=_background(specimen, microscope, layout, generator, device),
        transfer=_transfer(microscope, layout.ctf, layout.canvas, device),
        attenuation=_attenuation(specimen, microscope, layout, device),
        field=tuple(specimen.shape_px),
    )


def _truth(scene: _Scene) -> MicrographTruth:
    layout = scene.layout
    (my, mx), (fy, fx) = layout.margin, scene.field
    coordinates = layout.centres - torch.tensor([mx, my], dtype=_F64)
    inside = (coordinates >= 0) & (coordinates <= torch.tensor([fx - 1, fy - 1], dtype=_F64))
    inside = inside.all(dim=1)
    return MicrographTruth(
        ctf=layout.ctf,
        coordinates_px=coordinates[inside],
        euler_deg=layout.euler_deg[inside],
        diameter_angstrom=scene.particles.diameter_angstrom,
        motion=layout.motion,
        carbon_fraction=layout.carbon_fraction,
    )


def detector_gain(
    shape_px: tuple[int, int],
    *,
    gain_spread: float,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The detector's gain reference: ``1 + spread · 𝒩(0, 1)`` per pixel, clipped to [0.5, 1.5].

    One detector per dataset: it depends on ``seed`` only (not on the micrograph), so every
    movie of a dataset shares it.  Raw frames are counts divided by it; multiplying them by it
    (RELION's ``--gainref``) gives counts of expectation ``D p² (1 + c)``.

    Examples
    --------
    >>> g = detector_gain((64, 64), gain_spread=0.05, seed=3)
    >>> again = detector_gain((64, 64), gain_spread=0.05, seed=3)
    >>> round(float(g.mean()), 2), bool(torch.equal(g, again))
    (1.0, True)
    """
    if gain_spread < 0:
        raise ValueError(f"gain_spread must be >= 0, got {gain_spread}")
    generator = block_generator(seed, -1, _GAIN, device=device)
    noise = torch.randn(*shape_px, generator=generator, device=device)
    return (1 + gain_spread * noise).clamp(0.5, 1.5)


def _render_movie(scene: _Scene, microscope, exposure, damage, *, seed, index, device):
    """Frames (raw counts, divided by the gain) and the gain reference."""
    layout, motion = scene.layout, scene.layout.motion
    p = microscope.pixel_size_angstrom
    fy, fx = scene.field
    gain = None
    if exposure.gain_spread > 0:
        gain = detector_gain(
            scene.field, gain_spread=exposure.gain_spread, seed=seed, device=device
        )
    noise = block_generator(seed, index, _NOISE, device=device)
    spectrum = torch.fft.rfft2(scene.background)
    warp = _Warp(motion, layout.canvas, layout.margin, device)
    margin = torch.tensor(layout.margin[::-1], dtype=_F64)
    particle_field = motion.local_field_px(layout.centres - margin)
    frames = torch.empty(exposure.n_frames, fy, fx, dtype=torch.float32, device=device)
    for f in range(exposure.n_frames):
        shift = motion.global_px[f]
        ramp = _separable_ramp(
            (shift * p).to(device=device, dtype=torch.float32), layout.canvas, p, centered=False
        )
        moved = torch.fft.irfft2(spectrum * ramp, s=layout.canvas)
        moved = warp(moved, float(motion.local_scale[f]))
        positions = layout.centres + shift + motion.local_scale[f] * particle_field
        scene.particles.paste(moved, positions, damage[f])
        rate = exposure.dose_per_frame * p * p * (1 + scene.contrast(moved)).clamp_min(0)
        frames[f] = torch.poisson(rate if gain is None else rate / gain, generator=noise)
    return frames, gain


def simulate_micrograph(
    volume: torch.Tensor,
    *,
    index: int,
    microscope: Microscope,
    specimen: Specimen,
    exposure: Exposure,
    seed: int = 0,
    movie: bool = True,
    device: torch.device | str | None = None,
) -> SimulatedMicrograph:
    """Simulate micrograph ``index`` of a dataset: its movie (or summed exposure) and truth.

    Parameters
    ----------
    volume : Tensor, shape (N, N, N)
        The particle's Coulomb potential [V] at ``microscope.pixel_size_angstrom``, origin
        at N//2 (e.g. from :func:`cryoglass.simulate.potential.potential_map`).
    index : int
        Micrograph number: with ``seed`` it fixes every random choice.
    microscope, specimen, exposure : Microscope, Specimen, Exposure
    seed : int
    movie : bool
        ``True``: frames with motion, damage per frame and (``gain_spread > 0``) a gain;
        ``False``: only the motion-free sum of the whole exposure — the expectation of the
        sum of the frames without motion, one Poisson draw at the total dose, the damage
        averaged over the frames.
    device : optional
        Where to compute (default: the volume's); the truth stays on the CPU.

    Returns
    -------
    SimulatedMicrograph

    Examples
    --------
    >>> from cryoglass.simulate.phantom import gaussian_map
    >>> centres = torch.tensor([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 4.0]])
    >>> volume = 5 * gaussian_map(centres, shape=(24, 24, 24), pixel_size_angstrom=2.0,
    ...                           sigma_angstrom=3.0)  # volts
    >>> out = simulate_micrograph(volume, index=0, seed=1,
    ...     microscope=Microscope(pixel_size_angstrom=2.0), specimen=Specimen(shape_px=(96, 96)),
    ...     exposure=Exposure(n_frames=4), movie=True)
    >>> out.frames.shape, out.truth.motion.relion_shifts_px().shape
    (torch.Size([4, 96, 96]), torch.Size([4, 2]))
    """
    _check(microscope, specimen, exposure, volume)
    device = torch.device(device) if device is not None else volume.device
    scene = _scene(
        volume, microscope, specimen, exposure, seed=seed, index=index, movie=movie, device=device
    )
    exposures = frame_exposures(
        exposure.n_frames,
        dose_per_frame=exposure.dose_per_frame,
        pre_exposure=exposure.pre_exposure,
        at="middle",
    )
    damage = exposure_filter(
        scene.particles.frequency, exposures, voltage_kv=microscope.voltage_kv
    ).to(torch.float32)
    truth = _truth(scene)
    if movie:
        frames, gain = _render_movie(
            scene, microscope, exposure, damage, seed=seed, index=index, device=device
        )
        return SimulatedMicrograph(index, frames, None, gain, truth)
    potential = scene.background.clone()
    scene.particles.paste(potential, scene.layout.centres, damage.mean(dim=0))
    p = microscope.pixel_size_angstrom
    rate = exposure.total_dose * p * p * (1 + scene.contrast(potential)).clamp_min(0)
    counts = torch.poisson(rate, generator=block_generator(seed, index, _NOISE, device=device))
    return SimulatedMicrograph(index, None, counts, None, truth)


def simulate_micrographs(
    volume: torch.Tensor,
    n_micrographs: int,
    *,
    microscope: Microscope,
    specimen: Specimen,
    exposure: Exposure,
    seed: int = 0,
    movie: bool = True,
    first: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[SimulatedMicrograph]:
    """Micrographs ``first … first + n − 1`` of a dataset, one at a time (see
    :func:`simulate_micrograph`); each depends only on ``(seed, index)``.

    Examples
    --------
    >>> from cryoglass.simulate.phantom import gaussian_map
    >>> volume = 5 * gaussian_map(torch.zeros(1, 3), shape=(16, 16, 16), pixel_size_angstrom=3.0,
    ...                           sigma_angstrom=4.0)
    >>> sums = simulate_micrographs(volume, 2, microscope=Microscope(pixel_size_angstrom=3.0),
    ...     specimen=Specimen(shape_px=(64, 64)), exposure=Exposure(), movie=False)
    >>> [tuple(s.micrograph.shape) for s in sums]
    [(64, 64), (64, 64)]
    """
    if n_micrographs < 0:
        raise ValueError(f"n_micrographs must be >= 0, got {n_micrographs}")
    for index in range(first, first + n_micrographs):
        yield simulate_micrograph(
            volume,
            index=index,
            microscope=microscope,
            specimen=specimen,
            exposure=exposure,
            seed=seed,
            movie=movie,
            device=device,
        )
