r"""Gold-standard 3D auto-refinement, as ``relion_refine --auto_refine --split_random_halves``.

The loop
--------
Two half sets, each aligned to its own reference (never to the other half's data above the
join resolution), one iteration at a time:

1. **E-step** (:func:`cryoglass.refine.align.align_batch`): for each particle the posterior over
   poses given its half's reference, on the Fourier shells up to the current resolution plus a
   margin (RELION's ``current_size``); a global search over SO(3) × origins while the sampling
   is coarse, local searches around the previous pose once it is fine (RELION's auto-local);
   the first iteration scores by normalised cross-correlation and keeps the best pose only
   (``--firstiter_cc``: the reference need not be on the particles' grey scale).
2. **M-step**: weighted back-projection of every particle at its significant poses
   (:func:`cryoglass.refine.align.insert_batch`), the two halves' sums joined below
   ``low_resol_join_halves`` (:func:`cryoglass.reconstruct.join_below`); the FSC of the two
   half maps (inside a soft sphere of the particle diameter) gives the resolution and
   ``τ² = SSNR/⟨W⟩`` (:func:`cryoglass.reconstruct.tau2_from_fsc`), which regularises each half
   map (a Wiener filter); the noise power ``σ²`` per shell is the E-step's expected residual.
   The new references are the regularised half maps times the soft sphere (solvent flattening).
3. **Sampling**: at resolution ``d`` a particle of diameter ``D`` needs an angular step of
   about ``d/D`` radians (a rotation error moves the particle's edge by half a resolution
   element); the search goes on to ``½·d/D``, as RELION's auto-refine ends with an
   oversampled step below ``d/D`` (:func:`_needed_step_deg`).  While the step is coarser,
   the HEALPix order goes up by one per iteration; from
   ``local_from_order`` on, searches are local (±``local_radius_steps`` steps around the previous
   pose) and the origin step halves with every order.
4. **Convergence** (as RELION): the step is fine enough for the resolution, and the resolution
   has not improved for two iterations.  Then a final E-step over all shells up to Nyquist, and
   the two halves' sums are joined into the final map (regularised by the halves' FSC).

References
----------
Scheres, S. H. W. (2012) RELION: implementation of a Bayesian approach to cryo-EM structure
determination. J. Struct. Biol. 180:519-530. https://doi.org/10.1016/j.jsb.2012.09.006

Scheres, S. H. W. & Chen, S. (2012) Prevention of overfitting in cryo-EM structure
determination. Nat. Methods 9:853-854. https://doi.org/10.1038/nmeth.2115
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.filters import lowpass
from cryoglass.geometry.so3_grid import angular_step_for_order
from cryoglass.projection.fourier_slice import prepare_volume_fourier, slice_frequencies
from cryoglass.reconstruct.backproject import ctf_slice_values, image_slice_values
from cryoglass.reconstruct.fourier_inversion import (
    Accumulator,
    empty_accumulator,
    finalize,
    merge,
    tau2_from_fsc,
)
from cryoglass.reconstruct.halves import join_below
from cryoglass.refine.align import (
    Sampling,
    align_batch,
    global_table,
    insert_batch,
    noise_power_sums,
)
from cryoglass.refine.likelihood import Band, band
from cryoglass.refine.poses import global_rotations
from cryoglass.validate.fsc import fourier_shell_correlation, resolution_at_threshold
from cryoglass.validate.masks import soft_sphere_mask

__all__ = [
    "Poses",
    "RefineResult",
    "RefineSettings",
    "RefineState",
    "auto_refine",
    "IterationPlan",
    "IterationSums",
    "align_and_insert",
    "initial_state",
    "plan_iteration",
    "refine_iteration",
]

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
#: ``estep(state, max_shell) -> (two Accumulators, sigma2 (2, N//2 + 1), Poses)``.
EStep = Callable[..., tuple]


@dataclass(frozen=True)
class RefineSettings:
    """Options of an auto-refinement (RELION's names in brackets).

    Attributes
    ----------
    pixel_size_angstrom : float
    particle_diameter_angstrom : float
        Diameter of the soft spherical solvent mask [Å] (``--particle_diameter``).
    symmetry : str
        Point group (``--sym``).
    ini_high_angstrom : float
        The reference is low-passed to this resolution first (``--ini_high``).
    low_resol_join_halves_angstrom : float
        The halves share their sums below this resolution (``--low_resol_join_halves``).
    initial_order : int
        HEALPix order of the first iterations (3 = 7.5°, with a 15° coarse pass;
        ``--healpix_order`` 2 with oversampling 1).
    local_from_order : int
        From this order on, searches are local (4 = 3.75°; ``--auto_local_healpix_order``).
    max_order : int
        Finest HEALPix order.
    offset_range_px, offset_step_px : float
        Origin search [pixels] of global searches (``--offset_range``, ``--offset_step``).
    max_iterations : int
        Stop after this many iterations even without convergence.
    firstiter_cc : bool
        Align the first iteration by cross-correlation (``--firstiter_cc``).
    mask_edge_px : float
        Cosine edge of the solvent mask [pixels] (``--width_mask_edge``).
    pad : int
        Padding of the reconstruction (``--pad``).
    extra_shells : int, optional
        Shells beyond the resolution used by the E-step (default ``max(4, N/10)``).
    keep : int
        Significant poses inserted per particle, at most.
    """

    pixel_size_angstrom: float
    particle_diameter_angstrom: float
    symmetry: str = "C1"
    ini_high_angstrom: float = 30.0
    low_resol_join_halves_angstrom: float = 40.0
    initial_order: int = 3
    local_from_order: int = 4
    max_order: int = 6
    offset_range_px: float = 5.0
    offset_step_px: float = 1.0
    max_iterations: int = 25
    firstiter_cc: bool = True
    mask_edge_px: float = 5.0
    pad: int = 2
    extra_shells: int | None = None
    keep: int = 8


@dataclass(frozen=True, eq=False)
class Poses:
    """Each particle's best pose and the statistics of its posterior.

    Attributes
    ----------
    rotations : Tensor, (n, 3, 3), float32
        RELION matrices ``A``.
    origins_px : Tensor, (n, 2), float32
        RELION origins [pixels].
    max_probability : Tensor, (n,)
    n_significant : Tensor, (n,), int64
    log_likelihood : Tensor, (n,), float64
    """

    rotations: torch.Tensor
    origins_px: torch.Tensor
    max_probability: torch.Tensor
    n_significant: torch.Tensor
    log_likelihood: torch.Tensor

    def set_rows(self, rows: torch.Tensor, other: Poses) -> None:
        """Copy ``other``'s poses into rows ``rows`` (in place)."""
        for name in ("rotations", "origins_px", "max_probability", "n_significant"):
            getattr(self, name)[rows] = getattr(other, name).to(getattr(self, name).dtype)
        self.log_likelihood[rows] = other.log_likelihood

    @staticmethod
    def empty(n: int) -> Poses:
        return Poses(
            torch.eye(3).expand(n, 3, 3).clone(),
            torch.zeros(n, 2),
            torch.zeros(n),
            torch.zeros(n, dtype=torch.int64),
            torch.zeros(n, dtype=torch.float64),
        )


@dataclass(frozen=True, eq=False)
class RefineState:
    """Where a refinement stands after an iteration (everything the next one needs).

    Attributes
    ----------
    iteration : int
        Iterations done (0: the initial state).
    references : Tensor, (2, N, N, N)
        The two half sets' references (masked), real space.
    sigma2 : Tensor, (2, N//2 + 1)
        Noise power per shell of each half.
    resolution_angstrom : float
        Current gold-standard resolution (FSC = 0.143; ``ini_high`` at the start).
    best_resolution_angstrom : float
    no_gain : int
        Iterations in a row without a better resolution.
    sampling : Sampling
        What the next iteration searches.
    poses : Poses
    fsc : Tensor, (N//2 + 1,)
        The last half-map FSC.
    history : tuple of dict
        One record per iteration (resolution, step, changes, seconds …).
    converged : bool
    """

    iteration: int
    references: torch.Tensor
    sigma2: torch.Tensor
    resolution_angstrom: float
    best_resolution_angstrom: float
    no_gain: int
    sampling: Sampling
    poses: Poses
    fsc: torch.Tensor
    history: tuple[dict, ...] = field(default=())
    converged: bool = False


@dataclass(frozen=True, eq=False)
class RefineResult:
    """The outputs of a finished refinement.

    Attributes
    ----------
    state : RefineState
        After the final iteration.
    half_maps : Tensor, (2, N, N, N)
        Unfiltered half maps (``run_half1/2_class001_unfil.mrc``).
    map : Tensor, (N, N, N)
        Both halves' data joined, regularised by their FSC (``run_class001.mrc``).
    fsc : Tensor, (N//2 + 1,)
        FSC of the unfiltered half maps.
    resolution_angstrom : float
    """

    state: RefineState
    half_maps: torch.Tensor
    map: torch.Tensor
    fsc: torch.Tensor
    resolution_angstrom: float


def _mask(size: int, s: RefineSettings, device) -> torch.Tensor:
    radius = min(s.particle_diameter_angstrom / (2 * s.pixel_size_angstrom), size / 2 - 1)
    return soft_sphere_mask(
        (size,) * 3, radius_px=radius, edge_width_px=s.mask_edge_px, device=device
    )


def initial_state(
    reference: torch.Tensor, n_particles: int, settings: RefineSettings, *, device=None
) -> RefineState:
    """The state before the first iteration: the reference low-passed to ``ini_high``.

    Parameters
    ----------
    reference : Tensor, (N, N, N)
        Initial map on the particles' box and pixel size.
    n_particles : int
    settings : RefineSettings

    Returns
    -------
    RefineState
    """
    size = reference.shape[-1]
    device = device or reference.device
    ref = lowpass(
        reference.to(device, torch.float32),
        ndim=3,
        resolution_angstrom=settings.ini_high_angstrom,
        pixel_size_angstrom=settings.pixel_size_angstrom,
    ) * _mask(size, settings, device)
    sampling = Sampling(
        order=settings.initial_order,
        origin_range_px=settings.offset_range_px,
        origin_step_px=settings.offset_step_px,
        keep=settings.keep,
    )
    return RefineState(
        iteration=0,
        references=torch.stack([ref, ref]),
        sigma2=torch.ones(2, size // 2 + 1, device=device),
        resolution_angstrom=settings.ini_high_angstrom,
        best_resolution_angstrom=settings.ini_high_angstrom,
        no_gain=0,
        sampling=sampling,
        poses=Poses.empty(n_particles),
        fsc=torch.zeros(size // 2 + 1, dtype=torch.float64),
    )


def _max_shell(state: RefineState, size: int, s: RefineSettings, final: bool) -> int:
    if final:
        return size // 2
    extra = s.extra_shells if s.extra_shells is not None else max(4, size // 10)
    shell = size * s.pixel_size_angstrom / state.resolution_angstrom
    return int(min(size // 2, math.ceil(shell) + extra))


@dataclass(frozen=True, eq=False)
class IterationPlan:
    """What every batch of one iteration needs: references, band, sampling, noise model.

    Made once per iteration by :func:`plan_iteration` (on each Dask worker, from the state's
    two reference maps); :func:`align_and_insert` applies it to a batch.
    """

    references: tuple  # two VolumeFourier
    tables: tuple  # two GlobalTable, or (None, None) for local searches
    band: Band
    sampling: Sampling
    sigma2: torch.Tensor  # (2, N//2 + 1)
    correlation: bool
    symmetry: str
    pixel_size_angstrom: float
    pad: int
    k_full: torch.Tensor  # (P, 2)
    shell_full: torch.Tensor  # (P,)
    weight_full: torch.Tensor  # (P,)


def plan_iteration(
    references: torch.Tensor,
    sigma2: torch.Tensor,
    sampling: Sampling,
    *,
    iteration: int,
    max_shell: int,
    settings: RefineSettings,
) -> IterationPlan:
    """Prepare an iteration: the two references' transforms and (global) projection tables."""
    size, device = references.shape[-1], references.device
    b = band(size, max_shell, device=device)
    k_full, _ = slice_frequencies(size, device=device, dtype=torch.float32)
    shell_full = torch.floor(k_full.double().norm(dim=1) + 0.5).long()
    weight_full = torch.ones(k_full.shape[0], device=device)
    weight_full[(k_full[:, 0] == 0) | ((size % 2 == 0) & (k_full[:, 0] == size // 2))] = 0.5
    prepared = tuple(prepare_volume_fourier(references[h]) for h in range(2))
    tables = (None, None)
    if not sampling.local:
        rotations, _ = global_rotations(sampling.order - 1, symmetry=settings.symmetry)
        tables = tuple(global_table(prepared[h], rotations.to(device), b) for h in range(2))
    return IterationPlan(
        references=prepared,
        tables=tables,
        band=b,
        sampling=sampling,
        sigma2=sigma2.to(device),
        correlation=iteration == 0 and settings.firstiter_cc,
        symmetry=settings.symmetry,
        pixel_size_angstrom=settings.pixel_size_angstrom,
        pad=settings.pad,
        k_full=k_full,
        shell_full=shell_full,
        weight_full=weight_full,
    )


@dataclass(eq=False)
class IterationSums:
    """The M-step sums of both halves over some particles (they add: chunks merge exactly).

    Attributes
    ----------
    accumulators : list of two Accumulator
    noise : Tensor, (2, N//2 + 1), float64
        Expected residual power per shell (:func:`cryoglass.refine.align.noise_power_sums`).
    counts : Tensor, (2,), float64
        Particles of each half.
    """

    accumulators: list
    noise: torch.Tensor
    counts: torch.Tensor

    @staticmethod
    def empty(size: int, *, pad: int, device=None) -> IterationSums:
        return IterationSums(
            [empty_accumulator(size, pad=pad, device=device) for _ in range(2)],
            torch.zeros(2, size // 2 + 1, dtype=torch.float64, device=device),
            torch.zeros(2, dtype=torch.float64),
        )

    def sigma2(self) -> torch.Tensor:
        """Noise power per shell of each half, (2, N//2 + 1)."""
        n_shells = self.noise.shape[1]
        size = self.accumulators[0].size
        k, _ = slice_frequencies(size, device=self.noise.device, dtype=torch.float64)
        shell = torch.floor(k.norm(dim=1) + 0.5).long().clamp_max(n_shells)
        weight = torch.ones(k.shape[0], dtype=torch.float64, device=k.device)
        weight[(k[:, 0] == 0) | ((size % 2 == 0) & (k[:, 0] == size // 2))] = 0.5
        points = torch.zeros(n_shells + 1, dtype=torch.float64, device=k.device)
        points.index_add_(0, shell, weight)
        denominator = self.counts.to(self.noise.device)[:, None] * points[:n_shells]
        return (self.noise / denominator.clamp_min(1e-30)).float()


def align_and_insert(
    plan: IterationPlan,
    sums: IterationSums,
    images: torch.Tensor,
    *,
    labels: torch.Tensor,
    ctf: CTFParams | None,
    previous_rotations: torch.Tensor,
    previous_origins_px: torch.Tensor,
) -> Poses:
    """One batch: align each image to its half's reference and add it to the sums (in place).

    Parameters
    ----------
    plan : IterationPlan
    sums : IterationSums
        Receives the batch (modified in place).
    images : Tensor, (B, N, N)
    labels : Tensor, (B,)
        Half set of each image (1 or 2).
    ctf : CTFParams (B,), optional
    previous_rotations : Tensor, (B, 3, 3)
    previous_origins_px : Tensor, (B, 2)

    Returns
    -------
    Poses
        The batch's best poses and posterior statistics (CPU).
    """
    device = plan.k_full.device
    size = images.shape[-1]
    images = images.to(device, torch.float32)
    x_full = image_slice_values(images)
    c_full = None
    if ctf is not None:
        c_full = ctf_slice_values(
            ctf, size=size, pixel_size_angstrom=plan.pixel_size_angstrom, like=images
        )
    b, n_shells = plan.band, sums.noise.shape[1]
    poses = Poses.empty(images.shape[0])
    for h in range(2):
        rows = torch.nonzero(labels.to(device) == h + 1).reshape(-1)
        if rows.numel() == 0:
            continue
        x, c = x_full[rows], None if c_full is None else c_full[rows]
        alignment = align_batch(
            x[:, b.index],
            torch.ones_like(x[:, b.index].real) if c is None else c[:, b.index],
            plan.sigma2[h],
            plan.references[h],
            b,
            plan.sampling,
            table=plan.tables[h],
            previous_rotations=previous_rotations[rows.cpu()].to(device),
            previous_origins_px=previous_origins_px[rows.cpu()].to(device),
            correlation=plan.correlation,
        )
        insert_batch(sums.accumulators[h], x, c, alignment, plan.k_full, symmetry=plan.symmetry)
        if plan.correlation:  # the first reference is on another grey scale: the image power
            power = (x.real.square() + x.imag.square()) * plan.weight_full
            sums.noise[h].index_add_(0, plan.shell_full, power.sum(0).double())
        else:
            sums.noise[h] += noise_power_sums(
                x,
                c,
                plan.references[h],
                alignment,
                plan.k_full,
                plan.shell_full,
                plan.weight_full,
                n_shells,
            )
        sums.counts[h] += rows.numel()
        at = rows.cpu()
        poses.rotations[at] = alignment.rotations[:, 0].cpu()
        poses.origins_px[at] = alignment.origins_px[:, 0].cpu()
        poses.max_probability[at] = alignment.max_probability.cpu().float()
        poses.n_significant[at] = alignment.n_significant.cpu()
        poses.log_likelihood[at] = alignment.log_likelihood.cpu()
    return poses


def _accumulate(
    state: RefineState,
    batches: Batches,
    *,
    ctf: CTFParams | None,
    labels: torch.Tensor,
    settings: RefineSettings,
    max_shell: int,
    progress: Callable[[int], None] | None,
):
    """The E-step over every particle and the M-step sums of both halves (one process)."""
    refs = state.references
    plan = plan_iteration(
        refs,
        state.sigma2,
        state.sampling,
        iteration=state.iteration,
        max_shell=max_shell,
        settings=settings,
    )
    sums = IterationSums.empty(refs.shape[-1], pad=settings.pad, device=refs.device)
    poses = estep_batches(
        plan, sums, batches(), labels=labels, ctf=ctf, previous=state.poses, progress=progress
    )
    return sums.accumulators, sums.sigma2(), poses


def estep_batches(
    plan: IterationPlan,
    sums: IterationSums,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    labels: torch.Tensor,
    ctf: CTFParams | None,
    previous: Poses,
    progress: Callable[[int], None] | None = None,
) -> Poses:
    """:func:`align_and_insert` over ``(indices, images)`` batches of one particle set.

    The one E-step loop of a process and of a Dask chunk (``refine_chunk``): ``indices``
    index ``labels``, ``ctf`` and the ``previous`` poses; the sums grow in place.

    Returns
    -------
    Poses
        The new poses, one row per particle of the set.
    """
    poses = Poses.empty(labels.shape[0])
    for indices, images in batches:
        batch = align_and_insert(
            plan,
            sums,
            images,
            labels=labels[indices],
            ctf=None if ctf is None else ctf[indices],
            previous_rotations=previous.rotations[indices],
            previous_origins_px=previous.origins_px[indices],
        )
        poses.set_rows(indices, batch)
        if progress is not None:
            progress(int(indices.numel()))
    return poses


def _half_maps(accs: list[Accumulator], settings: RefineSettings, mask: torch.Tensor):
    """Join low resolution, FSC of the unregularised halves, τ²-regularised references."""
    size = accs[0].size
    join = size * settings.pixel_size_angstrom / settings.low_resol_join_halves_angstrom
    first, second = join_below(accs[0], accs[1], max_shell=int(math.floor(join)))
    plain = [finalize(a, regularisation="constant", mask=None) for a in (first, second)]
    fsc = fourier_shell_correlation((plain[0] * mask).double(), (plain[1] * mask).double())
    fsc[: int(math.floor(join)) + 1] = 1.0  # joined shells are the same data
    resolution = float(
        resolution_at_threshold(
            fsc, threshold=0.143, box_size=size, pixel_size_angstrom=settings.pixel_size_angstrom
        )
    )
    regularised = [
        finalize(a, regularisation=tau2_from_fsc(a, fsc), mask=None) for a in (first, second)
    ]
    return (first, second), torch.stack(plain), torch.stack(regularised), fsc, resolution


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles [degrees] between rotations (n, 3, 3)."""
    trace = (a.transpose(1, 2) @ b).diagonal(dim1=1, dim2=2).sum(-1)
    return torch.rad2deg(torch.acos(((trace - 1) / 2).clamp(-1.0, 1.0)))


def _needed_step_deg(resolution: float, s: RefineSettings) -> float:
    """The angular step [deg] the search refines to at ``resolution``: ``½ · d / D`` (radians).

    A rotation by ``d/D`` moves the particle's edge (``D`` the particle diameter) by half a
    resolution element ``d``; the search goes one HEALPix order below that, as RELION's
    auto-refine ends with its oversampled step (``--auto_local_healpix_order 4`` with
    oversampling 1: 1.875°) finer than ``d/D``.  Measured (``bench_refine3d.py --count 800
    --box 40``, data seeds 0/1/2, 12.5 Å maps, D = 112.5 Å): without the ½ the search stopped
    at 3.75°, median angular error 3.38/3.29/3.37°; with it at 1.875°, 2.88/3.00/2.95°
    (RELION 3.17° on seed 0), FSC-to-truth 12.45/12.29/12.46 Å → 12.61/12.48/12.38 Å, 5 → 10
    iterations (+5 s).
    """
    return 0.5 * math.degrees(resolution / s.particle_diameter_angstrom)


def _next_sampling(state: RefineState, resolution: float, s: RefineSettings) -> Sampling:
    """One HEALPix order finer when the step is too coarse for the resolution.

    It moves once the resolution stops improving at the current step, or at once when the step
    is over twice what the resolution needs.
    """
    current = state.sampling
    needed = _needed_step_deg(resolution, s)
    step = angular_step_for_order(current.order)
    if step <= needed or current.order >= s.max_order:
        return current
    stalled = resolution >= state.best_resolution_angstrom - 1e-6
    if not stalled and step <= 2 * needed:  # still improving at this step: stay
        return current
    order = current.order + 1
    if order < s.local_from_order:
        return replace(current, order=order)
    step = current.origin_step_px if not current.local else current.origin_step_px / 2
    step = max(step, 0.25)
    return replace(
        current, order=order, local=True, origin_range_px=2.0 * step, origin_step_px=step
    )


def refine_iteration(
    state: RefineState,
    batches: Batches,
    *,
    ctf: CTFParams | None,
    labels: torch.Tensor,
    settings: RefineSettings,
    final: bool = False,
    progress: Callable[[int], None] | None = None,
    estep: EStep | None = None,
) -> tuple[RefineState, tuple[list[Accumulator], list[Accumulator]]]:
    """One E-step and M-step of both halves; the next state and the halves' sums.

    Parameters
    ----------
    state : RefineState
    batches : callable
        Returns an iterable of ``(indices, images)``: 0-based particle numbers (B,) and images
        (B, N, N), origin at ``N//2``; called once per iteration.
    ctf : CTFParams (n,), optional
    labels : Tensor, (n,), int64
        Half set of every particle (1 or 2).
    settings : RefineSettings
    final : bool
        The final iteration (all shells to Nyquist).
    progress : callable, optional
        Called with the number of images of each batch done.
    estep : callable, optional
        ``estep(state, max_shell) -> (accumulators, sigma2, poses)`` replaces the
        single-process pass over ``batches`` (e.g. a Dask cluster:
        :func:`cryoglass.distributed.commands.refine_engine`).

    Returns
    -------
    RefineState
    (joined, separate) : lists of two Accumulator
        The halves' sums with the low resolutions joined, and as inserted.
    """
    started = time.perf_counter()
    size = state.references.shape[-1]
    mask = _mask(size, settings, state.references.device)
    max_shell = _max_shell(state, size, settings, final)
    if estep is not None:
        accs, sigma2, poses = estep(state, max_shell)
    else:
        accs, sigma2, poses = _accumulate(
            state,
            batches,
            ctf=ctf,
            labels=labels,
            settings=settings,
            max_shell=max_shell,
            progress=progress,
        )
    joined, _, regularised, fsc, resolution = _half_maps(accs, settings, mask)
    moved = _angle_deg(state.poses.rotations, poses.rotations)
    shifted = (state.poses.origins_px - poses.origins_px).norm(dim=1)
    gained = resolution < state.best_resolution_angstrom - 1e-6
    best = min(resolution, state.best_resolution_angstrom)
    no_gain = 0 if gained else state.no_gain + 1
    record = {
        "iteration": state.iteration + 1,
        "resolution_angstrom": round(resolution, 3),
        "angular_step_deg": state.sampling.step_deg,
        "local_search": state.sampling.local,
        "origin_step_px": state.sampling.origin_step_px,
        "estep_max_shell": max_shell,
        "median_angle_change_deg": round(float(moved.median()), 3),
        "median_origin_change_px": round(float(shifted.median()), 3),
        "mean_max_probability": round(float(poses.max_probability.mean()), 4),
        "mean_significant_poses": round(float(poses.n_significant.double().mean()), 2),
        "log_likelihood": float(poses.log_likelihood.sum()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    sampling = _next_sampling(state, resolution, settings)
    needed = _needed_step_deg(resolution, settings)
    converged = (
        sampling == state.sampling
        and (state.sampling.step_deg <= needed or state.sampling.order >= settings.max_order)
        and no_gain >= 2
    )
    new = RefineState(
        iteration=state.iteration + 1,
        references=regularised * mask,
        sigma2=sigma2,
        resolution_angstrom=resolution,
        best_resolution_angstrom=best,
        no_gain=no_gain,
        sampling=sampling,
        poses=poses,
        fsc=fsc,
        history=(*state.history, record),
        converged=converged,
    )
    return new, (list(joined), accs)


def auto_refine(
    reference: torch.Tensor,
    batches: Batches,
    *,
    n_particles: int,
    ctf: CTFParams | None,
    labels: torch.Tensor,
    settings: RefineSettings,
    state: RefineState | None = None,
    on_iteration: Callable[[RefineState], None] | None = None,
    progress: Callable[[int], None] | None = None,
    estep: EStep | None = None,
) -> RefineResult:
    """Refine until convergence, then a final iteration to Nyquist that joins the halves.

    Parameters
    ----------
    reference : Tensor, (N, N, N)
        Initial reference on the particles' box and pixel size.
    batches : callable
        See :func:`refine_iteration`.
    n_particles : int
    ctf : CTFParams (n,), optional
    labels : Tensor, (n,)
        Half sets (1, 2) — e.g. :func:`cryoglass.reconstruct.split_halves`.
    settings : RefineSettings
    state : RefineState, optional
        Resume from this state (a finished iteration).
    on_iteration : callable, optional
        Called with the state after every iteration (progress lines, checkpoints).
    progress : callable, optional
        Called with the number of images done within an iteration.
    estep : callable, optional
        See :func:`refine_iteration`.

    Returns
    -------
    RefineResult
    """
    if state is None:
        state = initial_state(reference, n_particles, settings)
    while not state.converged and state.iteration < settings.max_iterations:
        state, _ = refine_iteration(
            state,
            batches,
            ctf=ctf,
            labels=labels,
            settings=settings,
            progress=progress,
            estep=estep,
        )
        if on_iteration is not None:
            on_iteration(state)
    state, (accs, separate) = refine_iteration(
        state,
        batches,
        ctf=ctf,
        labels=labels,
        settings=settings,
        final=True,
        progress=progress,
        estep=estep,
    )
    if on_iteration is not None:
        on_iteration(state)
    size = accs[0].size
    mask = _mask(size, settings, accs[0].data.device)
    halves = torch.stack([finalize(a, regularisation="constant", mask=None) for a in accs])
    fsc = fourier_shell_correlation((halves[0] * mask).double(), (halves[1] * mask).double())
    resolution = float(
        resolution_at_threshold(
            fsc, threshold=0.143, box_size=size, pixel_size_angstrom=settings.pixel_size_angstrom
        )
    )
    both = merge(*separate)
    full = finalize(both, regularisation=tau2_from_fsc(both, fsc, whole_map=True), mask=None)
    return RefineResult(state, halves, full, fsc, resolution)
