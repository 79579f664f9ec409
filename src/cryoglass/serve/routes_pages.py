"""The HTML pages of ``cryoglass serve``: job list and form, job results, explorer pages.

A job page shows first the numbers its command names in the ``"headline"`` list of its
``--json`` output (:func:`headline_rows`), then every scalar of that output
(:func:`summary_rows`), the command's figures and its files.  Nothing here knows which keys a
command reports.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cryoglass.serve import explorers
from cryoglass.serve.jobs import KINDS
from cryoglass.serve.routes_api import job_or_404, job_store, worker_pool
from cryoglass.serve.submit import UploadError, submit_job

__all__ = ["api_rows", "headline_rows", "job_outputs", "router", "summary_rows"]

#: Result keys shown elsewhere (curves, the headline list) or not meant for the summary table.
_NOT_SUMMARY = {"headline", "shells", "guinier", "files", "inputs"}

router = APIRouter(include_in_schema=False)


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


_templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
_templates.env.filters["fmt"] = _fmt
_templates.env.filters["time"] = _time


def summary_rows(result: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(key, value) rows of a result's scalar numbers (nested dicts flattened one level).

    Parameters
    ----------
    result : dict or None
        A command's ``--json`` output.

    Returns
    -------
    list of (str, value)
        Scalars and short lists (≤ 3 values) in the result's order; ``headline``, ``shells``,
        ``guinier``, ``files`` and ``inputs`` are left out.
    """
    rows: list[tuple[str, Any]] = []
    for key, value in (result or {}).items():
        if key in _NOT_SUMMARY:
            continue
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        elif not isinstance(value, list) or len(value) <= 3:
            rows.append((key, value))
    return rows


def headline_rows(result: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(key, value) of the keys a command lists under ``"headline"`` in its ``--json`` output.

    Parameters
    ----------
    result : dict or None
        A command's ``--json`` output; by convention it carries ``"headline"``, the keys of
        that same JSON to show first (e.g. ``["resolution_0143_angstrom", ...]`` for ``fsc``).

    Returns
    -------
    list of (str, value)
        In the order of ``headline``; keys absent from the result are skipped, and a result
        without ``headline`` has none.
    """
    result = result or {}
    return [(key, result[key]) for key in result.get("headline", []) if key in result]


#: Figures shown on a job page at most (all stay downloadable).
MAX_FIGURES = 48


def job_outputs(files: list[str]) -> dict[str, Any]:
    """What a job page shows of a job's files: the command's report, figures and the rest.

    Parameters
    ----------
    files : list of str
        The job's outputs, relative to its folder (``["classes.png", "overlays/a.png"]``).

    Returns
    -------
    dict
        ``report``: ``"report.html"`` when the command wrote one (else None);
        ``figures``: the PNG/SVG figures, top-level ones first, at most :data:`MAX_FIGURES`;
        ``more_figures``: how many were left out; ``folders``: each subfolder with its files.

    Examples
    --------
    >>> job_outputs(["a.star", "overlays/m1.png", "fsc.png", "report.html"])["figures"]
    ['fsc.png', 'overlays/m1.png']
    """
    figures = [f for f in files if f.endswith((".png", ".svg"))]
    figures.sort(key=lambda f: (f.count("/"), f))
    return {
        "report": "report.html" if "report.html" in files else None,
        "figures": figures[:MAX_FIGURES],
        "more_figures": max(0, len(figures) - MAX_FIGURES),
    }


def _page(request: Request, name: str, status_code: int = 200, **context) -> Response:
    return _templates.TemplateResponse(request, name, context, status_code=status_code)


def _index(request: Request, *, status_code: int = 200, error: str | None = None) -> Response:
    store = job_store(request)
    return _page(
        request,
        "index.html",
        status_code,
        jobs=store.list(),
        kinds=list(KINDS),
        error=error,
        project_dir=store.project_dir,
    )


@router.get("/")
def index(request: Request) -> Response:
    return _index(request)


@router.post("/jobs")
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
        job_id = await submit_job(
            job_store(request),
            worker_pool(request),
            kind,
            uploads,
            apix=pixel,
            bfactor=bfactor,
            auto_mask=auto_mask,
            cone_deg=cone_deg,
            seed=seed,
        )
    except UploadError as error:
        return _index(request, status_code=error.status, error=error.message)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    job = job_or_404(job_store(request), job_id)
    return _page(
        request,
        "job.html",
        job=job,
        headline=headline_rows(job["result"]),
        rows=summary_rows(job["result"]),
        **job_outputs(job["files"]),
    )


def api_rows(schema: dict[str, Any]) -> list[dict[str, str]]:
    """One row per route of an OpenAPI schema: method, path, summary and description.

    Parameters
    ----------
    schema : dict
        ``app.openapi()``.

    Returns
    -------
    list of dict
        ``{"method", "path", "summary", "description"}`` in the schema's order.
    """
    rows = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            rows.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                }
            )
    return rows


@router.get("/docs")
def api_page(request: Request) -> Response:
    """The API, listed from the OpenAPI schema, on a page that loads nothing from elsewhere."""
    return _page(request, "api.html", rows=api_rows(request.app.openapi()))


@router.get("/explore/ctf")
def ctf_page(request: Request) -> Response:
    return _page(request, "ctf.html")


@router.get("/explore/blur")
def blur_page(request: Request) -> Response:
    return _page(request, "blur.html", box=explorers.MAP_BOX)


@router.get("/explore/slice")
def slice_page(request: Request) -> Response:
    return _page(request, "slice.html")
