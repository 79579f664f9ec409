r"""In-plane geometry for 2D classification: rotations, masks, shift grids, half ↔ full planes.

Rotation convention (RELION's 2D alignment).  An image at in-plane angle ψ of a 2D reference
``A`` is

.. math:: P_\psi(\mathbf r) = A(R_\psi\, \mathbf r), \qquad
    R_\psi = \begin{pmatrix}\cos\psi & -\sin\psi\\ \sin\psi & \cos\psi\end{pmatrix},

with ``r = (x, y)`` in pixels from the centre ``N//2``.  ``R_ψ`` is the transpose of the upper
2×2 block of RELION's ``Euler_angles2matrix(0, 0, ψ)``, so ``P_ψ`` is exactly the projection
of a map at Euler angles (rot, tilt, ψ) when ``A`` is its projection at (rot, tilt, 0).  The
same relation holds for Fourier transforms (``\hat P_\psi(\mathbf k) = \hat A(R_\psi\mathbf k)``),
so one function rotates real images and centred Fourier-space arrays alike.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "center_of_mass_px",
    "full_from_half_even",
    "half_from_full",
    "psi_angles_deg",
    "rotate_images",
    "shell_index_rfft",
    "shift_grid_mask",
    "soft_disc_mask",
    "wrap_angle_deg",
]


def psi_angles_deg(step_deg: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """In-plane angles ``0, step, 2·step, …`` below 360° [degrees], shape (J,).

    The step is adjusted to divide 360° evenly (J = round(360 / step)), as RELION does.
    """
    if not step_deg > 0:
        raise ValueError(f"psi step must be > 0 degrees, got {step_deg}")
    count = max(1, round(360.0 / step_deg))
    return torch.arange(count, device=device, dtype=dtype) * (360.0 / count)


def wrap_angle_deg(angle_deg: torch.Tensor) -> torch.Tensor:
    """Angles wrapped into (−180°, 180°]."""
    wrapped = torch.remainder(angle_deg + 180.0, 360.0) - 180.0
    return torch.where(wrapped == -180.0, torch.full_like(wrapped, 180.0), wrapped)


def rotate_images(
    images: torch.Tensor, psi_deg: torch.Tensor, *, mode: str = "bicubic"
) -> torch.Tensor:
    """Rotate images (or centred Fourier arrays) in-plane: ``out(r) = image(R_ψ r)``.

    Parameters
    ----------
    images : Tensor (..., N, N), real
        Square images, rotation centre at pixel ``N//2``.
    psi_deg : Tensor (...)
        Angles [degrees]; batch axes broadcast with those of ``images``.
    mode : {"bicubic", "bilinear"}
        Interpolation (``torch.nn.functional.grid_sample``); outside the box reads zero.

    Returns
    -------
    Tensor (broadcast batch, N, N)

    Notes
    -----
    ``R_ψ`` is the anticlockwise rotation by ψ of (x, y) (module docstring), so the content of
    ``out`` appears turned by −ψ.  ``rotate_images(rotate_images(a, ψ), −ψ) ≈ a``.
    """
    n = images.shape[-1]
    psi = torch.as_tensor(psi_deg, device=images.device, dtype=images.dtype)
    batch = torch.broadcast_shapes(images.shape[:-2], psi.shape)
    flat = images.expand(*batch, n, n).reshape(-1, 1, n, n)
    angle = torch.deg2rad(psi.expand(batch).reshape(-1))
    c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    axis = torch.arange(n, device=images.device, dtype=images.dtype) - n // 2
    y, x = axis[:, None], axis[None, :]
    src_x = c * x - s * y + n // 2
    src_y = s * x + c * y + n // 2
    grid = torch.stack((src_x, src_y), dim=-1) * (2.0 / (n - 1)) - 1.0
    out = torch.nn.functional.grid_sample(
        flat, grid, mode=mode, padding_mode="zeros", align_corners=True
    )
    return out.reshape(*batch, n, n)


def soft_disc_mask(
    size: int,
    *,
    radius_px: float,
    edge_px: float = 5.0,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Disc of radius ``radius_px`` about ``N//2`` with a raised-cosine edge outside it, (N, N).

    1 for ``r ≤ radius``, ``(1 + cos(π (r − radius)/edge))/2`` up to ``radius + edge``, then 0
    (RELION's soft circular mask of the particle diameter, edge width 5 px by default).
    """
    axis = torch.arange(size, device=device, dtype=dtype) - size // 2
    r = torch.sqrt(axis[:, None] ** 2 + axis[None, :] ** 2)
    t = ((r - radius_px) / max(edge_px, 1e-6)).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * t))


def shift_grid_mask(size: int, *, range_px: float, step_px: int, device=None) -> torch.Tensor:
    """Allowed translations on the FFT correlation grid (uncentred layout), bool (N, N).

    Entry ``[m_y, m_x]`` stands for the displacement ``s = (m_x, m_y)`` wrapped into
    ``[−N/2, N/2)``; allowed are multiples of ``step_px`` on both axes with ``|s| ≤ range_px``.
    """
    if step_px < 1:
        raise ValueError(f"offset step must be at least one pixel, got {step_px}")
    m = torch.arange(size, device=device)
    s = torch.where(m >= (size + 1) // 2, m - size, m)
    sy, sx = s[:, None], s[None, :]
    on_grid = (sx % step_px == 0) & (sy % step_px == 0)
    return on_grid & ((sx**2 + sy**2) <= range_px**2 + 1e-6)


def shell_index_rfft(size: int, *, device=None) -> torch.Tensor:
    """Shell ``round(|k|)`` [Fourier px] of each entry of rfft2's grid, (N, N//2+1)."""
    ky = torch.fft.fftfreq(size, d=1.0 / size, device=device)
    kx = torch.fft.rfftfreq(size, d=1.0 / size, device=device)
    r = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    return torch.floor(r + 0.5).to(torch.int64)


def full_from_half_even(half: torch.Tensor, size: int) -> torch.Tensor:
    """Centred full plane (…, N, N) of an even real function given on rfft2's half plane.

    ``half`` is in ``torch.fft.rfft2`` layout (…, N, N//2+1) and satisfies ``f(−k) = f(k)``;
    the result has DC at ``[N//2, N//2]`` (fftshift layout).
    """
    m = torch.arange(size, device=half.device)
    col = torch.where(m <= size // 2, m, size - m)
    ky = torch.arange(size, device=half.device)
    row = torch.where(m[None, :] <= size // 2, ky[:, None], (size - ky[:, None]) % size)
    full = half[..., row, col.expand(size, size)]
    return torch.fft.fftshift(full, dim=(-2, -1))


def half_from_full(full: torch.Tensor) -> torch.Tensor:
    """rfft2-layout half plane (…, N, N//2+1) of a centred full plane (…, N, N)."""
    size = full.shape[-1]
    return torch.fft.ifftshift(full, dim=(-2, -1))[..., : size // 2 + 1]


def center_of_mass_px(images: torch.Tensor) -> torch.Tensor:
    """Centre of mass of each image's positive part, (…, 2) ordered (x, y), pixels from N//2."""
    n = images.shape[-1]
    weight = images.clamp_min(0.0)
    axis = torch.arange(n, device=images.device, dtype=images.dtype) - n // 2
    total = weight.sum((-2, -1)).clamp_min(torch.finfo(images.dtype).tiny)
    x = (weight * axis[None, :]).sum((-2, -1)) / total
    y = (weight * axis[:, None]).sum((-2, -1)) / total
    return torch.stack((x, y), dim=-1)
