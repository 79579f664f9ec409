"""`cryoglass serve`: a local web app for FSC / postprocess / 3DFSC jobs and the explorers."""

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
    data_dir: Path = typer.Option(
        Path("cryoglass-serve"),
        "--data-dir",
        help="Folder of the job database (jobs.sqlite), uploads and results (created).",
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
    """Serve a local web app: FSC, postprocess and 3DFSC jobs; CTF, blur and slice explorers.

    Jobs (uploads of half maps + optional mask / full map) run the same code as
    `cryoglass fsc`, `postprocess` and `3dfsc` in worker processes; records live in
    DATA_DIR/jobs.sqlite, so a restarted server lists every job (jobs that were running when
    it stopped are marked failed: "server stopped while the job was running"; queued jobs
    are queued again).  JSON API: POST /api/jobs, GET /api/jobs, GET /api/jobs/{id}; the
    OpenAPI description is at /docs.  Ctrl-C stops the server.

    Examples:

    \b
      cryoglass serve
      cryoglass serve --port 9000 --data-dir ~/cryoglass-jobs --workers 4
      cryoglass serve --host 0.0.0.0 --token s3cret     # reachable from other machines
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
    data_dir = data_dir.expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        fail(f"--data-dir {data_dir} exists and is not a folder")
    (data_dir / "tmp").mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(data_dir / "tmp")  # spooled uploads stay inside the data folder

    import uvicorn

    from cryoglass.serve import create_app

    app = create_app(
        data_dir, workers=workers, max_upload_bytes=int(max_upload_mb * 1024**2), token=token
    )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    typer.echo(f"cryoglass serve: {url}  (data in {data_dir}, {workers} workers; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
