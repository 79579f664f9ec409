r"""An initial model from particles alone: stochastic gradient descent on the MAP objective.

Why SGD, and which one
----------------------
Without a reference, expectation–maximisation from a random map converges to whatever local
optimum is nearest; Punjani et al. (2017) showed that *stochastic* gradient steps on small
random minibatches — noisy, cheap, low resolution first — escape those and find the right
structure from a random start.  RELION 3.1 implements the same update (``relion_refine --sgd
--denovo_3dref``), and this module follows RELION's form of it, because RELION is the reference
here and because its gradient is built from the pieces cryoglass already has:

* the E-step of a minibatch is refinement's (:func:`cryoglass.refine.align.align_batch`, or
  :func:`~cryoglass.refine.classes.align_batch_classes` for ``K > 1``): the posterior over poses
  (a coarse global search, HEALPix order chosen for the current resolution) given the current
  map ``V``;
* the gradient of the log-posterior with respect to ``V̂`` is the back-projection of the
  posterior-weighted residuals, ``Σ_i Σ_poses w C_i (X_i e^{−2πik·o/N} − C_i P_A)``, and
  preconditioned by the diagonal of the Hessian (the reconstruction weights plus the prior),
  as Punjani et al. do,

  .. math:: G(\mathbf p) = \frac{\sum w\,C\,(X e^{-2\pi i\mathbf k\cdot\mathbf o/N} - C\,P_A)}
                                {\sum w\,C^2 + 1/(T\tau^2)}

  (:func:`cryoglass.reconstruct.finalize` of the residuals' sums), with ``τ²`` from the power
  spectrum of ``V`` (:func:`cryoglass.refine.class3d.reference_tau2`, RELION's rule);
* the update with momentum ``μ`` and step ``η`` (RELION's ``--mu 0.9``, ``--sgd_stepsize 0.5``)

  .. math:: \Delta V \leftarrow \mu\,\Delta V + (1-\mu)\,\eta\,G, \qquad V \leftarrow V + \Delta V,

  then the soft spherical mask of the particle diameter and, during the first phase, positivity
  (RELION's ``sgd_ini_iter``).

Schedule (RELION's three phases, as fractions of ``iterations``): the first sixth at
``initial_resolution`` with ``initial_batch`` particles, then a linear ramp of the resolution
(E-step and gradient limited to its shells) and of the minibatch size, the last sixth at
``final_resolution`` with ``final_batch``.  The noise power ``σ²`` and the class priors are
running averages (factor ``μ``) of the minibatches' estimates.  The start (``--denovo_3dref``)
is a reconstruction of a first minibatch at random poses, low-passed to the initial resolution.

Differences from RELION: the CTF is used (RELION 3.1 leaves it out of SGD for licensing
reasons); several classes start from different random minibatches (RELION anneals identical
references apart).

**Projections cannot determine the hand**: a map and its mirror image have mirrored
projections, so the result is one of the two hands at random.  Check it elsewhere (a known
structure, tilt pairs, α-helices at high resolution).

References
----------
Punjani, A., Rubinstein, J. L., Fleet, D. J. & Brubaker, M. A. (2017) cryoSPARC: algorithms for
rapid unsupervised cryo-EM structure determination. Nat. Methods 14:290-296.
https://doi.org/10.1038/nmeth.4169

Zivanov, J. et al. (2018) New tools for automated high-resolution cryo-EM structure
determination in RELION-3. eLife 7:e42166. https://doi.org/10.7554/eLife.42166
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.filters import lowpass
from cryoglass.geometry import random_rotations
from cryoglass.geometry.so3_grid import angular_step_for_order
from cryoglass.projection.fourier_slice import (
    VolumeFourier,
    prepare_volume_fourier,
    slice_frequencies,
    slice_values,
)
from cryoglass.reconstruct.backproject import ctf_slice_values, image_slice_values
from cryoglass.reconstruct.fourier_inversion import (
    Accumulator,
    accumulate_values,
    empty_accumulator,
    finalize,
)
from cryoglass.refine.align import (
    Alignment,
    Sampling,
    _poses,
    align_batch,
    global_table,
    noise_power_sums,
)
from cryoglass.refine.class3d import reference_tau2
from cryoglass.refine.classes import align_batch_classes, class_table
from cryoglass.refine.likelihood import band
from cryoglass.refine.poses import global_rotations
from cryoglass.validate.masks import soft_sphere_mask

__all__ = [
    "AbinitioSettings",
    "AbinitioState",
    "abinitio",
    "abinitio_step",
    "check_abinitio_inputs",
    "initial_abinitio_state",
    "insert_residuals",
    "schedule",
]

#: Fewest particles :func:`check_abinitio_inputs` accepts, in all and per class.
MIN_PARTICLES, MIN_PARTICLES_PER_CLASS = 100, 50

#: Reads the images of some particles: 0-based indices (B,) → images (B, N, N).
ReadImages = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AbinitioSettings:
    """Options of an ab-initio run (RELION's names in brackets).

    Attributes
    ----------
    pixel_size_angstrom : float
    particle_diameter_angstrom : float
        Soft spherical mask [Å] (``--particle_diameter``).
    n_classes : int
        Maps made at once (``--K``).
    symmetry : str
        Point group (``--sym``).
    iterations : int
        Minibatch steps in all (RELION: ``sgd_ini_iter + sgd_inbetween_iter + sgd_fin_iter``).
    initial_resolution_angstrom, final_resolution_angstrom : float
        Resolution of the first and last phases (``--sgd_ini_resol 35``, ``--sgd_fin_resol 15``).
    initial_batch, final_batch : int
        Minibatch sizes (``--sgd_ini_subset 100``, ``--sgd_fin_subset 500``).
    step_size : float
        ``η`` (``--sgd_stepsize``).
    momentum : float
        ``μ`` (``--mu``).
    tau2_fudge : float
        ``T`` (``--tau2_fudge``).
    max_order : int
        Finest HEALPix order of the fine pass (3: 7.5°).
    offset_range_px, offset_step_px : float
        Origin search [pixels].
    mask_edge_px : float
    pad : int
    keep, top : int
        Significant poses inserted per particle; coarse rotations refined.
    seed : int
        Seed of the minibatches and of the random start.
    """

    pixel_size_angstrom: float
    particle_diameter_angstrom: float
    n_classes: int = 1
    symmetry: str = "C1"
    iterations: int = 120
    initial_resolution_angstrom: float = 35.0
    final_resolution_angstrom: float = 15.0
    initial_batch: int = 100
    final_batch: int = 300
    step_size: float = 0.5
    momentum: float = 0.9
    tau2_fudge: float = 4.0
    max_order: int = 3
    offset_range_px: float = 4.0
    offset_step_px: float = 2.0
    mask_edge_px: float = 3.0
    pad: int = 2
    keep: int = 8
    top: int = 4
    seed: int = 0


@dataclass(frozen=True, eq=False)
class AbinitioState:
    """Where an ab-initio run stands.

    Attributes
    ----------
    iteration : int
        Minibatch steps done.
    references : Tensor, (K, N, N, N)
    velocity : Tensor, (K, N, N, N)
        ``ΔV``, the momentum term.
    sigma2 : Tensor, (N//2 + 1,)
    class_prior : Tensor, (K,)
    history : tuple of dict
    """

    iteration: int
    references: torch.Tensor
    velocity: torch.Tensor
    sigma2: torch.Tensor
    class_prior: torch.Tensor
    history: tuple[dict, ...] = field(default=())


def check_abinitio_inputs(n_particles: int, size: int, settings: AbinitioSettings) -> None:
    """Raise ``ValueError`` (one line) for a run that cannot work.

    Examples
    --------
    >>> check_abinitio_inputs(50, 32, AbinitioSettings(1.0, 28.0, n_classes=1))
    Traceback (most recent call last):
    ...
    ValueError: 50 particles: ab initio needs at least 100 (50 per class, 100 in all)
    """
    k = settings.n_classes
    if k < 1:
        raise ValueError(f"the number of classes must be at least 1, got {k}")
    need = max(MIN_PARTICLES, MIN_PARTICLES_PER_CLASS * k)
    if n_particles < need:
        raise ValueError(
            f"{n_particles} particles: ab initio needs at least {need} "
            f"({MIN_PARTICLES_PER_CLASS} per class, {MIN_PARTICLES} in all)"
        )
    box = size * settings.pixel_size_angstrom
    if not 0 < settings.particle_diameter_angstrom <= box:
        raise ValueError(
            f"particle diameter {settings.particle_diameter_angstrom:g} Å must be in (0, {box:g}]"
            " (the box)"
        )
    nyquist = 2 * settings.pixel_size_angstrom
    if settings.final_resolution_angstrom < nyquist:
        raise ValueError(
            f"final resolution {settings.final_resolution_angstrom:g} Å is beyond Nyquist "
            f"({nyquist:g} Å)"
        )
    if settings.initial_resolution_angstrom < settings.final_resolution_angstrom:
        raise ValueError("the initial resolution must be lower (more Å) than the final one")
    if settings.iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {settings.iterations}")


def schedule(iteration: int, settings: AbinitioSettings, size: int) -> tuple[float, int, int]:
    """(resolution [Å], minibatch size, HEALPix order) of the 0-based ``iteration``.

    Examples
    --------
    >>> s = AbinitioSettings(4.0, 150.0, iterations=60)
    >>> schedule(0, s, 48), schedule(59, s, 48)
    ((35.0, 100, 2), (15.0, 300, 3))
    """
    total = settings.iterations
    first = total // 6
    last = total - total // 6
    if iteration < first:
        frac = 0.0
    elif iteration >= last:
        frac = 1.0
    else:
        frac = (iteration - first) / max(last - first, 1)
    pixel = settings.pixel_size_angstrom
    low = size * pixel / settings.initial_resolution_angstrom
    high = size * pixel / settings.final_resolution_angstrom
    shell = max(1, round(low + frac * (high - low)))  # RELION ramps the shell linearly
    resolution = (
        min(max(size * pixel / shell, settings.final_resolution_angstrom),
            settings.initial_resolution_angstrom)
        if 0 < frac < 1
        else (
            settings.initial_resolution_angstrom
            if frac == 0
            else settings.final_resolution_angstrom
        )
    )  # fmt: skip
    batch = round(settings.initial_batch + frac * (settings.final_batch - settings.initial_batch))
    needed = math.degrees(resolution / settings.particle_diameter_angstrom)
    order = 2
    while order < settings.max_order and angular_step_for_order(order) > 2 * needed:
        order += 1
    return resolution, int(batch), order


def _mask(size: int, s: AbinitioSettings, device) -> torch.Tensor:
    radius = min(s.particle_diameter_angstrom / (2 * s.pixel_size_angstrom), size / 2 - 1)
    return soft_sphere_mask(
        (size,) * 3, radius_px=radius, edge_width_px=s.mask_edge_px, device=device
    )


def _ctf_values(ctf, indices, size, pixel, like):
    if ctf is None:
        points = slice_frequencies(size)[0].shape[0]
        return torch.ones(like.shape[0], points, device=like.device)
    return ctf_slice_values(ctf[indices], size=size, pixel_size_angstrom=pixel, like=like)


def initial_abinitio_state(
    read: ReadImages,
    *,
    n_particles: int,
    ctf: CTFParams | None,
    settings: AbinitioSettings,
    size: int,
    device=None,
) -> AbinitioState:
    """The random start: each class a reconstruction of its own minibatch at random poses.

    Parameters
    ----------
    read : callable
        0-based indices (B,) → images (B, N, N).
    n_particles : int
    ctf : CTFParams (n,), optional
    settings : AbinitioSettings
    size : int
        Box ``N``.

    Returns
    -------
    AbinitioState
        Maps low-passed to the initial resolution and masked; ``σ²`` the mean image power
        per shell (an over-estimate: soft posteriors at first).
    """
    device = torch.device(device or "cpu")
    generator = torch.Generator().manual_seed(settings.seed)
    k = settings.n_classes
    batch = min(settings.initial_batch, n_particles // k)
    order = torch.randperm(n_particles, generator=generator)
    k_full, _ = slice_frequencies(size, device=device, dtype=torch.float32)
    shell_full = torch.floor(k_full.double().norm(dim=1) + 0.5).long()
    mask = _mask(size, settings, device)
    maps, power_sum, count = [], torch.zeros(size // 2 + 1, dtype=torch.float64), 0
    for c in range(k):
        indices = order[c * batch : (c + 1) * batch].sort().values
        images = read(indices).to(device, torch.float32)
        x = image_slice_values(images)
        cv = _ctf_values(ctf, indices, size, settings.pixel_size_angstrom, images)
        rotations = random_rotations(batch, generator=generator, dtype=torch.float32)
        acc = empty_accumulator(size, pad=settings.pad, device=device)
        accumulate_values(acc, x * cv, rotations.to(device), ctf_squared=cv.square(), inplace=True)
        volume = finalize(acc, regularisation="constant", wiener_constant=0.1, mask=None)
        volume = lowpass(
            volume,
            ndim=3,
            resolution_angstrom=settings.initial_resolution_angstrom,
            pixel_size_angstrom=settings.pixel_size_angstrom,
        )
        maps.append(volume.clamp_min(0) * mask)
        power = x.real.square() + x.imag.square()
        power_sum.index_add_(0, shell_full.cpu(), power.sum(0).double().cpu())
        count += batch
    points = torch.bincount(shell_full.cpu(), minlength=size // 2 + 1).double()
    sigma2 = (power_sum / (count * points.clamp_min(1)))[: size // 2 + 1].float().to(device)
    references = torch.stack(maps)
    return AbinitioState(
        iteration=0,
        references=references,
        velocity=torch.zeros_like(references),
        sigma2=sigma2,
        class_prior=torch.full((k,), 1.0 / k, device=device),
    )


def insert_residuals(
    acc: Accumulator,
    x_full: torch.Tensor,
    ctf_full: torch.Tensor,
    alignment: Alignment,
    reference: VolumeFourier,
    k_full: torch.Tensor,
    *,
    symmetry: str = "C1",
) -> Accumulator:
    """Add ``w C (X e^{−2πik·o/N} − C P_A)`` and ``w C²`` at each significant pose (in place).

    The finalised sums are the preconditioned gradient ``G`` of the module docstring.

    Parameters
    ----------
    acc : Accumulator
    x_full : Tensor, (B, P), complex
        Image values at the slice frequencies.
    ctf_full : Tensor, (B, P), real
        CTF (zero beyond the shells to update).
    alignment : Alignment
    reference : VolumeFourier
        The map the residuals are taken against.
    k_full : Tensor, (P, 2)
    symmetry : str

    Returns
    -------
    Accumulator
    """
    image, rotations, origins, weights = _poses(alignment)
    p = slice_values(reference, rotations.to(reference.table.real.dtype))
    angle = (-2 * math.pi / acc.size) * (origins.to(k_full.dtype) @ k_full.T)
    c = ctf_full[image]
    residual = x_full[image] * torch.polar(torch.ones_like(angle), angle) - c * p
    return accumulate_values(
        acc,
        residual * c * weights[:, None],
        rotations,
        ctf_squared=c.square() * weights[:, None],
        symmetry=symmetry,
        count=x_full.shape[0],
        inplace=True,
    )


def abinitio_step(
    state: AbinitioState,
    indices: torch.Tensor,
    images: torch.Tensor,
    *,
    ctf: CTFParams | None,
    settings: AbinitioSettings,
) -> AbinitioState:
    """One minibatch: E-step, preconditioned gradient, momentum update, mask (and positivity).

    Parameters
    ----------
    state : AbinitioState
    indices : Tensor, (B,)
        0-based particle numbers of the minibatch.
    images : Tensor, (B, N, N)
    ctf : CTFParams (n,), optional
    settings : AbinitioSettings

    Returns
    -------
    AbinitioState
    """
    started = time.perf_counter()
    size, k = state.references.shape[-1], state.references.shape[0]
    device = state.references.device
    resolution, _, order = schedule(state.iteration, settings, size)
    max_shell = min(size // 2, int(math.floor(size * settings.pixel_size_angstrom / resolution)))
    b = band(size, max_shell, device=device)
    k_full, _ = slice_frequencies(size, device=device, dtype=torch.float32)
    shell_full = torch.floor(k_full.double().norm(dim=1) + 0.5).long()
    weight_full = torch.ones(k_full.shape[0], device=device)
    weight_full[(k_full[:, 0] == 0) | ((size % 2 == 0) & (k_full[:, 0] == size // 2))] = 0.5
    images = images.to(device, torch.float32)
    x = image_slice_values(images)
    c = _ctf_values(ctf, indices, size, settings.pixel_size_angstrom, images)
    sampling = Sampling(
        order=order,
        origin_range_px=settings.offset_range_px,
        origin_step_px=settings.offset_step_px,
        keep=settings.keep,
        top=settings.top,
    )
    refs = [prepare_volume_fourier(state.references[j]) for j in range(k)]
    rotations, _ = global_rotations(order - 1, symmetry=settings.symmetry)
    rotations = rotations.to(device)
    xb, cb = x[:, b.index], c[:, b.index]
    if k == 1:
        alignment = align_batch(
            xb, cb, state.sigma2, refs[0], b, sampling, table=global_table(refs[0], rotations, b)
        )
        parts = [alignment]
        class_weight = torch.ones(1, dtype=torch.float64)
        classes_alignment = None
    else:
        classes_alignment = align_batch_classes(
            xb,
            cb,
            state.sigma2,
            refs,
            b,
            sampling,
            table=class_table(refs, rotations, b),
            log_prior=torch.log(state.class_prior.clamp_min(1e-30)),
        )
        parts = [classes_alignment.for_class(j) for j in range(k)]
        class_weight = classes_alignment.class_probability.mean(0).double().cpu()
        alignment = classes_alignment
    inside = (shell_full <= max_shell).to(c.dtype)
    mask = _mask(size, settings, device)
    positivity = state.iteration < settings.iterations // 6
    noise = torch.zeros(size // 2 + 1, dtype=torch.float64, device=device)
    references, velocity = [], []
    for j in range(k):
        acc = empty_accumulator(size, pad=settings.pad, device=device)
        insert_residuals(acc, x, c * inside, parts[j], refs[j], k_full, symmetry=settings.symmetry)
        noise += noise_power_sums(
            x, c, refs[j], parts[j], k_full, shell_full, weight_full, size // 2 + 1
        )
        tau2 = reference_tau2(
            state.references[j],
            state.sigma2,
            acc,
            tau2_fudge=settings.tau2_fudge,
        )
        gradient = finalize(acc, regularisation=tau2, tau2_fudge=settings.tau2_fudge, mask=None)
        dv = settings.momentum * state.velocity[j] + (
            1 - settings.momentum
        ) * settings.step_size * gradient.to(state.velocity.dtype)
        new = state.references[j] + dv
        if positivity:
            new = new.clamp_min(0)
        references.append(new * mask)
        velocity.append(dv)
    points = torch.zeros(size // 2 + 2, dtype=torch.float64, device=device)
    points.index_add_(0, shell_full.clamp_max(size // 2 + 1), weight_full.double())
    sigma2_batch = noise / (x.shape[0] * points[: size // 2 + 1]).clamp_min(1e-30)
    mu = settings.momentum
    sigma2 = mu * state.sigma2 + (1 - mu) * sigma2_batch.float()
    prior = mu * state.class_prior + (1 - mu) * class_weight.float().to(device)
    record = {
        "iteration": state.iteration + 1,
        "resolution_angstrom": round(resolution, 2),
        "batch": int(x.shape[0]),
        "angular_step_deg": angular_step_for_order(order),
        "mean_max_probability": round(float(alignment.max_probability.mean()), 4),
        "log_likelihood": float(alignment.log_likelihood.mean()),
        "class_distribution": [round(float(p), 4) for p in prior.cpu()],
        "seconds": round(time.perf_counter() - started, 3),
    }
    return AbinitioState(
        iteration=state.iteration + 1,
        references=torch.stack(references),
        velocity=torch.stack(velocity),
        sigma2=sigma2,
        class_prior=prior,
        history=(*state.history, record),
    )


def abinitio(
    read: ReadImages,
    *,
    n_particles: int,
    size: int,
    ctf: CTFParams | None,
    settings: AbinitioSettings,
    device=None,
    on_iteration: Callable[[AbinitioState], None] | None = None,
) -> AbinitioState:
    """Run the SGD from a random start; the last state's ``references`` are the maps.

    Parameters
    ----------
    read : callable
        0-based indices (B,) → images (B, N, N) (origin at ``N//2``).
    n_particles : int
    size : int
        Box ``N``.
    ctf : CTFParams (n,), optional
    settings : AbinitioSettings
    device : optional
    on_iteration : callable, optional
        Called with the state after every minibatch.

    Returns
    -------
    AbinitioState
        After ``settings.iterations`` steps, the maps low-passed to the final resolution.

    Examples
    --------
    See ``tests/unit/test_refine_abinitio.py`` (a simulated dataset without poses).
    """
    check_abinitio_inputs(n_particles, size, settings)
    state = initial_abinitio_state(
        read, n_particles=n_particles, ctf=ctf, settings=settings, size=size, device=device
    )
    generator = torch.Generator().manual_seed(settings.seed + 1)
    queue = torch.empty(0, dtype=torch.int64)
    while state.iteration < settings.iterations:
        _, batch, _ = schedule(state.iteration, settings, size)
        batch = min(batch, n_particles)
        if queue.numel() < batch:  # epochs in random order (the rest of one is dropped)
            queue = torch.randperm(n_particles, generator=generator)
        indices, queue = queue[:batch].sort().values, queue[batch:]
        state = abinitio_step(state, indices, read(indices), ctf=ctf, settings=settings)
        if on_iteration is not None:
            on_iteration(state)
    final = lowpass(
        state.references,
        ndim=3,
        resolution_angstrom=settings.final_resolution_angstrom,
        pixel_size_angstrom=settings.pixel_size_angstrom,
    )
    return AbinitioState(
        iteration=state.iteration,
        references=final,
        velocity=state.velocity,
        sigma2=state.sigma2,
        class_prior=state.class_prior,
        history=state.history,
    )
