"""cryoglass serve after SIGKILL: workers die with the server; records and folders agree.

The server runs as ``python -m cryoglass serve --project-dir`` in a subprocess; a class2d job
runs and another waits when the server is killed with SIGKILL.  Its workers must be gone
within seconds (parent-death signal + watchdog), and the restarted server must mark the
interrupted job failed (record and ``RELION_JOB_EXIT_FAILURE``), run the queued job and new
ones.  A second test pins the restart's rule for leftovers: kill only processes it can prove
are its own workers.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
from _serve_helpers import OVER, Server, simulated_project

from cryoglass.serve.jobs import INTERRUPTED, JobStore, recover
from cryoglass.serve.lifeline import NO_PDEATHSIG, process_alive, process_identity


def _class2d(server: Server, iterations: int) -> dict:
    params = {"particles": "Sim/particles.star", "classes": 3, "iterations": iterations}
    return server.post("/api/project/jobs", {"kind": "class2d", "params": params | {"seed": 1}})


def test_sigkill_leaves_no_workers_and_a_consistent_project(tmp_path):
    project = simulated_project(tmp_path / "project")
    store = JobStore(project / ".cryoglass", project)
    log = (tmp_path / "server.log").open("w")
    first = Server(project, log, workers=1)
    try:
        running = _class2d(first, iterations=400)
        queued = _class2d(first, iterations=2)
        job = first.wait(running["id"], until=("running", *OVER))
        assert job["status"] == "running", job
        deadline = time.monotonic() + 60
        while "iteration" not in (job["message"] or "") and time.monotonic() < deadline:
            job = first.get(f"/api/jobs/{running['id']}")  # mid-work: class2d's iterations
            time.sleep(0.1)
        assert job["status"] == "running" and "iteration" in job["message"], job
        workers = [(w["pid"], w["started"]) for w in store.workers()]
        assert len(workers) == 1 and all(process_alive(*w) for w in workers)
        assert first.get(f"/api/jobs/{queued['id']}")["status"] == "queued"

        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        killed_at = time.monotonic()
        while any(process_alive(*w) for w in workers) and time.monotonic() - killed_at < 5:
            time.sleep(0.05)
        gone_after = time.monotonic() - killed_at
        assert not any(process_alive(*w) for w in workers), "a worker outlived the server"
        assert gone_after < 3.0, gone_after
        folder = project / running["out_dir"]
        assert not (folder / "RELION_JOB_EXIT_SUCCESS").exists()
        assert store.get(running["id"])["status"] == "running"  # nobody has looked yet

        second = Server(project, log, workers=1)
        try:
            job = second.get(f"/api/jobs/{running['id']}")
            assert job["status"] == "failed" and job["error"] == INTERRUPTED
            assert job["finished_at"] is not None
            markers = {p.name for p in folder.iterdir() if p.name.startswith("RELION_JOB_EXIT")}
            assert markers == {"RELION_JOB_EXIT_FAILURE"}
            on_disk = {p.name for p in folder.iterdir() if p.is_file()}
            assert set(job["files"]) == on_disk  # the record lists what the folder holds
            done = second.wait(queued["id"])  # the queued job runs under the new server
            assert done["status"] == "done", done["error"]
            assert (project / done["out_dir"] / "RELION_JOB_EXIT_SUCCESS").is_file()
            fresh = _class2d(second, iterations=1)
            assert second.wait(fresh["id"])["status"] == "done"
            assert second.get(f"/api/jobs/{running['id']}")["status"] == "failed"
            mine = store.current_server()
            assert mine["pid"] == second.process.pid
            assert {w["server"] for w in store.workers()} == {mine["token"]}
            assert store.integrity() == "ok"
        finally:
            second.stop()
    finally:
        first.stop()
        log.close()


def test_restart_kills_only_its_own_leftover_workers(tmp_path):
    """Leftovers are killed only when pid, start time and kind prove them the old workers."""
    store = JobStore(tmp_path)
    leftover = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    leftover.start()
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 30
        while process_identity(leftover.pid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        store.begin_server("old", 1, None)
        started = process_identity(leftover.pid)
        store.register_worker("old.1", "old", leftover.pid, started)
        store.register_worker("old.2", "old", unrelated.pid, process_identity(unrelated.pid))
        # a recorded worker whose pid is now some other process: another start time
        store.register_worker("old.3", "old", os.getppid(), 12345.0)
        store.create("a" * 12, "fsc", {})
        store.create("b" * 12, "fsc", {})
        assert store.claim("a" * 12, leftover.pid, "old.1")
        done = recover(store, "new")
        assert done["killed"] == [leftover.pid] and done["failed"] == ["a" * 12]
        assert not process_alive(leftover.pid, started) and not leftover.is_alive()
        assert unrelated.poll() is None  # not a multiprocessing worker: spared
        assert store.get("a" * 12)["error"] == INTERRUPTED
        assert not store.claim("b" * 12, 4242, "old.2")  # a leftover's claim is refused
        store.register_worker("new.1", "new", os.getpid(), process_identity(os.getpid()))
        assert store.claim("b" * 12, os.getpid(), "new.1")
        assert not store.finish("b" * 12, status="done", log="", worker="old.2")
        assert store.finish("b" * 12, status="done", log="", worker="new.1")
        # the unproven leftover stays recorded (and powerless); a pid that is gone is forgotten
        assert {w["id"] for w in store.workers(not_of="new")} == {"old.2"}
    finally:
        unrelated.kill()
        unrelated.wait()
        leftover.kill()
        leftover.join()


def test_a_second_server_on_a_live_servers_folder_is_refused(tmp_path):
    store = JobStore(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.begin_server("other", other.pid, process_identity(other.pid))
        with pytest.raises(RuntimeError, match=f"pid {other.pid}"):
            recover(store, "mine")
        assert store.current_server()["token"] == "other"
    finally:
        other.kill()
        other.wait()


_SERVER_STANDIN = """
import multiprocessing, os, sys, time
from cryoglass.serve.jobs import JobStore, _worker_loop

if __name__ == "__main__":
    data = sys.argv[1]
    JobStore(data)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_worker_loop, daemon=True, args=(
        queue, data, 1, None, ("token", "token.1", os.getpid())))
    worker.start()
    time.sleep(600)
"""


@pytest.mark.parametrize("pdeathsig", [True, False], ids=["pdeathsig", "watchdog-only"])
def test_a_worker_dies_with_its_server(tmp_path, pdeathsig):
    """Both layers alone end an idle worker (blocked on its queue) when the server is killed."""
    script = tmp_path / "server.py"
    script.write_text(_SERVER_STANDIN)
    env = dict(os.environ)
    env.pop(NO_PDEATHSIG, None)
    if not pdeathsig:
        env[NO_PDEATHSIG] = "1"
    server = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data")], env=env)
    try:
        store, deadline = JobStore(tmp_path / "data"), time.monotonic() + 60
        while not store.workers():  # the worker registered itself: it is up
            assert server.poll() is None and time.monotonic() < deadline, "no worker started"
            time.sleep(0.05)
        (worker,) = store.workers()
        assert worker["server"] == "token" and process_alive(worker["pid"], worker["started"])
    finally:
        server.kill()
        server.wait()
    killed_at = time.monotonic()
    while process_alive(worker["pid"], worker["started"]) and time.monotonic() - killed_at < 5:
        time.sleep(0.02)
    assert not process_alive(worker["pid"], worker["started"]), "the worker outlived the server"
    assert time.monotonic() - killed_at < (0.5 if pdeathsig else 2.0)


def test_an_interrupted_upload_job_keeps_no_outputs(tmp_path):
    """A worker stopped after its command wrote its files but before the job was recorded:
    the failed record and the folder agree (no complete-looking result.json is left)."""
    from cryoglass.serve.jobs import fail_jobs

    store = JobStore(tmp_path)
    store.create("feed00000009", "3dfsc", {"cone_deg": 5})
    assert store.claim("feed00000009", os.getpid())
    out = store.out_path(store.get("feed00000009"))
    out.mkdir(parents=True)
    (out / "result.json").write_text("{}\n")
    assert fail_jobs(store, INTERRUPTED) == ["feed00000009"]
    job = store.get("feed00000009")
    assert job["status"] == "failed" and job["error"] == INTERRUPTED
    assert not out.exists() and job["files"] == []
