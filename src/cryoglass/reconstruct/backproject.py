r"""Back-projection: the exact adjoint of the Fourier-slice projector.

The projector (:mod:`cryoglass.projection`) is a chain of linear maps

.. math:: P = \mathcal F^{-1}_{2D}\circ S \circ C \circ R \circ E \circ M \circ
          \mathcal F_{3D} \circ Z \circ G ,

gridding pre-correction ``G`` (divide by ``sinc²(r/M)``), zero padding ``Z`` to ``M = pad·N``,
the 3D rfft, the mask ``M`` to ``|k| ≤ pad·(N//2)``, slice extraction ``E`` (trilinear or
nearest, Hermitian folding), the origin phase ramp ``R``, the CTF ``C``, the scatter ``S`` of
the ``P`` in-circle frequencies into an ``N``-sized rfft and the inverse 2D rfft.  Its adjoint
``Pᵀ`` (with the real inner product :math:`\langle a, b\rangle = \mathrm{Re}\sum \bar a b`) is
the same chain backwards with every step replaced by its adjoint:

* ``Eᵀ`` — :func:`insert_slices`: every slice value is *added* to the 8 (or 1) table entries it
  was interpolated from, with the same trilinear weights; a value read through the Hermitian
  fold (``p_x < 0``) is added as its complex conjugate.
* ``Rᵀ`` multiplies by the conjugate ramp, ``Cᵀ = C`` (real), ``Sᵀ`` gathers.
* ``(𝓕⁻¹_2D)ᵀ = c_{k_x} 𝓕_2D / N²`` and ``𝓕_3Dᵀ = M³ 𝓕⁻¹_3D(· / c_{k_x})``, where
  ``c_{k_x} = 2`` for the rfft columns that stand for two frequencies (``±k_x``) and 1 for the
  ``k_x = 0`` (and Nyquist) columns.
* ``Zᵀ`` crops, ``Gᵀ = G``.

The adjoint is what the reconstruction (:mod:`cryoglass.reconstruct.fourier_inversion`) inserts
into its data grid, except that it inserts the plain 2D transforms (without ``c_{k_x}/N²``) and
also inserts the CTF² weights, so that ``Σ CTF·F / Σ CTF²`` estimates the map's transform.

References
----------
Scheres, S. H. W. (2012). RELION: implementation of a Bayesian approach to cryo-EM structure
determination. J. Struct. Biol. 180, 519-530. https://doi.org/10.1016/j.jsb.2012.09.006
"""

from __future__ import annotations

import torch

from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.projection.fourier_slice import gridding_correction, slice_frequencies
from cryoglass.reconstruct.symmetry import expand_rotations

__all__ = [
    "backproject",
    "ctf_slice_values",
    "image_slice_values",
    "insert_slices",
    "insert_values",
    "spectrum_adjoint",
    "table_shape",
]

_INTERPOLATIONS = ("linear", "nearest")
_GUARD = 1  # zero layers before the data on the k_y and k_z axes (as the projector's table)


def table_shape(size: int, *, pad: int = 2) -> tuple[int, int, int]:
    """Shape of the guarded half-transform table for box ``N = size`` and padding ``pad``.

    Returns
    -------
    (M + 3, M + 3, M//2 + 2) with ``M = pad·N``: the layout of
    :attr:`cryoglass.projection.VolumeFourier.table` (one guard layer before and two after on
    ``k_z``/``k_y``, one guard column after ``k_x = M//2``).  ``table[z, y, x]`` holds frequency
    ``(x, y − M//2 − 1, z − M//2 − 1)`` in padded units.
    """
    m = pad * size
    return (m + 3, m + 3, m // 2 + 2)


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")


def _check_rotations(rotations: torch.Tensor) -> None:
    if rotations.ndim != 3 or rotations.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must have shape (B, 3, 3), got {tuple(rotations.shape)}")


def _table_points(
    rotations: torch.Tensor, k: torch.Tensor, *, pad: int, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Guarded-table coordinates of ``pad·Aᵀ(k_x, k_y, 0)`` folded into ``p_x ≥ 0``.

    The same arithmetic as the projector, so that insertion is its exact adjoint.
    Returns ``x, y, z`` (B, P) and ``sign`` (B, P) (−1 where mirrored through the origin).
    """
    px, py, pz = torch.matmul(pad * rotations[:, :2, :].transpose(1, 2), k.T).unbind(1)
    sign = torch.where(px < 0, -1.0, 1.0).to(px.dtype)
    centre = pad * size // 2 + _GUARD
    return px.abs(), py * sign + centre, pz * sign + centre, sign


#: Points splatted per ``index_add_`` call on the CPU: their 8 corners' indices, weights and
#: values (≈ 1.5 MB) stay in the core's L2 cache, and since the points are sorted by table
#: position each call writes one short run of the table's memory.
_SPLAT_BLOCK = 16384
_CORNERS = tuple((dz, dy, dx) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1))


def _sorted_cells(
    x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Flat index of each point's lower corner cell and its fractional offsets.

    Returns ``base`` (n,), ``order`` (the permutation applied to the points, or None) and
    ``frac`` (3, n) = ``(f_z, f_y, f_x)`` in ``[0, 1)``.  On the CPU the points are sorted by
    ``base`` so that the scatter walks the table in memory order (about 3× faster than random
    order for a table much larger than the cache).
    """
    _, height, width = shape
    x, y, z = x.reshape(-1), y.reshape(-1), z.reshape(-1)
    itype = torch.int32 if (shape[0] + 1) * height * width < 2**31 - 1 else torch.int64
    xi, yi, zi = x.to(itype), y.to(itype), z.to(itype)  # coordinates >= 0: truncation is floor
    base = (zi * height + yi) * width + xi
    frac = torch.stack((z - zi, y - yi, x - xi))
    order = None
    if base.device.type == "cpu":
        base, order = torch.sort(base)
        frac = frac.index_select(1, order)
    return base, order, frac


def _splat_linear(
    data_flat: torch.Tensor,
    weight_flat: torch.Tensor | None,
    base: torch.Tensor,
    frac: torch.Tensor,
    values: torch.Tensor,
    point_weight: torch.Tensor | None,
    shape: tuple[int, int, int],
) -> None:
    r"""Add every point to its 8 trilinear corners: ``T[c] += w_c v``, ``W[c] += w_c ω``.

    ``w_c = Π_d (1 − f_d \text{ or } f_d)`` for corner ``c = (d_z, d_y, d_x) ∈ {0, 1}³``.
    All 8 corners of a block of points go into one ``index_add_`` (one pass over the block's
    part of the table instead of eight); blocks of :data:`_SPLAT_BLOCK` points on the CPU, all
    points at once elsewhere.
    """
    _, height, width = shape
    offsets = torch.tensor(
        [(dz * height + dy) * width + dx for dz, dy, dx in _CORNERS],
        dtype=base.dtype,
        device=base.device,
    )
    count = base.shape[0]
    block = _SPLAT_BLOCK if base.device.type == "cpu" else max(count, 1)
    real = values.real.dtype
    for start in range(0, count, block):
        rows = slice(start, start + block)
        (fz, fy, fx), b = frac[:, rows], min(block, count - start)
        wx = (1 - fx, fx)
        w = torch.empty((8, b), dtype=frac.dtype, device=frac.device)  # corner-major rows
        for c, (dz, dy) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            wzy = (fz if dz else 1 - fz) * (fy if dy else 1 - fy)
            torch.mul(wzy, wx[0], out=w[2 * c])
            torch.mul(wzy, wx[1], out=w[2 * c + 1])
        index = (offsets[:, None] + base[None, rows]).reshape(-1)
        data_flat.index_add_(0, index, (values[None, rows] * w.to(real)).reshape(-1))
        if weight_flat is not None:
            if point_weight is not None:
                w *= point_weight[None, rows]
            weight_flat.index_add_(0, index, w.reshape(-1).to(weight_flat.dtype))


def insert_values(
    data: torch.Tensor,
    values: torch.Tensor,
    rotations: torch.Tensor,
    *,
    size: int,
    pad: int,
    interpolation: str = "linear",
    weight: torch.Tensor | None = None,
    ctf_squared: torch.Tensor | None = None,
) -> None:
    """Add slice values (and optionally weights) into guarded tables, IN PLACE (low level).

    Parameters
    ----------
    data : Tensor, shape :func:`table_shape`, complex
        Table that receives the values (modified in place; callers own it).
    values : Tensor, shape (B, P), complex
        Values at the ``P`` frequencies of :func:`cryoglass.projection.slice_frequencies`.
    rotations : Tensor, shape (B, 3, 3)
        RELION matrices ``A``.
    size, pad : int
        Box ``N`` and padding factor.
    interpolation : {"linear", "nearest"}
    weight : Tensor, real, same shape as ``data``, optional
        Receives ``ctf_squared`` (or 1) times the same interpolation weights.
    ctf_squared : Tensor, shape (B, P), real, optional
        Per-value weights for ``weight`` (default 1).

    Notes
    -----
    The value at table point ``p`` (folded, sign ``s``) is added as ``w_c · v`` (``s = +1``) or
    ``w_c · conj(v)`` (``s = −1``) to each corner ``c`` with trilinear weight ``w_c``: the
    adjoint of the projector's ``T(p)`` / ``conj T(p)`` read.
    """
    k, _ = slice_frequencies(size, device=values.device, dtype=values.real.dtype)
    x, y, z, sign = _table_points(
        rotations.to(device=values.device, dtype=k.dtype), k, pad=pad, size=size
    )
    values = torch.complex(values.real, values.imag * sign).reshape(-1)  # conj where mirrored
    values = values.to(data.dtype)
    data_flat = data.view(-1)
    weight_flat = None if weight is None else weight.view(-1)
    point_weight = None if ctf_squared is None else ctf_squared.reshape(-1).to(k.dtype)
    if interpolation == "nearest":
        xi, yi, zi = (torch.round(c).long().reshape(-1) for c in (x, y, z))
        index = (zi * data.shape[1] + yi) * data.shape[2] + xi
        data_flat.index_add_(0, index, values)
        if weight_flat is not None:
            w = torch.ones_like(values.real) if point_weight is None else point_weight
            weight_flat.index_add_(0, index, w.to(weight_flat.dtype))
        return
    base, order, frac = _sorted_cells(x, y, z, tuple(data.shape))
    if order is not None:
        values = values.index_select(0, order)
        point_weight = None if point_weight is None else point_weight.index_select(0, order)
    _splat_linear(data_flat, weight_flat, base, frac, values, point_weight, tuple(data.shape))


def insert_slices(
    slices: torch.Tensor,
    rotations: torch.Tensor,
    *,
    pad: int = 2,
    interpolation: str = "linear",
) -> torch.Tensor:
    """Insert 2D central slices into a 3D half-transform: the adjoint of ``extract_slices``.

    Parameters
    ----------
    slices : Tensor, shape (B, N, N//2 + 1), complex
        Centred rfft layout (as :func:`cryoglass.projection.extract_slices` returns); entries
        outside ``k_x² + k_y² ≤ (N//2)²`` are ignored (the projector never writes them).
    rotations : Tensor, shape (B, 3, 3)
        RELION matrices ``A``.
    pad : int
        Padding factor of the 3D table.
    interpolation : {"linear", "nearest"}

    Returns
    -------
    Tensor, shape :func:`table_shape` ``(M + 3, M + 3, M//2 + 2)``, complex
        Guarded table (the layout of ``VolumeFourier.table``) with
        ``⟨extract_slices(V), s⟩ = ⟨V.table, insert_slices(s)⟩`` (real inner product) for every
        table whose guard entries are zero.

    Examples
    --------
    >>> s = torch.zeros(1, 8, 5, dtype=torch.complex128); s[0, 4, 0] = 1.0
    >>> t = insert_slices(s, torch.eye(3, dtype=torch.float64)[None], pad=2)
    >>> t.shape, float(t.real.sum())
    (torch.Size([19, 19, 10]), 1.0)
    """
    _check_interpolation(interpolation)
    _check_rotations(rotations)
    if not slices.is_complex() or slices.ndim != 3:
        raise ValueError(f"slices must be complex (B, N, N//2 + 1), got {tuple(slices.shape)}")
    n = slices.shape[-2]
    if slices.shape[-1] != n // 2 + 1 or slices.shape[0] != rotations.shape[0]:
        raise ValueError(
            f"slices {tuple(slices.shape)} do not match (B, N, N//2 + 1) with B = "
            f"{rotations.shape[0]} rotations"
        )
    _, flat_index = slice_frequencies(n, device=slices.device)
    values = slices.reshape(slices.shape[0], -1).index_select(1, flat_index)
    table = slices.new_zeros(table_shape(n, pad=pad))
    insert_values(table, values, rotations, size=n, pad=pad, interpolation=interpolation)
    return table


def _fft_order_index(k: torch.Tensor, size: int) -> torch.Tensor:
    """Flat positions of frequencies ``k`` (P, 2) in a plain-FFT-order rfft grid (N, N//2+1)."""
    return torch.remainder(k[:, 1].long(), size) * (size // 2 + 1) + k[:, 0].long()


def image_slice_values(
    images: torch.Tensor,
    *,
    shift_angstrom: torch.Tensor | None = None,
    pixel_size_angstrom: float = 1.0,
    ctf=None,
) -> torch.Tensor:
    """``CTF · e^{−2πi k·o} · F`` of images at the in-circle frequencies (re-centred, CTF-weighted).

    Parameters
    ----------
    images : Tensor, shape (B, N, N), real
        Particle images, origin at ``N//2``.
    shift_angstrom : Tensor, shape (B, 2), optional
        RELION origins ``(o_x, o_y)`` [Å]: ``image(r) = centred(r + o)``.
    pixel_size_angstrom : float
    ctf : CTFParams with batch shape (B,) or (), optional

    Returns
    -------
    Tensor, shape (B, P), complex
        At the ``P`` frequencies of :func:`cryoglass.projection.slice_frequencies`: the centred
        2D DFT of each image with its origin shift undone (phase ramp ``e^{−2πi k·o}``), times
        the CTF when given.  Inserted with weights ``CTF²`` this is RELION's back-projection.
    """
    n = images.shape[-1]
    real_dtype = images.dtype
    k, _ = slice_frequencies(n, device=images.device, dtype=real_dtype)
    spectrum = torch.fft.rfft2(images).reshape(images.shape[0], -1)
    values = spectrum.index_select(1, _fft_order_index(k, n))
    # the projector multiplies by exp(+2πi k·t/N), t = o/px − N//2 (origin shift and the move of
    # the origin from index 0 to N//2); undo it with the conjugate ramp, whose N//2 part is the
    # same for every image (one (P,) vector) and whose origin part is only needed with shifts
    centre_angle = (2 * torch.pi / n) * float(n // 2) * k.sum(dim=1)
    values = values * torch.polar(torch.ones_like(centre_angle), centre_angle)
    if shift_angstrom is not None:
        origin = shift_angstrom.to(images.device, real_dtype) / pixel_size_angstrom
        angle = (-2 * torch.pi / n) * (origin @ k.T)
        values = values * torch.polar(torch.ones_like(angle), angle)
    if ctf is not None:
        values = values * ctf_slice_values(
            ctf, size=n, pixel_size_angstrom=pixel_size_angstrom, like=images
        )
    return values


def ctf_slice_values(
    ctf, *, size: int, pixel_size_angstrom: float, like: torch.Tensor
) -> torch.Tensor:
    """The CTF at the in-circle frequencies of :func:`cryoglass.projection.slice_frequencies`.

    Parameters
    ----------
    ctf : CTFParams, batch shape (B,)
    size : int
        Image size ``N``.
    pixel_size_angstrom : float
    like : Tensor
        Device and real dtype of the result.

    Returns
    -------
    Tensor, shape (B, P), real
    """
    from cryoglass.ctf import ctf_2d

    _, flat_centred = slice_frequencies(size, device=like.device)
    values = ctf_2d(
        ctf,
        image_size=size,
        pixel_size_angstrom=pixel_size_angstrom,
        device=like.device,
        dtype=like.dtype,
    )
    return values.reshape(-1, size * (size // 2 + 1)).index_select(1, flat_centred)


def _rfft_multiplicity(size: int, *, device, dtype) -> torch.Tensor:
    """``c_k`` for rfft columns ``k = 0 .. size//2``: 1 for DC (and Nyquist if even), else 2."""
    c = torch.full((size // 2 + 1,), 2.0, device=device, dtype=dtype)
    c[0] = 1.0
    if size % 2 == 0:
        c[-1] = 1.0
    return c


def spectrum_adjoint(
    table: torch.Tensor,
    *,
    size: int,
    pad: int = 2,
    interpolation: str = "linear",
    gridding: bool = True,
) -> torch.Tensor:
    """Adjoint of :func:`cryoglass.projection.prepare_volume_fourier`: guarded table → map.

    Parameters
    ----------
    table : Tensor, shape :func:`table_shape`, complex
    size, pad : int
        Box ``N`` of the map and padding factor.
    interpolation : {"linear", "nearest"}
        Selects the gridding kernel (as the projector).
    gridding : bool
        Apply the gridding division (the projector's pre-correction is self-adjoint).

    Returns
    -------
    Tensor, shape (N, N, N), real

    Notes
    -----
    Steps (adjoints of the projector's, in reverse): crop the guards, zero ``|k| > pad·(N//2)``,
    un-centre the ``k_z``/``k_y`` axes, ``M³ · irfftn(· / c_{k_x})``, crop the padded box around
    the origin, divide by the gridding kernel.
    """
    m = pad * size
    real_dtype = table.real.dtype
    device = table.device
    spectrum = table[_GUARD : _GUARD + m, _GUARD : _GUARD + m, : m // 2 + 1]
    spectrum = spectrum * _outside_mask(size, pad, device=device, dtype=real_dtype).logical_not()
    uncentre = torch.remainder(torch.arange(m, device=device) + m // 2, m)
    spectrum = spectrum.index_select(0, uncentre).index_select(1, uncentre)
    spectrum = spectrum / _rfft_multiplicity(m, device=device, dtype=real_dtype)
    padded = torch.fft.irfftn(spectrum, s=(m, m, m)) * float(m) ** 3
    wrapped = torch.remainder(torch.arange(size, device=device) - size // 2, m)
    volume = padded[wrapped[:, None, None], wrapped[None, :, None], wrapped[None, None, :]]
    if gridding:
        volume = gridding_correction(volume, padded_size=m, interpolation=interpolation)
    return volume


def _outside_mask(size: int, pad: int, *, device, dtype) -> torch.Tensor:
    """True where the centred padded half-grid frequency has ``|k| > pad·(N//2)``."""
    m = pad * size
    kc = torch.arange(m, device=device, dtype=dtype) - m // 2
    kx = torch.arange(m // 2 + 1, device=device, dtype=dtype)
    r_max = pad * (size // 2)
    return kc[:, None, None] ** 2 + kc[None, :, None] ** 2 + kx[None, None, :] ** 2 > r_max**2


def backproject(
    images: torch.Tensor,
    rotations: torch.Tensor | None = None,
    *,
    euler_deg: torch.Tensor | None = None,
    shift_angstrom: torch.Tensor | None = None,
    pixel_size_angstrom: float = 1.0,
    ctf=None,
    pad: int = 2,
    interpolation: str = "linear",
    gridding: bool = True,
    symmetry: str = "C1",
    device: torch.device | str | None = None,
    batch_size: int = 128,
) -> torch.Tensor:
    """Back-project images into a map: the exact adjoint of :func:`cryoglass.projection.project`.

    Parameters
    ----------
    images : Tensor, shape (B, N, N), real
        Images (origin at ``N//2``).
    rotations : Tensor, shape (B, 3, 3), optional
        RELION matrices ``A``; give this or ``euler_deg``.
    euler_deg : Tensor, shape (B, 3), optional
        RELION (rot, tilt, psi) [degrees].
    shift_angstrom : Tensor, shape (B, 2), optional
        RELION origins [Å] (as for ``project``).
    pixel_size_angstrom : float
        Pixel size [Å].
    ctf : CTFParams with batch shape (B,) or (), optional
        The CTF the projector multiplied by (the adjoint multiplies by it again).
    pad, interpolation, gridding
        As for ``project``.
    symmetry : str
        Point group (``C1`` = none): the adjoint of projecting the map at every ``A·L``.
    device : optional
        Where to compute (default: the images' device).
    batch_size : int
        Images per chunk (speed/memory knob only).

    Returns
    -------
    Tensor, shape (N, N, N), real
        ``Pᵀ w`` with ``⟨P v, w⟩ = ⟨v, Pᵀ w⟩`` for all maps ``v`` and image stacks ``w``.

    Notes
    -----
    This is *not* a reconstruction (no division by the sampling weights); see
    :func:`cryoglass.reconstruct.reconstruct` for that.

    Examples
    --------
    >>> images = torch.zeros(2, 16, 16, dtype=torch.float64)
    >>> backproject(images, euler_deg=torch.zeros(2, 3, dtype=torch.float64)).shape
    torch.Size([16, 16, 16])
    """
    rotations = _as_rotations(rotations, euler_deg, images.dtype)
    _check_interpolation(interpolation)
    if images.ndim != 3 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must have shape (B, N, N), got {tuple(images.shape)}")
    if rotations.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {rotations.shape[0]} rotations")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else images.device
    n, count = images.shape[-1], images.shape[0]
    real_dtype = images.dtype
    complex_dtype = torch.complex128 if real_dtype == torch.float64 else torch.complex64
    table = torch.zeros(table_shape(n, pad=pad), device=device, dtype=complex_dtype)
    k, _ = slice_frequencies(n, device=device, dtype=real_dtype)
    scale = _rfft_multiplicity(n, device=device, dtype=real_dtype)[k[:, 0].long()] / n**2
    ctf_flat = _broadcast_ctf(ctf, count, device, real_dtype)
    for start in range(0, count, batch_size):
        part = slice(start, start + batch_size)
        values = image_slice_values(
            images[part].to(device),
            shift_angstrom=None if shift_angstrom is None else shift_angstrom[part],
            pixel_size_angstrom=pixel_size_angstrom,
            ctf=None if ctf_flat is None else ctf_flat[part],
        )
        rot = rotations[part].to(device=device, dtype=real_dtype)
        values, rot = _expand(values * scale, rot, symmetry)
        insert_values(table, values, rot, size=n, pad=pad, interpolation=interpolation)
    return spectrum_adjoint(table, size=n, pad=pad, interpolation=interpolation, gridding=gridding)


def _expand(values: torch.Tensor, rotations: torch.Tensor, symmetry: str):
    """Repeat each value row for every symmetry-equivalent pose ``A·L``."""
    if symmetry.upper() == "C1":
        return values, rotations
    expanded = expand_rotations(rotations, symmetry)  # (B, G, 3, 3)
    g = expanded.shape[1]
    return values.repeat_interleave(g, dim=0), expanded.reshape(-1, 3, 3)


def _as_rotations(rotations, euler_deg, dtype) -> torch.Tensor:
    """Exactly one of rotations (B, 3, 3) / euler_deg (B, 3) → rotations."""
    if (rotations is None) == (euler_deg is None):
        raise ValueError("give exactly one of rotations (B, 3, 3) or euler_deg (B, 3)")
    if euler_deg is not None:
        euler_deg = torch.as_tensor(euler_deg)
        if euler_deg.ndim != 2 or euler_deg.shape[-1] != 3:
            raise ValueError(f"euler_deg must have shape (B, 3), got {tuple(euler_deg.shape)}")
        rotations = euler_to_matrix(euler_deg.to(dtype=dtype))
    _check_rotations(rotations)
    return rotations


def _broadcast_ctf(ctf, count: int, device, dtype):
    """CTFParams with every field a (count,) tensor, or None."""
    if ctf is None:
        return None
    return ctf.expand(count, dtype=dtype, device=device)
