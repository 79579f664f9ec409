r"""Beam-induced motion correction of movies: global and patch alignment, dose weighting, sums.

Shifts have RELION's meaning and sign (``relion_run_motioncorr``): frame ``f``'s shift
``s_f`` [pixels] re-aligns it to the first frame, ``aligned_f(r) = frame_f(r − s_f)``, so a
specimen that moved by ``d`` between frame 1 and frame ``f`` has ``s_f = −d``; ``s_1 = 0``.

Global alignment (whole frames)
-------------------------------
Each frame is aligned to the sum of all the *other* frames (leave-one-out, which removes the
frame's own noise from its reference; Li et al. 2013, Zheng et al. 2017).  Frame ``f``'s
shift increment is the position of the maximum of the B-factor-weighted cross-correlation

.. math:: C_f(\boldsymbol\tau) = \sum_{\mathbf k} \big(S(\mathbf k) - F_f(\mathbf k)\big)\,
          \overline{F_f(\mathbf k)}\; e^{-2 B k^2}\, e^{2\pi i\,\mathbf k\cdot\boldsymbol\tau},
          \qquad S = \sum_g F_g,

(``k`` in cycles per pixel, ``B`` in pixel², RELION's ``--bfactor`` 150); each frame is then
moved (an exact Fourier shift) by ``(n − 1)/n`` of it — to the mean position of all frames, so
that exact estimates converge in one pass where the full step would overshoot by ``1/(n − 1)``
— and the next iteration recomputes the sum, until the increments' RMS falls below a
tolerance.  Since the weight removes the high frequencies,
``C_f`` is computed on a cropped Fourier grid (a few times fewer pixels, as RELION) and its
maximum is refined to 1/100 pixel by evaluating ``C_f`` on a fine grid around the coarse
peak with two small matrix products — the upsampled cross-correlation of Guizar-Sicairos,
Thurman & Fienup (2008) — instead of RELION's parabola through three samples of the coarse
grid.  All frames of a movie (and all patches, below) are aligned in one batched computation.

The track is found coarse to fine: first on sums of ``coarse_group_frames`` (4) frames,
interpolated linearly to every frame, then frame by frame within ``refine_search_px`` of it —
single frames of a low-dose movie can be too noisy to align from scratch (their correlation's
maximum may be a noise peak anywhere in the search range; on a 256² movie at 1 e⁻/Å² per frame
the error fell from 28 to 2.8 px, RELION's was 52 px).  The noisy per-frame estimates are then
smoothed: the true trajectory of beam-induced motion
is smooth (fast at the start, slower later), so a Whittaker smoother — the trajectory that
minimises ``Σ_f |s_f − ŝ_f|² + λ Σ_f |Δ² s_f|²`` — removes most of the per-frame jitter with
little bias; ``λ`` (``smoothing``) scales with the frames' noise (0 turns it off).

Local (patch) alignment
-----------------------
The globally aligned frames are cut into ``patches = (nx, ny)`` tiles (each enlarged by
``patch_overlap`` for signal), the frames of each tile are summed in groups of
``group_frames`` and the groups aligned as above (all tiles at once).  Each tile's trajectory,
re-centred to frame 1 by linear extrapolation from its first two groups (as RELION), gives
observations ``(x, y, z, shift)`` at the tile centres and group centres; RELION's
third-order polynomial model (``ThirdOrderPolynomialModel``, 18 coefficients per axis,
``x, y`` normalised to ``[−½, ½)``, ``z`` the frame number from 0)

.. math:: s(x, y, z) = \sum_{m \in \{1, x, x^2, y, y^2, xy\}}
          m\,(c_{m1} z + c_{m2} z^2 + c_{m3} z^3)

is fitted by least squares and describes the local shift added to the global one.  The
corrected sum interpolates each globally aligned frame at ``r − s(r, z)`` (bicubic; RELION
uses bilinear).

Dose weighting
--------------
With a dose per frame, the aligned frames are summed in Fourier space with the weights of
Grant & Grigorieff (2015, eq. 9) at the exposure at the end of each frame, as RELION
(:func:`cryoglass.ctf.exposure.dose_weights`); without, they are added.  ``bin_factor``
Fourier-crops the sum.

References
----------
Li, X. et al. (2013). Electron counting and beam-induced motion correction enable near-atomic-
resolution single-particle cryo-EM. Nat. Methods 10, 584-590. https://doi.org/10.1038/nmeth.2472

Zheng, S. Q. et al. (2017). MotionCor2. Nat. Methods 14, 331-332.
https://doi.org/10.1038/nmeth.4193

Guizar-Sicairos, M., Thurman, S. T. & Fienup, J. R. (2008). Efficient subpixel image
registration algorithms. Opt. Lett. 33, 156-158. https://doi.org/10.1364/OL.33.000156

Eilers, P. H. C. (2003). A perfect smoother. Anal. Chem. 75, 3631-3636.
https://doi.org/10.1021/ac034173t

Grant, T. & Grigorieff, N. (2015). eLife 4, e06980. https://doi.org/10.7554/eLife.06980

Zivanov, J., Nakane, T. & Scheres, S. H. W. (2019). A Bayesian approach to beam-induced motion
correction in cryo-EM single-particle analysis. IUCrJ 6, 5-17.
https://doi.org/10.1107/S205225251801463X
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as nnf

from cryoglass.ctf.exposure import dose_weights, frame_exposures
from cryoglass.fourier.fft import next_fast_size

__all__ = [
    "MotionEstimate",
    "MotionSettings",
    "align_spectra",
    "correct_movie",
    "estimate_motion",
    "fit_polynomial_motion",
    "motion_corrected_sum",
    "polynomial_motion",
    "smooth_trajectory",
]

_TWO_PI = 2 * math.pi


@dataclass(frozen=True)
class MotionSettings:
    """How motion is estimated.

    Attributes
    ----------
    bfactor_px2 : float
        B-factor of the cross-correlation weight ``exp(−2 B k²)`` [pixel²] (RELION: 150).
    patches : (nx, ny)
        Tiles for local alignment; fewer than 3 along either axis: global alignment only
        (as RELION).
    group_frames : int
        Frames summed per group in the patch alignment (≥ 1).
    patch_overlap : float
        Each tile is enlarged by this factor (clipped to the frame) for more signal.
    max_iterations : int
        Iterations of the alignment to the leave-one-out sum.
    tolerance_px : float
        Stop when the RMS of the increments falls below this [pixels].
    search_px : float
        Largest shift considered per iteration [pixels].
    smoothing : float
        Whittaker smoothing ``λ`` of the global trajectory (0: none); the local trajectories
        are smoothed by the polynomial.
    coarse_group_frames : int
        The global track is first found on sums of this many frames (1: single frames from
        the start), then refined frame by frame within ``refine_search_px``.
    refine_search_px : float
        Search range of the frame-by-frame refinement [pixels].
    """

    bfactor_px2: float = 150.0
    patches: tuple[int, int] = (1, 1)
    group_frames: int = 1
    patch_overlap: float = 1.5
    max_iterations: int = 6
    tolerance_px: float = 0.01
    search_px: float = 40.0
    smoothing: float = 1.0
    coarse_group_frames: int = 4
    refine_search_px: float = 4.0


@dataclass(frozen=True)
class MotionEstimate:
    """The motion of one movie, in RELION's sign and layout.

    Attributes
    ----------
    global_shifts_px : Tensor, float64, shape (n_frames, 2)
        ``(shift x, shift y)`` per frame [pixels], 0 for frame 1.
    shape_px : (h, w)
        Frame size.
    polynomial_x, polynomial_y : Tensor (18,) or None
        RELION's local model (module docstring), None without local alignment.
    patch_observations : Tensor, shape (m, 5) or None
        ``(frame z from 0, x, y, shift x, shift y)`` per tile and group: the local shifts the
        polynomial was fitted to [pixels].
    """

    global_shifts_px: torch.Tensor
    shape_px: tuple[int, int]
    polynomial_x: torch.Tensor | None = None
    polynomial_y: torch.Tensor | None = None
    patch_observations: torch.Tensor | None = None

    @property
    def n_frames(self) -> int:
        return int(self.global_shifts_px.shape[0])

    def shifts_at(self, points_px: torch.Tensor) -> torch.Tensor:
        """Global plus local shift of every frame at points (x, y) [pixels].

        Returns
        -------
        Tensor, float64, shape (n_frames, P, 2)
            RELION's ``Micrograph::getShiftAt`` at every frame.
        """
        points = torch.as_tensor(points_px, dtype=torch.float64).reshape(-1, 2)
        total = self.global_shifts_px[:, None, :].expand(-1, len(points), -1).clone()
        if self.polynomial_x is not None:
            h, w = self.shape_px
            z = torch.arange(self.n_frames, dtype=torch.float64)
            x = points[:, 0] / w - 0.5
            y = points[:, 1] / h - 0.5
            local = polynomial_motion(
                self.polynomial_x, self.polynomial_y, x[None], y[None], z[:, None]
            )
            total = total + local
        return total


# ----------------------------------------------------------------------------- alignment core


def _frequencies(shape: tuple[int, int], device, dtype=torch.float32):
    """Cycles per pixel on the plain-order rfft grid of ``shape``: ky (h, 1), kx (1, w')."""
    h, w = shape
    ky = torch.fft.fftfreq(h, device=device, dtype=dtype)[:, None]
    kx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
    return ky, kx


def _crop_spectra(spectra: torch.Tensor, full: tuple[int, int], crop: tuple[int, int]):
    """The low frequencies of plain-order rfft spectra (…, H, W//2+1) → (…, h, w//2+1)."""
    h, w = crop
    top = spectra[..., : h // 2 + (h % 2), : w // 2 + 1]
    bottom = spectra[..., full[0] - h // 2 :, : w // 2 + 1]
    return torch.cat([top, bottom], dim=-2)


def _crop_shape(shape: tuple[int, int], bfactor_px2: float) -> tuple[int, int]:
    """Fourier crop that keeps every frequency where ``exp(−2Bk²) > 10⁻⁴`` (even, fast sizes)."""
    k_max = math.sqrt(-math.log(1e-4) / (2 * max(bfactor_px2, 1e-6)))
    out = []
    for n in shape:
        m = min(n, next_fast_size(int(math.ceil(2 * k_max * n))))
        out.append(m + (m % 2) if m < n else n)
    return out[0], out[1]


def _ramp(shifts_px: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """``exp(−2πi k·s)`` for shifts (…, 2) [pixels]: moves content by ``+s``.

    Separable: ``h + w`` exponentials per shift, multiplied into the (…, h, w') grid.
    """
    sx = shifts_px[..., 0, None, None].to(kx.dtype)
    sy = shifts_px[..., 1, None, None].to(kx.dtype)
    one = torch.ones((), dtype=kx.dtype, device=kx.device)
    return torch.polar(one, -_TWO_PI * kx * sx) * torch.polar(one, -_TWO_PI * ky * sy)


def _refine_peaks(cross: torch.Tensor, coarse_px: torch.Tensor, step_px: tuple, shape, ky, kx):
    """Maximise ``Re Σ_k cross(k) e^{2πi k·τ}`` near the coarse peaks (Guizar-Sicairos 2008).

    ``cross`` (B, h, w'): plain-order rfft cross-power spectra of (h, w) images whose
    frequencies are ``ky, kx`` in cycles per *full* pixel; ``coarse_px`` (B, 2) the coarse
    peaks and ``step_px`` (x, y) the coarse grid's spacing, in full pixels.  Two passes of a
    15 × 15 grid (±1.5 coarse steps, then ±1.5 of the first pass's spacing: 1/49 of a coarse
    step), then a parabola through the best point and its neighbours.
    """
    w = shape[1]
    column = torch.full((kx.shape[-1],), 2.0, dtype=kx.dtype, device=kx.device)
    column[0] = 1.0  # the rfft half-plane: interior columns stand for ±k
    if w % 2 == 0:
        column[-1] = 1.0
    weighted = cross * column
    n = 15
    offsets = torch.linspace(-1.5, 1.5, n, dtype=kx.dtype, device=kx.device)
    centre = coarse_px.to(kx.dtype)
    span = torch.tensor(step_px, dtype=kx.dtype, device=kx.device)
    rows = torch.arange(len(centre), device=centre.device)
    for _ in range(2):
        tx = centre[:, 0, None] + offsets[None] * span[0]  # (B, n)
        ty = centre[:, 1, None] + offsets[None] * span[1]
        ex = torch.polar(torch.ones_like(tx[..., None]), _TWO_PI * tx[..., None] * kx[0])
        ey = torch.polar(torch.ones_like(ty[..., None]), _TWO_PI * ty[..., None] * ky[:, 0])
        values = (ey @ weighted @ ex.transpose(-1, -2)).real  # (B, n_y, n_x)
        best = values.flatten(1).argmax(dim=1)
        iy, ix = (best // n).clamp(1, n - 2), (best % n).clamp(1, n - 2)
        centre = torch.stack([tx[rows, ix], ty[rows, iy]], dim=1)
        span = span * 3 / (n - 1)  # the spacing of this pass's grid
    middle = values[rows, iy, ix]
    dx = _parabola(values[rows, iy, ix - 1], middle, values[rows, iy, ix + 1])
    dy = _parabola(values[rows, iy - 1, ix], middle, values[rows, iy + 1, ix])
    return centre + torch.stack([dx * span[0], dy * span[1]], dim=1)


def _parabola(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Offset of the vertex of the parabola through (−1, left), (0, centre), (1, right)."""
    curvature = left + right - 2 * centre
    offset = 0.5 * (left - right) / torch.where(curvature.abs() > 1e-30, curvature, -1e-30)
    return offset.clamp(-1, 1)


def align_spectra(
    spectra: torch.Tensor,
    *,
    full_shape: tuple[int, int],
    settings: MotionSettings = MotionSettings(),
) -> torch.Tensor:
    """Align stacks of frames (given as low-frequency spectra) to their leave-one-out sums.

    Parameters
    ----------
    spectra : Tensor, complex, shape (..., n, h, w//2 + 1)
        Plain-order rfft spectra of ``n`` images per stack, cropped from images of
        ``full_shape`` to an (h, w) grid (:func:`_crop_spectra`); modified copies are used.
    full_shape : (H, W)
        The images' real size: shifts are in their pixels.
    settings : MotionSettings

    Returns
    -------
    Tensor, float64, shape (..., n, 2)
        RELION-sign shifts (module docstring), 0 for the first image of each stack.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> f = torch.fft.rfft2(torch.randn(64, 64, generator=g))
    >>> ky, kx = _frequencies((64, 64), None)
    >>> moves = torch.tensor([[0.0, 0.0], [1.0, -0.5], [2.5, -1.25], [3.0, -2.0]])
    >>> frames = torch.stack([f * _ramp(d, ky, kx) for d in moves])  # content moved by d
    >>> shifts = align_spectra(frames, full_shape=(64, 64))
    >>> bool(torch.allclose(shifts, -moves.double(), atol=0.05))  # RELION's sign: −d
    True
    """
    batch = spectra.shape[:-3]
    n, h, wc = spectra.shape[-3:]
    w = 2 * (wc - 1)
    flat = spectra.reshape(-1, n, h, wc).clone()
    device = flat.device
    real = flat.real.dtype
    ky, kx = _frequencies((h, w), device, real)
    scale = (full_shape[0] / h, full_shape[1] / w)  # full pixels per cropped pixel
    kyf, kxf = ky / scale[0], kx / scale[1]  # cycles per full pixel
    weight = torch.exp(-2 * settings.bfactor_px2 * (kyf**2 + kxf**2))
    reach = (
        min(int(settings.search_px / scale[1]) + 1, w // 2 - 1),
        min(int(settings.search_px / scale[0]) + 1, h // 2 - 1),
    )
    total = torch.zeros(flat.shape[0], n, 2, dtype=torch.float64, device=device)
    fine_passes = 0
    for _ in range(settings.max_iterations):
        reference = flat.sum(dim=1, keepdim=True) - flat
        cross = reference * flat.conj() * weight
        cc = torch.fft.irfft2(cross, s=(h, w))  # (B, n, h, w)
        coarse = _coarse_peaks(cc, reach, scale)
        # cheap parabola on the coarse grid until the steps are below a coarse pixel, then
        # the upsampled correlation for the last passes (its cost is a few matrix products)
        refine = fine_passes > 0 or float(coarse.pow(2).sum(-1).mean().sqrt()) < max(scale)
        if refine:
            fine = _refine_peaks(
                cross.reshape(-1, h, wc),
                coarse.reshape(-1, 2),
                (scale[1], scale[0]),
                (h, w),
                kyf,
                kxf,
            ).reshape(-1, n, 2)
            fine_passes += 1
        else:
            fine = coarse
        # each frame moves (n − 1)/n of the way to the sum of the others: to the common mean,
        # so exact estimates converge in one pass (the full step overshoots by 1/(n − 1))
        step = (fine - fine[:, :1]) * ((n - 1) / n)
        total = total + step.to(torch.float64)
        flat = flat * _ramp(step, kyf, kxf)
        small = float(step.pow(2).sum(-1).mean().sqrt()) < settings.tolerance_px
        if fine_passes >= 2 or (refine and small):
            break
    return total.reshape(*batch, n, 2)


def _coarse_peaks(cc: torch.Tensor, reach: tuple[int, int], scale) -> torch.Tensor:
    """Maxima of cross-correlations (B, n, h, w) within ±reach, with a parabola per axis.

    Returns (B, n, 2) positions (x, y) in full pixels (``scale`` full pixels per CC pixel).
    """
    h, w = cc.shape[-2:]
    rows = torch.cat([torch.arange(0, reach[1] + 1), torch.arange(h - reach[1], h)])
    cols = torch.cat([torch.arange(0, reach[0] + 1), torch.arange(w - reach[0], w)])
    window = cc[..., rows, :][..., cols]
    best = window.flatten(-2).argmax(dim=-1, keepdim=True)
    width = window.shape[-1]
    iy, ix = rows[best // width], cols[best % width]  # indices into cc

    def at(dy: int, dx: int) -> torch.Tensor:
        flat = ((iy + dy) % h) * w + (ix + dx) % w
        return cc.flatten(-2).gather(-1, flat)[..., 0]

    middle = at(0, 0)
    dx = _parabola(at(0, -1), middle, at(0, 1))
    dy = _parabola(at(-1, 0), middle, at(1, 0))
    sy = torch.where(iy[..., 0] > h // 2, iy[..., 0] - h, iy[..., 0]).to(cc.dtype) + dy
    sx = torch.where(ix[..., 0] > w // 2, ix[..., 0] - w, ix[..., 0]).to(cc.dtype) + dx
    return torch.stack([sx * scale[1], sy * scale[0]], dim=-1)


def smooth_trajectory(shifts_px: torch.Tensor, *, smoothing: float) -> torch.Tensor:
    r"""Whittaker smoother along the frame axis: minimises ``|s − ŝ|² + λ |Δ² s|²``.

    Parameters
    ----------
    shifts_px : Tensor, shape (..., n, 2)
    smoothing : float
        ``λ`` (0: returned unchanged).

    Returns
    -------
    Tensor, same shape: ``(I + λ DᵀD)⁻¹ ŝ`` with ``D`` the second-difference matrix (Eilers
    2003), solved with the first frame held at 0 (the reference frame has no error).

    Examples
    --------
    >>> line = torch.arange(6.0)[:, None].repeat(1, 2)
    >>> torch.allclose(smooth_trajectory(line, smoothing=10.0), line, atol=1e-6)  # exact on lines
    True
    """
    if smoothing <= 0 or shifts_px.shape[-2] < 3:
        return shifts_px
    n = shifts_px.shape[-2]
    eye = torch.eye(n, dtype=torch.float64, device=shifts_px.device)
    second = (eye[2:] - 2 * eye[1:-1] + eye[:-2])[:, 1:]  # acting on frames 2 … n (s_1 = 0)
    system = eye[1:, 1:] + smoothing * second.T @ second
    rest = torch.linalg.solve(system, shifts_px[..., 1:, :].to(torch.float64))
    smooth = torch.cat([torch.zeros_like(rest[..., :1, :]), rest], dim=-2)
    return smooth.to(shifts_px.dtype)


# ----------------------------------------------------------------------------- local model


def _polynomial_basis(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """RELION's 18 terms (z, z², z³) × (1, x, x², y, y², xy), in its coefficient order."""
    x, y, z = torch.broadcast_tensors(x, y, z)
    space = [torch.ones_like(x), x, x * x, y, y * y, x * y]
    time = [z, z * z, z * z * z]
    return torch.stack([m * t for m in space for t in time], dim=-1)


def polynomial_motion(
    coeffs_x: torch.Tensor,
    coeffs_y: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
) -> torch.Tensor:
    """RELION's ``ThirdOrderPolynomialModel::getShiftAt``: local shift (…, 2) [pixels].

    ``x, y`` normalised (``pixel / size − ½``), ``z`` the frame number from 0; broadcast.
    """
    basis = _polynomial_basis(
        torch.as_tensor(x, dtype=torch.float64),
        torch.as_tensor(y, dtype=torch.float64),
        torch.as_tensor(z, dtype=torch.float64),
    )
    return torch.stack([basis @ coeffs_x.to(torch.float64), basis @ coeffs_y.to(torch.float64)], -1)


def fit_polynomial_motion(
    observations: torch.Tensor, *, shape_px: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares fit of RELION's polynomial to local shift observations.

    Parameters
    ----------
    observations : Tensor, shape (m, 5)
        ``(z, x, y, shift x, shift y)``: frame from 0, position [pixels], local shift [pixels].
    shape_px : (h, w)

    Returns
    -------
    (coeffs_x, coeffs_y) : Tensors, float64, shape (18,)

    Raises
    ------
    ValueError
        Fewer than 19 observations (RELION needs more observations than parameters).
    """
    obs = observations.to(torch.float64)
    if obs.shape[0] <= 18:
        raise ValueError(f"need more than 18 local observations to fit the model, got {len(obs)}")
    h, w = shape_px
    basis = _polynomial_basis(obs[:, 1] / w - 0.5, obs[:, 2] / h - 0.5, obs[:, 0])
    solution = torch.linalg.lstsq(basis, obs[:, 3:5]).solution
    return solution[:, 0].contiguous(), solution[:, 1].contiguous()


def _fast_even(size: float) -> int:
    """The largest even length ≤ ``size`` whose prime factors are 2, 3, 5, 7 (fast FFTs)."""
    n = max(2, int(size) - int(size) % 2)
    while n > 2 and next_fast_size(n) != n:
        n -= 2
    return n


def _tiles(shape: tuple[int, int], patches: tuple[int, int], overlap: float):
    """Tile rectangles (y0, y1, x0, x1), even-sized and equal, and their centres (x, y)."""
    h, w = shape
    nx, ny = patches
    th, tw = (min(n, _fast_even(overlap * n / k)) for n, k in ((h, ny), (w, nx)))
    boxes, centres = [], []
    for iy in range(ny):
        for ix in range(nx):
            cy = (iy + 0.5) * h / ny
            cx = (ix + 0.5) * w / nx
            y0 = int(round(min(max(cy - th / 2, 0), h - th)))
            x0 = int(round(min(max(cx - tw / 2, 0), w - tw)))
            boxes.append((y0, y0 + th, x0, x0 + tw))
            centres.append((cx, cy))
    return boxes, torch.tensor(centres, dtype=torch.float64)


def _frame_groups(n: int, size: int) -> list[tuple[int, int]]:
    """RELION's frame groups: ``n // size`` groups, the remainder added to the later ones."""
    groups = n // size
    if groups < 3:
        raise ValueError(f"{n} frames in groups of {size}: need at least 3 groups to align")
    sizes = [size] * groups
    for extra in range(n - groups * size):
        sizes[groups - 1 - extra % (groups - 1)] += 1
    starts = [sum(sizes[:g]) for g in range(groups)]
    return list(zip(starts, sizes, strict=True))


def _local_observations(
    spectra: torch.Tensor, shape: tuple[int, int], settings: MotionSettings
) -> torch.Tensor:
    """Patch trajectories of globally aligned frames (their spectra) → observations (m, 5).

    The grouped frames are Fourier-cropped to the frequencies the B-factor weight keeps
    before they are cut into tiles (a few times fewer pixels; shifts and positions are
    converted back to full pixels).
    """

    n = spectra.shape[0]
    h, w = shape
    groups = _frame_groups(n, settings.group_frames)
    crop = _crop_shape((h, w), settings.bfactor_px2)
    scale = torch.tensor([w / crop[1], h / crop[0]], dtype=torch.float64)  # full px per binned px
    grouped = torch.stack([spectra[s : s + k].sum(dim=0) for s, k in groups])
    binned = torch.fft.irfft2(_crop_spectra(grouped, (h, w), crop), s=crop)  # (G, h', w')
    boxes, centres = _tiles(crop, settings.patches, settings.patch_overlap)
    tiles = torch.stack([binned[:, y0:y1, x0:x1] for (y0, y1, x0, x1) in boxes])  # (P, G, …)
    tile_spectra = torch.fft.rfft2(tiles)
    tile_spectra[..., 0, 0] = 0
    binned_settings = replace(
        settings,
        bfactor_px2=settings.bfactor_px2 / float(scale.mean()) ** 2,
        search_px=settings.search_px / float(scale.mean()),
    )
    shifts = align_spectra(tile_spectra, full_shape=tiles.shape[-2:], settings=binned_settings)
    shifts = shifts * scale  # (P, G, 2) full pixels
    middle = torch.tensor([s + k / 2 for s, k in groups], dtype=torch.float64)
    # as RELION: extrapolate linearly from the first two groups to frame 0, re-centre there
    slope = (shifts[:, 1] - shifts[:, 0]) / (middle[1] - middle[0])
    shifts = shifts - (shifts[:, 0] - slope * middle[0])[:, None]
    count_p, count_g = shifts.shape[:2]
    return torch.cat(
        [
            middle[None, :, None].expand(count_p, count_g, 1),
            (centres * scale)[:, None, :].expand(count_p, count_g, 2),
            shifts,
        ],
        dim=-1,
    ).reshape(-1, 5)


# ----------------------------------------------------------------------------- the movie


def _interpolate_track(centres: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """Piecewise-linear track through (centres, values) at frames 0 … n−1, extrapolated
    linearly beyond the first and last centres (as RELION's ``interpolateShifts``)."""
    frames = torch.arange(n, dtype=torch.float64)
    segment = torch.searchsorted(centres, frames).clamp(1, len(centres) - 1)
    left, right = centres[segment - 1], centres[segment]
    t = ((frames - left) / (right - left))[:, None]
    return values[segment - 1] * (1 - t) + values[segment] * t


def _global_track(low: torch.Tensor, shape: tuple[int, int], settings: MotionSettings):
    """Frame shifts: first of sums of ``coarse_group_frames`` frames (interpolated), then of the
    single frames within ``refine_search_px`` of that track.

    Single frames of a low-dose movie can be too noisy to align from scratch: their
    cross-correlation's maximum may be a noise peak anywhere in the search range.  Sums of a
    few frames carry that many times the signal; the single frames then only refine the
    interpolated track locally.
    """
    n = low.shape[0]
    size = settings.coarse_group_frames
    if size <= 1 or n // size < 3:
        return align_spectra(low, full_shape=shape, settings=settings)
    groups = _frame_groups(n, size)
    grouped = torch.stack([low[s : s + k].sum(dim=0) for s, k in groups])
    coarse = align_spectra(grouped, full_shape=shape, settings=settings)
    centres = torch.tensor([s + (k - 1) / 2 for s, k in groups], dtype=torch.float64)
    initial = _interpolate_track(centres, coarse.cpu(), n)
    initial = (initial - initial[0]).to(coarse.device)
    ky, kx = _frequencies((low.shape[-2], 2 * (low.shape[-1] - 1)), low.device)
    scale = torch.tensor(
        [shape[1] / (2 * (low.shape[-1] - 1)), shape[0] / low.shape[-2]], device=low.device
    )
    moved = low * _ramp(initial / scale, ky, kx)  # the cropped grid's pixels
    local = replace(settings, search_px=settings.refine_search_px)
    return initial + align_spectra(moved, full_shape=shape, settings=local)


def estimate_motion(
    frames: torch.Tensor, *, settings: MotionSettings = MotionSettings()
) -> tuple[MotionEstimate, torch.Tensor]:
    """Global (and, with ≥ 3 × 3 patches, local) motion of a movie.

    Parameters
    ----------
    frames : Tensor, shape (n_frames, h, w)
        Gain-corrected frames (counts), ``n_frames ≥ 3``.
    settings : MotionSettings

    Returns
    -------
    (MotionEstimate, spectra)
        The estimate, and the frames' plain-order rfft spectra moved by the global shifts
        (``aligned_f(r) = frame_f(r − s_f)``), reused by :func:`motion_corrected_sum`.
    """
    if frames.ndim != 3 or frames.shape[0] < 3:
        raise ValueError(f"a movie needs at least 3 frames (n, h, w), got {tuple(frames.shape)}")
    n, h, w = frames.shape
    spectra = torch.fft.rfft2(frames.to(torch.float32))
    crop = _crop_shape((h, w), settings.bfactor_px2)
    low = _crop_spectra(spectra, (h, w), crop)
    low[..., 0, 0] = 0  # the mean carries no position
    shifts = _global_track(low, (h, w), settings)
    shifts = smooth_trajectory(shifts, smoothing=settings.smoothing)
    ky, kx = _frequencies((h, w), spectra.device)
    spectra *= _ramp(shifts, ky, kx)
    if min(settings.patches) < 3:
        return MotionEstimate(global_shifts_px=shifts.cpu(), shape_px=(h, w)), spectra
    observations = _local_observations(spectra, (h, w), settings)
    coeffs_x, coeffs_y = fit_polynomial_motion(observations, shape_px=(h, w))
    estimate = MotionEstimate(
        global_shifts_px=shifts.cpu(),
        shape_px=(h, w),
        polynomial_x=coeffs_x,
        polynomial_y=coeffs_y,
        patch_observations=observations,
    )
    return estimate, spectra


def _local_terms(estimate: MotionEstimate, frames: list[int]) -> list[list[float]]:
    """The six spatial coefficients (1, x, x², y, y², xy) of the local model, for x and y,
    with the time factors averaged over ``frames``."""
    z = torch.tensor(frames, dtype=torch.float64)
    powers = torch.stack([z, z * z, z * z * z], dim=-1).mean(dim=0)  # (3,)
    return [
        (coeffs.to(torch.float64).reshape(6, 3) @ powers).tolist()
        for coeffs in (estimate.polynomial_x, estimate.polynomial_y)
    ]


def _warp_groups(estimate: MotionEstimate, tolerance_px: float) -> list[list[int]]:
    """Consecutive frames whose local fields stay within ``tolerance_px`` of their mean.

    Such frames are warped together by their mean field (the warp of a sum is the sum of the
    warps up to that tolerance); later frames, where the local motion slows, share groups.
    """
    h, w = estimate.shape_px
    grid = (torch.arange(5, dtype=torch.float64) + 0.5) / 5 - 0.5
    z = torch.arange(estimate.n_frames, dtype=torch.float64)
    fields = polynomial_motion(
        estimate.polynomial_x,
        estimate.polynomial_y,
        grid[None, None, :],
        grid[None, :, None],
        z[:, None, None],
    ).reshape(estimate.n_frames, -1, 2)
    groups, current = [], [0]
    for f in range(1, estimate.n_frames):
        trial = current + [f]
        spread = (fields[trial] - fields[trial].mean(dim=0)).norm(dim=-1).max()
        if float(spread) <= tolerance_px:
            current = trial
        else:
            groups.append(current)
            current = [f]
    groups.append(current)
    return groups


def _warp_polynomial(image: torch.Tensor, terms: list[list[float]]) -> torch.Tensor:
    """``image(r − s(r))`` by bicubic interpolation, ``s`` the quadratic field of ``terms``.

    The sampling grid is built in float32 from a row and a column (a handful of passes over
    the image), never from an 18-term basis.
    """
    h, w = image.shape
    x = (torch.arange(w, device=image.device, dtype=torch.float32) / w - 0.5)[None, :]
    y = (torch.arange(h, device=image.device, dtype=torch.float32) / h - 0.5)[:, None]
    grid = torch.empty(1, h, w, 2, device=image.device, dtype=torch.float32)
    for axis, (a, n) in enumerate(zip(terms, (w, h), strict=True)):
        # normalised sampling position: 2 (p − s) / (n − 1) − 1, p the pixel index
        pixel = (x + 0.5) * w if axis == 0 else (y + 0.5) * h
        shift = (a[0] + a[1] * x + a[2] * x * x) + (a[3] + a[5] * x) * y + a[4] * y * y
        grid[0, ..., axis] = (pixel - shift) * (2.0 / (n - 1)) - 1.0
    return nnf.grid_sample(
        image[None, None].to(torch.float32),
        grid,
        mode="bicubic",
        padding_mode="border",
        align_corners=True,
    )[0, 0]


def motion_corrected_sum(
    spectra: torch.Tensor,
    estimate: MotionEstimate,
    *,
    pixel_size_angstrom: float,
    dose_per_frame: float | None = None,
    pre_exposure: float = 0.0,
    voltage_kv: float = 300.0,
    bin_factor: int = 1,
    warp_tolerance_px: float = 0.15,
) -> torch.Tensor:
    """Sum of the aligned frames, dose-weighted when the dose is known, optionally binned.

    Parameters
    ----------
    spectra : Tensor, complex, shape (n_frames, h, w//2 + 1)
        Globally aligned plain-order rfft spectra (from :func:`estimate_motion`).
    estimate : MotionEstimate
        Its local model, if any, is applied in real space (bicubic interpolation at
        ``r − s_local(r, z)``).
    pixel_size_angstrom : float
        The movie's pixel size [Å] (for the dose weights' frequencies).
    dose_per_frame : float, optional
        [e⁻/Å²]; None: a plain sum.
    pre_exposure : float
    voltage_kv : float
    bin_factor : int
        Fourier-crop the sum to ``(h, w) / bin_factor`` (even sizes).
    warp_tolerance_px : float
        Frames whose local fields differ by less than this are warped together.

    Returns
    -------
    Tensor, float32, shape (h / bin, w / bin)
        The dose-weighted sum is scaled to the plain sum's mean (counts per pixel).

    Notes
    -----
    The dose weights (a radial filter per frame) are applied before the local warp: a filter
    commutes with a translation, so with a slowly varying shift field the two orders agree.
    """
    n, h, wc = spectra.shape
    w = estimate.shape_px[1]
    weights = torch.ones(n, 1, 1, dtype=spectra.real.dtype, device=spectra.device)
    if dose_per_frame is not None:
        ky, kx = _frequencies((h, w), spectra.device, spectra.real.dtype)
        k = torch.sqrt(ky**2 + kx**2) / pixel_size_angstrom
        exposures = frame_exposures(n, dose_per_frame=dose_per_frame, pre_exposure=pre_exposure)
        exposures = exposures.to(spectra.real.dtype)
        weights = dose_weights(k, exposures, voltage_kv=voltage_kv)
        weights = weights * math.sqrt(n)  # keep the plain sum's scale (squares add to 1)
    if estimate.polynomial_x is None:
        total = (spectra * weights).sum(dim=0)
    else:
        image = torch.zeros(h, w, dtype=spectra.real.dtype, device=spectra.device)
        for frames in _warp_groups(estimate, warp_tolerance_px):
            group = (spectra[frames] * weights[frames]).sum(dim=0)
            terms = _local_terms(estimate, frames)
            image += _warp_polynomial(torch.fft.irfft2(group, s=(h, w)), terms)
        if bin_factor <= 1:
            return image.to(torch.float32)
        total = torch.fft.rfft2(image)
    if bin_factor > 1:
        out = (2 * (h // (2 * bin_factor)), 2 * (w // (2 * bin_factor)))
        total = _crop_spectra(total, (h, w), out) * (out[0] * out[1]) / (h * w)
        h, w = out
    return torch.fft.irfft2(total, s=(h, w)).to(torch.float32)


def correct_movie(
    frames: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    settings: MotionSettings = MotionSettings(),
    dose_per_frame: float | None = None,
    pre_exposure: float = 0.0,
    voltage_kv: float = 300.0,
    bin_factor: int = 1,
) -> tuple[torch.Tensor, MotionEstimate]:
    """Estimate a movie's motion and return its corrected (dose-weighted) sum.

    Parameters
    ----------
    frames : Tensor, shape (n_frames, h, w)
        Gain-corrected frames.
    pixel_size_angstrom, dose_per_frame, pre_exposure, voltage_kv, bin_factor
        As :func:`motion_corrected_sum`.
    settings : MotionSettings

    Returns
    -------
    (sum, estimate)

    Examples
    --------
    >>> g = torch.Generator().manual_seed(1)
    >>> scene = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 96, 96, generator=g), 5, 1, 2)[0, 0]
    >>> frames = torch.stack([torch.roll(scene, (0, k), dims=(0, 1)) for k in range(4)]) * 50
    >>> image, motion = correct_movie(frames, pixel_size_angstrom=1.0,
    ...                               settings=MotionSettings(smoothing=0))
    >>> motion.global_shifts_px[:, 0].round().tolist()  # frame f moved +f px in x: shift −f
    [0.0, -1.0, -2.0, -3.0]
    """
    data = frames.to(torch.float32)
    estimate, spectra = estimate_motion(data, settings=settings)
    image = motion_corrected_sum(
        spectra,
        estimate,
        pixel_size_angstrom=pixel_size_angstrom,
        dose_per_frame=dose_per_frame,
        pre_exposure=pre_exposure,
        voltage_kv=voltage_kv,
        bin_factor=bin_factor,
    )
    return image, estimate
