r"""Maximum-likelihood 2D classification by expectation–maximisation (RELION's Class2D model).

Model
-----
Image ``i`` (Fourier coefficients ``X_i(k)`` of ``torch.fft.rfft2`` with the real-space origin
at ``N//2``) is class ``c`` turned to in-plane angle ψ_j, moved by ``s``, multiplied by the
CTF ``C_i`` and corrupted by complex Gaussian noise of power ``σ²(|k|)`` per coefficient:

.. math:: X_i(\mathbf k) = C_i(\mathbf k)\, \hat A_c(R_{\psi_j}\mathbf k)\,
          e^{-2\pi i\,\mathbf k\cdot\mathbf s} + n_i(\mathbf k),
          \qquad \langle |n_i(\mathbf k)|^2\rangle = \sigma^2(|\mathbf k|).

Each independent coefficient inside the Nyquist circle counts once (the half plane with
weight ½ on the self-conjugate columns ``k_x = 0`` and ``k_x = N/2``), so with
``D = Σ_k |X − C P e^{−2πik·s}|² / σ²`` the likelihood is
``p(X | c, j, s) = Π_k (π σ²)^{-1} · exp(−D)``.

E-step (all translations at once)
    ``D(s) = Σ|X|²/σ² + Σ C²|P_{cj}|²/σ² − corr_{cj}(s)`` with the cross-correlation
    ``corr(s) = 2 Re Σ_half X C \bar P / σ² · e^{+2πik·s}``.  The K·J rotated class averages
    ``P_{cj}`` are made once per iteration, and the correlation is evaluated only at the S
    searched translations: with ``Q[k, (c,j,s)] = \bar P_{cj}(k) e^{2πik·s}`` it is one real
    matrix product per batch, ``[Re a, −Im a] (B × 2F) @ Q (2F × K·J·S)``, ``a = X C/σ²``.
    This is the DFT of the correlation restricted to the translations searched; for the usual
    ranges (S ≈ 10–50 of N² grid points) it is several times faster than an inverse FFT of
    every (image, class, angle) followed by picking S values, and it gives identical scores
    (the FFT variant was measured at 17 s vs 3 s per iteration on 400 × 48², K = 4, 36 angles).
    Posteriors ``w_{icjs} ∝ π_c p(X_i|c,j,s)`` (uniform prior over the J angles and S shifts)
    are normalised with log-sum-exp in float32 (log-normalisers accumulated in float64).
    In the first iterations the posteriors are sharpened, ``w ∝ (π_c p(X_i|c,j,s))^β`` with
    β falling from ``early_sharpening`` (2) to 1 over ``sharpening_iterations`` (8): see
    :func:`estep_sharpening` for why and what it was measured to gain.
M-step
    In the frame of each rotated class, ``Num_{cj}(k) = Σ_s e^{+2πik·s} Σ_i w_{icjs} C_i X_i``
    (the transposed product) and ``Den_{cj}(k) = Σ_{is} w_{icjs} C_i²``.  Both are turned back
    by −ψ_j (real space for Num, Fourier space for Den) and summed over j:
    ``A_c = Σ_j R^{-1}Num / (Σ_j R^{-1}Den + σ²/(2T τ²_c))`` — RELION's CTF-weighted average
    with the Gaussian prior of power ``T·τ²`` (``T`` = tau2_fudge; the 2 converts our σ², the
    power of a complex coefficient, to RELION's variance per real component).  Class priors
    ``π_c = Σ_{ijs} w_{icjs} / n``.  The noise power is the expected residual, which the same
    sums give exactly: ``Σ_i|X_i|² + Σ_{cj}(|P_{cj}|² Den_{cj} − 2 Re \bar P_{cj} Num_{cj})``,
    averaged over each shell.  ``τ²_c`` is the signal power of class c, estimated per shell as
    the power of the unregularised average minus its noise, ``⟨|Num/Den|²⟩ − ⟨σ²/Den⟩`` (RELION
    takes the power of the previous average, which lets small classes fade away).

Log-likelihood: ``log p(X_i | model) = log Σ_{cjs} π_c/(JS) p(X_i | c, j, s)``, summed over
every coefficient of the Nyquist circle; outside the E-step's band (below) the model predicts
no signal there, so those coefficients count as pure noise.  (Until issue 23 only the band
was summed, so the value fell as the band grew with the resolution: it measured a growing
number of terms, not a worse fit.)  With β = 1, no masking, re-centring, re-seeding or
oversampling, each EM iteration cannot decrease it; those extras can make it dip by a little
(oversampling: the sum is over the coarse grid, the M-step maximises the fine one).

Adaptive oversampling (Scheres 2012, J. Struct. Biol. 180:519, its adaptive
expectation-maximisation; RELION's ``--oversampling 1 --adaptive_fraction 0.999``;
``Class2DSettings.oversampling``): the
expectation pass above scores every pose on the coarse grid (ψ step Δψ, offset step Δs).  Per
image, the (class, angle) pairs are sorted by their posterior ``Σ_s w_{icjs}`` and the fewest
that hold ``adaptive_fraction`` of the mass are *significant*.  Each significant (c, ψ_j) is
replaced by its 2^o children ``ψ_j − Δψ/2 + (m + ½) Δψ/2^o`` (o = 1: ψ_j ∓ Δψ/4), scored at
every translation of a grid 2^o times finer (each coarse offset split into its 4^o children,
s ∓ Δs/4 along x and y), and the posterior is computed on that fine grid: for image i,
``w_{i c ψ' s'} = (π_c p(X_i|c,ψ',s'))^β / Σ_{significant children} (π_c p(X_i|·))^β``
(0 elsewhere).  The M-step sums go to the fine pose rows (turned back by −ψ'), and the
returned pose is the best fine pose refined by the parabola as below.  The significant
(image, fine angle) pairs are gathered into one list and scored by chunked matrix products
(:func:`_fine_posterior`), so the extra cost is proportional to their number: images whose
pose is not yet known to within the coarse step (significant pairs above
``oversample_below`` = 25 % of all, typically in the first one or two iterations) stay on the
coarse grid, where oversampling would cost up to 8× the coarse pass and change little.
The reported log-likelihood is that of the coarse grid (exact over all its poses, independent
of β); since the M-step maximises the fine one, it may dip by a little with oversampling.
On views 5° apart (``bench_class2d.py`` cell near4-1, signal/noise std 1) oversampling took
the ARI from 0.33 to 0.68/0.61/0.63 on three seeds (RELION 0.50/0.49/0.50; see
``benchmarks/RESULTS.md``).

Coarse to fine (as RELION's ``current_size``): the E-step uses the shells up to the best class
resolution plus ``adaptive_shells`` (the M-step always uses all), so the pose scores of
successive iterations use a growing set of frequencies.

Re-seeding with a trial (``reseed_below``, ``split_test_iterations``, ``split_min_ratio``): a
class whose occupancy drops below ``reseed_below / K`` is re-seeded by splitting the most
populated class into ``A ± δ`` (before the next E-step, like the re-centring).  If that class
held two views, EM pulls the halves apart; if it held one view (or views too alike to be told
apart at this noise), the halves split its images at random, which lowers the ARI (views
8° apart at signal/noise std 0.3: RELION leaves one class per pair and the extra classes
empty).  So a split is on trial for ``split_test_iterations`` E-steps; then the halves'
unregularised averages, class b aligned on class a over ψ and the searched shifts, are
compared coefficient by coefficient in units of their noise,
``r = ⟨|N_a/D_a − N_b/D_b|² / (σ²(1/D_a + 1/D_b))⟩`` over the shells up to their resolution
(:func:`_split_ratio`; r ≈ 1 for two random halves of one view).  ``r ≥ split_min_ratio``
keeps the split; otherwise the sums of both halves are added (the exact M-step of one class
holding both) and the other half is retired: it stays empty (prior 0, no image can join it)
and is never re-seeded again.  With re-seeding alone the two situations look alike to EM;
with no re-seeding a class that EM empties early never comes back (views 5° apart at std 1:
every image in one class after the first iteration).

Extras as in RELION: class averages are masked with a soft disc of the particle diameter and
re-centred on their centre of mass before each E-step (not after the last M-step, so that the
returned averages match the returned alignments); per-class resolution where
``SSNR = τ² ⟨Den⟩ / σ²`` drops below 1.  Pruning (``prune_fraction > 0``) zeroes posteriors below
that fraction of an image's largest one before the M-step; the reported log-likelihood is
always the exact one of the E-step, but a pruned M-step is no longer guaranteed to increase
it (the discarded mass per image is logged).  Because both steps here are dense matrix
products, pruning saves no time; its cost in likelihood is small (360 × 32², K = 3, 8
iterations: threshold 10⁻⁴ drops 0.06 % of the posterior mass and changes the final
log-likelihood by about 10⁻⁷ of its value; 10⁻² drops 1.3 %).

Differences from RELION: translations are every pixel multiple of the offset step inside the
range with a uniform prior (RELION: a Gaussian prior on offsets); significance is decided per
(class, angle) and then every fine translation of the range is scored (RELION: per (angle,
translation) sample); images with broad posteriors are not oversampled (``oversample_below``);
images are not masked (the model says the particle is zero outside the class mask); no
per-image intensity-scale correction.

References
----------
Scheres, S. H. W. (2012) A Bayesian view on cryo-EM structure determination. J. Mol. Biol.
415:406-418. https://doi.org/10.1016/j.jmb.2011.11.010

Scheres, S. H. W. (2012) RELION: implementation of a Bayesian approach to cryo-EM structure
determination. J. Struct. Biol. 180:519-530. https://doi.org/10.1016/j.jsb.2012.09.006

Sigworth, F. J. (1998) A maximum-likelihood approach to single-particle image refinement.
J. Struct. Biol. 122:328-339. https://doi.org/10.1006/jsbi.1998.4014
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import torch

from cryoglass.classify.geometry2d import (
    center_of_mass_px,
    full_from_half_even,
    half_from_full,
    psi_angles_deg,
    rotate_images,
    shell_index_rfft,
    shift_grid_mask,
    soft_disc_mask,
    wrap_angle_deg,
)
from cryoglass.ctf.ctf import ctf_2d
from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.radial import crossing_shell
from cryoglass.fourier.shift import shift_image

__all__ = [
    "Assignments",
    "Class2DModel",
    "Class2DResult",
    "Class2DSettings",
    "EStepStats",
    "check_inputs",
    "classify_2d",
    "default_batch_size",
    "em_iteration",
    "estep_model",
    "estep_sharpening",
    "estep_statistics",
    "initial_model",
    "initial_mstep",
    "initial_poses",
    "initial_statistics",
    "iteration_log",
    "merge_stats",
    "mstep",
    "tensor_batches",
]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Class2DSettings:
    """Settings of a 2D classification (fixed for a whole run).

    Attributes
    ----------
    n_classes : int
        Number of classes K.
    pixel_size_angstrom : float
        Pixel size of the images [Å].
    psi_step_deg : float
        In-plane angular step [degrees] (J = 360/step angles).
    offset_range_angstrom : float
        Largest translation searched [Å] (RELION --offset_range, there in pixels).
    offset_step_angstrom : float or None
        Translation step [Å], rounded to whole pixels (default one pixel).
    tau2_fudge : float or None
        RELION's T: prior power ``T·τ²``; larger T, weaker regularisation.  None: no prior
        (pure maximum likelihood).
    particle_diameter_angstrom : float or None
        Diameter of the soft circular mask [Å] (default: the box).
    mask_classes : bool
        Mask class averages with that disc.
    recenter : bool
        Re-centre class averages on their centre of mass before each E-step.
    prune_fraction : float
        Posteriors below this fraction of an image's largest are dropped from the M-step (0:
        exact EM).
    batch_size : int or None
        Images per E-step batch (a memory knob; default: about 2²⁴ pose scores).
    reseed_below : float
        A class whose occupancy falls below ``reseed_below / K`` is re-seeded by splitting the
        most populated class (0: never).
    split_test_iterations : int
        A re-seeded split is on trial for this many iterations; then it is kept only if its
        two halves differ by more than noise (``split_min_ratio``), else the halves are merged
        back and the emptied class is retired (left empty, never re-seeded again).  0: every
        split is kept (no test).  See :func:`_split_ratio`.
    split_min_ratio : float
        A split is kept when the squared difference of the halves' unregularised averages is
        at least this multiple of its expectation under noise alone (module notes).
    adaptive_shells : int or None
        The E-step uses Fourier shells up to the best class resolution plus this many shells
        (RELION's coarse-to-fine ``current_size``); None: always every shell up to Nyquist.
    early_sharpening : float
        β₀ ≥ 1: the pose posteriors of the E-step of iteration t (t = 0 for the first) are
        ``∝ (π_c p(X|c,j,s))^β`` with ``β = max(1, β₀ − (β₀ − 1)·t / sharpening_iterations)``,
        i.e. computed with the noise power σ²/β (a "cold start" of deterministic annealing).
        1: plain EM from the start.  The reported log-likelihoods are always those of β = 1.
    sharpening_iterations : int
        Iterations over which β falls linearly from β₀ to 1 (plain EM from then on).
    oversampling : int
        RELION's adaptive oversampling order o (``--oversampling``, default 1 as RELION): the
        E-step scores every pose on the coarse grid, keeps the (class, angle) pairs that carry
        ``adaptive_fraction`` of each image's posterior mass and scores those again on a grid
        2^o times finer in ψ and in each translation axis (module notes, ``_fine_posterior``);
        the M-step and the reported poses use the fine posterior.  0: the coarse grid only.
    adaptive_fraction : float
        Posterior mass of the significant coarse samples (RELION's ``--adaptive_fraction``,
        0.999).
    oversample_below : float
        An image is oversampled when its significant (class, angle) pairs are at most this
        fraction of all K·J; an image whose posterior is broader (its pose not yet known to
        within the coarse step, typically in the first iterations) stays on the coarse grid,
        where the finer grid would change little but cost up to 2^{3o} times the coarse pass.
        1: oversample every image (RELION).
    """

    n_classes: int
    pixel_size_angstrom: float
    psi_step_deg: float = 10.0
    offset_range_angstrom: float = 6.0
    offset_step_angstrom: float | None = None
    tau2_fudge: float | None = 2.0
    particle_diameter_angstrom: float | None = None
    mask_classes: bool = True
    recenter: bool = True
    prune_fraction: float = 0.0
    batch_size: int | None = None
    reseed_below: float = 0.2
    split_test_iterations: int = 5
    split_min_ratio: float = 2.5
    adaptive_shells: int | None = 10
    early_sharpening: float = 2.0
    sharpening_iterations: int = 8
    oversampling: int = 1
    adaptive_fraction: float = 0.999
    oversample_below: float = 0.25


@dataclass(frozen=True, eq=False)
class Class2DModel:
    """Parameters of the 2D model after an iteration.

    Attributes
    ----------
    classes : Tensor (K, N, N), float32
        Class averages in real space (origin ``N//2``), in the units of the images.
    class_prior : Tensor (K,)
        Class occupancies π_c (sum 1).
    sigma2 : Tensor (N//2 + 1,)
        Noise power per shell, ``⟨|n(k)|²⟩`` of unnormalised rfft2 coefficients.
    tau2 : Tensor (K, N//2 + 1)
        Shell-averaged power of each class average (prior power before the fudge factor).
    resolution_angstrom : Tensor (K,)
        Estimated resolution of each class [Å].
    iteration : int
        Completed iterations (0 for the initial model).
    split_from : Tensor (K,), int64, or None
        Re-seeding state: ``p ≥ 0`` when class c was split from class p and the split is still
        on trial; ``-1`` no trial; ``-2`` retired (a split merged back: left empty).  None: no
        class was ever re-seeded.
    split_since : Tensor (K,), int64, or None
        ``iteration`` of the model the split was made from (with ``split_from``).
    split_tests : tuple of dict
        The split tests of the M-step that made this model (for the log): class, parent,
        ratio, coefficients, kept.
    """

    classes: torch.Tensor
    class_prior: torch.Tensor
    sigma2: torch.Tensor
    tau2: torch.Tensor
    resolution_angstrom: torch.Tensor
    iteration: int = 0
    split_from: torch.Tensor | None = None
    split_since: torch.Tensor | None = None
    split_tests: tuple = ()


@dataclass(frozen=True, eq=False)
class Assignments:
    """Per-particle results of an E-step (RELION's _data.star columns).

    Attributes
    ----------
    class_index : Tensor (n,), int64
        Most probable class, 0-based (rlnClassNumber − 1).
    psi_deg : Tensor (n,)
        In-plane angle of the most probable pose, in (−180, 180] (rlnAnglePsi), refined
        below the psi step (as the origin below the offset step) by a parabola through the
        log posteriors of the neighbouring grid poses.
    shift_angstrom : Tensor (n, 2)
        Origin (x, y) of the most probable pose [Å] with RELION's rlnOriginX/YAngst meaning
        (translating the image by +origin re-centres it).
    max_probability : Tensor (n,)
        Posterior of that pose (rlnMaxValueProbDistribution).
    log_likelihood : Tensor (n,), float64
        ``log p(X_i | model)`` (rlnLogLikeliContribution, our normalisation).
    """

    class_index: torch.Tensor
    psi_deg: torch.Tensor
    shift_angstrom: torch.Tensor
    max_probability: torch.Tensor
    log_likelihood: torch.Tensor


@dataclass(frozen=True, eq=False)
class Class2DResult:
    """Outcome of :func:`classify_2d`: the model, the last assignments and the per-iteration log."""

    model: Class2DModel
    assignments: Assignments
    log: list[dict] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class EStepStats:
    """Sufficient statistics of an E-step: everything the M-step needs from the images.

    Sums over the particles of one E-step pass, kept in the frame of each rotated class
    (pose row ``c·J + j``; ``F = N·(N//2 + 1)`` flattened rfft2 coefficients).  Statistics of
    disjoint sets of particles add (:func:`merge_stats`), so an E-step can be split into chunks
    (on different processes) and give the statistics of the whole set.

    Attributes
    ----------
    num : Tensor (K·J, F), complex64
        ``Σ_s e^{+2πik·s} Σ_i w_{icjs} C_i X_i`` (CTF-weighted image sums).
    den : Tensor (K·J, F), float32
        ``Σ_{is} w_{icjs} C_i²``.
    weight : Tensor (K·J,), float64
        Posterior mass ``Σ_{is} w_{icjs}`` per class and angle.
    power : Tensor (F,), float64
        ``Σ_i |X_i|²`` (for σ²).
    mean : Tensor (F,), complex128
        ``Σ_i X_i``.
    count : int
        Number of images.
    log_likelihood : float
        ``Σ_i log p(X_i | model)`` over the E-step band.
    pruned_mass_sum, pruned_mass_max : float
        Sum and maximum over images of the posterior mass dropped by pruning.
    max_shell : int
        Highest Fourier shell the E-step used (the same for every chunk of one iteration).
    """

    num: torch.Tensor
    den: torch.Tensor
    weight: torch.Tensor
    power: torch.Tensor
    mean: torch.Tensor
    count: int
    log_likelihood: float
    pruned_mass_sum: float
    pruned_mass_max: float
    max_shell: int


# ----------------------------------------------------------------------------- shared pieces


@dataclass(frozen=True, eq=False)
class _Grid:
    """Fixed per-run quantities derived from the settings and the box."""

    size: int
    psi_deg: torch.Tensor  # (J,)
    shell: torch.Tensor  # (N, N//2+1) int64
    inside: torch.Tensor  # (F,) bool, shell <= N//2
    half_weight: torch.Tensor  # (F,) ½ on self-conjugate columns, 0 outside the circle
    frequencies: torch.Tensor  # (F',) indices of the coefficients inside the circle
    phase: torch.Tensor  # (F', S) complex, exp(+2πi k·s) for the searched translations
    shifts_px: torch.Tensor  # (S, 2) searched translations (x, y) [pixels]
    offset_step_px: int  # translation step [pixels]
    shift_neighbours: torch.Tensor  # (S, 4) neighbours −x, +x, −y, +y of each translation, or −1
    mask: torch.Tensor | None  # (N, N) real-space class mask
    factor: int  # oversampling factor 2^o per dimension (1: no oversampling)
    fine_psi_deg: torch.Tensor  # (J·f,) children ψ_j − step/2 + (m + ½)·step/f, index j·f + m
    fine_shifts_px: torch.Tensor  # (S·f², 2) children of each translation, spacing step/f
    fine_phase: torch.Tensor  # (F', S·f²) exp(+2πi k·s) for the fine translations
    fine_shift_neighbours: torch.Tensor  # (S·f², 4) as shift_neighbours on the fine grid

    def row_blocks(self, rows: int, n_classes: int) -> list[tuple[slice, torch.Tensor]]:
        """The blocks of statistics with ``rows`` pose rows: (rows, the J' angles of each class).

        K·J rows: the coarse grid (no oversampling, or the initial model's statistics);
        K·J·(1 + f): a coarse block (the images left on the coarse grid) then a fine block.
        """
        coarse = n_classes * self.psi_deg.shape[0]
        if rows == coarse:
            return [(slice(0, coarse), self.psi_deg)]
        if rows == coarse * (1 + self.factor):
            return [(slice(0, coarse), self.psi_deg), (slice(coarse, rows), self.fine_psi_deg)]
        raise ValueError(
            f"statistics have {rows} pose rows, expected {coarse} or {coarse * (1 + self.factor)}"
        )


def _grid(settings: Class2DSettings, size: int, device: torch.device) -> _Grid:
    pixel = settings.pixel_size_angstrom
    step_px = 1
    if settings.offset_step_angstrom is not None:
        step_px = max(1, round(settings.offset_step_angstrom / pixel))
    shell = shell_index_rfft(size, device=device)
    inside = (shell <= size // 2).reshape(-1)
    weight = torch.ones(size, size // 2 + 1, device=device)
    weight[:, 0] = 0.5
    if size % 2 == 0:
        weight[:, -1] = 0.5
    weight = weight.reshape(-1) * inside
    allowed = shift_grid_mask(
        size, range_px=settings.offset_range_angstrom / pixel, step_px=step_px, device=device
    )
    my, mx = torch.nonzero(allowed, as_tuple=True)
    wrap = lambda m: torch.where(m >= (size + 1) // 2, m - size, m)  # noqa: E731
    shifts = torch.stack((wrap(mx), wrap(my)), dim=-1).to(torch.float32)
    frequencies = torch.nonzero(inside).reshape(-1)
    phase = _phase(frequencies, shifts, size)
    mask = None
    if settings.mask_classes:
        diameter = settings.particle_diameter_angstrom or size * pixel
        edge = 5.0
        radius = min(diameter / (2 * pixel), size / 2 - edge)
        mask = soft_disc_mask(size, radius_px=radius, edge_px=edge, device=device)
    psi = psi_angles_deg(settings.psi_step_deg, device=device)
    factor = 2**settings.oversampling
    fine_psi, fine_shifts = _children(psi, shifts, factor=factor, step_px=step_px)
    return _Grid(
        size=size,
        psi_deg=psi,
        shell=shell,
        inside=inside,
        half_weight=weight,
        frequencies=frequencies,
        phase=phase,
        shifts_px=shifts,
        offset_step_px=step_px,
        shift_neighbours=_shift_neighbours(shifts, step_px),
        mask=mask,
        factor=factor,
        fine_psi_deg=fine_psi,
        fine_shifts_px=fine_shifts,
        fine_phase=_phase(frequencies, fine_shifts, size) if factor > 1 else phase,
        fine_shift_neighbours=_shift_neighbours(fine_shifts, step_px / factor),
    )


def _children(
    psi_deg: torch.Tensor, shifts_px: torch.Tensor, *, factor: int, step_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The oversampled grid: ``factor`` angles per coarse angle, ``factor²`` shifts per shift.

    As RELION, each coarse sample is the centre of a cell that its children split evenly:
    child ``m`` of ψ_j is ``ψ_j − Δψ/2 + (m + ½) Δψ/f`` (f = 2: ``ψ_j ∓ Δψ/4``), and likewise
    along x and y for the translations, so the fine grid does not contain the coarse one.
    Returns angles (J·f,) with child m of angle j at ``j·f + m``, and translations (S·f², 2).
    """
    if factor == 1:
        return psi_deg, shifts_px
    step_deg = 360.0 / psi_deg.shape[0]
    offset = (torch.arange(factor, device=psi_deg.device, dtype=psi_deg.dtype) + 0.5) / factor - 0.5
    fine_psi = (psi_deg[:, None] + offset[None, :] * step_deg).reshape(-1)
    oy, ox = torch.meshgrid(offset, offset, indexing="ij")
    moves = torch.stack((ox.reshape(-1), oy.reshape(-1)), dim=-1).to(shifts_px) * step_px
    fine_shifts = (shifts_px[:, None, :] + moves[None, :, :]).reshape(-1, 2)
    return fine_psi, fine_shifts


def _phase(frequencies: torch.Tensor, shifts_px: torch.Tensor, size: int) -> torch.Tensor:
    """``exp(+2πi k·s)`` (F', S), complex64, for flattened rfft2 indices and shifts [pixels]."""
    device = frequencies.device
    ky = torch.fft.fftfreq(size, device=device)[:, None].expand(size, size // 2 + 1)
    kx = torch.fft.rfftfreq(size, device=device)[None, :].expand(size, size // 2 + 1)
    k = torch.stack((kx.reshape(-1), ky.reshape(-1)), dim=-1)[frequencies]  # cycles/pixel
    angle = 2 * math.pi * (k.double() @ shifts_px.double().T)
    return torch.polar(torch.ones_like(angle), angle).to(torch.complex64)


@dataclass(frozen=True, eq=False)
class _EStepBand:
    """The Fourier coefficients the E-step uses this iteration."""

    frequencies: torch.Tensor  # (F_E,) flattened rfft2 indices
    weight: torch.Tensor  # (F,) half-plane weight, 0 outside the band
    phase: torch.Tensor  # (F_E, S)
    max_shell: int
    fine_phase: torch.Tensor  # (F_E, S·f²), the oversampled translations


def _band(model: Class2DModel, settings: Class2DSettings, grid: _Grid) -> _EStepBand:
    """Shells up to the best class resolution + ``adaptive_shells`` (all without it)."""
    top = grid.size // 2
    if settings.adaptive_shells is not None:
        res = model.resolution_angstrom[model.class_prior > 0]
        best = float(res.min()) if res.numel() else 0.0
        shell = grid.size * settings.pixel_size_angstrom / best if best > 0 else top
        top = min(top, math.ceil(shell) + settings.adaptive_shells)
    keep = grid.shell.reshape(-1) <= top
    weight = grid.half_weight * keep
    frequencies = torch.nonzero(weight > 0).reshape(-1)
    phase = _phase(frequencies, grid.shifts_px, grid.size)
    fine = _phase(frequencies, grid.fine_shifts_px, grid.size) if grid.factor > 1 else phase
    return _EStepBand(frequencies, weight, phase, top, fine)


def _fourier(images: torch.Tensor) -> torch.Tensor:
    """rfft2 with the real-space origin at N//2, flattened to (..., F)."""
    f = torch.fft.rfft2(torch.fft.ifftshift(images, dim=(-2, -1)))
    return f.reshape(*images.shape[:-2], -1)


def _real(fourier: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of :func:`_fourier`: (..., F) → real (..., N, N), origin at N//2."""
    f = fourier.reshape(*fourier.shape[:-1], size, size // 2 + 1)
    return torch.fft.fftshift(torch.fft.irfft2(f, s=(size, size)), dim=(-2, -1))


def _ctf_images(
    ctf: CTFParams | None, indices: torch.Tensor, size: int, pixel: float, device: torch.device
) -> torch.Tensor | None:
    """CTFs of the particles ``indices`` on the flattened rfft2 grid, (B, F), or None."""
    if ctf is None:
        return None
    values = ctf_2d(
        ctf[indices.cpu()],
        image_size=size,
        pixel_size_angstrom=pixel,
        rfft=True,
        centered=False,
        dtype=torch.float64,
    )
    return values.to(device=device, dtype=torch.float32).reshape(indices.shape[0], -1)


def _shell_mean(values: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Weighted mean of (..., F) values in each shell 0..N//2 → (..., N//2+1)."""
    n_shells = grid.size // 2 + 1
    index = grid.shell.reshape(-1).clamp_max(n_shells)  # shell N//2+1 collects the corners
    weight = grid.half_weight
    flat = (values * weight).reshape(-1, values.shape[-1])
    sums = torch.zeros(flat.shape[0], n_shells + 1, dtype=flat.dtype, device=flat.device)
    sums.index_add_(1, index, flat)
    counts = torch.zeros(n_shells + 1, dtype=weight.dtype, device=weight.device)
    counts.index_add_(0, index, weight)
    mean = sums[:, :n_shells] / counts[:n_shells].clamp_min(1e-12).to(flat.dtype)
    return mean.reshape(*values.shape[:-1], n_shells)


def _per_frequency(shell_values: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Spread (..., N//2+1) shell values onto the flattened grid (..., F); 0 outside the circle."""
    index = grid.shell.reshape(-1).clamp_max(grid.size // 2)
    return shell_values[..., index] * grid.inside


def _rotated_fourier(
    classes: torch.Tensor, grid: _Grid, psi_deg: torch.Tensor | None = None
) -> torch.Tensor:
    """The K·J rotated class averages on the flattened rfft2 grid, (K·J, F).

    ``psi_deg`` (J,): the angles (default the coarse grid's).
    """
    angles = grid.psi_deg if psi_deg is None else psi_deg
    rotated = rotate_images(classes[:, None], angles[None, :])
    return _fourier(rotated).reshape(-1, grid.half_weight.shape[0])


def tensor_batches(
    images: torch.Tensor, batch_size: int
) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A re-iterable source of ``(indices, images)`` batches over an in-memory stack (n, N, N)."""

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, images.shape[0], batch_size):
            stop = min(start + batch_size, images.shape[0])
            yield torch.arange(start, stop), images[start:stop]

    return batches


def default_batch_size(settings: Class2DSettings, size: int) -> int:
    """Images per E-step batch: about 2²⁴ pose scores (64 MiB in float32), at most 1024."""
    if settings.batch_size is not None:
        return settings.batch_size
    grid = _grid(settings, size, torch.device("cpu"))
    poses = settings.n_classes * grid.psi_deg.shape[0] * grid.shifts_px.shape[0]
    return int(min(1024, max(1, 2**24 // poses)))


# ----------------------------------------------------------------------------- accumulation


@dataclass(eq=False)
class _Sums:
    """M-step sums in the frame of each rotated class (internal, mutated while accumulating)."""

    num: torch.Tensor  # (KJ, F) complex
    den: torch.Tensor  # (KJ, F) real
    weight: torch.Tensor  # (KJ,) float64
    power: torch.Tensor  # (F,) float64, Σ|X|²
    mean: torch.Tensor  # (F,) complex128, Σ X
    count: int = 0

    @staticmethod
    def empty(poses: int, features: int, device: torch.device) -> _Sums:
        return _Sums(
            num=torch.zeros(poses, features, dtype=torch.complex64, device=device),
            den=torch.zeros(poses, features, device=device),
            weight=torch.zeros(poses, dtype=torch.float64, device=device),
            power=torch.zeros(features, dtype=torch.float64, device=device),
            mean=torch.zeros(features, dtype=torch.complex128, device=device),
        )

    def add_data(self, xf: torch.Tensor) -> None:
        self.power += (xf.real**2 + xf.imag**2).sum(0).double()
        self.mean += xf.sum(0).to(torch.complex128)
        self.count += xf.shape[0]


def _accumulate(
    sums: _Sums,
    weighted_data: torch.Tensor,
    ctf2: torch.Tensor,
    posterior: torch.Tensor,
    grid: _Grid,
    block: slice = slice(None),
) -> None:
    """Add one batch: posterior (B, KJ, S); weighted data ``C·X`` (B, F); ``C²`` (B, F).

    Into the pose rows ``block`` of the sums (the coarse block).

    ``Num_cj(k) = Σ_s e^{+2πik·s} Σ_b w_bcjs C_b X_b(k)``: one real GEMM per real/imaginary
    part (KJ·S × B × F'), then a phase-weighted sum over the S translations.
    """
    b, poses, n_shifts = posterior.shape
    freq = grid.frequencies
    w = posterior.reshape(b, poses * n_shifts).T  # (KJS, B)
    data = weighted_data[:, freq]
    t = torch.complex(w @ data.real, w @ data.imag).reshape(poses, n_shifts, -1)
    sums.num[block][:, freq] += torch.einsum("psf,fs->pf", t, grid.phase)
    pose_weight = posterior.sum(-1)  # (B, KJ)
    sums.den[block] += pose_weight.T @ ctf2
    sums.weight[block] += pose_weight.sum(0).double()


# ----------------------------------------------------------------------------- E-step


def _pose_table(
    classes: torch.Tensor, grid: _Grid, band: _EStepBand
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated classes (KJ, F) and the real-ified table ``Q`` (2F', KJ·S) of the E-step GEMM.

    ``Q[k, (cj, s)] = w(k) · conj(P_cj(k)) · e^{+2πik·s}`` (real parts stacked over imaginary
    parts), so that ``[Re a, −Im a] @ Q = Re Σ_half w a conj(P) e^{2πik·s}``.
    """
    rotated = _rotated_fourier(classes, grid)
    freq = band.frequencies
    p = rotated[:, freq].conj() * band.weight[freq]  # (KJ, F')
    q = p.T[:, :, None] * band.phase[:, None, :]  # (F', KJ, S)
    q = q.reshape(freq.shape[0], -1)
    return rotated, torch.cat((q.real, q.imag), dim=0)


def _expectation_batch(
    xf: torch.Tensor,
    ctf: torch.Tensor,
    rotated: torch.Tensor,
    table: torch.Tensor,
    model: Class2DModel,
    grid: _Grid,
    band: _EStepBand,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log posterior numerators (B, KJ, S) and per-image constants (B,) (float64)."""
    n_angles, n_shifts = grid.psi_deg.shape[0], grid.shifts_px.shape[0]
    sigma2 = _per_frequency(model.sigma2, grid).clamp_min(1e-30)
    weighted_inv = band.weight / sigma2
    quadratic = (ctf**2 * weighted_inv) @ (rotated.real**2 + rotated.imag**2).T  # (B, KJ)
    a = (xf * ctf / sigma2)[:, band.frequencies]
    cross = torch.cat((a.real, -a.imag), dim=1) @ table  # (B, KJ·S)
    cross = cross.reshape(xf.shape[0], -1, n_shifts)
    log_prior = torch.log(model.class_prior.to(xf.device)).repeat_interleave(n_angles)
    log_prior = log_prior - math.log(n_angles * n_shifts)
    logits = cross.mul_(2.0).sub_((quadratic - log_prior)[..., None])
    # log p(X | no signal) over the whole circle: outside the band the E-step's model is zero
    circle = grid.half_weight
    data_term = ((xf.real**2 + xf.imag**2) * (circle / sigma2)).sum(-1).double()
    normaliser = (circle * torch.log(math.pi * sigma2)).sum().double()
    return logits, -(data_term + normaliser)


def estep_sharpening(settings: Class2DSettings, iteration: int) -> float:
    """β of the E-step that starts iteration ``iteration + 1`` (``iteration`` done before it).

    ``β = max(1, β₀ − (β₀ − 1)·t / n)`` with ``β₀ = settings.early_sharpening`` and
    ``n = settings.sharpening_iterations``; the posteriors are ``∝ (π_c p(X|c,j,s))^β``.

    Why: at low SNR, soft EM started from rotationally blurred random averages spreads every
    image over all classes and poses, the averages stay alike and the classes separate only
    slowly (600 × 48², K = 4, signal/noise std 0.15, 15 iterations: ARI 0.38 with β = 1,
    0.52 with β₀ = 2 over 8 iterations, 0.54 with β = 1 over 25 iterations; a warm start
    (β₀ < 1) was worse, 0.05).  β > 1 is deterministic annealing run cold (Ueda & Nakano 1998,
    https://doi.org/10.1016/S0893-6080(97)00133-0); after ``n`` iterations the run is plain
    maximum-likelihood EM again.

    Examples
    --------
    >>> s = Class2DSettings(n_classes=2, pixel_size_angstrom=1.0)
    >>> [estep_sharpening(s, t) for t in (0, 4, 8, 12)]
    [2.0, 1.5, 1.0, 1.0]
    """
    b0, n = settings.early_sharpening, settings.sharpening_iterations
    return max(1.0, b0 - (b0 - 1.0) * iteration / n)


def _parabola_peak(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Offset in [−½, ½] grid steps of the vertex of the parabola through three log values.

    ``δ = (l₋ − l₊) / (2 (l₋ − 2 l₀ + l₊))``: exact when the posterior is Gaussian near its
    peak (its log is then a parabola); 0 where the three values are not a maximum.
    """
    curvature = left - 2 * centre + right
    delta = (left - right) / (2 * curvature).clamp_max(-1e-12)
    return torch.where(curvature < 0, delta, torch.zeros_like(delta)).clamp(-0.5, 0.5)


def _shift_neighbours(shifts_px: torch.Tensor, step_px: float) -> torch.Tensor:
    """Index of each translation's neighbours (−x, +x, −y, +y) on the grid, −1 if absent (S, 4)."""
    moves = step_px * torch.tensor(
        [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]], device=shifts_px.device
    )
    target = shifts_px[:, None, :] + moves[None, :, :]  # (S, 4, 2)
    match = (target[:, :, None, :] - shifts_px[None, None, :, :]).abs().amax(-1) < 1e-3  # (S,4,S)
    index = match.to(torch.int64).argmax(-1)
    return torch.where(match.any(-1), index, torch.full_like(index, -1))


LogPosterior = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _refine_pose(
    pose: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    centre: torch.Tensor,
    log_post: LogPosterior,
    *,
    psi_deg: torch.Tensor,
    shifts_px: torch.Tensor,
    neighbours: torch.Tensor,
    step_px: float,
    pixel: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ψ [deg] (B,) and origin [Å] (B, 2) of the grid pose (c, j, s), refined below the grid.

    A parabola through the log posterior at the neighbouring angles (and translations) of that
    pose (:func:`_parabola_peak`); ``log_post(row, s)`` gives the log posterior of pose row
    ``c·J + j`` at translation ``s`` and whether it was evaluated (an oversampled E-step scores
    only the significant angles: a missing neighbour leaves that coordinate on the grid).
    """
    c, j, s = pose
    n_angles = psi_deg.shape[0]
    psi = psi_deg[j]
    if n_angles >= 3:
        left, ok_left = log_post(c * n_angles + (j - 1) % n_angles, s)
        right, ok_right = log_post(c * n_angles + (j + 1) % n_angles, s)
        delta = torch.where(ok_left & ok_right, _parabola_peak(left, centre, right), 0.0)
        psi = psi + delta * (360.0 / n_angles)
    shift = shifts_px[s].clone()
    around = neighbours[s]  # (B, 4)
    for axis in range(2):  # x, then y
        lo, hi = around[:, 2 * axis], around[:, 2 * axis + 1]
        left, ok_left = log_post(c * n_angles + j, lo.clamp_min(0))
        right, ok_right = log_post(c * n_angles + j, hi.clamp_min(0))
        ok = (lo >= 0) & (hi >= 0) & ok_left & ok_right
        shift[:, axis] += torch.where(ok, _parabola_peak(left, centre, right), 0.0) * step_px
    return wrap_angle_deg(psi), -shift * pixel


def _best_pose(posterior: torch.Tensor, grid: _Grid, pixel: float) -> tuple[torch.Tensor, ...]:
    """(class, psi [deg], origin [Å] (B, 2), max posterior) of the most probable pose.

    The class is the one of the most probable grid pose; its in-plane angle and translation
    are refined below the grid step by a parabola through the log posterior at the
    neighbouring angles (and translations) of that pose (:func:`_parabola_peak`).
    """
    b = posterior.shape[0]
    n_angles, n_shifts = grid.psi_deg.shape[0], grid.shifts_px.shape[0]
    flat = posterior.reshape(b, -1)
    best_value, best = flat.max(dim=1)
    cj, s = best // n_shifts, best % n_shifts
    rows = torch.arange(b, device=posterior.device)

    def log_post(row: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value = torch.log(flat[rows, row * n_shifts + shift].clamp_min(1e-30))
        return value, torch.ones_like(value, dtype=torch.bool)

    psi, origin = _refine_pose(
        (cj // n_angles, cj % n_angles, s),
        torch.log(best_value.clamp_min(1e-30)),
        log_post,
        psi_deg=grid.psi_deg,
        shifts_px=grid.shifts_px,
        neighbours=grid.shift_neighbours,
        step_px=grid.offset_step_px,
        pixel=pixel,
    )
    return cj // n_angles, psi, origin, best_value


# ----------------------------------------------------------------------------- oversampling


@dataclass(frozen=True, eq=False)
class _SparsePosterior:
    """Posterior on the oversampled grid, kept only for the significant (image, pose row) pairs.

    Row ``t`` is image ``image[t]`` of the batch at fine pose row ``row[t] = c·J f + j'``;
    ``weight[t, s']`` its posterior at fine translation ``s'``.  Each image's weights sum to 1.
    """

    image: torch.Tensor  # (T,) int64
    row: torch.Tensor  # (T,) int64
    weight: torch.Tensor  # (T, S f²) float32
    n_images: int
    n_rows: int  # K·J·f


def _significant(mass: torch.Tensor, fraction: float) -> torch.Tensor:
    """The fewest samples per image whose posterior mass reaches ``fraction`` (B, P) → bool.

    RELION's significant samples (``adaptive_fraction``): sorted by decreasing posterior, a
    sample is kept while the mass of the larger ones is still below the fraction (so the most
    probable sample is always kept, and at least ``fraction`` of the mass).
    """
    values, order = mass.sort(dim=1, descending=True)
    before = values.cumsum(1) - values
    keep = before < fraction * values.sum(1, keepdim=True)
    return torch.zeros_like(keep).scatter_(1, order, keep)


def _fine_posterior(
    xf: torch.Tensor,
    ctf: torch.Tensor,
    significant: torch.Tensor,
    fine_rotated: torch.Tensor,
    model: Class2DModel,
    grid: _Grid,
    band: _EStepBand,
    *,
    beta: float,
    chunk: int = 4096,
) -> _SparsePosterior:
    """Second pass of adaptive oversampling: the fine posterior of the significant samples.

    ``significant`` (B, K·J) marks, for each image, the (class, angle) pairs of the coarse
    grid whose posteriors ``Σ_s w_{icjs}`` make up ``adaptive_fraction`` of its mass
    (:func:`_significant`); each contributes its f children angles ψ' (:func:`_children`)
    at every fine translation s' (the whole offset range at the fine step), scored with the same log
    likelihood as the coarse pass, ``2·corr(s') − Σ C²|P_{cψ'}|²/σ²`` (+ log π_c), times β.
    The significant (image, fine row) pairs are gathered into T rows and scored in chunks by
    one real matrix product each, ``[Re z, −Im z] (T × 2F') @ [Re e; Im e] (2F' × S f²)``
    with ``z = a_i · w · conj(P_{cψ'})``; the posterior is normalised over each image's rows
    (samples outside them have posterior 0).
    """
    device = xf.device
    f, n_fine = grid.factor, grid.fine_psi_deg.shape[0]
    image, cj = torch.nonzero(significant, as_tuple=True)
    children = torch.arange(f, device=device)
    image = image.repeat_interleave(f)
    row = (cj[:, None] * f + children[None, :]).reshape(-1)
    sigma2 = _per_frequency(model.sigma2, grid).clamp_min(1e-30)
    power = fine_rotated.real**2 + fine_rotated.imag**2
    quadratic = (ctf**2 * (band.weight / sigma2)) @ power.T  # (B, K·J·f)
    freq = band.frequencies
    a = (xf * ctf / sigma2)[:, freq]
    p = fine_rotated[:, freq].conj() * band.weight[freq]
    table = torch.cat((band.fine_phase.real, band.fine_phase.imag), dim=0)  # (2F', S f²)
    logits = torch.empty(image.shape[0], table.shape[1], device=device)
    for start in range(0, image.shape[0], chunk):
        part = slice(start, start + chunk)
        z = a[image[part]] * p[row[part]]
        logits[part] = torch.cat((z.real, -z.imag), dim=1) @ table
    log_prior = torch.log(model.class_prior.to(device))[row // n_fine]
    logits.mul_(2.0).sub_((quadratic[image, row] - log_prior)[:, None]).mul_(beta)
    n = xf.shape[0]
    top = torch.full((n,), -math.inf, device=device)
    top = top.scatter_reduce(0, image, logits.amax(1), reduce="amax")
    logits.sub_(top[image][:, None]).exp_()
    total = torch.zeros(n, device=device).index_add_(0, image, logits.sum(1))
    logits.div_(total[image][:, None])
    return _SparsePosterior(image, row, logits, n, fine_rotated.shape[0])


def _best_pose_sparse(
    fine: _SparsePosterior, grid: _Grid, pixel: float
) -> tuple[torch.Tensor, ...]:
    """As :func:`_best_pose` on the oversampled grid (neighbours not scored are left out)."""
    device = fine.weight.device
    n_fine = grid.fine_psi_deg.shape[0]
    value, best_shift = fine.weight.max(dim=1)  # (T,)
    lookup = torch.full((fine.n_images, fine.n_rows), -1, dtype=torch.int64, device=device)
    lookup[fine.image, fine.row] = torch.arange(fine.image.shape[0], device=device)
    table = torch.full((fine.n_images, fine.n_rows), -1.0, device=device)
    table[fine.image, fine.row] = value
    best_value, r = table.max(dim=1)
    rows = torch.arange(fine.n_images, device=device)
    s = best_shift[lookup[rows, r]]

    def log_post(row: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = lookup[rows, row]
        value = torch.log(fine.weight[t.clamp_min(0), shift].clamp_min(1e-30))
        return value, t >= 0

    psi, origin = _refine_pose(
        (r // n_fine, r % n_fine, s),
        torch.log(best_value.clamp_min(1e-30)),
        log_post,
        psi_deg=grid.fine_psi_deg,
        shifts_px=grid.fine_shifts_px,
        neighbours=grid.fine_shift_neighbours,
        step_px=grid.offset_step_px / grid.factor,
        pixel=pixel,
    )
    return r // n_fine, psi, origin, best_value


def _prune_sparse(fine: _SparsePosterior, fraction: float) -> tuple[_SparsePosterior, torch.Tensor]:
    """:func:`_prune` on the oversampled posterior."""
    n, image, weight = fine.n_images, fine.image, fine.weight
    top = torch.zeros(n, device=weight.device).scatter_reduce(
        0, image, weight.amax(1), reduce="amax"
    )
    kept = torch.where(weight >= (top * fraction)[image][:, None], weight, 0.0)
    total = torch.zeros(n, device=weight.device).index_add_(0, image, kept.sum(1))
    return replace(fine, weight=kept / total[image][:, None]), 1.0 - total


def _accumulate_sparse(
    sums: _Sums,
    weighted_data: torch.Tensor,
    ctf2: torch.Tensor,
    fine: _SparsePosterior,
    grid: _Grid,
    block: slice = slice(None),
    chunk: int = 4096,
) -> None:
    """:func:`_accumulate` for the oversampled posterior (rows ``c·J f + j'``).

    ``Num_r(k) += C_i X_i(k) · Σ_{s'} w_{t s'} e^{+2πik·s'}`` for each significant row t
    (image i, fine row r), in chunks; ``Den`` and the weights from the dense (B, K·J·f) table
    of ``Σ_{s'} w_{ts'}``.
    """
    freq = grid.frequencies
    phase_re, phase_im = grid.fine_phase.real.T, grid.fine_phase.imag.T  # (S f², F')
    num = torch.zeros(fine.n_rows, freq.shape[0], dtype=torch.complex64, device=ctf2.device)
    data = weighted_data[:, freq]
    for start in range(0, fine.image.shape[0], chunk):
        part = slice(start, start + chunk)
        w = fine.weight[part]
        spread = torch.complex(w @ phase_re, w @ phase_im)  # Σ_s' w e^{2πik·s'}, (t, F')
        num.index_add_(0, fine.row[part], spread * data[fine.image[part]])
    sums.num[block][:, freq] += num
    pose_weight = torch.zeros(fine.n_images, fine.n_rows, device=ctf2.device)
    pose_weight.index_put_((fine.image, fine.row), fine.weight.sum(1), accumulate=True)
    sums.den[block] += pose_weight.T @ ctf2
    sums.weight[block] += pose_weight.sum(0).double()


def _posterior(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised posterior (in place on ``logits``) and log-normaliser (B,) by log-sum-exp."""
    flat = logits.reshape(logits.shape[0], -1)
    top = flat.max(dim=1, keepdim=True).values
    flat.sub_(top).exp_()
    total = flat.sum(1, keepdim=True)
    flat.div_(total)
    return logits, top.squeeze(1).double() + torch.log(total.squeeze(1).double())


def _prune(posterior: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero posteriors below ``fraction`` × the image's largest, renormalise; also the lost mass."""
    flat = posterior.reshape(posterior.shape[0], -1)
    threshold = flat.max(dim=1, keepdim=True).values * fraction
    kept = torch.where(flat >= threshold, flat, torch.zeros_like(flat))
    total = kept.sum(1, keepdim=True)
    lost = 1.0 - total.squeeze(1)
    return (kept / total).reshape(posterior.shape), lost


def _expectation(
    model: Class2DModel,
    batches: Batches,
    *,
    n_particles: int,
    ctf: CTFParams | None,
    settings: Class2DSettings,
    grid: _Grid,
    progress: Callable[[int], None] | None,
) -> tuple[_Sums, Assignments, dict]:
    device = model.classes.device
    band = _band(model, settings, grid)
    rotated, table = _pose_table(model.classes, grid, band)
    fine_rotated = None
    if grid.factor > 1:
        fine_rotated = _rotated_fourier(model.classes, grid, grid.fine_psi_deg)
    coarse_rows = slice(0, rotated.shape[0])
    fine_rows = slice(rotated.shape[0], rotated.shape[0] * (1 + grid.factor))
    n_rows = rotated.shape[0] * (1 + grid.factor) if grid.factor > 1 else rotated.shape[0]
    sums = _Sums.empty(n_rows, rotated.shape[1], device)
    out = Assignments(
        class_index=torch.zeros(n_particles, dtype=torch.int64),
        psi_deg=torch.zeros(n_particles),
        shift_angstrom=torch.zeros(n_particles, 2),
        max_probability=torch.zeros(n_particles, dtype=torch.float64),
        log_likelihood=torch.zeros(n_particles, dtype=torch.float64),
    )
    lost_total, lost_max = 0.0, 0.0
    pixel = settings.pixel_size_angstrom
    beta = estep_sharpening(settings, model.iteration)
    for indices, images in batches:
        xf = _fourier(images.to(device=device, dtype=torch.float32))
        c = _ctf_images(ctf, indices, grid.size, pixel, device)
        c = torch.ones_like(xf.real) if c is None else c
        logits, constant = _expectation_batch(xf, c, rotated, table, model, grid, band)
        if beta != 1.0:  # log p(X | model) with β = 1, then the sharpened posterior
            log_norm = torch.logsumexp(logits.reshape(logits.shape[0], -1), dim=1).double()
            posterior, _ = _posterior(logits.mul_(beta))
        else:
            posterior, log_norm = _posterior(logits)
        if fine_rotated is None:
            fine, coarse = None, torch.ones(xf.shape[0], dtype=torch.bool, device=device)
        else:  # adaptive oversampling of the images whose pose is known to the coarse step
            significant = _significant(posterior.sum(-1), settings.adaptive_fraction)
            coarse = significant.float().mean(1) > settings.oversample_below
            fine_images = torch.nonzero(~coarse).reshape(-1)
            fine = _fine_posterior(
                xf[fine_images],
                c[fine_images],
                significant[fine_images],
                fine_rotated,
                model,
                grid,
                band,
                beta=beta,
            )
        at = indices.to(device)
        best = []
        if bool(coarse.any()):
            best.append((coarse, _best_pose(posterior[coarse], grid, pixel)))
        if fine is not None and fine.n_images > 0:
            best.append((~coarse, _best_pose_sparse(fine, grid, pixel)))
        for chosen, (cls, psi, origin, prob) in best:
            rows = at[chosen].cpu()
            out.class_index[rows] = cls.cpu()
            out.psi_deg[rows] = psi.cpu()
            out.shift_angstrom[rows] = origin.cpu()
            out.max_probability[rows] = prob.double().cpu()
        out.log_likelihood[at.cpu()] = (log_norm + constant).cpu()
        sums.add_data(xf)
        weighted, ctf2 = xf * c, c**2
        if bool(coarse.any()):
            dense = posterior[coarse]
            if settings.prune_fraction > 0:
                dense, lost = _prune(dense, settings.prune_fraction)
                lost_total += float(lost.sum())
                lost_max = max(lost_max, float(lost.max()))
            _accumulate(sums, weighted[coarse], ctf2[coarse], dense, grid, coarse_rows)
        if fine is not None and fine.n_images > 0:
            if settings.prune_fraction > 0:
                fine, lost = _prune_sparse(fine, settings.prune_fraction)
                lost_total += float(lost.sum())
                lost_max = max(lost_max, float(lost.max()))
            _accumulate_sparse(sums, weighted[~coarse], ctf2[~coarse], fine, grid, fine_rows)
        if progress is not None:
            progress(int(indices.shape[0]))
    extra = {
        "pruned_mass_sum": lost_total,
        "pruned_mass_max": lost_max,
        "estep_max_shell": band.max_shell,
    }
    return sums, out, extra


# ----------------------------------------------------------------------------- M-step


def _turned(
    num: torch.Tensor, den: torch.Tensor, psi_deg: torch.Tensor, grid: _Grid
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums (..., F) turned in-plane by ψ: Num in real space, Den on the full grid (..., N, N).

    Num is turned as an image (bicubic), Den as a centred Fourier array (bilinear); the
    caller sums and returns them to the half plane (``_fourier``, ``half_from_full``).
    """
    size = grid.size
    num_images = rotate_images(_real(num, size), psi_deg)
    den_half = den.reshape(*den.shape[:-1], size, size // 2 + 1)
    den_full = rotate_images(full_from_half_even(den_half, size), psi_deg, mode="bilinear")
    return num_images, den_full


def _back_rotated(
    sums: _Sums | EStepStats, grid: _Grid, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_j of the sums turned back to the class frame: numerator (K, F), denominator (K, F)."""
    size = grid.size
    num = torch.zeros(n_classes, size * (size // 2 + 1), dtype=torch.complex64)
    den_full = torch.zeros(n_classes, size, size)
    num, den_full = num.to(sums.num.device), den_full.to(sums.num.device)
    for rows, angles in grid.row_blocks(sums.num.shape[0], n_classes):
        shape = (n_classes, angles.shape[0], -1)
        num_images, den_turned = _turned(
            sums.num[rows].reshape(shape), sums.den[rows].reshape(shape), -angles[None, :], grid
        )
        num += _fourier(num_images.sum(1))
        den_full += den_turned.sum(1)
    den = half_from_full(den_full.clamp_min(0.0)).reshape(n_classes, -1)
    return num, den


def _mean_den(den: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Mean of Den over the Nyquist circle's independent coefficients, (..., 1)."""
    return (den * grid.half_weight).sum(-1, keepdim=True) / grid.half_weight.sum()


def _finish_classes(averages: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Real-space class averages (K, N, N): band-limited to the circle, then masked."""
    classes = _real(averages * grid.inside, grid.size)
    return classes if grid.mask is None else classes * grid.mask


def _noise_power(sums: _Sums | EStepStats, classes: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """σ² per shell: the expected residual of the E-step's posteriors with the new classes."""
    blocks = grid.row_blocks(sums.num.shape[0], classes.shape[0])
    rotated = torch.cat([_rotated_fourier(classes, grid, angles) for _, angles in blocks])
    residual = sums.power.float() + (
        (rotated.real**2 + rotated.imag**2) * sums.den - 2 * (rotated.conj() * sums.num).real
    ).sum(0)
    sigma2 = _shell_mean(residual, grid) / max(sums.count, 1)
    # floor: 10⁻⁶ of the data power, so that noise-free data give large but finite scores
    floor = 1e-6 * _shell_mean(sums.power.float(), grid) / max(sums.count, 1)
    return torch.maximum(sigma2, floor).clamp_min(1e-30)


def _signal_power(
    num: torch.Tensor, den: torch.Tensor, sigma2: torch.Tensor, grid: _Grid
) -> torch.Tensor:
    """τ² per class and shell: power of the unregularised average ``Num/Den`` minus its noise.

    ``⟨|Num/Den|²⟩ − ⟨σ²/Den⟩`` over each shell, floored at 10⁻⁶ of the shell's noise power
    (K, N//2+1).  Estimating τ² from the data, not from the previous (regularised) average,
    avoids the feedback in which a small class is smoothed more, loses power and dies.
    """
    has_data = den > 1e-6 * den.amax(-1, keepdim=True).clamp_min(1e-30)
    safe = torch.where(has_data, den, torch.ones_like(den))
    raw = torch.where(has_data, (num.real**2 + num.imag**2) / safe**2, torch.zeros_like(den))
    noise = torch.where(has_data, _per_frequency(sigma2, grid) / safe, torch.zeros_like(den))
    return (_shell_mean(raw - noise, grid)).clamp_min(1e-6 * sigma2)


def _resolution(
    tau2: torch.Tensor, den: torch.Tensor, sigma2: torch.Tensor, grid: _Grid, pixel: float
) -> torch.Tensor:
    """Highest resolution [Å] before ``SSNR = τ² ⟨Den⟩ / σ²`` first drops below 1, per class."""
    ssnr = tau2 * _shell_mean(den, grid) / sigma2
    last_good = crossing_shell(ssnr, 1.0, interpolate=False).clamp_min(1).float()
    return grid.size * pixel / last_good


def _maximization(
    model: Class2DModel,
    sums: _Sums | EStepStats,
    *,
    settings: Class2DSettings,
    grid: _Grid,
    wiener_fraction: float | None = None,
) -> Class2DModel:
    """New classes, priors, σ², τ² and resolutions from the E-step sums."""
    k = settings.n_classes
    num, den = _back_rotated(sums, grid, k)
    blocks = grid.row_blocks(sums.weight.shape[0], k)
    class_weight = sum(sums.weight[rows].reshape(k, -1).sum(1) for rows, _ in blocks)
    merged, split_from, tests = _test_splits(model, num, den, class_weight, settings, grid)
    if wiener_fraction is not None:  # initial averages: no τ² yet, a Wiener constant
        regulariser = wiener_fraction * _mean_den(den, grid).clamp_min(1e-12)
    elif settings.tau2_fudge is None:
        regulariser = torch.zeros_like(den)
    else:
        tau2 = _per_frequency(model.tau2, grid)
        sigma2 = _per_frequency(model.sigma2, grid)
        # RELION's noise variance is per real component, σ²/2 in our convention
        regulariser = sigma2 / (2 * settings.tau2_fudge * tau2).clamp_min(1e-30)
    total = den + regulariser
    averages = torch.where(total > 0, num / total.clamp_min(1e-30), torch.zeros_like(num))
    classes = _finish_classes(averages, grid)
    residual_classes = classes.clone()  # a merged-back class's images fit its parent
    for child, parent in merged:
        residual_classes[child] = classes[parent]
        classes[child] = 0.0
    sigma2 = _noise_power(sums, residual_classes, grid)
    tau2 = _signal_power(num, den, sigma2, grid)
    prior = (class_weight / class_weight.sum().clamp_min(1e-300)).float()
    resolution = _resolution(tau2, den, sigma2, grid, settings.pixel_size_angstrom)
    return Class2DModel(
        classes=classes,
        class_prior=prior.to(classes.device),
        sigma2=sigma2,
        tau2=tau2,
        resolution_angstrom=resolution,
        iteration=model.iteration + 1,
        split_from=split_from,
        split_since=model.split_since,
        split_tests=tests,
    )


def _aligned_half(
    num: torch.Tensor, den: torch.Tensor, pair: tuple[int, int], grid: _Grid
) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Class b's sums turned and moved onto class a: (Num_b', Den_b', ψ [deg], shift index).

    Two halves of one view may settle at in-plane angles or centres a few degrees or pixels
    apart; compared without alignment they would look different.  The Wiener-filtered
    averages ``N/(D + ⟨D⟩/10)`` are matched over ψ ∈ [−15°, 15°] (1° steps) and the searched
    translations by the largest cross-correlation; ``Num_b`` is then rotated (real space) and
    moved, ``Den_b`` rotated (Fourier space), as the M-step turns its sums back.
    """
    a, b = pair
    size, freq = grid.size, grid.frequencies

    def wiener(c: int) -> torch.Tensor:
        return num[c] / (den[c] + 0.1 * _mean_den(den[c], grid).clamp_min(1e-30)) * grid.inside

    psi = torch.arange(-15.0, 15.5, 1.0, device=num.device)
    turned = _fourier(rotate_images(_real(wiener(b), size), psi))  # (P, F)
    cross = turned[:, freq].conj() * (wiener(a) * grid.half_weight)[freq]
    score = cross.real @ grid.phase.real - cross.imag @ grid.phase.imag  # Re(cross·phase)
    best = int(torch.argmax(score))
    p, t = divmod(best, grid.phase.shape[1])
    num_images, den_full = _turned(num[b], den[b], psi[p], grid)
    moved = torch.zeros_like(num[b])
    moved[freq] = _fourier(num_images)[freq] * grid.phase[:, t].conj()
    den_moved = half_from_full(den_full.clamp_min(0.0)).reshape(-1)
    return moved, den_moved, float(psi[p]), t


def _split_ratio(
    num: torch.Tensor,
    den: torch.Tensor,
    pair: tuple[int, int],
    sigma2: torch.Tensor,
    grid: _Grid,
    max_shell: int,
) -> dict:
    """How much two classes' unregularised averages differ, in units of their noise.

    After aligning class b on class a (:func:`_aligned_half`),
    ``r = Σ_k w_k |N_a/D_a − N_b/D_b|² / (σ²(1/D_a + 1/D_b)) / Σ_k w_k`` over the coefficients
    of shells 1 … ``max_shell`` that both classes have data for (``w_k`` the half-plane
    weights).  The average ``N/D`` of images assigned with certainty carries noise of power
    ``σ²/D``, so r ≈ 1 when the two classes hold the same view (r < 1 for soft assignments)
    and r − 1 ≈ (signal difference power)·D_a D_b /((D_a + D_b) σ²) otherwise.
    Returns r (``ratio``), the coefficients used, r before alignment and the alignment.
    """
    a, b = pair
    floor = 1e-6 * float(torch.maximum(den[a].max(), den[b].max()).clamp_min(1e-30))
    shell = grid.shell.reshape(-1)
    band = (shell >= 1) & (shell <= max_shell)
    noise_power = _per_frequency(sigma2, grid)

    def ratio(num_b: torch.Tensor, den_b: torch.Tensor) -> tuple[float, int]:
        use = band & (den[a] > floor) & (den_b > floor)
        if not bool(use.any()):
            return 0.0, 0
        d_a, d_b = den[a][use], den_b[use]
        diff = num[a][use] / d_a - num_b[use] / d_b
        noise = noise_power[use] * (1 / d_a + 1 / d_b)
        weight = grid.half_weight[use]
        value = (weight * (diff.real**2 + diff.imag**2) / noise).sum() / weight.sum()
        return float(value), int(use.sum())

    unaligned, _ = ratio(num[b], den[b])
    num_b, den_b, psi, t = _aligned_half(num, den, pair, grid)
    aligned, used = ratio(num_b, den_b)
    return {
        "ratio": aligned,
        "coefficients": used,
        "ratio_unaligned": unaligned,
        "psi_deg": psi,
        "shift_px": [float(v) for v in grid.shifts_px[t]],
    }


def _test_splits(
    model: Class2DModel,
    num: torch.Tensor,
    den: torch.Tensor,
    class_weight: torch.Tensor,
    settings: Class2DSettings,
    grid: _Grid,
) -> tuple[list[tuple[int, int]], torch.Tensor | None, tuple]:
    """Keep or merge back the re-seeded splits whose trial is over (mutates the sums).

    A split of parent p into (p, c) made ``split_test_iterations`` E-steps ago is kept when
    :func:`_split_ratio` of the two halves, over the shells up to the better of their
    resolutions, is at least ``split_min_ratio``.  Otherwise the halves' sums are added
    (``Num_p += Num_c``, ``Den_p += Den_c``, weights likewise: exactly the M-step of one class
    holding both halves' images) and c is retired.  Returns the merged (child, parent)
    pairs, the new ``split_from`` and the tests made (for the log).
    """
    if model.split_from is None:
        return [], None, ()
    split_from = model.split_from.clone()
    merged, tests = [], []
    size, pixel = grid.size, settings.pixel_size_angstrom
    for child in torch.nonzero(split_from >= 0).reshape(-1).tolist():
        parent = int(split_from[child])
        if model.iteration + 1 - int(model.split_since[child]) < settings.split_test_iterations:
            continue
        best = float(model.resolution_angstrom[[child, parent]].min())
        max_shell = min(size // 2, max(4, round(size * pixel / max(best, 2 * pixel))))
        test = _split_ratio(num, den, (parent, child), model.sigma2, grid, max_shell)
        keep = test["ratio"] >= settings.split_min_ratio
        tests.append({"class": child + 1, "parent": parent + 1, **test, "kept": keep})
        if keep or test["coefficients"] == 0:  # a half with no image: nothing to test
            split_from[child] = -1
            continue
        num[parent] += num[child]
        den[parent] += den[child]
        class_weight[parent] += class_weight[child]
        num[child], den[child], class_weight[child] = 0, 0, 0
        split_from[child] = -2
        merged.append((child, parent))
    return merged, split_from, tuple(tests)


def _reseed(
    model: Class2DModel, settings: Class2DSettings, grid: _Grid
) -> tuple[Class2DModel, list[int]]:
    """Split the largest class into each (nearly) empty one; returns the 1-based classes re-seeded.

    The two halves are ``A ± δ``, ``δ`` a smooth random image (seeded by the iteration) with
    20 % of A's standard deviation; the largest class's prior is shared between them.  EM then
    pulls the halves apart if the class holds more than one view.  With
    ``split_test_iterations > 0`` the split is on trial (``model.split_from``): the M-step
    that ends the trial keeps it or merges the halves back (:func:`_test_splits`).  Classes on
    trial are neither re-seeded nor split again until their trial ends; retired classes
    (merged back) stay empty.
    """
    k = settings.n_classes
    if settings.reseed_below <= 0 or k < 2:
        return model, []
    classes, prior = model.classes.clone(), model.class_prior.clone()
    tau2 = model.tau2.clone()
    if model.split_from is None:
        split_from, since = torch.full((k,), -1), torch.zeros(k, dtype=torch.int64)
    else:
        split_from, since = model.split_from.clone(), model.split_since.clone()
    available = (split_from == -1).to(prior.device)  # not on trial, not retired
    for child in torch.nonzero(split_from >= 0).reshape(-1).tolist():
        available[int(split_from[child])] = False
    generator = torch.Generator().manual_seed(7919 * model.iteration + k)
    done = []
    for c in range(k):  # loop over classes (few)
        if float(prior[c]) >= settings.reseed_below / k or not bool(available[c]):
            continue
        candidates = torch.where(available, prior, torch.full_like(prior, -1.0))
        candidates[c] = -1.0
        big = int(torch.argmax(candidates))
        if float(candidates[big]) <= 0:
            break
        noise = torch.randn(grid.size, grid.size, generator=generator).to(classes)
        smooth = _fourier(noise) * torch.exp(-((grid.shell.reshape(-1) / (grid.size / 8)) ** 2))
        delta = _real(smooth, grid.size)
        if grid.mask is not None:
            delta = delta * grid.mask
        delta = delta * (0.2 * classes[big].std() / delta.std().clamp_min(1e-30))
        classes[c], classes[big] = classes[big] - delta, classes[big] + delta
        prior[c] = prior[big] = prior[big] / 2
        tau2[c] = tau2[big]
        done.append(c + 1)
        if settings.split_test_iterations > 0:
            split_from[c], since[c] = big, model.iteration
            available[c] = available[big] = False
    if not done:
        return model, []
    state = {}
    if settings.split_test_iterations > 0:
        state = {"split_from": split_from, "split_since": since}
    return replace(model, classes=classes, class_prior=prior, tau2=tau2, **state), done


def _recentred(classes: torch.Tensor, settings: Class2DSettings) -> torch.Tensor:
    """Class averages moved so that the centre of mass of their positive part is at N//2."""
    pixel = settings.pixel_size_angstrom
    com = center_of_mass_px(classes)
    return shift_image(classes, -com * pixel, pixel_size_angstrom=pixel)


# ----------------------------------------------------------------------------- public API


def check_inputs(n_particles: int, size: int, settings: Class2DSettings) -> None:
    """Raise ValueError for settings that cannot classify ``n_particles`` images of ``size`` px.

    K must be between 1 and the number of particles, the offset range non-negative and below
    half the box, ``tau2_fudge`` positive, ``prune_fraction`` in [0, 1).
    """
    if settings.n_classes < 1:
        raise ValueError(f"number of classes must be ≥ 1, got {settings.n_classes}")
    if settings.n_classes > n_particles:
        raise ValueError(
            f"{settings.n_classes} classes requested for {n_particles} particles; "
            "K must not exceed the number of particles"
        )
    if settings.offset_range_angstrom < 0:
        raise ValueError(f"offset range must be ≥ 0 Å, got {settings.offset_range_angstrom}")
    if settings.offset_range_angstrom / settings.pixel_size_angstrom >= size / 2:
        raise ValueError(
            f"offset range {settings.offset_range_angstrom} Å reaches half the box "
            f"({size} px × {settings.pixel_size_angstrom} Å)"
        )
    if settings.tau2_fudge is not None and not settings.tau2_fudge > 0:
        raise ValueError(f"tau2_fudge must be > 0, got {settings.tau2_fudge}")
    if not 0 <= settings.prune_fraction < 1:
        raise ValueError(f"prune_fraction must be in [0, 1), got {settings.prune_fraction}")
    if not settings.early_sharpening >= 1:
        raise ValueError(f"early_sharpening must be ≥ 1, got {settings.early_sharpening}")
    if settings.sharpening_iterations < 1:
        raise ValueError(f"sharpening_iterations must be ≥ 1, got {settings.sharpening_iterations}")
    if settings.oversampling not in (0, 1, 2):
        raise ValueError(f"oversampling must be 0, 1 or 2, got {settings.oversampling}")
    if not 0 < settings.oversample_below <= 1:
        raise ValueError(f"oversample_below must be in (0, 1], got {settings.oversample_below}")
    if not 0 < settings.adaptive_fraction <= 1:
        raise ValueError(f"adaptive_fraction must be in (0, 1], got {settings.adaptive_fraction}")


def initial_model(
    batches: Batches,
    *,
    n_particles: int,
    image_size: int,
    ctf: CTFParams | None,
    settings: Class2DSettings,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Class2DModel:
    """Seeded start: CTF-weighted averages of random subsets at random in-plane angles.

    Parameters
    ----------
    batches : iterable of (indices (B,), images (B, N, N))
        One pass over the particles.
    n_particles, image_size : int
    ctf : CTFParams or None
        Fields of shape (n_particles,) (None: no CTF).
    settings : Class2DSettings
    generator : torch.Generator
        CPU generator that draws the random subsets and angles.
    device : torch.device or str

    Returns
    -------
    Class2DModel
        ``iteration = 0``; σ² from the images' power spectrum minus that of their mean.
    """
    check_inputs(n_particles, image_size, settings)
    poses = initial_poses(n_particles, settings=settings, generator=generator)
    stats = initial_statistics(
        batches, poses=poses, image_size=image_size, ctf=ctf, settings=settings, device=device
    )
    return initial_mstep(stats, image_size=image_size, settings=settings)


def initial_poses(
    n_particles: int, *, settings: Class2DSettings, generator: torch.Generator
) -> torch.Tensor:
    """Random start of each particle: pose row ``c·J + j`` (balanced classes, random angle).

    Parameters
    ----------
    n_particles : int
    settings : Class2DSettings
    generator : torch.Generator
        CPU generator (draws ``randperm`` for the classes, then ``randint`` for the angles).

    Returns
    -------
    Tensor (n_particles,), int64
    """
    k = settings.n_classes
    n_angles = psi_angles_deg(settings.psi_step_deg).shape[0]
    label = torch.randperm(n_particles, generator=generator) % k  # balanced random subsets
    angle = torch.randint(n_angles, (n_particles,), generator=generator)
    return label * n_angles + angle


def initial_statistics(
    batches: Batches,
    *,
    poses: torch.Tensor,
    image_size: int,
    ctf: CTFParams | None,
    settings: Class2DSettings,
    device: torch.device | str = "cpu",
) -> EStepStats:
    """Sums of the initial averages: each image counted fully at its random start pose.

    Parameters
    ----------
    batches : iterable of (indices (B,), images (B, N, N))
        One pass over (some of) the particles.
    poses : Tensor (n,), int64
        Pose row of each particle (:func:`initial_poses`), indexed like the batches.
    image_size : int
    ctf : CTFParams or None
        Fields of shape (n,), indexed like the batches.
    settings : Class2DSettings
    device : torch.device or str

    Returns
    -------
    EStepStats
        As an E-step whose posteriors are 1 at the given pose (no translation); statistics of
        chunks add (:func:`merge_stats`).
    """
    device = torch.device(device)
    grid = _grid(settings, image_size, device)
    k, n_angles = settings.n_classes, grid.psi_deg.shape[0]
    pose = poses.to(device)
    sums = _Sums.empty(k * n_angles, grid.half_weight.shape[0], device)
    for indices, images in batches:
        xf = _fourier(images.to(device=device, dtype=torch.float32))
        c = _ctf_images(ctf, indices, image_size, settings.pixel_size_angstrom, device)
        c = torch.ones_like(xf.real) if c is None else c
        sums.add_data(xf)
        rows = pose[indices.to(device)]
        sums.num.index_add_(0, rows, xf * c)
        sums.den.index_add_(0, rows, c**2)
        sums.weight += torch.bincount(rows, minlength=k * n_angles).double()
    extra = {"pruned_mass_sum": 0.0, "pruned_mass_max": 0.0, "estep_max_shell": image_size // 2}
    return _stats(sums, 0.0, extra)


def initial_mstep(stats: EStepStats, *, image_size: int, settings: Class2DSettings) -> Class2DModel:
    """The initial model from :func:`initial_statistics` of all particles.

    Averages with a Wiener constant (10 % of the mean CTF² weight; no τ² yet), uniform class
    priors, and σ² from the images' power spectrum minus that of their mean.

    Returns
    -------
    Class2DModel
        ``iteration = 0``.
    """
    device = stats.num.device
    grid = _grid(settings, image_size, device)
    k = settings.n_classes
    mean = stats.mean / max(stats.count, 1)
    spectrum = stats.power / max(stats.count, 1) - (mean.real**2 + mean.imag**2)
    sigma2 = _shell_mean(spectrum.float(), grid).clamp_min(1e-30)
    start = Class2DModel(
        classes=torch.zeros(k, image_size, image_size, device=device),
        class_prior=torch.full((k,), 1.0 / k, device=device),
        sigma2=sigma2,
        tau2=torch.ones(k, image_size // 2 + 1, device=device),
        resolution_angstrom=torch.zeros(k, device=device),
    )
    model = _maximization(start, stats, settings=settings, grid=grid, wiener_fraction=0.1)
    return replace(model, class_prior=start.class_prior, sigma2=sigma2, iteration=0)


def estep_model(model: Class2DModel, settings: Class2DSettings) -> tuple[Class2DModel, list[int]]:
    """The model an iteration's E-step uses: empty classes re-seeded, averages re-centred.

    Done before the E-step (not after the M-step) so that the averages an iteration returns
    match the alignments it returns.  Nothing changes for the initial model (``iteration = 0``).

    Parameters
    ----------
    model : Class2DModel
    settings : Class2DSettings

    Returns
    -------
    model : Class2DModel
    reseeded : list of int
        1-based classes re-seeded by splitting the most populated class.
    """
    if model.iteration == 0:
        return model, []
    grid = _grid(settings, model.classes.shape[-1], model.classes.device)
    current, reseeded = _reseed(model, settings, grid)
    if settings.recenter:
        current = replace(current, classes=_recentred(current.classes, settings))
    return current, reseeded


def _stats(sums: _Sums, log_likelihood: float, extra: dict) -> EStepStats:
    return EStepStats(
        num=sums.num,
        den=sums.den,
        weight=sums.weight,
        power=sums.power,
        mean=sums.mean,
        count=sums.count,
        log_likelihood=log_likelihood,
        pruned_mass_sum=extra["pruned_mass_sum"],
        pruned_mass_max=extra["pruned_mass_max"],
        max_shell=extra["estep_max_shell"],
    )


def estep_statistics(
    model: Class2DModel,
    batches: Batches,
    *,
    n_particles: int,
    ctf: CTFParams | None,
    settings: Class2DSettings,
    progress: Callable[[int], None] | None = None,
) -> tuple[EStepStats, Assignments]:
    """E-step over some particles: their sufficient statistics and most probable poses.

    Parameters
    ----------
    model : Class2DModel
        The E-step model (from :func:`estep_model`), fixed during the pass.
    batches : iterable of (indices (B,), images (B, N, N))
        One pass over the particles; ``indices`` in ``[0, n_particles)`` (positions in this
        set, e.g. in one chunk of a larger set).
    n_particles : int
        Length of the returned assignments.
    ctf : CTFParams or None
        Fields of shape (n_particles,), indexed like the batches (None: no CTF).
    settings : Class2DSettings
    progress : callable, optional
        Called with the number of images after each batch.

    Returns
    -------
    stats : EStepStats
        Sums over the images the batches covered (``stats.count`` of them).
    assignments : Assignments
        Of length ``n_particles`` (rows not covered stay zero).

    Notes
    -----
    The posterior of image ``i`` depends only on the model and on ``X_i``, so the statistics
    of disjoint chunks computed separately and added (:func:`merge_stats`) equal those of one
    pass over all images, up to float rounding.
    """
    grid = _grid(settings, model.classes.shape[-1], model.classes.device)
    sums, assignments, extra = _expectation(
        model,
        batches,
        n_particles=n_particles,
        ctf=ctf,
        settings=settings,
        grid=grid,
        progress=progress,
    )
    return _stats(sums, float(assignments.log_likelihood.sum()), extra), assignments


def merge_stats(*parts: EStepStats) -> EStepStats:
    """Statistics of the union of disjoint sets of particles: the sums added.

    Parameters
    ----------
    *parts : EStepStats
        From E-steps under one model (same K, J, box and frequency band).

    Returns
    -------
    EStepStats
    """
    if not parts:
        raise ValueError("merge_stats needs at least one EStepStats")
    shells = {p.max_shell for p in parts}
    if len(shells) != 1:
        raise ValueError(f"statistics come from E-steps with different bands (max shell {shells})")
    first = parts[0]
    for p in parts[1:]:
        if p.num.shape != first.num.shape:
            raise ValueError(f"statistics shapes differ: {tuple(p.num.shape)} vs {first.num.shape}")
    total = lambda name: sum((getattr(p, name) for p in parts[1:]), getattr(first, name))  # noqa: E731
    return EStepStats(
        num=total("num"),
        den=total("den"),
        weight=total("weight"),
        power=total("power"),
        mean=total("mean"),
        count=sum(p.count for p in parts),
        log_likelihood=sum(p.log_likelihood for p in parts),
        pruned_mass_sum=sum(p.pruned_mass_sum for p in parts),
        pruned_mass_max=max(p.pruned_mass_max for p in parts),
        max_shell=first.max_shell,
    )


def mstep(model: Class2DModel, stats: EStepStats, *, settings: Class2DSettings) -> Class2DModel:
    """M-step: new classes, priors, σ², τ² and resolutions from the E-step statistics.

    Parameters
    ----------
    model : Class2DModel
        The model the E-step used (its σ² and τ² set the regularisation).
    stats : EStepStats
        Of all particles (merged over chunks).
    settings : Class2DSettings

    Returns
    -------
    Class2DModel
        ``iteration = model.iteration + 1``.

    Notes
    -----
    ``A_c = Σ_j R_j^{-1} Num_{cj} / (Σ_j R_j^{-1} Den_{cj} + σ²/(2 T τ²_c))``,
    ``π_c = Σ_j weight_{cj} / n``; see the module docstring.
    """
    grid = _grid(settings, model.classes.shape[-1], model.classes.device)
    return _maximization(model, stats, settings=settings, grid=grid)


def iteration_log(new: Class2DModel, stats: EStepStats, reseeded: list[int]) -> dict:
    """The log entry of an iteration (see :func:`em_iteration`)."""
    return {
        "iteration": new.iteration,
        "log_likelihood": stats.log_likelihood,
        "occupancies": [float(v) for v in new.class_prior.cpu()],
        "resolution_angstrom": [float(v) for v in new.resolution_angstrom.cpu()],
        "reseeded": reseeded,
        "split_tests": [dict(t) for t in new.split_tests],
        "pruned_mass_mean": stats.pruned_mass_sum / max(stats.count, 1),
        "pruned_mass_max": stats.pruned_mass_max,
        "estep_max_shell": stats.max_shell,
    }


def em_iteration(
    model: Class2DModel,
    batches: Batches,
    *,
    n_particles: int,
    ctf: CTFParams | None,
    settings: Class2DSettings,
    progress: Callable[[int], None] | None = None,
) -> tuple[Class2DModel, Assignments, dict]:
    """One expectation–maximisation round.

    ``estep_model`` → ``estep_statistics`` → ``mstep``; a distributed run does the same with
    the E-step cut into chunks whose statistics are merged (:func:`merge_stats`).

    Parameters
    ----------
    model : Class2DModel
        Current parameters (fixed during the E-step).
    batches : iterable of (indices (B,), images (B, N, N))
        One pass over all particles (any batching: the result does not depend on it).
    n_particles : int
    ctf : CTFParams or None
        Fields of shape (n_particles,) (None: no CTF).
    settings : Class2DSettings
    progress : callable, optional
        Called with the number of images after each batch.

    Returns
    -------
    model : Class2DModel
        The updated parameters (``iteration + 1``).
    assignments : Assignments
        Most probable poses under the *input* model (the ones the new averages are made from).
    log : dict
        ``iteration``, ``log_likelihood`` (Σ_i log p(X_i | input model); see the module
        notes on the log-likelihood), ``occupancies``, ``resolution_angstrom``, ``reseeded``
        (1-based classes re-seeded before the E-step), ``pruned_mass_mean``/``max`` and
        ``estep_max_shell``.
    """
    size = model.classes.shape[-1]
    check_inputs(n_particles, size, settings)
    current, reseeded = estep_model(model, settings)
    stats, assignments = estep_statistics(
        current, batches, n_particles=n_particles, ctf=ctf, settings=settings, progress=progress
    )
    if stats.count != n_particles:
        raise ValueError(f"batches covered {stats.count} images, expected {n_particles}")
    new = mstep(current, stats, settings=settings)
    return new, assignments, iteration_log(new, stats, reseeded)


def classify_2d(
    images: torch.Tensor,
    *,
    settings: Class2DSettings,
    iterations: int,
    ctf: CTFParams | None = None,
    generator: torch.Generator | None = None,
) -> Class2DResult:
    """Classify an in-memory image stack (a convenience wrapper of the functions above).

    Parameters
    ----------
    images : Tensor (n, N, N)
        Particle images (origin N//2); the computation runs on their device.
    settings : Class2DSettings
    iterations : int
        EM rounds (≥ 1).
    ctf : CTFParams, optional
        Fields broadcastable to (n,).
    generator : torch.Generator, optional
        Seeds the random initial subsets (default seed 0).

    Returns
    -------
    Class2DResult

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(20, 32, 32, generator=g)
    >>> s = Class2DSettings(n_classes=2, pixel_size_angstrom=2.0, psi_step_deg=30,
    ...                     offset_range_angstrom=4.0)
    >>> r = classify_2d(x, settings=s, iterations=2, generator=g)
    >>> r.model.classes.shape, len(r.log)
    (torch.Size([2, 32, 32]), 2)
    """
    if images.ndim != 3 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must have shape (n, N, N), got {tuple(images.shape)}")
    if iterations < 1:
        raise ValueError(f"iterations must be ≥ 1, got {iterations}")
    n, size = images.shape[0], images.shape[-1]
    if ctf is not None:
        ctf = ctf.expand(n, dtype=torch.float64)
    generator = generator or torch.Generator().manual_seed(0)
    batches = tensor_batches(images, default_batch_size(settings, size))
    model = initial_model(
        batches(),
        n_particles=n,
        image_size=size,
        ctf=ctf,
        settings=settings,
        generator=generator,
        device=images.device,
    )
    log: list[dict] = []
    assignments = None
    for _ in range(iterations):
        model, assignments, entry = em_iteration(
            model, batches(), n_particles=n, ctf=ctf, settings=settings
        )
        log.append(entry)
    return Class2DResult(model=model, assignments=assignments, log=log)
