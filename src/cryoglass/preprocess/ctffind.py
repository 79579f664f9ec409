r"""CTF estimation from a micrograph, CTFFIND4-style: spectrum, background, search, refinement.

The steps, each a function of its own (Rohou & Grigorieff 2015, whose method this follows; the
code is written from the paper, not from CTFFIND's source):

1. **Spectrum** (:func:`average_power_spectrum`, :func:`power_spectrum`).  The micrograph is
   cut into overlapping square tiles; each tile's mean is removed, its edges are tapered (a
   cosine over 5 % of the tile, which keeps the tile edges from drawing a bright cross through
   the spectrum) and the power spectra ``|F|²`` of all tiles are averaged.  The average
   periodogram has the Thon rings of the whole micrograph with ``1/n_tiles`` of one tile's
   speckle variance.  When the pixel is small the tiles are cut larger and the centre of their
   spectrum kept (as CTFFIND resamples to 1.4 Å): the spectrum then samples the rings finely
   enough at high defocus, and its pixel size is ``pixel · tile_px / tile_size``.
2. **Background** (:func:`subtract_background`).  The amplitude spectrum ``A = sqrt(P)`` is a
   smooth background (noise, the particles' and ice's structure factor, the detector's MTF)
   on which the rings ride.  The background is the mean of ``A`` in a sliding box about as wide
   as the first ring's period, ``√2 · r_min`` Fourier pixels (pixels inside ``r_min``, the
   low-resolution limit of the fit, are left out of the box); ``S = A − background`` keeps
   the rings, centred on zero.  Outliers (ice reflections, hot columns) are clipped.
3. **Score** (:func:`ctf_fit_score`).  The figure of merit of a CTF is the normalised
   cross-correlation between ``S`` and ``|CTF|`` over the half plane of the annulus between
   the resolution limits,

   .. math:: \mathrm{CC} = \frac{\sum_k (S_k - \bar S)(|C_k| - \overline{|C|})}
             {\sqrt{\sum_k (S_k - \bar S)^2 \sum_k (|C_k| - \overline{|C|})^2}},
             \qquad C_k = \sin\chi(\mathbf k)

   with RELION's ``χ`` (:mod:`cryoglass.ctf`): astigmatic defocus, C_s, amplitude contrast and
   the phase-plate shift.  ``CC`` does not depend on the scale or offset of either side, so no
   envelope has to be fitted.  It is RELION's rlnCtfFigureOfMerit (CTFFIND's "score").
4. **Search** (:func:`estimate_ctf`).  (a) One dimension: the rotational average of ``S``
   against ``|sin χ|`` of a round CTF, every ``defocus_step`` Å from the minimum to the
   maximum defocus (× every phase step with a phase plate) — one batched matrix of candidate
   curves; its best few local maxima go on.  (b) Two dimensions around each: a grid of mean
   defocus and astigmatism (half difference ``h = (U − V)/2`` and angle, steps chosen so that
   neighbours differ by ≤ 0.6 rad of phase) scored on a fixed random subset of the annulus'
   pixels out to ``coarse_resolution_angstrom``, all candidates at once.  (c) Local
   refinement by L-BFGS in the smooth coordinates ``(mean, h cos 2θ, h sin 2θ, φ)``, in which
   ``χ`` is linear (so the gradient is exact and cheap, :func:`_score_and_gradient`): the best
   grid points on that inner annulus, then the winner on the whole annulus.
5. **Fit resolution** (:func:`equiphase_average`, :func:`fit_resolution`).  Each pixel of the
   (radially re-normalised) spectrum is moved to the radius at which a *round* CTF of the mean
   defocus has the same phase ``χ`` ("equi-phase averaging"): the astigmatic rings become
   circles and one 1D profile holds them all.  The profile is correlated with ``|sin χ|`` in
   a window one ring period wide on each side; the fit resolution (rlnCtfMaxResolution) is
   where this local correlation first falls below ``fit_threshold`` (0.3) after the first zero.

Conventions are RELION's (:mod:`cryoglass.ctf`): defocus in Å, positive underfocus; U ≥ V;
the angle of U from the image x axis in degrees, in [−90, 90); the phase shift in degrees.
Spectra are centred: DC at index ``T//2`` (docs/conventions.md, item 3).

References
----------
Rohou, A. & Grigorieff, N. (2015). CTFFIND4: Fast and accurate defocus estimation from
electron micrographs. J. Struct. Biol. 192, 216-221. https://doi.org/10.1016/j.jsb.2015.08.008

Mindell, J. A. & Grigorieff, N. (2003). Accurate determination of local defocus and specimen
tilt in electron microscopy. J. Struct. Biol. 142, 334-347.
https://doi.org/10.1016/S1047-8477(03)00069-8
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cryoglass.ctf import CTFParams, aberration_phase, electron_wavelength_angstrom
from cryoglass.fourier.fft import next_fast_size
from cryoglass.fourier.grids import centered_indices
from cryoglass.fourier.radial import radial_average

__all__ = [
    "CTFFit",
    "CTFSearch",
    "PowerSpectrum",
    "average_power_spectrum",
    "ctf_fit_score",
    "diagnostic_image",
    "equiphase_average",
    "estimate_ctf",
    "fit_resolution",
    "power_spectrum",
    "subtract_background",
]

_F64 = torch.float64


@dataclass(frozen=True)
class CTFSearch:
    """How :func:`estimate_ctf` searches (CTFFIND's settings; RELION's defaults where it has them).

    Attributes
    ----------
    min_resolution_angstrom, max_resolution_angstrom : float
        The annulus of the spectrum that is fitted [Å] (CTFFIND: 30 and 5).
    min_defocus_angstrom, max_defocus_angstrom : float
        Range of the mean defocus searched [Å] (RELION: 5000 and 50000).
    defocus_step_angstrom : float
        Step of the one-dimensional search [Å].
    max_astigmatism_angstrom : float
        Largest ``U − V`` searched in the 2D grid [Å]; the refinement may go beyond it.
    phase_plate : bool
        Also search the phase shift (Volta phase plate) between ``min_phase_shift_deg`` and
        ``max_phase_shift_deg`` in steps of ``phase_shift_step_deg``.
    tile_size : int
        Side of the spectrum [px] (CTFFIND's box; 512).
    tile_overlap : float
        Fraction of a tile shared with its neighbour (0.5: tiles every half tile).
    min_fit_pixel_size_angstrom : float
        Tiles are cut larger and their spectra cropped so that the spectrum's pixel is at
        least this [Å] (CTFFIND: 1.4), unless ``max_resolution_angstrom / 2`` is smaller.
    fit_threshold : float
        Local correlation below which the rings count as lost (fit resolution).
    coarse_resolution_angstrom : float
        The 2D grid and the first refinement use the spectrum up to this resolution [Å]
        only (a coarser grid suffices there); the final refinement uses the whole annulus.
    n_pixels_coarse : int
        Annulus pixels used by the 2D grid search (a fixed random subset).
    n_refine : int
        Grid candidates refined locally; the best refined one wins.
    """

    min_resolution_angstrom: float = 30.0
    max_resolution_angstrom: float = 5.0
    min_defocus_angstrom: float = 5000.0
    max_defocus_angstrom: float = 50000.0
    defocus_step_angstrom: float = 100.0
    max_astigmatism_angstrom: float = 3000.0
    phase_plate: bool = False
    min_phase_shift_deg: float = 0.0
    max_phase_shift_deg: float = 180.0
    phase_shift_step_deg: float = 10.0
    tile_size: int = 512
    tile_overlap: float = 0.5
    min_fit_pixel_size_angstrom: float = 1.4
    fit_threshold: float = 0.3
    coarse_resolution_angstrom: float = 8.0
    n_pixels_coarse: int = 8000
    n_refine: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.max_resolution_angstrom < self.min_resolution_angstrom:
            raise ValueError(
                "resolution range: need 0 < max_resolution < min_resolution [Å], got "
                f"{self.max_resolution_angstrom:g} and {self.min_resolution_angstrom:g}"
            )
        if not 0 <= self.min_defocus_angstrom < self.max_defocus_angstrom:
            raise ValueError(
                "defocus range: need 0 <= min_defocus < max_defocus [Å], got "
                f"{self.min_defocus_angstrom:g} and {self.max_defocus_angstrom:g}"
            )
        if self.defocus_step_angstrom <= 0 or self.phase_shift_step_deg <= 0:
            raise ValueError("defocus and phase-shift steps must be > 0")
        if self.tile_size < 64 or self.tile_size % 2:
            raise ValueError(f"tile_size must be even and >= 64, got {self.tile_size}")
        if not 0 <= self.tile_overlap < 1:
            raise ValueError(f"tile_overlap must be in [0, 1), got {self.tile_overlap}")


@dataclass(frozen=True)
class PowerSpectrum:
    """An averaged power spectrum and the pixel size its frequencies refer to.

    Attributes
    ----------
    power : Tensor, shape (T, T)
        Centred average periodogram (DC at ``T//2``); white noise of variance σ² gives σ².
    pixel_size_angstrom : float
        Pixel size of the spectrum [Å]: frequency of index ``i`` from DC is
        ``i / (T · pixel_size_angstrom)``; Nyquist ``1 / (2 · pixel_size_angstrom)``.
    n_tiles : int
        Tiles averaged.
    tile_px : int
        Side of the tiles cut from the micrograph [px of the micrograph].
    """

    power: torch.Tensor
    pixel_size_angstrom: float
    n_tiles: int
    tile_px: int


@dataclass(frozen=True)
class CTFFit:
    """The CTF of one micrograph and the diagnostics users judge it by.

    Attributes
    ----------
    defocus_u_angstrom, defocus_v_angstrom : float
        Defocus along the major/minor axes [Å], U ≥ V (rlnDefocusU/V).
    astigmatism_angle_deg : float
        Angle of U from the x axis [degrees], in [−90, 90) (rlnDefocusAngle).
    phase_shift_deg : float
        Phase-plate shift [degrees] (rlnPhaseShift; 0 without ``phase_plate``).
    figure_of_merit : float
        Normalised cross-correlation of the fit (rlnCtfFigureOfMerit).
    max_resolution_angstrom : float
        Fit resolution [Å] (rlnCtfMaxResolution).
    voltage_kv, cs_mm, amplitude_contrast : float
        The optics the fit used.
    spectrum : Tensor (T, T)
        Background-subtracted amplitude spectrum (centred, clipped) — the diagnostic image.
    spectrum_pixel_size_angstrom : float
        Pixel size of ``spectrum`` [Å].
    frequency_inv_angstrom : Tensor (n,)
        Frequencies of the 1D curves [1/Å].
    rotational_average : Tensor (n,)
        Equi-phase average of the re-normalised spectrum.
    fit_profile : Tensor (n,)
        ``|sin χ|`` of the fit at the same frequencies.
    fit_correlation : Tensor (n,)
        Local correlation of the two (the fit-resolution criterion); NaN below the fit range.
    search_seconds : dict
        Wall time of each step [s].
    """

    defocus_u_angstrom: float
    defocus_v_angstrom: float
    astigmatism_angle_deg: float
    phase_shift_deg: float
    figure_of_merit: float
    max_resolution_angstrom: float
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    spectrum: torch.Tensor = field(repr=False)
    spectrum_pixel_size_angstrom: float = 1.0
    frequency_inv_angstrom: torch.Tensor = field(default=None, repr=False)
    rotational_average: torch.Tensor = field(default=None, repr=False)
    fit_profile: torch.Tensor = field(default=None, repr=False)
    fit_correlation: torch.Tensor = field(default=None, repr=False)
    search_seconds: dict = field(default_factory=dict, repr=False)

    @property
    def defocus_mean_angstrom(self) -> float:
        """``(U + V) / 2`` [Å]."""
        return 0.5 * (self.defocus_u_angstrom + self.defocus_v_angstrom)

    @property
    def astigmatism_angstrom(self) -> float:
        """``U − V`` [Å] (rlnCtfAstigmatism)."""
        return self.defocus_u_angstrom - self.defocus_v_angstrom

    @property
    def params(self) -> CTFParams:
        """The fit as :class:`~cryoglass.ctf.CTFParams` (floats)."""
        return CTFParams(
            defocus_u_angstrom=self.defocus_u_angstrom,
            defocus_v_angstrom=self.defocus_v_angstrom,
            astigmatism_angle_deg=self.astigmatism_angle_deg,
            voltage_kv=self.voltage_kv,
            cs_mm=self.cs_mm,
            amplitude_contrast=self.amplitude_contrast,
            phase_shift_deg=self.phase_shift_deg,
        )

    def to_dict(self) -> dict:
        """The scalar results (RELION's meaning), for JSON and STAR rows."""
        return {
            "defocus_u_angstrom": self.defocus_u_angstrom,
            "defocus_v_angstrom": self.defocus_v_angstrom,
            "astigmatism_angle_deg": self.astigmatism_angle_deg,
            "astigmatism_angstrom": self.astigmatism_angstrom,
            "phase_shift_deg": self.phase_shift_deg,
            "figure_of_merit": self.figure_of_merit,
            "max_resolution_angstrom": self.max_resolution_angstrom,
        }


# ----------------------------------------------------------------------------- spectrum


def _taper(n: int, fraction: float, *, dtype, device) -> torch.Tensor:
    """1D window: 1 inside, a raised cosine over ``fraction · n`` pixels at each edge."""
    width = max(1, int(round(fraction * n)))
    x = torch.arange(n, dtype=dtype, device=device)
    edge = torch.minimum(x, n - 1 - x)
    ramp = 0.5 - 0.5 * torch.cos(math.pi * (edge + 0.5) / width)
    return torch.where(edge < width, ramp, torch.ones_like(ramp))


def _full_from_half(half: torch.Tensor, n: int) -> torch.Tensor:
    """Full centred (n, n) grid of a real, even quantity (``P(−k) = P(k)``) from its rfft half."""
    negative_rows = torch.roll(torch.flip(half[..., 1 : n // 2], dims=(-2,)), 1, dims=-2)
    full = torch.cat([half, torch.flip(negative_rows, dims=(-1,))], dim=-1)
    return torch.fft.fftshift(full, dim=(-2, -1))


def average_power_spectrum(
    micrographs: torch.Tensor,
    *,
    tile_px: int,
    overlap: float = 0.5,
    crop_to: int | None = None,
    taper_fraction: float = 0.05,
    tiles_per_batch: int = 16,
) -> tuple[torch.Tensor, int]:
    r"""Average periodogram of overlapping, tapered tiles of micrographs.

    Parameters
    ----------
    micrographs : Tensor, real, shape (*batch, H, W)
    tile_px : int
        Side of the square tiles [px]; each micrograph must be at least this large.
    overlap : float
        Fraction shared by neighbouring tiles (step ``round(tile_px · (1 − overlap))``).
    crop_to : int, optional
        Keep the central ``crop_to × crop_to`` frequencies of the spectrum (even, ≤ tile_px):
        the spectrum of a pixel ``tile_px / crop_to`` times larger.
    taper_fraction : float
        Width of the cosine edge of each tile, as a fraction of its side.
    tiles_per_batch : int
        Tiles transformed at once (memory only; the result does not depend on it).

    Returns
    -------
    power : Tensor, shape (*batch, T, T), T = crop_to or tile_px
        Centred (DC at ``T//2``), normalised so that white noise of variance σ² gives σ²:
        :math:`P(\mathbf k) = \frac{1}{n\sum_r w_r^2}\sum_{t=1}^{n}
        \big|\mathcal F[w\,(x_t - \bar x_t)](\mathbf k)\big|^2`.
    n_tiles : int
        Tiles averaged per micrograph.

    Examples
    --------
    >>> noise = torch.randn(600, 700, generator=torch.Generator().manual_seed(0))
    >>> power, n = average_power_spectrum(noise, tile_px=128)
    >>> power.shape, n, round(float(power[10:50, 10:50].mean()), 1)
    (torch.Size([128, 128]), 72, 1.0)
    """
    if micrographs.ndim < 2 or micrographs.is_complex():
        raise ValueError(f"micrographs must be real (..., H, W), got {tuple(micrographs.shape)}")
    h, w = micrographs.shape[-2:]
    if tile_px > min(h, w):
        raise ValueError(f"tiles of {tile_px} px do not fit in a {h} × {w} micrograph")
    if crop_to is not None and (crop_to > tile_px or crop_to % 2):
        raise ValueError(f"crop_to must be even and <= tile_px ({tile_px}), got {crop_to}")
    batch = micrographs.shape[:-2]
    images = micrographs.reshape(-1, h, w)
    if not images.is_floating_point():
        images = images.float()
    step = max(1, int(round(tile_px * (1.0 - overlap))))
    tiles = images.unfold(-2, tile_px, step).unfold(-2, tile_px, step)  # (B, ny, nx, T, T)
    tiles = tiles.reshape(images.shape[0], -1, tile_px, tile_px)
    n_tiles = tiles.shape[1]
    window_1d = _taper(tile_px, taper_fraction, dtype=images.dtype, device=images.device)
    window = window_1d[:, None] * window_1d[None, :]
    total = torch.zeros(
        images.shape[0], tile_px, tile_px // 2 + 1, dtype=images.dtype, device=images.device
    )
    for start in range(0, n_tiles, tiles_per_batch):
        chunk = tiles[:, start : start + tiles_per_batch]
        chunk = (chunk - chunk.mean(dim=(-2, -1), keepdim=True)) * window
        total += torch.fft.rfft2(chunk).abs().square().sum(dim=1)
    total /= n_tiles * float(window.square().sum())
    power = _full_from_half(total, tile_px)
    if crop_to is not None and crop_to < tile_px:
        lo = tile_px // 2 - crop_to // 2
        power = power[..., lo : lo + crop_to, lo : lo + crop_to]
    return power.reshape(*batch, *power.shape[-2:]), n_tiles


def power_spectrum(
    micrograph: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    tile_size: int = 512,
    overlap: float = 0.5,
    min_pixel_size_angstrom: float = 1.4,
) -> PowerSpectrum:
    """The averaged spectrum of one micrograph on a ``tile_size²`` grid, resampled if needed.

    When ``pixel_size_angstrom < min_pixel_size_angstrom`` the tiles are cut larger
    (``tile_px`` = the next FFT-friendly even size ≥ ``tile_size · min_pixel / pixel``) and
    the centre ``tile_size²`` of their spectrum is kept, so that the spectrum's pixel is
    ``pixel · tile_px / tile_size`` ≥ ``min_pixel_size_angstrom`` (CTFFIND resamples the same
    way): the Thon rings are then sampled more finely, which high defoci need.  A micrograph
    smaller than the large tiles falls back to the largest tile that fits.

    Parameters
    ----------
    micrograph : Tensor (H, W)
    pixel_size_angstrom : float
        Pixel size of the micrograph [Å].
    tile_size : int
        Side of the returned spectrum [px] (even).
    overlap : float
        See :func:`average_power_spectrum`.
    min_pixel_size_angstrom : float
        Smallest pixel size of the spectrum [Å].

    Returns
    -------
    PowerSpectrum

    Examples
    --------
    >>> noise = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))
    >>> s = power_spectrum(noise, pixel_size_angstrom=0.7, tile_size=256)
    >>> s.power.shape, s.tile_px, round(s.pixel_size_angstrom, 3)
    (torch.Size([256, 256]), 512, 1.4)
    """
    h, w = micrograph.shape[-2:]
    if tile_size > min(h, w):
        raise ValueError(
            f"the micrograph ({h} × {w} px) is smaller than the spectrum tile ({tile_size} px); "
            "use a smaller tile size"
        )
    tile_px = tile_size
    if pixel_size_angstrom < min_pixel_size_angstrom:
        wanted = int(math.ceil(tile_size * min_pixel_size_angstrom / pixel_size_angstrom))
        wanted = next_fast_size(wanted + (wanted % 2))
        while wanted % 2:
            wanted = next_fast_size(wanted + 1)
        largest = min(h, w) - (min(h, w) % 2)
        tile_px = min(wanted, largest)
    power, n_tiles = average_power_spectrum(
        micrograph, tile_px=tile_px, overlap=overlap, crop_to=tile_size
    )
    return PowerSpectrum(
        power=power,
        pixel_size_angstrom=pixel_size_angstrom * tile_px / tile_size,
        n_tiles=n_tiles,
        tile_px=tile_px,
    )


def _radius_px(n: int, *, device=None, dtype=_F64) -> torch.Tensor:
    """Distance from DC in Fourier pixels on a centred (n, n) grid."""
    i = centered_indices(n, device=device, dtype=dtype)
    return torch.sqrt(i[:, None] ** 2 + i[None, :] ** 2)


def _box_sum(x: torch.Tensor, box: int) -> torch.Tensor:
    """Sum of ``x`` over a ``box × box`` window centred on every pixel (zeros outside)."""
    r = box // 2
    for dim in (-2, -1):
        n = x.shape[dim]
        padded = F.pad(x.movedim(dim, -1), (r + 1, r))
        c = torch.cumsum(padded, dim=-1)
        x = (c[..., box : box + n] - c[..., :n]).movedim(-1, dim)
    return x


def subtract_background(
    amplitude: torch.Tensor, *, box_px: int, inner_radius_px: float, clip_sigma: float = 4.0
) -> torch.Tensor:
    """Remove the smooth background of a centred amplitude spectrum (box-mean subtraction).

    Parameters
    ----------
    amplitude : Tensor (..., T, T)
        Centred amplitude spectrum ``sqrt(power)``.
    box_px : int
        Side of the sliding box [Fourier px] (made odd); CTFFIND uses ``√2 · inner_radius_px``,
        about the period of the first Thon ring.
    inner_radius_px : float
        Pixels closer to DC than this [Fourier px] (inside the fit's low-resolution limit) are
        left out of the box means, so the strong low-frequency peak does not leak outwards.
    clip_sigma : float
        Values further than this many standard deviations (over the pixels outside
        ``inner_radius_px``) from the mean are clipped.

    Returns
    -------
    Tensor (..., T, T)
        ``A − box_mean(A)`` outside ``inner_radius_px``, clipped; 0 inside.

    Examples
    --------
    >>> ramp = 5.0 + torch.linspace(0, 1, 64)[None, :].expand(64, 64)
    >>> s = subtract_background(ramp, box_px=9, inner_radius_px=4)
    >>> bool(s[10:54, 10:22].abs().max() < 1e-5)  # a linear background is removed exactly
    True
    """
    box = box_px + 1 - box_px % 2
    n = amplitude.shape[-1]
    outside = (_radius_px(n, device=amplitude.device) >= inner_radius_px).to(amplitude.dtype)
    sums = _box_sum(amplitude * outside, box)
    counts = _box_sum(outside, box)
    background = sums / counts.clamp_min(1e-6)
    rings = (amplitude - background) * outside
    mask = outside.bool().expand_as(rings)
    values = rings[mask].reshape(*rings.shape[:-2], -1)
    mean = values.mean(dim=-1)[..., None, None]
    std = values.std(dim=-1)[..., None, None]
    rings = torch.minimum(torch.maximum(rings, mean - clip_sigma * std), mean + clip_sigma * std)
    return rings * outside


# ----------------------------------------------------------------------------- score


def _ctf_batch(
    mean: torch.Tensor,
    half: torch.Tensor,
    angle_deg: torch.Tensor,
    phase_deg: torch.Tensor,
    optics: dict,
) -> CTFParams:
    return CTFParams(
        defocus_u_angstrom=mean + half,
        defocus_v_angstrom=mean - half,
        astigmatism_angle_deg=angle_deg,
        phase_shift_deg=phase_deg,
        **optics,
    )


def ctf_fit_score(
    values: torch.Tensor,
    frequency_inv_angstrom: torch.Tensor,
    params: CTFParams,
    *,
    weights: torch.Tensor | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    r"""Normalised cross-correlation between spectrum values and ``|CTF|`` for many CTFs.

    Parameters
    ----------
    values : Tensor (P,)
        Background-subtracted amplitude spectrum at P frequencies.
    frequency_inv_angstrom : Tensor (P, 2)
        Their frequency vectors ``(k_x, k_y)`` [1/Å].
    params : CTFParams
        C candidate CTFs (batch shape (C,) or scalar).
    weights : Tensor (P,), optional
        Weight of each value (e.g. the number of pixels in a radial bin); default 1.
    batch_size : int
        Candidates evaluated at once (memory only).

    Returns
    -------
    Tensor (C,)
        :math:`\mathrm{CC}_c = \frac{\sum_p w_p \tilde S_p \tilde M_{cp}}
        {\sqrt{\sum_p w_p \tilde S_p^2 \sum_p w_p \tilde M_{cp}^2}}` with
        :math:`M_{cp} = |\sin\chi_c(\mathbf k_p)|` and tildes the weighted means removed.

    Examples
    --------
    >>> k = torch.stack([torch.linspace(0.03, 0.2, 400), torch.zeros(400)], dim=-1)
    >>> truth = CTFParams(15000.0, 15000.0)
    >>> values = torch.sin(aberration_phase(truth, k)).abs()
    >>> trials = CTFParams(torch.tensor([12000.0, 15000.0, 18000.0]), 15000.0)
    >>> ctf_fit_score(values, k, trials).argmax().item()
    1
    """
    dtype = frequency_inv_angstrom.dtype
    values = values.to(dtype)
    w = torch.ones_like(values) if weights is None else weights.to(values)
    w = w / w.sum()
    s = values - (w * values).sum()
    s = s / torch.sqrt((w * s * s).sum()).clamp_min(1e-30)
    # Σ w (M − M̄) s = Σ w M s because s has zero weighted mean; Var M = Σ w M² − (Σ w M)²
    weights_2 = torch.stack([w * s, w], dim=-1)
    c = params.expand(dtype=dtype, device=values.device) if params.batch_shape else params
    n = int(c.batch_shape[0]) if c.batch_shape else 1
    scores = []
    for start in range(0, n, batch_size):
        part = c[start : start + batch_size] if c.batch_shape else c
        model = aberration_phase(part, frequency_inv_angstrom, dtype=dtype)
        model = model.reshape(-1, values.shape[-1])
        if model.requires_grad:
            model = torch.sin(model).abs()
            sums = model @ weights_2
            squares = model.square() @ w
        else:
            model = model.sin_().abs_()
            sums = model @ weights_2
            squares = model.square_() @ w
        variance = (squares - sums[:, 1] ** 2).clamp_min(1e-30)
        scores.append(sums[:, 0] / torch.sqrt(variance))
    out = torch.cat(scores)
    return out if params.batch_shape else out[0]


# ----------------------------------------------------------------------------- fit resolution


def _chi_coefficients(params: CTFParams) -> tuple[float, float, float, float]:
    """``(πλΔf̄, πλh, ½πC_sλ³, φ + w)`` of one CTF: χ = a k² + h-term − c k⁴ + p."""
    lam = float(electron_wavelength_angstrom(float(params.voltage_kv)))
    mean = 0.5 * (float(params.defocus_u_angstrom) + float(params.defocus_v_angstrom))
    half = 0.5 * (float(params.defocus_u_angstrom) - float(params.defocus_v_angstrom))
    c = 0.5 * math.pi * float(params.cs_mm) * 1e7 * lam**3
    p = math.radians(float(params.phase_shift_deg)) + math.asin(float(params.amplitude_contrast))
    return math.pi * lam * mean, math.pi * lam * half, c, p


def equiphase_average(
    spectrum: torch.Tensor,
    params: CTFParams,
    *,
    pixel_size_angstrom: float,
    n_bins: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Rotational average of a spectrum along the fitted CTF's rings ("equi-phase average").

    Each pixel at frequency ``k`` goes to the radius ``k_eq`` at which a round CTF of the
    mean defocus has the same phase, :math:`a\,k_{eq}^2 - c\,k_{eq}^4 = \chi(\mathbf k) - p`
    with ``a = πλΔf̄``, ``c = ½πC_sλ³`` (the root before χ's maximum,
    :math:`k_{eq}^2 = 2x / (a + \sqrt{a^2 - 4cx})`); astigmatic rings then line up.

    Parameters
    ----------
    spectrum : Tensor (T, T)
        Centred spectrum (e.g. background-subtracted).
    params : CTFParams
        One CTF (scalar fields).
    pixel_size_angstrom : float
        Pixel size of the spectrum [Å].
    n_bins : int, optional
        Radial bins of ``1 / (T · pixel)`` [1/Å]; default ``T//2 + 1`` (to Nyquist).

    Returns
    -------
    frequency_inv_angstrom : Tensor (n_bins,)
    average : Tensor (n_bins,)
        Mean spectrum value per bin of ``k_eq`` (0 for empty bins).
    fit : Tensor (n_bins,)
        ``|sin χ|`` of the round mean-defocus CTF at the bin frequencies.

    Examples
    --------
    >>> p = CTFParams(16000.0, 14000.0, astigmatism_angle_deg=30.0)
    >>> n, pixel = 256, 2.0
    >>> i = torch.arange(n, dtype=torch.float64) - n // 2
    >>> k = torch.stack(torch.meshgrid(i, i, indexing="xy"), dim=-1) / (n * pixel)
    >>> image = torch.sin(aberration_phase(p, k)).abs()
    >>> _, average, fit = equiphase_average(image, p, pixel_size_angstrom=pixel)
    >>> bool(torch.corrcoef(torch.stack([average[10:120], fit[10:120]]))[0, 1] > 0.95)
    True
    """
    n = spectrum.shape[-1]
    n_bins = n_bins or n // 2 + 1
    i = centered_indices(n, device=spectrum.device, dtype=_F64)
    ky, kx = torch.meshgrid(i, i, indexing="ij")
    k = torch.stack([kx, ky], dim=-1) / (n * pixel_size_angstrom)
    chi = aberration_phase(params, k, dtype=_F64)
    a, _, c, p = _chi_coefficients(params)
    x = chi - p
    disc = a * a - 4.0 * c * x
    half_plane = (kx > 0) | ((kx == 0) & (ky > 0))
    valid = (disc >= 0) & (x >= 0) & half_plane
    k2 = 2.0 * x / (a + torch.sqrt(disc.clamp_min(0.0)))
    r = torch.sqrt(k2.clamp_min(0.0)) * n * pixel_size_angstrom
    index = torch.floor(r + 0.5).long()
    valid &= index < n_bins
    index = index[valid]
    sums = torch.zeros(n_bins, dtype=_F64, device=spectrum.device)
    sums.index_add_(0, index, spectrum.to(_F64)[valid])
    counts = torch.bincount(index, minlength=n_bins).to(_F64)
    average = sums / counts.clamp_min(1.0)
    freq = torch.arange(n_bins, dtype=_F64, device=spectrum.device) / (n * pixel_size_angstrom)
    round_ctf = CTFParams(
        defocus_u_angstrom=0.5
        * (float(params.defocus_u_angstrom) + float(params.defocus_v_angstrom)),
        defocus_v_angstrom=0.5
        * (float(params.defocus_u_angstrom) + float(params.defocus_v_angstrom)),
        voltage_kv=params.voltage_kv,
        cs_mm=params.cs_mm,
        amplitude_contrast=params.amplitude_contrast,
        phase_shift_deg=params.phase_shift_deg,
    )
    line = torch.stack([freq, torch.zeros_like(freq)], dim=-1)
    fit = torch.sin(aberration_phase(round_ctf, line, dtype=_F64)).abs()
    return freq, average, fit


def fit_resolution(
    frequency_inv_angstrom: torch.Tensor,
    average: torch.Tensor,
    fit: torch.Tensor,
    params: CTFParams,
    *,
    min_frequency_inv_angstrom: float,
    threshold: float = 0.3,
) -> tuple[float, torch.Tensor]:
    r"""Where the Thon rings stop matching the fit: the local correlation's first drop.

    For every bin ``i`` the Pearson correlation of ``average`` and ``fit`` over the bins
    ``i − w_i … i + w_i`` is computed, with ``w_i`` one ring period at that frequency (the
    spacing of the zeros, :math:`\Delta k = \pi / |d\chi/dk|`, at least 3 bins).  The fit
    resolution is ``1/k`` of the last bin before the correlation first drops below
    ``threshold``, counting from the first CTF zero above ``min_frequency_inv_angstrom``.

    Parameters
    ----------
    frequency_inv_angstrom, average, fit : Tensor (n,)
        From :func:`equiphase_average` (bins equally spaced from 0).
    params : CTFParams
        The fitted CTF (for the ring period).
    min_frequency_inv_angstrom : float
        Bins below this [1/Å] are not judged.
    threshold : float
        Correlation below which the rings count as lost.

    Returns
    -------
    resolution_angstrom : float
        ``1 / k`` of the last good bin (Nyquist of the spectrum when the correlation never
        drops).
    correlation : Tensor (n,)
        The local correlation (NaN below ``min_frequency_inv_angstrom``).

    Examples
    --------
    >>> p = CTFParams(15000.0, 15000.0)
    >>> f = torch.arange(200, dtype=torch.float64) / 400.0
    >>> fit = torch.sin(aberration_phase(p, torch.stack([f, 0 * f], -1))).abs()
    >>> rings_to_8A = torch.where(f < 1 / 8, fit, torch.rand(200, generator=torch.Generator(
    ...     ).manual_seed(1), dtype=torch.float64))
    >>> res, _ = fit_resolution(f, rings_to_8A, fit, p, min_frequency_inv_angstrom=1 / 30)
    >>> 7.5 < res < 9.5
    True
    """
    n = frequency_inv_angstrom.shape[-1]
    step = float(frequency_inv_angstrom[1] - frequency_inv_angstrom[0])
    a, _, c, _ = _chi_coefficients(params)
    k = frequency_inv_angstrom.to(_F64)
    slope = (2.0 * a * k - 4.0 * c * k**3).abs().clamp_min(1e-12)
    half_window = torch.clamp(torch.round(math.pi / slope / step), min=3, max=n // 4).long()
    start = int(math.ceil(min_frequency_inv_angstrom / step))
    zeros = fit[start:] < 0.05  # first zero of the CTF above the fit range's lower limit
    first_zero = start + int(torch.nonzero(zeros)[0]) if bool(zeros.any()) else start
    # windowed Pearson correlation of every bin at once, from prefix sums over bins >= start
    x, y = average.to(_F64).clone(), fit.to(_F64).clone()
    x[:start], y[:start] = 0.0, 0.0
    inside = (torch.arange(n) >= start).to(_F64)
    prefix = torch.cumsum(F.pad(torch.stack([inside, x, y, x * x, y * y, x * y]), (1, 0)), dim=-1)
    i = torch.arange(n)
    lo = torch.clamp(i - half_window, min=start)
    hi = torch.clamp(i + half_window + 1, max=n)
    count, sx, sy, sxx, syy, sxy = prefix[:, hi] - prefix[:, lo]
    count = count.clamp_min(1.0)
    covariance = sxy / count - sx * sy / count**2
    variance_x = (sxx / count - (sx / count) ** 2).clamp_min(0.0)
    variance_y = (syy / count - (sy / count) ** 2).clamp_min(0.0)
    denominator = torch.sqrt(variance_x * variance_y)
    correlation = torch.where(
        (i >= start) & (hi - lo >= 4) & (denominator > 0),
        covariance / denominator.clamp_min(1e-300),
        torch.full_like(covariance, math.nan),
    )
    bad = ~(correlation >= threshold)  # NaN counts as bad
    bad[:first_zero] = False
    last_good = max(first_zero, int(torch.nonzero(bad)[0]) - 1) if bool(bad.any()) else n - 1
    return 1.0 / max(float(k[last_good]), 1e-12), correlation


# ----------------------------------------------------------------------------- search


def _annulus(n: int, pixel: float, k_min: float, k_max: float):
    """Frequencies (P, 2) [1/Å] and flat indices of the half-plane annulus of a centred grid."""
    i = centered_indices(n, dtype=_F64)
    ky, kx = torch.meshgrid(i, i, indexing="ij")
    k = torch.stack([kx, ky], dim=-1) / (n * pixel)
    radius = torch.linalg.vector_norm(k, dim=-1)
    half = (kx > 0) | ((kx == 0) & (ky > 0))
    chosen = half & (radius >= k_min) & (radius <= k_max)
    return k[chosen], torch.nonzero(chosen.flatten()).squeeze(-1)


def _search_1d(rings, pixel, k_min, k_max, search: CTFSearch, optics: dict):
    """The best ``n_refine`` local maxima (mean defocus, phase) of a round CTF against the
    rotational average."""
    n = rings.shape[-1]
    profile = radial_average(rings.to(_F64), ndim=2)
    freq = torch.arange(profile.shape[-1], dtype=_F64) / (n * pixel)
    inside = (freq >= k_min) & (freq <= k_max)
    line = torch.stack([freq[inside], torch.zeros_like(freq[inside])], dim=-1)
    defoci = torch.arange(
        search.min_defocus_angstrom,
        search.max_defocus_angstrom + 0.5 * search.defocus_step_angstrom,
        search.defocus_step_angstrom,
        dtype=_F64,
    )
    phases = _phase_grid(search)
    mean, phase = (g.reshape(-1) for g in torch.meshgrid(defoci, phases, indexing="ij"))
    candidates = _ctf_batch(mean, torch.zeros_like(mean), torch.zeros_like(mean), phase, optics)
    # bins weighted by their radius (≈ pixels per ring), as the 2D score weights pixels
    scores = ctf_fit_score(profile[inside], line, candidates, weights=freq[inside])
    scores = scores.reshape(len(defoci), len(phases))
    # the best few local maxima over defocus (each with its best phase): with strong
    # astigmatism or weak rings the highest 1D peak is not always the right one
    per_defocus, best_phase = scores.max(dim=1)
    padded = F.pad(per_defocus[None, None], (1, 1), value=-math.inf)[0, 0]
    peaks = (per_defocus >= padded[:-2]) & (per_defocus >= padded[2:])
    order = torch.argsort(torch.where(peaks, per_defocus, -math.inf), descending=True)
    chosen = [int(i) for i in order[: search.n_refine] if bool(peaks[i])]
    return [(float(defoci[i]), float(phases[best_phase[i]])) for i in chosen]


def _phase_grid(search: CTFSearch) -> torch.Tensor:
    if not search.phase_plate:
        return torch.zeros(1, dtype=_F64)
    return torch.arange(
        search.min_phase_shift_deg,
        search.max_phase_shift_deg + 0.5 * search.phase_shift_step_deg,
        search.phase_shift_step_deg,
        dtype=_F64,
    )


def _search_2d(values, k, centres, search: CTFSearch, optics: dict):
    """Grid of (mean, h, θ[, φ]) around the 1D maxima; returns the best ``n_refine`` rows."""
    lam = float(electron_wavelength_angstrom(optics["voltage_kv"]))
    k_max = float(torch.linalg.vector_norm(k, dim=-1).max())
    # steps that change the phase at k_max by at most ~0.6 rad between neighbours
    step_mean = min(search.defocus_step_angstrom, 0.6 / (math.pi * lam * k_max**2))
    rows = []
    for mean0, phase0 in centres:
        span = max(2.0 * search.defocus_step_angstrom, 0.03 * mean0)
        means = mean0 + torch.arange(-span, span + 0.5 * step_mean, step_mean, dtype=_F64)
        low, high = search.min_defocus_angstrom, search.max_defocus_angstrom
        means = means[(means >= low) & (means <= high)]
        rows += _grid_scores(values, k, means, phase0, step_mean, search, optics, lam, k_max)
    rows.sort(key=lambda row: -row[0])
    kept: list[tuple] = []
    for _, row in rows:
        # keep candidates that are not neighbours of a better one
        if all(
            abs(row[0] - r[0]) > 2 * step_mean or abs(row[1] - r[1]) > 2 * step_mean for r in kept
        ):
            kept.append(row)
        if len(kept) == search.n_refine:
            break
    return kept


def _grid_scores(values, k, means, phase0, step_mean, search, optics, lam, k_max):
    """(score, (mean, h, θ, φ)) of the astigmatism grid around one mean defocus."""
    step_half = 0.6 / (math.pi * lam * k_max**2)
    halves = torch.arange(step_half, 0.5 * search.max_astigmatism_angstrom + 1e-9, step_half)
    angle_rows = []
    for h in halves.tolist():
        step_angle = math.degrees(0.3 / (math.pi * lam * h * k_max**2))
        count = max(4, int(math.ceil(180.0 / min(step_angle, 45.0))))
        angles = torch.arange(count, dtype=_F64) * (180.0 / count) - 90.0
        angle_rows.append(torch.stack([torch.full_like(angles, h), angles], dim=-1))
    astig = torch.cat([torch.zeros(1, 2, dtype=_F64), *angle_rows])
    phases = (
        phase0 + torch.tensor([-1.0, 0.0, 1.0], dtype=_F64) * 0.5 * search.phase_shift_step_deg
        if search.phase_plate
        else torch.tensor([phase0], dtype=_F64)
    )
    m_i, a_i, p_i = torch.meshgrid(
        torch.arange(len(means)),
        torch.arange(len(astig)),
        torch.arange(len(phases)),
        indexing="ij",
    )
    m_i, a_i, p_i = m_i.reshape(-1), a_i.reshape(-1), p_i.reshape(-1)
    candidates = _ctf_batch(means[m_i], astig[a_i, 0], astig[a_i, 1], phases[p_i], optics)
    scores = ctf_fit_score(values, k, candidates, batch_size=64)
    order = torch.argsort(scores, descending=True)[: 10 * search.n_refine]
    return [
        (
            float(scores[j]),
            (
                float(means[m_i[j]]),
                float(astig[a_i[j], 0]),
                float(astig[a_i[j], 1]),
                float(phases[p_i[j]]),
            ),
        )
        for j in order.tolist()
    ]


def _score_and_gradient(values, k, x, optics: dict) -> tuple[float, torch.Tensor]:
    r"""CC of one CTF and its gradient in ``x = (mean, h_x, h_y, φ)`` [Å, Å, Å, rad].

    ``χ`` is linear in ``x``: ``∂χ/∂x = (πλk², πλ(k_x² − k_y²), πλ·2k_xk_y, 1)``, so with
    ``M = |sin χ|``, ``M' = sign(sin χ) cos χ`` and the CC of :func:`ctf_fit_score`
    (``N = Σ w M s``, ``V = Σ w M² − (Σ w M)²``, CC = N/√V) the gradient is
    ``∂CC/∂x_j = [Σ w s M' ∂_jχ − CC (Σ w M M' ∂_jχ − Σ w M · Σ w M' ∂_jχ) / √V] / √V``.
    """
    mean, hx, hy, phase = (float(v) for v in x)
    half = math.hypot(hx, hy)
    angle = 0.5 * math.degrees(math.atan2(hy, hx))
    params = CTFParams(
        mean + half,
        mean - half,
        astigmatism_angle_deg=angle,
        phase_shift_deg=math.degrees(phase),
        **optics,
    )
    chi = aberration_phase(params, k, dtype=_F64)
    sine, cosine = torch.sin(chi), torch.cos(chi)
    model = sine.abs()
    slope = torch.sign(sine) * cosine
    w = 1.0 / values.shape[-1]
    s = values - values.mean()
    s = s / torch.sqrt((s * s).mean()).clamp_min(1e-30)
    mean_model = model.mean()
    numerator = (model * s).mean()
    root = torch.sqrt(((model * model).mean() - mean_model**2).clamp_min(1e-30))
    cc = numerator / root
    lam = float(electron_wavelength_angstrom(optics["voltage_kv"]))
    kx, ky = k[..., 0], k[..., 1]
    d_chi = torch.stack(
        [
            math.pi * lam * (kx * kx + ky * ky),
            math.pi * lam * (kx * kx - ky * ky),
            math.pi * lam * 2.0 * kx * ky,
            torch.ones_like(kx),
        ],
        dim=-1,
    )
    terms = torch.stack([s * slope, model * slope, slope], dim=0) @ d_chi * w  # (3, 4)
    d_variance = 2.0 * terms[1] - 2.0 * mean_model * terms[2]
    gradient = (terms[0] - cc * d_variance / (2.0 * root)) / root
    return float(cc), gradient


def _refine(values, k, starts, search: CTFSearch, optics: dict):
    """L-BFGS on (mean, h cos 2θ, h sin 2θ[, φ]) from each start; the best (start, score)."""
    values, k = values.to(_F64), k.to(_F64)
    # optimise in kÅ and radians, so that all four steps are of similar size
    scale = torch.tensor([1000.0, 1000.0, 1000.0, 1.0], dtype=_F64)
    free = torch.tensor([1.0, 1.0, 1.0, 1.0 if search.phase_plate else 0.0], dtype=_F64)
    low, high = search.min_defocus_angstrom / 1000.0, search.max_defocus_angstrom / 1000.0
    best = None
    for mean, half, angle, phase in starts:
        two = math.radians(2.0 * angle)
        h = max(half, 1.0)
        x0 = torch.tensor([mean, h * math.cos(two), h * math.sin(two), math.radians(phase)])
        z = (x0.to(_F64) / scale).requires_grad_(True)
        optimizer = torch.optim.LBFGS(
            [z],
            lr=1.0,
            max_iter=100,
            tolerance_grad=1e-7,
            tolerance_change=1e-10,
            line_search_fn="strong_wolfe",
        )

        def closure(z=z):
            with torch.no_grad():
                z[0].clamp_(low, high)
            cc, gradient = _score_and_gradient(values, k, z.detach() * scale, optics)
            z.grad = -gradient * scale * free
            return torch.tensor(-cc, dtype=_F64)

        optimizer.step(closure)
        final = float(closure())
        if best is None or final < best[1]:
            best = (z.detach() * scale, final)
    mean, hx, hy, phase = best[0].tolist()
    params = CTFParams(
        mean + math.hypot(hx, hy),
        mean - math.hypot(hx, hy),
        astigmatism_angle_deg=0.5 * math.degrees(math.atan2(hy, hx)),
        phase_shift_deg=math.degrees(phase),
    )
    u, v, angle, phase_deg = _canonical(params)
    return (0.5 * (u + v), 0.5 * (u - v), angle, phase_deg), -best[1]


def _canonical(params: CTFParams) -> tuple[float, float, float, float]:
    """(U, V, angle in [−90, 90), phase in [0, 180)) with U ≥ V (CTFFIND's convention)."""
    u, v = float(params.defocus_u_angstrom), float(params.defocus_v_angstrom)
    angle = float(params.astigmatism_angle_deg)
    if u < v:
        u, v, angle = v, u, angle + 90.0
    angle = (angle + 90.0) % 180.0 - 90.0
    phase = float(params.phase_shift_deg) % 180.0  # |sin χ| cannot tell φ from φ + 180°
    return u, v, angle, phase


def estimate_ctf(
    micrograph: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    search: CTFSearch | None = None,
) -> CTFFit:
    """Estimate the CTF of one micrograph (CTFFIND4's method; see the module docstring).

    Parameters
    ----------
    micrograph : Tensor (H, W)
        A motion-corrected sum, any contrast; H and W ≥ the spectrum tile.
    pixel_size_angstrom : float
        Pixel size [Å].
    voltage_kv, cs_mm, amplitude_contrast : float
        Optics [kV], [mm], Q0.
    search : CTFSearch, optional
        Resolution and defocus ranges, phase plate, tiles (default :class:`CTFSearch`).

    Returns
    -------
    CTFFit

    Raises
    ------
    ValueError
        The micrograph is smaller than the tile; the resolution range lies beyond the
        spectrum's Nyquist frequency.

    Examples
    --------
    >>> from cryoglass.ctf import ctf_2d
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = CTFParams(21000.0, 19000.0, astigmatism_angle_deg=30.0)
    >>> ctf = ctf_2d(truth, image_size=1024, pixel_size_angstrom=1.5, rfft=True,
    ...              centered=False, dtype=torch.float32)
    >>> signal = torch.fft.irfft2(torch.fft.rfft2(torch.randn(1024, 1024, generator=g)) * ctf)
    >>> fit = estimate_ctf(signal + 0.5 * torch.randn(1024, 1024, generator=g),
    ...     pixel_size_angstrom=1.5, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1,
    ...     search=CTFSearch(tile_size=256))
    >>> abs(fit.defocus_mean_angstrom - 20000) < 200, abs(fit.astigmatism_angle_deg - 30) < 5
    (True, True)
    """
    import time

    search = search or CTFSearch()
    timings = {}
    started = time.perf_counter()
    min_pixel = min(search.min_fit_pixel_size_angstrom, 0.5 * search.max_resolution_angstrom)
    spectrum = power_spectrum(
        micrograph,
        pixel_size_angstrom=pixel_size_angstrom,
        tile_size=search.tile_size,
        overlap=search.tile_overlap,
        min_pixel_size_angstrom=min_pixel,
    )
    pixel = spectrum.pixel_size_angstrom
    n = search.tile_size
    nyquist = 0.5 / pixel
    k_min = 1.0 / search.min_resolution_angstrom
    k_max = min(1.0 / search.max_resolution_angstrom, nyquist)
    if k_min >= k_max:
        raise ValueError(
            f"the fit's low-resolution limit {search.min_resolution_angstrom:g} Å is beyond "
            f"Nyquist ({2 * pixel:.2f} Å)"
        )
    inner = k_min * n * pixel
    amplitude = torch.sqrt(spectrum.power.to(_F64))
    rings = subtract_background(
        amplitude, box_px=int(round(math.sqrt(2.0) * inner)), inner_radius_px=inner
    )
    timings["spectrum"] = time.perf_counter() - started
    optics = {
        "voltage_kv": float(voltage_kv),
        "cs_mm": float(cs_mm),
        "amplitude_contrast": float(amplitude_contrast),
    }

    started = time.perf_counter()
    centres = _search_1d(rings, pixel, k_min, k_max, search, optics)
    timings["search_1d"] = time.perf_counter() - started

    started = time.perf_counter()
    k, flat = _annulus(n, pixel, k_min, k_max)
    values = rings.reshape(-1)[flat]
    # coarse: the grid and a first refinement up to coarse_resolution_angstrom, where the
    # grid can be coarse; then the refinement on the whole annulus
    k_coarse = min(k_max, 1.0 / search.coarse_resolution_angstrom)
    coarse = torch.linalg.vector_norm(k, dim=-1) <= k_coarse
    generator = torch.Generator().manual_seed(0)
    subset = torch.nonzero(coarse).squeeze(-1)
    subset = subset[torch.randperm(len(subset), generator=generator)[: search.n_pixels_coarse]]
    starts = _search_2d(values[subset].float(), k[subset].float(), centres, search, optics)
    timings["search_2d"] = time.perf_counter() - started

    started = time.perf_counter()
    start, _ = _refine(values[coarse], k[coarse], starts, search, optics)
    (mean, half, angle, phase), score = _refine(values, k, [start], search, optics)
    u, v = mean + half, mean - half
    fitted = CTFParams(u, v, astigmatism_angle_deg=angle, phase_shift_deg=phase, **optics)
    timings["refine"] = time.perf_counter() - started

    started = time.perf_counter()
    normalised = _renormalise(rings, n)
    freq, average, fit = equiphase_average(normalised, fitted, pixel_size_angstrom=pixel)
    resolution, correlation = fit_resolution(
        freq,
        average,
        fit,
        fitted,
        min_frequency_inv_angstrom=k_min,
        threshold=search.fit_threshold,
    )
    timings["fit_resolution"] = time.perf_counter() - started
    return CTFFit(
        defocus_u_angstrom=u,
        defocus_v_angstrom=v,
        astigmatism_angle_deg=angle,
        phase_shift_deg=phase,
        figure_of_merit=float(score),
        max_resolution_angstrom=resolution,
        spectrum=rings.to(torch.float32),
        spectrum_pixel_size_angstrom=pixel,
        frequency_inv_angstrom=freq,
        rotational_average=average,
        fit_profile=fit,
        fit_correlation=correlation,
        search_seconds={key: round(value, 4) for key, value in timings.items()},
        **optics,
    )


def _renormalise(rings: torch.Tensor, n: int) -> torch.Tensor:
    """Divide each shell of the spectrum by its RMS (smoothed over ±2 shells)."""
    shells = torch.floor(_radius_px(n) + 0.5).long()
    rms = torch.sqrt(radial_average(rings.to(_F64) ** 2, ndim=2, n_shells=int(shells.max()) + 1))
    rms = F.avg_pool1d(rms[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0]
    return rings.to(_F64) / rms[shells].clamp_min(1e-12)


def diagnostic_image(fit: CTFFit, *, clip_sigma: float = 3.0) -> torch.Tensor:
    """CTFFIND's diagnostic picture: the spectrum on the right, the fitted ``|CTF|`` on the left.

    Parameters
    ----------
    fit : CTFFit
    clip_sigma : float
        The spectrum is clipped to ± this many standard deviations and scaled to [0, 1].

    Returns
    -------
    Tensor (T, T), float32
        Centred like the spectrum (DC at ``T//2``): columns ``x < T//2`` hold ``|sin χ|`` of the
        fit (its rings must continue those of the data across the middle), columns ``x ≥ T//2``
        the background-subtracted amplitude spectrum; 0 inside the fit's low-resolution limit.

    Examples
    --------
    >>> fit = CTFFit(15000.0, 14000.0, 20.0, 0.0, 0.5, 4.0, 300.0, 2.7, 0.1,
    ...              spectrum=torch.randn(64, 64), spectrum_pixel_size_angstrom=2.0)
    >>> image = diagnostic_image(fit)
    >>> image.shape, float(image.min()) >= 0.0, float(image.max()) <= 1.0
    (torch.Size([64, 64]), True, True)
    """
    spectrum = fit.spectrum.to(_F64)
    n = spectrum.shape[-1]
    inside = spectrum != 0
    values = spectrum[inside]
    if values.numel() > 1:
        mean, std = values.mean(), values.std().clamp_min(1e-12)
        scaled = ((spectrum - mean) / (2 * clip_sigma * std) + 0.5).clamp(0.0, 1.0)
    else:
        scaled = torch.zeros_like(spectrum)
    i = centered_indices(n, dtype=_F64)
    ky, kx = torch.meshgrid(i, i, indexing="ij")
    k = torch.stack([kx, ky], dim=-1) / (n * fit.spectrum_pixel_size_angstrom)
    model = torch.sin(aberration_phase(fit.params, k, dtype=_F64)).abs()
    image = torch.where(kx < 0, model, scaled) * inside
    return image.to(torch.float32)
