r"""Orientation planning: what a distribution of views does to directional SSNR (first part).

Model of a half map
-------------------
A Fourier voxel ``k`` (radius ``r = |k|`` in Fourier pixels, direction ``k̂``) of a half map
averaged from particles whose central slabs contain it has

.. math:: \mathrm{SSNR}(k) = \rho(k)\, g(r), \qquad
          \rho(k) = \frac{S(\hat k; r)}{\langle S\rangle}, \quad
          \langle S\rangle = N\min(1, 1/(2r)),

with ``S`` the slab count of :mod:`cryoglass.validate.orientations` (``|k̂·d| r < ½``),
``ρ`` the relative sampling (1 for uniform views) and ``g(r)`` the SSNR a uniform
distribution of the same particles would give.  :func:`anisotropic_half_maps` draws two half
maps ``truth + noise`` with exactly this SSNR per voxel — a cheap stand-in for
simulate → reconstruct that keeps the orientation effect (and nothing else).
"""

from __future__ import annotations

import torch

__all__ = ["anisotropic_half_maps", "relative_sampling_grid"]

_F64 = torch.float64


def relative_sampling_grid(
    directions: torch.Tensor, box_size: int, *, chunk_size: int = 4096
) -> torch.Tensor:
    """Relative sampling ``ρ(k) = S(k̂; |k|)/⟨S⟩`` on the rfft half grid (FFT order).

    Parameters
    ----------
    directions : Tensor, (N, 3)
        Projection directions (unit vectors, map frame).
    box_size : int
        Cubic box ``n``.
    chunk_size : int
        Voxels per chunk (memory knob).

    Returns
    -------
    Tensor, float64, (n, n, n//2 + 1)
        ``ρ`` per voxel (DC: 1); brute-force count, O(voxels × N): keep ``N`` to a few thousand.
    """
    d = torch.as_tensor(directions, dtype=_F64)
    d = d / d.norm(dim=1, keepdim=True)
    n = int(box_size)
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=_F64)
    kz, ky, kx = torch.meshgrid(k, k, torch.arange(n // 2 + 1, dtype=_F64), indexing="ij")
    freq = torch.stack((kx, ky, kz), dim=-1).reshape(-1, 3)
    radius = freq.norm(dim=1)
    out = torch.ones(freq.shape[0], dtype=_F64)
    for idx in torch.nonzero(radius > 0).flatten().split(chunk_size):
        f = freq[idx]
        counts = ((f @ d.T).abs() < 0.5).sum(dim=1).to(_F64)  # |k̂·d| r < ½
        mean = d.shape[0] * torch.clamp(0.5 / radius[idx], max=1.0)
        out[idx] = counts / mean
    return out.reshape(n, n, n // 2 + 1)


def anisotropic_half_maps(
    truth: torch.Tensor,
    directions: torch.Tensor,
    *,
    uniform_ssnr: torch.Tensor,
    generator: torch.Generator,
    floor: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two half maps ``truth + noise`` whose per-voxel SSNR follows the views' sampling.

    Parameters
    ----------
    truth : Tensor, real, (n, n, n)
    directions : Tensor, (N, 3)
        Projection directions of the (half-set) particles.
    uniform_ssnr : Tensor, (n//2 + 1,)
        ``g(r)`` per shell ``round(r)``: the SSNR uniform views would give.
    generator : torch.Generator
    floor : float
        Minimum relative sampling (unsampled voxels get SSNR ``floor · g``, ≈ no signal).

    Returns
    -------
    half1, half2 : Tensor, (n, n, n), dtype of ``truth``
        Noise with power ``P_T(r) / (ρ(k) g(r))`` per voxel, ``P_T`` the truth's shell power.
    """
    n = truth.shape[-1]
    rho = relative_sampling_grid(directions, n).clamp_min(floor)
    t = torch.fft.rfftn(truth.to(_F64))
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=_F64)
    kz, ky, kx = torch.meshgrid(k, k, torch.arange(n // 2 + 1, dtype=_F64), indexing="ij")
    shell = torch.floor(torch.sqrt(kx**2 + ky**2 + kz**2) + 0.5).long().clamp_max(n // 2)
    power = t.abs().square()
    shell_power = torch.zeros(n // 2 + 1, dtype=_F64).index_add_(
        0, shell.reshape(-1), power.reshape(-1)
    )
    shell_power /= torch.bincount(shell.reshape(-1), minlength=n // 2 + 1).clamp_min(1)
    g = torch.as_tensor(uniform_ssnr, dtype=_F64)[shell]
    amplitude = torch.sqrt(shell_power[shell] / (rho * g).clamp_min(1e-12) / n**3)
    halves = []
    for _ in range(2):
        white = torch.fft.rfftn(torch.randn(n, n, n, generator=generator, dtype=_F64))
        halves.append(torch.fft.irfftn(t + white * amplitude, s=(n, n, n)).to(truth.dtype))
    return halves[0], halves[1]
