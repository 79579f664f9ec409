"""Soft masks: spheres, and threshold + dilate + raised-cosine edge (RELION's mask recipe).

All masks are real arrays in [0, 1] on the real-space grid with the origin at index ``N//2``.
Distances are in pixels.  The raised-cosine edge of width ``W`` at distance ``s`` outside the
hard region is

.. math:: m(s) = \\tfrac12\\big(1 + \\cos(\\pi s / W)\\big), \\qquad 0 \\le s < W,

(1 at the hard edge, 0 at ``s = W``): a mask without sharp steps, whose Fourier transform
decays fast, so multiplying a map by it correlates only nearby Fourier components.
"""

from __future__ import annotations

import math

import torch

from cryoglass.fourier.filters import lowpass
from cryoglass.fourier.grids import centered_indices

__all__ = [
    "soft_sphere_mask",
    "relion_reconstruct_sphere_mask",
    "soft_mask_outside_sphere",
    "squared_distance_to_mask",
    "threshold_mask",
    "otsu_threshold",
    "auto_mask",
    "relion_lowpass_resolution",
    "mask_from_map",
]


def _radius_px(shape, *, device, dtype) -> torch.Tensor:
    r2 = torch.zeros((), device=device, dtype=dtype)
    for a, n in enumerate(shape):
        view = [1] * len(shape)
        view[a] = -1
        r2 = r2 + centered_indices(n, device=device, dtype=dtype).reshape(view).square()
    return r2.sqrt()


def _cosine_edge(distance: torch.Tensor, width: float) -> torch.Tensor:
    """1 for distance <= 0, raised cosine to 0 at ``width``, 0 beyond (hard step if width 0)."""
    if width <= 0:
        return (distance <= 0).to(distance.dtype)
    t = (distance / width).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * t))


def soft_sphere_mask(
    shape: tuple[int, ...],
    *,
    radius_px: float,
    edge_width_px: float = 3.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Sphere (circle in 2D) of radius ``radius_px`` around voxel ``N//2`` with a cosine edge.

    Parameters
    ----------
    shape : (h, w) or (d, h, w)
    radius_px : float
        Radius of the region where the mask is 1 [pixels].
    edge_width_px : float
        Width of the raised-cosine fall-off outside it [pixels] (0: hard sphere).

    Returns
    -------
    Tensor, shape, values in [0, 1]
        :math:`m(r) = 1` for :math:`r \\le R`, :math:`\\tfrac12(1 + \\cos(\\pi (r-R)/W))` for
        :math:`R < r < R + W`, 0 beyond.
    """
    if radius_px < 0 or edge_width_px < 0:
        raise ValueError(
            f"soft_sphere_mask: radius_px ({radius_px}) and edge_width_px ({edge_width_px}) "
            "must be >= 0"
        )
    dtype = dtype or torch.get_default_dtype()
    r = _radius_px(tuple(shape), device=device, dtype=dtype)
    return _cosine_edge(r - radius_px, edge_width_px)


def relion_reconstruct_sphere_mask(
    shape: tuple[int, ...],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The soft sphere ``relion_reconstruct`` puts on its output: radius ``w/2``, 3-pixel edge.

    RELION's reconstruction ends with ``softMaskOutsideMap(vol)`` (default radius half the box,
    cosine width 3 pixels), which blends the map towards its mean background value outside the
    sphere; :func:`soft_mask_outside_sphere` applies it that way.  Use both for like-for-like
    comparisons with ``relion_reconstruct`` maps.

    Returns
    -------
    Tensor, shape: ``soft_sphere_mask(shape, radius_px=w/2, edge_width_px=3)``.
    """
    return soft_sphere_mask(
        shape, radius_px=shape[-1] / 2.0, edge_width_px=3.0, device=device, dtype=dtype
    )


def soft_mask_outside_sphere(
    volume: torch.Tensor,
    *,
    radius_px: float | None = None,
    edge_width_px: float = 3.0,
    ndim: int = 3,
) -> torch.Tensor:
    """Blend a map to its mean background value outside a soft sphere (as relion_reconstruct).

    Parameters
    ----------
    volume : Tensor, real, (..., d, h, w) (or (..., h, w) with ``ndim=2``)
    radius_px : float, optional
        Default ``w/2`` (RELION's default).
    edge_width_px : float
        Cosine edge width [pixels], RELION's default 3.
    ndim : {2, 3}

    Returns
    -------
    Tensor, same shape
        :math:`v' = m\\,v + (1 - m)\\,b` with ``m`` the :func:`soft_sphere_mask` and
        :math:`b = \\sum (1-m) v / \\sum (1-m)` the weighted mean outside the sphere.
    """
    shape = tuple(volume.shape[-ndim:])
    radius = shape[-1] / 2.0 if radius_px is None else radius_px
    m = soft_sphere_mask(
        shape,
        radius_px=radius,
        edge_width_px=edge_width_px,
        device=volume.device,
        dtype=volume.dtype,
    )
    outside = 1.0 - m
    dims = tuple(range(-ndim, 0))
    total = outside.sum()
    if total <= 0:
        return volume.clone()
    background = (volume * outside).sum(dim=dims, keepdim=True) / total
    return m * volume + outside * background


def squared_distance_to_mask(
    binary: torch.Tensor, *, max_distance_px: float, ndim: int = 3
) -> torch.Tensor:
    """Squared Euclidean distance [px²] of every voxel to the nearest True voxel.

    Parameters
    ----------
    binary : BoolTensor, (..., d, h, w)
    max_distance_px : float
        Search radius: only voxels within ``R = ceil(max_distance_px)`` along every axis (a
        cube of side ``2R + 1``, as RELION's ``autoMask``) are looked at; farther voxels get
        ``inf``.
    ndim : {2, 3}

    Returns
    -------
    Tensor, float32, same shape
        0 on True voxels.

    Notes
    -----
    :math:`D(x) = \\min_{o \\in [-R,R]^n,\\ b(x+o)} |o|^2` separates into one 1D
    min-plus pass per axis, :math:`g(x) \\leftarrow \\min_{|o|\\le R} g(x + o\\,e_a) + o^2`,
    so the cost is ``n (2R+1)`` array operations instead of ``(2R+1)^n``.  The box is not
    periodic (outside voxels are never True).
    """
    reach = int(math.ceil(max_distance_px))
    d2 = torch.where(binary, 0.0, math.inf).to(torch.float32)
    for axis in range(-ndim, 0):
        if reach == 0:
            break
        n = d2.shape[axis]
        pad = [0, 0] * (-axis - 1) + [reach, reach]
        padded = torch.nn.functional.pad(d2, pad, value=math.inf)
        best = d2.clone()
        for o in range(-reach, reach + 1):
            if o == 0:
                continue
            best = torch.minimum(best, padded.narrow(axis, reach + o, n) + float(o * o))
        d2 = best
    return d2


def threshold_mask(
    volume: torch.Tensor,
    *,
    threshold: float | torch.Tensor,
    extend_px: float = 3.0,
    soft_edge_px: float = 6.0,
    ndim: int = 3,
) -> torch.Tensor:
    """Binarise at a density threshold, grow by ``extend_px``, add a raised-cosine edge.

    Parameters
    ----------
    volume : Tensor, real, (..., d, h, w)
    threshold : float or Tensor (...)
        Voxels ``>= threshold`` seed the mask (RELION's ``--ini_threshold``).
    extend_px : float
        Grow the seed by this many pixels: every voxel closer than ``extend_px`` to a seed voxel
        joins (``--extend_inimask``, RELION's ``r² < extend²``).  Negative values shrink it:
        every seed voxel closer than ``|extend_px|`` to a voxel outside the seed leaves (RELION's
        meaning of a negative ``--extend_inimask``).
    soft_edge_px : float
        Raised-cosine edge width outside the grown mask (``--width_soft_edge``).
    ndim : {2, 3}

    Returns
    -------
    Tensor, same shape and dtype, values in [0, 1]

    Notes
    -----
    With ``s`` the Euclidean distance to the grown binary mask,
    :math:`m = 1` inside, :math:`\\tfrac12(1 + \\cos(\\pi s/W))` for :math:`0 < s < W`, 0 beyond
    (the recipe of ``relion_mask_create``; distances are searched in a cube of half-width
    ``ceil(W)``).
    """
    if soft_edge_px < 0:
        raise ValueError(f"threshold_mask: soft_edge_px ({soft_edge_px}) must be >= 0")
    t = torch.as_tensor(threshold, device=volume.device, dtype=volume.dtype)
    t = t.reshape(*t.shape, *([1] * ndim))
    binary = volume >= t
    if extend_px > 0:
        d2 = squared_distance_to_mask(binary, max_distance_px=extend_px, ndim=ndim)
        binary = d2 < extend_px**2
    elif extend_px < 0:  # shrink: leave where a voxel outside lies closer than |extend_px|
        d2 = squared_distance_to_mask(~binary, max_distance_px=-extend_px, ndim=ndim)
        binary = ~(d2 < extend_px**2)
    if soft_edge_px <= 0:
        return binary.to(volume.dtype)
    d2 = squared_distance_to_mask(binary, max_distance_px=soft_edge_px, ndim=ndim)
    soft = torch.where(
        d2 < soft_edge_px**2,
        0.5 + 0.5 * torch.cos(math.pi * d2.clamp_max(soft_edge_px**2).sqrt() / soft_edge_px),
        torch.zeros_like(d2),
    )
    return torch.where(binary, torch.ones_like(soft), soft).to(volume.dtype)


def otsu_threshold(volume: torch.Tensor, *, ndim: int = 3, bins: int = 256) -> torch.Tensor:
    """Otsu's threshold: the value that best splits the voxel histogram into two classes.

    Parameters
    ----------
    volume : Tensor, real, (..., d, h, w)
    ndim : {2, 3}
    bins : int
        Histogram bins between the minimum and maximum of each map.

    Returns
    -------
    Tensor, (...), dtype of ``volume``

    Notes
    -----
    Chooses the bin edge ``t`` maximising the between-class variance
    :math:`\\omega_0(t)\\,\\omega_1(t)\\,(\\mu_0(t) - \\mu_1(t))^2` (class weights and means
    below/above ``t``).  Otsu (1979) IEEE Trans. SMC 9, 62–66, doi:10.1109/TSMC.1979.4310076.
    """
    flat = volume.reshape(*volume.shape[: volume.ndim - ndim], -1).to(torch.float64)
    lo = flat.amin(dim=-1, keepdim=True)
    hi = flat.amax(dim=-1, keepdim=True)
    span = (hi - lo).clamp_min(1e-30)
    index = ((flat - lo) / span * bins).long().clamp(0, bins - 1)
    hist = flat.new_zeros(*flat.shape[:-1], bins).scatter_add_(-1, index, torch.ones_like(flat))
    centers = lo + (torch.arange(bins, device=flat.device, dtype=flat.dtype) + 0.5) * span / bins
    w0 = hist.cumsum(-1)
    m0 = (hist * centers).cumsum(-1)
    total, mean_total = w0[..., -1:], m0[..., -1:]
    w1 = total - w0
    mu0 = m0 / w0.clamp_min(1e-30)
    mu1 = (mean_total - m0) / w1.clamp_min(1e-30)
    between = w0 * w1 * (mu0 - mu1).square()
    best = torch.argmax(between[..., :-1], dim=-1, keepdim=True)
    threshold = lo + (best + 1).to(flat.dtype) * span / bins
    return threshold.squeeze(-1).to(volume.dtype)


def auto_mask(
    volume: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    lowpass_angstrom: float = 15.0,
    threshold: float | None = None,
    extend_px: float = 3.0,
    soft_edge_px: float = 6.0,
) -> torch.Tensor:
    """Solvent mask made from the map itself (low-pass, threshold, grow, soft edge).

    Parameters
    ----------
    volume : Tensor, real, (..., d, h, w)
        Usually the average of the two half maps.
    pixel_size_angstrom : float
    lowpass_angstrom : float
        The map is low-pass filtered to this resolution first, so that noise and
        high-resolution detail do not fragment the mask (RELION's tutorial uses 15 Å).
    threshold : float, optional
        Density threshold on the filtered map; default :func:`otsu_threshold` of it.
    extend_px, soft_edge_px : float
        RELION's defaults 3 and 6 pixels (see :func:`threshold_mask`).

    Returns
    -------
    Tensor, same shape, values in [0, 1]

    Notes
    -----
    Otsu's threshold separates the "solvent" and "molecule" voxel populations without a
    tunable level; it suits maps whose molecule fills a few to ~50 % of the box.  For maps
    with a flexible or weak part, pick a threshold by eye and pass it.
    """
    smooth = lowpass(
        volume,
        ndim=3,
        resolution_angstrom=lowpass_angstrom,
        pixel_size_angstrom=pixel_size_angstrom,
    )
    t = otsu_threshold(smooth) if threshold is None else threshold
    return threshold_mask(smooth, threshold=t, extend_px=extend_px, soft_edge_px=soft_edge_px)


def relion_lowpass_resolution(
    resolution_angstrom: float, *, box: int, pixel_size_angstrom: float
) -> float:
    """The cut-off [Å] RELION's ``lowPassFilterMap`` really uses: rounded to a whole shell.

    Parameters
    ----------
    resolution_angstrom : float
        Requested low-pass resolution [Å] (``relion_mask_create --lowpass``).
    box : int
        Edge of the cubic box [pixels].
    pixel_size_angstrom : float

    Returns
    -------
    float
        ``box · pixel / i`` with ``i = ROUND(box · pixel / resolution)`` (RELION rounds halves
        away from zero); pass it to :func:`cryoglass.fourier.lowpass`, whose default cosine edge
        of two Fourier pixels is RELION's ``filter_edge_width = 2``.

    Examples
    --------
    >>> round(relion_lowpass_resolution(15.0, box=64, pixel_size_angstrom=1.5), 4)
    16.0
    """
    if not resolution_angstrom > 0 or not pixel_size_angstrom > 0 or box < 1:
        raise ValueError(
            f"relion_lowpass_resolution: need positive resolution, pixel size and box, got "
            f"{resolution_angstrom}, {pixel_size_angstrom}, {box}"
        )
    shell = max(1, math.floor(box * pixel_size_angstrom / resolution_angstrom + 0.5))
    return box * pixel_size_angstrom / shell


def mask_from_map(
    volume: torch.Tensor,
    *,
    threshold: float | None,
    extend_px: float = 3.0,
    soft_edge_px: float = 6.0,
    lowpass_angstrom: float | None = None,
    pixel_size_angstrom: float | None = None,
) -> tuple[torch.Tensor, float]:
    """``relion_mask_create``: low-pass, threshold, grow (or shrink), raised-cosine soft edge.

    Parameters
    ----------
    volume : Tensor, real, (d, h, w)
        The map (cubic when ``lowpass_angstrom`` is given, as RELION requires).
    threshold : float or None
        Density threshold on the (filtered) map, ``--ini_threshold``; None: Otsu's threshold
        of the (filtered) map (:func:`otsu_threshold`).
    extend_px : float
        ``--extend_inimask`` [pixels]; negative shrinks (:func:`threshold_mask`).
    soft_edge_px : float
        ``--width_soft_edge`` [pixels].
    lowpass_angstrom : float, optional
        ``--lowpass`` [Å]: raised-cosine low-pass before thresholding, its cut-off rounded to a
        whole Fourier shell as RELION does (:func:`relion_lowpass_resolution`).
    pixel_size_angstrom : float, optional
        Needed with ``lowpass_angstrom`` (``--angpix``).

    Returns
    -------
    mask : Tensor, same shape and dtype, values in [0, 1]
    threshold : float
        The threshold used (the given one, or Otsu's).

    Notes
    -----
    With ``s`` the Euclidean distance [px] of a voxel to the grown binary mask ``B`` and ``W``
    the soft-edge width, :math:`m = 1` on ``B``, :math:`\\tfrac12(1 + \\cos(\\pi s / W))` for
    :math:`0 < s < W` and 0 beyond: RELION's ``autoMask`` (src/mask.cpp), to float precision.
    Otsu (1979), doi:10.1109/TSMC.1979.4310076, for the automatic threshold.

    Examples
    --------
    >>> v = torch.zeros(16, 16, 16); v[8, 8, 8] = 1.0
    >>> m, t = mask_from_map(v, threshold=0.5, extend_px=2.0, soft_edge_px=3.0)
    >>> float(m[8, 8, 8]), float(m[8, 8, 9]), float(m[8, 8, 15]), t
    (1.0, 1.0, 0.0, 0.5)
    """
    if volume.ndim != 3:
        raise ValueError(f"mask_from_map: expected a 3D map, got shape {tuple(volume.shape)}")
    filtered = volume
    if lowpass_angstrom is not None:
        if pixel_size_angstrom is None:
            raise ValueError("mask_from_map: lowpass_angstrom needs pixel_size_angstrom")
        if len(set(volume.shape)) != 1:
            raise ValueError(
                f"mask_from_map: the low-pass needs a cubic map, got {tuple(volume.shape)}"
            )
        cutoff = relion_lowpass_resolution(
            lowpass_angstrom, box=volume.shape[-1], pixel_size_angstrom=pixel_size_angstrom
        )
        filtered = lowpass(
            volume, ndim=3, resolution_angstrom=cutoff, pixel_size_angstrom=pixel_size_angstrom
        )
    t = float(otsu_threshold(filtered)) if threshold is None else float(threshold)
    mask = threshold_mask(filtered, threshold=t, extend_px=extend_px, soft_edge_px=soft_edge_px)
    return mask, t
