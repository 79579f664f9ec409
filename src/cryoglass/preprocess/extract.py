r"""Particle extraction as ``relion_preprocess --extract``: windows, binning, normalisation.

For a particle at ``(x, y)`` [pixels of the micrograph, 0-based] RELION takes the integer
position ``(⌊x⌋, ⌊y⌋)`` (C++'s truncation, for the non-negative coordinates allowed) and the
``N × N`` window whose pixel ``N//2`` (the box origin, ``docs/conventions.md``) lies there;
pixels outside the micrograph take the value of the nearest pixel inside (RELION fills the
window with the mean, then overwrites the outside columns and rows with the nearest inside
ones).  Optionally the window is Fourier-cropped to ``N / bin`` pixels (``--scale``,
:func:`bin_windows`), then

1. **background ramp** (``relion_preprocess``'s default; ``--no_ramp`` skips it): the
   least-squares plane ``a·j + b·i + c`` through the background pixels — those farther than
   ``r`` from the centre, ``i² + j² > r²`` with ``(i, j)`` the offsets from pixel ``N//2`` —
   is subtracted from every pixel;
2. **normalisation** (``--norm``): ``(v − μ) / σ`` with ``μ, σ`` the mean and population
   standard deviation of the background pixels, so the background has mean 0 and std 1;
3. **contrast inversion** (``--invert_contrast``): ``v → −v``, protein white.

References
----------
Scheres, S. H. W. (2012). RELION. J. Struct. Biol. 180, 519-530.
https://doi.org/10.1016/j.jsb.2012.09.006
"""

from __future__ import annotations

import torch

__all__ = [
    "background_mask",
    "bin_windows",
    "extract_windows",
    "normalise_background",
    "preprocess_particles",
]


def extract_windows(
    micrograph: torch.Tensor, coordinates_px: torch.Tensor, *, box: int
) -> torch.Tensor:
    """RELION's ``box × box`` windows around particle coordinates (edges: nearest pixel).

    Parameters
    ----------
    micrograph : Tensor, shape (h, w)
    coordinates_px : Tensor, shape (n, 2)
        ``(x, y)`` [pixels, 0-based]; truncated to integers as RELION does.
    box : int
        Window size [pixels].

    Returns
    -------
    Tensor, shape (n, box, box)
        Window ``k`` has pixel ``(box//2, box//2)`` at ``(⌊y_k⌋, ⌊x_k⌋)``.

    Examples
    --------
    >>> mic = torch.arange(36.0).reshape(6, 6)
    >>> extract_windows(mic, torch.tensor([[0.7, 3.2]]), box=4)[0]  # centre (x 0, y 3)
    tensor([[ 6.,  6.,  6.,  7.],
            [12., 12., 12., 13.],
            [18., 18., 18., 19.],
            [24., 24., 24., 25.]])
    """
    h, w = micrograph.shape
    xy = torch.as_tensor(coordinates_px, dtype=torch.float64).reshape(-1, 2).trunc().long()
    offsets = torch.arange(box) - box // 2
    rows = (xy[:, 1, None] + offsets[None]).clamp(0, h - 1)  # (n, box)
    cols = (xy[:, 0, None] + offsets[None]).clamp(0, w - 1)
    return micrograph[rows[:, :, None], cols[:, None, :]]


def bin_windows(windows: torch.Tensor, size: int) -> torch.Tensor:
    """Fourier-crop square images to ``size`` as RELION's ``resizeMap`` (``--scale``).

    RELION's ``windowFourierTransform`` keeps the frequencies ``−M/2 + 1 … M/2`` of the
    input (``M = size``), the new Nyquist row and column being the input's ``+M/2``
    frequency; :func:`cryoglass.fourier.rescale.fourier_crop` instead folds ``±M/2`` onto it
    (cryoglass's convention, so that crop∘pad is the identity).  The two differ only in that
    row and column; extraction follows RELION, so that its images agree with
    ``relion_preprocess --scale``.  Values are scaled by ``M² / N²`` (the mean is kept).

    Parameters
    ----------
    windows : Tensor, shape (n, N, N), N even
    size : int
        ``M``, even, ``≤ N``.

    Returns
    -------
    Tensor, shape (n, M, M)
    """
    n = windows.shape[-1]
    if size == n:
        return windows
    spectrum = torch.fft.rfft2(windows)
    rows = torch.cat([torch.arange(0, size // 2 + 1), torch.arange(n - size // 2 + 1, n)])
    cropped = spectrum[..., rows, : size // 2 + 1]
    return torch.fft.irfft2(cropped, s=(size, size)) * (size * size) / (n * n)


def background_mask(box: int, *, radius_px: float, device=None) -> torch.Tensor:
    """RELION's background: pixels with ``i² + j² > r²`` (offsets from pixel ``box//2``).

    Raises
    ------
    ValueError
        ``2 r > box`` (RELION's error) or no background pixel left.
    """
    if 2 * radius_px > box:
        raise ValueError(f"background radius {radius_px} px: 2 × radius exceeds the box {box} px")
    offsets = torch.arange(box, device=device, dtype=torch.float64) - box // 2
    mask = offsets[:, None] ** 2 + offsets[None, :] ** 2 > radius_px**2
    if not bool(mask.any()):
        raise ValueError(f"background radius {radius_px} px leaves no background in {box} px")
    return mask


def normalise_background(
    images: torch.Tensor, *, radius_px: float, ramp: bool = True
) -> torch.Tensor:
    r"""Subtract the background plane (optional) and scale the background to mean 0, std 1.

    Parameters
    ----------
    images : Tensor, shape (n, N, N)
    radius_px : float
        Background: farther than this from the centre [pixels] (RELION's ``--bg_radius``).
    ramp : bool
        Fit and subtract the least-squares plane through the background first.

    Returns
    -------
    Tensor, float64, shape (n, N, N)

    Notes
    -----
    The plane ``p(i, j) = a j + b i + c`` minimises ``Σ_bg (v − p)²`` (the normal equations
    are solved for all images at once); ``σ² = mean_bg(v²) − mean_bg(v)²``.  An image with a
    flat background (``σ < 10⁻¹⁰``) is left unscaled, as RELION.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> img = 3 + 0.5 * torch.randn(1, 32, 32, generator=g, dtype=torch.float64)
    >>> out = normalise_background(img, radius_px=12)
    >>> bg = background_mask(32, radius_px=12)
    >>> round(float(out[0][bg].mean()), 6), round(float(out[0][bg].std(unbiased=False)), 6)
    (0.0, 1.0)
    """
    x = images.to(torch.float64)
    box = x.shape[-1]
    mask = background_mask(box, radius_px=radius_px, device=x.device)
    if ramp:
        offsets = torch.arange(box, dtype=torch.float64, device=x.device) - box // 2
        jj, ii = torch.meshgrid(offsets, offsets, indexing="xy")
        design = torch.stack([jj[mask], ii[mask], torch.ones_like(jj[mask])], dim=1)  # (m, 3)
        values = x[:, mask]  # (n, m)
        coeffs = torch.linalg.solve(design.T @ design, design.T @ values.T)  # (3, n)
        plane = coeffs[0, :, None, None] * jj + coeffs[1, :, None, None] * ii
        x = x - (plane + coeffs[2, :, None, None])
    background = x[:, mask]
    mean = background.mean(dim=1)
    std = (background.pow(2).mean(dim=1) - mean.pow(2)).clamp_min(0).sqrt()
    flat = std < 1e-10
    std = torch.where(flat, torch.ones_like(std), std)
    mean = torch.where(flat, torch.zeros_like(mean), mean)
    return (x - mean[:, None, None]) / std[:, None, None]


def preprocess_particles(
    micrograph: torch.Tensor,
    coordinates_px: torch.Tensor,
    *,
    box: int,
    bin_factor: int = 1,
    radius_px: float | None = None,
    normalise: bool = True,
    ramp: bool = True,
    invert_contrast: bool = False,
) -> torch.Tensor:
    """Extract, bin, normalise and invert particles as ``relion_preprocess --extract``.

    Parameters
    ----------
    micrograph : Tensor, shape (h, w)
    coordinates_px : Tensor, shape (n, 2)
    box : int
        Extraction box [micrograph pixels], even.
    bin_factor : int
        Fourier-crop the windows to ``box / bin_factor`` (RELION's ``--scale``), even.
    radius_px : float, optional
        Background radius in output pixels (default ``round(0.375 · output box)``: 75 % of the
        half box, RELION's GUI default).
    normalise, ramp, invert_contrast : bool
        As module docstring (RELION: ``--norm``, not ``--no_ramp``, ``--invert_contrast``).

    Returns
    -------
    Tensor, float32, shape (n, box / bin, box / bin)

    Examples
    --------
    >>> mic = torch.randn(100, 120, generator=torch.Generator().manual_seed(1))
    >>> preprocess_particles(mic, torch.tensor([[60.0, 50.0]]), box=32, bin_factor=2).shape
    torch.Size([1, 16, 16])
    """
    if box % 2 or box < 4:
        raise ValueError(f"box must be even and ≥ 4, got {box}")
    out = box // bin_factor
    if bin_factor < 1 or out * bin_factor != box or out % 2:
        raise ValueError(f"box {box} / bin {bin_factor} must give an even whole number")
    windows = extract_windows(micrograph.to(torch.float64), coordinates_px, box=box)
    if bin_factor > 1:
        windows = bin_windows(windows, out)
    if normalise:
        radius = round(0.375 * out) if radius_px is None else radius_px
        windows = normalise_background(windows, radius_px=radius, ramp=ramp)
    if invert_contrast:
        windows = -windows
    return windows.to(torch.float32)
