r"""Direct Fourier inversion with chunked accumulation: accumulate → merge → finalize.

Every particle image ``X_i`` (origin shift ``o_i``, CTF ``c_i``, pose ``A_i``) is inserted into
two padded 3D half-transforms (``M = pad·N``, the layout of the projector's table):

.. math:: D(\mathbf p) = \sum_i \sum_{\mathbf k} w(\mathbf p, \mathbf k_i)\,
          c_i(\mathbf k)\, e^{-2\pi i \mathbf k\cdot\mathbf o_i}\hat X_i(\mathbf k), \qquad
          W(\mathbf p) = \sum_i \sum_{\mathbf k} w(\mathbf p, \mathbf k_i)\, c_i(\mathbf k)^2

with ``k_i = pad·A_iᵀ(k_x, k_y, 0)`` and ``w`` the trilinear (or nearest) weights — the
back-projection of :func:`cryoglass.reconstruct.insert_values`.  Both are plain sums, so partial
sums of any chunks (on any workers, in any order) simply add (:func:`merge`).  :func:`finalize`
then forms the Wiener-like estimate

.. math:: \hat V(\mathbf p) = \frac{D(\mathbf p)}{W(\mathbf p) + 1/\tau^2(|\mathbf p|)}

(RELION's ``BackProjector::reconstruct``), optionally replaces the division by Pipe & Menon's
iterative density compensation, inverts the padded transform, keeps the central ``N³`` box,
applies relion_reconstruct's soft spherical mask and divides by the gridding kernel
``sinc²(r/M)`` (trilinear) — the real-space apodisation that the interpolation caused.

Regularisation ``1/τ²``
    * ``"none"``: 0 (exact inverse for noise-free, fully sampled data).
    * ``"constant"``: ``λ · W̄`` with ``W̄`` the mean weight inside ``|k| ≤ N//2`` and
      ``λ = wiener_constant`` (dimensionless, so it does not depend on the particle count).
    * a tensor ``τ²`` per shell (``N//2 + 1``), e.g. from :func:`tau2_from_fsc`: RELION's
      ``τ² = SSNR / ⟨W⟩_shell`` with ``SSNR = FSC/(1 − FSC)``; the term is ``1/(fudge·τ²)``.

References
----------
Scheres, S. H. W. (2012). RELION: implementation of a Bayesian approach to cryo-EM structure
determination. J. Struct. Biol. 180, 519-530. https://doi.org/10.1016/j.jsb.2012.09.006

Pipe, J. G. & Menon, P. (1999). Sampling density compensation in MRI: rationale and an
iterative numerical solution. Magn. Reson. Med. 41, 179-186.
https://doi.org/10.1002/(SICI)1522-2594(199901)41:1<179::AID-MRM25>3.0.CO;2-V

Penczek, P. A. (2010). Fundamentals of three-dimensional reconstruction from projections.
Methods Enzymol. 482, 1-33. https://doi.org/10.1016/S0076-6879(10)82001-4
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from cryoglass.projection.fourier_slice import gridding_correction
from cryoglass.reconstruct.backproject import (
    _GUARD,
    _as_rotations,
    _broadcast_ctf,
    _check_interpolation,
    _expand,
    _outside_mask,
    ctf_slice_values,
    image_slice_values,
    insert_values,
    table_shape,
)

__all__ = [
    "Accumulator",
    "accumulate",
    "accumulate_values",
    "empty_accumulator",
    "finalize",
    "memory_estimate_bytes",
    "merge",
    "reconstruct",
    "shell_mean_weight",
    "tau2_from_fsc",
]

_REGULARISATIONS = ("constant", "none")


@dataclass(frozen=True)
class Accumulator:
    """Partial sums of a direct Fourier inversion (immutable; combine with :func:`merge`).

    Attributes
    ----------
    data : Tensor, shape ``table_shape(size, pad=pad)``, complex
        ``Σ CTF · e^{−2πi k·o} · F`` inserted into the guarded padded half-transform
        (``data[z, y, x]`` ↔ frequency ``(x, y − M//2 − 1, z − M//2 − 1)`` in padded units).
    weight : Tensor, same shape, real
        ``Σ CTF²`` (or ``Σ 1``) inserted with the same interpolation weights.
    size : int
        Box ``N`` of the images and the map [pixels].
    pad : int
        Padding factor (``M = pad·N``).
    interpolation : str
        ``"linear"`` (trilinear) or ``"nearest"``.
    count : int
        Number of images inserted (before symmetry expansion).
    """

    data: torch.Tensor
    weight: torch.Tensor
    size: int
    pad: int
    interpolation: str
    count: int = 0

    @property
    def padded_size(self) -> int:
        """``M = pad · N``."""
        return self.pad * self.size


def empty_accumulator(
    box: int,
    *,
    pad: int = 2,
    interpolation: str = "linear",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Accumulator:
    """Zero sums for a box of ``box`` pixels.

    Parameters
    ----------
    box : int
        Image and map size ``N`` [pixels].
    pad : int
        Padding factor (RELION's default 2).
    interpolation : {"linear", "nearest"}
    device : optional
    dtype : torch.float32 or torch.float64
        Real dtype of the weights (the data are the matching complex dtype).

    Returns
    -------
    Accumulator
    """
    _check_interpolation(interpolation)
    if int(pad) != pad or pad < 1:
        raise ValueError(f"pad must be an integer >= 1, got {pad}")
    if box < 2:
        raise ValueError(f"box must be >= 2 pixels, got {box}")
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    shape = table_shape(box, pad=int(pad))
    return Accumulator(
        data=torch.zeros(shape, device=device, dtype=complex_dtype),
        weight=torch.zeros(shape, device=device, dtype=dtype),
        size=int(box),
        pad=int(pad),
        interpolation=interpolation,
    )


def accumulate(
    acc: Accumulator,
    images: torch.Tensor,
    rotations: torch.Tensor,
    *,
    shift_angstrom: torch.Tensor | None = None,
    ctf=None,
    pixel_size_angstrom: float = 1.0,
    symmetry: str = "C1",
    inplace: bool = False,
) -> Accumulator:
    """Insert a batch of images: returns ``acc`` plus their back-projected sums.

    Parameters
    ----------
    acc : Accumulator
    images : Tensor, shape (B, N, N), real
        Particle images (origin at ``N//2``), any device (moved to ``acc``'s).
    rotations : Tensor, shape (B, 3, 3)
        RELION matrices ``A`` (:func:`cryoglass.geometry.euler_to_matrix`).
    shift_angstrom : Tensor, shape (B, 2), optional
        RELION origins ``(rlnOriginXAngst, rlnOriginYAngst)`` [Å].
    ctf : CTFParams with batch shape (B,) or (), optional
        Insert ``CTF·F`` and ``CTF²`` (else ``F`` and 1).
    pixel_size_angstrom : float
    symmetry : str
        Point group; each image is inserted at all ``A·L_g`` (:func:`expand_rotations`).
    inplace : bool
        ``False`` (default): ``acc`` is not modified, a new accumulator is returned.  ``True``:
        add into ``acc``'s tensors (for a caller-owned accumulator in a loop; saves a copy).

    Returns
    -------
    Accumulator
        With ``count`` increased by ``B``.
    """
    if images.ndim != 3 or images.shape[-2:] != (acc.size, acc.size):
        raise ValueError(
            f"images must have shape (B, {acc.size}, {acc.size}), got {tuple(images.shape)}"
        )
    rotations = _as_rotations(rotations, None, acc.weight.dtype)
    if rotations.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {rotations.shape[0]} rotations")
    device, real_dtype = acc.weight.device, acc.weight.dtype
    images = images.to(device=device, dtype=real_dtype)
    if shift_angstrom is not None:
        shift_angstrom = torch.as_tensor(shift_angstrom).to(device=device, dtype=real_dtype)
    ctf = _broadcast_ctf(ctf, images.shape[0], device, real_dtype)
    values = image_slice_values(
        images, shift_angstrom=shift_angstrom, pixel_size_angstrom=pixel_size_angstrom
    )
    ctf_squared = None
    if ctf is not None:  # computed once: multiplies the values, its square is the weight
        ctf_values = ctf_slice_values(
            ctf, size=acc.size, pixel_size_angstrom=pixel_size_angstrom, like=images
        )
        values = values * ctf_values
        ctf_squared = ctf_values.square()
    rot = rotations.to(device=device, dtype=real_dtype)
    values, rot_expanded = _expand(values, rot, symmetry)
    if ctf_squared is not None:
        ctf_squared, _ = _expand(ctf_squared, rot, symmetry)
    data, weight = (acc.data, acc.weight) if inplace else (acc.data.clone(), acc.weight.clone())
    insert_values(
        data,
        values,
        rot_expanded,
        size=acc.size,
        pad=acc.pad,
        interpolation=acc.interpolation,
        weight=weight,
        ctf_squared=ctf_squared,
    )
    return replace(acc, data=data, weight=weight, count=acc.count + images.shape[0])


def accumulate_values(
    acc: Accumulator,
    values: torch.Tensor,
    rotations: torch.Tensor,
    *,
    ctf_squared: torch.Tensor | None = None,
    symmetry: str = "C1",
    count: int | None = None,
    inplace: bool = False,
) -> Accumulator:
    """Insert precomputed slice values: the step under :func:`accumulate` for weighted poses.

    Refinement inserts every particle at several poses with posterior weights ``w``: the
    caller forms ``values = w · c · e^{−2πi k·o} X̂`` and ``ctf_squared = w · c²`` (once per
    image for all its poses) and inserts them here.

    Parameters
    ----------
    acc : Accumulator
    values : Tensor, shape (B, P), complex
        At the ``P`` frequencies of :func:`cryoglass.projection.slice_frequencies`.
    rotations : Tensor, shape (B, 3, 3)
        RELION matrices ``A`` of each row.
    ctf_squared : Tensor, shape (B, P), real, optional
        Weights added to ``W`` (default 1 per value).
    symmetry : str
        Point group; each row is inserted at all ``A·L_g``.
    count : int, optional
        Images these rows stand for (default ``B``), added to ``acc.count``.
    inplace : bool
        Add into ``acc``'s tensors.

    Returns
    -------
    Accumulator
    """
    rotations = _as_rotations(rotations, None, acc.weight.dtype)
    if values.ndim != 2 or values.shape[0] != rotations.shape[0]:
        raise ValueError(
            f"values must have shape (B, P) with B = {rotations.shape[0]}, "
            f"got {tuple(values.shape)}"
        )
    device, real_dtype = acc.weight.device, acc.weight.dtype
    values = values.to(device)
    rot = rotations.to(device=device, dtype=real_dtype)
    values, rot_expanded = _expand(values, rot, symmetry)
    if ctf_squared is not None:
        ctf_squared, _ = _expand(ctf_squared.to(device=device, dtype=real_dtype), rot, symmetry)
    data, weight = (acc.data, acc.weight) if inplace else (acc.data.clone(), acc.weight.clone())
    insert_values(
        data,
        values,
        rot_expanded,
        size=acc.size,
        pad=acc.pad,
        interpolation=acc.interpolation,
        weight=weight,
        ctf_squared=ctf_squared,
    )
    added = rotations.shape[0] if count is None else int(count)
    return replace(acc, data=data, weight=weight, count=acc.count + added)


def merge(*accumulators: Accumulator) -> Accumulator:
    """Sum partial accumulators (order-independent up to float rounding).

    Parameters
    ----------
    *accumulators : Accumulator
        Same ``size``, ``pad`` and ``interpolation``.

    Returns
    -------
    Accumulator
        New sums (the inputs are not modified); on the first one's device.
    """
    if not accumulators:
        raise ValueError("merge needs at least one accumulator")
    first = accumulators[0]
    for other in accumulators[1:]:
        if (other.size, other.pad, other.interpolation) != (
            first.size,
            first.pad,
            first.interpolation,
        ):
            raise ValueError(
                "merge: accumulators differ in (size, pad, interpolation): "
                f"{(first.size, first.pad, first.interpolation)} vs "
                f"{(other.size, other.pad, other.interpolation)}"
            )
    data = first.data.clone()
    weight = first.weight.clone()
    for other in accumulators[1:]:
        data += other.data.to(data.device)
        weight += other.weight.to(weight.device)
    return replace(first, data=data, weight=weight, count=sum(a.count for a in accumulators))


def _interior(acc: Accumulator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views of data and weight without guards, and their Hermitian-summed ``k_x = 0`` planes.

    Points were folded to ``p_x ≥ 0``, so the partner of a value at ``(0, y, z)`` is its
    conjugate at ``(0, −y, −z)``; RELION sums the two (``enforceHermitianSymmetry``).
    """
    m = acc.padded_size
    region = (slice(_GUARD, _GUARD + m), slice(_GUARD, _GUARD + m), slice(0, m // 2 + 1))
    data, weight = acc.data[region], acc.weight[region]
    mirror = torch.remainder(2 * (m // 2) - torch.arange(m, device=data.device), m)
    plane_d, plane_w = data[:, :, 0], weight[:, :, 0]
    plane_d = plane_d + plane_d[mirror][:, mirror].conj()
    plane_w = plane_w + plane_w[mirror][:, mirror]
    return data, weight, plane_d, plane_w


def _shell_index(size: int, pad: int, *, device) -> torch.Tensor:
    """RELION's shell ``round(|p| / pad)`` of each centred padded half-grid voxel (long)."""
    m = pad * size
    kc = (torch.arange(m, device=device, dtype=torch.float64) - m // 2) ** 2
    kx = torch.arange(m // 2 + 1, device=device, dtype=torch.float64) ** 2
    r = torch.sqrt(kc[:, None, None] + kc[None, :, None] + kx[None, None, :])
    return torch.round(r / pad).long()


def shell_mean_weight(acc: Accumulator) -> torch.Tensor:
    """Mean of the (Hermitian-summed) weight over each shell's padded voxels.

    Returns
    -------
    Tensor, shape (N//2 + 1,), float64
        ``⟨W⟩`` for shells ``0 .. N//2`` (shell = ``round(|p|/pad)``, as RELION).
    """
    _, weight, _, plane = _interior(acc)
    weight = weight.clone()
    weight[:, :, 0] = plane
    return _shell_mean(weight, acc.size, acc.pad)


def _shell_mean(weight: torch.Tensor, size: int, pad: int) -> torch.Tensor:
    n_shells = size // 2 + 1
    shell = _shell_index(size, pad, device=weight.device).reshape(-1)
    inside = shell < n_shells
    sums = torch.bincount(
        shell[inside], weights=weight.reshape(-1)[inside].double(), minlength=n_shells
    )
    counts = torch.bincount(shell[inside], minlength=n_shells).double()
    return sums[:n_shells] / counts[:n_shells].clamp_min(1)


def tau2_from_fsc(acc: Accumulator, fsc: torch.Tensor, *, whole_map: bool = False) -> torch.Tensor:
    """RELION's signal power ``τ²`` per shell from an FSC curve, in this accumulator's units.

    Parameters
    ----------
    acc : Accumulator
        The sums to be regularised (their shell-mean weight sets the noise level).
    fsc : Tensor, shape (N//2 + 1,)
        FSC between half maps, shells ``0 .. N//2``.
    whole_map : bool
        ``True`` when ``acc`` holds both halves: the FSC is first converted to the full map's
        ``sqrt(2 FSC / (1 + FSC))``.

    Returns
    -------
    Tensor, shape (N//2 + 1,), float64
        ``τ² = SSNR / ⟨W⟩_shell`` with ``SSNR = f/(1 − f)``, ``f`` clamped to
        ``[0.001, 0.999]`` (RELION).  Pass it as ``finalize(acc, regularisation=tau2)``.

    Notes
    -----
    With ``1/τ² = ⟨W⟩/SSNR`` the estimate ``D/(W + 1/τ²)`` is the Wiener filter of a shell whose
    noise variance per voxel is ``1/W`` (RELION's ``sigma2``) and whose signal power is
    ``SSNR/⟨W⟩``.
    """
    n_shells = acc.size // 2 + 1
    fsc = torch.as_tensor(fsc, dtype=torch.float64, device=acc.weight.device).reshape(-1)
    if fsc.shape[0] != n_shells:
        raise ValueError(f"fsc must have {n_shells} shells (0 .. N//2), got {fsc.shape[0]}")
    f = fsc.clamp_min(0.001)
    if whole_map:
        f = torch.sqrt(2 * f / (f + 1))
    f = f.clamp_max(0.999)
    return (f / (1 - f)) / shell_mean_weight(acc).clamp_min(1e-30)


def _regularisation(
    weight: torch.Tensor,
    inside: torch.Tensor,
    acc: Accumulator,
    regularisation,
    wiener_constant: float,
    tau2_fudge: float,
):
    """The term ``1/τ²`` per voxel (scalar or grid)."""
    if isinstance(regularisation, str):
        if regularisation not in _REGULARISATIONS:
            raise ValueError(
                f"regularisation must be one of {_REGULARISATIONS} or a tau2 tensor, "
                f"got {regularisation!r}"
            )
        if regularisation == "none":
            return 0.0
        if wiener_constant < 0:
            raise ValueError(f"wiener_constant must be >= 0, got {wiener_constant}")
        return wiener_constant * float((weight * inside).sum() / inside.sum())
    tau2 = torch.as_tensor(regularisation, device=weight.device, dtype=torch.float64).reshape(-1)
    if tau2.shape[0] != acc.size // 2 + 1:
        raise ValueError(f"tau2 must have {acc.size // 2 + 1} shells, got {tau2.shape[0]}")
    if bool((tau2 < 0).any()):
        raise ValueError("tau2 must be >= 0")
    inverse = 1.0 / (tau2_fudge * tau2).clamp_min(1e-30)
    shell = _shell_index(acc.size, acc.pad, device=weight.device).clamp_max(acc.size // 2)
    return inverse.to(weight.dtype)[shell]


def _blob_multiplier(m: int, pad: int, *, device, dtype) -> torch.Tensor:
    """Real-space transform (M, M, M) of RELION's Kaiser–Bessel blob (a = 1.9·pad, α = 15),
    sampled on the padded Fourier grid and normalised to unit sum (FFT order)."""
    radius, alpha = 1.9 * pad, 15.0
    d = torch.remainder(torch.arange(m, device=device, dtype=torch.float64) + m // 2, m) - m // 2
    r = torch.sqrt(d[:, None, None] ** 2 + d[None, :, None] ** 2 + d[None, None, :] ** 2)
    t = (1 - (r / radius) ** 2).clamp_min(0)
    blob = torch.where(r <= radius, torch.special.i0(alpha * torch.sqrt(t)), torch.zeros_like(r))
    blob = blob / blob.sum()
    return torch.fft.fftn(blob).real.to(dtype)


def _pipe_menon(weight: torch.Tensor, inside: torch.Tensor, acc: Accumulator, iterations: int):
    """Iterative density compensation: ``w ← w / |blob ⊛ (w·W)|`` (Pipe & Menon 1999, eq. 14)."""
    m = acc.padded_size
    uncentre = torch.remainder(torch.arange(m, device=weight.device) + m // 2, m)
    recentre = torch.remainder(torch.arange(m, device=weight.device) - m // 2, m)
    multiplier = _blob_multiplier(m, acc.pad, device=weight.device, dtype=weight.dtype)
    floor = 1e-6 * float(weight[inside].mean())
    w = inside.to(weight.dtype)
    for _ in range(iterations):
        product = (w * weight).index_select(0, uncentre).index_select(1, uncentre)
        conv = torch.fft.rfftn(torch.fft.irfftn(product, s=(m, m, m)) * multiplier)
        conv = conv.abs().index_select(0, recentre).index_select(1, recentre)
        w = torch.where(inside, w / conv.clamp_min(floor), torch.zeros_like(w))
    return w


def finalize(
    acc: Accumulator,
    *,
    regularisation: str | torch.Tensor = "constant",
    wiener_constant: float = 1e-3,
    tau2_fudge: float = 1.0,
    gridding: bool = True,
    gridding_iterations: int = 0,
    mask: str | None = "relion",
) -> torch.Tensor:
    """The map from accumulated sums: regularised division, inverse FFT, crop, mask, gridding.

    Parameters
    ----------
    acc : Accumulator
    regularisation : {"constant", "none"} or Tensor (N//2 + 1,)
        The term added to the weights (module docstring): ``"constant"`` adds
        ``wiener_constant · W̄``; a tensor is ``τ²`` per shell (:func:`tau2_from_fsc`).
    wiener_constant : float
        ``λ`` for ``"constant"`` (dimensionless, relative to the mean weight).
    tau2_fudge : float
        RELION's ``tau2_fudge`` (``T``): the term is ``1/(T·τ²)``.
    gridding : bool
        Divide the map by the interpolation kernel's transform (``sinc²(r/M)`` trilinear,
        ``sinc(r/M)`` nearest), as RELION.
    gridding_iterations : int
        0: divide by the weights directly.  ``> 0``: RELION's iterative gridding — Pipe–Menon
        density compensation with a Kaiser–Bessel blob (relion_reconstruct uses 10; each
        iteration costs two ``M³`` FFTs).
    mask : "relion" or None
        ``"relion"`` (default): relion_reconstruct's soft sphere (radius ``N/2``, 3-pixel
        cosine edge, blended to the mean outside value) before the gridding division, as RELION
        does, so maps compare like for like.  ``None``: no mask.

    Returns
    -------
    Tensor, shape (N, N, N), real (the accumulator's dtype and device)
        Same units as the map the images were projected from (``cryoglass.projection.project``
        of it gives the images back).

    Notes
    -----
    ``V̂ = D / (W + 1/τ²)`` where ``W + 1/τ² > 0`` (0 elsewhere) inside ``|k| ≤ pad·(N//2)``;
    ``v = crop_N(irfftn_M(V̂))``; then mask and ``v / sinc²(r/M)``.
    """
    if mask not in ("relion", None):
        raise ValueError(f"mask must be 'relion' or None, got {mask!r}")
    if gridding_iterations < 0:
        raise ValueError(f"gridding_iterations must be >= 0, got {gridding_iterations}")
    m, n = acc.padded_size, acc.size
    data, weight, plane_d, plane_w = _interior(acc)
    inside = _outside_mask(n, acc.pad, device=weight.device, dtype=weight.dtype).logical_not()
    reg = _regularisation(weight, inside, acc, regularisation, wiener_constant, tau2_fudge)
    total = weight + reg
    total[:, :, 0] = plane_w + (reg[:, :, 0] if isinstance(reg, torch.Tensor) else reg)
    if gridding_iterations > 0:
        inverse = _pipe_menon(total, inside, acc, gridding_iterations)
    else:  # 1 / total inside the sphere where total > 0, else 0 (no copies of the data)
        tiny = torch.finfo(total.dtype).tiny
        inverse = total.clamp_min_(tiny).reciprocal_().mul_(inside)
    spectrum = data * inverse  # complex · real
    spectrum[:, :, 0] = plane_d * inverse[:, :, 0]
    volume = _centred_inverse_crop(spectrum, size=n)
    if mask == "relion":
        from cryoglass.validate.masks import soft_mask_outside_sphere

        volume = soft_mask_outside_sphere(volume, radius_px=n / 2, edge_width_px=3.0)
    if gridding:
        volume = gridding_correction(volume, padded_size=m, interpolation=acc.interpolation)
    return volume


def _centred_inverse_crop(spectrum: torch.Tensor, *, size: int) -> torch.Tensor:
    """Central ``N³`` box (origin at ``N//2``) of ``irfftn`` of a half-spectrum centred on its
    first two axes (``k_z``, ``k_y`` at index ``M//2``; ``k_x ≥ 0`` from index 0).

    The 3D inverse is done axis by axis (``k_z``, ``k_y``, then the real ``k_x`` transform),
    each output axis cropped to the ``N`` kept rows before the next transform.  For even ``M``
    the un-centring roll by ``M/2`` is not done on the spectrum: it equals the modulation
    ``(−1)^(z+y)`` of the real-space result, applied to the cropped box only.
    """
    m = spectrum.shape[0]
    device = spectrum.device
    wrapped = torch.remainder(torch.arange(size, device=device) - size // 2, m)
    if m % 2:
        uncentre = torch.remainder(torch.arange(m, device=device) + m // 2, m)
        spectrum = spectrum.index_select(0, uncentre).index_select(1, uncentre)
    # the inverse transform one axis at a time, keeping only the N output rows of each axis
    volume = torch.fft.ifft(spectrum, dim=0).index_select(0, wrapped)
    volume = torch.fft.ifft(volume, dim=1).index_select(1, wrapped)
    volume = torch.fft.irfft(volume, n=m, dim=2).index_select(2, wrapped)
    if m % 2 == 0:
        sign = 1 - 2 * torch.remainder(wrapped, 2).to(volume.dtype)
        volume = volume * (sign[:, None, None] * sign[None, :, None])
    return volume


def memory_estimate_bytes(
    box: int,
    *,
    pad: int = 2,
    accumulators: int = 1,
    batch_size: int = 128,
    dtype: torch.dtype = torch.float32,
    gridding_iterations: int = 0,
    symmetry_order: int = 1,
) -> int:
    """Rough peak memory [bytes] of a reconstruction (accumulators + finalize + one batch).

    Parameters
    ----------
    box, pad : int
    accumulators : int
        How many are held at once (2 for half maps).
    batch_size : int
        Images per batch.
    dtype : float32 or float64
    gridding_iterations : int
        > 0 adds the ``M³`` blob multiplier and FFT buffers.
    symmetry_order : int
        ``G`` of the point group: every image is inserted ``G`` times, so the batch buffers
        (and the ``B·G`` rotation matrices) grow ``G``-fold.

    Returns
    -------
    int
        ``accumulators · L · (complex + real) + ~4 L complex (finalize) + G · batch buffers``,
        with ``L = (M+3)²(M//2+2)`` the guarded table size and ``M = pad·box``.

    Examples
    --------
    >>> memory_estimate_bytes(128, symmetry_order=4) > memory_estimate_bytes(128)
    True
    """
    real = torch.finfo(dtype).bits // 8
    m = pad * box
    table = (m + 3) ** 2 * (m // 2 + 2)
    grids = accumulators * table * 3 * real
    final = table * 2 * real * 4 + m**3 * real * (2 if gridding_iterations > 0 else 1)
    points = int(0.4 * box * box)  # ≈ P = π(N/2)²/2, the in-circle rfft frequencies
    batch = batch_size * points * 8 * (8 + 3 * real) + batch_size * box * box * 3 * real
    expanded = symmetry_order * (batch + batch_size * 9 * 8 * 4)  # values ×G, rotations (B·G)
    return int(grids + final + expanded)


def reconstruct(
    images: torch.Tensor,
    rotations: torch.Tensor | None = None,
    *,
    euler_deg: torch.Tensor | None = None,
    shift_angstrom: torch.Tensor | None = None,
    ctf=None,
    pixel_size_angstrom: float = 1.0,
    pad: int = 2,
    interpolation: str = "linear",
    symmetry: str = "C1",
    regularisation: str | torch.Tensor = "constant",
    wiener_constant: float = 1e-3,
    gridding: bool = True,
    gridding_iterations: int = 0,
    mask: str | None = "relion",
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Reconstruct a map from posed images in memory (friendly wrapper: accumulate + finalize).

    Parameters
    ----------
    images : Tensor, shape (B, N, N), real
    rotations : Tensor, shape (B, 3, 3), optional
        RELION matrices ``A``; give this or ``euler_deg``.
    euler_deg : Tensor, shape (B, 3), optional
        RELION (rot, tilt, psi) [degrees].
    shift_angstrom : Tensor, shape (B, 2), optional
        RELION origins [Å].
    ctf : CTFParams, optional
        Batch shape (B,) or (): CTF-weighted insertion.
    pixel_size_angstrom : float
    pad, interpolation, symmetry
        See :func:`accumulate`.
    regularisation, wiener_constant, gridding, gridding_iterations, mask
        See :func:`finalize`.
    batch_size : int
        Images per chunk (speed/memory only; the map does not depend on it).
    device : optional
        Where to compute (default: the images' device).

    Returns
    -------
    Tensor, shape (N, N, N)
        Float32 for float32 images, float64 for float64.

    Examples
    --------
    >>> from cryoglass.projection import project
    >>> from cryoglass.geometry import random_rotations
    >>> v = torch.zeros(16, 16, 16); v[8, 8, 8] = 1.0
    >>> R = random_rotations(300, generator=torch.Generator().manual_seed(0))
    >>> rec = reconstruct(project(v, R), R, mask=None)
    >>> rec.shape
    torch.Size([16, 16, 16])
    """
    rotations = _as_rotations(rotations, euler_deg, images.dtype)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else images.device
    count, n = images.shape[0], images.shape[-1]
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    acc = empty_accumulator(n, pad=pad, interpolation=interpolation, device=device, dtype=dtype)
    ctf = _broadcast_ctf(ctf, count, device, dtype)
    for start in range(0, count, batch_size):
        part = slice(start, start + batch_size)
        acc = accumulate(
            acc,
            images[part],
            rotations[part],
            shift_angstrom=None if shift_angstrom is None else shift_angstrom[part],
            ctf=None if ctf is None else ctf[part],
            pixel_size_angstrom=pixel_size_angstrom,
            symmetry=symmetry,
            inplace=True,
        )
    return finalize(
        acc,
        regularisation=regularisation,
        wiener_constant=wiener_constant,
        gridding=gridding,
        gridding_iterations=gridding_iterations,
        mask=mask,
    )
