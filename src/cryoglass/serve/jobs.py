"""Job records in SQLite and the worker processes that run them.

A job is one run of a cryoglass command (``fsc``, ``postprocess``, ``3dfsc``) on uploaded maps.
The worker runs the command's own ``main`` through its typer/click interface with ``--json``,
in a separate process, so a job produces exactly the numbers, figures and files the command
line does, and its ``result`` is the command's ``--json`` output.

Layout of the data folder::

    DATA/jobs.sqlite              one row per job (parameters, status, timings, log, result)
    DATA/jobs/<id>/inputs/        the uploads, under fixed names (half1.mrc, half2.mrc, ...)
    DATA/jobs/<id>/out/           everything the command wrote (maps, JSON, PNG, .cxc)

With a project folder (``cryoglass serve --project-dir DIR``), the database lives in
``DIR/.cryoglass/`` and every job writes its outputs RELION-style to ``DIR/<JobType>/jobNNN/``
(the record's ``out_dir``), with RELION's ``note.txt`` (the command) and
``RELION_JOB_EXIT_SUCCESS`` / ``_FAILURE`` / ``_ABORTED``.  *Project jobs*
(:mod:`~cryoglass.serve.kinds`) run any file-taking command on files of the project, from the
project folder, with the arguments recorded at submission (``params["argv"]``); a job whose
input is another job's output waits for that job (``depends``) and fails if it fails.

Life cycle: ``queued`` → ``running`` → ``done`` | ``failed``, and ``cancelled`` from either
``queued`` (at once) or ``running`` (the worker's watchdog ends the work within a second and
the pool starts a fresh worker).  While running, ``progress`` (0–1) and ``message`` follow the
command's progress bars and lines (:mod:`~cryoglass.serve.progress`), and ``log`` grows.
When the server starts, jobs left ``running`` by a previous server (stopped or killed mid-job)
are marked ``failed`` with the reason :data:`INTERRUPTED` — their partial outputs are not
trusted and a rerun is one click — and jobs still ``queued`` (never started) are queued again.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import queue as queue_module
import re
import secrets
import shutil
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Job kinds and the cryoglass command module each one runs.
KINDS: dict[str, str] = {"fsc": "fsc", "postprocess": "postprocess", "3dfsc": "fsc3d"}
#: Error recorded for a job that was running when the server stopped.
INTERRUPTED = "server stopped while the job was running"
#: Error recorded for a job cancelled by the user.
CANCELLED = "cancelled by the user"
#: Statuses of jobs that are over.
FINISHED = ("done", "failed", "cancelled")
#: RELION's marker files of a finished job folder, by status.
EXIT_MARKERS = {
    "done": "RELION_JOB_EXIT_SUCCESS",
    "failed": "RELION_JOB_EXIT_FAILURE",
    "cancelled": "RELION_JOB_EXIT_ABORTED",
}
#: Seconds between two looks of a worker's watchdog at its job's status.
WATCHDOG_S = 0.5
#: Job ids are 12 lowercase hex digits; nothing else reaches a path.
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
#: Names of downloadable files (the commands' output names).
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Deepest subfolder of a job folder whose files are listed (``overlays/x.png``: 1).
MAX_DEPTH = 3
#: Most files listed for one job.
MAX_FILES = 5000

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
#: Columns added since the first version (added to older databases on open).
_ADDED = {
    "progress": "REAL",
    "message": "TEXT",
    "out_dir": "TEXT",
    "number": "INTEGER",
    "depends": "TEXT NOT NULL DEFAULT '[]'",
    "worker": "TEXT",
}
#: Who ran jobs: each server (one ``current``) and each worker process, with the process's
#: start time (:func:`cryoglass.serve.lifeline.process_identity`) so that a pid is proof.
_PROCESS_TABLES = (
    "CREATE TABLE IF NOT EXISTS servers (token TEXT PRIMARY KEY, pid INTEGER NOT NULL, "
    "started REAL, created_at REAL NOT NULL, current INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, server TEXT NOT NULL, "
    "pid INTEGER NOT NULL, started REAL, created_at REAL NOT NULL)",
)


class JobStore:
    """SQLite job records in ``data_dir/jobs.sqlite``; safe to use from several processes.

    Every method opens its own short connection (WAL journal, 30 s busy timeout), so the web
    process and the workers never share a connection.  ``project_dir``, when given, is the
    project folder the jobs' ``out_dir`` are relative to.
    """

    def __init__(self, data_dir: str | Path, project_dir: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.project_dir = None if project_dir is None else Path(project_dir).resolve()
        self.path = self.data_dir / "jobs.sqlite"
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            for table in _PROCESS_TABLES:
                db.execute(table)
            have = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, declaration in _ADDED.items():
                if column not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {declaration}")
            db.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS jobs_out_dir ON jobs(out_dir) "
                "WHERE out_dir IS NOT NULL"
            )

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

    def out_path(self, job: dict[str, Any]) -> Path:
        """A job's output folder: ``PROJECT/<Type>/jobNNN`` or ``data_dir/jobs/<id>/out``."""
        if job.get("out_dir") and self.project_dir is not None:
            return self.project_dir / job["out_dir"]
        return self.job_dir(job["id"]) / "out"

    def create(
        self,
        job_id: str,
        kind: str,
        params: dict[str, Any] | Callable[[str | None], dict[str, Any]],
        *,
        folder: str | None = None,
        depends: list[str] = (),
        first_number: int = 1,
    ) -> str | None:
        """Insert a queued job; with ``folder``, give it the next ``<folder>/jobNNN``.

        The job number is one more than any in the records and ``first_number - 1`` (the
        largest ``jobNNN`` already in the project), taken in the same transaction as the
        insert.  ``params`` may be a function of the ``out_dir`` (the command's arguments
        name the job folder).  Returns the job's ``out_dir`` (None without ``folder``).
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            out_dir, number = None, None
            if folder is not None:
                (largest,) = db.execute("SELECT MAX(number) FROM jobs").fetchone()
                number = max(first_number, (largest or 0) + 1)
                out_dir = f"{folder}/job{number:03d}"
            if callable(params):
                params = params(out_dir)
            db.execute(
                "INSERT INTO jobs (id, kind, status, params, created_at, out_dir, number, depends)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    kind,
                    "queued",
                    json.dumps(params),
                    time.time(),
                    out_dir,
                    number,
                    json.dumps(list(depends)),
                ),
            )
        return out_dir

    def claim(self, job_id: str, pid: int, worker: str | None = None) -> bool:
        """queued → running for worker ``pid``; False if the job is not queued any more.

        With ``worker`` (a pool worker's id), only while that worker is registered
        (:meth:`register_worker`) under the current server (:meth:`begin_server`): a worker
        left over from a killed server can never take a job.  Check and update are one
        statement, so two workers never both claim a job.
        """
        live = (
            ""
            if worker is None
            else " AND EXISTS (SELECT 1 FROM workers w JOIN servers s "
            "ON s.token = w.server WHERE w.id = ? AND s.current = 1)"
        )
        args = [time.time(), pid, worker, job_id] + ([] if worker is None else [worker])
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET status='running', started_at=?, worker_pid=?, worker=?, "
                f"progress=0.0, message=NULL WHERE id=? AND status='queued'{live}",
                args,
            )
            return cur.rowcount == 1

    def begin_server(self, token: str, pid: int, started: float | None) -> None:
        """Record a starting server as the current one (the previous ones are not)."""
        with self._connect() as db:
            db.execute("UPDATE servers SET current=0")
            db.execute(
                "INSERT INTO servers (token, pid, started, created_at, current) "
                "VALUES (?, ?, ?, ?, 1)",
                (token, pid, started, time.time()),
            )

    def current_server(self) -> dict[str, Any] | None:
        """The current server's record (token, pid, started), or None."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM servers WHERE current=1").fetchone()
        return None if row is None else dict(row)

    def register_worker(self, worker: str, server: str, pid: int, started: float | None) -> None:
        """Record a worker process of ``server`` (its id, pid and start time)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO workers (id, server, pid, started, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (worker, server, pid, started, time.time()),
            )

    def workers(self, *, not_of: str | None = None) -> list[dict[str, Any]]:
        """Recorded worker processes (those of servers other than ``not_of``)."""
        where, args = ("WHERE server != ?", [not_of]) if not_of is not None else ("", [])
        with self._connect() as db:
            return [dict(r) for r in db.execute(f"SELECT * FROM workers {where}", args)]

    def forget_workers(self, ids: list[str]) -> None:
        """Remove worker records (processes known to be gone)."""
        with self._connect() as db:
            db.executemany("DELETE FROM workers WHERE id=?", [(i,) for i in ids])

    def set_progress(
        self,
        job_id: str,
        progress: float | None,
        message: str | None,
        log: str | None = None,
        *,
        worker: str | None = None,
    ) -> None:
        """Record a running (or waiting) job's progress (0–1), message and log so far.

        With ``worker``, only while the job is queued or claimed by that worker.
        """
        mine = "" if worker is None else " AND (status='queued' OR worker=?)"
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET progress=COALESCE(?, progress), message=COALESCE(?, message), "
                f"log=COALESCE(?, log) WHERE id=? AND status IN ('queued', 'running'){mine}",
                [progress, message, log, job_id] + ([] if worker is None else [worker]),
            )

    def finish(
        self,
        job_id: str,
        *,
        status: str,
        log: str,
        result: dict | None = None,
        error: str | None = None,
        files: list[str] = (),
        worker: str | None = None,
    ) -> bool:
        """Record the end of a running job (``done`` or ``failed``); False if it was not running.

        With ``worker``, only if that worker holds the job (never a leftover's late result).
        """
        mine = "" if worker is None else " AND worker=?"
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET status=?, finished_at=?, log=?, result=?, error=?, files=?, "
                "progress=CASE WHEN ?='done' THEN 1.0 ELSE progress END "
                f"WHERE id=? AND status='running'{mine}",
                [
                    status,
                    time.time(),
                    log,
                    None if result is None else json.dumps(result),
                    error,
                    json.dumps(list(files)),
                    status,
                    job_id,
                ]
                + ([] if worker is None else [worker]),
            )
            return cur.rowcount == 1

    def fail_queued(self, job_id: str, reason: str) -> bool:
        """queued → failed with ``reason`` (an input job failed); False if not queued."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET status='failed', error=?, finished_at=? "
                "WHERE id=? AND status='queued'",
                (reason, time.time(), job_id),
            )
            return cur.rowcount == 1

    def cancel(self, job_id: str) -> str | None:
        """queued/running → cancelled; returns the status it had (None if it was over)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None or row["status"] not in ("queued", "running"):
                return None
            db.execute(  # a queued job is over at once; a running one when its worker stops
                "UPDATE jobs SET status='cancelled', error=?, "
                "finished_at=CASE WHEN status='queued' THEN ? ELSE NULL END WHERE id=?",
                (CANCELLED, time.time(), job_id),
            )
            return row["status"]

    def unfinished_cancelled(
        self, *, pid: int | None = None, worker: str | None = None
    ) -> list[str]:
        """Cancelled jobs whose worker has not been cleaned up after (no ``finished_at``)."""
        where, args = "status='cancelled' AND finished_at IS NULL", []
        if pid is not None:
            where, args = where + " AND worker_pid=?", [pid]
        if worker is not None:
            where, args = where + " AND worker=?", [*args, worker]
        with self._connect() as db:
            return [r["id"] for r in db.execute(f"SELECT id FROM jobs WHERE {where}", args)]

    def close_cancelled(self, job_id: str, *, log: str | None, files: list[str]) -> bool:
        """Set ``finished_at`` (and the log and files) of a cancelled job, once."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET finished_at=?, log=COALESCE(?, log), files=? "
                "WHERE id=? AND status='cancelled' AND finished_at IS NULL",
                (time.time(), log, json.dumps(list(files)), job_id),
            )
            return cur.rowcount == 1

    def set_files(self, job_id: str, files: list[str]) -> None:
        """Record the output files of a job."""
        with self._connect() as db:
            db.execute("UPDATE jobs SET files=? WHERE id=?", (json.dumps(list(files)), job_id))

    def delete(self, job_id: str) -> bool:
        """Remove a finished job's record; False if it is not finished."""
        with self._connect() as db:
            cur = db.execute(
                "DELETE FROM jobs WHERE id=? AND status IN ('done', 'failed', 'cancelled') "
                "AND finished_at IS NOT NULL",
                (job_id,),
            )
            return cur.rowcount == 1

    def status(self, job_id: str) -> str | None:
        """A job's status (None for an unknown job)."""
        with self._connect() as db:
            row = db.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else row["status"]

    def by_out_dir(self, out_dir: str) -> dict[str, Any] | None:
        """The job writing to ``out_dir`` (``"CtfFind/job003"``), or None."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id, status, out_dir, kind FROM jobs WHERE out_dir=?", (out_dir,)
            ).fetchone()
        return None if row is None else dict(row)

    def dependents(self, job_id: str) -> list[str]:
        """Queued or running jobs that take an output of ``job_id`` as input."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, depends FROM jobs WHERE status IN ('queued', 'running')"
            ).fetchall()
        return [r["id"] for r in rows if job_id in json.loads(r["depends"] or "[]")]

    def fail_running(
        self, reason: str, *, pid: int | None = None, worker: str | None = None
    ) -> list[str]:
        """Mark running jobs (all, or those of worker ``pid`` / ``worker``) failed with ``reason``.

        Only the records: :func:`fail_jobs` also marks the jobs' folders.
        """
        where, args = "status='running'", []
        if pid is not None:
            where, args = where + " AND worker_pid=?", [pid]
        if worker is not None:
            where, args = where + " AND worker=?", [*args, worker]
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
                "SELECT id, kind, status, params, created_at, started_at, finished_at, error, "
                "progress, message, out_dir, number, depends FROM jobs ORDER BY created_at DESC"
            ).fetchall()
        return [_decode(r) for r in rows]

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` answer (``"ok"`` for a sound database)."""
        with self._connect() as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0]


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    for key in ("params", "result", "files", "depends"):
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


#: Commands whose module in ``cryoglass.cli`` is not their name with ``-`` → ``_``.
_CLI_MODULES = {"3dfsc": "fsc3d"}


def run_cli(command: list[str], args: list[str], stdout_stderr=None) -> tuple[int, str, str]:
    """Run ``cryoglass COMMAND ARGS`` in this process; return (exit code, stdout, stderr).

    ``command`` is the command as typed (``["ctffind"]``, ``["vae", "train"]``); its module's
    typer app or ``main`` parses ``args`` exactly as on the command line.  Output goes to
    ``stdout_stderr`` (two text streams) when given, else to fresh buffers.
    """
    import importlib

    import click
    import typer

    module_name = _CLI_MODULES.get(command[0], command[0].replace("-", "_"))
    if not re.fullmatch(r"[a-z][a-z0-9_]*", module_name):
        raise ValueError(f"unknown command {command[0]!r}")
    module = importlib.import_module(f"cryoglass.cli.{module_name}")
    if isinstance(getattr(module, "app", None), typer.Typer):
        app, args = module.app, [*command[1:], *args]
    else:
        app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        app.command(command[0])(module.main)
    click_command = typer.main.get_command(app)
    own = stdout_stderr is None
    stdout, stderr = (io.StringIO(), io.StringIO()) if own else stdout_stderr
    code = 0
    redirect = (
        (contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr))
        if own
        else (contextlib.nullcontext(), contextlib.nullcontext())
    )
    with redirect[0], redirect[1]:
        try:
            value = click_command.main(
                args=args, prog_name=f"cryoglass {command[0]}", standalone_mode=False
            )
            if isinstance(value, int):  # typer returns the code of a typer.Exit here
                code = value
        except (typer.Exit, click.exceptions.Exit) as stop:
            code = stop.exit_code
        except click.ClickException as error:
            error.show(file=stderr)
            code = error.exit_code
    return code, stdout.getvalue(), stderr.getvalue()


def run_command(kind: str, args: list[str], stdout_stderr=None) -> tuple[int, str, str]:
    """Run ``cryoglass <kind> ARGS`` for an upload job kind (:data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; expected one of {sorted(KINDS)}")
    return run_cli([kind], args, stdout_stderr)


def _error_message(stderr: str, code: int) -> str:
    lines = [ln.removeprefix("cryoglass: error: ") for ln in stderr.strip().splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    return "\n".join(lines[-5:]) if lines else f"the command exited with status {code}"


#: The job this worker process is running (None when idle); guarded by _ACTIVE_LOCK.
_ACTIVE: dict[str, Any] = {"job": None}
_ACTIVE_LOCK = threading.Lock()


def _watchdog(data_dir: str, project_dir: str | None) -> None:
    """Thread of a worker: end the process as soon as its running job is cancelled.

    Holding ``_ACTIVE_LOCK`` while it decides, it can never stop the process once the job's
    code has returned (the main thread clears ``_ACTIVE`` under the same lock), so the
    process is never stopped while it waits on the job queue.
    """
    store = JobStore(data_dir, project_dir)
    while True:
        time.sleep(WATCHDOG_S)
        with _ACTIVE_LOCK:
            job_id = _ACTIVE["job"]
            if job_id is None:
                continue
            with contextlib.suppress(sqlite3.Error):
                if store.status(job_id) == "cancelled":
                    os._exit(3)  # the pool starts a fresh worker and closes the job


def _wait_for_inputs(store: JobStore, job: dict[str, Any]) -> bool:
    """Wait until the jobs this one reads from are done; False if it must not run."""
    waiting_since = None
    while True:
        if store.status(job["id"]) != "queued":
            return False  # cancelled (or taken) meanwhile
        states = {dep: store.status(dep) for dep in job.get("depends") or []}
        bad = {d: s for d, s in states.items() if s not in ("queued", "running", "done")}
        if bad:
            dep, state = next(iter(bad.items()))
            store.fail_queued(job["id"], f"input job {dep} {state or 'was deleted'}")
            return False
        pending = [d for d, s in states.items() if s != "done"]
        if not pending:
            return True
        if waiting_since is None:
            waiting_since = time.monotonic()
            store.set_progress(job["id"], None, f"waiting for job {', '.join(pending)}")
        time.sleep(0.25)


def safe_relative(name: str) -> bool:
    """Whether ``name`` is a downloadable output path: ``a/b.png``, each part a :data:`FILE_NAME`
    (no ``..``, no absolute path, no hidden file), at most :data:`MAX_DEPTH` folders deep."""
    parts = name.split("/")
    return 1 <= len(parts) <= MAX_DEPTH + 1 and all(FILE_NAME.match(p) for p in parts)


def out_files(out: Path) -> list[str]:
    """A job folder's outputs: relative paths of its files, subfolders included, sorted.

    Symbolic links, hidden files and names that are not :func:`safe_relative` are left
    out (never listed, so never downloadable); at most :data:`MAX_FILES`.
    """
    if not out.is_dir() or out.is_symlink():
        return []
    found: list[str] = []
    for folder, dirs, names in os.walk(out):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if FILE_NAME.match(d) and not (here / d).is_symlink())
        for name in sorted(names):
            path = here / name
            relative = path.relative_to(out).as_posix()
            if path.is_file() and not path.is_symlink() and safe_relative(relative):
                found.append(relative)
    return sorted(found)[:MAX_FILES]


def _mark(out: Path, status: str, note: str | None = None) -> None:
    """RELION's exit marker (and ``note.txt``) in a project job's folder."""
    from cryoglass.io import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    for name in EXIT_MARKERS.values():
        (out / name).unlink(missing_ok=True)
    if note is not None:
        write_text_atomic(out / "note.txt", note, overwrite=True)
    (out / EXIT_MARKERS[status]).touch()


def close_cancelled(store: JobStore, job_id: str) -> None:
    """After a running job was cancelled and its worker stopped: mark or remove its outputs.

    A project job's folder keeps what was written, marked ``RELION_JOB_EXIT_ABORTED`` (as
    RELION does); an upload job's partial outputs are removed.
    """
    job = store.get(job_id)
    if job is None or job["status"] != "cancelled" or job["finished_at"] is not None:
        return
    out = store.out_path(job)
    if job.get("out_dir"):
        _mark(out, "cancelled")
        files = out_files(out)
    else:
        shutil.rmtree(out, ignore_errors=True)
        files = []
    log = (job["log"] or "").rstrip() + "\ncancelled by the user; the worker was stopped"
    store.close_cancelled(job_id, log=log.lstrip(), files=files)


def _run_project_job(store: JobStore, job: dict[str, Any], streams) -> tuple[int, str, str]:
    """A project job's command, from the project folder, on the recorded arguments."""
    from cryoglass.serve.kinds import PROJECT_KINDS

    kind = PROJECT_KINDS[job["kind"]]
    argv = job["params"]["argv"]
    if kind.out != "":  # the command writes files into the folder, not the folder itself
        (store.project_dir / job["out_dir"]).mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(store.project_dir)  # paths in STAR files are relative to it, as in RELION
    try:
        return run_cli(argv[: len(kind.command)], argv[len(kind.command) :], streams)
    finally:
        os.chdir(previous)


def _run_upload_job(store: JobStore, job: dict[str, Any], out: Path, log, streams):
    kind, params = job["kind"], job["params"]
    args = command_args(kind, params, store.job_dir(job["id"]) / "inputs", out)
    log.append("$ cryoglass " + " ".join([kind, *args]))
    return run_command(kind, args, streams)


def run_job(
    job_id: str, data_dir: str, project_dir: str | None = None, worker: str | None = None
) -> str:
    """Run one queued job to the end (in a worker process); return its final status.

    ``worker`` is the pool worker's id: the job is claimed with it, and its progress and
    result are recorded only while the job is still this worker's (:meth:`JobStore.claim`).
    """
    from cryoglass.serve.progress import LiveReport, capture

    store = JobStore(data_dir, project_dir)
    job = store.get(job_id)
    if job is None or not _wait_for_inputs(store, job):
        return "skipped"
    if not store.claim(job_id, os.getpid(), worker):
        return "skipped"
    with _ACTIVE_LOCK:
        _ACTIVE["job"] = job_id
    kind, params = job["kind"], job["params"]
    project = bool(job.get("out_dir")) and store.project_dir is not None
    out = store.out_path(job)
    if not project or "argv" not in params:  # upload jobs: the commands write into it
        out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = [time.strftime("%Y-%m-%d %H:%M:%S") + f"  worker pid {os.getpid()}"]
    root = f"{store.job_dir(job_id)}/"  # logs and messages show paths relative to the job folder

    def write(progress, message, text):
        message = message.replace(root, "") if message else message
        store.set_progress(job_id, progress, message, text.replace(root, ""), worker=worker)

    report = LiveReport(write, log)
    result, error, stdout = None, None, ""
    try:
        with capture(report) as streams:
            if project and "argv" in params:
                log.append("$ cryoglass " + " ".join(params["argv"]))
                report.flush()
                code, stdout, stderr = _run_project_job(store, job, streams)
            else:
                code, stdout, stderr = _run_upload_job(store, job, out, log, streams)
        if code == 0:
            result = json.loads(stdout)
            if kind == "fsc" and not project:  # the fsc command writes no JSON file of its own
                from cryoglass.io import write_text_atomic

                write_text_atomic(out / "fsc.json", json.dumps(result, indent=2) + "\n")
        else:  # the command's message, with paths shown relative to the job folder
            error = _error_message(stderr, code).replace(f"{store.job_dir(job_id)}/", "")
    except json.JSONDecodeError:
        error = "the command's --json output could not be read"
        log.append(stdout[-2000:])
    except Exception as exc:  # any crash becomes a failed job with its traceback in the log
        error = f"{type(exc).__name__}: {exc}"
        log.append(traceback.format_exc().rstrip())
    with _ACTIVE_LOCK:  # from here on the watchdog leaves this process alone
        _ACTIVE["job"] = None
    status = "done" if error is None else "failed"
    log.append(f"{status} in {time.perf_counter() - start:.2f} s")
    if project:
        _mark(
            out,
            status,
            "++++ with the following command(s):\ncryoglass "
            + " ".join(params.get("argv", [kind]))
            + "\n++++\n",
        )
    files = out_files(out)
    text = "\n".join(log).replace(root, "")
    if not store.finish(
        job_id, status=status, log=text, result=result, error=error, files=files, worker=worker
    ):
        close_cancelled(store, job_id)  # cancelled while it ran: the outputs are not trusted
        record = store.get(job_id)
        if project and record is not None and record["status"] in ("done", "failed"):
            _mark(out, record["status"])  # not this worker's any more: the record rules
        return store.status(job_id) or "deleted"
    return status


def _worker_loop(
    queue,
    data_dir: str,
    threads: int,
    project_dir: str | None = None,
    identity: tuple[str, str, int] | None = None,
) -> None:
    """Body of a worker process: run job ids from ``queue`` until it yields None.

    ``identity`` is (server token, worker id, server pid): the worker dies with the server
    (:func:`cryoglass.serve.lifeline.die_with_parent`) and registers itself in the store
    before it takes a job.
    """
    worker = None
    if identity is not None:
        from cryoglass.serve.lifeline import die_with_parent, process_identity

        server, worker, server_pid = identity
        die_with_parent(server_pid)
        JobStore(data_dir, project_dir).register_worker(
            worker, server, os.getpid(), process_identity(os.getpid())
        )
    watchdog = threading.Thread(target=_watchdog, args=(data_dir, project_dir), daemon=True)
    watchdog.start()
    while True:
        job_id = queue.get()
        if job_id is None:
            return
        import torch  # on the first job only: an idle worker stays light

        torch.set_num_threads(max(1, threads))
        run_job(job_id, data_dir, project_dir, worker)


def fail_jobs(store: JobStore, reason: str, *, worker: str | None = None) -> list[str]:
    """Mark running jobs (all, or ``worker``'s) failed, and their folders to agree.

    A project job's folder gets ``RELION_JOB_EXIT_FAILURE`` (what was written stays, as in
    RELION) and the record lists the files it holds.  An upload job's outputs are removed
    (a worker stopped between writing its last file and recording the job would otherwise
    leave a complete-looking result beside a failed record).
    """
    ids = store.fail_running(reason, worker=worker)
    for job_id in ids:
        job = store.get(job_id)
        if job is None:
            continue
        out = store.out_path(job)
        if job.get("out_dir") and store.project_dir is not None:
            _mark(out, "failed")
            store.set_files(job_id, out_files(out))
        else:
            shutil.rmtree(out, ignore_errors=True)
            store.set_files(job_id, [])
    return ids


def reconcile_folders(store: JobStore) -> list[str]:
    """Give every finished project job's folder the exit marker of its record.

    A server killed between a job's marker and its record, or a worker killed mid-job,
    leaves a folder that says otherwise; the record rules.  Returns the folders fixed.
    """
    if store.project_dir is None:
        return []
    fixed = []
    for job in store.list():
        if job["status"] not in FINISHED or job["finished_at"] is None or not job["out_dir"]:
            continue
        out = store.out_path(job)
        if out.is_dir() and not (out / EXIT_MARKERS[job["status"]]).is_file():
            _mark(out, job["status"])
            fixed.append(job["out_dir"])
    return fixed


def other_server(store: JobStore) -> int | None:
    """The pid of another live server process that is the store's current one, or None."""
    from cryoglass.serve.lifeline import process_alive

    previous = store.current_server()
    if previous is None or previous["pid"] == os.getpid():
        return None
    return previous["pid"] if process_alive(previous["pid"], previous["started"]) else None


def recover(store: JobStore, token: str) -> dict[str, Any]:
    """A starting server takes over the store from the one before it (stopped or killed).

    1. It becomes the current server: a worker left by the previous one can claim no job.
    2. It kills the previous server's workers that it can prove are those processes (pid,
       start time, a multiprocessing child: :func:`~cryoglass.serve.lifeline.kill_if_ours`)
       and waits for them to be gone; it never touches an unrelated process.
    3. Jobs still ``running`` are marked failed (:data:`INTERRUPTED`), their folders
       ``RELION_JOB_EXIT_FAILURE``; cancelled jobs left open are closed (``_ABORTED``); every
       finished job's folder gets its record's marker (:func:`reconcile_folders`).

    Raises RuntimeError when another live server process is the current one.
    Returns what it did: ``{"killed": [pids], "failed": [ids], "fixed": [folders]}``.
    """
    from cryoglass.serve.lifeline import kill_if_ours, process_alive, process_identity

    other = other_server(store)
    if other is not None:
        raise RuntimeError(
            f"another cryoglass serve (pid {other}) is running on {store.data_dir}; stop it first"
        )
    store.begin_server(token, os.getpid(), process_identity(os.getpid()))
    leftovers = store.workers(not_of=token)
    killed = [w["pid"] for w in leftovers if kill_if_ours(w["pid"], w["started"])]
    failed = fail_jobs(store, INTERRUPTED)
    for job_id in store.unfinished_cancelled():
        close_cancelled(store, job_id)
    fixed = reconcile_folders(store)
    store.forget_workers([w["id"] for w in leftovers if not process_alive(w["pid"], w["started"])])
    return {"killed": killed, "failed": failed, "fixed": fixed}


class WorkerPool:
    """``workers`` worker processes (spawned) fed job ids through a queue.

    A watcher thread replaces a worker that dies (crash, out of memory, killed) and marks
    the job it was running failed — or, when the worker stopped because its job was
    cancelled, closes that job (:func:`close_cancelled`).  :meth:`stop` terminates the
    workers; jobs they were running are marked failed with :data:`INTERRUPTED`.

    Each pool is a *server* in the store (a random token); its workers die with the process
    that started them (:mod:`cryoglass.serve.lifeline`), register under that token and claim
    jobs with their own id; :meth:`start` first takes over from the previous server
    (:func:`recover`).
    """

    def __init__(self, store: JobStore, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.store = store
        self.workers = workers
        self.token = secrets.token_hex(8)
        self.recovered: dict[str, Any] = {}
        self._ctx = multiprocessing.get_context("spawn")
        self._queue = self._ctx.Queue()
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._processes: list = []
        self._ids: list[str] = []
        self._count = 0
        self._lock = threading.Lock()  # no spawn once stop() has begun
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self):
        project = None if self.store.project_dir is None else str(self.store.project_dir)
        self._count += 1
        worker = f"{self.token}.{self._count}"
        process = self._ctx.Process(
            target=_worker_loop,
            args=(
                self._queue,
                str(self.store.data_dir),
                self._threads,
                project,
                (self.token, worker, os.getpid()),
            ),
            daemon=True,
            name="cryoglass-serve-worker",
        )
        process.start()
        return process, worker

    def start(self) -> None:
        """Take over from the previous server (:func:`recover`), start the workers and queue
        every job still queued in the store."""
        self.recovered = recover(self.store, self.token)
        with self._lock:
            spawned = [self._spawn() for _ in range(self.workers)]
            self._processes = [p for p, _ in spawned]
            self._ids = [w for _, w in spawned]
        for job_id in self.store.queued_ids():
            self.submit(job_id)
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def submit(self, job_id: str) -> None:
        """Queue a job (already recorded as queued in the store)."""
        self._queue.put(job_id)

    def busy(self) -> int:
        """Number of worker processes alive."""
        return sum(p.is_alive() for p in self._processes)

    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [p.pid for p in self._processes]

    def _watch(self) -> None:
        while not self._stopping.wait(0.25):
            for i, process in enumerate(self._processes):
                if process.is_alive():
                    continue
                with self._lock:
                    if self._stopping.is_set():
                        return
                    worker = self._ids[i]
                    fail_jobs(
                        self.store,
                        f"worker process died (exit code {process.exitcode})",
                        worker=worker,
                    )
                    for job_id in self.store.unfinished_cancelled(worker=worker):
                        close_cancelled(self.store, job_id)
                    self.store.forget_workers([worker])
                    self._processes[i], self._ids[i] = self._spawn()

    def cancel(self, job_id: str) -> str | None:
        """Cancel a job: a queued one at once, a running one within a second.

        Returns the status the job had (None if it was over).  A running job's worker sees
        the new status (its watchdog, every :data:`WATCHDOG_S` s) and stops; the watcher then
        starts a fresh worker and closes the job (:func:`close_cancelled`).
        """
        return self.store.cancel(job_id)

    def stop(self) -> None:
        """Terminate the workers; running jobs are marked failed (:data:`INTERRUPTED`)."""
        with self._lock:  # the watcher spawns no worker from here on
            self._stopping.set()
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
        for worker in self._ids:
            fail_jobs(self.store, INTERRUPTED, worker=worker)
            for job_id in self.store.unfinished_cancelled(worker=worker):
                close_cancelled(self.store, job_id)
        self.store.forget_workers(self._ids)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
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
