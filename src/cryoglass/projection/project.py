r"""Projections of a map at many poses: Fourier slice, origin shift, CTF, back to real space.

The image of particle ``i`` is

.. math:: I_i = \mathcal F^{-1}_{2D}\Big[\,\mathrm{CTF}_i(\mathbf k)\,
          e^{+2\pi i\,\mathbf k\cdot\mathbf o_i}\,\hat V\big(A_i^{\mathsf T}(k_x, k_y, 0)\big)\Big]

with ``A_i`` the RELION rotation, ``o_i`` the RELION origin (``rlnOriginX/YAngst``) and the CTF
evaluated on the ``N``-sized output grid.  The phase ramp is the Fourier form of RELION's origin
meaning ``shifted(r) = centred(r + o)``: if ``g(r) = f(r + o)`` then ``ĝ(k) = e^{+2πi k·o} f̂(k)``.
Because the CTF multiplies the ``N``-sized transform (not a padded one), signal that the CTF
delocalises beyond the box wraps around, exactly as in RELION's ``relion_project --ctf``.
"""

from __future__ import annotations

import torch

from cryoglass.fourier.grids import centered_indices
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.projection.fourier_slice import (
    VolumeFourier,
    _check_rotations,
    _chunk_images,
    _slice_chunk,
    prepare_volume_fourier,
    slice_frequencies,
)

__all__ = ["project", "project_prepared", "shift_phase"]


def shift_phase(
    shift_angstrom: torch.Tensor, *, size: int, pixel_size_angstrom: float
) -> torch.Tensor:
    """The phase ramp ``exp(+2πi k·o)`` of RELION origins on the centred rfft grid.

    Parameters
    ----------
    shift_angstrom : Tensor, shape (B, 2)
        Origins ``(o_x, o_y)`` [Å] with RELION's meaning ``shifted(r) = centred(r + o)``.
    size : int
        Image size ``N`` [pixels].
    pixel_size_angstrom : float
        Pixel size [Å].

    Returns
    -------
    Tensor, shape (B, N, N//2 + 1), complex
        Multiply a centred rfft by it to translate the image by ``−o``.
    """
    options = {"device": shift_angstrom.device, "dtype": shift_angstrom.dtype}
    ky = centered_indices(size, **options)[:, None]
    kx = torch.arange(size // 2 + 1, **options)[None, :]
    origin_px = shift_angstrom / pixel_size_angstrom
    angle = (2 * torch.pi / size) * (
        origin_px[:, 0, None, None] * kx + origin_px[:, 1, None, None] * ky
    )
    return torch.polar(torch.ones_like(angle), angle)


def _flatten_ctf(ctf, batch: tuple[int, ...], device: torch.device, dtype: torch.dtype):
    """Broadcast every CTF field to the pose batch and flatten it to (B,)."""
    return ctf.expand(batch, dtype=dtype, device=device).flatten()


def project_prepared(
    prepared: VolumeFourier,
    rotations: torch.Tensor,
    *,
    shift_angstrom: torch.Tensor | None = None,
    pixel_size_angstrom: float = 1.0,
    ctf=None,
) -> torch.Tensor:
    """Projections from a prepared transform (one batch).

    Parameters
    ----------
    prepared : VolumeFourier
        From :func:`cryoglass.projection.prepare_volume_fourier`.
    rotations : Tensor, shape (B, 3, 3)
        RELION rotation matrices ``A``.
    shift_angstrom : Tensor, shape (B, 2), optional
        RELION origins [Å].
    pixel_size_angstrom : float
        Pixel size [Å].
    ctf : CTFParams with batch shape (B,) or (), optional
        Multiplies the ``N``-sized transform.

    Returns
    -------
    Tensor, shape (B, N, N), real

    Notes
    -----
    Works on the ``P`` frequencies inside the Nyquist circle only.  Instead of ``fftshift``-ing
    the output image (a copy), the spectrum is multiplied by ``exp(−2πi k·s/N)`` with
    ``s = (N//2, N//2)``: a translation by ``+s`` moves the origin from index 0 to ``N//2``.
    That ramp is merged with the origin-shift ramp ``exp(+2πi k·o/N)`` (``o`` in pixels).
    """
    _check_rotations(rotations)
    table = prepared.table
    n, real_dtype = prepared.size, table.real.dtype
    k, _ = slice_frequencies(n, device=table.device, dtype=real_dtype)
    rotations = rotations.to(device=table.device, dtype=real_dtype)
    batch = rotations.shape[0]
    translation = torch.full((batch, 2), -float(n // 2), device=table.device, dtype=real_dtype)
    if shift_angstrom is not None:
        translation = (
            translation + shift_angstrom.to(table.device, real_dtype) / pixel_size_angstrom
        )
    per_particle_ctf = ctf is not None and tuple(ctf.batch_shape) == (batch,)
    images = table.new_empty((batch, n, n), dtype=real_dtype)
    step = _chunk_images(prepared, k.shape[0])
    for start in range(0, batch, step):
        part = slice(start, start + step)
        _project_chunk(
            prepared,
            rotations[part],
            k,
            translation=translation[part],
            pixel_size_angstrom=pixel_size_angstrom,
            ctf=ctf[part] if per_particle_ctf else ctf,
            out=images[part],
        )
    return images


def _project_chunk(
    prepared: VolumeFourier,
    rotations: torch.Tensor,
    k: torch.Tensor,
    *,
    translation: torch.Tensor,
    pixel_size_angstrom: float,
    ctf,
    out: torch.Tensor,
) -> None:
    """Images of one chunk into ``out`` (b, N, N); ``translation`` (b, 2) in pixels."""
    n = prepared.size
    values = torch.view_as_complex(_slice_chunk(prepared, rotations, k))  # (b, P)
    angle = (2 * torch.pi / n) * (translation @ k.T)  # (b, P)
    if ctf is None:
        amplitude = torch.ones_like(angle)
    else:
        from cryoglass.ctf.ctf import ctf_at_frequencies

        frequency = k / (n * pixel_size_angstrom)  # [1/Å]
        amplitude = ctf_at_frequencies(ctf, frequency, device=k.device, dtype=k.dtype)
        amplitude = amplitude.expand_as(angle)
    # One pass for both factors: polar(CTF, θ) = CTF·(cos θ + i sin θ), also for CTF < 0.
    values.mul_(torch.polar(amplitude, angle))
    # Scatter into plain FFT order (row = k_y mod N) and invert.
    flat_fft = torch.remainder(k[:, 1].long(), n) * (n // 2 + 1) + k[:, 0].long()
    spectrum = values.new_zeros((values.shape[0], n * (n // 2 + 1)))
    spectrum.index_copy_(1, flat_fft, values)
    torch.fft.irfft2(spectrum.reshape(-1, n, n // 2 + 1), s=(n, n), out=out)


def project(
    volume: torch.Tensor,
    rotations: torch.Tensor | None = None,
    *,
    euler_deg: torch.Tensor | None = None,
    shift_angstrom: torch.Tensor | None = None,
    pixel_size_angstrom: float = 1.0,
    ctf=None,
    pad: int = 2,
    interpolation: str = "linear",
    gridding: bool = True,
    device: torch.device | str | None = None,
    batch_size: int = 128,
) -> torch.Tensor:
    """Project a map at many poses (Fourier-slice theorem), optionally shifted and with a CTF.

    Parameters
    ----------
    volume : Tensor, shape (N, N, N), real, indexed [z, y, x]
        The map; origin (rotation centre) at index ``N//2``.
    rotations : Tensor, shape (..., 3, 3), optional
        RELION rotation matrices ``A`` (map frame → image frame).  Give this or ``euler_deg``.
    euler_deg : Tensor, shape (..., 3), optional
        RELION Euler angles (rot, tilt, psi) [degrees].
    shift_angstrom : Tensor, shape (..., 2), optional
        RELION origins ``(rlnOriginXAngst, rlnOriginYAngst)`` [Å]:
        ``image(r) = centred_projection(r + shift)``.
    pixel_size_angstrom : float
        Pixel size [Å] (for the shifts and the CTF).
    ctf : CTFParams, optional
        Batch shape broadcastable to the pose batch; multiplies the ``N``-sized transform.
    pad : int
        Padding factor of the 3D transform (2 = RELION's default).
    interpolation : {"linear", "nearest"}
        Interpolation in Fourier space (RELION: linear; ``--NN``: nearest).
    gridding : bool
        Gridding pre-correction of the map (RELION does it).
    device : str or torch.device, optional
        Where to compute; default: the volume's device.  The result stays there.
    batch_size : int
        Images per internal chunk (memory/speed knob only; results do not depend on it).

    Returns
    -------
    Tensor, shape (..., N, N)
        Projections ``Σ_z V(Aᵀ(x, y, z))`` [map units × voxels], translated and CTF-filtered.

    Notes
    -----
    See :mod:`cryoglass.projection.fourier_slice` for the slice extraction and
    :mod:`cryoglass.projection.project` for the image formula.

    Examples
    --------
    >>> import torch
    >>> volume = torch.zeros(16, 16, 16); volume[8, 8, 8] = 1.0
    >>> images = project(volume, euler_deg=torch.zeros(2, 3), pad=2, gridding=False)
    >>> images.shape, round(float(images[0].sum()), 4)
    (torch.Size([2, 16, 16]), 1.0)
    """
    if (rotations is None) == (euler_deg is None):
        raise ValueError("give exactly one of rotations (…, 3, 3) or euler_deg (…, 3)")
    if euler_deg is not None:
        euler_deg = torch.as_tensor(euler_deg)
        if euler_deg.shape[-1:] != (3,):
            raise ValueError(f"euler_deg must have shape (..., 3), got {tuple(euler_deg.shape)}")
        rotations = euler_to_matrix(euler_deg.to(dtype=volume.dtype))
    if rotations.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must have shape (..., 3, 3), got {tuple(rotations.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else volume.device
    batch = tuple(rotations.shape[:-2])
    n = volume.shape[-1]
    flat_rot = rotations.to(device=device, dtype=volume.dtype).reshape(-1, 3, 3)
    flat_shift = None
    if shift_angstrom is not None:
        shift = torch.as_tensor(shift_angstrom, device=device, dtype=volume.dtype)
        if shift.shape[-1:] != (2,):
            raise ValueError(f"shift_angstrom must have shape (..., 2), got {tuple(shift.shape)}")
        flat_shift = shift.expand(*batch, 2).reshape(-1, 2)
    flat_ctf = _flatten_ctf(ctf, batch, device, volume.dtype) if ctf is not None else None
    prepared = prepare_volume_fourier(
        volume.to(device), pad=pad, interpolation=interpolation, gridding=gridding
    )
    chunks = []
    for start in range(0, flat_rot.shape[0], batch_size):
        part = slice(start, start + batch_size)
        chunks.append(
            project_prepared(
                prepared,
                flat_rot[part],
                shift_angstrom=None if flat_shift is None else flat_shift[part],
                pixel_size_angstrom=pixel_size_angstrom,
                ctf=None if flat_ctf is None else flat_ctf[part],
            )
        )
    images = torch.cat(chunks) if chunks else volume.new_zeros((0, n, n), device=device)
    return images.reshape(*batch, n, n)
