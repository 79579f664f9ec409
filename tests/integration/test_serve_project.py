"""cryoglass serve --project-dir: RELION job folders, chained jobs, progress, cancel, delete."""

from __future__ import annotations

import io
import json
import time
import warnings
import zipfile

import pytest
import starfile
import torch
from typer.testing import CliRunner

from cryoglass.cli.main import app as cli_app
from cryoglass.io import write_mrc
from cryoglass.serve import create_app
from cryoglass.serve.jobs import JobStore
from cryoglass.serve.kinds import PROJECT_KINDS, build_argv
from cryoglass.serve.lifeline import process_alive
from cryoglass.serve.progress import LiveReport, capture
from cryoglass.serve.project import Project, ProjectPathError
from cryoglass.simulate import gaussian_map

with warnings.catch_warnings():  # starlette warns at import that httpx2 is preferred
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

OVER = ("done", "failed", "cancelled")


def _wait(client, job_id: str, *, until=OVER, timeout_s: float = 120.0) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")


def _run(client, kind: str, **params):
    return client.post("/api/project/jobs", json={"kind": kind, "params": params})


def _maps(folder, seed: int, box: int = 24) -> None:
    g = torch.Generator().manual_seed(seed)
    truth = gaussian_map(torch.randn(40, 3, generator=g, dtype=torch.float64) * 3.0,
                         shape=(box,) * 3, pixel_size_angstrom=1.5, sigma_angstrom=1.2)  # fmt: skip
    for name in ("half1", "half2"):
        noisy = truth + 0.5 * float(truth.std()) * torch.randn(truth.shape, generator=g)
        write_mrc(folder / f"{name}.mrc", noisy.float(), pixel_size_angstrom=1.5)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder: 2 simulated micrographs (Import/), two half maps (Maps/), a secret."""
    root = tmp_path_factory.mktemp("project")
    g = torch.Generator().manual_seed(5)
    volume = gaussian_map((torch.rand(12, 3, generator=g) - 0.5) * 18, shape=(32,) * 3,
                          pixel_size_angstrom=2.0, sigma_angstrom=3.0)  # fmt: skip
    write_mrc(root / "potential.mrc", 25 * volume / volume.max(), pixel_size_angstrom=2.0)
    args = (
        "simulate-movies", "--volume", root / "potential.mrc", "--n-micrographs", 2, "--size",
        384, "--no-movies", "--crowding", 0.25, "--frames", 5, "--dose-per-frame", 8,
        "--defocus-min", 10000, "--defocus-max", 25000, "--out", root / "Import", "--seed", 2,
    )  # fmt: skip
    result = CliRunner().invoke(cli_app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    (root / "Maps").mkdir()
    _maps(root / "Maps", seed=3)
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.mrc").write_text("not yours")
    (root / "Maps" / "link.mrc").symlink_to(outside / "secret.mrc")
    return root


@pytest.fixture(scope="module")
def served(project):
    with TestClient(create_app(project_dir=project, workers=2)) as client:
        yield client


def test_project_paths_stay_inside(project):
    gate = Project(project)
    assert gate.resolve("Maps/../Maps/half1.mrc") == "Maps/half1.mrc"
    for bad, reason in [
        ("/etc/passwd", "relative to the project"),
        ("../outside/secret.mrc", "outside the project"),
        ("Maps/link.mrc", "outside the project"),  # a symbolic link leading out
        (".cryoglass/jobs.sqlite", "server's own folder"),
        ("Maps/none.mrc", "not found"),
        ("~/x", "relative to the project"),
    ]:
        with pytest.raises(ProjectPathError, match=reason):
            gate.resolve(bad)
    listed = gate.files()
    assert "Maps/half1.mrc" in listed and "Maps/link.mrc" not in listed
    assert not any(name.startswith(".cryoglass") for name in listed)


def test_build_argv_checks_each_value():
    kind = PROJECT_KINDS["class2d"]
    argv = build_argv(kind, {"particles": "p.star", "classes": "4", "ctf": False},
                      lambda n, v: v, "Class2D/job007")  # fmt: skip
    assert argv == ["class2d", "p.star", "--classes", "4", "--no-ctf",
                    "--out", "Class2D/job007", "--json"]  # fmt: skip
    for values, message in [
        ({"particles": "p.star"}, "classes: required"),
        ({"particles": "p.star", "classes": "four"}, "classes: expected int"),
        ({"particles": "p.star", "classes": 2.5}, "classes: expected int"),
        ({"particles": "p.star", "classes": 2, "shell": "rm -rf"}, "unknown option 'shell'"),
    ]:
        with pytest.raises(ValueError, match=message):
            build_argv(kind, values, lambda n, v: v, "Class2D/job007")
    with pytest.raises(ValueError, match="symmetry: expected str"):
        build_argv(PROJECT_KINDS["refine3d"], {"particles": "p", "reference": "r",
                   "symmetry": "--help"}, lambda n, v: v, "R/job1")  # fmt: skip
    sharpen = build_argv(PROJECT_KINDS["postprocess"], {"half1": "a", "half2": "b",
                         "bfactor": "-50"}, lambda n, v: v, "PostProcess/job3")  # fmt: skip
    assert "--bfactor=-50" in sharpen  # a negative number is a value, never an option
    with pytest.raises(ValueError, match="bfactor: expected str"):
        build_argv(PROJECT_KINDS["postprocess"], {"half1": "a", "half2": "b",
                   "bfactor": "-h"}, lambda n, v: v, "P/job3")  # fmt: skip
    reconstruct = build_argv(PROJECT_KINDS["reconstruct"], {"particles": "p.star"},
                             lambda n, v: v, "Reconstruct/job002")  # fmt: skip
    assert reconstruct[-3:] == ["--out", "Reconstruct/job002/reconstruction.mrc", "--json"]


def test_every_kind_offers_only_its_commands_options():
    import typer

    from cryoglass.cli.main import app

    root = typer.main.get_command(app)
    for kind in PROJECT_KINDS.values():
        command = root
        for part in kind.command:
            command = command.commands[part]
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        flags = {f for p in kind.params for f in (p.flag, p.off) if f} | {"--json"}
        flags |= {f for f, _ in kind.out_options} | ({"--out"} if kind.out is not None else set())
        assert flags <= options, (kind.name, flags - options)
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        assert len(arguments) == sum(p.flag is None for p in kind.params), kind.name
    analyze = build_argv(PROJECT_KINDS["vae_analyze"], {"training": "VAE/job005", "kmeans": 3},
                         lambda n, v: v, "VaeAnalyze/job006")  # fmt: skip
    assert analyze == ["vae", "analyze", "VAE/job005", "--kmeans", "3",
                       "--out", "VaeAnalyze/job006", "--json"]  # fmt: skip


def test_progress_comes_from_the_commands_bars_and_lines():
    written = []
    report = LiveReport(lambda p, m, log: written.append((p, m, log)), ["start"])
    with capture(report) as (stdout, stderr):
        import sys

        from rich.progress import Progress

        with Progress(transient=True) as bar:
            for k in (1, 2):
                task = bar.add_task(f"iteration {k}/2", total=4)
                for _ in range(4):
                    bar.advance(task)
                    time.sleep(0.13)
        print('{"ok": 1}')
        sys.stderr.write("iteration 2: done\n")
    fractions = [p for p, _, _ in written if p is not None]
    assert fractions == sorted(fractions) and any(0.0 < f < 1.0 for f in fractions)
    assert len(written) <= 1 + 8 * 0.13 / 0.5 + 3  # at most one write per interval (and the end)
    assert fractions[-1] == 1.0
    assert written[-1][1] == "iteration 2: done" and written[-1][2].endswith("iteration 2: done")
    assert json.loads(stdout.getvalue()) == {"ok": 1}
    from rich.progress import Progress as Restored

    assert Restored.__name__ == "Progress"  # rich is left as it was


def test_chained_preprocessing_writes_relion_job_folders(served, project):
    ctf = _run(served, "ctffind", micrographs="Import/micrographs.star", tile_size=128, max_res=6)
    assert ctf.status_code == 201, ctf.text
    folder = ctf.json()["out_dir"]
    assert folder.startswith("CtfFind/job")
    pick = _run(served, "pick", micrographs=f"{folder}/micrographs_ctf.star", diameter=40)
    assert pick.status_code == 201, pick.text
    extract = _run(served, "extract", micrographs=f"job:{ctf.json()['id']}/micrographs_ctf.star",
                   coords=pick.json()["out_dir"], box=32)  # fmt: skip
    assert extract.status_code == 201, extract.text
    assert served.get(f"/api/jobs/{extract.json()['id']}").json()["depends"] == sorted(
        [ctf.json()["id"], pick.json()["id"]]
    )
    seen = []
    for answer in (ctf, pick, extract):
        job = _wait(served, answer.json()["id"])
        assert job["status"] == "done", (job["error"], job["log"])
        assert job["progress"] == 1.0
        seen.append(job)
        out = project / job["out_dir"]
        assert (out / "RELION_JOB_EXIT_SUCCESS").is_file()
        assert "cryoglass " + " ".join(job["params"]["argv"]) in (out / "note.txt").read_text()
        assert set(job["files"]) >= {"note.txt", "RELION_JOB_EXIT_SUCCESS"}
    numbers = [int(j["out_dir"].rsplit("job", 1)[1]) for j in seen]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert seen[0]["result"]["micrographs"] == 2
    particles = starfile.read(project / seen[2]["out_dir"] / "particles.star")["particles"]
    assert len(particles) == seen[2]["result"]["particles"] > 0
    stacks = {name.split("@")[1] for name in particles["rlnImageName"]}
    assert all((project / seen[2]["out_dir"] / stack).is_file() for stack in stacks)
    page = served.get(f"/jobs/{seen[0]['id']}").text
    assert "mic_0001_ctf.png" in page and seen[0]["out_dir"] in page
    png = served.get(f"/api/jobs/{seen[0]['id']}/files/mic_0001_ctf.png")
    assert png.content[:4] == b"\x89PNG"
    pick = seen[1]  # pick overlays live in a subfolder: listed, shown and downloadable
    assert {"overlays/mic_0001_picks.png", "overlays/mic_0002_picks.png"} <= set(pick["files"])
    assert (
        f'src="/api/jobs/{pick["id"]}/files/overlays/mic_0001_picks.png"'
        in served.get(f"/jobs/{pick['id']}").text
    )
    overlay = served.get(f"/api/jobs/{pick['id']}/files/overlays/mic_0001_picks.png")
    assert overlay.status_code == 200 and overlay.content[:4] == b"\x89PNG"
    archive = served.get(f"/api/jobs/{pick['id']}/archive.zip")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as handle:
        assert set(handle.namelist()) == {f"{pick['id']}/{name}" for name in pick["files"]}


def test_bad_project_jobs_are_refused_with_the_reason(served, project):
    before = {j["id"] for j in served.get("/api/jobs").json()}
    cases = [
        (("fsc", {"half1": "../x.mrc", "half2": "Maps/half2.mrc"}), 400, "outside the project"),
        (("fsc", {"half1": "Maps/link.mrc", "half2": "Maps/half2.mrc"}), 400, "outside"),
        (("fsc", {"half1": "/etc/passwd", "half2": "Maps/half2.mrc"}), 400, "relative"),
        (("fsc", {"half1": "Maps/nope.mrc", "half2": "Maps/half2.mrc"}), 400, "not found"),
        (("fsc", {"half1": "Maps/half1.mrc"}), 400, "half2: required"),
        (("ctf", {}), 400, "kind must be one of"),
        (("fsc", {"half1": "Maps/half1.mrc", "half2": "Maps/half2.mrc", "x": 1}), 400, "unknown"),
        (
            ("fsc", {"half1": "job:000000000000/a.mrc", "half2": "Maps/half2.mrc"}),
            404,
            "no project job",
        ),
    ]
    for (kind, params), status, message in cases:
        answer = _run(served, kind, **params)
        assert answer.status_code == status and message in answer.json()["detail"], answer.text
        assert str(project) not in answer.text  # no server paths in the answers
    assert {j["id"] for j in served.get("/api/jobs").json()} == before
    # a chained input from a failed job
    failed = _run(served, "fsc", half1="Maps/half1.mrc", half2="potential.mrc")  # other box
    job = _wait(served, failed.json()["id"])
    assert (
        job["status"] == "failed"
        and (project / job["out_dir"] / "RELION_JOB_EXIT_FAILURE").is_file()
    )
    chained = _run(
        served, "postprocess", half1=f"{job['out_dir']}/fsc.star", half2="Maps/half2.mrc"
    )
    assert chained.status_code == 409 and "which failed" in chained.json()["detail"]


def test_fsc_job_equals_the_cli_run_in_the_project(served, project, monkeypatch):
    answer = _run(served, "fsc", half1="Maps/half1.mrc", half2="Maps/half2.mrc", seed=1)
    job = _wait(served, answer.json()["id"])
    assert job["status"] == "done", job["error"]
    monkeypatch.chdir(project)
    cli = CliRunner().invoke(
        cli_app, ["fsc", "Maps/half1.mrc", "Maps/half2.mrc", "--seed", "1", "--json"]
    )
    assert cli.exit_code == 0, cli.output
    assert job["result"] == json.loads(cli.stdout)
    assert {"fsc.png", "fsc.star"} <= set(job["files"])


def _long_job(served, folder: str):
    """A class2d run long enough to be cancelled (200 iterations on the extracted particles)."""
    return _run(served, "class2d", particles=f"{folder}/particles.star", classes=3,
                iterations=200)  # fmt: skip


def test_cancel_and_delete(served, project):
    extract = next(j for j in served.get("/api/jobs").json() if j["kind"] == "extract")
    long = _long_job(served, extract["out_dir"])
    assert long.status_code == 201, long.text
    waiting = _run(served, "reconstruct", particles=f"{long.json()['out_dir']}/particles.star")
    assert waiting.status_code == 201 and served.get(f"/api/jobs/{waiting.json()['id']}").json()[
        "depends"
    ] == [long.json()["id"]]
    running = _wait(served, long.json()["id"], until=("running",) + OVER)
    assert running["status"] == "running"
    for _ in range(200):  # progress and the message come from the command while it runs
        running = served.get(f"/api/jobs/{long.json()['id']}").json()
        if "iteration" in (running["message"] or ""):  # class2d's bar: "iteration k/200"
            break
        time.sleep(0.1)
    assert running["status"] == "running" and 0.0 <= running["progress"] < 0.5
    assert running["message"] and "class2d" in running["log"]
    # the reader of its outputs cannot lose them while it waits
    assert served.delete(f"/api/jobs/{long.json()['id']}").json()["status"] == "cancelled"
    start = time.monotonic()
    job = _wait(served, long.json()["id"], until=OVER)
    while job["finished_at"] is None and time.monotonic() - start < 5:
        job = served.get(f"/api/jobs/{long.json()['id']}").json()
        time.sleep(0.1)
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    assert time.monotonic() - start < 5.0
    assert (project / job["out_dir"] / "RELION_JOB_EXIT_ABORTED").is_file()
    dependent = _wait(served, waiting.json()["id"])
    assert dependent["status"] == "failed" and "cancelled" in dependent["error"]
    # the worker that ran it was replaced: a new job runs
    after = _run(served, "fsc", half1="Maps/half1.mrc", half2="Maps/half2.mrc")
    assert _wait(served, after.json()["id"])["status"] == "done"
    assert served.post(f"/api/jobs/{after.json()['id']}/cancel").status_code == 409
    # delete a finished job: the record and its folder go
    folder = project / job["out_dir"]
    assert folder.is_dir()
    gone = served.delete(f"/api/jobs/{long.json()['id']}")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert not folder.exists()
    assert served.get(f"/api/jobs/{long.json()['id']}").status_code == 404
    assert JobStore(project / ".cryoglass").integrity() == "ok"


def test_cancel_a_queued_job_at_once(tmp_path):
    (tmp_path / "Maps").mkdir()
    _maps(tmp_path / "Maps", seed=4)
    app = create_app(project_dir=tmp_path, workers=1)
    client = TestClient(app)  # no lifespan: no workers, so the job stays queued
    job = _run(client, "fsc", half1="Maps/half1.mrc", half2="Maps/half2.mrc").json()
    assert client.delete(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"
    record = client.get(f"/api/jobs/{job['id']}").json()
    assert record["status"] == "cancelled" and record["finished_at"] is not None
    assert not (tmp_path / job["out_dir"]).exists()
    assert client.delete(f"/api/jobs/{job['id']}").json()["deleted"] is True


def test_token_covers_the_new_routes(tmp_path):
    client = TestClient(create_app(project_dir=tmp_path, workers=1, token="s3cret"))
    for method, url in [
        ("get", "/api/kinds"),
        ("get", "/api/project/files"),
        ("post", "/api/project/jobs"),
        ("delete", "/api/jobs/0123456789ab"),
        ("post", "/api/jobs/0123456789ab/cancel"),
    ]:
        assert getattr(client, method)(url).status_code == 401, url
    authorised = client.get("/api/kinds", headers={"authorization": "Bearer s3cret"})
    assert authorised.status_code == 200
    assert {k["kind"] for k in authorised.json()["project"]} == set(PROJECT_KINDS)


def test_without_a_project_folder(tmp_path):
    client = TestClient(create_app(tmp_path, workers=1))
    answer = _run(client, "fsc", half1="a.mrc", half2="b.mrc")
    assert answer.status_code == 400 and "--project-dir" in answer.json()["detail"]
    assert client.get("/api/kinds").json()["project"] == []


@pytest.mark.parametrize("n_jobs", [12, pytest.param(50, marks=pytest.mark.slow)])
def test_many_jobs_with_cancellations(tmp_path, n_jobs):
    (tmp_path / "Maps").mkdir()
    _maps(tmp_path / "Maps", seed=6, box=16)
    with TestClient(create_app(project_dir=tmp_path, workers=2)) as client:
        ids = []
        for i in range(n_jobs):
            params = {"half1": "Maps/half1.mrc", "half2": "Maps/half2.mrc", "seed": i}
            if i % 7 == 3:
                params["half2"] = "potential.mrc" if i % 2 else "Maps/nothing.mrc"
            answer = _run(client, "fsc", **params)
            if answer.status_code == 400:
                continue
            ids.append(answer.json()["id"])
            if i % 5 == 2:
                client.delete(f"/api/jobs/{ids[-2]}")  # queued or running or finished
        finals = {i: _wait(client, i, timeout_s=300) for i in ids}
        deadline = time.monotonic() + 10
        while (
            any(j["finished_at"] is None for j in finals.values()) and time.monotonic() < deadline
        ):
            finals = {i: client.get(f"/api/jobs/{i}").json() for i in ids}
            time.sleep(0.2)
        listed = {j["id"] for j in client.get("/api/jobs").json()}
        store = JobStore(tmp_path / ".cryoglass")
        assert store.integrity() == "ok"
        assert not [j for j in store.list() if j["status"] in ("queued", "running")]
        pool = client.app.state.pool
        assert pool.busy() == 2
        deadline = time.monotonic() + 20  # a worker replaced after a cancel registers itself
        while sorted(w["pid"] for w in store.workers()) != sorted(pool.pids()):
            assert time.monotonic() < deadline, (store.workers(), pool.pids())
            time.sleep(0.1)
        assert all(process_alive(w["pid"], w["started"]) for w in store.workers())
        last = _run(client, "fsc", half1="Maps/half1.mrc", half2="Maps/half2.mrc")
        assert _wait(client, last.json()["id"])["status"] == "done"  # no worker is left busy
    for job_id, job in finals.items():
        if job_id in listed:
            assert job["status"] in OVER and job["finished_at"] is not None, job
    statuses = [j["status"] for i, j in finals.items() if i in listed]
    assert "done" in statuses and "cancelled" in statuses
    folders = [j["out_dir"] for j in store.list()]
    assert len(folders) == len(set(folders))
