"""Atomic file writes: write a temporary file next to the target, then rename it into place.

A reader never sees a half-written output, and a failed write leaves no file behind.  An
existing file is replaced only when the caller says ``overwrite=True`` (inputs are never
clobbered by accident).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "check_writable", "default_file_mode"]


def default_file_mode() -> int:
    """The mode a plainly created file gets (0o666 minus the umask); mkstemp would give 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Check that ``path`` may be written; return it as a ``Path``.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    IsADirectoryError
        ``path`` is a folder.
    FileNotFoundError
        The parent folder of ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, cannot write a file there")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    return path


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Call ``write(tmp_path)`` on a temporary file in the target folder, then rename it.

    Parameters
    ----------
    path : path-like
        Final file name.
    write : callable
        Writes the complete file to the path it is given (an existing, empty file).
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    Path
        ``path``.
    """
    path = check_writable(path, overwrite=overwrite)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
