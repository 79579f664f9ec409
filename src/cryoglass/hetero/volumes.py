"""Volumes from a trained decoder: evaluate on the full 3D Fourier grid, inverse FFT.

The decoder predicts ``V̂_z(k) / s`` (``s`` = the model's ``fourier_scale``).  With the
centred, unnormalised DFTs of cryoglass, the 2D transform of a projection (a sum over voxels
along z) equals the 3D transform of the map on the slice, so

.. math::

    V_z = \\mathcal F^{-1}_{3D}\\big[s\\, \\hat V_z(\\mathbf k)\\,
          [|\\mathbf k| < k_{Ny}]\\big]

is the map in the units of the images (a projection of it reproduces the particles before
the CTF).  Outside the Nyquist sphere the decoder was never trained; those values are zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cryoglass.fourier.fft import irfft3_centered
from cryoglass.fourier.grids import frequency_grid
from cryoglass.hetero.models import HeteroVAE

__all__ = ["fourier_volume", "generate_volumes", "spectrum_to_volume"]


def fourier_volume(
    fourier_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    image_size: int,
    chunk_size: int = 65536,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Evaluate a function of 3D Fourier coordinates on the centred rfft grid of a D³ box.

    Parameters
    ----------
    fourier_fn : callable
        ``coords (P, 3) in units of Nyquist → complex values (P,)``.
    image_size : int
        D.
    chunk_size : int
        Points per call (a memory knob).
    device : optional

    Returns
    -------
    Tensor, complex, shape (D, D, D//2 + 1)
        Values inside the Nyquist sphere ``|k| < D/2`` [Fourier px], zero outside.
    """
    k = frequency_grid((image_size,) * 3, pixel_size_angstrom=1.0, rfft=True, device=device)
    coords = (2.0 * k).to(torch.float32).reshape(-1, 3)
    inside = torch.nonzero(coords.norm(dim=-1) < 1.0).reshape(-1)
    values = torch.zeros(coords.shape[0], dtype=torch.complex64, device=coords.device)
    for start in range(0, inside.numel(), chunk_size):
        rows = inside[start : start + chunk_size]
        values[rows] = fourier_fn(coords[rows]).to(torch.complex64)
    return values.reshape(k.shape[:-1])


def spectrum_to_volume(spectrum: torch.Tensor, *, image_size: int) -> torch.Tensor:
    """Real map (D, D, D) from a centred rfft spectrum (D, D, D//2 + 1)."""
    return irfft3_centered(spectrum, width=image_size)


@torch.no_grad()
def generate_volumes(
    model: HeteroVAE, z: torch.Tensor | None = None, *, chunk_size: int = 65536
) -> torch.Tensor:
    """Maps of the decoder at latent points.

    Parameters
    ----------
    model : HeteroVAE
    z : Tensor, shape (K, zdim), optional
        Latent points (omit for a ``zdim = 0`` model: one map).
    chunk_size : int
        Fourier points per decoder call.

    Returns
    -------
    Tensor, float32, shape (K, D, D, D) (K = 1 without ``z``), on the CPU
        Maps in the units of the particle images (module docstring).
    """
    model.eval()
    device = model.fourier_scale.device
    d = model.config.image_size
    if model.config.zdim == 0 or z is None:
        if model.config.zdim > 0:
            raise ValueError(f"this model has zdim = {model.config.zdim}: give latent points z")
        latents = [None]
    else:
        z = torch.as_tensor(z, dtype=torch.float32, device=device).reshape(-1, model.config.zdim)
        latents = list(z)
    maps = []
    for latent in latents:
        zb = None if latent is None else latent[None]

        def fn(coords: torch.Tensor, zb: torch.Tensor | None = zb) -> torch.Tensor:
            return model.decode(coords[None], zb)[0]

        spectrum = fourier_volume(fn, image_size=d, chunk_size=chunk_size, device=device)
        volume = spectrum_to_volume(spectrum * model.fourier_scale, image_size=d)
        maps.append(volume.float().cpu())
    return torch.stack(maps)
