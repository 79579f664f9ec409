"""Job submission, shared by the JSON API and the HTML form: check, save, validate, queue.

:func:`submit_job` takes the uploads of one request, checks the options, saves the files under
the new job's ``inputs/`` folder, reads them (:func:`cryoglass.serve.jobs.validate_inputs`),
records the job as queued and hands it to the worker pool.  :func:`submit_project_job` does
the same for a project job (:mod:`~cryoglass.serve.kinds`): its file options are paths inside
the project folder, or ``job:<id>/<file>`` for a file of another job's folder.  A rejected
submission raises :class:`UploadError` (HTTP status and a message naming the field) and
leaves nothing behind.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from cryoglass.serve.jobs import (
    JOB_ID,
    KINDS,
    JobStore,
    WorkerPool,
    remove_job_dir,
    validate_inputs,
)
from cryoglass.serve.kinds import PROJECT_KINDS, build_argv
from cryoglass.serve.project import JOB_FOLDER, Project, ProjectPathError

__all__ = ["UploadError", "submit_job", "submit_project_job"]

#: RELION job types of the upload kinds' folders in a project.
UPLOAD_FOLDERS = {"fsc": "FSC", "postprocess": "PostProcess", "3dfsc": "ThreeDFSC"}

_CHUNK = 1024 * 1024


class UploadError(Exception):
    """A rejected submission: HTTP status and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _is_empty(upload: UploadFile | None) -> bool:
    return upload is None or (not upload.filename and not upload.size)


async def _save(upload: UploadFile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        while chunk := await upload.read(_CHUNK):
            handle.write(chunk)


def _check_options(
    kind: str, *, full: bool, mask: bool, apix, bfactor: str, auto_mask: bool, cone_deg: float
) -> None:
    if kind not in KINDS:
        raise UploadError(400, f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if full and kind != "3dfsc":
        raise UploadError(400, "full: a full map is used only by 3dfsc jobs")
    if auto_mask and kind != "postprocess":
        raise UploadError(400, "auto_mask applies only to postprocess jobs")
    if auto_mask and mask:
        raise UploadError(400, "give either a mask or auto_mask, not both")
    if apix is not None and not apix > 0:
        raise UploadError(400, f"apix must be a positive pixel size in Å, got {apix}")
    if bfactor.strip().lower() != "auto":
        try:
            float(bfactor)
        except ValueError:
            message = f"bfactor must be 'auto' or a number in Å², got {bfactor!r}"
            raise UploadError(400, message) from None
    if not 0.0 < cone_deg < 90.0:
        raise UploadError(400, f"cone_deg must lie in (0, 90) degrees, got {cone_deg}")


async def _save_inputs(
    store: JobStore, job_id: str, kind: str, given: dict[str, UploadFile], apix: float | None
) -> dict[str, Any]:
    """Save the uploads as ``inputs/<field>.mrc`` and check them; the folder goes on error."""
    inputs = store.job_dir(job_id) / "inputs"
    paths = {name: inputs / f"{name}.mrc" for name in given}
    try:
        for name, upload in given.items():
            await _save(upload, paths[name])
        labels = {name: up.filename or name for name, up in given.items()}
        return await run_in_threadpool(validate_inputs, kind, paths, apix=apix, labels=labels)
    except ValueError as error:
        remove_job_dir(store, job_id)
        raise UploadError(400, str(error)) from None
    except BaseException:
        remove_job_dir(store, job_id)
        raise


async def submit_job(
    store: JobStore,
    pool: WorkerPool,
    kind: str,
    uploads: dict[str, UploadFile | None],
    *,
    apix: float | None,
    bfactor: str,
    auto_mask: bool,
    cone_deg: float,
    seed: int,
) -> str:
    """Check, save and queue one job; return its id.

    Parameters
    ----------
    store : JobStore
        Where the job is recorded.
    pool : WorkerPool
        The workers the job is queued for.
    kind : str
        ``fsc``, ``postprocess`` or ``3dfsc`` (:data:`cryoglass.serve.jobs.KINDS`).
    uploads : dict of str → UploadFile or None
        ``half1``, ``half2`` (required), ``full`` and ``mask``; empty form fields count as absent.
    apix : float or None
        Pixel size [Å]; None takes it from the headers.
    bfactor : str
        postprocess: ``"auto"`` or B [Å²].
    auto_mask : bool
        postprocess: make the mask from the map.
    cone_deg : float
        3dfsc: cone half-angle [degrees], in (0, 90).
    seed : int
        fsc/postprocess: phase-randomisation seed.

    Returns
    -------
    str
        The job id (12 hex digits).

    Raises
    ------
    UploadError
        400 with a message naming the field: a missing half map, an option that does not fit
        the kind, or an upload that is not a usable map.
    """
    given = {name: up for name, up in uploads.items() if not _is_empty(up)}
    for name in ("half1", "half2"):
        if name not in given:
            raise UploadError(400, f"{name}: a half map (.mrc) is required")
    _check_options(
        kind,
        full="full" in given,
        mask="mask" in given,
        apix=apix,
        bfactor=bfactor,
        auto_mask=auto_mask,
        cone_deg=cone_deg,
    )
    job_id = secrets.token_hex(6)
    checked = await _save_inputs(store, job_id, kind, given, apix)
    params = {
        "apix": apix,
        "bfactor": bfactor.strip(),
        "auto_mask": auto_mask,
        "cone_deg": cone_deg,
        "seed": seed,
        "mask": "mask" in given,
        "full": "full" in given,
        "uploads": {name: up.filename or "" for name, up in given.items()},
        **checked,
    }
    folder = UPLOAD_FOLDERS[kind] if store.project_dir is not None else None
    first = Project(store.project_dir).next_job_number() if folder else 1
    store.create(job_id, kind, params, folder=folder, first_number=first)
    pool.submit(job_id)
    return job_id


def _input_resolver(store: JobStore, project: Project, depends: list[str]):
    """``resolve(name, value)`` for :func:`build_argv`: a checked relative path.

    A path inside another job's folder (or ``job:<id>/<file>``) makes this job depend on
    that one: refused (409) if it failed or was cancelled, waited for if queued or running,
    and otherwise the file must exist, like any other input.
    """

    def resolve(name: str, value: str) -> str:
        if value.startswith("job:"):
            job_id, _, rest = value[4:].partition("/")
            source = store.get(job_id) if JOB_ID.match(job_id) else None
            if source is None or not source.get("out_dir"):
                raise UploadError(404, f"{name}: no project job {job_id!r}")
            value = f"{source['out_dir']}/{rest}" if rest else source["out_dir"]
        try:
            relative = project.resolve(value, must_exist=False)
        except ProjectPathError as error:
            raise UploadError(400, f"{name}: {error}") from None
        match = JOB_FOLDER.match("/".join(relative.split("/")[:2]))
        source = store.by_out_dir(match.group(0)) if match else None
        if source is not None and source["status"] in ("failed", "cancelled"):
            raise UploadError(
                409,
                f"{name}: {value} comes from job {source['out_dir']} ({source['id']}), "
                f"which {source['status']}",
            )
        if source is not None and source["status"] != "done":
            depends.append(source["id"])
        elif not (project.root / relative).exists():
            raise UploadError(400, f"{name}: {value}: not found in the project folder")
        return relative

    return resolve


def submit_project_job(
    store: JobStore, pool: WorkerPool, kind_name: str, values: dict[str, Any]
) -> tuple[str, str]:
    """Check and queue a project job; return its id and its folder (``"CtfFind/job003"``).

    Parameters
    ----------
    store : JobStore
        The records; ``store.project_dir`` is the project folder.
    pool : WorkerPool
        The workers the job is queued for.
    kind_name : str
        A key of :data:`cryoglass.serve.kinds.PROJECT_KINDS`.
    values : dict of str → value
        The kind's options by name; file options are paths relative to the project folder
        or ``job:<id>/<file>``.

    Returns
    -------
    (str, str)
        The job id and its output folder relative to the project.

    Raises
    ------
    UploadError
        400 for an unknown kind or option, a wrong value, a path outside the project or a
        missing file; 404 for an unknown input job; 409 for an input from a job that failed
        or was cancelled; 400 when the server has no project folder.
    """
    if store.project_dir is None:
        raise UploadError(400, "this server has no project folder: start it with --project-dir")
    kind = PROJECT_KINDS.get(kind_name)
    if kind is None:
        raise UploadError(400, f"kind must be one of {', '.join(PROJECT_KINDS)}; got {kind_name!r}")
    if not isinstance(values, dict):
        raise UploadError(400, "params must be an object of option names and values")
    project = Project(store.project_dir)
    depends: list[str] = []
    try:  # checked once before anything is recorded, then built for the real folder
        build_argv(kind, values, _input_resolver(store, project, depends), "JobType/job000")
    except ValueError as error:
        raise UploadError(400, str(error)) from None

    def params(out_dir: str | None) -> dict[str, Any]:
        argv = build_argv(kind, values, _input_resolver(store, project, []), out_dir)
        return {"values": values, "argv": argv}

    job_id = secrets.token_hex(6)
    out_dir = store.create(
        job_id,
        kind.name,
        params,
        folder=kind.folder,
        depends=sorted(set(depends)),
        first_number=project.next_job_number(),
    )
    pool.submit(job_id)
    return job_id, out_dir
