"""The networks of a cryoDRGN-style VAE: image encoder, positional encoding, Fourier decoder.

The decoder is a *coordinate network*: it maps a 3D Fourier coordinate ``k`` (and a latent
vector ``z``) to the value of the structure's 3D Fourier transform there,

.. math:: \\hat V_z(\\mathbf k) = g_\\theta\\big(\\gamma(\\mathbf k), \\mathbf z\\big),

so one network stands for a whole family of volumes.  ``γ`` is a sinusoidal positional
encoding (the network could not represent fast oscillations of ``k`` from the raw coordinates).
A real volume has a Hermitian transform,
:math:`\\hat V(-\\mathbf k) = \\overline{\\hat V(\\mathbf k)}`;
the decoder enforces it by evaluating ``g`` only on the half-space ``k_z > 0`` (ties broken on
``k_y``, then ``k_x``) and conjugating for the other half.

Coordinates are in units of Nyquist: ``x = k / k_Nyquist = 2 · k[cycles/pixel]`` so
``|x| ≤ 1`` inside the sphere the images constrain.

References
----------
Zhong, Bepler, Berger & Davis (2021) CryoDRGN: reconstruction of heterogeneous cryo-EM
structures using neural networks. Nat. Methods 18:176-185.
https://doi.org/10.1038/s41592-020-01049-4

Kingma & Welling (2014) Auto-encoding variational Bayes. ICLR. https://arxiv.org/abs/1312.6114
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from cryoglass.hetero.slices import encoder_points

__all__ = [
    "FourierDecoder",
    "HeteroVAE",
    "ImageEncoder",
    "VAEConfig",
    "gaussian_encoding",
    "gaussian_frequencies",
    "hermitian_half",
    "kl_divergence",
    "positional_encoding",
    "reparameterize",
]


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of a :class:`HeteroVAE` (everything needed to rebuild it).

    Attributes
    ----------
    image_size : int
        Box size D of the particle images [pixels].
    zdim : int
        Latent dimension (0: a homogeneous neural reconstruction, no encoder).
    enc_size : int
        The encoder sees the re-centred images' Fourier coefficients in a disc of diameter
        ``enc_size`` [Fourier px] (the image low-passed to ``enc_size`` pixels).
    enc_dim, enc_layers : int
        Width of the encoder MLP and its number of residual hidden layers after the input
        layer (cryoDRGN's ``--enc-dim``/``--enc-layers``: same depth for the same numbers).
    dec_dim, dec_layers : int
        The same for the decoder MLP.
    n_frequencies : int
        ``F``: the positional encoding has ``6F`` sinusoid features (default ``D/2``).
    encoding : {"gaussian", "geometric"}
        Positional encoding of the decoder: random Gaussian Fourier features
        (:func:`gaussian_encoding`, cryoDRGN's default) or axis-aligned geometric frequencies
        (:func:`positional_encoding`).
    feature_sigma : float
        Width of the Gaussian frequencies, in cryoDRGN's units (its ``--feat-sigma``).
    phase_flip : bool
        The encoder reads the images multiplied by the sign of their CTF, when the data has
        CTF parameters (:func:`cryoglass.hetero.slices.encoder_features`; cryoDRGN does the
        same).
    """

    image_size: int
    zdim: int = 8
    enc_size: int = 64
    enc_dim: int = 256
    enc_layers: int = 3
    dec_dim: int = 256
    dec_layers: int = 3
    n_frequencies: int = 0  # 0: image_size // 2
    encoding: str = "gaussian"
    feature_sigma: float = 0.5
    phase_flip: bool = True

    def __post_init__(self) -> None:
        for name in ("image_size", "enc_size", "enc_dim", "enc_layers", "dec_dim", "dec_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"VAEConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.zdim < 0:
            raise ValueError(f"VAEConfig.zdim must be >= 0, got {self.zdim}")
        if self.encoding not in ("gaussian", "geometric"):
            raise ValueError(
                f"VAEConfig.encoding must be 'gaussian' or 'geometric', got {self.encoding!r}"
            )
        if not self.feature_sigma > 0:
            raise ValueError(f"VAEConfig.feature_sigma must be > 0, got {self.feature_sigma}")
        if self.n_frequencies == 0:
            object.__setattr__(self, "n_frequencies", max(self.image_size // 2, 1))
        if self.enc_size > self.image_size:
            object.__setattr__(self, "enc_size", self.image_size)

    def as_dict(self) -> dict[str, int | float | str]:
        """Plain dict (for JSON and checkpoints)."""
        return dataclasses.asdict(self)


def positional_encoding(
    coords: torch.Tensor, *, n_frequencies: int, image_size: int
) -> torch.Tensor:
    """Sinusoidal features of 3D Fourier coordinates.

    Parameters
    ----------
    coords : Tensor, shape (..., 3)
        Coordinates in units of Nyquist (``|x| ≤ 1`` inside the Nyquist sphere).
    n_frequencies : int
        ``F``, frequencies per axis.
    image_size : int
        Box size D; sets the highest frequency.

    Returns
    -------
    Tensor, shape (..., 3 + 6F)
        ``(x, sin(ω_j x_a), cos(ω_j x_a))`` for axes ``a`` and ``j = 0 … F−1``.

    Notes
    -----
    :math:`\\omega_j = \\pi (D/2)^{j/(F-1)}`, geometric from π to π D/2.  The transform of an
    object at distance ``r`` [px] from the origin oscillates like :math:`e^{-i\\pi x r}` in
    these units, so the top frequency resolves features out to the box edge ``r = D/2``.
    """
    exponent = torch.arange(n_frequencies, device=coords.device, dtype=coords.dtype)
    exponent = exponent / max(n_frequencies - 1, 1)
    omega = math.pi * (image_size / 2) ** exponent  # (F,)
    angles = (coords[..., :, None] * omega).flatten(-2)  # (..., 3F)
    return torch.cat([coords, torch.sin(angles), torch.cos(angles)], dim=-1)


def gaussian_frequencies(
    n_features: int, *, image_size: int, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random frequency vectors ``Ω`` (n_features, 3) of :func:`gaussian_encoding`.

    ``Ω ~ 𝒩(0, s² I)`` with ``s = σ D / 4`` per coordinate unit (Nyquist = 1).  This is
    cryoDRGN's ``--pe-type gaussian`` with ``--feat-sigma σ``: it draws ``σ · D/2`` per unit of
    its lattice coordinates, whose Nyquist is 0.5.
    """
    scale = sigma * image_size / 4
    return torch.randn(n_features, 3, generator=generator) * scale


def gaussian_encoding(coords: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    r"""Random Fourier features of 3D Fourier coordinates (Tancik et al. 2020).

    Parameters
    ----------
    coords : Tensor, shape (..., 3)
        Coordinates in units of Nyquist.
    frequencies : Tensor, shape (M, 3)
        :func:`gaussian_frequencies`.

    Returns
    -------
    Tensor, shape (..., 3 + 2M)
        ``(x, sin(Ω x), cos(Ω x))``.

    Notes
    -----
    A feature :math:`\sin(\boldsymbol\omega\cdot\mathbf x)` is the Fourier transform of a
    pair of points at :math:`\pm\boldsymbol\omega/\pi` pixels from the origin (in these units
    :math:`e^{-i\pi\mathbf x\cdot\mathbf r}` is a point at ``r``).  With ``σ = 0.5`` most
    features sit within a few pixels of the centre: the network starts from smooth functions of
    the Fourier coordinate (compact real-space objects) and its layers build finer ones.  With
    the same learning rate this trained the latent space faster than axis-aligned geometric
    frequencies up to the box edge (benchmarks/RESULTS.md, issue 8).

    References
    ----------
    Tancik, M. et al. (2020). Fourier features let networks learn high frequency functions in
    low dimensional domains. NeurIPS 33. https://arxiv.org/abs/2006.10739
    """
    angles = coords @ frequencies.to(coords.dtype).T
    return torch.cat([coords, torch.sin(angles), torch.cos(angles)], dim=-1)


def hermitian_half(coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map coordinates onto the half-space the decoder is evaluated on.

    Parameters
    ----------
    coords : Tensor, shape (..., 3) ordered (x, y, z)

    Returns
    -------
    canonical : Tensor, shape (..., 3)
        ``k`` or ``−k``, whichever lies in ``k_z > 0`` (ties on ``k_z = 0`` go to ``k_y > 0``,
        then ``k_x ≥ 0``).
    flipped : Tensor, bool, shape (...)
        Where ``−k`` was taken (the decoder's value there must be conjugated).
    """
    x, y, z = coords.unbind(-1)
    flipped = (z < 0) | ((z == 0) & ((y < 0) | ((y == 0) & (x < 0))))
    sign = 1.0 - 2.0 * flipped.to(coords.dtype)
    return coords * sign[..., None], flipped


class _ResidualMLP(nn.Module):
    """Linear → ReLU, then ``layers`` residual blocks ``h + ReLU(W h + b)``, then Linear.

    ``layers`` counts the residual hidden blocks after the input layer, as cryoDRGN's
    ``--enc-layers``/``--dec-layers`` do, so that the same numbers build networks of the same
    depth and size in both programs.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, out_dim)

    def body(self, h: torch.Tensor) -> torch.Tensor:
        h = torch.relu(h)
        for layer in self.hidden:
            h = h + torch.relu(layer(h))
        return self.out(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.body(self.inp(x))


class ImageEncoder(nn.Module):
    """MLP from an image's Fourier coefficients to the latent posterior ``q(z|x)``.

    Parameters
    ----------
    in_features : int
        Length of the input vectors: ``2P`` for the ``P`` points of
        :func:`cryoglass.hetero.slices.encoder_points` (real and imaginary parts).
    hidden, layers : int
        Width and number of residual hidden layers after the input layer.
    zdim : int
        Latent dimension (≥ 1).

    Notes
    -----
    Returns the mean ``μ`` and ``log σ²`` of a diagonal Gaussian.
    """

    def __init__(self, in_features: int, hidden: int, layers: int, zdim: int) -> None:
        super().__init__()
        self.mlp = _ResidualMLP(in_features, hidden, layers, 2 * zdim)
        self.zdim = zdim

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features`` (B, in_features) → ``(mu, logvar)``, each (B, zdim)."""
        out = self.mlp(features)
        return out[..., : self.zdim], out[..., self.zdim :]


class FourierDecoder(nn.Module):
    """Coordinate MLP: (3D Fourier coordinate, z) → complex Fourier value, Hermitian.

    Parameters
    ----------
    image_size : int
        Box size D.
    n_frequencies : int
        ``F``: ``6F`` sinusoid features.
    hidden, layers : int
        Width and number of residual hidden layers after the input layer.
    zdim : int
        Latent dimension (0: no latent input).
    encoding : {"gaussian", "geometric"}
        :func:`gaussian_encoding` (``3F`` random frequency vectors, a buffer saved with the
        weights) or :func:`positional_encoding` (``F`` frequencies per axis).
    feature_sigma : float
        σ of :func:`gaussian_frequencies`.

    Notes
    -----
    The first layer acts on the concatenation ``[γ(k), z]``; it is computed as
    ``W_γ γ(k) + W_z z`` so that ``W_z z`` is evaluated once per image rather than once per
    Fourier point (the same function, fewer operations).
    """

    def __init__(
        self,
        image_size: int,
        n_frequencies: int,
        hidden: int,
        layers: int,
        zdim: int,
        *,
        encoding: str = "gaussian",
        feature_sigma: float = 0.5,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.n_frequencies = n_frequencies
        self.encoding = encoding
        if encoding == "gaussian":  # drawn from the (seeded) global generator, as the weights
            omega = gaussian_frequencies(
                3 * n_frequencies, image_size=image_size, sigma=feature_sigma
            )
            self.register_buffer("frequencies", omega)
        self.mlp = _ResidualMLP(3 + 6 * n_frequencies, hidden, layers, 2)
        self.latent = nn.Linear(zdim, hidden, bias=False) if zdim > 0 else None

    def features(self, coords: torch.Tensor) -> torch.Tensor:
        """The positional encoding ``γ(k)`` (..., 3 + 6F) of canonical coordinates."""
        if self.encoding == "gaussian":
            return gaussian_encoding(coords, self.frequencies)
        return positional_encoding(
            coords, n_frequencies=self.n_frequencies, image_size=self.image_size
        )

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Fourier values at ``coords``.

        Parameters
        ----------
        coords : Tensor, shape (B, P, 3) or (P, 3)
            Coordinates in units of Nyquist, ordered (x, y, z).
        z : Tensor, shape (B, zdim), optional
            Latent vectors (required when ``zdim > 0``).

        Returns
        -------
        Tensor, complex, shape (B, P) or (P,)
        """
        canonical, flipped = hermitian_half(coords)
        h = self.mlp.inp(self.features(canonical))
        if self.latent is not None:
            if z is None:
                raise ValueError("FourierDecoder: this decoder needs latent vectors z")
            h = h + self.latent(z)[..., None, :]
        out = self.mlp.body(h).float()
        imag = torch.where(flipped, -out[..., 1], out[..., 1])
        return torch.complex(out[..., 0], imag)


class HeteroVAE(nn.Module):
    """Encoder + decoder of a :class:`VAEConfig` (encoder absent for ``zdim = 0``).

    Parameters
    ----------
    config : VAEConfig

    Notes
    -----
    Buffers ``fourier_scale`` (RMS of the images' Fourier values) and ``encoder_scale`` (std of
    the encoder's input features) hold the data normalisation: the decoder predicts Fourier values
    divided by ``fourier_scale``.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        n_inputs = 2 * len(encoder_points(c.image_size, c.enc_size))
        self.encoder = (
            ImageEncoder(n_inputs, c.enc_dim, c.enc_layers, c.zdim) if c.zdim > 0 else None
        )
        self.decoder = FourierDecoder(
            c.image_size,
            c.n_frequencies,
            c.dec_dim,
            c.dec_layers,
            c.zdim,
            encoding=c.encoding,
            feature_sigma=c.feature_sigma,
        )
        # data normalisation, set before training and saved with the weights
        self.register_buffer("fourier_scale", torch.tensor(1.0))
        self.register_buffer("encoder_scale", torch.tensor(1.0))

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features (B, 2P) → ``(mu, logvar)`` (B, zdim); empty (B, 0) for zdim 0."""
        if self.encoder is None:
            empty = features.new_zeros(features.shape[0], 0)
            return empty, empty
        return self.encoder(features)

    def decode(self, coords: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Fourier values (B, P) complex at ``coords`` (B, P, 3) for latents ``z`` (B, zdim)."""
        return self.decoder(coords, z if self.config.zdim > 0 else None)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample ``z = μ + σ ε`` with ``ε ~ 𝒩(0, I)`` (differentiable in μ and σ).

    Parameters
    ----------
    mu, logvar : Tensor, shape (B, zdim)
    generator : torch.Generator, optional
        On the tensors' device.

    Returns
    -------
    Tensor, shape (B, zdim)

    Notes
    -----
    Sampling ``z ~ 𝒩(μ, σ²)`` directly has no gradient with respect to μ, σ; writing the sample
    as a deterministic function of (μ, σ) and parameter-free noise ε moves the randomness out
    of the path of the gradient (Kingma & Welling 2014).
    """
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(𝒩(μ, σ²) ‖ 𝒩(0, I)) per sample.

    Parameters
    ----------
    mu, logvar : Tensor, shape (B, zdim)

    Returns
    -------
    Tensor, shape (B,)

    Notes
    -----
    :math:`\\mathrm{KL} = -\\tfrac12 \\sum_i (1 + \\log\\sigma_i^2 - \\mu_i^2 - \\sigma_i^2)`.
    """
    return -0.5 * (1 + logvar - mu**2 - torch.exp(logvar)).sum(dim=-1)
