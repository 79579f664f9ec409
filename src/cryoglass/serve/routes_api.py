"""The JSON API of ``cryoglass serve``: submit jobs, follow them, cancel or delete them, download.

``POST /api/jobs`` (uploads), ``POST /api/project/jobs`` (project jobs, JSON),
``GET /api/kinds``, ``GET /api/project/files``, ``GET /api/jobs``, ``GET /api/jobs/{id}``,
``DELETE /api/jobs/{id}``, ``POST /api/jobs/{id}/cancel``, ``GET /api/jobs/{id}/files/{name}``
and ``GET /api/jobs/{id}/archive.zip`` (docs/serve.md).  The store and the worker pool are the
app's (``app.state``), reached through :func:`job_store` and :func:`worker_pool`.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from cryoglass.io import atomic_write
from cryoglass.serve.jobs import JOB_ID, KINDS, JobStore, WorkerPool, safe_relative
from cryoglass.serve.kinds import kinds_description
from cryoglass.serve.project import JOB_FOLDER, Project
from cryoglass.serve.submit import UploadError, submit_job, submit_project_job

__all__ = ["JobCreated", "JobInfo", "job_or_404", "job_store", "router", "worker_pool"]

router = APIRouter(tags=["jobs"])


class JobCreated(BaseModel):
    """Answer of ``POST /api/jobs``."""

    id: str
    url: str
    out_dir: str | None = None


class ProjectJob(BaseModel):
    """Body of ``POST /api/project/jobs``: a kind of ``GET /api/kinds`` and its options."""

    kind: str
    params: dict[str, Any] = {}


class JobAction(BaseModel):
    """Answer of ``DELETE /api/jobs/{id}`` and ``POST /api/jobs/{id}/cancel``."""

    id: str
    status: str
    deleted: bool = False


class JobInfo(BaseModel):
    """A job record; ``result`` is the command's ``--json`` output when ``status`` is done.

    While the job runs, ``progress`` (0–1, None when unknown) and ``message`` follow the
    command's progress bars and lines, and ``log`` grows.  Project jobs have ``out_dir``
    (``CtfFind/job003``, relative to the project folder) and ``depends`` (input jobs).
    """

    id: str
    kind: str
    status: str
    params: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    files: list[str] = []
    log: str = ""
    progress: float | None = None
    message: str | None = None
    out_dir: str | None = None
    number: int | None = None
    depends: list[str] = []


def job_store(request: Request) -> JobStore:
    """The app's job records (a FastAPI dependency)."""
    return request.app.state.store


def worker_pool(request: Request) -> WorkerPool:
    """The app's worker processes (a FastAPI dependency)."""
    return request.app.state.pool


def job_or_404(store: JobStore, job_id: str) -> dict[str, Any]:
    """The record of job ``job_id``; HTTP 404 for an unknown or malformed id.

    Parameters
    ----------
    store : JobStore
    job_id : str

    Returns
    -------
    dict
        The job as :meth:`cryoglass.serve.jobs.JobStore.get` returns it.
    """
    job = store.get(job_id) if JOB_ID.match(job_id) else None
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job


@router.post("/api/jobs", status_code=201, response_model=JobCreated)
async def api_submit(
    kind: str = Form(..., description="fsc | postprocess | 3dfsc"),
    half1: UploadFile = File(..., description="half map 1 (.mrc)"),
    half2: UploadFile = File(..., description="half map 2 (.mrc), same box"),
    full: UploadFile | None = File(None, description="full map (3dfsc only)"),
    mask: UploadFile | None = File(None, description="soft mask, values in [0, 1]"),
    apix: float | None = Form(None, description="pixel size [Å]; default: headers"),
    bfactor: str = Form("auto", description="postprocess: 'auto' or B [Å²]"),
    auto_mask: bool = Form(False, description="postprocess: make the mask"),
    cone_deg: float = Form(20.0, description="3dfsc: cone half-angle [degrees]"),
    seed: int = Form(0, description="fsc/postprocess: phase-randomisation seed"),
    store: JobStore = Depends(job_store),
    pool: WorkerPool = Depends(worker_pool),
) -> JobCreated:
    """Upload half maps and queue a job; 400 (with the reason) for invalid input."""
    uploads = {"half1": half1, "half2": half2, "full": full, "mask": mask}
    try:
        job_id = await submit_job(
            store,
            pool,
            kind,
            uploads,
            apix=apix,
            bfactor=bfactor,
            auto_mask=auto_mask,
            cone_deg=cone_deg,
            seed=seed,
        )
    except UploadError as error:
        raise HTTPException(error.status, error.message) from None
    return JobCreated(id=job_id, url=f"/jobs/{job_id}")


@router.get("/api/jobs", response_model=list[JobInfo])
def api_list(store: JobStore = Depends(job_store)) -> list[dict[str, Any]]:
    """All jobs, newest first (without results and logs)."""
    return store.list()


@router.get("/api/jobs/{job_id}", response_model=JobInfo)
def api_job(job_id: str, store: JobStore = Depends(job_store)) -> dict[str, Any]:
    """One job: status, parameters, timings, log, error and the result (--json keys)."""
    return job_or_404(store, job_id)


#: Headers of every downloaded output: a command's report.html shown from here runs no
#: script and loads nothing but the job's own files (and its inline style).
_FILE_HEADERS = {
    "content-security-policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    "x-content-type-options": "nosniff",
}


@router.get("/api/jobs/{job_id}/files/{name:path}")
def api_file(job_id: str, name: str, store: JobStore = Depends(job_store)) -> FileResponse:
    """Download one output of a job (maps, STAR, JSON, PNG, report.html, ChimeraX .cxc).

    ``name`` is one of the job's ``files``: a path inside its folder (``overlays/x.png``).
    """
    job = job_or_404(store, job_id)
    if not safe_relative(name) or name not in job["files"]:
        raise HTTPException(404, f"job {job_id} has no file {name!r}")
    out = store.out_path(job).resolve()
    path = out / name
    if path.is_symlink() or not path.resolve().is_relative_to(out) or not path.is_file():
        raise HTTPException(404, f"job {job_id} has no file {name!r}")
    inline = path.suffix in (".html", ".png", ".svg", ".json", ".txt", ".star")
    return FileResponse(
        path,
        filename=path.name,
        headers=_FILE_HEADERS,
        content_disposition_type="inline" if inline else "attachment",
    )


def _write_zip(path: Path, out: Path, job_id: str, names: list[str]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as handle:
        for name in names:
            handle.write(out / name, arcname=f"{job_id}/{name}")


@router.get("/api/jobs/{job_id}/archive.zip")
def api_archive(job_id: str, store: JobStore = Depends(job_store)) -> FileResponse:
    """All outputs of a finished job in one zip (maps and .cxc side by side for ChimeraX)."""
    job = job_or_404(store, job_id)
    if job["status"] not in ("done", "failed") or not job["files"]:
        raise HTTPException(404, f"job {job_id} has no outputs (status {job['status']})")
    archive = store.job_dir(job_id) / f"cryoglass_{job['kind']}_{job_id}.zip"
    if not archive.is_file():
        out = store.out_path(job)
        store.job_dir(job_id).mkdir(parents=True, exist_ok=True)
        atomic_write(
            archive,
            lambda tmp: _write_zip(tmp, out, job_id, job["files"]),
            overwrite=True,
            suffix=".part",
        )
    return FileResponse(archive, filename=archive.name)


@router.get("/api/kinds")
def api_kinds(request: Request) -> dict[str, Any]:
    """The job kinds: upload kinds, and project kinds with their options (the form's source)."""
    store = job_store(request)
    project = store.project_dir is not None
    return {
        "upload": list(KINDS),
        "project": kinds_description() if project else [],
        "project_dir": project,
    }


@router.get("/api/project/files")
def api_project_files(store: JobStore = Depends(job_store)) -> dict[str, Any]:
    """Files of the project folder (relative paths), and the outputs finished jobs made."""
    if store.project_dir is None:
        raise HTTPException(404, "this server has no project folder (start it with --project-dir)")
    return {"files": Project(store.project_dir).files()}


@router.post("/api/project/jobs", status_code=201, response_model=JobCreated)
def api_submit_project(
    body: ProjectJob = Body(...),
    store: JobStore = Depends(job_store),
    pool: WorkerPool = Depends(worker_pool),
) -> JobCreated:
    """Queue a project job: a command on files of the project folder, outputs in its job folder.

    File options are paths relative to the project folder, or ``job:<id>/<file>``; an output
    of a queued or running job makes this job wait for it.  400 (with the reason) for bad
    options or paths outside the project, 404 for an unknown input job, 409 for an input
    from a job that failed or was cancelled.
    """
    try:
        job_id, out_dir = submit_project_job(store, pool, body.kind, body.params)
    except UploadError as error:
        raise HTTPException(error.status, error.message) from None
    return JobCreated(id=job_id, url=f"/jobs/{job_id}", out_dir=out_dir)


@router.post("/api/jobs/{job_id}/cancel", response_model=JobAction)
def api_cancel(
    job_id: str, store: JobStore = Depends(job_store), pool: WorkerPool = Depends(worker_pool)
) -> JobAction:
    """Cancel a queued job (at once) or a running one (its worker stops within a second)."""
    job = job_or_404(store, job_id)
    if pool.cancel(job_id) is None:
        raise HTTPException(409, f"job {job_id} is already {job['status']}")
    return JobAction(id=job_id, status="cancelled")


def delete_job(store: JobStore, job: dict[str, Any]) -> None:
    """Remove a finished job: its record, its uploads and its output folder.

    Refused (409) while a queued or running job reads its outputs, and while a cancelled
    job's worker is still stopping.
    """
    job_id = job["id"]
    waiting = store.dependents(job_id)
    if waiting:
        raise HTTPException(409, f"job {job_id}: its outputs are inputs of job {waiting[0]}")
    if not store.delete(job_id):
        raise HTTPException(409, f"job {job_id} is {job['status']} and still stopping")
    shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
    out_dir = job.get("out_dir")
    if out_dir and store.project_dir is not None and JOB_FOLDER.match(out_dir):
        folder = store.project_dir / out_dir
        if not folder.is_symlink() and folder.resolve().is_relative_to(store.project_dir):
            shutil.rmtree(folder, ignore_errors=True)


@router.delete("/api/jobs/{job_id}", response_model=JobAction)
def api_delete(
    job_id: str, store: JobStore = Depends(job_store), pool: WorkerPool = Depends(worker_pool)
) -> JobAction:
    """Cancel a queued or running job; delete a finished one (record, uploads and outputs)."""
    job = job_or_404(store, job_id)
    if job["status"] in ("queued", "running") and pool.cancel(job_id) is not None:
        return JobAction(id=job_id, status="cancelled")
    job = job_or_404(store, job_id)
    delete_job(store, job)
    return JobAction(id=job_id, status=job["status"], deleted=True)
