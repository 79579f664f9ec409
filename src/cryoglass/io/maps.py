"""Reading maps the way the analysis commands need them: a pair of half maps, a soft mask.

Each reader checks what can be checked from the files before any computation (existence,
3D shape, equal boxes and pixel sizes, mask values in [0, 1]) and raises one exception whose
message names the file and the problem, for the command to print as one line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from cryoglass.io.mrc import read_mrc

__all__ = ["read_map", "read_map_pair", "read_mask"]


def read_map(path: str | os.PathLike) -> tuple[torch.Tensor, float | None]:
    """A 3D map and its header pixel size [Å] (None when the header has none).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable MRC file, or not a 3D map (an image or a stack).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data, info = read_mrc(path)
    except OSError as error:
        raise ValueError(str(error)) from None
    if data.ndim != 3 or info.is_stack:
        raise ValueError(
            f"{path}: expected a 3D map, got shape {tuple(data.shape)} (an image or stack?)"
        )
    finite = torch.isfinite(data)
    if not bool(finite.all()):
        raise ValueError(f"{path}: {int((~finite).sum())} voxels are NaN or infinite")
    return data, info.pixel_size_angstrom


def read_map_pair(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    *,
    pixel_size_angstrom: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Two maps of one box and pixel size (half maps, or a map and a reference).

    Parameters
    ----------
    path_a, path_b : path-like
        MRC maps.
    pixel_size_angstrom : float, optional
        Overrides the headers' pixel size [Å].

    Returns
    -------
    a, b : Tensor, float32, (d, h, w)
    pixel_size_angstrom : float

    Raises
    ------
    FileNotFoundError, ValueError
        A missing or unreadable file, NaN/Inf voxels, different boxes or pixel sizes, no
        pixel size at all, a non-positive or infinite ``pixel_size_angstrom``, or a constant
        (e.g. all-zero) map; the message names the files.
    """
    (a, size_a), (b, size_b) = read_map(path_a), read_map(path_b)
    if pixel_size_angstrom is None:
        for path, size in ((path_a, size_a), (path_b, size_b)):
            if size is not None and not (math.isfinite(size) and size > 0):
                raise ValueError(
                    f"{path}: the header's pixel size {size:g} Å is not positive; pass --apix"
                )
    if a.shape != b.shape:
        raise ValueError(
            f"{path_a} and {path_b} have different boxes: {tuple(a.shape)} vs {tuple(b.shape)}"
        )
    if size_a is not None and size_b is not None and abs(size_a - size_b) > 1e-3 * size_a:
        raise ValueError(
            f"{path_a} and {path_b} have different pixel sizes: {size_a:g} Å vs {size_b:g} Å"
        )
    pixel = pixel_size_angstrom if pixel_size_angstrom is not None else (size_a or size_b)
    if pixel is None:
        raise ValueError(f"{path_a}: the header has no pixel size; pass --apix")
    if not (math.isfinite(pixel) and pixel > 0):
        raise ValueError(f"--apix must be positive and finite (a pixel size in Å), got {pixel}")
    for path, data in ((path_a, a), (path_b, b)):
        if data.numel() and float(data.max()) == float(data.min()):
            raise ValueError(f"{path}: every voxel is {float(data.min()):g}: an empty map")
    return a, b, float(pixel)


def read_mask(path: str | os.PathLike, shape: tuple[int, ...]) -> torch.Tensor:
    """A soft mask of the given shape with values in [0, 1] (clamped to it).

    Raises
    ------
    FileNotFoundError, ValueError
        A missing or unreadable file, another shape, or values outside [0, 1] (beyond 1e-6).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        mask, _ = read_mrc(path)
    except OSError as error:
        raise ValueError(str(error)) from None
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{path}: mask shape {tuple(mask.shape)} differs from the maps' {tuple(shape)}"
        )
    lo, hi = float(mask.min()), float(mask.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"{path}: mask values must lie in [0, 1], found [{lo:g}, {hi:g}]")
    return mask.clamp(0.0, 1.0)
