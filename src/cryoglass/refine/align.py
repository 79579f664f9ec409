r"""One refinement iteration for a batch of particles: align (E-step) and insert (M-step sums).

Alignment searches poses in two passes, as RELION's adaptive oversampling:

1. **coarse** — a global pass scores every rotation of the SO(3) grid at HEALPix order
   ``order − 1`` (twice the final angular step) and every origin on a grid of twice the final
   origin step (:func:`cryoglass.refine.likelihood.cross_terms_global`: one GEMM per batch);
   a local pass instead starts from the particle's previous pose;
2. **fine** — around the ``top`` best coarse poses, rotations ``A·Δ`` on a lattice of the final
   step and origins on the final origin grid are scored per particle
   (:func:`~cryoglass.refine.likelihood.cross_terms_local`), and the posterior over these fine
   poses (uniform prior) gives the particle's significant poses, their weights, its best pose,
   ``rlnMaxValueProbDistribution``, ``rlnNrOfSignificantSamples`` and its log-likelihood.

The M-step sums insert each particle at its significant poses with their weights,
``values = w · C · e^{−2πik·o/N} X``, ``weights = w · C²``
(:func:`cryoglass.reconstruct.accumulate_values`), and add the expected residual power per shell
for the noise model ``σ²``.

Differences from RELION: the posterior is normalised over the fine poses around the top coarse
ones (RELION: over all significant coarse poses' children); at most ``keep`` poses per particle
are inserted; origins have a uniform prior inside the searched disc (RELION: a Gaussian prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.geometry.so3_grid import angular_step_for_order
from cryoglass.projection.fourier_slice import VolumeFourier, slice_values, slice_values_at
from cryoglass.reconstruct.fourier_inversion import Accumulator, accumulate_values
from cryoglass.refine.likelihood import (
    Band,
    cross_terms_global,
    cross_terms_local,
    posterior,
    quadratic_terms,
    real_pairs,
    scaled_data,
    significant,
)
from cryoglass.refine.poses import local_rotations, origin_grid, rotation_lattice

__all__ = [
    "Alignment",
    "GlobalTable",
    "Sampling",
    "align_batch",
    "global_table",
    "insert_batch",
    "noise_power_sums",
]


@dataclass(frozen=True)
class Sampling:
    """What an iteration searches.

    Attributes
    ----------
    order : int
        HEALPix order of the final angular step ``60°/2^order``.
    local : bool
        Search around each particle's previous pose (True) or the whole SO(3) grid.
    origin_range_px : float
        Radius of the origin search [pixels] around the previous origin.
    origin_step_px : float
        Final origin step [pixels] (the coarse pass uses twice it).
    local_radius_steps : float
        Local searches cover this many angular steps around the previous pose.
    fine_radius_steps : float
        The fine pass of a global search covers this many (final) steps around each of the
        ``top`` coarse rotations (1 → 7 rotations each; the coarse step is 2 final steps).
    top : int
        Coarse poses refined in the fine pass (global searches).
    keep : int
        At most this many significant poses per particle are inserted.
    mass : float
        Posterior mass the significant poses hold (RELION's adaptive fraction).
    """

    order: int
    local: bool = False
    origin_range_px: float = 5.0
    origin_step_px: float = 1.0
    local_radius_steps: float = 2.0
    fine_radius_steps: float = 1.0
    top: int = 4
    keep: int = 8
    mass: float = 0.999

    @property
    def step_deg(self) -> float:
        """Final angular step [degrees]."""
        return angular_step_for_order(self.order)


@dataclass(frozen=True, eq=False)
class GlobalTable:
    """Rotations of a global search and the reference's projections on the band."""

    rotations: torch.Tensor  # (R, 3, 3)
    projections: torch.Tensor  # (R, 2K) real pairs (:func:`real_pairs`)
    power: torch.Tensor  # (R, K) real


def global_table(reference: VolumeFourier, rotations: torch.Tensor, b: Band) -> GlobalTable:
    """Project the reference at every rotation of a global search (band points only)."""
    p = slice_values_at(reference, rotations, b.k)
    return GlobalTable(rotations.to(p.real.dtype), real_pairs(p), p.real.square() + p.imag.square())


@dataclass(frozen=True, eq=False)
class Alignment:
    """The significant poses of a batch of particles.

    Attributes
    ----------
    rotations : Tensor, (B, M, 3, 3)
        RELION matrices ``A``, most probable first.
    origins_px : Tensor, (B, M, 2)
        RELION origins [pixels].
    weights : Tensor, (B, M)
        Posterior weights (0 for unused slots), rows summing to 1.
    max_probability : Tensor, (B,)
        Largest posterior (``rlnMaxValueProbDistribution``).
    n_significant : Tensor, (B,), int64
        Poses holding the significant mass (``rlnNrOfSignificantSamples``).
    log_likelihood : Tensor, (B,), float64
        ``log Σ_poses p(X | pose) / n_poses`` over the band (``rlnLogLikeliContribution``).
    """

    rotations: torch.Tensor
    origins_px: torch.Tensor
    weights: torch.Tensor
    max_probability: torch.Tensor
    n_significant: torch.Tensor
    log_likelihood: torch.Tensor


def _constant(x: torch.Tensor, inv_sigma2: torch.Tensor, b: Band) -> torch.Tensor:
    """``−Σ_k w |X|²/σ² − Σ_k w log(π σ²)`` per image (float64)."""
    data = ((x.real.square() + x.imag.square()) * (b.weight * inv_sigma2)).sum(1).double()
    norm = (b.weight * torch.log(math.pi / inv_sigma2)).sum().double()
    return -(data + norm)


def _score_local(
    a: torch.Tensor,
    ctf: torch.Tensor,
    inv_sigma2: torch.Tensor,
    reference,
    rotations,
    b: Band,
    *,
    normalised: bool,
) -> torch.Tensor:
    """Logits (B, S, Q) for per-image rotations (B, Q, 3, 3) and the origins in ``a``."""
    bsz, q = rotations.shape[:2]
    p = slice_values_at(reference, rotations.reshape(-1, 3, 3), b.k).reshape(bsz, q, -1)
    cross = cross_terms_local(a, p)
    quad = quadratic_terms(ctf, inv_sigma2, p.real.square() + p.imag.square(), b)
    if normalised:
        return cross / quad.clamp_min(1e-30).sqrt()[:, None, :]
    return 2.0 * cross - quad[:, None, :]


def align_batch(
    x: torch.Tensor,
    ctf: torch.Tensor,
    sigma2: torch.Tensor,
    reference: VolumeFourier,
    b: Band,
    sampling: Sampling,
    *,
    table: GlobalTable | None = None,
    previous_rotations: torch.Tensor | None = None,
    previous_origins_px: torch.Tensor | None = None,
    correlation: bool = False,
) -> Alignment:
    """Align a batch of images to a reference: the significant poses of each.

    Parameters
    ----------
    x : Tensor, (B, K), complex
        Image values on the band (centred DFT, :func:`cryoglass.reconstruct.image_slice_values`
        restricted to ``b.index``).
    ctf : Tensor, (B, K), real
        CTFs on the band (ones without CTF).
    sigma2 : Tensor, (N//2 + 1,)
        Noise power per shell.
    reference : VolumeFourier
        The reference (:func:`cryoglass.projection.prepare_volume_fourier`).
    b : Band
    sampling : Sampling
    table : GlobalTable, optional
        Coarse rotations and projections; required for global searches.
    previous_rotations : Tensor, (B, 3, 3), optional
        Required for local searches.
    previous_origins_px : Tensor, (B, 2), optional
        Centre of the origin search (default 0).
    correlation : bool
        Score by normalised cross-correlation and keep only the best pose (RELION's
        ``--firstiter_cc``, for a reference not on the particles' grey scale).

    Returns
    -------
    Alignment
    """
    device, bsz = x.device, x.shape[0]
    inv_sigma2 = sigma2.to(device, x.real.dtype).clamp_min(1e-30).reciprocal()[b.shell]
    if correlation:
        inv_sigma2 = torch.ones_like(inv_sigma2)
    centre = (
        torch.zeros(bsz, 2, device=device)
        if previous_origins_px is None
        else previous_origins_px.to(device, torch.float32)
    )
    step, ostep = sampling.step_deg, sampling.origin_step_px
    if sampling.local:
        if previous_rotations is None:
            raise ValueError("a local search needs each particle's previous rotation")
        candidates = local_rotations(
            previous_rotations.to(device, torch.float32),
            rotation_lattice(step, radius_steps=sampling.local_radius_steps),
        )  # (B, Q, 3, 3)
    else:
        if table is None:
            raise ValueError("a global search needs the GlobalTable of its coarse rotations")
        coarse_origins = origin_grid(sampling.origin_range_px, 2 * ostep).to(device)
        a = scaled_data(x, ctf, inv_sigma2, centre, coarse_origins, b)
        cross = cross_terms_global(a, table.projections)  # (B, S, R)
        quad = quadratic_terms(ctf, inv_sigma2, table.power, b)  # (B, R)
        if correlation:
            logits = cross / quad.clamp_min(1e-30).sqrt()[:, None, :]
        else:
            logits = cross.mul_(2.0).sub_(quad[:, None, :])
        top = min(sampling.top, logits.shape[2])
        best = logits.amax(dim=1).topk(top, dim=1).indices  # (B, top) distinct rotations
        lattice = rotation_lattice(step, radius_steps=sampling.fine_radius_steps)
        candidates = local_rotations(table.rotations[best], lattice).reshape(bsz, -1, 3, 3)
    offsets = origin_grid(sampling.origin_range_px, ostep).to(device)
    origins = centre[:, None, :] + offsets
    a = scaled_data(x, ctf, inv_sigma2, centre, offsets, b)
    logits = _score_local(a, ctf, inv_sigma2, reference, candidates, b, normalised=correlation)
    if not sampling.local:  # neighbourhoods of nearby coarse rotations overlap: count once
        logits = logits.masked_fill(_repeated(candidates, step)[:, None, :], -math.inf)
    n_origins, n_rot = logits.shape[1], logits.shape[2]
    flat = logits.reshape(bsz, -1)
    if correlation:  # hard assignment to the best pose
        best = flat.argmax(dim=1, keepdim=True)
        index, weights = best, torch.ones(bsz, 1, device=device)
        count = torch.ones(bsz, dtype=torch.int64, device=device)
        probability_max = torch.ones(bsz, device=device)
        log_like = torch.zeros(bsz, dtype=torch.float64, device=device)
    else:
        prob, log_norm = posterior(flat)
        index, weights, count = significant(prob, mass=sampling.mass, keep=sampling.keep)
        probability_max = prob.max(dim=1).values
        log_like = log_norm - math.log(n_origins * n_rot) + _constant(x, inv_sigma2, b)
    rows = torch.arange(bsz, device=device)[:, None]
    rotations = candidates[rows, index % n_rot]
    origins_sel = origins[rows, index // n_rot]
    return Alignment(
        rotations, origins_sel, weights, probability_max, count.to(torch.int64), log_like
    )


def _repeated(rotations: torch.Tensor, step_deg: float) -> torch.Tensor:
    """(B, Q) True where a rotation lies within half a step of an earlier one of its row."""
    # ‖R₁ − R₂‖_F = 2√2 sin(θ/2) for the angle θ between them
    limit = 2 * math.sqrt(2) * math.sin(math.radians(0.5 * step_deg) / 2)
    flat = rotations.reshape(*rotations.shape[:2], 9)
    close = torch.cdist(flat, flat) < limit
    earlier = torch.ones_like(close[0]).tril(-1).bool()
    return (close & earlier).any(dim=2)


def _poses(alignment: Alignment) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image row, rotation, origin, weight) of every used pose, flattened."""
    used = alignment.weights > 0
    rows = torch.nonzero(used, as_tuple=True)
    return rows[0], alignment.rotations[rows], alignment.origins_px[rows], alignment.weights[rows]


def insert_batch(
    acc: Accumulator,
    x_full: torch.Tensor,
    ctf_full: torch.Tensor | None,
    alignment: Alignment,
    k_full: torch.Tensor,
    *,
    symmetry: str = "C1",
) -> Accumulator:
    """Add a batch to the reconstruction sums at its significant poses (in place).

    Parameters
    ----------
    acc : Accumulator
    x_full : Tensor, (B, P), complex
        Image values at all slice frequencies (no origin shift undone).
    ctf_full : Tensor, (B, P), real, or None
    alignment : Alignment
    k_full : Tensor, (P, 2)
        :func:`cryoglass.projection.slice_frequencies` of the image size.
    symmetry : str

    Returns
    -------
    Accumulator
        ``acc`` with the batch added (``count`` grows by ``B``).
    """
    image, rotations, origins, weights = _poses(alignment)
    size = acc.size
    angle = (-2 * math.pi / size) * (origins.to(k_full.dtype) @ k_full.T)  # undo the origin
    data = x_full[image] if ctf_full is None else x_full[image] * ctf_full[image]
    values = data * torch.polar(torch.ones_like(angle), angle) * weights[:, None]
    c2 = None
    if ctf_full is not None:
        c2 = ctf_full[image].square() * weights[:, None]
    else:
        c2 = weights[:, None].expand_as(angle)
    return accumulate_values(
        acc,
        values,
        rotations,
        ctf_squared=c2,
        symmetry=symmetry,
        count=x_full.shape[0],
        inplace=True,
    )


def noise_power_sums(
    x_full: torch.Tensor,
    ctf_full: torch.Tensor | None,
    reference: VolumeFourier,
    alignment: Alignment,
    k_full: torch.Tensor,
    shell_full: torch.Tensor,
    weight_full: torch.Tensor,
    n_shells: int,
) -> torch.Tensor:
    """``Σ_images Σ_poses w Σ_{k ∈ shell} w_k |X − C P e^{+2πik·o/N}|²`` per shell (float64).

    Divided by (images × ``Σ_{k ∈ shell} w_k``) it is the noise power ``σ²`` of the shell.
    """
    image, rotations, origins, weights = _poses(alignment)
    size = reference.size
    p = slice_values(reference, rotations.to(reference.table.real.dtype))
    angle = (2 * math.pi / size) * (origins.to(k_full.dtype) @ k_full.T)
    model = p * torch.polar(torch.ones_like(angle), angle)
    if ctf_full is not None:
        model = model * ctf_full[image]
    residual = x_full[image] - model
    power = (residual.real.square() + residual.imag.square()) * weight_full * weights[:, None]
    sums = torch.zeros(n_shells + 1, dtype=torch.float64, device=power.device)
    sums.index_add_(0, shell_full.clamp_max(n_shells), power.sum(0).double())
    return sums[:n_shells]
