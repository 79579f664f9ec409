"""Fourier points of particle images and the 3D coordinates of their central slices.

By the Fourier-slice theorem (RELION convention, :mod:`cryoglass.geometry.euler`), the 2D
transform of the projection at pose ``A`` is the 3D transform of the map on the plane

.. math:: \\hat P(k_x, k_y) = \\hat V\\big(A^{\\mathsf T} (k_x, k_y, 0)^{\\mathsf T}\\big).

A real image's transform is Hermitian, so the VAE works on the half-plane ``k_x ≥ 0`` of the
centred rfft grid (:func:`cryoglass.fourier.rfft2_centered`) and only inside the Nyquist
circle ``|k| < D/2`` [Fourier pixels]: about π D²/8 points per image instead of D².  Parseval
weights (2 for ``k_x > 0``, 1 on the ``k_x = 0`` column where both ``±k_y`` are kept) make
sums over these points equal to sums over the full grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cryoglass.ctf.ctf import ctf_at_frequencies
from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.fft import rfft2_centered
from cryoglass.fourier.grids import frequency_grid
from cryoglass.fourier.shift import phase_shift_fourier

__all__ = [
    "FourierPoints",
    "ctf_at_points",
    "encoder_features",
    "encoder_points",
    "fourier_points",
    "image_fourier_values",
    "recentred_spectra",
    "slice_coordinates",
]


@dataclass(frozen=True, eq=False)
class FourierPoints:
    """The rfft-grid points inside the Nyquist circle of a D × D image.

    Attributes
    ----------
    image_size : int
        D [pixels].
    rows, cols : Tensor, int64, shape (P,)
        Indices into the centred rfft grid (D, D//2 + 1).
    frequency_px : Tensor, float32, shape (P, 2)
        ``(k_x, k_y)`` in cycles per pixel.
    weights : Tensor, float32, shape (P,)
        Parseval weights (2 for ``k_x > 0``, else 1).
    """

    image_size: int
    rows: torch.Tensor
    cols: torch.Tensor
    frequency_px: torch.Tensor
    weights: torch.Tensor

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def to(self, device: torch.device | str) -> FourierPoints:
        """A copy on ``device``."""
        return FourierPoints(
            self.image_size,
            self.rows.to(device),
            self.cols.to(device),
            self.frequency_px.to(device),
            self.weights.to(device),
        )


def fourier_points(image_size: int, *, radius_fraction: float = 1.0) -> FourierPoints:
    """Points of the centred rfft grid with ``|k| < radius_fraction · D/2`` [Fourier px].

    Parameters
    ----------
    image_size : int
        D [pixels].
    radius_fraction : float
        Fraction of Nyquist to keep (1 keeps the whole circle; smaller is faster, lower resolution).

    Returns
    -------
    FourierPoints
    """
    if not 0 < radius_fraction <= 1:
        raise ValueError(f"radius_fraction must be in (0, 1], got {radius_fraction}")
    k = frequency_grid((image_size, image_size), pixel_size_angstrom=1.0, rfft=True)
    radius_px = k.norm(dim=-1) * image_size
    inside = radius_px < radius_fraction * image_size / 2
    rows, cols = torch.nonzero(inside, as_tuple=True)
    freq = k[rows, cols].to(torch.float32)
    weights = torch.where(freq[:, 0] > 0, 2.0, 1.0)
    return FourierPoints(image_size, rows, cols, freq, weights)


def slice_coordinates(rotations: torch.Tensor, frequency_px: torch.Tensor) -> torch.Tensor:
    """3D Fourier coordinates ``Aᵀ (k_x, k_y, 0)`` of central slices, in units of Nyquist.

    Parameters
    ----------
    rotations : Tensor, shape (B, 3, 3)
        RELION Euler matrices ``A``.
    frequency_px : Tensor, shape (P, 2)
        2D frequencies ``(k_x, k_y)`` [cycles/pixel].

    Returns
    -------
    Tensor, shape (B, P, 3) ordered (x, y, z)
        ``2 · Aᵀ (k_x, k_y, 0)`` (Nyquist = 0.5 cycles/pixel maps to 1).

    Notes
    -----
    :math:`(A^{\\mathsf T}\\mathbf k)_i = \\sum_j A_{ji} k_j = k_x A_{0i} + k_y A_{1i}`: only the
    first two rows of ``A`` matter.
    """
    rows = rotations[..., :2, :].to(frequency_px.dtype)
    return 2.0 * torch.einsum("pj,bji->bpi", frequency_px, rows)


def recentred_spectra(
    images: torch.Tensor, shift_angstrom: torch.Tensor | None, *, pixel_size_angstrom: float
) -> torch.Tensor:
    """Centred rfft of images with their origin offsets undone.

    Parameters
    ----------
    images : Tensor, real, shape (B, D, D)
    shift_angstrom : Tensor (B, 2) or None
        RELION origins (x, y) [Å]: the image is the centred projection moved by ``−origin``.
    pixel_size_angstrom : float

    Returns
    -------
    Tensor, complex, shape (B, D, D//2 + 1)
        ``rfft(image) · exp(−2πi k·origin)`` (content moved by ``+origin``: re-centred).
    """
    spectra = rfft2_centered(images)
    if shift_angstrom is None:
        return spectra
    return phase_shift_fourier(
        spectra,
        shift_angstrom.to(images.dtype),
        pixel_size_angstrom=pixel_size_angstrom,
        image_shape=tuple(images.shape[-2:]),
        rfft=True,
    )


def image_fourier_values(spectra: torch.Tensor, points: FourierPoints) -> torch.Tensor:
    """The values of centred rfft spectra (B, D, D//2+1) at ``points``: (B, P) complex."""
    return spectra[..., points.rows, points.cols]


def encoder_points(image_size: int, enc_size: int) -> FourierPoints:
    """The Fourier points the encoder sees: the half-plane points with ``|k| < enc_size/2`` [px]."""
    return fourier_points(image_size, radius_fraction=min(enc_size, image_size) / image_size)


def encoder_features(
    spectra: torch.Tensor, points: FourierPoints, *, ctf: torch.Tensor | None = None
) -> torch.Tensor:
    """The encoder's input: real and imaginary parts of re-centred spectra at ``points``.

    Parameters
    ----------
    spectra : Tensor, complex, shape (B, D, D//2 + 1)
        From :func:`recentred_spectra`.
    points : FourierPoints
        :func:`encoder_points` (a disc of diameter ``enc_size`` on the half plane: the same
        information as the image low-passed to ``enc_size`` pixels, without the other half).
    ctf : Tensor, shape (B, P), optional
        The particles' CTF at ``points`` (:func:`ctf_at_points`): the values are multiplied by
        its sign (*phase flipping*), as cryoDRGN does.

    Returns
    -------
    Tensor, real, shape (B, 2P)
        ``(Re F(k_1) … Re F(k_P), Im F(k_1) … Im F(k_P))``.

    Notes
    -----
    cryoDRGN's encoder also reads the images in Fourier space (Hartley values ``Re − Im``
    inside a disc, over the full plane: the same numbers up to an orthogonal change of basis).
    An MLP on real-space pixels learnt the latent space much more slowly with the same
    optimiser at 64² (benchmarks/RESULTS.md, issue 8).

    Phase flipping: an image is ``CTF · V̂``, and the CTF's sign alternates in rings whose
    radii depend on the defocus, so the same structure gives features of opposite sign in
    particles of different defocus.  ``sign(CTF) · CTF · V̂ = |CTF| · V̂`` removes that: the
    encoder sees one consistent signal (Wade 1992, "A brief look at imaging and contrast
    transfer", Ultramicroscopy 46:145-156, https://doi.org/10.1016/0304-3991(92)90011-8).
    """
    values = spectra[..., points.rows, points.cols]
    if ctf is not None:
        values = values * torch.sign(ctf)
    return torch.cat([values.real, values.imag], dim=-1)


def ctf_at_points(
    ctf: CTFParams, points: FourierPoints, *, pixel_size_angstrom: float
) -> torch.Tensor:
    """CTF of each particle at the Fourier points: (B, P) float32.

    Parameters
    ----------
    ctf : CTFParams
        Batch shape (B,).
    points : FourierPoints
    pixel_size_angstrom : float
    """
    freq = points.frequency_px.to(torch.float64) / pixel_size_angstrom
    return ctf_at_frequencies(ctf, freq.to(points.frequency_px.device)).to(torch.float32)
