"""`cryoglass serve`: a local web app running cryoglass commands as jobs on a project folder."""

from __future__ import annotations

from pathlib import Path

import typer

from cryoglass.cli._common import fail

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind (default: loopback only)."
    ),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    project_dir: Path | None = typer.Option(
        None,
        "--project-dir",
        help="Project folder: jobs read files inside it and write RELION-style job folders "
        "(CtfFind/job003/...) there; the job database goes to DIR/.cryoglass.",
        show_default=False,
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Folder of the job database (jobs.sqlite) and uploads (created; default "
        "PROJECT/.cryoglass, or ./cryoglass-serve without --project-dir).",
        show_default=False,
    ),
    workers: int = typer.Option(2, "--workers", help="Worker processes running jobs."),
    max_upload_mb: float = typer.Option(
        2048.0, "--max-upload-mb", help="Largest upload request [MiB]; 413 beyond it."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Access token required on every request (made up and printed when --host is not "
        "loopback and none is given).",
    ),
) -> None:
    """Serve a local web app: cryoglass commands as jobs, live progress, cancel; explorers.

    With --project-dir, every file-taking command (motioncorr, ctffind, pick, extract,
    class2d, abinitio, refine3d, class3d, reconstruct, fsc, postprocess, 3dfsc, localres,
    vae train) is a job kind: its inputs are files inside the project folder (or outputs of
    earlier jobs, which it waits for), and it writes RELION-style job folders there
    (CtfFind/job003/...), so the same files work from the command line run in that folder.
    Nothing outside the project folder is reachable.  FSC, postprocess and 3DFSC also take
    uploaded half maps.  Jobs run the commands themselves in worker processes; records live
    in DATA_DIR/jobs.sqlite, so a restarted server lists every job (jobs that were running
    when it stopped are marked failed: "server stopped while the job was running"; queued
    jobs are queued again; workers never outlive the server, even after kill -9).  Job
    pages show progress, the log and the command's own figures and report; Cancel stops a
    job within seconds.  JSON API: POST /api/project/jobs, POST /api/jobs,
    GET /api/jobs/{id}, DELETE /api/jobs/{id}; listed at /docs (OpenAPI: /openapi.json).
    Ctrl-C stops the server.

    Examples:

    \b
      cryoglass serve --project-dir ~/relion_projects/trpv1
      cryoglass serve --port 9000 --data-dir ~/cryoglass-jobs --workers 4
      cryoglass serve --project-dir . --host 0.0.0.0 --token s3cret   # from other machines
    """
    import secrets
    import tempfile

    if workers < 1:
        fail(f"--workers must be >= 1, got {workers}")
    if not 0 < port < 65536:
        fail(f"--port must be in 1..65535, got {port}")
    if max_upload_mb <= 0:
        fail(f"--max-upload-mb must be positive, got {max_upload_mb}")
    if host not in _LOOPBACK and not token:
        token = secrets.token_urlsafe(16)
    if project_dir is not None:
        project_dir = project_dir.expanduser().resolve()
        if not project_dir.is_dir():
            fail(f"--project-dir {project_dir}: not a folder")
    if data_dir is None:
        data_dir = project_dir / ".cryoglass" if project_dir else Path("cryoglass-serve")
    data_dir = data_dir.expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        fail(f"--data-dir {data_dir} exists and is not a folder")
    (data_dir / "tmp").mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(data_dir / "tmp")  # spooled uploads stay inside the data folder

    import uvicorn

    from cryoglass.serve import create_app
    from cryoglass.serve.jobs import JobStore, other_server

    other = other_server(JobStore(data_dir, project_dir))
    if other is not None:
        fail(f"--data-dir {data_dir}: another cryoglass serve (pid {other}) is running on it")

    app = create_app(
        data_dir,
        project_dir=project_dir,
        workers=workers,
        max_upload_bytes=int(max_upload_mb * 1024**2),
        token=token,
    )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    where = f"project {project_dir}" if project_dir else f"data in {data_dir}"
    typer.echo(f"cryoglass serve: {url}  ({where}, {workers} workers; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
