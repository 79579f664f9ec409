"""Checkpoints on disk: dictionaries of tensors written with ``torch.save``, read weights-only.

The science packages say *what* a checkpoint holds (``classify.checkpoint_tensors``,
``hetero.checkpoint_payload``: dictionaries of tensors and plain values); this module is the
one that writes and reads such dictionaries.  Files are written atomically (temporary file,
then rename) and read with ``torch.load(weights_only=True)``, which refuses pickled code, so a
checkpoint from elsewhere cannot run anything when it is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cryoglass.io._atomic import atomic_write

__all__ = ["load_tensors", "save_tensors"]


def save_tensors(
    path: str | os.PathLike, payload: Mapping[str, Any], *, overwrite: bool = False
) -> Path:
    """Write a dictionary of tensors and plain values with ``torch.save``, atomically.

    Parameters
    ----------
    path : path-like
        Output file (conventionally ``.pt``).
    payload : mapping of str to Tensor, number, str, list or dict
        What to save; only types that ``torch.load(weights_only=True)`` accepts (tensors,
        numbers, strings, lists, tuples and dicts of those), so :func:`load_tensors` reads it.
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
    >>> _ = save_tensors(path, {"x": torch.arange(3)})
    >>> load_tensors(path)["x"]
    tensor([0, 1, 2])
    """
    return atomic_write(path, lambda tmp: torch.save(dict(payload), tmp), overwrite=overwrite)


def load_tensors(
    path: str | os.PathLike, *, device: torch.device | str | None = None
) -> dict[str, Any]:
    """Read a file written by :func:`save_tensors` (``torch.load`` with ``weights_only=True``).

    Parameters
    ----------
    path : path-like
    device : torch device, optional
        Where the tensors are put (``map_location``); default: where they were saved from.

    Returns
    -------
    dict
        The saved dictionary.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(f"{path}: not a readable checkpoint ({error})") from error
