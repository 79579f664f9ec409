r"""Scores of particle images against reference projections: the E-step of 3D refinement.

Model (RELION's, as :mod:`cryoglass.classify.em2d` in 2D)
-----------------------------------------------------------
The centred DFT ``X_i(k)`` of image ``i`` (at the Fourier points ``k`` of the E-step band, on the
half plane ``k_x ≥ 0`` of :func:`cryoglass.projection.slice_frequencies`) is its CTF ``C_i`` times
the central slice ``P_A(k) = V̂(Aᵀk)`` of the reference at pose ``A``, moved by the RELION
origin ``o`` [pixels], plus complex Gaussian noise of power ``σ²(|k|)``:

.. math:: X_i(\mathbf k) = C_i(\mathbf k)\,P_A(\mathbf k)\,e^{+2\pi i\,\mathbf k\cdot\mathbf o/N}
          + n_i(\mathbf k),\qquad \langle|n_i(\mathbf k)|^2\rangle = \sigma^2(|\mathbf k|).

With ``w(k) = ½`` on the self-conjugate columns (``k_x = 0``, ``k_x = N/2``) and 1 elsewhere,
so that each independent coefficient counts once,

.. math:: \log p(X_i \mid A, \mathbf o) = \text{const}_i
          + 2\,\mathrm{Re}\sum_{\mathbf k} \frac{w}{\sigma^2}\,\overline{X_i}\,C_i\,P_A\,
            e^{+2\pi i\,\mathbf k\cdot\mathbf o/N}
          - \sum_{\mathbf k}\frac{w}{\sigma^2}\,C_i^2\,|P_A|^2 .

The cross term is one matrix product: with ``ā_{io}(k) = (w/σ²)\,X_i\,C_i\,e^{−2πik·o/N}``
(the conjugate of the factor that multiplies ``P``), ``Re Σ_k \bar ā P`` is the dot product of
the interleaved real pairs of ``ā`` and ``P`` — (images × origins) rows times (rotations) columns
for a global search, a batched product per image for local searches.  The
quadratic term is ``(w C²/σ²) · |P|²``, (images) × (rotations).  Posteriors (uniform priors over
the poses searched) are normalised by log-sum-exp.

References
----------
Scheres, S. H. W. (2012) A Bayesian view on cryo-EM structure determination. J. Mol. Biol.
415:406-418. https://doi.org/10.1016/j.jmb.2011.11.010

Sigworth, F. J. (1998) A maximum-likelihood approach to single-particle image refinement.
J. Struct. Biol. 122:328-339. https://doi.org/10.1006/jsbi.1998.4014
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.projection.fourier_slice import slice_frequencies

__all__ = [
    "Band",
    "band",
    "cross_terms_global",
    "cross_terms_local",
    "posterior",
    "quadratic_terms",
    "real_pairs",
    "scaled_data",
    "significant",
]


@dataclass(frozen=True, eq=False)
class Band:
    """The Fourier points an E-step uses: the slice frequencies up to ``max_shell``.

    Attributes
    ----------
    size : int
        Image size ``N``.
    max_shell : int
        Largest shell used (``round(|k|)`` in Fourier pixels).
    index : Tensor, (K,), int64
        Positions among the ``P`` points of :func:`cryoglass.projection.slice_frequencies`.
    k : Tensor, (K, 2)
        ``(k_x, k_y)`` [cycles per box].
    shell : Tensor, (K,), int64
    weight : Tensor, (K,)
        ½ on the self-conjugate columns, else 1.
    """

    size: int
    max_shell: int
    index: torch.Tensor
    k: torch.Tensor
    shell: torch.Tensor
    weight: torch.Tensor


def band(size: int, max_shell: int, *, device: torch.device | str | None = None) -> Band:
    """The points of ``slice_frequencies(size)`` with ``round(|k|) ≤ max_shell``.

    Examples
    --------
    >>> b = band(16, 3)
    >>> int(b.index.shape[0]), float(b.weight.sum())  # 22 half-plane points, 18.5 independent
    (22, 18.5)
    """
    k_all, _ = slice_frequencies(size, device=device, dtype=torch.float32)
    shell_all = torch.floor(k_all.double().norm(dim=1) + 0.5).long()
    max_shell = int(min(max_shell, size // 2))
    index = torch.nonzero(shell_all <= max_shell).reshape(-1)
    k = k_all[index]
    weight = torch.ones(index.shape[0], device=k.device)
    half = (k[:, 0] == 0) | ((size % 2 == 0) & (k[:, 0] == size // 2))
    weight[half] = 0.5
    return Band(size, max_shell, index, k, shell_all[index], weight)


def _phase(origins_px: torch.Tensor, b: Band) -> torch.Tensor:
    """``e^{−2πi k·o/N}`` for origins (..., 2) → (..., K)."""
    angle = (-2 * math.pi / b.size) * (origins_px.to(b.k.dtype) @ b.k.T)
    return torch.polar(torch.ones_like(angle), angle)


def scaled_data(
    x: torch.Tensor,
    ctf: torch.Tensor,
    inv_sigma2: torch.Tensor,
    centres_px: torch.Tensor,
    offsets_px: torch.Tensor,
    b: Band,
) -> torch.Tensor:
    """``ā(k) = (w/σ²) · X · C · e^{−2πi k·o/N}`` (the conjugate of ``a``) for every origin.

    The origins are ``o = centre + offset``: the image's own search centre and a grid of
    offsets shared by the batch, so the phase factors separate,
    ``e^{−2πik·o/N} = e^{−2πik·c/N} e^{−2πik·g/N}``, and only one complex product per
    (image, origin, point) is made.

    Parameters
    ----------
    x : Tensor, (B, K), complex
        Image values on the band.
    ctf : Tensor, (B, K), real
    inv_sigma2 : Tensor, (K,), real
        ``1/σ²`` at each band point.
    centres_px : Tensor, (B, 2)
        Centre of each image's origin search (RELION origins, pixels).
    offsets_px : Tensor, (S, 2)
        The search grid around the centres.
    b : Band

    Returns
    -------
    Tensor, (B, S, K), complex
    """
    base = x * (ctf * (b.weight * inv_sigma2)) * _phase(centres_px, b)
    return base[:, None, :] * _phase(offsets_px, b)[None, :, :]


def quadratic_terms(
    ctf: torch.Tensor, inv_sigma2: torch.Tensor, power: torch.Tensor, b: Band
) -> torch.Tensor:
    """``Σ_k (w/σ²) C² |P|²`` per image and rotation.

    Parameters
    ----------
    ctf : Tensor, (B, K)
    inv_sigma2 : Tensor, (K,)
    power : Tensor, (R, K) shared or (B, R, K) per image
        ``|P|²`` of the projections.

    Returns
    -------
    Tensor, (B, R)
    """
    c2 = ctf.square() * (b.weight * inv_sigma2)
    if power.ndim == 2:
        return c2 @ power.T
    return torch.einsum("bk,brk->br", c2, power)


def real_pairs(values: torch.Tensor) -> torch.Tensor:
    """Complex (..., K) as real (..., 2K) with real and imaginary parts interleaved (a view).

    ``Re Σ_k ā̄ P = Σ (Re ā Re P + Im ā Im P)``, so the cross term of conjugated data ``ā`` and
    projections ``P`` is the dot product of their real pairs: one real GEMM, no copies.
    """
    values = values.resolve_conj() if values.is_conj() else values
    return torch.view_as_real(values.contiguous()).reshape(*values.shape[:-1], -1)


def cross_terms_global(abar: torch.Tensor, projections_real: torch.Tensor) -> torch.Tensor:
    """``Re Σ_k a · P`` for shared rotations: ā (B, S, K) × P (R, 2K) real pairs → (B, S, R)."""
    bsz, s, k = abar.shape
    return (real_pairs(abar).reshape(bsz * s, 2 * k) @ projections_real.T).reshape(bsz, s, -1)


def cross_terms_local(abar: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
    """``Re Σ_k a · P`` for per-image rotations: ā (B, S, K) × P (B, R, K) → (B, S, R)."""
    return torch.bmm(real_pairs(abar), real_pairs(projections).transpose(1, 2))


def posterior(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised posterior over all but the first axis, and the log-normaliser (float64).

    Parameters
    ----------
    logits : Tensor, (B, ...)

    Returns
    -------
    probabilities : Tensor, (B, ...)
    log_normaliser : Tensor, (B,), float64
        ``log Σ exp(logits)``.
    """
    flat = logits.reshape(logits.shape[0], -1)
    top = flat.max(dim=1, keepdim=True).values
    p = torch.exp(flat - top)
    total = p.sum(1, keepdim=True)
    log_norm = top.squeeze(1).double() + torch.log(total.squeeze(1).double())
    return (p / total).reshape(logits.shape), log_norm


def significant(
    probabilities: torch.Tensor, *, mass: float = 0.999, keep: int = 8
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The most probable poses of each image that together hold ``mass`` of the posterior.

    Parameters
    ----------
    probabilities : Tensor, (B, P), rows summing to 1
    mass : float
        Posterior mass to cover (RELION's ``adaptive_fraction``, 0.999).
    keep : int
        At most this many poses are returned (and renormalised).

    Returns
    -------
    index : Tensor, (B, keep'), int64
        Pose indices, most probable first (``keep' = min(keep, P)``).
    weights : Tensor, (B, keep')
        Renormalised over the kept significant poses (0 for padding beyond them).
    count : Tensor, (B,), int64
        How many poses hold ``mass`` (RELION's ``rlnNrOfSignificantSamples``), before ``keep``.
    """
    keep = min(keep, probabilities.shape[1])
    values, index = torch.sort(probabilities, dim=1, descending=True)
    cumulative = torch.cumsum(values, dim=1)
    count = (cumulative < mass).sum(1) + 1
    count = count.clamp_max(probabilities.shape[1])
    values, index = values[:, :keep], index[:, :keep]
    used = torch.arange(keep, device=values.device)[None, :] < count[:, None]
    weights = torch.where(used, values, torch.zeros_like(values))
    weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-30)
    return index, weights, count
