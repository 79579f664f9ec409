"""Training a :class:`~cryoglass.hetero.models.HeteroVAE` on images with known poses and CTF.

For each image ``x`` (re-centred, in Fourier space on the points of
:func:`~cryoglass.hetero.slices.fourier_points`):

1. the encoder reads the image's Fourier coefficients times the sign of its CTF (phase
   flipping) and gives ``q(z|x) = 𝒩(μ, diag σ²)``; ``z = μ + σ ε`` (reparameterisation);
2. the decoder evaluates the volume's transform on the particle's central slice
   ``Aᵀ(k_x, k_y, 0)``; the model image is ``CTF · V̂_z``;
3. the loss per image is the negative ELBO per Fourier pixel

.. math::

    L = \\frac{1}{\\sum_p w_p}\\Big[\\sum_p w_p\\,
        \\big|\\mathrm{CTF}_p \\hat V_z(A^{\\mathsf T}\\mathbf k_p) - \\hat x_p / s\\big|^2
        + \\beta\\, \\mathrm{KL}\\big(q(z|x)\\,\\|\\,\\mathcal N(0, I)\\big)\\Big]

(a Gaussian likelihood with variance ½ in units of the data RMS ``s``; ``w_p`` are Parseval
weights; ``β`` weighs the prior).  Adam minimises the mean of ``L`` over minibatches.

Reproducibility: the network is initialised from ``seed``; epoch ``e`` shuffles the particles
and draws ε from generators seeded by ``(seed, e)``, so resuming from the checkpoint written
after epoch ``e`` continues exactly as an uninterrupted run (on the same device).

References
----------
Zhong et al. (2021) Nat. Methods 18:176-185. https://doi.org/10.1038/s41592-020-01049-4
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.hetero.models import HeteroVAE, VAEConfig, kl_divergence, reparameterize
from cryoglass.hetero.slices import (
    FourierPoints,
    ctf_at_points,
    encoder_features,
    encoder_points,
    fourier_points,
    image_fourier_values,
    recentred_spectra,
    slice_coordinates,
)

__all__ = [
    "Batch",
    "ParticleData",
    "TrainConfig",
    "batch_loss",
    "build_model",
    "checkpoint_payload",
    "encode_latents",
    "estimate_scales",
    "fit",
    "model_from_checkpoint",
    "make_optimizer",
    "prepare_batch",
    "subsample_points",
    "train_epoch",
]

CHECKPOINT_FORMAT = "cryoglass-vae-checkpoint"


@dataclass(frozen=True, eq=False)
class ParticleData:
    """Particles as the VAE needs them: an image reader plus poses and CTF tensors.

    Attributes
    ----------
    read_images : callable
        ``indices (B,) int64 → images (B, D, D) float32`` (e.g. ``ParticleStack.read``).
    rotations : Tensor, shape (N, 3, 3)
        RELION Euler matrices ``A``.
    shift_angstrom : Tensor (N, 2) or None
        RELION origins [Å].
    ctf : CTFParams or None
        Fields of shape (N,); None for no CTF.
    pixel_size_angstrom : float
    image_size : int
    """

    read_images: Callable[[torch.Tensor], torch.Tensor]
    rotations: torch.Tensor
    shift_angstrom: torch.Tensor | None
    ctf: CTFParams | None
    pixel_size_angstrom: float
    image_size: int

    def __len__(self) -> int:
        return int(self.rotations.shape[0])


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes
    ----------
    epochs : int
        Total number of epochs (a resumed run continues up to this number).
    batch_size : int
    learning_rate : float
        Adam step size.
    beta : float
        Weight of the KL term.
    seed : int
    use_ctf : bool
        Multiply the decoder's slices by the CTF.
    radius_fraction : float
        Fit only Fourier points within this fraction of Nyquist (1: all).
    point_fraction : float
        At each step decode every Fourier point below ``dense_radius_fraction`` of Nyquist and
        a random ``point_fraction`` of the others (1: all points; :func:`subsample_points`).
        The decoder's work, most of an epoch's time, shrinks about in proportion; every point
        is still fitted, at other steps, the ones beyond the radius with ``point_fraction``
        of their weight on average.
    dense_radius_fraction : float
        Radius [fraction of Nyquist] within which ``point_fraction`` keeps every point (the low
        frequencies, which carry most of the signal of a conformational change).
    amp : bool
        bfloat16 autocast on CUDA (ignored on CPU).
    """

    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 1e-4
    beta: float = 1.0
    seed: int = 0
    use_ctf: bool = True
    radius_fraction: float = 1.0
    point_fraction: float = 1.0
    dense_radius_fraction: float = 0.3
    amp: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta}")
        if not 0 < self.radius_fraction <= 1:
            raise ValueError(f"radius_fraction must be in (0, 1], got {self.radius_fraction}")
        if not 0 < self.point_fraction <= 1:
            raise ValueError(f"point_fraction must be in (0, 1], got {self.point_fraction}")
        if not 0 <= self.dense_radius_fraction <= 1:
            raise ValueError(
                f"dense_radius_fraction must be in [0, 1], got {self.dense_radius_fraction}"
            )


@dataclass(frozen=True, eq=False)
class Batch:
    """One minibatch, ready for the model (all on the model's device).

    Attributes
    ----------
    encoder_input : Tensor (B, 2P)
    values : Tensor, complex (B, P)
        Normalised image Fourier values at the points.
    ctf : Tensor (B, P) or None
    coords : Tensor (B, P, 3)
        Slice coordinates in units of Nyquist.
    weights : Tensor (P,)
    """

    encoder_input: torch.Tensor
    values: torch.Tensor
    ctf: torch.Tensor | None
    coords: torch.Tensor
    weights: torch.Tensor


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def build_model(config: VAEConfig, *, seed: int, device: torch.device | str = "cpu") -> HeteroVAE:
    """A freshly initialised model, reproducible from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HeteroVAE(config)
    return model.to(device)


def make_optimizer(model: HeteroVAE, config: TrainConfig) -> torch.optim.Adam:
    """Adam on all parameters (the fused kernel: one step is a few vectorised passes)."""
    return torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)


def _check_data(model: HeteroVAE, data: ParticleData) -> None:
    if data.image_size != model.config.image_size:
        raise ValueError(
            f"images are {data.image_size}x{data.image_size} but the model was built for "
            f"{model.config.image_size}x{model.config.image_size}"
        )


def _spectra(data: ParticleData, indices: torch.Tensor, device: torch.device) -> torch.Tensor:
    images = data.read_images(indices).to(device=device, dtype=torch.float32)
    if tuple(images.shape[-2:]) != (data.image_size, data.image_size):
        raise ValueError(
            f"images are {tuple(images.shape[-2:])} but the metadata says box {data.image_size}"
        )
    shift = None if data.shift_angstrom is None else data.shift_angstrom[indices].to(device)
    return recentred_spectra(images, shift, pixel_size_angstrom=data.pixel_size_angstrom)


def _encoder_input(
    model: HeteroVAE, data: ParticleData, indices: torch.Tensor, spectra: torch.Tensor
) -> torch.Tensor:
    """Normalised encoder features of these particles, phase-flipped when the model says so."""
    points = encoder_points(data.image_size, model.config.enc_size)
    ctf = None
    if model.config.phase_flip and data.ctf is not None:
        ctf = ctf_at_points(
            data.ctf[indices], points, pixel_size_angstrom=data.pixel_size_angstrom
        ).to(spectra.device)
    return encoder_features(spectra, points, ctf=ctf) / model.encoder_scale


def estimate_scales(
    data: ParticleData,
    points: FourierPoints,
    *,
    enc_size: int,
    max_images: int = 1000,
    batch_size: int = 256,
) -> tuple[float, float]:
    """Data normalisation from the first ``max_images`` particles.

    Returns
    -------
    fourier_scale : float
        Parseval-weighted RMS of the Fourier values at ``points``.
    encoder_scale : float
        Standard deviation of the encoder's input features.
    """
    n = min(len(data), max_images)
    power, weight, enc_sq, enc_count = 0.0, 0.0, 0.0, 0
    for start in range(0, n, batch_size):
        indices = torch.arange(start, min(start + batch_size, n))
        spectra = _spectra(data, indices, torch.device("cpu"))
        values = image_fourier_values(spectra, points)
        power += float((points.weights * values.abs() ** 2).sum())
        weight += float(points.weights.sum()) * len(indices)
        enc = encoder_features(spectra, encoder_points(data.image_size, enc_size))
        enc_sq += float((enc**2).sum())
        enc_count += enc.numel()
    return math.sqrt(power / weight) or 1.0, math.sqrt(enc_sq / enc_count) or 1.0


def prepare_batch(
    model: HeteroVAE,
    data: ParticleData,
    indices: torch.Tensor,
    points: FourierPoints,
    *,
    use_ctf: bool,
) -> Batch:
    """Read, re-centre and normalise the images at ``indices``; slice coordinates and CTF."""
    device = _device_of(model)
    spectra = _spectra(data, indices, device)
    values = image_fourier_values(spectra, points) / model.fourier_scale
    ctf = None
    if use_ctf and data.ctf is not None:
        ctf = ctf_at_points(
            data.ctf[indices], points, pixel_size_angstrom=data.pixel_size_angstrom
        ).to(device)
    coords = slice_coordinates(data.rotations[indices].to(device), points.frequency_px)
    enc = _encoder_input(model, data, indices, spectra)
    return Batch(enc, values, ctf, coords, points.weights)


def subsample_points(
    batch: Batch, fraction: float, *, dense_radius: float = 0.0, generator: torch.Generator
) -> Batch:
    r"""The batch at its low-frequency points and a random ``fraction`` of the others.

    Every point with ``|k| < dense_radius`` (in units of Nyquist) is kept, and of the others a
    uniformly random ``round(fraction · n)``, the same for every image of the batch.  The kept
    points keep their own weights ``w_k``, rescaled together to the full ``Σ_k w_k`` so that
    the KL term keeps its weight ``β · KL / Σ_k w_k``.  The decoder, most of a step's time,
    does about ``fraction`` of the work beyond ``dense_radius``.

    What is optimised: a point beyond ``dense_radius`` enters a step with chance ``fraction``,
    so the expected loss is the full one with those frequencies weighted by ``fraction``

    .. math:: \mathbb E[L] \propto \sum_{|k| < R} w_k |r_k|^2
              + F \sum_{|k| \ge R} w_k |r_k|^2 ,

    a frequency-weighted Gaussian likelihood.  Each point's residual has the same optimum, so a
    flexible decoder still fits every frequency (the high ones more slowly); the latent space,
    carried mostly by the low frequencies, trains with less noise.  Weighting the drawn points
    up by ``1/F`` instead makes the loss an unbiased estimate of the full one
    (Horvitz–Thompson), but multiplies the noise of the mostly-noise high frequencies by
    ``1/F`` in every gradient: at 64² it trained the latent space more slowly and less
    steadily (benchmarks/RESULTS.md, issue 8).

    Parameters
    ----------
    batch : Batch
    fraction : float
        In (0, 1]; at least one point beyond ``dense_radius`` is kept.
    dense_radius : float
        Radius [fraction of Nyquist] within which every point is kept (0: uniform subsampling).
    generator : torch.Generator
        CPU generator that draws the subset (seeded: runs and resumed runs repeat).

    Returns
    -------
    Batch
    """
    device = batch.weights.device
    radius = batch.coords[0].norm(dim=-1)  # |k| / Nyquist: the same for every image's slice
    dense = radius < dense_radius
    sparse = torch.nonzero(~dense).squeeze(1)
    count = sparse.numel()
    keep = max(1, round(fraction * count)) if count else 0
    drawn = sparse[torch.randperm(count, generator=generator)[:keep].to(device)]
    chosen = torch.cat([torch.nonzero(dense).squeeze(1), drawn]).sort().values
    weights = batch.weights[chosen] * (batch.weights.sum() / batch.weights[chosen].sum())
    return Batch(
        batch.encoder_input,
        batch.values[:, chosen],
        None if batch.ctf is None else batch.ctf[:, chosen],
        batch.coords[:, chosen],
        weights,
    )


def batch_loss(
    model: HeteroVAE, batch: Batch, *, beta: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss of one batch (module docstring).

    Returns
    -------
    loss : Tensor ()
        Mean over the batch of ``L``.
    reconstruction : Tensor (B,)
        Weighted mean squared error per image.
    kl : Tensor (B,)
    mu : Tensor (B, zdim)
        Posterior means (detached).
    """
    mu, logvar = model.encode(batch.encoder_input)
    z = reparameterize(mu, logvar, generator=generator) if model.config.zdim > 0 else None
    predicted = model.decode(batch.coords, z)
    if batch.ctf is not None:
        predicted = predicted * batch.ctf
    total_weight = batch.weights.sum()
    residual = (predicted - batch.values).abs() ** 2
    reconstruction = (residual * batch.weights).sum(dim=-1) / total_weight
    kl = kl_divergence(mu.float(), logvar.float())
    loss = (reconstruction + beta * kl / total_weight).mean()
    return loss, reconstruction.detach(), kl.detach(), mu.detach()


def _epoch_generators(seed: int, epoch: int, device: torch.device):
    base = (seed * 1_000_003 + epoch * 7919) % (2**62)
    order = torch.Generator().manual_seed(base)
    noise = torch.Generator(device=device).manual_seed(base + 1)
    return order, noise


def train_epoch(
    model: HeteroVAE,
    optimizer: torch.optim.Optimizer,
    data: ParticleData,
    points: FourierPoints,
    *,
    config: TrainConfig,
    epoch: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """One pass over the particles in a seeded random order.

    Parameters
    ----------
    model, optimizer
    data : ParticleData
    points : FourierPoints
        On the model's device.
    config : TrainConfig
    epoch : int
        0-based epoch number (seeds the order and the noise).
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.

    Returns
    -------
    dict
        ``epoch`` (1-based), ``loss``, ``reconstruction``, ``kl`` (means over particles),
        ``seconds``.
    """
    _check_data(model, data)
    device = _device_of(model)
    order_gen, noise_gen = _epoch_generators(config.seed, epoch, device)
    order = torch.randperm(len(data), generator=order_gen)
    amp = config.amp and device.type == "cuda"
    model.train()
    sums = torch.zeros(3, dtype=torch.float64)
    start = time.perf_counter()
    for first in range(0, len(data), config.batch_size):
        indices = order[first : first + config.batch_size]
        batch = prepare_batch(model, data, indices, points, use_ctf=config.use_ctf)
        if config.point_fraction < 1:
            batch = subsample_points(
                batch,
                config.point_fraction,
                dense_radius=config.dense_radius_fraction,
                generator=order_gen,
            )
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss, rec, kl, _ = batch_loss(model, batch, beta=config.beta, generator=noise_gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += torch.stack([loss.detach() * len(indices), rec.sum(), kl.sum()]).cpu().double()
        if progress is not None:
            progress(min(first + config.batch_size, len(data)), len(data))
    means = (sums / len(data)).tolist()
    return {
        "epoch": epoch + 1,
        "loss": means[0],
        "reconstruction": means[1],
        "kl": means[2],
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def encode_latents(model: HeteroVAE, data: ParticleData, *, batch_size: int = 256) -> torch.Tensor:
    """Posterior means ``μ`` of every particle, in data order: (N, zdim) float32 on the CPU."""
    _check_data(model, data)
    device = _device_of(model)
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(data)))
        mu, _ = model.encode(_encoder_input(model, data, indices, _spectra(data, indices, device)))
        out.append(mu.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.zdim)


def fit(
    model: HeteroVAE,
    data: ParticleData,
    *,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer | None = None,
    start_epoch: int = 0,
    on_epoch_end: Callable[[dict[str, float], torch.Tensor], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, float]]:
    """Train from ``start_epoch`` to ``config.epochs``.

    Parameters
    ----------
    model : HeteroVAE
        Its ``fourier_scale``/``encoder_scale`` are set from the data when training starts
        from epoch 0.
    data : ParticleData
    config : TrainConfig
    optimizer : torch.optim.Optimizer, optional
        Default: a new Adam (pass the restored one to resume).
    start_epoch : int
        Number of epochs already done.
    on_epoch_end : callable, optional
        ``on_epoch_end(stats, latents)`` after each epoch (e.g. to write a checkpoint).
    progress : callable, optional
        Passed to :func:`train_epoch`.

    Returns
    -------
    list of dict
        The stats of the epochs run here.
    """
    _check_data(model, data)
    points = fourier_points(data.image_size, radius_fraction=config.radius_fraction)
    if start_epoch == 0:
        fourier_scale, encoder_scale = estimate_scales(data, points, enc_size=model.config.enc_size)
        model.fourier_scale.fill_(fourier_scale)
        model.encoder_scale.fill_(encoder_scale)
    points = points.to(_device_of(model))
    if optimizer is None:
        optimizer = make_optimizer(model, config)
    history = []
    for epoch in range(start_epoch, config.epochs):
        stats = train_epoch(
            model, optimizer, data, points, config=config, epoch=epoch, progress=progress
        )
        latents = encode_latents(model, data, batch_size=max(config.batch_size, 256))
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(stats, latents)
    return history


def checkpoint_payload(
    model: HeteroVAE,
    optimizer: torch.optim.Optimizer,
    *,
    config: TrainConfig,
    epoch: int,
    history: list[dict[str, float]],
) -> dict:
    """The checkpoint after ``epoch`` epochs: model, optimiser, configs and loss history.

    Plain types and tensors only, so the file that ``cryoglass.io.save_tensors`` writes from
    it loads with ``weights_only=True`` (:func:`cryoglass.io.load_tensors`, then
    :func:`model_from_checkpoint`).

    Parameters
    ----------
    model : HeteroVAE
    optimizer : torch.optim.Optimizer
        Its state (Adam moments) makes a resumed run continue exactly.
    config : TrainConfig
    epoch : int
        Number of completed epochs.
    history : list of dict
        Stats of the completed epochs.

    Returns
    -------
    dict
        ``format`` (``"cryoglass-vae-checkpoint"``), ``version``, ``epoch``, ``vae_config``,
        ``train_config``, ``model`` (state dict), ``optimizer`` (state dict) and ``history``.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "epoch": int(epoch),
        "vae_config": model.config.as_dict(),
        "train_config": dataclasses.asdict(config),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": list(history),
    }


def model_from_checkpoint(
    payload: dict,
    *,
    device: torch.device | str = "cpu",
    expected: VAEConfig | None = None,
    source: str = "checkpoint",
) -> HeteroVAE:
    """Rebuild the model of a checkpoint payload (read by :func:`cryoglass.io.load_tensors`).

    Parameters
    ----------
    payload : dict
        What :func:`checkpoint_payload` made (``format``, ``vae_config``, ``model`` …).
    device : optional
    expected : VAEConfig, optional
        Raise if the checkpoint's architecture differs from this one.
    source : str
        Names the checkpoint in error messages (its file).

    Returns
    -------
    HeteroVAE

    Raises
    ------
    ValueError
        Not a cryoglass VAE checkpoint, or an architecture that does not match.
    """
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{source}: not a cryoglass VAE checkpoint (no '{CHECKPOINT_FORMAT}' tag)")
    # checkpoints written before VAEConfig.phase_flip existed were trained without it
    config = VAEConfig(**{"phase_flip": False, **payload["vae_config"]})
    if expected is not None and expected != config:
        diff = [
            f"{k}: checkpoint {v}, requested {getattr(expected, k)}"
            for k, v in config.as_dict().items()
            if getattr(expected, k) != v
        ]
        raise ValueError(f"{source}: checkpoint has another architecture ({'; '.join(diff)})")
    model = HeteroVAE(config).to(device)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise ValueError(
            f"{source}: weights do not fit the architecture in the checkpoint: {error}"
        ) from error
    return model
