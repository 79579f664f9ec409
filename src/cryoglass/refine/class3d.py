r"""3D classification by maximum likelihood, as ``relion_refine --K K`` (RELION's Class3D).

The model is refinement's (:mod:`cryoglass.refine.likelihood`) with ``K`` references and a
class prior ``π_c`` (:mod:`cryoglass.refine.classes`); there are no half sets.  Iterations:

1. **first iteration** (``firstiter_cc``, RELION's ``--firstiter_cc``): the reference, low-passed
   to ``ini_high`` and masked, may be on another grey scale than the particles, so every
   particle is aligned to it by normalised cross-correlation (best pose only) and one map is
   reconstructed from all of them; low-passed to ``ini_high`` again, it becomes all ``K``
   references (now on the particles' scale).
2. **seeds** (the next iteration): all ``K`` references are still one map, so each particle is
   aligned to it (the full posterior over poses) and inserted into **one random class** (seeded:
   RELION's ``do_generate_seeds``).  The ``K`` maps then differ by their particles: the symmetry
   between the classes is broken, and further iterations make the differences grow where the
   data have them.
3. **classification** (the others): each particle's posterior over classes × poses, with the
   class priors (:func:`~cryoglass.refine.classes.align_batch_classes`); its significant
   (class, pose) pairs are inserted into their classes' sums with their weights, so a particle
   between two classes contributes to both.

M-step per class ``c`` (RELION's ``BackProjector::reconstruct`` with ``do_map``)
    .. math:: \hat V_c(\mathbf p) = \frac{D_c(\mathbf p)}
              {W_c(\mathbf p) + 1/(T\,\tau^2_c(|\mathbf p|))},
              \qquad \tau^2_c = p^3\,\frac{\langle |\hat V^{\text{ref}}_c|^2 \rangle}{\sigma^2}

    where ``D_c = Σ w C e^{−2πik·o} X``, ``W_c = Σ w C²`` (``w`` the posterior weights,
    :func:`cryoglass.refine.align.insert_batch`) and ``τ²_c`` is the power spectrum of the class's
    current reference (its **own** signal estimate: without half sets there is no FSC), divided
    by the noise power ``σ²`` because our sums are not divided by ``σ²`` (RELION's are) — the
    same Wiener filter.  ``p³`` (``p`` the padding) is RELION's ``oversampling_correction``: a
    padded voxel gets ``1/p³`` of the weight of a voxel of the final map, whose Fourier
    coefficients average ``p³`` padded ones.  ``T`` is ``tau2_fudge`` (RELION's
    ``--tau2_fudge``, 4 for Class3D).  Beyond the reference's low-pass its power is small (only
    what the solvent mask spreads there) but not zero, so those shells open gradually, where
    the data hold signal: the prior's weight there shrinks geometrically from one iteration to
    the next, while pure-noise shells stay suppressed (for ``T ≤ 4`` the noise power is not a
    stable fixed point of this update).  Shells with no power at all get RELION's ``τ² = 0``
    rule (its floor of 1/1000 of the shell's mean weight).  Data are inserted only up to the
    E-step's shell (RELION's ``current_size``), and the maps are masked with a soft sphere of
    the particle diameter (solvent flattening).

Resolution per class (RELION's ``data_vs_prior``)
    ``SSNR_c(shell) = T τ²_c ⟨W_c⟩_shell`` (``= T p³ ⟨|V̂|²⟩⟨W_c⟩/σ²``); the class resolution
    is the last shell before it drops below 1.  The E-step uses the shells up to the best
    class's resolution plus a margin.

Noise, priors
    ``σ²(shell)`` is the expected residual power (all classes and poses, their weights);
    ``π_c`` the mean class posterior.  The first iteration (cross-correlation) takes the mean
    image power per shell instead.

Differences from RELION: the sampling is fixed (no auto-sampling; RELION Class3D's default
too) with RELION's oversampling pattern of :mod:`cryoglass.refine.align`; no orientational
prior per class (``pdf_direction``); no per-particle scale or norm correction; the seeds are a
balanced random split (RELION: a random class per particle).

References
----------
Scheres, S. H. W. (2012) RELION: implementation of a Bayesian approach to cryo-EM structure
determination. J. Struct. Biol. 180:519-530. https://doi.org/10.1016/j.jsb.2012.09.006

Scheres, S. H. W. (2016) Processing of structurally heterogeneous cryo-EM data in RELION.
Methods Enzymol. 579:125-157. https://doi.org/10.1016/bs.mie.2016.04.012
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.filters import lowpass
from cryoglass.fourier.radial import radial_power_spectrum
from cryoglass.projection.fourier_slice import prepare_volume_fourier, slice_frequencies
from cryoglass.reconstruct.backproject import ctf_slice_values, image_slice_values
from cryoglass.reconstruct.fourier_inversion import (
    Accumulator,
    empty_accumulator,
    finalize,
    merge,
    shell_mean_weight,
)
from cryoglass.refine.align import (
    Sampling,
    align_batch,
    global_table,
    insert_batch,
    noise_power_sums,
)
from cryoglass.refine.auto import Poses
from cryoglass.refine.classes import ClassAlignment, align_batch_classes, class_table, with_classes
from cryoglass.refine.likelihood import band
from cryoglass.refine.poses import global_rotations
from cryoglass.validate.masks import soft_sphere_mask

__all__ = [
    "Class3DContext",
    "Class3DSettings",
    "Class3DState",
    "Class3DSums",
    "check_class3d_inputs",
    "class3d_context",
    "class3d_estep",
    "class3d_iteration",
    "class3d_mstep",
    "classify_3d",
    "initial_class3d_state",
    "iteration_kind",
    "merge_class3d_sums",
    "reference_tau2",
    "seed_classes",
]

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
#: An iteration's whole E-step done elsewhere (a Dask cluster): state → (merged sums, the
#: per-particle table of :func:`class3d_estep`, concatenated).
EStep = Callable[["Class3DState"], tuple["Class3DSums", dict[str, torch.Tensor]]]

#: Fewest particles per class :func:`check_class3d_inputs` accepts.
MIN_PARTICLES_PER_CLASS = 10


@dataclass(frozen=True)
class Class3DSettings:
    """Options of a 3D classification (RELION's names in brackets).

    Attributes
    ----------
    pixel_size_angstrom : float
    particle_diameter_angstrom : float
        Diameter of the soft spherical solvent mask [Å] (``--particle_diameter``).
    n_classes : int
        ``K`` (``--K``).
    symmetry : str
        Point group (``--sym``).
    ini_high_angstrom : float
        The reference is low-passed to this resolution (``--ini_high``).
    order : int
        HEALPix order of the final angular step ``60°/2^order`` (3 = 7.5°, searched with a
        coarse pass at 15°: RELION's ``--healpix_order 2 --oversampling 1``).
    offset_range_px, offset_step_px : float
        Origin search [pixels] (``--offset_range``, ``--offset_step``).
    tau2_fudge : float
        ``T`` (``--tau2_fudge``): larger trusts the data more.
    firstiter_cc : bool
        First iteration by cross-correlation (``--firstiter_cc``).
    mask_edge_px : float
        Cosine edge of the solvent mask [pixels] (``--width_mask_edge``).
    pad : int
        Padding of the reconstructions (``--pad``).
    extra_shells : int, optional
        Shells beyond the resolution used by the E-step (default ``max(4, N/10)``).
    keep : int
        Significant (class, pose) pairs inserted per particle, at most.
    top : int
        Coarse rotations refined per class.
    seed : int
        Seed of the random classes of the seeding iteration (``--random_seed``).
    """

    pixel_size_angstrom: float
    particle_diameter_angstrom: float
    n_classes: int
    symmetry: str = "C1"
    ini_high_angstrom: float = 40.0
    order: int = 3
    offset_range_px: float = 5.0
    offset_step_px: float = 1.0
    tau2_fudge: float = 4.0
    firstiter_cc: bool = True
    mask_edge_px: float = 5.0
    pad: int = 2
    extra_shells: int | None = None
    keep: int = 8
    top: int = 4
    seed: int = 0

    @property
    def sampling(self) -> Sampling:
        """What every iteration searches."""
        return Sampling(
            order=self.order,
            origin_range_px=self.offset_range_px,
            origin_step_px=self.offset_step_px,
            keep=self.keep,
            top=self.top,
        )


@dataclass(frozen=True, eq=False)
class Class3DState:
    """Where a classification stands after an iteration (everything the next one needs).

    Attributes
    ----------
    iteration : int
        Iterations done (0: the initial state).
    references : Tensor, (K, N, N, N)
        The class maps (masked), real space.
    sigma2 : Tensor, (N//2 + 1,)
        Noise power per shell.
    class_prior : Tensor, (K,)
        ``π_c`` (RELION's ``rlnClassDistribution``).
    resolution_angstrom : Tensor, (K,), float64
        Each class's resolution (SSNR = 1).
    ssnr : Tensor, (K, N//2 + 1), float64
        Each class's ``data_vs_prior``.
    poses : Poses
        Each particle's best pose.
    classes : Tensor, (n,), int64
        Each particle's class (0-based; the class of its best pose), −1 before the seeds.
    history : tuple of dict
        One record per iteration.
    """

    iteration: int
    references: torch.Tensor
    sigma2: torch.Tensor
    class_prior: torch.Tensor
    resolution_angstrom: torch.Tensor
    ssnr: torch.Tensor
    poses: Poses
    classes: torch.Tensor
    history: tuple[dict, ...] = field(default=())

    @property
    def n_classes(self) -> int:
        return self.references.shape[0]


@dataclass(frozen=True, eq=False)
class Class3DSums:
    """The E-step's sums over some particles (they add: :func:`merge_class3d_sums`).

    Attributes
    ----------
    accumulators : tuple of K Accumulator
        Each class's weighted back-projection sums (one in a cross-correlation iteration).
    noise : Tensor, (N//2 + 1,), float64
        ``Σ`` expected residual power per shell.
    count : int
        Particles in the sums.
    class_weight : Tensor, (K,), float64
        ``Σ_i P(c | X_i)``.
    log_likelihood : float
        ``Σ_i`` of the particles' log-likelihoods (``rlnLogLikeliContribution``).
    """

    accumulators: tuple[Accumulator, ...]
    noise: torch.Tensor
    count: int
    class_weight: torch.Tensor
    log_likelihood: float


def check_class3d_inputs(n_particles: int, size: int, settings: Class3DSettings) -> None:
    """Raise ``ValueError`` (one line) for a classification that cannot work.

    Examples
    --------
    >>> check_class3d_inputs(30, 32, Class3DSettings(1.0, 28.0, n_classes=4))
    Traceback (most recent call last):
    ...
    ValueError: 30 particles for 4 classes: need at least 10 per class (40)
    """
    k = settings.n_classes
    if k < 1:
        raise ValueError(f"the number of classes must be at least 1, got {k}")
    if n_particles < MIN_PARTICLES_PER_CLASS * k:
        raise ValueError(
            f"{n_particles} particles for {k} classes: need at least "
            f"{MIN_PARTICLES_PER_CLASS} per class ({MIN_PARTICLES_PER_CLASS * k})"
        )
    box = size * settings.pixel_size_angstrom
    if not 0 < settings.particle_diameter_angstrom <= box:
        raise ValueError(
            f"particle diameter {settings.particle_diameter_angstrom:g} Å must be in (0, {box:g}]"
            " (the box)"
        )
    if settings.tau2_fudge <= 0:
        raise ValueError(f"tau2_fudge must be > 0, got {settings.tau2_fudge}")


def _mask(size: int, s: Class3DSettings, device) -> torch.Tensor:
    radius = min(s.particle_diameter_angstrom / (2 * s.pixel_size_angstrom), size / 2 - 1)
    return soft_sphere_mask(
        (size,) * 3, radius_px=radius, edge_width_px=s.mask_edge_px, device=device
    )


def _lowpassed(volume: torch.Tensor, s: Class3DSettings) -> torch.Tensor:
    v = lowpass(
        volume.float(),
        ndim=3,
        resolution_angstrom=s.ini_high_angstrom,
        pixel_size_angstrom=s.pixel_size_angstrom,
    )
    return v * _mask(volume.shape[-1], s, volume.device)


def initial_class3d_state(
    reference: torch.Tensor, n_particles: int, settings: Class3DSettings, *, device=None
) -> Class3DState:
    """Before the first iteration: the reference low-passed to ``ini_high`` (and masked) for
    every class, uniform priors.

    Parameters
    ----------
    reference : Tensor, (N, N, N)
        On the particles' box and pixel size.
    n_particles : int
    settings : Class3DSettings

    Returns
    -------
    Class3DState
    """
    size, k = reference.shape[-1], settings.n_classes
    device = device or reference.device
    ref = _lowpassed(reference.to(device, torch.float32), settings)
    n_shells = size // 2 + 1
    return Class3DState(
        iteration=0,
        references=ref.expand(k, -1, -1, -1).clone(),
        sigma2=torch.ones(n_shells, device=device),
        class_prior=torch.full((k,), 1.0 / k, device=device),
        resolution_angstrom=torch.full((k,), float(settings.ini_high_angstrom)),
        ssnr=torch.zeros(k, n_shells, dtype=torch.float64),
        poses=Poses.empty(n_particles),
        classes=torch.full((n_particles,), -1, dtype=torch.int64),
    )


def seed_classes(n_particles: int, n_classes: int, *, seed: int) -> torch.Tensor:
    """A balanced random class (0-based) for every particle: the seeding iteration's split.

    Examples
    --------
    >>> seed_classes(6, 3, seed=0).bincount().tolist()
    [2, 2, 2]
    """
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n_particles, generator=generator)
    classes = torch.empty(n_particles, dtype=torch.int64)
    classes[order] = torch.arange(n_particles) % n_classes
    return classes


def iteration_kind(iteration: int, settings: Class3DSettings) -> str:
    """``"cc"``, ``"seed"`` or ``"classify"`` for the 1-based ``iteration``."""
    if settings.firstiter_cc and iteration == 1:
        return "cc"
    if iteration == (2 if settings.firstiter_cc else 1) and settings.n_classes > 1:
        return "seed"
    return "classify"


def _max_shell(state: Class3DState, size: int, s: Class3DSettings) -> int:
    extra = s.extra_shells if s.extra_shells is not None else max(4, size // 10)
    best = float(state.resolution_angstrom.min())
    return int(min(size // 2, math.ceil(size * s.pixel_size_angstrom / best) + extra))


@dataclass(frozen=True, eq=False)
class _Geometry:
    b: object
    k_full: torch.Tensor
    shell_full: torch.Tensor
    weight_full: torch.Tensor
    inside: torch.Tensor  # (P,) slice points inserted (shell ≤ max_shell)


def _geometry(size: int, max_shell: int, device) -> _Geometry:
    b = band(size, max_shell, device=device)
    k_full, _ = slice_frequencies(size, device=device, dtype=torch.float32)
    shell_full = torch.floor(k_full.double().norm(dim=1) + 0.5).long()
    weight_full = torch.ones(k_full.shape[0], device=device)
    weight_full[(k_full[:, 0] == 0) | ((size % 2 == 0) & (k_full[:, 0] == size // 2))] = 0.5
    return _Geometry(b, k_full, shell_full, weight_full, shell_full <= max_shell)


@dataclass(frozen=True, eq=False)
class Class3DContext:
    """What every batch of an iteration's E-step shares (made once per iteration, or per chunk).

    Attributes
    ----------
    iteration : int
        The iteration (1-based) this E-step belongs to.
    kind : str
        ``"cc"``, ``"seed"`` or ``"classify"`` (:func:`iteration_kind`).
    references : list of VolumeFourier
        The class maps ready for projection.
    table : ClassTable or GlobalTable
        Projections at the coarse rotations (all classes; the first only for cc/seed).
    sigma2 : Tensor, (N//2 + 1,)
    log_prior : Tensor, (K,)
    max_shell : int
        Largest shell of the E-step (and of the insertion).
    seeds : Tensor, (n,), int64
        The seeding iteration's classes.
    """

    iteration: int
    kind: str
    references: list
    table: object
    sigma2: torch.Tensor
    log_prior: torch.Tensor
    max_shell: int
    seeds: torch.Tensor
    geometry: _Geometry


def class3d_context(state: Class3DState, settings: Class3DSettings) -> Class3DContext:
    """Prepare the E-step of iteration ``state.iteration + 1``: projectors, coarse projections."""
    device = state.references.device
    size, k = state.references.shape[-1], state.n_classes
    kind = iteration_kind(state.iteration + 1, settings)
    max_shell = _max_shell(state, size, settings)
    geometry = _geometry(size, max_shell, device)
    used = k if kind == "classify" else 1  # cc and seed: all references are one map
    references = [prepare_volume_fourier(state.references[j]) for j in range(used)]
    rotations, _ = global_rotations(settings.order - 1, symmetry=settings.symmetry)
    rotations = rotations.to(device)
    if kind == "classify":
        table = class_table(references, rotations, geometry.b)
    else:
        table = global_table(references[0], rotations, geometry.b)
    n = state.poses.rotations.shape[0]
    return Class3DContext(
        iteration=state.iteration + 1,
        kind=kind,
        references=references,
        table=table,
        sigma2=state.sigma2,
        log_prior=torch.log(state.class_prior.to(device).clamp_min(0)),
        max_shell=max_shell,
        seeds=seed_classes(n, k, seed=settings.seed),
        geometry=geometry,
    )


def class3d_estep(
    context: Class3DContext,
    indices: torch.Tensor,
    images: torch.Tensor,
    *,
    ctf: CTFParams | None,
    settings: Class3DSettings,
) -> tuple[Class3DSums, dict[str, torch.Tensor]]:
    """The E-step of one iteration for a batch of particles: its sums and best poses.

    Parameters
    ----------
    context : Class3DContext
        From :func:`class3d_context` of the state being iterated.
    indices : Tensor, (B,), int64
        0-based particle numbers of the batch.
    images : Tensor, (B, N, N)
        Origin at ``N//2``.
    ctf : CTFParams (n,), optional
        Of all particles (indexed by ``indices``).
    settings : Class3DSettings

    Returns
    -------
    sums : Class3DSums
    particles : dict of Tensor
        ``indices``, ``rotations`` (B, 3, 3), ``origins_px`` (B, 2), ``classes`` (B,),
        ``max_probability``, ``n_significant``, ``log_likelihood``: each particle's best pose.
    """
    geometry, kind = context.geometry, context.kind
    device = geometry.k_full.device
    size = images.shape[-1]
    images = images.to(device, torch.float32)
    x = image_slice_values(images)
    c = torch.ones_like(x.real)
    if ctf is not None:
        c = ctf_slice_values(
            ctf[indices], size=size, pixel_size_angstrom=settings.pixel_size_angstrom, like=images
        )
    b, sampling, k = geometry.b, settings.sampling, settings.n_classes
    xb, cb = x[:, b.index], c[:, b.index]
    if kind == "classify":
        alignment = align_batch_classes(
            xb,
            cb,
            context.sigma2,
            context.references,
            b,
            sampling,
            table=context.table,
            log_prior=context.log_prior,
        )
    else:
        single = align_batch(
            xb,
            cb,
            context.sigma2,
            context.references[0],
            b,
            sampling,
            table=context.table,
            correlation=kind == "cc",
        )
        labels = context.seeds[indices.cpu()] if kind == "seed" else torch.zeros_like(indices)
        alignment = with_classes(single, labels, k)
    sums = _sums(x, c, alignment, context, settings, size)
    particles = {
        "indices": indices.cpu(),
        "rotations": alignment.rotations[:, 0].cpu(),
        "origins_px": alignment.origins_px[:, 0].cpu(),
        "classes": alignment.classes[:, 0].cpu(),
        "max_probability": alignment.max_probability.cpu().float(),
        "n_significant": alignment.n_significant.cpu(),
        "log_likelihood": alignment.log_likelihood.cpu(),
    }
    return sums, particles


def _sums(
    x: torch.Tensor,
    c: torch.Tensor,
    alignment: ClassAlignment,
    context: Class3DContext,
    settings: Class3DSettings,
    size: int,
) -> Class3DSums:
    """The M-step sums of a batch: each class's back-projection, the noise power, the weights."""
    geometry, kind, k = context.geometry, context.kind, settings.n_classes
    device = x.device
    inside = geometry.inside.to(c.dtype)
    x_in, c_in = x * inside, c * inside  # RELION's current_size: no data beyond the E-step
    accs = []
    noise = torch.zeros(size // 2 + 1, dtype=torch.float64, device=device)
    for j in range(1 if kind == "cc" else k):
        acc = empty_accumulator(size, pad=settings.pad, device=device)
        part = alignment.for_class(j)
        insert_batch(acc, x_in, c_in, part, geometry.k_full, symmetry=settings.symmetry)
        accs.append(acc)
        if kind != "cc":
            reference = context.references[j if kind == "classify" else 0]
            noise += noise_power_sums(
                x,
                c,
                reference,
                part,
                geometry.k_full,
                geometry.shell_full,
                geometry.weight_full,
                size // 2 + 1,
            )
    if kind == "cc":  # the reference is on another grey scale: the images' power
        power = (x.real.square() + x.imag.square()) * geometry.weight_full
        noise.index_add_(0, geometry.shell_full, power.sum(0).double())
        class_weight = torch.full((k,), x.shape[0] / k, dtype=torch.float64)
    else:
        class_weight = alignment.class_probability.sum(0).double().cpu()
    return Class3DSums(
        tuple(accs),
        noise.cpu(),
        int(x.shape[0]),
        class_weight,
        float(alignment.log_likelihood.sum()),
    )


def merge_class3d_sums(*parts: Class3DSums) -> Class3DSums:
    """Add the E-step sums of several batches (order-independent up to rounding)."""
    if not parts:
        raise ValueError("merge_class3d_sums needs at least one part")
    accs = tuple(
        merge(*(p.accumulators[j] for p in parts)) for j in range(len(parts[0].accumulators))
    )
    return Class3DSums(
        accs,
        sum((p.noise.cpu() for p in parts), torch.zeros_like(parts[0].noise.cpu())),
        sum(p.count for p in parts),
        sum((p.class_weight for p in parts), torch.zeros_like(parts[0].class_weight)),
        sum(p.log_likelihood for p in parts),
    )


def reference_tau2(
    reference: torch.Tensor,
    sigma2: torch.Tensor,
    acc: Accumulator,
    *,
    tau2_fudge: float,
) -> torch.Tensor:
    """``τ²`` per shell for :func:`cryoglass.reconstruct.finalize`: ``p³`` × power / σ².

    Parameters
    ----------
    reference : Tensor, (N, N, N)
        The class's current map (its 3D DFT power is its projections' power, unnormalised).
    sigma2 : Tensor, (N//2 + 1,)
        Noise power per image Fourier coefficient.
    acc : Accumulator
        The class's sums (their padding ``p``, and their weights for the empty-shell rule).
    tau2_fudge : float

    Returns
    -------
    Tensor, (N//2 + 1,), float64
        ``p³ ⟨|V̂|²⟩ / σ²`` (``p³``: RELION's ``oversampling_correction``, the weight of a
        final-map voxel over that of a padded one); in shells where the reference has no power
        at all, ``1000 / (T ⟨W⟩)`` (the
        term ``1/(Tτ²)`` is then RELION's floor of 1/1000 of the shell's mean weight).
    """
    size = reference.shape[-1]
    power, _ = radial_power_spectrum(reference.double(), ndim=3, pixel_size_angstrom=1.0)
    power = power * float(size) ** 3  # unnormalised DFT: ⟨|F|²⟩
    tau2 = acc.pad**3 * power / sigma2.double().to(power.device).clamp_min(1e-30)
    empty = power <= 1e-30 * float(power.max().clamp_min(1e-300))  # RELION: tau2 == 0
    floor = 1000.0 / (tau2_fudge * shell_mean_weight(acc).to(tau2.device).clamp_min(1e-30))
    return torch.where(empty, floor, tau2)


def _resolution(ssnr: torch.Tensor, size: int, pixel: float, max_shell: int) -> float:
    """Resolution [Å] of the last shell (from 1) before ``ssnr`` drops below 1."""
    last = 0
    for shell in range(1, min(max_shell, size // 2) + 1):
        if float(ssnr[shell]) < 1.0:
            break
        last = shell
    return size * pixel / max(last, 1)


def class3d_mstep(
    state: Class3DState,
    sums: Class3DSums,
    particles: dict[str, torch.Tensor],
    *,
    settings: Class3DSettings,
    seconds: float = 0.0,
) -> Class3DState:
    """The next state from an iteration's merged sums and every particle's best pose.

    Parameters
    ----------
    state : Class3DState
        The state the E-step used.
    sums : Class3DSums
        Of all particles.
    particles : dict of Tensor
        The E-step's per-particle results, concatenated (any order; ``indices`` says whose).
    settings : Class3DSettings
    seconds : float
        Time of the iteration (recorded in its history).

    Returns
    -------
    Class3DState
    """
    size, k = state.references.shape[-1], state.n_classes
    device = state.references.device
    kind = iteration_kind(state.iteration + 1, settings)
    max_shell = _max_shell(state, size, settings)
    mask = _mask(size, settings, device)
    points = torch.zeros(size // 2 + 2, dtype=torch.float64)
    geometry = _geometry(size, max_shell, "cpu")
    points.index_add_(
        0, geometry.shell_full.clamp_max(size // 2 + 1), geometry.weight_full.double()
    )
    sigma2 = (sums.noise / (sums.count * points[: size // 2 + 1]).clamp_min(1e-30)).float()
    sigma2 = sigma2.to(device)
    pixel = settings.pixel_size_angstrom
    if kind == "cc":
        single = finalize(sums.accumulators[0], regularisation="constant", mask=None)
        references = _lowpassed(single, settings).expand(k, -1, -1, -1).clone()
        prior = torch.full((k,), 1.0 / k, device=device)
        ssnr = torch.zeros(k, size // 2 + 1, dtype=torch.float64)
        resolution = torch.full((k,), float(settings.ini_high_angstrom), dtype=torch.float64)
    else:
        prior = (sums.class_weight / max(sums.count, 1)).float().to(device)
        maps, ssnr_rows, res = [], [], []
        for j in range(k):
            acc = sums.accumulators[j]
            if (
                float(prior[j]) <= 0 or float(acc.weight.sum()) <= 0
            ):  # an empty class: RELION zeroes it
                maps.append(torch.zeros_like(state.references[j]))
                ssnr_rows.append(torch.zeros(size // 2 + 1, dtype=torch.float64))
                res.append(size * pixel)
                continue
            tau2 = reference_tau2(
                state.references[j],
                sigma2,
                acc,
                tau2_fudge=settings.tau2_fudge,
            )
            ssnr_c = (settings.tau2_fudge * tau2 * shell_mean_weight(acc).to(tau2.device)).cpu()
            regularised = finalize(
                acc, regularisation=tau2, tau2_fudge=settings.tau2_fudge, mask=None
            )
            maps.append(regularised * mask)
            ssnr_rows.append(ssnr_c)
            res.append(_resolution(ssnr_c, size, pixel, max_shell))
        references = torch.stack(maps)
        ssnr = torch.stack(ssnr_rows)
        resolution = torch.tensor(res, dtype=torch.float64)
    poses, classes = _particle_table(state, particles)
    record = _record(state, kind, poses, classes, prior, resolution, sums, max_shell, seconds)
    return Class3DState(
        iteration=state.iteration + 1,
        references=references,
        sigma2=sigma2,
        class_prior=prior,
        resolution_angstrom=resolution,
        ssnr=ssnr,
        poses=poses,
        classes=classes,
        history=(*state.history, record),
    )


def _particle_table(state: Class3DState, particles: dict[str, torch.Tensor]):
    n = state.poses.rotations.shape[0]
    poses = Poses.empty(n)
    classes = torch.full((n,), -1, dtype=torch.int64)
    index = particles["indices"]
    poses.rotations[index] = particles["rotations"].float()
    poses.origins_px[index] = particles["origins_px"].float()
    poses.max_probability[index] = particles["max_probability"].float()
    poses.n_significant[index] = particles["n_significant"]
    poses.log_likelihood[index] = particles["log_likelihood"].double()
    classes[index] = particles["classes"]
    return poses, classes


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    trace = (a.transpose(1, 2) @ b).diagonal(dim1=1, dim2=2).sum(-1)
    return torch.rad2deg(torch.acos(((trace - 1) / 2).clamp(-1.0, 1.0)))


def _record(state, kind, poses, classes, prior, resolution, sums, max_shell, seconds) -> dict:
    changed = None
    if kind == "classify" and bool((state.classes >= 0).all()):
        changed = round(float((classes != state.classes).double().mean()), 4)
    moved = _angle_deg(state.poses.rotations, poses.rotations)
    return {
        "iteration": state.iteration + 1,
        "kind": kind,
        "class_distribution": [round(float(p), 4) for p in prior.cpu()],
        "resolution_angstrom": [round(float(r), 2) for r in resolution],
        "estep_max_shell": max_shell,
        "class_changes": changed,
        "median_angle_change_deg": round(float(moved.median()), 3) if state.iteration else None,
        "mean_max_probability": round(float(poses.max_probability.mean()), 4),
        "log_likelihood": sums.log_likelihood,
        "seconds": round(seconds, 2),
    }


def class3d_iteration(
    state: Class3DState,
    batches: Batches,
    *,
    ctf: CTFParams | None,
    settings: Class3DSettings,
    progress: Callable[[int], None] | None = None,
    estep: EStep | None = None,
) -> Class3DState:
    """One E-step over every particle and the M-step.

    Parameters
    ----------
    state : Class3DState
    batches : callable
        Returns an iterable of ``(indices, images)`` (0-based particle numbers (B,), images
        (B, N, N) with the origin at ``N//2``); called once per iteration.
    ctf : CTFParams (n,), optional
    settings : Class3DSettings
    progress : callable, optional
        Called with the number of images of each batch done.
    estep : callable, optional
        ``estep(state) -> (sums, particles)``: the whole E-step done elsewhere (a Dask cluster,
        :func:`cryoglass.distributed.commands.class3d_engine`) instead of over ``batches`` here;
        the sums of disjoint chunks add, so the M-step is the same.

    Returns
    -------
    Class3DState
    """
    started = time.perf_counter()
    if estep is not None:
        sums, merged = estep(state)
        return class3d_mstep(
            state, sums, merged, settings=settings, seconds=time.perf_counter() - started
        )
    context = class3d_context(state, settings)
    parts, tables = [], []
    for indices, images in batches():
        sums, particles = class3d_estep(context, indices, images, ctf=ctf, settings=settings)
        parts.append(sums)
        tables.append(particles)
        if len(parts) > 1:  # keep one running total
            parts = [merge_class3d_sums(*parts)]
        if progress is not None:
            progress(int(indices.numel()))
    if not parts:
        raise ValueError("no particles to classify")
    merged = {key: torch.cat([t[key] for t in tables]) for key in tables[0]}
    return class3d_mstep(
        state, parts[0], merged, settings=settings, seconds=time.perf_counter() - started
    )


def classify_3d(
    reference: torch.Tensor,
    batches: Batches,
    *,
    n_particles: int,
    ctf: CTFParams | None,
    settings: Class3DSettings,
    iterations: int,
    state: Class3DState | None = None,
    on_iteration: Callable[[Class3DState], None] | None = None,
    progress: Callable[[int], None] | None = None,
    estep: EStep | None = None,
) -> Class3DState:
    """Run (or continue) a 3D classification to ``iterations`` iterations.

    Parameters
    ----------
    reference : Tensor, (N, N, N)
        Initial reference on the particles' box and pixel size.
    batches : callable
        See :func:`class3d_iteration`.
    n_particles : int
    ctf : CTFParams (n,), optional
    settings : Class3DSettings
    iterations : int
        Total iterations (RELION's ``--iter``).
    state : Class3DState, optional
        Resume from this state.
    on_iteration : callable, optional
        Called with the state after every iteration (progress lines, checkpoints).
    progress : callable, optional
        Called with the number of images done within an iteration.
    estep : callable, optional
        See :func:`class3d_iteration` (each iteration's E-step on a Dask cluster).

    Returns
    -------
    Class3DState
        After the last iteration; ``references`` are the class maps and ``classes`` each
        particle's class.
    """
    check_class3d_inputs(n_particles, reference.shape[-1], settings)
    if state is None:
        state = initial_class3d_state(reference, n_particles, settings)
    while state.iteration < iterations:
        state = class3d_iteration(
            state, batches, ctf=ctf, settings=settings, progress=progress, estep=estep
        )
        if on_iteration is not None:
            on_iteration(state)
    return state
