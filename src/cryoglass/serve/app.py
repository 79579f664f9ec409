"""The FastAPI application of ``cryoglass serve``: pages, the JSON API and the explorers.

:func:`create_app` builds the app for one data folder from three routers:
:mod:`~cryoglass.serve.routes_api` (``/api/jobs``), :mod:`~cryoglass.serve.routes_explore`
(``/api/explore``, the explorers' PNGs) and :mod:`~cryoglass.serve.routes_pages` (the HTML
pages).  Jobs run in worker processes (:class:`cryoglass.serve.jobs.WorkerPool`), never in the
web process; the web process only saves and validates uploads, reads job records and renders
pages and explorer figures.  The API is listed at ``/docs`` (a local page built from the
OpenAPI schema at ``/openapi.json``; nothing is fetched from elsewhere) and in docs/serve.md.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from cryoglass.serve import routes_api, routes_explore, routes_pages
from cryoglass.serve.jobs import JobStore, WorkerPool

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app"]

#: Default limit on one request's body (all uploads together) [bytes]; 413 beyond it.
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
_HERE = Path(__file__).parent


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
        expected = self.token.encode("utf-8")
        # compare bytes: compare_digest raises TypeError on a non-ASCII str (a 500, not a 401)
        if not any(
            secrets.compare_digest(g.encode("utf-8", "replace"), expected) for g in given if g
        ):
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


def create_app(
    data_dir: str | Path | None = None,
    *,
    project_dir: str | Path | None = None,
    workers: int = 2,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    token: str | None = None,
) -> FastAPI:
    """The web app serving jobs from ``data_dir`` with ``workers`` worker processes.

    Parameters
    ----------
    data_dir : path, optional
        Folder of the SQLite job records and the jobs' uploads (created); default
        ``project_dir/.cryoglass``.  Without a project folder, also the outputs.
    project_dir : path, optional
        The project folder (must exist): project jobs read inputs inside it and every job
        writes its outputs to ``<JobType>/jobNNN/`` there (:mod:`cryoglass.serve.kinds`).
    workers : int
        Number of worker processes running jobs.
    max_upload_bytes : int
        Largest accepted request body (413 beyond it).
    token : str, optional
        When given, every request must carry it (``?token=``, ``Authorization: Bearer`` or
        the cookie set by a ``?token=`` link); ``cryoglass serve`` sets one for non-loopback
        hosts.

    Returns
    -------
    FastAPI
        The app; its ``state`` holds the job store and the worker pool.

    Notes
    -----
    On start-up, jobs recorded as running (the previous server stopped mid-job) are marked
    failed with the error "server stopped while the job was running"; queued jobs are queued
    again.  Stopping the app terminates the workers and marks their jobs failed the same way.
    """
    if project_dir is not None:
        project_dir = Path(project_dir).resolve()
        if not project_dir.is_dir():
            raise ValueError(f"{project_dir}: project folder not found")
        data_dir = project_dir / ".cryoglass" if data_dir is None else data_dir
    if data_dir is None:
        raise ValueError("give data_dir or project_dir")
    store = JobStore(data_dir, project_dir)
    pool = WorkerPool(store, workers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool.start()  # takes over from the previous server first (jobs.recover)
        yield
        pool.stop()

    app = FastAPI(
        title="cryoglass serve",
        summary="cryoglass commands as jobs on a project folder (RELION-style job folders), "
        "FSC / postprocess / 3DFSC on uploaded half maps; teaching explorers.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: the local /docs page
        redoc_url=None,  # (routes_pages.api_page) lists the API from /openapi.json instead
    )
    app.state.store, app.state.pool = store, pool
    app.add_middleware(_BodyLimit, limit=max_upload_bytes)
    if token:
        app.add_middleware(_TokenGate, token=token)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    for module in (routes_api, routes_explore, routes_pages):
        app.include_router(module.router)
    return app
