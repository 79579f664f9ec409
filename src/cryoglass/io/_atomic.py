"""Atomic file writes: write a temporary file next to the target, then rename it into place.

A reader never sees a half-written output, and a failed write leaves no file behind.  An
existing file is replaced only when the caller says ``overwrite=True`` (inputs are never
clobbered by accident).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "check_writable",
    "default_file_mode",
    "write_bytes_atomic",
    "write_text_atomic",
]


def default_file_mode() -> int:
    """The mode a plainly created file gets (0o666 minus the umask); mkstemp would give 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Check that ``path`` may be written; return it as a ``Path``.

    Raises
    ------
    OutputIsInputError
        ``path`` is a file the running command read (:mod:`cryoglass.io.outputs`): never
        replaced, even with ``overwrite``.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    IsADirectoryError
        ``path`` is a folder.
    FileNotFoundError
        The parent folder of ``path`` does not exist.
    """
    from cryoglass.io.outputs import OutputIsInputError, is_input

    path = Path(path)
    if is_input(path):
        raise OutputIsInputError(
            f"{path}: is an input of this command; write the output elsewhere "
            "(--overwrite never replaces an input)"
        )
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, cannot write a file there")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, overwrite: bool = False, suffix: str = ".tmp"
) -> Iterator[Path]:
    """A temporary file beside ``path`` that becomes ``path`` when the ``with`` block ends.

    The one temporary-file-then-rename of cryoglass: every file a command writes goes through
    here (directly or through :func:`atomic_write`).  If the block raises, or the process is
    interrupted, the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : path-like
        Final file name.
    overwrite : bool
        Replace an existing ``path``.
    suffix : str
        Ending of the temporary name (some writers choose their format from it).

    Yields
    ------
    Path
        The temporary file (exists, empty, in the target's folder).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text()
    'hello'
    """
    path = check_writable(path, overwrite=overwrite)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], None],
    *,
    overwrite: bool = False,
    suffix: str = ".tmp",
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
    suffix : str
        Ending of the temporary name.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path, overwrite=overwrite, suffix=suffix) as tmp:
        write(tmp)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; replaces an existing file by default."""
    return atomic_write(
        path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=overwrite
    )


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; replaces an existing file by default."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A new folder beside ``path`` that replaces ``path`` when the ``with`` block ends.

    The folder counterpart of :func:`atomic_path` (for outputs that are folders, such as Zarr
    stores): the block fills the yielded folder; if it raises, the partial folder is removed
    and ``path`` is left as it was.  The caller has checked that ``path`` may be replaced.

    Yields
    ------
    Path
        The temporary folder's name (not yet created).
    """
    from cryoglass.io.outputs import OutputIsInputError, is_input

    path = Path(path)
    if is_input(path):
        raise OutputIsInputError(f"{path}: is an input of this command; write the output elsewhere")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
