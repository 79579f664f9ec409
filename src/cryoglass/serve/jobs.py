"""Job records in SQLite and the worker processes that run them.

A job is one run of a cryoglass command (``fsc``, ``postprocess``, ``3dfsc``) on uploaded maps.
The worker runs the command's own ``main`` through its typer/click interface with ``--json``,
in a separate process, so a job produces exactly the numbers, figures and files the command
line does, and its ``result`` is the command's ``--json`` output.

Layout of the data folder::

    DATA/jobs.sqlite              one row per job (parameters, status, timings, log, result)
    DATA/jobs/<id>/inputs/        the uploads, under fixed names (half1.mrc, half2.mrc, ...)
    DATA/jobs/<id>/out/           everything the command wrote (maps, JSON, PNG, .cxc)

Life cycle: ``queued`` → ``running`` → ``done`` | ``failed``.  When the server starts, jobs
left ``running`` by a previous server (stopped or killed mid-job) are marked ``failed`` with
the reason :data:`INTERRUPTED` — their partial outputs are not trusted and a rerun is one
click — and jobs still ``queued`` (never started) are queued again.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import queue as queue_module
import re
import shutil
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Job kinds and the cryoglass command module each one runs.
KINDS: dict[str, str] = {"fsc": "fsc", "postprocess": "postprocess", "3dfsc": "fsc3d"}
#: Error recorded for a job that was running when the server stopped.
INTERRUPTED = "server stopped while the job was running"
#: Job ids are 12 lowercase hex digits; nothing else reaches a path.
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
#: Names of downloadable files (the commands' output names).
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    worker_pid INTEGER,
    error TEXT,
    log TEXT NOT NULL DEFAULT '',
    result TEXT,
    files TEXT NOT NULL DEFAULT '[]'
)
"""


class JobStore:
    """SQLite job records in ``data_dir/jobs.sqlite``; safe to use from several processes.

    Every method opens its own short connection (WAL journal, 30 s busy timeout), so the web
    process and the workers never share a connection.
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "jobs.sqlite"
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    def job_dir(self, job_id: str) -> Path:
        """``data_dir/jobs/<id>`` for a well-formed id (ValueError otherwise)."""
        if not JOB_ID.match(job_id):
            raise ValueError(f"malformed job id {job_id!r}")
        return self.data_dir / "jobs" / job_id

    def create(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        """Insert a queued job."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, kind, status, params, created_at) VALUES (?, ?, ?, ?, ?)",
                (job_id, kind, "queued", json.dumps(params), time.time()),
            )

    def claim(self, job_id: str, pid: int) -> bool:
        """queued → running for worker ``pid``; False if the job is not queued any more."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET status='running', started_at=?, worker_pid=? "
                "WHERE id=? AND status='queued'",
                (time.time(), pid, job_id),
            )
            return cur.rowcount == 1

    def finish(
        self,
        job_id: str,
        *,
        status: str,
        log: str,
        result: dict | None = None,
        error: str | None = None,
        files: list[str] = (),
    ) -> None:
        """Record the end of a running job (``done`` or ``failed``)."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status=?, finished_at=?, log=?, result=?, error=?, files=? "
                "WHERE id=? AND status='running'",
                (
                    status,
                    time.time(),
                    log,
                    None if result is None else json.dumps(result),
                    error,
                    json.dumps(list(files)),
                    job_id,
                ),
            )

    def fail_running(self, reason: str, *, pid: int | None = None) -> list[str]:
        """Mark running jobs (all, or those of worker ``pid``) failed with ``reason``."""
        where, args = "status='running'", []
        if pid is not None:
            where, args = where + " AND worker_pid=?", [pid]
        with self._connect() as db:
            ids = [r["id"] for r in db.execute(f"SELECT id FROM jobs WHERE {where}", args)]
            db.execute(
                f"UPDATE jobs SET status='failed', error=?, finished_at=? WHERE {where}",
                [reason, time.time(), *args],
            )
        return ids

    def queued_ids(self) -> list[str]:
        """Ids of queued jobs, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE status='queued' ORDER BY created_at")
            return [r["id"] for r in rows]

    def get(self, job_id: str) -> dict[str, Any] | None:
        """One job as a dict (JSON fields decoded), or None."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _decode(row)

    def list(self) -> list[dict[str, Any]]:
        """All jobs, newest first, without results and logs."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, kind, status, params, created_at, started_at, finished_at, error "
                "FROM jobs ORDER BY created_at DESC"
            ).fetchall()
        return [_decode(r) for r in rows]


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    for key in ("params", "result", "files"):
        if key in job and job[key] is not None:
            job[key] = json.loads(job[key])
    return job


# --------------------------------------------------------------------------- worker side


def command_args(kind: str, params: dict[str, Any], inputs: Path, out: Path) -> list[str]:
    """The command-line arguments of the job (as typed after ``cryoglass <kind>``)."""
    args = [str(inputs / "half1.mrc"), str(inputs / "half2.mrc"), "--json"]
    if params.get("apix") is not None:
        args += ["--apix", repr(float(params["apix"]))]
    if params.get("mask"):
        args += ["--mask", str(inputs / "mask.mrc")]
    if kind == "fsc":
        args += ["--plot", str(out / "fsc.png"), "--seed", str(int(params.get("seed", 0)))]
    elif kind == "postprocess":
        args += ["--out", str(out), "--bfactor", str(params.get("bfactor", "auto"))]
        args += ["--seed", str(int(params.get("seed", 0)))]
        if params.get("auto_mask"):
            args.append("--auto-mask")
    elif kind == "3dfsc":
        args += ["--out", str(out), "--cone-deg", repr(float(params.get("cone_deg", 20.0)))]
        if params.get("full"):
            args += ["--full", str(inputs / "full.mrc")]
    else:
        raise ValueError(f"unknown job kind {kind!r}; expected one of {sorted(KINDS)}")
    return args


def run_command(kind: str, args: list[str]) -> tuple[int, str, str]:
    """Run ``cryoglass <kind> ARGS`` in this process; return (exit code, stdout, stderr)."""
    import importlib

    import click
    import typer

    module = importlib.import_module(f"cryoglass.cli.{KINDS[kind]}")
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(kind)(module.main)
    command = typer.main.get_command(app)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            value = command.main(args=args, prog_name=f"cryoglass {kind}", standalone_mode=False)
            if isinstance(value, int):  # typer returns the code of a typer.Exit here
                code = value
        except (typer.Exit, click.exceptions.Exit) as stop:
            code = stop.exit_code
        except click.ClickException as error:
            error.show(file=stderr)
            code = error.exit_code
    return code, stdout.getvalue(), stderr.getvalue()


def _error_message(stderr: str, code: int) -> str:
    lines = [ln.removeprefix("cryoglass: error: ") for ln in stderr.strip().splitlines()]
    return "\n".join(lines) if lines else f"the command exited with status {code}"


def run_job(job_id: str, data_dir: str) -> str:
    """Run one queued job to the end (in a worker process); return its final status."""
    store = JobStore(data_dir)
    if not store.claim(job_id, os.getpid()):
        return "skipped"
    job = store.get(job_id)
    kind, params = job["kind"], job["params"]
    inputs, out = store.job_dir(job_id) / "inputs", store.job_dir(job_id) / "out"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = [time.strftime("%Y-%m-%d %H:%M:%S") + f"  worker pid {os.getpid()}"]
    result, error = None, None
    try:
        args = command_args(kind, params, inputs, out)
        root = f"{store.job_dir(job_id)}/"  # the log shows paths relative to the job folder
        log.append(("$ cryoglass " + " ".join([kind, *args])).replace(root, ""))
        code, stdout, stderr = run_command(kind, args)
        if stderr.strip():
            log.append(stderr.rstrip().replace(root, ""))
        if code == 0:
            result = json.loads(stdout)
            if kind == "fsc":  # the fsc command writes no JSON file of its own
                from cryoglass.io import write_text_atomic

                write_text_atomic(out / "fsc.json", json.dumps(result, indent=2) + "\n")
        else:  # the command's message, with paths shown relative to the job folder
            error = _error_message(stderr, code).replace(f"{store.job_dir(job_id)}/", "")
    except Exception as exc:  # any crash becomes a failed job with its traceback in the log
        error = f"{type(exc).__name__}: {exc}"
        log.append(traceback.format_exc().rstrip())
    log.append(f"{'done' if error is None else 'failed'} in {time.perf_counter() - start:.2f} s")
    files = sorted(p.name for p in out.iterdir() if p.is_file() and FILE_NAME.match(p.name))
    status = "done" if error is None else "failed"
    store.finish(job_id, status=status, log="\n".join(log), result=result, error=error, files=files)
    return status


def _worker_loop(queue, data_dir: str, threads: int) -> None:
    """Body of a worker process: run job ids from ``queue`` until it yields None."""
    while True:
        job_id = queue.get()
        if job_id is None:
            return
        import torch  # on the first job only: an idle worker stays light

        torch.set_num_threads(max(1, threads))
        run_job(job_id, data_dir)


class WorkerPool:
    """``workers`` worker processes (spawned) fed job ids through a queue.

    A watcher thread replaces a worker that dies (crash, out of memory, killed) and marks
    the job it was running failed.  :meth:`stop` terminates the workers; jobs they were
    running are marked failed with :data:`INTERRUPTED`.
    """

    def __init__(self, store: JobStore, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.store = store
        self.workers = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._queue = self._ctx.Queue()
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._processes: list = []
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self):
        process = self._ctx.Process(
            target=_worker_loop,
            args=(self._queue, str(self.store.data_dir), self._threads),
            daemon=True,
            name="cryoglass-serve-worker",
        )
        process.start()
        return process

    def start(self) -> None:
        """Start the workers and queue every job still queued in the store."""
        self._processes = [self._spawn() for _ in range(self.workers)]
        for job_id in self.store.queued_ids():
            self.submit(job_id)
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def submit(self, job_id: str) -> None:
        """Queue a job (already recorded as queued in the store)."""
        self._queue.put(job_id)

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for i, process in enumerate(self._processes):
                if not process.is_alive() and not self._stopping.is_set():
                    self.store.fail_running(
                        f"worker process died (exit code {process.exitcode})", pid=process.pid
                    )
                    self._processes[i] = self._spawn()

    def stop(self) -> None:
        """Terminate the workers; running jobs are marked failed (:data:`INTERRUPTED`)."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with contextlib.suppress(queue_module.Empty, OSError):
            while True:  # jobs not started stay queued in the store for the next server
                self._queue.get(timeout=0.05)
        for _ in self._processes:  # idle workers exit cleanly on a sentinel...
            self._queue.put(None)
        deadline = time.monotonic() + 1.0
        for process in self._processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in self._processes:  # ...busy ones are stopped mid-job
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(timeout=10)
        for process in self._processes:
            self.store.fail_running(INTERRUPTED, pid=process.pid)
        self._queue.close()
        self._queue.join_thread()
        self._queue = None  # frees its semaphores now (not at interpreter exit)


def remove_job_dir(store: JobStore, job_id: str) -> None:
    """Delete a job's folder (used when an upload is rejected before the job exists)."""
    shutil.rmtree(store.job_dir(job_id), ignore_errors=True)


def validate_inputs(
    kind: str,
    paths: dict[str, Path],
    *,
    apix: float | None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check uploaded maps before a job is queued; ValueError naming the field otherwise.

    ``paths`` maps field names (half1, half2, and optionally full, mask) to saved uploads;
    ``labels`` the same fields to the names shown in messages (the uploaded file names) in
    place of the server's paths.
    Every file must read as a 3D MRC map (:func:`cryoglass.io.read_mrc`); the halves, mask and
    full map must share one box; the mask must lie in [0, 1]; a pixel size must be known
    (the ``apix`` field or the headers) and the headers must agree.  3DFSC needs cubic maps.
    Returns ``{"shape": [...], "pixel_size_angstrom": ...}``.
    """
    from cryoglass.io import read_mrc

    shapes, sizes = {}, {}
    for field, path in paths.items():
        try:
            data, info = read_mrc(path)
        except Exception as error:  # mrcfile raises ValueError, OSError, struct errors...
            shown = str(error).replace(str(path), (labels or {}).get(field) or path.name)
            raise ValueError(f"{field}: not a readable MRC map ({shown})") from None
        if data.ndim != 3 or info.is_stack:
            raise ValueError(f"{field}: expected a 3D map, got shape {tuple(data.shape)}")
        if field == "mask":
            lo, hi = float(data.min()), float(data.max())
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise ValueError(f"mask: values must lie in [0, 1], found [{lo:g}, {hi:g}]")
        shapes[field], sizes[field] = tuple(data.shape), info.pixel_size_angstrom
    for field, shape in shapes.items():
        if shape != shapes["half1"]:
            raise ValueError(
                f"{field} has shape {shape} but half1 has {shapes['half1']}: "
                "all maps must share one box"
            )
    if kind == "3dfsc" and len(set(shapes["half1"])) != 1:
        raise ValueError(f"3dfsc needs cubic maps, got shape {shapes['half1']}")
    h1, h2 = sizes["half1"], sizes["half2"]
    if h1 is not None and h2 is not None and abs(h1 - h2) > 1e-3 * h1:
        raise ValueError(f"half1 and half2 have different pixel sizes: {h1:g} Å vs {h2:g} Å")
    pixel = apix if apix is not None else (h1 or h2)
    if pixel is None:
        raise ValueError("the half maps' headers have no pixel size: give apix [Å]")
    return {"shape": list(shapes["half1"]), "pixel_size_angstrom": float(pixel)}
