"""Test data for 2D classification: K known views of a map at random in-plane angles and shifts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.projection.project import project
from cryoglass.simulate.noise import circular_mask, noise_std_for_snr

__all__ = ["ViewsDataset", "simulate_views"]


@dataclass(frozen=True, eq=False)
class ViewsDataset:
    """Simulated particles of K views.

    Attributes
    ----------
    images : Tensor (n, N, N)
        Noisy CTF-modulated images.
    clean : Tensor (n, N, N)
        The same without noise.
    views : Tensor (K, N, N)
        The K projections at psi = 0, no shift, no CTF (the "true class averages").
    labels : Tensor (n,), int64
        View of each particle (0 … K−1).
    euler_deg : Tensor (n, 3)
        RELION (rot, tilt, psi) of each particle [degrees].
    shift_angstrom : Tensor (n, 2)
        RELION origins (x, y) [Å] (translating the image by +origin re-centres it).
    ctf : CTFParams
        Fields of shape (n,).
    noise_std : float
        Standard deviation of the white Gaussian noise.
    """

    images: torch.Tensor
    clean: torch.Tensor
    views: torch.Tensor
    labels: torch.Tensor
    euler_deg: torch.Tensor
    shift_angstrom: torch.Tensor
    ctf: CTFParams
    noise_std: float


def simulate_views(
    volume: torch.Tensor,
    *,
    view_euler_deg: torch.Tensor,
    n: int,
    pixel_size_angstrom: float,
    snr: float | None,
    generator: torch.Generator,
    shift_range_angstrom: float = 0.0,
    defocus_range_um: tuple[float, float] = (1.0, 2.5),
    particle_diameter_angstrom: float | None = None,
) -> ViewsDataset:
    """Project ``volume`` at K fixed (rot, tilt) views; each particle has its own psi, shift, CTF.

    Parameters
    ----------
    volume : Tensor (N, N, N)
        Map, origin at N//2.
    view_euler_deg : Tensor (K, 2) or (K, 3)
        (rot, tilt[, ignored psi]) of the K views [degrees].
    n : int
        Number of particles (views drawn uniformly).
    pixel_size_angstrom : float
    snr : float or None
        SNR of :mod:`cryoglass.simulate.noise` inside the particle disc (None: no noise).
    generator : torch.Generator
        CPU generator for every random draw.
    shift_range_angstrom : float
        Origins uniform in the disc of this radius [Å].
    defocus_range_um : (float, float)
        Defocus uniform in this range [µm], no astigmatism, 300 kV, Cs 2.7 mm, Q0 0.1.
    particle_diameter_angstrom : float, optional
        Disc of the SNR definition (default: 0.8 × box).

    Returns
    -------
    ViewsDataset
    """
    size = volume.shape[-1]
    views_rt = torch.as_tensor(view_euler_deg, dtype=torch.float32)[:, :2]
    k = views_rt.shape[0]
    labels = torch.randint(k, (n,), generator=generator)
    psi = torch.rand(n, generator=generator, dtype=torch.float64) * 360.0 - 180.0
    radius = torch.sqrt(torch.rand(n, generator=generator, dtype=torch.float64))
    angle = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * torch.pi
    shift = (
        shift_range_angstrom
        * radius[:, None]
        * torch.stack((torch.cos(angle), torch.sin(angle)), dim=-1)
    )
    low, high = defocus_range_um
    defocus = (low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)) * 1e4
    ctf = CTFParams(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus.clone())
    euler = torch.cat((views_rt.double()[labels], psi[:, None]), dim=1)
    clean = project(
        volume,
        euler_deg=euler.float(),
        shift_angstrom=shift.float(),
        pixel_size_angstrom=pixel_size_angstrom,
        ctf=ctf,
    )
    views = project(
        volume,
        euler_deg=torch.cat((views_rt, torch.zeros(k, 1)), dim=1),
        pixel_size_angstrom=pixel_size_angstrom,
    )
    noise_std = 0.0
    images = clean
    if snr is not None:
        diameter = particle_diameter_angstrom or 0.8 * size * pixel_size_angstrom
        mask = circular_mask(size, diameter_px=diameter / pixel_size_angstrom)
        noise_std = noise_std_for_snr(clean, snr=snr, mask=mask)
        noise = torch.randn(clean.shape, generator=generator) * noise_std
        images = clean + noise.to(clean.dtype)
    return ViewsDataset(
        images=images,
        clean=clean,
        views=views,
        labels=labels,
        euler_deg=euler,
        shift_angstrom=shift,
        ctf=ctf,
        noise_std=noise_std,
    )
