"""The FastAPI application of ``cryoglass serve``: pages, the JSON API and the explorers.

:func:`create_app` builds the app for one data folder.  Jobs run in worker processes
(:class:`cryoglass.serve.jobs.WorkerPool`), never in the web process; the web process only
saves and validates uploads, reads job records and renders pages and explorer figures.
The API is documented at ``/docs`` (OpenAPI at ``/openapi.json``) and in docs/serve.md.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
import zipfile
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from cryoglass.serve import explorers
from cryoglass.serve.jobs import (
    FILE_NAME,
    INTERRUPTED,
    JOB_ID,
    KINDS,
    JobStore,
    WorkerPool,
    remove_job_dir,
    validate_inputs,
)

#: Default limit on one request's body (all uploads together) [bytes]; 413 beyond it.
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
_HERE = Path(__file__).parent
_CHUNK = 1024 * 1024
#: Result keys shown as tables elsewhere (curves) or not meant for the summary table.
_NOT_SUMMARY = {"shells", "guinier", "files", "inputs"}
_HEADLINE = {
    "fsc": ("resolution_0143_angstrom", "resolution_05_angstrom"),
    "postprocess": ("resolution_angstrom", "bfactor"),
    "3dfsc": ("sphericity", "global_resolution_angstrom"),
}


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


class UploadError(Exception):
    """A rejected submission: HTTP status and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _BodyLimit:
    """ASGI middleware: 413 for request bodies larger than ``limit`` bytes."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = HTTPException(413, f"request body over the limit of {self.limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": too_large.detail}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise too_large
            return message

        return await self.app(scope, counted, send)


class _TokenGate:
    """ASGI middleware: every request needs the access token (query, bearer or cookie)."""

    def __init__(self, app, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = [
            request.query_params.get("token", ""),
            request.headers.get("authorization", "").removeprefix("Bearer "),
            request.cookies.get("cryoglass_token", ""),
        ]
        if not any(secrets.compare_digest(g, self.token) for g in given if g):
            response = JSONResponse({"detail": "access token required"}, status_code=401)
            return await response(scope, receive, send)
        if given[0]:  # remember the token from a ?token= link in a cookie for the pages

            async def send_with_cookie(message):
                if message["type"] == "http.response.start":
                    cookie = f"cryoglass_token={self.token}; Path=/; HttpOnly; SameSite=Strict"
                    message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode())]
                await send(message)

            return await self.app(scope, receive, send_with_cookie)
        return await self.app(scope, receive, send)


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


def _fmt(value: Any) -> str:
    """Numbers for the pages: 4 significant digits; vectors in brackets; None as '—'."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def summary_rows(result: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(key, value) rows of a result's scalar numbers (nested dicts flattened one level)."""
    rows: list[tuple[str, Any]] = []
    for key, value in (result or {}).items():
        if key in _NOT_SUMMARY:
            continue
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        elif not isinstance(value, list) or len(value) <= 3:
            rows.append((key, value))
    return rows


def create_app(
    data_dir: str | Path,
    *,
    workers: int = 2,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    token: str | None = None,
) -> FastAPI:
    """The web app serving jobs from ``data_dir`` with ``workers`` worker processes.

    Parameters
    ----------
    data_dir : path
        Folder of the SQLite job records and the jobs' inputs and outputs (created).
    workers : int
        Number of worker processes running jobs.
    max_upload_bytes : int
        Largest accepted request body (413 beyond it).
    token : str, optional
        When given, every request must carry it (``?token=``, ``Authorization: Bearer`` or
        the cookie set by a ``?token=`` link); ``cryoglass serve`` sets one for non-loopback
        hosts.

    Notes
    -----
    On start-up, jobs recorded as running (the previous server stopped mid-job) are marked
    failed with the error "server stopped while the job was running"; queued jobs are queued
    again.  Stopping the app terminates the workers and marks their jobs failed the same way.
    """
    store = JobStore(data_dir)
    pool = WorkerPool(store, workers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        store.fail_running(INTERRUPTED)
        pool.start()
        yield
        pool.stop()

    app = FastAPI(
        title="cryoglass serve",
        summary="FSC, postprocess and 3DFSC jobs on uploaded half maps; teaching explorers.",
        version="1",
        lifespan=lifespan,
    )
    app.state.store, app.state.pool = store, pool
    app.add_middleware(_BodyLimit, limit=max_upload_bytes)
    if token:
        app.add_middleware(_TokenGate, token=token)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    templates = Jinja2Templates(directory=_HERE / "templates")
    templates.env.filters["fmt"] = _fmt
    templates.env.filters["time"] = _time

    def get_job(job_id: str) -> dict[str, Any]:
        job = store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    async def create_job(
        kind: str,
        uploads: dict[str, UploadFile | None],
        *,
        apix: float | None,
        bfactor: str,
        auto_mask: bool,
        cone_deg: float,
        seed: int,
    ) -> str:
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
        inputs = store.job_dir(job_id) / "inputs"
        paths = {name: inputs / f"{name}.mrc" for name in given}
        try:
            for name, upload in given.items():
                await _save(upload, paths[name])
            labels = {name: up.filename or name for name, up in given.items()}
            checked = await run_in_threadpool(
                validate_inputs, kind, paths, apix=apix, labels=labels
            )
        except ValueError as error:
            remove_job_dir(store, job_id)
            raise UploadError(400, str(error)) from None
        except BaseException:
            remove_job_dir(store, job_id)
            raise
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
        store.create(job_id, kind, params)
        pool.submit(job_id)
        return job_id

    # ------------------------------------------------------------------ JSON API

    @app.post("/api/jobs", status_code=201, response_model=JobCreated, tags=["jobs"])
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
    ) -> JobCreated:
        """Upload half maps and queue a job; 400 (with the reason) for invalid input."""
        uploads = {"half1": half1, "half2": half2, "full": full, "mask": mask}
        try:
            job_id = await create_job(
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

    @app.get("/api/jobs", response_model=list[JobInfo], tags=["jobs"])
    def api_list() -> list[dict[str, Any]]:
        """All jobs, newest first (without results and logs)."""
        return store.list()

    @app.get("/api/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
    def api_job(job_id: str) -> dict[str, Any]:
        """One job: status, parameters, timings, log, error and the result (--json keys)."""
        return get_job(job_id)

    @app.get("/api/jobs/{job_id}/files/{name}", tags=["jobs"])
    def api_file(job_id: str, name: str) -> FileResponse:
        """Download one output of a job (maps, JSON, PNG, ChimeraX .cxc)."""
        job = get_job(job_id)
        if not FILE_NAME.match(name) or name not in job["files"]:
            raise HTTPException(404, f"job {job_id} has no file {name!r}")
        out = (store.job_dir(job_id) / "out").resolve()
        path = (out / name).resolve()
        if path.parent != out or not path.is_file():
            raise HTTPException(404, f"job {job_id} has no file {name!r}")
        return FileResponse(path, filename=name)

    @app.get("/api/jobs/{job_id}/archive.zip", tags=["jobs"])
    def api_archive(job_id: str) -> FileResponse:
        """All outputs of a finished job in one zip (maps and .cxc side by side for ChimeraX)."""
        job = get_job(job_id)
        if job["status"] not in ("done", "failed") or not job["files"]:
            raise HTTPException(404, f"job {job_id} has no outputs (status {job['status']})")
        archive = store.job_dir(job_id) / f"cryoglass_{job['kind']}_{job_id}.zip"
        if not archive.is_file():
            out = store.job_dir(job_id) / "out"
            partial = archive.with_suffix(f".{secrets.token_hex(4)}.part")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as handle:
                for name in job["files"]:
                    handle.write(out / name, arcname=f"{job_id}/{name}")
            partial.replace(archive)
        return FileResponse(archive, filename=archive.name)

    # ------------------------------------------------------------------ explorers (PNG)

    def png(data: bytes) -> Response:
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    def ctf_from_query(
        defocus_angstrom: float = Query(15000.0, ge=0.0, le=100000.0),
        astigmatism_angstrom: float = Query(0.0, ge=-20000.0, le=20000.0),
        astigmatism_angle_deg: float = Query(0.0, ge=-180.0, le=180.0),
        voltage_kv: float = Query(300.0, ge=10.0, le=1000.0),
        cs_mm: float = Query(2.7, ge=0.0, le=10.0),
        amplitude_contrast: float = Query(0.1, ge=0.0, le=0.99),
        phase_shift_deg: float = Query(0.0, ge=-180.0, le=180.0),
        bfactor_a2: float = Query(0.0, ge=-200.0, le=2000.0),
    ):
        return explorers.ctf_params(
            defocus_angstrom=defocus_angstrom,
            astigmatism_angstrom=astigmatism_angstrom,
            astigmatism_angle_deg=astigmatism_angle_deg,
            voltage_kv=voltage_kv,
            cs_mm=cs_mm,
            amplitude_contrast=amplitude_contrast,
            phase_shift_deg=phase_shift_deg,
            bfactor_a2=bfactor_a2,
        )

    @app.get("/api/explore/ctf/profile.png", tags=["explorers"])
    def explore_ctf_profile(
        params=Depends(ctf_from_query),
        pixel_size_angstrom: float = Query(1.0, ge=0.2, le=10.0),
    ) -> Response:
        """1D CTF along the defocus-u and -v axes (PNG)."""
        return png(explorers.ctf_profile_png(params, pixel_size_angstrom=pixel_size_angstrom))

    @app.get("/api/explore/ctf/image.png", tags=["explorers"])
    def explore_ctf_image(
        params=Depends(ctf_from_query),
        pixel_size_angstrom: float = Query(1.0, ge=0.2, le=10.0),
    ) -> Response:
        """2D CTF, DC in the middle (PNG)."""
        return png(explorers.ctf_image_png(params, pixel_size_angstrom=pixel_size_angstrom))

    @app.get("/api/explore/blur.png", tags=["explorers"])
    def explore_blur(
        lowpass_angstrom: float = Query(0.0, ge=0.0, le=100.0, description="0: none"),
        bfactor_a2: float = Query(0.0, ge=-300.0, le=2000.0),
        axis: str = Query("z", pattern="^[zyx]$"),
        index: int = Query(explorers.MAP_BOX // 2, ge=0, lt=explorers.MAP_BOX),
        view: str = Query("slice", pattern="^(slice|projection)$"),
    ) -> Response:
        """The bundled map before/after low-pass and B-factor, and the power spectra (PNG)."""
        if 0 < lowpass_angstrom < 2 * explorers.MAP_PIXEL_ANGSTROM:
            raise HTTPException(422, "lowpass_angstrom must be 0 (none) or >= Nyquist (4 Å)")
        return png(
            explorers.blur_png(
                lowpass_angstrom=lowpass_angstrom,
                bfactor_a2=bfactor_a2,
                axis=axis,
                index=index,
                view=view,
            )
        )

    @app.get("/api/explore/slice.png", tags=["explorers"])
    def explore_slice(
        rot_deg: float = Query(0.0, ge=-360.0, le=360.0),
        tilt_deg: float = Query(0.0, ge=-360.0, le=360.0),
        psi_deg: float = Query(0.0, ge=-360.0, le=360.0),
    ) -> Response:
        """Central slice log|F| and projection of the bundled map at RELION Euler angles."""
        return png(explorers.fourier_slice_png(rot_deg=rot_deg, tilt_deg=tilt_deg, psi_deg=psi_deg))

    # ------------------------------------------------------------------ pages

    def page(request: Request, name: str, status_code: int = 200, **context) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        return page(request, "index.html", jobs=store.list(), kinds=list(KINDS), error=None)

    @app.post("/jobs", include_in_schema=False)
    async def form_submit(
        request: Request,
        kind: str = Form(...),
        half1: UploadFile | None = File(None),
        half2: UploadFile | None = File(None),
        full: UploadFile | None = File(None),
        mask: UploadFile | None = File(None),
        apix: str = Form(""),
        bfactor: str = Form("auto"),
        auto_mask: bool = Form(False),
        cone_deg: float = Form(20.0),
        seed: int = Form(0),
    ) -> Response:
        uploads = {"half1": half1, "half2": half2, "full": full, "mask": mask}
        try:
            try:
                pixel = float(apix) if apix.strip() else None
            except ValueError:
                raise UploadError(400, f"apix must be a number in Å, got {apix!r}") from None
            job_id = await create_job(
                kind,
                uploads,
                apix=pixel,
                bfactor=bfactor,
                auto_mask=auto_mask,
                cone_deg=cone_deg,
                seed=seed,
            )
        except UploadError as error:
            return page(
                request,
                "index.html",
                status_code=error.status,
                jobs=store.list(),
                kinds=list(KINDS),
                error=error.message,
            )
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    @app.get("/jobs/{job_id}", include_in_schema=False)
    def job_page(request: Request, job_id: str) -> Response:
        job = get_job(job_id)
        headline = [
            (key, job["result"][key])
            for key in _HEADLINE[job["kind"]]
            if job["result"] and key in job["result"]
        ]
        return page(
            request,
            "job.html",
            job=job,
            headline=headline,
            rows=summary_rows(job["result"]),
            figures=[f for f in job["files"] if f.endswith(".png")],
        )

    @app.get("/explore/ctf", include_in_schema=False)
    def ctf_page(request: Request) -> Response:
        return page(request, "ctf.html")

    @app.get("/explore/blur", include_in_schema=False)
    def blur_page(request: Request) -> Response:
        return page(request, "blur.html", box=explorers.MAP_BOX)

    @app.get("/explore/slice", include_in_schema=False)
    def slice_page(request: Request) -> Response:
        return page(request, "slice.html")

    return app
