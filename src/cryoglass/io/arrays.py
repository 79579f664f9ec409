"""NumPy arrays on disk: ``.npy`` files and integer lists as text, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryoglass.io._atomic import atomic_write

__all__ = ["write_index_list", "write_npy"]


def write_npy(path: str | os.PathLike, array: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write one array as a NumPy ``.npy`` file, atomically.

    Parameters
    ----------
    path : path-like
        Output file; should end in ``.npy`` (``np.load`` reads it).
    array : ndarray, any shape and dtype
    overwrite : bool
        Replace an existing ``path`` (default, like ``np.save``).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "z.npy"
    >>> np.load(write_npy(path, np.arange(3.0)))
    array([0., 1., 2.])
    """
    return atomic_write(path, lambda tmp: np.save(tmp, array), overwrite=overwrite, suffix=".npy")


def write_index_list(
    path: str | os.PathLike, indices: np.ndarray, *, overwrite: bool = True
) -> Path:
    """Write integers one per line (``np.savetxt(fmt="%d")``), atomically.

    Parameters
    ----------
    path : path-like
        Output text file.
    indices : ndarray (n,), integer
        E.g. 0-based particle indices.
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path
    """
    return atomic_write(path, lambda tmp: np.savetxt(tmp, indices, fmt="%d"), overwrite=overwrite)
