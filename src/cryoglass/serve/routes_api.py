"""The JSON API of ``cryoglass serve``: submit jobs, read their records, download their outputs.

``POST /api/jobs``, ``GET /api/jobs``, ``GET /api/jobs/{id}``, ``GET /api/jobs/{id}/files/{name}``
and ``GET /api/jobs/{id}/archive.zip`` (docs/serve.md).  The store and the worker pool are the
app's (``app.state``), reached through :func:`job_store` and :func:`worker_pool`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from cryoglass.io import atomic_write
from cryoglass.serve.jobs import FILE_NAME, JOB_ID, JobStore, WorkerPool
from cryoglass.serve.submit import UploadError, submit_job

__all__ = ["JobCreated", "JobInfo", "job_or_404", "job_store", "router", "worker_pool"]

router = APIRouter(tags=["jobs"])


class JobCreated(BaseModel):
    """Answer of ``POST /api/jobs``."""

    id: str
    url: str


class JobInfo(BaseModel):
    """A job record; ``result`` is the command's ``--json`` output when ``status`` is done."""

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


@router.get("/api/jobs/{job_id}/files/{name}")
def api_file(job_id: str, name: str, store: JobStore = Depends(job_store)) -> FileResponse:
    """Download one output of a job (maps, JSON, PNG, ChimeraX .cxc)."""
    job = job_or_404(store, job_id)
    if not FILE_NAME.match(name) or name not in job["files"]:
        raise HTTPException(404, f"job {job_id} has no file {name!r}")
    out = (store.job_dir(job_id) / "out").resolve()
    path = (out / name).resolve()
    if path.parent != out or not path.is_file():
        raise HTTPException(404, f"job {job_id} has no file {name!r}")
    return FileResponse(path, filename=name)


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
        out = store.job_dir(job_id) / "out"
        atomic_write(
            archive,
            lambda tmp: _write_zip(tmp, out, job_id, job["files"]),
            overwrite=True,
            suffix=".part",
        )
    return FileResponse(archive, filename=archive.name)
