"""Chunked Zarr image stacks: an out-of-core alternative to MRC stacks.

Layout (Zarr format 3, a folder ``NAME.zarr``)::

    NAME.zarr/            group, attributes {"cryoglass": "particle-stack", "version": 1,
                                             "pixel_size_angstrom": …}
    NAME.zarr/images      float32 array (n, h, w), chunks (chunk_images, h, w)

Images keep the MRC stack's orientation (``image[y, x]``, the first row of the array is the
first row of the file) so a stack converted from MRC reads back identically.  A chunk holds
whole images, so reading a batch of consecutive particles touches one or two chunks; the
chunks are compressed (Zarr's default, lossless) and can live on object storage.

Only this module knows the layout; :func:`open_zarr_stack` returns a reader with the same
``len`` / ``image_shape`` / ``read(indices)`` interface as :class:`cryoglass.io.MRCStack`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cryoglass.io._atomic import atomic_folder
from cryoglass.io.outputs import register_input

__all__ = ["ZARR_MISSING", "ZarrStack", "open_zarr_stack", "write_zarr_stack", "zarr_available"]

_KIND, _VERSION = "particle-stack", 1

#: What to tell a user whose installation lacks zarr (an optional dependency).
ZARR_MISSING = "Zarr stacks need the zarr package: pip install 'cryoglass[zarr]'"


def zarr_available() -> bool:
    """Whether the optional ``zarr`` package can be imported (``cryoglass[zarr]``)."""
    import importlib.util

    return importlib.util.find_spec("zarr") is not None


def _zarr(path: Path):
    """The zarr module, or a ValueError naming ``path`` and the install command."""
    try:
        import zarr
    except ImportError:
        raise ValueError(f"{path}: {ZARR_MISSING}") from None
    return zarr


def _block(images, start: int, stop: int) -> np.ndarray:
    """Images ``start … stop − 1`` of an array-like or a reader with ``read(indices)``."""
    if hasattr(images, "read"):
        block = images.read(torch.arange(start, stop))
    else:
        block = images[start:stop]
    if isinstance(block, torch.Tensor):
        block = block.detach().cpu().numpy()
    return np.asarray(block, dtype=np.float32)


def write_zarr_stack(
    path: str | os.PathLike,
    images,
    *,
    pixel_size_angstrom: float,
    chunk_images: int = 1024,
    overwrite: bool = False,
) -> Path:
    """Write an image stack to a chunked Zarr store, ``chunk_images`` images at a time.

    Parameters
    ----------
    path : path-like
        Output folder (``.zarr``).  Written under a temporary name and renamed when complete.
    images : Tensor, ndarray (n, h, w), or a reader with ``len()`` and ``read(indices)``
        The images (an ``MRCStack``/``ParticleStack`` or a memory map: read block by block,
        so the stack never has to fit in memory).
    pixel_size_angstrom : float
        Pixel size [Å], stored as a group attribute.
    chunk_images : int
        Images per Zarr chunk (and per write).
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    zarr = _zarr(path)
    if chunk_images < 1:
        raise ValueError(f"chunk_images must be >= 1, got {chunk_images}")
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be > 0, got {pixel_size_angstrom}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    n = len(images)
    if n == 0:
        raise ValueError(f"{path}: no images to write")
    first = _block(images, 0, 1)
    if first.ndim != 3:
        raise ValueError(f"{path}: images must have shape (n, h, w), got {first.shape[1:]} each")
    h, w = first.shape[1:]
    with atomic_folder(path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        group.attrs.update(
            {
                "cryoglass": _KIND,
                "version": _VERSION,
                "pixel_size_angstrom": float(pixel_size_angstrom),
            }
        )
        array = group.create_array(
            "images", shape=(n, h, w), chunks=(min(chunk_images, n), h, w), dtype="float32"
        )
        for start in range(0, n, chunk_images):  # loop over chunks, not particles
            stop = min(start + chunk_images, n)
            array[start:stop] = _block(images, start, stop)
    return path


class ZarrStack:
    """A Zarr image stack read on demand (use :func:`open_zarr_stack`).

    Attributes
    ----------
    path : Path
    pixel_size_angstrom : float
    image_shape : tuple of int
        ``(h, w)``.
    chunk_images : int
        Images per stored chunk.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        zarr = _zarr(self.path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: Zarr stack not found")
        try:
            group = zarr.open_group(self.path, mode="r")
        except (FileNotFoundError, ValueError, KeyError) as error:
            raise ValueError(f"{self.path}: not a Zarr group ({error})") from error
        attrs = dict(group.attrs)
        if attrs.get("cryoglass") != _KIND or "images" not in group:
            raise ValueError(
                f"{self.path}: not a cryoglass particle stack (expected attribute "
                f"cryoglass={_KIND!r} and an 'images' array; write it with "
                "`cryoglass stack convert`)"
            )
        self._array = group["images"]
        if self._array.ndim != 3:
            raise ValueError(f"{self.path}/images: expected (n, h, w), got {self._array.shape}")
        self.pixel_size_angstrom = float(attrs["pixel_size_angstrom"])
        self.image_shape: tuple[int, int] = (int(self._array.shape[1]), int(self._array.shape[2]))
        self.chunk_images = int(self._array.chunks[0])

    def __len__(self) -> int:
        return int(self._array.shape[0])

    def read(self, indices: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
        """Images at 0-based ``indices`` as a float32 tensor (B, h, w), in the order given.

        Each stored chunk the indices fall in is read (and decompressed) once.

        Raises
        ------
        IndexError
            An index is negative or past the end.
        """
        idx = np.asarray(torch.as_tensor(indices, dtype=torch.int64).cpu().numpy()).reshape(-1)
        n = len(self)
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            raise IndexError(
                f"{self.path}: image index {int(idx[bad][0])} (0-based) is outside the stack "
                f"of {n} images"
            )
        out = np.empty((idx.size, *self.image_shape), dtype=np.float32)
        if idx.size:
            unique, inverse = np.unique(idx, return_inverse=True)
            if unique[-1] - unique[0] + 1 == unique.size:  # a contiguous run: one slice
                block = self._array[int(unique[0]) : int(unique[-1]) + 1]
            else:
                block = self._array.get_orthogonal_selection((unique, slice(None), slice(None)))
            out[:] = np.asarray(block, dtype=np.float32)[inverse.reshape(-1)]
        return torch.from_numpy(out)

    def close(self) -> None:
        """Nothing to release (kept for the MRCStack interface)."""

    def __enter__(self) -> ZarrStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_zarr_stack(path: str | os.PathLike) -> ZarrStack:
    """Open a Zarr particle stack written by :func:`write_zarr_stack` (lazy reads).

    Parameters
    ----------
    path : path-like
        The ``.zarr`` folder.

    Returns
    -------
    ZarrStack
        ``len(stack)`` images of shape ``stack.image_shape``; ``stack.read(indices)`` returns
        a float32 tensor (B, h, w); ``stack.pixel_size_angstrom``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    >>> _ = write_zarr_stack(folder / "s.zarr", x, pixel_size_angstrom=1.5, chunk_images=1)
    >>> stack = open_zarr_stack(folder / "s.zarr")
    >>> len(stack), stack.image_shape, stack.pixel_size_angstrom
    (2, (3, 4), 1.5)
    >>> bool(torch.equal(stack.read([1, 0]), x[[1, 0]]))
    True
    """
    register_input(path)
    return ZarrStack(path)
