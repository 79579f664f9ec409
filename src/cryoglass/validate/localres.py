"""Local resolution by windowed FSC (``relion_postprocess --locres``, blocres).

The method (RELION 3.1's ``Postprocessing::run_locres``)
--------------------------------------------------------
Window centres ``c`` lie on a cubic grid of step ``s`` (the sampling, 25 Å by default) through
the box origin ``N//2``, inside the sphere ``|c| < N//2 − r``.  Around each centre a soft sphere

.. math:: m_c(x) = \\begin{cases} 1 & |x-c| < r \\\\
          \\tfrac12\\big(1 + \\cos(\\pi (|x-c| - r)/w)\\big) & r \\le |x-c| \\le r + w \\\\
          0 & \\text{beyond} \\end{cases}

(radius ``r = s/2``, soft edge ``w = s`` by default) windows both half maps.  The FSC of the
windowed halves, corrected for the window's own correlation by phase randomisation beyond
``randomize_at`` (25 Å; Chen et al. 2013),

.. math:: \\mathrm{FSC}_c = \\frac{\\mathrm{FSC}_t - \\mathrm{FSC}_n}{1 - \\mathrm{FSC}_n},

drops below 0.143 at the local resolution :math:`d_c` (at most 50 Å).  Each voxel's local
resolution is the window-weighted harmonic mean

.. math:: d(x) = \\frac{\\sum_c m_c(x)}{\\sum_c m_c(x) / d_c},

and the local-resolution-filtered map is :math:`\\sum_c m_c(x)\\,(h_c * \\bar v)(x) /
\\sum_c m_c(x)` with :math:`h_c` the FSC weight :math:`\\sqrt{2\\mathrm{FSC}_c/(1+\\mathrm{FSC}_c)}`
times a raised-cosine low-pass at :math:`d_c`, and :math:`\\bar v` the average of the halves.

What makes it fast
------------------
RELION transforms the full ``N³`` box five times per window.  Here the windowed maps are cut
out of the box as ``M³`` cubes (``M = 2⌈r + w⌉ + 1``, all of each window's support), batched,
zero-padded to ``P`` voxels and transformed.  With ``P ≥ 2M − 1`` that loses nothing: the
products :math:`F_1 F_2^*` summed by the FSC are the transform of the windows'
cross-correlation, whose support is ``2M − 1`` wide, so on the ``P`` grid they are exact
samples of the same band-limited function RELION samples on its ``N`` grid (a common
translation of both windows changes no FSC).  The default ``P`` is the smallest FFT-friendly
even size ``≥ 2M − 1`` (at most ``N``), and the products are summed over RELION's shells of
width ``1/(N·pixel)``: voxel ``k`` of the ``P`` grid falls in shell ``⌊|k|·N/P + ½⌋``.  So
``P`` only decides how densely each shell is sampled.  The two sums over windows are
scatter-adds of the windows into the box, and the filtered map needs one inverse transform per
resolution *level* (windows grouped into ``n_levels`` bins of local frequency, each bin
filtered with its members' mean FSC weight at their harmonic-mean resolution) instead of one
per window.

Differences from RELION
-----------------------
The crossing of 0.143 is interpolated between shells (:func:`cryoglass.fourier.crossing_shell`;
RELION reports the last shell above it, up to one shell coarser); shells are counted as on the
full grid (RELION counts its half grid once per voxel); the filtered map is of the *average*
of the halves (RELION's ``_locres_filtered.mrc`` is of their sum) and uses levels, not one
filter per window; the random phases are our own.  Medians inside a mask agree within a few %
(``tests/reference/test_relion_maptools.py``).

References
----------
Cardone, Heymann & Steven (2013) J. Struct. Biol. 184, 226–236,
doi:10.1016/j.jsb.2013.08.002 (blocres).
Chen et al. (2013) Ultramicroscopy 135, 24–35, doi:10.1016/j.ultramic.2013.06.004.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cryoglass.fourier.fft import next_fast_size
from cryoglass.fourier.filters import bfactor_filter, lowpass_filter
from cryoglass.fourier.radial import crossing_shell
from cryoglass.validate.fsc import (
    corrected_fsc,
    fourier_shell_index,
    fsc_weight,
    randomize_phases_beyond,
)
from cryoglass.validate.masks import soft_sphere_mask

__all__ = [
    "LocalResolutionParams",
    "LocalResolution",
    "window_centers",
    "local_resolution",
]


def _relion_round(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


@dataclass(frozen=True)
class LocalResolutionParams:
    """Settings of :func:`local_resolution` (RELION's ``--locres_*`` options, in Å).

    Attributes
    ----------
    sampling_angstrom : float
        Step of the window grid [Å] (``--locres_sampling``, 25).
    mask_radius_angstrom : float or None
        Radius of each window's flat top [Å] (``--locres_maskrad``; default half the sampling).
    edge_width_angstrom : float or None
        Width of its raised-cosine edge [Å] (``--locres_edgwidth``; default the sampling).
    randomize_at_angstrom : float
        Phases are randomised beyond this resolution [Å] (``--locres_randomize_at``, 25).
    min_resolution_angstrom : float
        Coarsest local resolution reported [Å] (``--locres_minres``, 50).
    threshold : float
        FSC threshold (0.143).
    bfactor_a2 : float
        B-factor applied to the filtered map [Å²] (``--adhoc_bfac``; negative sharpens).
    fft_box : int or None
        FFT box ``P`` of the windows [px]: default the smallest even FFT-friendly size
        ``>= 2M − 1`` (alias-free, see the module docstring), at most the box ``N``; ``N``
        reproduces RELION's shells exactly, at more cost.
    n_levels : int
        Resolution levels of the filtered map (one inverse transform each).
    """

    sampling_angstrom: float = 25.0
    mask_radius_angstrom: float | None = None
    edge_width_angstrom: float | None = None
    randomize_at_angstrom: float = 25.0
    min_resolution_angstrom: float = 50.0
    threshold: float = 0.143
    bfactor_a2: float = 0.0
    fft_box: int | None = None
    n_levels: int = 12

    def pixels(self, pixel_size_angstrom: float) -> tuple[int, int, int]:
        """``(step, radius, edge)`` in pixels, rounded as RELION rounds them."""
        radius = self.mask_radius_angstrom
        edge = self.edge_width_angstrom
        radius = 0.5 * self.sampling_angstrom if radius is None else radius
        edge = self.sampling_angstrom if edge is None else edge
        return (
            _relion_round(self.sampling_angstrom / pixel_size_angstrom),
            _relion_round(radius / pixel_size_angstrom),
            _relion_round(edge / pixel_size_angstrom),
        )


@dataclass(frozen=True)
class LocalResolution:
    """Result of :func:`local_resolution` (all maps (d, h, w), origin at ``N//2``).

    Attributes
    ----------
    resolution_angstrom : Tensor
        Local resolution [Å] per voxel; 0 where no window reaches.
    filtered : Tensor
        The average of the halves filtered to the local resolution (0 where no window reaches).
    centers : LongTensor, (n, 3)
        Voxel indices (z, y, x) of the window centres that were computed.
    window_resolution_angstrom : Tensor, (n,)
        Local resolution of each window [Å].
    window_fsc : Tensor, float64, (n, N//2 + 1)
        Corrected FSC of each window; shell ``i`` at ``i / (N · pixel)`` [1/Å] (RELION's).
    fft_box : int
        ``P`` [px], the box the windows were transformed in.
    window_px : tuple of int
        ``(step, radius, edge)`` of the windows [px].
    pixel_size_angstrom : float
    """

    resolution_angstrom: torch.Tensor
    filtered: torch.Tensor
    centers: torch.Tensor
    window_resolution_angstrom: torch.Tensor
    window_fsc: torch.Tensor
    fft_box: int
    window_px: tuple[int, int, int]
    pixel_size_angstrom: float


def window_centers(box: int, *, step_px: int, radius_px: int) -> torch.Tensor:
    """Centres of RELION's local-resolution windows in a cubic box.

    Parameters
    ----------
    box : int
        Edge ``N`` of the cubic box [px].
    step_px : int
        Grid step [px], ``>= 1``.
    radius_px : int
        Flat-top radius of a window [px]; centres satisfy ``|c − N//2| < N//2 − radius_px``.

    Returns
    -------
    LongTensor, (n, 3)
        Voxel indices (z, y, x), on the grid ``−N//2 + k·step`` relative to the origin ``N//2``.

    Examples
    --------
    >>> window_centers(10, step_px=4, radius_px=1).tolist()  # grid −5, −1, 3 around voxel 5
    [[4, 4, 4], [4, 4, 8], [4, 8, 4], [8, 4, 4]]
    """
    if step_px < 1:
        raise ValueError(f"window_centers: step_px must be >= 1, got {step_px}")
    offsets = torch.arange(-(box // 2), box - box // 2, step_px)
    grid = torch.stack(torch.meshgrid(offsets, offsets, offsets, indexing="ij"), dim=-1)
    grid = grid.reshape(-1, 3)
    limit = box // 2 - radius_px
    keep = grid.double().norm(dim=-1) < limit
    return grid[keep] + box // 2


def _even_fast_size(n: int) -> int:
    """Smallest even FFT-friendly size (factors 2, 3, 5, 7) ``>= n``."""
    m = n + n % 2
    while next_fast_size(m) != m:
        m += 2
    return m


class _Windows:
    """Flat indices of ``M``-cubes in the zero-padded box (padding ``M//2`` on every side)."""

    def __init__(self, size: int, n: int, device) -> None:
        self.size, self.n = size, n
        self.reach = size // 2
        self.padded = n + 2 * self.reach
        a = torch.arange(size, device=device)
        p = self.padded
        self.offsets = (a[:, None, None] * p * p + a[None, :, None] * p + a[None, None, :]).reshape(
            -1
        )

    def index(self, centers: torch.Tensor) -> torch.Tensor:
        """(B, M³) flat indices of the cubes centred on ``centers`` (voxel indices of the box)."""
        p = self.padded
        start = centers[:, 0] * p * p + centers[:, 1] * p + centers[:, 2]
        return start[:, None] + self.offsets[None, :]

    def pad(self, maps: torch.Tensor) -> torch.Tensor:
        """(..., N, N, N) → (..., padded³) with zeros around."""
        padded = torch.nn.functional.pad(maps, [self.reach] * 6)
        return padded.reshape(*maps.shape[:-3], -1)

    def crop(self, flat: torch.Tensor) -> torch.Tensor:
        """(padded³,) → (N, N, N), the box without its padding."""
        r, n = self.reach, self.n
        cube = flat.reshape(self.padded, self.padded, self.padded)
        return cube[r : r + n, r : r + n, r : r + n]

    def scatter(self, centers, values, window, out: torch.Tensor, *, chunk: int = 64) -> None:
        """``out += Σ_c values_c · m_c`` (out flat, padded³; windows cut at the box edges)."""
        flat = window.reshape(1, -1).to(out.dtype)
        for c, v in zip(centers.split(chunk), values.split(chunk), strict=True):
            out.index_add_(
                0, self.index(c).reshape(-1), (v[:, None].to(out.dtype) * flat).reshape(-1)
            )


def _check(half1: torch.Tensor, half2: torch.Tensor, mask: torch.Tensor | None) -> int:
    if half1.ndim != 3 or half1.shape != half2.shape:
        raise ValueError(
            f"local_resolution: half maps must be 3D of one shape, got {tuple(half1.shape)} "
            f"and {tuple(half2.shape)}"
        )
    if len(set(half1.shape)) != 1:
        raise ValueError(f"local_resolution: needs cubic maps, got {tuple(half1.shape)}")
    if mask is not None and mask.shape != half1.shape:
        raise ValueError(
            f"local_resolution: mask shape {tuple(mask.shape)} differs from the maps' "
            f"{tuple(half1.shape)}"
        )
    return half1.shape[-1]


def local_resolution(
    half1: torch.Tensor,
    half2: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    params: LocalResolutionParams | None = None,
    mask: torch.Tensor | None = None,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LocalResolution:
    """Local resolution of two half maps by windowed, phase-randomisation-corrected FSC.

    Parameters
    ----------
    half1, half2 : Tensor, real, (N, N, N)
        Unfiltered, unmasked half maps (float32 is enough; sums are float64).
    pixel_size_angstrom : float
    params : LocalResolutionParams, optional
        Window and FSC settings (RELION's defaults).
    mask : Tensor, (N, N, N), optional
        Soft mask in [0, 1]: windows that do not reach a voxel with ``mask > 0`` are skipped
        (the result where ``mask > 0`` is unchanged; elsewhere it may be 0).
    batch_size : int, optional
        Windows transformed at once (memory ≈ ``batch_size · 16 · P³`` bytes for float32
        maps); default: as many as fit in 32 MiB of spectra (one window for ``P ≳ 100``: larger
        batches fall out of the CPU caches and are slower).  Does not change the result.
    generator : torch.Generator, optional
        Seeds the phase randomisation.
    progress : callable, optional
        ``progress(done, total)`` after each batch of windows.

    Returns
    -------
    LocalResolution

    Raises
    ------
    ValueError
        Different or non-cubic shapes; windows larger than the box; a non-positive size.

    Notes
    -----
    See the module docstring for the formulas; the defaults follow ``relion_postprocess
    --locres`` (RELION 3.1), whose median inside the mask this reproduces within a few %.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> s = torch.randn(32, 32, 32, generator=g)
    >>> h1 = s + 0.5 * torch.randn(32, 32, 32, generator=g)
    >>> h2 = s + 0.5 * torch.randn(32, 32, 32, generator=g)
    >>> p = LocalResolutionParams(sampling_angstrom=16.0, randomize_at_angstrom=16.0)
    >>> r = local_resolution(h1, h2, pixel_size_angstrom=2.0, params=p, generator=g)
    >>> r.resolution_angstrom.shape, bool((r.window_resolution_angstrom < 8).all())
    (torch.Size([32, 32, 32]), True)
    """
    p = params or LocalResolutionParams()
    n = _check(half1, half2, mask)
    bad_batch = batch_size is not None and batch_size < 1
    if not pixel_size_angstrom > 0 or not p.sampling_angstrom > 0 or bad_batch:
        raise ValueError(
            f"local_resolution: pixel size ({pixel_size_angstrom}), sampling "
            f"({p.sampling_angstrom}) and batch_size ({batch_size}) must be positive"
        )
    step, radius, edge = p.pixels(pixel_size_angstrom)
    reach = radius + edge
    size = 2 * reach + 1
    if step < 1 or radius < 0 or edge < 0 or size > n:
        raise ValueError(
            f"local_resolution: a window ({size} px across: radius {radius} px + {edge} px edge) "
            f"is larger than the box ({n} px); use a smaller sampling"
        )
    fft_box = p.fft_box or min(n + n % 2, _even_fast_size(2 * size - 1))
    if fft_box < size:
        raise ValueError(f"local_resolution: fft_box {fft_box} is smaller than a window ({size})")
    batch_size = batch_size or max(1, 2**25 // (16 * fft_box**3))
    centers = window_centers(n, step_px=step, radius_px=radius).to(half1.device)
    window = soft_sphere_mask(
        (size, size, size), radius_px=radius, edge_width_px=edge, dtype=half1.dtype
    ).to(half1.device)
    cubes = _Windows(size, n, half1.device)
    if mask is not None:
        support = cubes.pad((mask > 0).to(half1.dtype))
        touch = [
            (support[cubes.index(c)] * window.reshape(1, -1)).amax(-1) > 0
            for c in centers.split(256)
        ]
        centers = centers[torch.cat(touch)]
    if centers.shape[0] == 0:
        raise ValueError("local_resolution: no window reaches the mask")
    window_fsc = _window_fscs(
        half1,
        half2,
        centers,
        window,
        cubes,
        fft_box=fft_box,
        pixel=pixel_size_angstrom,
        params=p,
        batch_size=batch_size,
        generator=generator,
        progress=progress,
    )
    shell = crossing_shell(window_fsc, p.threshold)
    resolution = (n * pixel_size_angstrom / shell.clamp_min(1e-6)).clamp_max(
        p.min_resolution_angstrom
    )
    resolution_map, filtered = _assemble(
        half1,
        half2,
        centers,
        window,
        cubes,
        window_fsc=window_fsc,
        resolution=resolution,
        pixel=pixel_size_angstrom,
        params=p,
    )
    return LocalResolution(
        resolution_angstrom=resolution_map.to(half1.dtype),
        filtered=filtered.to(half1.dtype),
        centers=centers,
        window_resolution_angstrom=resolution.to(torch.float64),
        window_fsc=window_fsc,
        fft_box=fft_box,
        window_px=(step, radius, edge),
        pixel_size_angstrom=float(pixel_size_angstrom),
    )


def _thin_shells(fft_box: int, n: int, device) -> torch.Tensor:
    """RELION's shells of the N box on the plain rfft grid of the P box.

    Shell of a P-grid voxel: ``floor(|k|·N/P + 1/2)`` (|k| in P-grid pixels), i.e. the shell of
    width ``1/(N·pixel)`` its frequency falls in; corners beyond Nyquist go to bin ``N//2 + 1``.
    """
    f = torch.fft.fftfreq(fft_box, d=1.0 / fft_box, dtype=torch.float64, device=device)
    half = torch.arange(fft_box // 2 + 1, dtype=torch.float64, device=device)
    r = (f[:, None, None].square() + f[None, :, None].square() + half.square()).sqrt()
    return (r * n / fft_box).add(0.5).floor().long().clamp_max(n // 2 + 1)


class _ShellSums:
    """Shell sums of (..., P, P, P//2 + 1) rfft-grid values, counted as on the full grid.

    Columns ``1 … (P−1)//2`` of the half grid stand for two voxels, so a sum is
    ``2·Σ(all) − Σ(column 0) − Σ(column P/2, even P)``.  Each sum runs in the values' precision
    over ``chunks`` contiguous blocks of the grid (≈ P³/(2·chunks·shells) terms each) and
    the blocks are added in float64: the accuracy of float64 sums (relative error ~1e-6) at the
    cost of one pass in float32.
    """

    def __init__(self, index: torch.Tensor, n_shells: int, *, chunks: int = 64) -> None:
        self.n_shells, self.bins = n_shells, n_shells + 1
        columns = [(slice(None), 2.0), (0, -1.0)]
        if index.shape[-2] % 2 == 0:  # even P: the Nyquist column stands for one voxel
            columns.append((-1, -1.0))
        self.parts = []
        for column, weight in columns:
            flat = (index if column == slice(None) else index[..., column]).reshape(-1)
            k = min(chunks, flat.numel())
            block = torch.arange(flat.numel(), device=index.device) * k // flat.numel()
            self.parts.append((column, weight, k, block * self.bins + flat))

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        leading = tuple(values.shape[:-3])
        total = torch.zeros((), dtype=torch.float64, device=values.device)
        for column, weight, k, combined in self.parts:
            part = values if column == slice(None) else values[..., column]
            rows = part.reshape(-1, combined.numel())
            blocks = rows.new_zeros(rows.shape[0], k * self.bins).index_add_(1, combined, rows)
            total = total + weight * blocks.reshape(-1, k, self.bins).double().sum(1)
        return total.reshape(*leading, self.bins)[..., : self.n_shells]


def _fsc_thin(f1: torch.Tensor, f2: torch.Tensor, shell_sums: _ShellSums) -> torch.Tensor:
    """FSC (..., n_shells) of plain rfft spectra summed over RELION's thin shells.

    A shell with no voxel on the P grid (only the lowest, when P < N) takes the value of the
    shell below it.
    """
    n_shells = shell_sums.n_shells
    num = shell_sums(torch.addcmul(f1.real * f2.real, f1.imag, f2.imag))
    p1 = shell_sums(torch.addcmul(f1.real.square(), f1.imag, f1.imag))
    p2 = shell_sums(torch.addcmul(f2.real.square(), f2.imag, f2.imag))
    den = (p1 * p2).sqrt()
    fsc = torch.where(den > 0, num / den.clamp_min(1e-300), torch.nan)
    fsc[..., 0] = torch.where(torch.isnan(fsc[..., 0]) | (fsc[..., 0] <= 0), 1.0, fsc[..., 0])
    for shell in range(1, n_shells):  # few, low shells: a loop over shells, not windows
        gap = torch.isnan(fsc[..., shell])
        if not bool(gap.any()):
            continue
        fsc[..., shell] = torch.where(gap, fsc[..., shell - 1], fsc[..., shell])
    return fsc


def _window_fscs(
    half1,
    half2,
    centers,
    window,
    cubes: _Windows,
    *,
    fft_box: int,
    pixel: float,
    params,
    batch_size: int,
    generator,
    progress,
) -> torch.Tensor:
    """Corrected FSC (n_windows, N//2 + 1) of every window on RELION's shells, batch by batch."""
    n, size = half1.shape[-1], cubes.size
    randomize_shell = int(n * pixel / params.randomize_at_angstrom)
    r1 = randomize_phases_beyond(half1, shell=randomize_shell, generator=generator)
    r2 = randomize_phases_beyond(half2, shell=randomize_shell, generator=generator)
    maps = cubes.pad(torch.stack([half1, half2, r1, r2]).to(half1.dtype))
    shell_sums = _ShellSums(_thin_shells(fft_box, n, half1.device), n // 2 + 1)
    parts = []
    for batch in centers.split(batch_size):
        windows = maps[:, cubes.index(batch)].reshape(2, 2, -1, size, size, size) * window
        # zero-padded to P (rfftn pads at the end: a translation, which no FSC sees)
        spectra = torch.fft.rfftn(windows, s=(fft_box,) * 3, dim=(-3, -2, -1))
        fsc = _fsc_thin(spectra[:, 0], spectra[:, 1], shell_sums)
        # (maps, randomised maps): RELION corrects from shell randomize_shell + 2 on
        parts.append(corrected_fsc(fsc[0], fsc[1], randomize_shell=randomize_shell, offset=2))
        if progress is not None:
            progress(sum(part.shape[0] for part in parts), centers.shape[0])
    return torch.cat(parts)


def _levels(resolution: torch.Tensor, n_levels: int) -> torch.Tensor:
    """Level of each window: ``n_levels`` equal bins of local frequency ``1/d``."""
    freq = 1.0 / resolution
    lo, hi = float(freq.min()), float(freq.max())
    if hi - lo <= 1e-12 * max(hi, 1e-30) or n_levels <= 1:
        return torch.zeros_like(resolution, dtype=torch.long)
    return ((freq - lo) / (hi - lo) * n_levels).long().clamp_max(n_levels - 1)


def _weight_curve(fsc: torch.Tensor) -> torch.Tensor:
    """RELION's ``applyFscWeighting``: √(2F/(1+F)) up to the first shell with F < 1e-4, 0 after."""
    drop = (fsc < 1e-4).cumsum(-1) > 0
    return torch.where(drop, torch.zeros_like(fsc), fsc_weight(fsc))


def _assemble(
    half1,
    half2,
    centers,
    window,
    cubes: _Windows,
    *,
    window_fsc,
    resolution,
    pixel: float,
    params,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local-resolution map (weighted harmonic mean) and the level-filtered average map.

    Per level ``l``: ``W_l = Σ_{c∈l} m_c`` (a scatter of its windows only) and ``L_l``, the
    average filtered by the members' mean FSC weight and :func:`cryoglass.fourier.lowpass_filter`
    (raised cosine, edge two Fourier pixels as RELION's) at their harmonic-mean resolution; the
    map is ``Σ_l W_l L_l / Σ_l W_l``.
    """
    n = half1.shape[-1]
    shape, device = (n, n, n), half1.device
    inverse = torch.zeros(cubes.padded**3, dtype=torch.float64, device=device)
    cubes.scatter(centers, 1.0 / resolution.double(), window, inverse)
    # filters on the plain (uncentred) rfft grid of the box: centred grids ifftshift-ed once
    grid = dict(pixel_size_angstrom=pixel, rfft=True, device=device, dtype=torch.float64)
    plain = (0, 1)
    spectrum = torch.fft.rfftn(0.5 * (half1.double() + half2.double()))
    if params.bfactor_a2 != 0.0:
        envelope = bfactor_filter(shape, bfactor_a2=params.bfactor_a2, **grid)
        spectrum = spectrum * torch.fft.ifftshift(envelope, dim=plain)
    shell = fourier_shell_index(shape, rfft=True, centered=False, device=device)
    shell = shell.clamp_max(n // 2 + 1)
    curves = _weight_curve(window_fsc)
    curves = torch.cat([curves, curves.new_zeros(curves.shape[0], 1)], dim=-1)  # corners: 0
    levels = _levels(resolution, params.n_levels)
    weight = torch.zeros(shape, dtype=torch.float64, device=device)
    filtered = torch.zeros(shape, dtype=torch.float64, device=device)
    buffer = torch.empty_like(inverse)
    for level in torch.unique(levels).tolist():
        members = levels == level
        buffer.zero_()
        ones = torch.ones(int(members.sum()), device=device)
        cubes.scatter(centers[members], ones, window, buffer)
        w_level = cubes.crop(buffer)
        level_res = float(members.sum() / (1.0 / resolution[members].double()).sum())
        lowpass = lowpass_filter(shape, resolution_angstrom=max(level_res, 2 * pixel), **grid)
        filt = curves[members].mean(0)[shell] * torch.fft.ifftshift(lowpass, dim=plain)
        filtered += w_level * torch.fft.irfftn(spectrum * filt, s=shape)
        weight += w_level
    covered = weight > 0
    local = torch.where(covered, weight / cubes.crop(inverse).clamp_min(1e-300), 0.0)
    filtered = torch.where(covered, filtered / weight.clamp_min(1e-300), 0.0)
    return local, filtered
