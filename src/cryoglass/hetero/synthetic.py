"""Small heterogeneous test sets with a known latent variable: Gaussian blobs, some of them moving.

A map is a sum of isotropic 3D Gaussians (:func:`cryoglass.simulate.gaussian_map`).  A subset of
the blobs is displaced along a fixed unit direction ``u`` by an amplitude ``a`` [Å]:

.. math:: \\mathbf c_m(a) = \\mathbf c_m + a\\, \\mathbf u\\;[m \\text{ moving}],

so each particle is a different structure and ``a`` is the ground-truth latent coordinate.
Images are the exact projections (a rotated Gaussian stays Gaussian; centre ``(A c)_{xy}``),
filtered by the CTF, moved by ``−origin`` (RELION's meaning) and given white Gaussian noise at
a chosen SNR.  These data stand in for the normal-mode-deformed sets of the NMA module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryoglass.ctf.correct import multiply_ctf
from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.grids import centered_indices
from cryoglass.fourier.shift import shift_image
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.simulate.distributions import uniform_orientations
from cryoglass.simulate.noise import add_gaussian_noise, circular_mask, noise_std_for_snr
from cryoglass.simulate.phantom import gaussian_map

__all__ = [
    "BlobModel",
    "SyntheticParticles",
    "arm_model",
    "blob_model",
    "blob_particles",
    "two_state_amplitudes",
]

_F64 = torch.float64


@dataclass(frozen=True, eq=False)
class BlobModel:
    """A Gaussian-blob structure with a moving part.

    Attributes
    ----------
    centers_angstrom : Tensor, float64, shape (M, 3)
        Blob centres at amplitude 0, ordered (x, y, z), relative to the box centre.
    moving : Tensor, bool, shape (M,)
        Which blobs move.
    direction : Tensor, float64, shape (3,)
        Unit direction of the motion.
    sigma_angstrom : float
        Blob width.
    """

    centers_angstrom: torch.Tensor
    moving: torch.Tensor
    direction: torch.Tensor
    sigma_angstrom: float

    def centers_at(self, amplitude_angstrom: torch.Tensor) -> torch.Tensor:
        """Blob centres (..., M, 3) at amplitudes (...) [Å]."""
        a = torch.as_tensor(amplitude_angstrom, dtype=_F64)[..., None, None]
        return self.centers_angstrom + a * self.moving[:, None] * self.direction

    def volume(
        self, amplitude_angstrom: float, *, image_size: int, pixel_size_angstrom: float
    ) -> torch.Tensor:
        """The true map (D, D, D) at one amplitude (float32)."""
        centers = self.centers_at(torch.tensor(float(amplitude_angstrom)))
        return gaussian_map(
            centers,
            shape=(image_size,) * 3,
            pixel_size_angstrom=pixel_size_angstrom,
            sigma_angstrom=self.sigma_angstrom,
        ).to(torch.float32)


def blob_model(
    *,
    n_blobs: int = 12,
    n_moving: int = 4,
    radius_angstrom: float,
    sigma_angstrom: float,
    generator: torch.Generator,
) -> BlobModel:
    """Random blobs inside a ball; the first ``n_moving`` move along a random direction.

    Parameters
    ----------
    n_blobs, n_moving : int
    radius_angstrom : float
        Blob centres are uniform in the ball of this radius.
    sigma_angstrom : float
    generator : torch.Generator

    Returns
    -------
    BlobModel
    """
    if not 0 < n_moving <= n_blobs:
        raise ValueError(f"need 0 < n_moving <= n_blobs, got {n_moving}, {n_blobs}")
    directions = torch.randn(n_blobs + 1, 3, generator=generator, dtype=_F64)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    radii = radius_angstrom * torch.rand(n_blobs, generator=generator, dtype=_F64) ** (1 / 3)
    moving = torch.arange(n_blobs) < n_moving
    return BlobModel(directions[:n_blobs] * radii[:, None], moving, directions[-1], sigma_angstrom)


def arm_model(*, separation_angstrom: float, sigma_angstrom: float) -> BlobModel:
    """A compact core of four blobs and a one-blob arm sliding out along x.

    Parameters
    ----------
    separation_angstrom : float
        ``s``: the arm touches the core at amplitude ``−s/2`` and sits ``s`` further out at
        ``+s/2`` (so :func:`two_state_amplitudes` with this separation gives a closed and an
        open state).
    sigma_angstrom : float
        Blob width ``σ``.

    Returns
    -------
    BlobModel
        Direction ``x``; core centres ``σ·(−1, 0, 0), σ·(−⅓, ±⅚, 0), σ·(−½, 0, ⅚)``; arm at
        ``x = σ/3 + s/2`` for amplitude 0.

    Notes
    -----
    A large, mostly pose-independent change (the particle's extent along the arm): a quick,
    reliable test case for latent-space separation (demos, lessons), unlike random blobs
    whose small moving part can hide behind the rest in many views.
    """
    core = torch.tensor(
        [[-1.0, 0.0, 0.0], [-1 / 3, 5 / 6, 0.0], [-1 / 3, -5 / 6, 0.0], [-0.5, 0.0, 5 / 6]],
        dtype=_F64,
    )
    arm = torch.tensor([[1 / 3, 0.0, 0.0]], dtype=_F64)
    centers = sigma_angstrom * torch.cat([core, arm])
    centers[-1, 0] += separation_angstrom / 2
    moving = torch.tensor([False, False, False, False, True])
    return BlobModel(centers, moving, torch.tensor([1.0, 0.0, 0.0], dtype=_F64), sigma_angstrom)


@dataclass(frozen=True, eq=False)
class SyntheticParticles:
    """Simulated particle images with their poses, CTF and true amplitudes.

    Attributes
    ----------
    images : Tensor, float32, shape (N, D, D)
    euler_deg : Tensor, float64, shape (N, 3)
    shift_angstrom : Tensor, float64, shape (N, 2)
        RELION origins [Å].
    ctf : CTFParams
        Fields of shape (N,).
    amplitude_angstrom : Tensor, float64, shape (N,)
        True displacement of the moving blobs.
    pixel_size_angstrom : float
    model : BlobModel
    """

    images: torch.Tensor
    euler_deg: torch.Tensor
    shift_angstrom: torch.Tensor
    ctf: CTFParams
    amplitude_angstrom: torch.Tensor
    pixel_size_angstrom: float
    model: BlobModel


def two_state_amplitudes(
    n: int, *, separation_angstrom: float, spread_angstrom: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitudes from two Gaussians at ``±separation/2`` (equal weights), and the state labels.

    Returns
    -------
    amplitudes : Tensor, float64, shape (n,)
    states : Tensor, int64, shape (n,)  (0 or 1)
    """
    states = (torch.rand(n, generator=generator, dtype=_F64) < 0.5).to(torch.int64)
    noise = spread_angstrom * torch.randn(n, generator=generator, dtype=_F64)
    return (states - 0.5) * separation_angstrom + noise, states


def _blob_projections(
    centers_angstrom: torch.Tensor,
    rotations: torch.Tensor,
    *,
    image_size: int,
    pixel_size_angstrom: float,
    sigma_angstrom: float,
) -> torch.Tensor:
    """Exact projections (B, D, D) of per-particle blob sets (B, M, 3) at poses (B, 3, 3)."""
    sigma_px = sigma_angstrom / pixel_size_angstrom
    xy = torch.einsum("bij,bmj->bmi", rotations, centers_angstrom)[..., :2] / pixel_size_angstrom
    axis = centered_indices(image_size, dtype=_F64)
    gx = torch.exp(-((axis - xy[..., 0:1]) ** 2) / (2 * sigma_px**2))  # (B, M, w)
    gy = torch.exp(-((axis - xy[..., 1:2]) ** 2) / (2 * sigma_px**2))  # (B, M, h)
    return math.sqrt(2 * math.pi) * sigma_px * torch.einsum("bmy,bmx->byx", gy, gx)


def blob_particles(
    model: BlobModel,
    amplitude_angstrom: torch.Tensor,
    *,
    image_size: int,
    pixel_size_angstrom: float,
    snr: float | None = 0.1,
    defocus_range_angstrom: tuple[float, float] = (10000.0, 25000.0),
    max_shift_angstrom: float = 0.0,
    generator: torch.Generator,
) -> SyntheticParticles:
    """Simulate one image per amplitude: uniform poses, CTF, origin offsets, Gaussian noise.

    Parameters
    ----------
    model : BlobModel
    amplitude_angstrom : Tensor, shape (N,)
        True amplitudes [Å].
    image_size : int
    pixel_size_angstrom : float
    snr : float or None
        Signal-to-noise ratio of the CTF-filtered images in a disc of diameter D (None: no noise).
    defocus_range_angstrom : (float, float)
        Uniform defocus range (no astigmatism).
    max_shift_angstrom : float
        Origins uniform in ``[−max, max]`` per axis.
    generator : torch.Generator

    Returns
    -------
    SyntheticParticles
    """
    amplitude = torch.as_tensor(amplitude_angstrom, dtype=_F64).reshape(-1)
    n = amplitude.shape[0]
    euler = uniform_orientations(n, generator=generator)
    low, high = defocus_range_angstrom
    defocus = low + (high - low) * torch.rand(n, generator=generator, dtype=_F64)
    ctf = CTFParams(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus.clone())
    shifts = max_shift_angstrom * (2 * torch.rand(n, 2, generator=generator, dtype=_F64) - 1)
    clean = _blob_projections(
        model.centers_at(amplitude),
        euler_to_matrix(euler),
        image_size=image_size,
        pixel_size_angstrom=pixel_size_angstrom,
        sigma_angstrom=model.sigma_angstrom,
    )
    clean = multiply_ctf(clean, ctf, pixel_size_angstrom=pixel_size_angstrom)
    clean = shift_image(clean, -shifts, pixel_size_angstrom=pixel_size_angstrom)
    images = clean
    if snr is not None:
        mask = circular_mask(image_size, diameter_px=image_size)
        std = noise_std_for_snr(clean, snr=snr, mask=mask)
        images = add_gaussian_noise(clean, noise_std=std, generator=generator)
    return SyntheticParticles(
        images.to(torch.float32), euler, shifts, ctf, amplitude, pixel_size_angstrom, model
    )
