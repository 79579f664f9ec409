"""The output policy of every command: never write over an input; existing outputs need --overwrite.

Two layers enforce it:

* **Before the work** a command names its outputs and inputs in one call,
  :func:`check_outputs`: an output that *is* one of the inputs (the same file, compared by
  resolved path and by device and inode, so ``./a.mrc``, ``../x/a.mrc`` and a hard link are
  all caught) is refused even with ``overwrite=True``; an existing output needs
  ``overwrite=True``; an output's folder must exist (or be one the command creates).
* **At the write** (a backstop for what a command forgot to name): while a command runs
  (:func:`command_scope`, opened by the ``cryoglass`` entry point for every command), every
  file a reader in ``io/`` opens is recorded (:func:`register_input`), and
  :func:`cryoglass.io._atomic.check_writable` — the gate of every atomic write — refuses to
  rename a temporary file onto a recorded input.  Outside a command (library use, notebooks)
  nothing is recorded and nothing changes.

A command's own state (``--work-dir`` checkpoints it reads back to resume) is not an input:
:func:`~cryoglass.io.checkpoint.load_tensors` does not record what it reads.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "OutputIsInputError",
    "check_outputs",
    "command_scope",
    "is_input",
    "register_input",
]

#: Files read by the running command: (device, inode) → path as given.  None outside a command.
_INPUTS: contextvars.ContextVar[dict[tuple[int, int], str] | None] = contextvars.ContextVar(
    "cryoglass_command_inputs", default=None
)


class OutputIsInputError(FileExistsError):
    """An output path names one of the command's inputs (never replaced, even with overwrite)."""


def _identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of an existing file (symlinks followed), else None."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


@contextlib.contextmanager
def command_scope() -> Iterator[dict[tuple[int, int], str]]:
    """Record the files that io's readers open until the block ends (one command's inputs).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "in.txt"
    >>> _ = path.write_text("x")
    >>> with command_scope():
    ...     register_input(path)
    ...     is_input(path)
    True
    >>> is_input(path)
    False
    """
    token = _INPUTS.set({})
    try:
        yield _INPUTS.get()
    finally:
        _INPUTS.reset(token)


def register_input(path: str | os.PathLike) -> None:
    """Record ``path`` as an input of the running command (no-op outside a command)."""
    inputs = _INPUTS.get()
    if inputs is not None:
        key = _identity(path)
        if key is not None:
            inputs.setdefault(key, str(path))


def is_input(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> bool:
    """Whether ``path`` is the same file as one of ``inputs`` or a recorded input.

    Compared by (device, inode) — what ``os.path.samefile`` compares — and by resolved path
    (which also catches a name that does not exist yet resolving onto an input's name).
    """
    key = _identity(path)
    recorded = _INPUTS.get() or {}
    if key is not None and key in recorded:
        return True
    target = Path(path).resolve()
    for other in inputs:
        if other is None:
            continue
        if Path(other).resolve() == target:
            return True
        if key is not None and _identity(other) == key:
            return True
    return False


def check_outputs(
    outputs: Iterable[str | os.PathLike | None],
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    creates: Iterable[str | os.PathLike] = (),
) -> list[Path]:
    """Check, before any work, that a command may write each of ``outputs``.

    Parameters
    ----------
    outputs : iterable of path-like or None
        Files the command will write (None entries, i.e. options not given, are skipped).
    inputs : iterable of path-like or None
        Files the command reads (besides those io's readers have recorded already).
    overwrite : bool
        The command's ``--overwrite``: existing outputs may be replaced (never an input).
    creates : iterable of path-like
        Folders the command creates (``--out DIR``): outputs inside them need no existing
        folder.

    Returns
    -------
    list of Path
        The outputs, as ``Path``.

    Raises
    ------
    OutputIsInputError
        An output is one of the inputs (also with ``overwrite``).
    FileExistsError
        An output exists and ``overwrite`` is False, or two outputs are the same file.
    IsADirectoryError
        An output is a folder.
    FileNotFoundError
        An output's folder does not exist and is not created by the command.
    NotADirectoryError
        A folder the command creates exists as a file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "half1.mrc").write_text("map")
    >>> check_outputs([folder / "fsc.png"], inputs=[folder / "half1.mrc"])[0].name
    'fsc.png'
    >>> check_outputs([folder / "half1.mrc"], inputs=[folder / "half1.mrc"], overwrite=True)
    Traceback (most recent call last):
    ...
    cryoglass.io.outputs.OutputIsInputError: ...half1.mrc: is an input of this command; \
write the output elsewhere (--overwrite never replaces an input)
    """
    inputs = [p for p in inputs if p is not None]
    made = [Path(folder).resolve() for folder in creates]
    for folder in creates:
        if Path(folder).exists() and not Path(folder).is_dir():
            raise NotADirectoryError(f"{folder}: exists and is not a folder")
    checked: list[Path] = []
    seen: set[Path] = set()
    for output in outputs:
        if output is None:
            continue
        path = Path(output)
        if is_input(path, inputs):
            raise OutputIsInputError(
                f"{path}: is an input of this command; write the output elsewhere "
                "(--overwrite never replaces an input)"
            )
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a folder, cannot write a file there")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: exists; pass --overwrite to replace it")
        resolved = path.resolve()
        if resolved in seen:
            raise FileExistsError(f"{path}: named for two outputs of this command")
        seen.add(resolved)
        parent = resolved.parent
        if not parent.is_dir() and not any(parent == m or m in parent.parents for m in made):
            raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
        checked.append(path)
    return checked
