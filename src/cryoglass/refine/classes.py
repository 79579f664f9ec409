r"""The E-step over classes × poses: several references scored in one pass (RELION's Class3D).

Model
-----
As in :mod:`cryoglass.refine.likelihood`, with the reference drawn from ``K`` classes with prior
``π_c``: image ``i`` is ``X_i = C_i P_{c,A} e^{+2πik·o/N} + n_i`` for class ``c``, pose ``A`` and
origin ``o``, and the posterior over the hidden variables is

.. math:: P(c, A, \mathbf o \mid X_i) = \frac{\pi_c\, p(X_i \mid c, A, \mathbf o)}
          {\sum_{c'} \pi_{c'} \sum_{A', \mathbf o'} p(X_i \mid c', A', \mathbf o')},

uniform over the poses searched.  Its sum over the poses is the class posterior
``P(c | X_i)``, whose mean over the particles is the next prior ``π_c`` (Scheres 2012, eq. 8).

The two passes of :func:`cryoglass.refine.align.align_batch`, with a class axis
--------------------------------------------------------------------------------------
1. **coarse** — the projections of all ``K`` references at the ``R`` coarse rotations are one
   table of ``K·R`` rows (:func:`class_table`), so the cross terms of every class come from
   **one** GEMM, ``ā (B·S × 2F) @ P (2F × K·R)``; for each class the ``top`` best coarse
   rotations (over the coarse origins) are kept, so every class is explored, not only the
   currently best one;
2. **fine** — around each class's ``top`` rotations, the lattice of the final step and the
   final origin grid are scored against that class's reference
   (:func:`~cryoglass.refine.likelihood.cross_terms_local`), ``log π_c`` is added, and **one**
   posterior is normalised over all classes' fine poses together.  The significant poses (and
   the best one, whose class is ``rlnClassNumber``) may therefore be of any class; each carries
   its class, so the M-step inserts it into that class's sums.

With ``K = 1`` and ``π = 1`` this is exactly :func:`~cryoglass.refine.align.align_batch`.

References
----------
Scheres, S. H. W. (2012) RELION: implementation of a Bayesian approach to cryo-EM structure
determination. J. Struct. Biol. 180:519-530. https://doi.org/10.1016/j.jsb.2012.09.006

Scheres, S. H. W. (2010) Classification of structural heterogeneity by maximum-likelihood
methods. Methods Enzymol. 482:295-320. https://doi.org/10.1016/S0076-6879(10)82012-9
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cryoglass.projection.fourier_slice import VolumeFourier, slice_values_at
from cryoglass.refine.align import Alignment, Sampling, _constant, _repeated, _score_local
from cryoglass.refine.likelihood import (
    Band,
    posterior,
    quadratic_terms,
    real_pairs,
    scaled_data,
    significant,
)
from cryoglass.refine.poses import local_rotations, origin_grid, rotation_lattice

__all__ = [
    "ClassAlignment",
    "ClassTable",
    "align_batch_classes",
    "class_table",
    "with_classes",
]


@dataclass(frozen=True, eq=False)
class ClassTable:
    """The coarse rotations and every class's projections at them (band points only).

    Attributes
    ----------
    rotations : Tensor, (R, 3, 3)
        RELION matrices ``A`` of the coarse search.
    projections : Tensor, (K·R, 2F)
        Real pairs (:func:`~cryoglass.refine.likelihood.real_pairs`), class-major: row
        ``c·R + r`` is class ``c`` at rotation ``r``.
    power : Tensor, (K·R, F)
        ``|P|²`` of the same rows.
    n_classes : int
    """

    rotations: torch.Tensor
    projections: torch.Tensor
    power: torch.Tensor
    n_classes: int


def class_table(
    references: Sequence[VolumeFourier], rotations: torch.Tensor, b: Band
) -> ClassTable:
    """Project every reference at every coarse rotation (the band's points).

    Parameters
    ----------
    references : sequence of K VolumeFourier
    rotations : Tensor, (R, 3, 3)
    b : Band

    Returns
    -------
    ClassTable
    """
    values = torch.cat([slice_values_at(ref, rotations, b.k) for ref in references])
    rotations = rotations.to(values.real.dtype)
    power = values.real.square() + values.imag.square()
    return ClassTable(rotations, real_pairs(values), power, len(references))


@dataclass(frozen=True, eq=False)
class ClassAlignment(Alignment):
    """The significant (class, pose) pairs of a batch of particles.

    Attributes
    ----------
    rotations, origins_px, weights, max_probability, n_significant, log_likelihood
        As :class:`~cryoglass.refine.align.Alignment`; the weights sum to 1 over all classes
        and ``log_likelihood`` is ``log Σ_c π_c Σ_poses p(X | c, pose) / n_poses``.
    classes : Tensor, (B, M), int64
        Class (0-based) of each significant pose; ``classes[:, 0]`` is the best pose's.
    class_probability : Tensor, (B, K)
        ``P(c | X_i)`` (rows sum to 1).
    """

    classes: torch.Tensor
    class_probability: torch.Tensor

    def for_class(self, c: int) -> Alignment:
        """The poses of class ``c`` only (other weights set to 0; not renormalised).

        Inserting ``for_class(c)`` for every class adds each image with total weight 1, the
        class posterior split over that class's poses — the M-step sums of Class3D.
        """
        weights = torch.where(self.classes == c, self.weights, torch.zeros_like(self.weights))
        return Alignment(
            self.rotations,
            self.origins_px,
            weights,
            self.max_probability,
            self.n_significant,
            self.log_likelihood,
        )


def _log_prior(log_prior: torch.Tensor | None, bsz: int, k: int, device) -> torch.Tensor:
    if log_prior is None:
        return torch.full((bsz, k), -math.log(k), device=device)
    log_prior = log_prior.to(device, torch.float32)
    if log_prior.shape[-1] != k:
        raise ValueError(f"log_prior must have {k} classes, got shape {tuple(log_prior.shape)}")
    return log_prior.expand(bsz, k)


def _coarse_candidates(
    x: torch.Tensor,
    ctf: torch.Tensor,
    inv_sigma2: torch.Tensor,
    centre: torch.Tensor,
    table: ClassTable,
    log_prior: torch.Tensor,
    b: Band,
    sampling: Sampling,
) -> torch.Tensor:
    """(B, K, top·Q, 3, 3): per class, the fine lattice around its best coarse rotations."""
    bsz, k = x.shape[0], table.n_classes
    n_rot = table.rotations.shape[0]
    coarse_origins = origin_grid(sampling.origin_range_px, 2 * sampling.origin_step_px)
    a = scaled_data(x, ctf, inv_sigma2, centre, coarse_origins.to(x.device), b)
    s = a.shape[1]
    cross = real_pairs(a).reshape(bsz * s, -1) @ table.projections.T  # one GEMM, all classes
    quad = quadratic_terms(ctf, inv_sigma2, table.power, b)  # (B, K·R)
    logits = cross.reshape(bsz, s, -1).mul_(2.0).sub_(quad[:, None, :])
    best = logits.amax(dim=1).reshape(bsz, k, n_rot) + log_prior[:, :, None]
    top = min(sampling.top, n_rot)
    index = best.topk(top, dim=2).indices  # (B, K, top)
    lattice = rotation_lattice(sampling.step_deg, radius_steps=sampling.fine_radius_steps)
    return local_rotations(table.rotations[index], lattice).reshape(bsz, k, -1, 3, 3)


def align_batch_classes(
    x: torch.Tensor,
    ctf: torch.Tensor,
    sigma2: torch.Tensor,
    references: Sequence[VolumeFourier],
    b: Band,
    sampling: Sampling,
    *,
    table: ClassTable | None = None,
    log_prior: torch.Tensor | None = None,
    previous_rotations: torch.Tensor | None = None,
    previous_origins_px: torch.Tensor | None = None,
) -> ClassAlignment:
    """Align a batch of images to ``K`` references: the significant (class, pose) pairs of each.

    Parameters
    ----------
    x : Tensor, (B, F), complex
        Image values on the band.
    ctf : Tensor, (B, F), real
    sigma2 : Tensor, (N//2 + 1,)
        Noise power per shell.
    references : sequence of K VolumeFourier
    b : Band
    sampling : Sampling
        As :func:`~cryoglass.refine.align.align_batch` (``top`` coarse rotations per class).
    table : ClassTable, optional
        Required for global searches (:func:`class_table` of the same references).
    log_prior : Tensor, (K,) or (B, K), optional
        ``log π_c`` (default uniform); ``−inf`` excludes a class (for all images, or per image).
    previous_rotations : Tensor, (B, 3, 3), optional
        Required for local searches (then every class searches around the same pose).
    previous_origins_px : Tensor, (B, 2), optional

    Returns
    -------
    ClassAlignment

    Examples
    --------
    >>> import torch
    >>> from cryoglass.projection import prepare_volume_fourier, project
    >>> from cryoglass.refine import global_rotations
    >>> from cryoglass.refine.likelihood import band
    >>> from cryoglass.reconstruct import image_slice_values
    >>> g = torch.Generator().manual_seed(0)
    >>> maps = [torch.randn(16, 16, 16, generator=g) for _ in range(2)]
    >>> rotations, _ = global_rotations(1)
    >>> images = project(maps[1], rotations[:3], pixel_size_angstrom=1.0)
    >>> b = band(16, 6)
    >>> x = image_slice_values(images)[:, b.index]
    >>> refs = [prepare_volume_fourier(m) for m in maps]
    >>> result = align_batch_classes(
    ...     x, torch.ones_like(x.real), torch.full((9,), 1.0), refs, b, Sampling(order=2),
    ...     table=class_table(refs, rotations, b))
    >>> result.classes[:, 0].tolist(), result.class_probability.sum(1).tolist()
    ([1, 1, 1], [1.0, 1.0, 1.0])
    """
    device, bsz, k = x.device, x.shape[0], len(references)
    prior = _log_prior(log_prior, bsz, k, device)
    inv_sigma2 = sigma2.to(device, x.real.dtype).clamp_min(1e-30).reciprocal()[b.shell]
    centre = (
        torch.zeros(bsz, 2, device=device)
        if previous_origins_px is None
        else previous_origins_px.to(device, torch.float32)
    )
    step = sampling.step_deg
    if sampling.local:
        if previous_rotations is None:
            raise ValueError("a local search needs each particle's previous rotation")
        lattice = rotation_lattice(step, radius_steps=sampling.local_radius_steps)
        one = local_rotations(previous_rotations.to(device, torch.float32), lattice)
        candidates = one[:, None].expand(bsz, k, *one.shape[1:])
    else:
        if table is None or table.n_classes != k:
            raise ValueError("a global search needs the ClassTable of the same K references")
        candidates = _coarse_candidates(x, ctf, inv_sigma2, centre, table, prior, b, sampling)
    offsets = origin_grid(sampling.origin_range_px, sampling.origin_step_px).to(device)
    origins = centre[:, None, :] + offsets
    a = scaled_data(x, ctf, inv_sigma2, centre, offsets, b)
    n_origins, n_rot = offsets.shape[0], candidates.shape[2]
    logits = torch.full((bsz, k, n_origins, n_rot), -math.inf, device=device)
    active = torch.isfinite(prior).any(dim=0)
    for c in range(k):
        if not bool(active[c]):
            continue
        part = _score_local(
            a, ctf, inv_sigma2, references[c], candidates[:, c], b, normalised=False
        )
        if not sampling.local:  # neighbourhoods of nearby coarse rotations overlap: count once
            part = part.masked_fill(_repeated(candidates[:, c], step)[:, None, :], -math.inf)
        logits[:, c] = part + prior[:, c, None, None]
    flat = logits.reshape(bsz, -1)
    prob, log_norm = posterior(flat)
    index, weights, count = significant(prob, mass=sampling.mass, keep=sampling.keep)
    per_class = n_origins * n_rot
    cls, rest = index // per_class, index % per_class
    rows = torch.arange(bsz, device=device)[:, None]
    log_like = log_norm - math.log(per_class) + _constant(x, inv_sigma2, b)
    return ClassAlignment(
        rotations=candidates[rows, cls, rest % n_rot],
        origins_px=origins[rows, rest // n_rot],
        weights=weights,
        max_probability=prob.max(dim=1).values,
        n_significant=count.to(torch.int64),
        log_likelihood=log_like,
        classes=cls,
        class_probability=prob.reshape(bsz, k, -1).sum(-1),
    )


def with_classes(alignment: Alignment, classes: torch.Tensor, n_classes: int) -> ClassAlignment:
    """A one-reference alignment with every pose given the image's class ``classes`` (B,).

    Used where the class is fixed per image (RELION's first classification iteration assigns
    each particle to a random class while all references are still the same map).
    """
    cls = classes.to(alignment.weights.device, torch.int64)
    prob = torch.nn.functional.one_hot(cls, n_classes).to(alignment.weights.dtype)
    return ClassAlignment(
        **{f: getattr(alignment, f) for f in alignment.__dataclass_fields__},
        classes=cls[:, None].expand_as(alignment.weights),
        class_probability=prob,
    )
