r"""Electrostatic potential of an atomic model: 3D maps and exact projections.

Units: potential ``V`` in volts [V], projected potential ``∫V dz`` in [V·Å], lengths in Å.

From scattering factor to potential
-----------------------------------
In the first Born approximation the electron scattering factor is the Fourier transform of the
atom's potential (``q = 2s`` the spatial frequency [1/Å], ``m₀`` the electron *rest* mass;
relativity enters only the interaction constant, see :mod:`cryoglass.simulate.image`):

.. math:: f_e(q) = \frac{2\pi m_0 e}{h^2} \int V(\mathbf r)\, e^{2\pi i\,\mathbf q\cdot\mathbf r}\,
          d^3 r .

Inverting with Peng's ``f_e = Σ a_i exp(−b_i s²) = Σ a_i exp(−b_i q²/4)`` and
``∫ e^{−b q²/4} e^{−2πi q·r} d³q = (4π/b)^{3/2} e^{−4π² r²/b}`` gives, per atom,

.. math:: V(\mathbf r) = C \sum_{i=1}^5 a_i \left(\frac{4\pi}{b_i + B}\right)^{3/2}
          \exp\!\left(-\frac{4\pi^2 |\mathbf r - \mathbf r_a|^2}{b_i + B}\right),
          \qquad C = \frac{h^2}{2\pi m_0 e} = 47.878\ \text{V Å}^2 ,

where the isotropic B-factor (Debye–Waller factor ``exp(−B s²)`` on ``f_e``, i.e. a Gaussian
blur of the atom) simply adds ``B`` to every ``b_i``.  Units: ``a_i`` [Å] times
``(4π/b)^{3/2}`` [Å⁻³] times ``C`` [V Å²] is volts.  Two closed forms follow and are tested:

* ``∫ V d³r = C f_e(0) = C Σ a_i`` [V Å³] (e.g. 120.1 V Å³ for carbon);
* the projected potential is a sum of 2D Gaussians,
  ``∫ V dz = C Σ a_i (4π/(b_i+B)) exp(−4π² ρ²/(b_i+B))`` [V Å].

Each term factorises into three normalised 1D Gaussians
``g(x) = sqrt(4π/b) exp(−4π² x²/b)`` (``∫ g = 1``), which is how the maps are computed: every
atom writes a small ``K³`` window (``K`` set by the widest Gaussian, cut at
``cutoff_sigmas`` standard deviations ``σ = sqrt(b/8π²)``) built as one batched outer product,
added into the volume with ``index_add_``; atoms are processed in chunks sorted by width.

Sampling
--------
``sampling="integrated"`` (default) stores the *average* of ``V`` over each voxel: the 1D
factors become ``[erf(2π(x+p/2)/√b) − erf(2π(x−p/2)/√b)] / (2p)``.  Point sampling of the
narrow core Gaussians of light atoms (``b₁ ≈ 0.25 Å²``, ``σ ≈ 0.06 Å``) aliases badly at
1 Å/px and does not conserve ``∫V``; voxel averages conserve it exactly (up to the cutoff) and
a sum over voxels along z then equals the pixel-averaged projected potential.
``sampling="point"`` gives ``V`` at voxel centres.

References
----------
Peng, L.-M., Ren, G., Dudarev, S. L. & Whelan, M. J. (1996). Acta Cryst. A52, 257-276.
https://doi.org/10.1107/S0108767395014371

Kirkland, E. J. (2020). Advanced Computing in Electron Microscopy, 3rd ed., ch. 5 & App. C.
https://doi.org/10.1007/978-3-030-33260-0

Himes, B. & Grigorieff, N. (2021). Cryo-TEM simulations of amorphous radiation-sensitive samples
using multislice wave propagation. IUCrJ 8, 943-953. https://doi.org/10.1107/S2052252521008538
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cryoglass.constants import ELECTRON_MASS_KG, ELEMENTARY_CHARGE_C, PLANCK_J_S
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.simulate.scattering import atomic_masses_dalton, scattering_parameters

__all__ = [
    "POTENTIAL_CONSTANT_VOLT_ANGSTROM2",
    "model_center_angstrom",
    "required_box_size",
    "potential_map",
    "projected_potential",
]

#: ``C = h² / (2π m₀ e)`` [V Å²] (≈ 47.878): converts Peng's ``f_e`` [Å] into potential.
POTENTIAL_CONSTANT_VOLT_ANGSTROM2: float = (
    PLANCK_J_S**2 / (2 * math.pi * ELECTRON_MASS_KG * ELEMENTARY_CHARGE_C) * 1e20
)


def model_center_angstrom(
    coordinates_angstrom: torch.Tensor,
    elements: Sequence[str] | None = None,
    *,
    unknown: str = "error",
) -> torch.Tensor:
    """Centre of mass (x, y, z) [Å] of a model; the plain mean when ``elements`` is None.

    Parameters
    ----------
    coordinates_angstrom : Tensor, shape (N, 3)
    elements : sequence of str, length N, optional
        Element symbols for the atomic weights.
    unknown : {"error", "carbon"}
        As :func:`cryoglass.simulate.scattering.scattering_parameters`.

    Returns
    -------
    Tensor, shape (3,)
    """
    _check_coordinates(coordinates_angstrom)
    if elements is None:
        return coordinates_angstrom.mean(dim=0)
    masses = atomic_masses_dalton(
        elements,
        unknown=unknown,
        device=coordinates_angstrom.device,
        dtype=coordinates_angstrom.dtype,
    )
    return (masses[:, None] * coordinates_angstrom).sum(dim=0) / masses.sum()


def required_box_size(
    coordinates_angstrom: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    origin_angstrom: torch.Tensor | None = None,
    margin_angstrom: float = 5.0,
) -> int:
    """Smallest even cubic box [voxels] that holds every atom plus a margin around the origin.

    Parameters
    ----------
    coordinates_angstrom : Tensor, shape (N, 3)
    pixel_size_angstrom : float
    origin_angstrom : Tensor, shape (3,), optional
        The point placed at voxel ``N//2`` (default: the plain mean of the coordinates).
    margin_angstrom : float
        Space kept between the outermost atom centre and the box edge [Å].

    Returns
    -------
    int
        ``2 · ceil((max |r − origin| + margin) / pixel)``, the largest coordinate extent taken
        over x, y and z.
    """
    _check_coordinates(coordinates_angstrom)
    origin = coordinates_angstrom.mean(dim=0) if origin_angstrom is None else origin_angstrom
    extent = (coordinates_angstrom - origin).abs().max().item() + margin_angstrom
    return 2 * math.ceil(extent / pixel_size_angstrom)


def _check_coordinates(coordinates_angstrom: torch.Tensor) -> None:
    if coordinates_angstrom.ndim != 2 or coordinates_angstrom.shape[-1] != 3:
        raise ValueError(
            f"coordinates_angstrom must have shape (N, 3), got {tuple(coordinates_angstrom.shape)}"
        )
    if coordinates_angstrom.shape[0] == 0:
        raise ValueError("the model has no atoms (coordinates_angstrom has shape (0, 3))")


def _atom_gaussians(
    coordinates_angstrom: torch.Tensor,
    elements: Sequence[str],
    bfactors_a2: float | torch.Tensor | None,
    occupancies: torch.Tensor | None,
    unknown: str,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitudes ``C·a_i·occupancy`` [V Å²·Å] and widths ``b_i + B`` [Å²], both (N, 5)."""
    _check_coordinates(coordinates_angstrom)
    n = coordinates_angstrom.shape[0]
    if len(elements) != n:
        raise ValueError(f"got {len(elements)} elements for {n} atoms")
    device = coordinates_angstrom.device
    a, b = scattering_parameters(elements, unknown=unknown, device=device, dtype=dtype)
    bfac = torch.as_tensor(0.0 if bfactors_a2 is None else bfactors_a2, device=device, dtype=dtype)
    if bool((bfac < 0).any()):
        raise ValueError("bfactors_a2 must be >= 0")
    widths = b + bfac.expand(n)[:, None]
    amplitudes = a * POTENTIAL_CONSTANT_VOLT_ANGSTROM2
    if occupancies is not None:
        amplitudes = amplitudes * occupancies.to(device=device, dtype=dtype)[:, None]
    return amplitudes, widths


def _axis_factors(
    centers_px: torch.Tensor,
    widths_a2: torch.Tensor,
    start: torch.Tensor,
    size: int,
    pixel_size_angstrom: float,
    sampling: str,
) -> torch.Tensor:
    """Normalised 1D Gaussian factors on a window of ``size`` voxels from ``start``.

    centers_px (..., ) voxel coordinates, widths_a2 (..., 5), start (...,) int → (..., 5, size)
    in 1/Å: point values ``sqrt(4π/b) exp(−4π²x²/b)`` or their voxel averages.
    """
    offsets = torch.arange(size, device=centers_px.device, dtype=centers_px.dtype)
    x_px = start[..., None].to(centers_px.dtype) + offsets - centers_px[..., None]  # (..., K)
    x = (x_px * pixel_size_angstrom)[..., None, :]  # (..., 1, K) Å
    b = widths_a2[..., None]  # (..., 5, 1)
    if sampling == "point":
        return torch.sqrt(4 * math.pi / b) * torch.exp(-4 * math.pi**2 * x * x / b)
    scale = 2 * math.pi / torch.sqrt(b)
    half = 0.5 * pixel_size_angstrom
    return (torch.erf(scale * (x + half)) - torch.erf(scale * (x - half))) / (
        2 * pixel_size_angstrom
    )


def _window_radius_px(widths_a2: torch.Tensor, pixel_size_angstrom: float, cutoff: float) -> int:
    """Half-width [voxels] of a window that holds ``cutoff`` σ of the widest Gaussian."""
    sigma = math.sqrt(widths_a2.max().item() / (8 * math.pi**2))
    return max(1, math.ceil(cutoff * sigma / pixel_size_angstrom))


def _check_sampling(sampling: str) -> None:
    if sampling not in ("integrated", "point"):
        raise ValueError(f"sampling must be 'integrated' or 'point', got {sampling!r}")


def _inside(centers_px: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Which atoms have their centre inside the box (voxel coordinates in [−½, n − ½))."""
    limits = torch.tensor(sizes, device=centers_px.device, dtype=centers_px.dtype)
    return ((centers_px >= -0.5) & (centers_px < limits - 0.5)).all(dim=-1)


def potential_map(
    coordinates_angstrom: torch.Tensor,
    elements: Sequence[str],
    *,
    shape: tuple[int, int, int],
    pixel_size_angstrom: float,
    bfactors_a2: float | torch.Tensor | None = None,
    occupancies: torch.Tensor | None = None,
    origin_angstrom: torch.Tensor | None = None,
    sampling: str = "integrated",
    cutoff_sigmas: float = 4.0,
    outside: str = "error",
    unknown: str = "error",
    chunk_size: int = 1024,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Electrostatic potential [V] of an atomic model on a voxel grid.

    Parameters
    ----------
    coordinates_angstrom : Tensor, shape (N, 3)
        Atom positions (x, y, z) [Å].
    elements : sequence of str, length N
        Element symbols (Peng et al. 1996 parameters).
    shape : (d, h, w)
        Map shape [voxels]; ``volume[z, y, x]``.
    pixel_size_angstrom : float
        Voxel size [Å].
    bfactors_a2 : float or Tensor (N,), optional
        Isotropic B-factors [Å²] (default 0: the bare atoms).
    occupancies : Tensor (N,), optional
        Multiply each atom's potential (default 1).
    origin_angstrom : Tensor (3,), optional
        Model point placed at voxel ``(d//2, h//2, w//2)``; default: the centre of mass.
    sampling : {"integrated", "point"}
        Voxel averages (default) or values at voxel centres (module docstring).
    cutoff_sigmas : float
        Each atom's Gaussians are truncated at this many σ of its widest one.
    outside : {"error", "ignore"}
        An atom whose centre lies outside the box raises a ``ValueError`` giving the box size
        needed (default), or is dropped.
    unknown : {"error", "carbon"}
        Elements without parameters: error or treated as carbon.
    chunk_size : int
        Atoms per batch (memory ``chunk_size · K³``; no effect on the result).
    dtype : torch.dtype, optional
        Default: that of ``coordinates_angstrom``.

    Returns
    -------
    Tensor, shape (d, h, w)
        ``V`` [V] on the device of ``coordinates_angstrom``.

    Notes
    -----
    .. math:: V(\\mathbf r) = \\frac{h^2}{2\\pi m_0 e} \\sum_a \\sum_{i=1}^5 a_i
              \\left(\\frac{4\\pi}{b_i + B_a}\\right)^{3/2}
              e^{-4\\pi^2 |\\mathbf r - \\mathbf r_a|^2 / (b_i + B_a)}

    (module docstring for the derivation and the sampling options).

    References
    ----------
    Peng et al. (1996), https://doi.org/10.1107/S0108767395014371

    Examples
    --------
    >>> xyz = torch.zeros(1, 3, dtype=torch.float64)
    >>> v = potential_map(xyz, ["C"], shape=(32, 32, 32), pixel_size_angstrom=0.5)
    >>> round(float(v.sum()) * 0.5**3, 1)  # ∫V d³r = C·f_e(0) [V Å³]
    120.1
    """
    _check_sampling(sampling)
    dtype = dtype or coordinates_angstrom.dtype
    amplitudes, widths = _atom_gaussians(
        coordinates_angstrom, elements, bfactors_a2, occupancies, unknown, dtype
    )
    if origin_angstrom is None:
        origin_angstrom = model_center_angstrom(coordinates_angstrom, elements, unknown=unknown)
    origin = torch.as_tensor(origin_angstrom, device=coordinates_angstrom.device, dtype=dtype)
    d, h, w = shape
    center_index = torch.tensor([w // 2, h // 2, d // 2], device=origin.device, dtype=dtype)
    centers_px = (coordinates_angstrom.to(dtype) - origin) / pixel_size_angstrom + center_index
    keep = _inside(centers_px, (w, h, d))
    if not bool(keep.all()):
        if outside == "error":
            extent = (coordinates_angstrom.to(dtype) - origin).abs().amax(
                dim=0
            ) / pixel_size_angstrom
            needed = tuple(2 * math.ceil(e + 0.5) for e in extent.flip(0).tolist())
            raise ValueError(
                f"{int((~keep).sum())} atom(s) lie outside the box {tuple(shape)} at "
                f"{pixel_size_angstrom} Å/px; a box of at least {needed} voxels (d, h, w) is "
                "needed around this origin (or pass outside='ignore')"
            )
        if outside != "ignore":
            raise ValueError(f"outside must be 'error' or 'ignore', got {outside!r}")
        centers_px, amplitudes, widths = centers_px[keep], amplitudes[keep], widths[keep]
        if centers_px.shape[0] == 0:
            return torch.zeros(shape, device=origin.device, dtype=dtype)
    radius = _window_radius_px(widths, pixel_size_angstrom, cutoff_sigmas)
    pad = radius + 1
    padded = (d + 2 * pad, h + 2 * pad, w + 2 * pad)
    volume = torch.zeros(padded[0] * padded[1] * padded[2], device=origin.device, dtype=dtype)
    order = torch.argsort(widths.max(dim=1).values)
    for chunk in torch.split(order, chunk_size):
        _splat_3d(
            volume,
            centers_px[chunk],
            amplitudes[chunk],
            widths[chunk],
            padded,
            pad,
            pixel_size_angstrom,
            sampling,
            cutoff_sigmas,
        )
    volume = volume.reshape(padded)
    return volume[pad : pad + d, pad : pad + h, pad : pad + w].contiguous()


def _splat_3d(
    volume: torch.Tensor,
    centers_px: torch.Tensor,
    amplitudes: torch.Tensor,
    widths: torch.Tensor,
    padded: tuple[int, int, int],
    pad: int,
    pixel_size_angstrom: float,
    sampling: str,
    cutoff: float,
) -> None:
    """Add one chunk of atoms into the flat padded ``volume`` (windows of K³ voxels)."""
    radius = _window_radius_px(widths, pixel_size_angstrom, cutoff)
    size = 2 * radius + 2
    start = torch.floor(centers_px).long() - radius  # (n, 3) first voxel of each window
    gx, gy, gz = (
        _axis_factors(centers_px[:, i], widths, start[:, i], size, pixel_size_angstrom, sampling)
        for i in range(3)
    )
    gz = gz * amplitudes[..., None]  # (n, 5, K)
    zy = (gz[:, :, :, None] * gy[:, :, None, :]).flatten(2)  # (n, 5, K²)
    window = torch.bmm(zy.transpose(1, 2), gx)  # (n, K², K)
    _, ph, pw = padded
    offsets = torch.arange(size, device=start.device)
    pattern = (
        offsets[:, None, None] * (ph * pw) + offsets[None, :, None] * pw + offsets[None, None, :]
    ).reshape(-1)  # (K³,) flat offsets inside a window
    s = start + pad
    base = s[:, 2] * (ph * pw) + s[:, 1] * pw + s[:, 0]
    index = base[:, None] + pattern[None, :]
    volume.index_add_(0, index.reshape(-1), window.reshape(-1))


def projected_potential(
    coordinates_angstrom: torch.Tensor,
    elements: Sequence[str],
    *,
    image_size: int | tuple[int, int],
    pixel_size_angstrom: float,
    euler_deg: torch.Tensor | None = None,
    rotation_matrices: torch.Tensor | None = None,
    shift_angstrom: torch.Tensor | None = None,
    bfactors_a2: float | torch.Tensor | None = None,
    occupancies: torch.Tensor | None = None,
    origin_angstrom: torch.Tensor | None = None,
    sampling: str = "integrated",
    cutoff_sigmas: float = 4.0,
    unknown: str = "error",
    chunk_size: int = 4096,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Projected potential ``∫ V dz`` [V Å] of an atomic model at poses, directly from atoms.

    Parameters
    ----------
    coordinates_angstrom : Tensor, shape (N, 3)
    elements : sequence of str, length N
    image_size : int or (h, w)
    pixel_size_angstrom : float
    euler_deg : Tensor, shape (B, 3), optional
        RELION Euler angles (rot, tilt, psi) [degrees]; or give ``rotation_matrices``.
        Neither: the single pose A = I (projection along z), B = 1.
    rotation_matrices : Tensor, shape (B, 3, 3), optional
        RELION matrices ``A`` (:func:`cryoglass.geometry.euler_to_matrix`).
    shift_angstrom : Tensor, shape (B, 2), optional
        RELION origins (x, y) [Å]: the image is the centred projection translated by −origin.
    bfactors_a2, occupancies, origin_angstrom, unknown, chunk_size, dtype
        As :func:`potential_map`.
    sampling : {"integrated", "point"}
        Pixel averages (default) or values at pixel centres.
    cutoff_sigmas : float
        Truncation of each atom's 2D window (σ of its widest Gaussian).

    Returns
    -------
    Tensor, shape (B, h, w)
        ``P(x, y) = ∫ V(Aᵀ(x, y, z)) dz`` [V Å]; atoms falling outside the image are cut off.

    Notes
    -----
    The rotated atom stays a sum of isotropic Gaussians, only its centre moves to ``A r_a``:

    .. math:: P(\\mathbf u) = \\frac{h^2}{2\\pi m_0 e} \\sum_a \\sum_i a_i
              \\frac{4\\pi}{b_i + B_a}\\,
              e^{-4\\pi^2 |\\mathbf u - (A\\mathbf r_a)_{xy} + \\mathbf o|^2/(b_i + B_a)}

    with ``o`` the RELION origin.  ``project(potential_map(...)) · pixel`` approximates this.

    References
    ----------
    Kirkland (2020), Advanced Computing in Electron Microscopy, ch. 5,
    https://doi.org/10.1007/978-3-030-33260-0
    """
    _check_sampling(sampling)
    dtype = dtype or coordinates_angstrom.dtype
    amplitudes, widths = _atom_gaussians(
        coordinates_angstrom, elements, bfactors_a2, occupancies, unknown, dtype
    )
    device = coordinates_angstrom.device
    if rotation_matrices is None:
        if euler_deg is None:
            rotation_matrices = torch.eye(3, device=device, dtype=dtype)[None]
        else:
            rotation_matrices = euler_to_matrix(euler_deg.to(device=device, dtype=dtype))
    rotation_matrices = rotation_matrices.to(device=device, dtype=dtype)
    if origin_angstrom is None:
        origin_angstrom = model_center_angstrom(coordinates_angstrom, elements, unknown=unknown)
    origin = torch.as_tensor(origin_angstrom, device=device, dtype=dtype)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    rotated = torch.einsum(
        "bij,nj->bni", rotation_matrices, coordinates_angstrom.to(dtype) - origin
    )
    xy = rotated[..., :2]
    if shift_angstrom is not None:
        xy = xy - shift_angstrom.to(device=device, dtype=dtype)[:, None, :]
    center_index = torch.tensor([w // 2, h // 2], device=device, dtype=dtype)
    centers_px = xy / pixel_size_angstrom + center_index  # (B, N, 2)
    n_poses = centers_px.shape[0]
    radius = _window_radius_px(widths, pixel_size_angstrom, cutoff_sigmas)
    pad = 2 * radius + 3
    ph, pw = h + 2 * pad, w + 2 * pad
    images = torch.zeros(n_poses * ph * pw, device=device, dtype=dtype)
    # atoms far outside the image are clamped to where their windows miss it (inside the pad)
    low = torch.full((2,), -radius - 2.0, device=device, dtype=dtype)
    high = torch.tensor([w + radius + 1.0, h + radius + 1.0], device=device, dtype=dtype)
    centers_px = torch.minimum(torch.maximum(centers_px, low), high)
    order = torch.argsort(widths.max(dim=1).values)
    for chunk in torch.split(order, max(1, chunk_size // max(1, n_poses))):
        _splat_2d(
            images,
            centers_px[:, chunk],
            amplitudes[chunk],
            widths[chunk],
            (ph, pw),
            pad,
            pixel_size_angstrom,
            sampling,
            cutoff_sigmas,
        )
    images = images.reshape(n_poses, ph, pw)
    return images[:, pad : pad + h, pad : pad + w].contiguous()


def _splat_2d(
    images: torch.Tensor,
    centers_px: torch.Tensor,
    amplitudes: torch.Tensor,
    widths: torch.Tensor,
    padded: tuple[int, int],
    pad: int,
    pixel_size_angstrom: float,
    sampling: str,
    cutoff: float,
) -> None:
    """Add one chunk of atoms (all poses) into the flat padded image stack."""
    radius = _window_radius_px(widths, pixel_size_angstrom, cutoff)
    size = 2 * radius + 2
    n_poses = centers_px.shape[0]
    start = torch.floor(centers_px).long() - radius  # (B, n, 2)
    wb = widths.expand(n_poses, *widths.shape)
    gx = _axis_factors(centers_px[..., 0], wb, start[..., 0], size, pixel_size_angstrom, sampling)
    gy = _axis_factors(centers_px[..., 1], wb, start[..., 1], size, pixel_size_angstrom, sampling)
    gy = gy * amplitudes[None, :, :, None]  # (B, n, 5, K)
    window = torch.einsum("bnik,bnil->bnkl", gy, gx)  # (B, n, K, K)
    ph, pw = padded
    offsets = torch.arange(size, device=start.device)
    s = start + pad
    pose = torch.arange(n_poses, device=start.device)[:, None, None, None] * (ph * pw)
    index = (
        pose
        + ((s[..., 1, None] + offsets) * pw)[..., :, None]
        + (s[..., 0, None] + offsets)[..., None, :]
    )
    images.index_add_(0, index.reshape(-1), window.reshape(-1))
