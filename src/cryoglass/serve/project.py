"""The project folder of ``cryoglass serve --project-dir``: paths inside it, job folders, listing.

Jobs read their inputs by paths relative to the project folder and write their outputs to
``<JobType>/jobNNN/`` inside it, as RELION does, so that the same files work from the command
line run in that folder.  :meth:`Project.resolve` is the one gate between a request's path and
the file system: the path is resolved (``..`` and symbolic links included) and must stay
inside the folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

__all__ = ["JOB_FOLDER", "Project", "ProjectPathError"]

#: A job folder relative to the project: ``<JobType>/jobNNN``.
JOB_FOLDER = re.compile(r"^([A-Za-z][A-Za-z0-9]*)/job(\d{3,})$")
#: Folders never listed nor reachable: the server's own records.
_HIDDEN = (".cryoglass",)
_MAX_LISTED = 5000


class ProjectPathError(ValueError):
    """A path a job may not use (outside the project, missing, hidden); the message says why."""


class Project:
    """A project folder; every path a job touches is checked here.

    Parameters
    ----------
    root : path
        The project folder (must exist).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"{root}: project folder not found")

    def resolve(self, value: str, *, must_exist: bool = True) -> str:
        """``value`` (relative to the project) checked and normalised, as a relative path.

        Parameters
        ----------
        value : str
            A path relative to the project folder (``"CtfFind/job003/micrographs_ctf.star"``).
        must_exist : bool
            Refuse a path that does not exist (yet).

        Returns
        -------
        str
            The normalised relative path (POSIX separators).

        Raises
        ------
        ProjectPathError
            An absolute path, a path leading outside the project (``..`` or a symbolic link to
            elsewhere), the server's own folder, or a missing file — naming the value.
        """
        if not value or "\x00" in value:
            raise ProjectPathError(f"{value!r}: empty or malformed path")
        if PurePosixPath(value).is_absolute() or Path(value).is_absolute() or value[:1] == "~":
            raise ProjectPathError(f"{value}: give a path relative to the project folder")
        target = (self.root / value).resolve()
        if not target.is_relative_to(self.root):
            raise ProjectPathError(f"{value}: outside the project folder")
        relative = target.relative_to(self.root)
        if relative.parts and relative.parts[0] in _HIDDEN:
            raise ProjectPathError(f"{value}: the server's own folder is not a job input")
        if must_exist and not target.exists():
            raise ProjectPathError(f"{value}: not found in the project folder")
        return relative.as_posix() if relative.parts else "."

    def next_job_number(self, at_least: int = 1) -> int:
        """One more than the largest ``jobNNN`` folder already in the project (or ``at_least``)."""
        largest = at_least - 1
        for entry in self.root.glob("*/job[0-9][0-9][0-9]*"):
            match = JOB_FOLDER.match(entry.relative_to(self.root).as_posix())
            if match:
                largest = max(largest, int(match.group(2)))
        return largest + 1

    def files(self, *, limit: int = _MAX_LISTED) -> list[str]:
        """Relative paths of the files in the project (hidden folders skipped), sorted.

        Symbolic links leading outside the folder are left out, as :meth:`resolve` refuses them.
        """
        found: list[str] = []
        for folder, dirs, names in os.walk(self.root):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _HIDDEN)
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = here / name
                if not path.resolve().is_relative_to(self.root):
                    continue
                found.append(path.relative_to(self.root).as_posix())
                if len(found) >= limit:
                    return found
        return found
