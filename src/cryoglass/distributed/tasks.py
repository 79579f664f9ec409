r"""Chunk tasks: what one Dask worker computes for one chunk of particles.

Each task receives only small metadata — the chunk's particle set (file names, indices inside
the files, poses, CTF: a few numbers per particle) and the job's settings — opens the image
files itself (memory-mapped, :class:`cryoglass.io.ParticleStack`), reads its images batch by
batch, closes the files again (so the touched pages leave the worker's resident memory) and
returns partial sums as numpy arrays (:mod:`cryoglass.distributed.reduce`).

* :func:`reconstruct_chunk` — the direct-Fourier-inversion sums ``Σ CTF·F`` and ``Σ CTF²``
  of :func:`cryoglass.reconstruct.accumulate`, one accumulator per half set.
* :func:`simulate_chunk` — whole blocks of :func:`cryoglass.simulate.simulate_dataset`
  (seeded per block, so identical to the single-process dataset), written into their rows
  of the stack an :class:`cryoglass.io.MRCStackWriter` holds open.
* :func:`stack_sums_chunk` — ``Σ x`` and ``Σ x²`` of the images (mean/variance image), the
  cheapest out-of-core pass (used to check bounded memory).
* :func:`class2d_chunk` — the E-step sufficient statistics of 2D classification
  (:func:`cryoglass.classify.em2d.estep_statistics`) and the chunk's per-particle assignments.
* :func:`refine_chunk` — one 3D-refinement iteration's E-step and M-step sums of both half
  sets (:func:`cryoglass.refine.auto.align_and_insert`) and the chunk's best poses.
* :func:`class3d_chunk` — one 3D-classification iteration's sums per class
  (:func:`cryoglass.refine.class3d.class3d_estep`) and the chunk's best (class, pose).

Every task first calls :func:`cryoglass._allocator.tune_allocator` (once per process): Dask's
nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which on glibc also freezes the
``mmap`` threshold at 128 KiB, so that every tensor larger than that is a fresh ``mmap`` whose
pages are zero-filled on first touch (a reconstruct chunk ran 2.4× slower).  Tasks end with
:func:`cryoglass._allocator.trim_heap`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from cryoglass._allocator import trim_heap, tune_allocator
from cryoglass.distributed.reduce import PartialSums, accumulator_to_sums, class3d_to_sums

__all__ = [
    "Class2DTask",
    "Class3DTask",
    "ParticleChunk",
    "ReconstructSettings",
    "RefineTask",
    "SimulateSettings",
    "class2d_chunk",
    "class2d_initial_chunk",
    "class3d_chunk",
    "make_chunks",
    "reconstruct_chunk",
    "refine_chunk",
    "simulate_blocks",
    "simulate_chunk",
    "stack_sums_chunk",
    "trim_heap",
    "tune_allocator",
]


@dataclass(frozen=True, eq=False)
class ParticleChunk:
    """Particles ``start … start + len − 1`` of a set: the unit of work of one task.

    Attributes
    ----------
    chunk_id : int
        Position of the chunk in the job (checkpoints record done ids).
    start : int
        Index of the chunk's first particle in the full set.
    particles : cryoglass.io.ParticleSet
        The chunk's particles, with only the image files they use and without the STAR
        tables (small: it is pickled to the worker).
    labels : numpy.ndarray, int64, shape (len,)
        Group of each particle (half set 1/2 for reconstruct; 1 everywhere otherwise).
    """

    chunk_id: int
    start: int
    particles: object
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.particles)


def _compact(particles):
    """A particle set with only the image files it uses and no STAR tables."""
    used, file_index = torch.unique(particles.image_file_index, return_inverse=True)
    used = used.tolist()

    def keep(values: tuple) -> tuple:
        return tuple(values[i] for i in used) if values else values

    return dataclasses.replace(
        particles,
        image_files=keep(particles.image_files),
        image_file_names=keep(particles.image_file_names),
        image_search=keep(particles.image_search),
        image_file_index=file_index.reshape(-1).to(torch.int64),
        particles_table=None,
        optics_table=None,
    )


def make_chunks(particles, *, chunk_size: int, labels=None) -> list[ParticleChunk]:
    """Cut a :class:`cryoglass.io.ParticleSet` into consecutive chunks of ``chunk_size``.

    Parameters
    ----------
    particles : ParticleSet
    chunk_size : int
        Particles per chunk (the last one may be shorter).
    labels : Tensor or ndarray (N,), optional
        Group of each particle (default: all 1).

    Returns
    -------
    list of ParticleChunk
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = len(particles)
    labels = np.ones(n, np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    chunks = []
    for chunk_id, start in enumerate(range(0, n, chunk_size)):
        stop = min(start + chunk_size, n)
        subset = _compact(particles.subset(torch.arange(start, stop)))
        chunks.append(ParticleChunk(chunk_id, start, subset, labels[start:stop].copy()))
    return chunks


@dataclass(frozen=True)
class ReconstructSettings:
    """What every reconstruct task needs besides its particles.

    Attributes
    ----------
    box : int
        Image size ``N`` [px].
    pixel_size_angstrom : float
    groups : tuple of int
        Labels that get an accumulator (``(1,)``, or ``(1, 2)`` for half sets).
    ctf : bool
        CTF-weighted insertion.
    pad : int
    symmetry : str
    interpolation : str
    batch_size : int
        Images read and inserted at once inside a task (memory knob).
    """

    box: int
    pixel_size_angstrom: float
    groups: tuple[int, ...] = (1,)
    ctf: bool = True
    pad: int = 2
    symmetry: str = "C1"
    interpolation: str = "linear"
    batch_size: int = 256


def reconstruct_chunk(chunk: ParticleChunk, settings: ReconstructSettings) -> PartialSums:
    """Back-project one chunk: the partial sums of each group's accumulator.

    Parameters
    ----------
    chunk : ParticleChunk
        Particles with poses (and CTF when ``settings.ctf``); images read from their files.
    settings : ReconstructSettings

    Returns
    -------
    PartialSums
        ``"{g}/data"`` (complex), ``"{g}/weight"``, ``"{g}/count"`` for every ``g`` in
        ``settings.groups`` (zeros for a group without particles in this chunk).

    Notes
    -----
    The same routine as ``cryoglass reconstruct`` in one process:
    :func:`cryoglass.reconstruct.accumulate_subsets` over the chunk's image batches.
    """
    from cryoglass.io import ParticleStack
    from cryoglass.reconstruct import accumulate_subsets

    tune_allocator()
    particles = chunk.particles
    if particles.euler_deg is None:
        raise ValueError(f"chunk {chunk.chunk_id}: particles have no poses")
    with ParticleStack(particles) as stack:
        accs = accumulate_subsets(
            stack.iter_batches(settings.batch_size),
            labels=torch.as_tensor(chunk.labels),
            euler_deg=particles.euler_deg,
            shift_angstrom=particles.shift_angstrom,
            ctf=particles.ctf if settings.ctf else None,
            box=settings.box,
            pixel_size_angstrom=settings.pixel_size_angstrom,
            groups=settings.groups,
            pad=settings.pad,
            symmetry=settings.symmetry,
            interpolation=settings.interpolation,
        )
    sums: PartialSums = {}
    for g, acc in accs.items():
        sums.update(accumulator_to_sums(acc, prefix=f"{g}/"))
    return sums


def stack_sums_chunk(chunk: ParticleChunk, *, batch_size: int = 256) -> PartialSums:
    """``Σ x`` and ``Σ x²`` (float64) of the chunk's images, and their count.

    Returns
    -------
    PartialSums
        ``"sum"``, ``"sum2"`` of shape (N, N), ``"count"`` (0-d).
    """
    from cryoglass.io import ParticleStack

    tune_allocator()
    n = chunk.particles.image_size
    total = torch.zeros((n, n), dtype=torch.float64)
    total2 = torch.zeros((n, n), dtype=torch.float64)
    with ParticleStack(chunk.particles) as stack:
        for _, images in stack.iter_batches(batch_size):
            images = images.double()
            total += images.sum(0)
            total2 += images.square().sum(0)
    return {
        "sum": total.numpy(),
        "sum2": total2.numpy(),
        "count": np.asarray(len(chunk), np.int64),
    }


@dataclass(frozen=True)
class SimulateSettings:
    """What every simulate task needs (the volume is read by each worker from a file).

    Attributes
    ----------
    volume_path : str
        MRC map at the output box and pixel size (workers read it themselves).
    n : int
        Particles in the whole dataset.
    pixel_size_angstrom : float
    distributions : cryoglass.simulate.ParticleDistributions
    noise_std : float or None
        Gaussian σ (from :func:`cryoglass.simulate.calibrate_noise_std`, computed once).
    dose_e_per_a2 : float or None
        Shot noise instead.
    background : cryoglass.simulate.dataset.IceBackground or None
    seed : int
    pad : int
    device : str
    multislice_thickness_angstrom : float or None
        Multislice images with slices of this thickness (a whole number of pixels) instead of
        the projection approximation (:func:`cryoglass.simulate.simulate_dataset`).
    """

    volume_path: str
    n: int
    pixel_size_angstrom: float
    distributions: object
    noise_std: float | None = None
    dose_e_per_a2: float | None = None
    background: object = None
    seed: int = 0
    pad: int = 2
    device: str = "cpu"
    multislice_thickness_angstrom: float | None = None


@functools.lru_cache(maxsize=2)
def _volume(path: str, mtime_ns: int, device: str) -> torch.Tensor:
    """The map at ``path`` as float32 (cached per worker process; multislice needs it real)."""
    from cryoglass.io import read_mrc

    volume, _ = read_mrc(path)
    return volume.to(device=device, dtype=torch.float32)


@functools.lru_cache(maxsize=2)
def _prepared_volume(path: str, mtime_ns: int, pad: int, device: str):
    """The projector's padded transform of the map at ``path`` (cached per worker process)."""
    from cryoglass.io import read_mrc
    from cryoglass.projection.fourier_slice import prepare_volume_fourier

    volume, _ = read_mrc(path)
    return prepare_volume_fourier(volume.to(device=device, dtype=torch.float32), pad=pad)


def _block(source, j: int, settings: SimulateSettings):
    """(noisy, clean, parameters) of block ``j``: the same numbers as ``simulate_dataset``.

    ``source``: the projector's prepared transform, or the map itself for multislice.
    """
    from cryoglass.simulate import dataset as ds
    from cryoglass.simulate.image import interaction_constant_rad_per_volt_angstrom
    from cryoglass.simulate.noise import add_gaussian_noise, add_shot_noise

    device = torch.device(settings.device)
    count = min(ds.BLOCK_SIZE, settings.n - j * ds.BLOCK_SIZE)
    parameters = ds._block_parameters(settings.distributions, settings.seed, j)[:count]
    background_generator = ds.block_generator(settings.seed, j, ds._BACKGROUND, device=device)
    if settings.multislice_thickness_angstrom is not None:
        clean = ds._multislice_clean_images(
            source,
            parameters,
            pixel_size_angstrom=settings.pixel_size_angstrom,
            slice_thickness_angstrom=settings.multislice_thickness_angstrom,
            background=settings.background,
            background_generator=background_generator,
        )
    else:
        clean = ds._clean_images(
            source,
            parameters,
            pixel_size_angstrom=settings.pixel_size_angstrom,
            background=settings.background,
            background_generator=background_generator,
        )
    generator = ds.block_generator(settings.seed, j, ds._NOISE, device=device)
    if settings.noise_std is not None:
        zeros = clean.new_zeros((ds.BLOCK_SIZE, *clean.shape[1:]))
        noise = add_gaussian_noise(zeros, noise_std=settings.noise_std, generator=generator)
        return clean + noise[:count], clean, parameters
    if settings.dose_e_per_a2 is not None:
        d = settings.distributions
        per_unit = (
            2
            * interaction_constant_rad_per_volt_angstrom(d.voltage_kv)
            * settings.pixel_size_angstrom
            / math.sqrt(1 - d.amplitude_contrast**2)
        )
        measured = add_shot_noise(
            -per_unit * clean,
            dose_e_per_a2=settings.dose_e_per_a2,
            pixel_size_angstrom=settings.pixel_size_angstrom,
            generator=generator,
        )
        return -measured / per_unit, clean, parameters
    return clean, clean, parameters


def simulate_blocks(first: int, stop: int, settings: SimulateSettings):
    """Blocks ``first … stop − 1`` of the dataset: (images, clean images, parameters).

    Parameters
    ----------
    first, stop : int
        Block range (block ``j`` holds particles ``j·BLOCK_SIZE …``).
    settings : SimulateSettings

    Returns
    -------
    images, clean : Tensor (B, N, N), float32
    parameters : cryoglass.simulate.dataset.ParticleParameters
    """
    from cryoglass.simulate.dataset import ParticleParameters

    path = str(settings.volume_path)
    mtime, device = os.stat(path).st_mtime_ns, str(torch.device(settings.device))
    if settings.multislice_thickness_angstrom is not None:
        source = _volume(path, mtime, device)
    else:
        source = _prepared_volume(path, mtime, settings.pad, device)
    parts = [_block(source, j, settings) for j in range(first, stop)]
    return (
        torch.cat([p[0] for p in parts]),
        torch.cat([p[1] for p in parts]),
        ParticleParameters.concatenate([p[2] for p in parts]),
    )


def simulate_chunk(
    first: int,
    stop: int,
    settings: SimulateSettings,
    *,
    out_path: str,
    data_offset: int,
    byte_order: str,
    examples: int = 0,
) -> dict:
    """Simulate blocks ``first … stop − 1`` and write them into their rows of ``out_path``.

    Parameters
    ----------
    first, stop : int
        Block range.
    settings : SimulateSettings
    out_path : str
        The temporary file of an open :class:`cryoglass.io.MRCStackWriter` of ``settings.n``
        images (``writer.temporary_path``); only this chunk's rows are written, so chunks on
        different workers never overlap.
    data_offset : int
        ``writer.data_offset``: byte offset of the image data in ``out_path``.
    byte_order : str
        ``writer.byte_order``: ``"<"`` or ``">"``.
    examples : int
        Also return the first ``examples`` noisy and clean images (for reports).

    Returns
    -------
    dict
        ``start``, ``parameters`` (ParticleParameters), ``statistics``
        (:class:`cryoglass.io.StackStatistics` of the written images, for
        ``writer.add_statistics``), ``examples`` (noisy ndarray, clean Tensor) or None.
    """
    from cryoglass.io import write_stack_images
    from cryoglass.simulate.dataset import BLOCK_SIZE

    tune_allocator()
    images, clean, parameters = simulate_blocks(first, stop, settings)
    block = images.detach().to("cpu", torch.float32).numpy()
    start = first * BLOCK_SIZE
    statistics = write_stack_images(
        out_path,
        block,
        start=start,
        data_offset=data_offset,
        n_images=settings.n,
        byte_order=byte_order,
    )
    return {
        "start": start,
        "parameters": parameters,
        "statistics": statistics,
        "examples": (block[:examples].copy(), clean[:examples].detach().cpu())
        if examples
        else None,
    }


# ----------------------------------------------------------------------------- 2D classification

_MODEL_FIELDS = ("classes", "class_prior", "sigma2", "tau2", "resolution_angstrom")


@dataclass(frozen=True, eq=False)
class Class2DTask:
    """What every E-step task of one class2d iteration needs besides its particles.

    Scattered to the workers once per iteration (``client.scatter(..., broadcast=True)``), so
    the model travels once per worker, not once per chunk.

    Attributes
    ----------
    settings : cryoglass.classify.Class2DSettings
    model : dict of str → ndarray
        The E-step model's tensors (``classes``, ``class_prior``, ``sigma2``, ``tau2``,
        ``resolution_angstrom``) as numpy arrays.
    iteration : int
        ``model.iteration``.
    ctf : bool
        Use the particles' CTF.
    batch_size : int
        Images per E-step batch inside a task (memory knob).
    """

    settings: object
    model: dict
    iteration: int
    ctf: bool
    batch_size: int

    @staticmethod
    def from_model(model, *, settings, ctf: bool, batch_size: int) -> Class2DTask:
        """Pack a :class:`cryoglass.classify.Class2DModel` (moved to the CPU)."""
        arrays = {name: getattr(model, name).detach().cpu().numpy() for name in _MODEL_FIELDS}
        return Class2DTask(settings, arrays, int(model.iteration), bool(ctf), int(batch_size))

    def to_model(self):
        """The :class:`cryoglass.classify.Class2DModel` (CPU tensors)."""
        from cryoglass.classify.em2d import Class2DModel

        tensors = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in self.model.items()}
        return Class2DModel(**tensors, iteration=self.iteration)


def class2d_chunk(chunk: ParticleChunk, task: Class2DTask) -> PartialSums:
    """E-step of one chunk: its sufficient statistics and per-particle assignments.

    Parameters
    ----------
    chunk : ParticleChunk
        Particles (with CTF when ``task.ctf``); images read from their files.
    task : Class2DTask

    Returns
    -------
    PartialSums
        :func:`cryoglass.distributed.reduce.estep_to_sums` of
        :func:`cryoglass.classify.em2d.estep_statistics` over the chunk (assignment rows in
        chunk order).

    Notes
    -----
    The CTF is expanded to float64 per particle as ``cryoglass class2d`` does, so each image's
    posterior is the one the single-process E-step computes.
    """
    from cryoglass.classify.em2d import estep_statistics
    from cryoglass.distributed.reduce import estep_to_sums
    from cryoglass.io import ParticleStack

    tune_allocator()
    particles = chunk.particles
    ctf = None
    if task.ctf:
        if particles.ctf is None:
            raise ValueError(f"chunk {chunk.chunk_id}: particles have no CTF parameters")
        ctf = particles.ctf.expand(len(particles), dtype=torch.float64)
    with ParticleStack(particles) as stack:
        stats, assignments = estep_statistics(
            task.to_model(),
            stack.iter_batches(task.batch_size),
            n_particles=len(particles),
            ctf=ctf,
            settings=task.settings,
        )
    return estep_to_sums(stats, assignments)


def class2d_initial_chunk(chunk: ParticleChunk, task: Class2DTask) -> PartialSums:
    """Sums of the initial class averages over one chunk (``chunk.labels`` = start pose rows).

    Parameters
    ----------
    chunk : ParticleChunk
        Its ``labels`` hold each particle's pose row from
        :func:`cryoglass.classify.em2d.initial_poses`.
    task : Class2DTask
        Settings, CTF flag and batch size (``task.model`` unused).

    Returns
    -------
    PartialSums
        :func:`cryoglass.distributed.reduce.estep_to_sums` of
        :func:`cryoglass.classify.em2d.initial_statistics` (no assignment rows).
    """
    from cryoglass.classify.em2d import initial_statistics
    from cryoglass.distributed.reduce import estep_to_sums
    from cryoglass.io import ParticleStack

    tune_allocator()
    particles = chunk.particles
    ctf = None
    if task.ctf:
        if particles.ctf is None:
            raise ValueError(f"chunk {chunk.chunk_id}: particles have no CTF parameters")
        ctf = particles.ctf.expand(len(particles), dtype=torch.float64)
    with ParticleStack(particles) as stack:
        stats = initial_statistics(
            stack.iter_batches(task.batch_size),
            poses=torch.from_numpy(np.asarray(chunk.labels, dtype=np.int64)),
            image_size=particles.image_size,
            ctf=ctf,
            settings=task.settings,
        )
    return estep_to_sums(stats)


@dataclass(frozen=True, eq=False)
class RefineTask:
    """What every task of one refine3d iteration needs besides its particles (scattered once).

    Attributes
    ----------
    key : str
        Identifies the iteration (workers build its plan once and reuse it for every chunk).
    references : ndarray, (2, N, N, N) float32
        The two half sets' references.
    sigma2 : ndarray, (2, N//2 + 1)
    sampling : cryoglass.refine.Sampling
    iteration : int
        Iterations done before this one (0: the first, cross-correlation).
    max_shell : int
        The E-step band.
    settings : cryoglass.refine.RefineSettings
    rotations, origins_px : ndarray, (n, 3, 3) and (n, 2)
        Every particle's previous pose (float32).
    ctf : bool
    batch_size : int
    """

    key: str
    references: np.ndarray
    sigma2: np.ndarray
    sampling: object
    iteration: int
    max_shell: int
    settings: object
    rotations: np.ndarray
    origins_px: np.ndarray
    ctf: bool
    batch_size: int


_PLANS: dict[str, object] = {}


def _refine_plan(task: RefineTask):
    """The iteration's plan, built once per worker process and iteration."""
    from cryoglass.refine.auto import plan_iteration

    if task.key not in _PLANS:
        _PLANS.clear()  # only the current iteration's plan is kept
        _PLANS[task.key] = plan_iteration(
            torch.from_numpy(np.array(task.references, copy=True)),
            torch.from_numpy(np.array(task.sigma2, copy=True)),
            task.sampling,
            iteration=task.iteration,
            max_shell=task.max_shell,
            settings=task.settings,
        )
    return _PLANS[task.key]


def refine_chunk(chunk: ParticleChunk, task: RefineTask) -> PartialSums:
    """One refine3d iteration over a chunk: both halves' M-step sums and the chunk's poses.

    Returns
    -------
    PartialSums
        ``"{h}/data"``, ``"{h}/weight"``, ``"{h}/count"`` (h = 0, 1), ``"noise"``, ``"counts"``
        and the pose rows ``"rows/…"`` (chunk order), with ``"start"`` the chunk's first row.
    """
    from cryoglass.io import ParticleStack
    from cryoglass.refine.auto import IterationSums, Poses, estep_batches
    from cryoglass.refine.checkpoint import poses_tensors

    tune_allocator()
    plan = _refine_plan(task)
    particles = chunk.particles
    if task.ctf and particles.ctf is None:
        raise ValueError(f"chunk {chunk.chunk_id}: particles have no CTF parameters")
    ctf = particles.ctf.expand(len(particles)) if task.ctf else None
    sums = IterationSums.empty(particles.image_size, pad=plan.pad)
    rows = slice(chunk.start, chunk.start + len(particles))
    previous = dataclasses.replace(
        Poses.empty(len(particles)),
        rotations=torch.from_numpy(task.rotations[rows]),
        origins_px=torch.from_numpy(task.origins_px[rows]),
    )
    with ParticleStack(particles) as stack:
        poses = estep_batches(
            plan,
            sums,
            stack.iter_batches(task.batch_size),
            labels=torch.as_tensor(chunk.labels),
            ctf=ctf,
            previous=previous,
        )
    out: PartialSums = {"noise": sums.noise.numpy(), "counts": sums.counts.numpy()}
    for h, acc in enumerate(sums.accumulators):
        out.update(accumulator_to_sums(acc, prefix=f"{h}/"))
    out.update({f"rows/{k}": v.numpy() for k, v in poses_tensors(poses).items()})
    out["start"] = np.asarray(chunk.start, dtype=np.int64)
    trim_heap()
    return out


@dataclass(frozen=True, eq=False)
class Class3DTask:
    """What every task of one class3d iteration needs besides its particles (scattered once).

    Attributes
    ----------
    key : str
        Identifies the iteration (workers prepare its E-step once and reuse it for every chunk).
    state : cryoglass.refine.Class3DState
        The state being iterated, on the CPU (the K maps, σ², priors; per-particle rows are a
        few numbers each).
    settings : cryoglass.refine.class3d.Class3DSettings
    ctf : bool
    batch_size : int
    """

    key: str
    state: object
    settings: object
    ctf: bool
    batch_size: int


_CONTEXTS: dict[str, object] = {}


def _class3d_context(task: Class3DTask):
    """The iteration's E-step context (projectors, coarse table), once per worker and iteration."""
    from cryoglass.refine.class3d import class3d_context

    if task.key not in _CONTEXTS:
        _CONTEXTS.clear()  # only the current iteration's context is kept
        _CONTEXTS[task.key] = class3d_context(task.state, task.settings)
    return _CONTEXTS[task.key]


def class3d_chunk(chunk: ParticleChunk, task: Class3DTask) -> PartialSums:
    """One class3d iteration over a chunk: every class's sums and the chunk's best poses.

    The E-step is :func:`cryoglass.refine.class3d.class3d_estep` batch by batch, as in one
    process; its per-particle inputs (CTF, the seeding iteration's random classes) are taken
    at the chunk's rows.

    Returns
    -------
    PartialSums
        :func:`cryoglass.distributed.reduce.class3d_to_sums` with ``"start"`` the chunk's
        first row.
    """
    from cryoglass.io import ParticleStack
    from cryoglass.refine.class3d import class3d_estep, merge_class3d_sums

    tune_allocator()
    particles = chunk.particles
    if task.ctf and particles.ctf is None:
        raise ValueError(f"chunk {chunk.chunk_id}: particles have no CTF parameters")
    ctf = particles.ctf.expand(len(particles)) if task.ctf else None
    context = _class3d_context(task)
    context = dataclasses.replace(
        context, seeds=context.seeds[chunk.start : chunk.start + len(particles)]
    )
    total, tables = None, []
    with ParticleStack(particles) as stack:
        for indices, images in stack.iter_batches(task.batch_size):
            sums, table = class3d_estep(context, indices, images, ctf=ctf, settings=task.settings)
            total = sums if total is None else merge_class3d_sums(total, sums)
            tables.append(table)
    order = torch.argsort(torch.cat([t["indices"] for t in tables]))
    rows = {key: torch.cat([t[key] for t in tables])[order] for key in tables[0]}
    out = class3d_to_sums(total, rows)
    out["start"] = np.asarray(chunk.start, dtype=np.int64)
    trim_heap()
    return out
