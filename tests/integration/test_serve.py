"""cryoglass serve end to end: upload, run in worker processes, results equal to the CLI's."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
import zipfile

import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli import fsc3d as fsc3d_cli
from cryoglass.cli import postprocess as postprocess_cli
from cryoglass.io import write_mrc
from cryoglass.serve import create_app
from cryoglass.serve.jobs import INTERRUPTED, JobStore, run_job
from cryoglass.simulate import gaussian_map

with warnings.catch_warnings():  # starlette warns at import that httpx2 is preferred
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PIXEL, BOX = 1.5, 24


def _write_maps(folder, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(60, 3, generator=generator, dtype=torch.float64) * 4.0
    truth = gaussian_map(centers, shape=(BOX,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=1.2)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"full": write_mrc(folder / "full.mrc", truth.float(), pixel_size_angstrom=PIXEL)}
    for name in ("half1", "half2"):
        noise = torch.randn(truth.shape, generator=generator, dtype=torch.float64)
        noisy = (truth + 0.6 * float(truth.std()) * noise).float()
        paths[name] = write_mrc(folder / f"{name}.mrc", noisy, pixel_size_angstrom=PIXEL)
    small = torch.zeros(BOX, BOX, BOX - 2)
    paths["other_box"] = write_mrc(folder / "other_box.mrc", small, pixel_size_angstrom=PIXEL)
    (folder / "notes.txt").write_text("these are not the maps you are looking for\n")
    paths["text"] = folder / "notes.txt"
    return paths


def _submit(client, kind: str, paths: dict, **fields):
    names = [n for n in ("half1", "half2", "full", "mask") if n in paths]
    files = {n: (paths[n].name, paths[n].read_bytes()) for n in names}
    return client.post("/api/jobs", data={"kind": kind, **fields}, files=files)


def _wait(client, job_id: str, *, until=("done", "failed"), timeout_s: float = 90.0) -> dict:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")


def _cli(main, args: list[str]) -> dict:
    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    return _write_maps(tmp_path_factory.mktemp("maps"), seed=7)


@pytest.fixture(scope="module")
def served(tmp_path_factory, maps):
    """One app with one worker; the three jobs are submitted at once and run meanwhile."""
    data = tmp_path_factory.mktemp("data")
    with TestClient(create_app(data, workers=1)) as client:
        ids = {
            "fsc": _submit(client, "fsc", {k: maps[k] for k in ("half1", "half2")}),
            "postprocess": _submit(
                client, "postprocess", {k: maps[k] for k in ("half1", "half2")}, auto_mask="true"
            ),
            "3dfsc": _submit(client, "3dfsc", maps, cone_deg="25"),
        }
        for response in ids.values():
            assert response.status_code == 201, response.text
        yield client, {k: r.json()["id"] for k, r in ids.items()}, data


def test_fsc_job_equals_cli_json(served, maps):
    client, ids, _ = served
    cli = subprocess.run(
        [sys.executable, "-m", "cryoglass", "fsc", str(maps["half1"]), str(maps["half2"])]
        + ["--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = json.loads(cli.stdout)
    job = _wait(client, ids["fsc"])
    assert job["status"] == "done", job["error"]
    assert list(job["result"]) == list(expected)
    assert job["result"] == expected
    assert job["started_at"] >= job["created_at"] and job["finished_at"] >= job["started_at"]
    download = client.get(f"/api/jobs/{ids['fsc']}/files/fsc.json")
    assert json.loads(download.content) == expected
    plot = client.get(f"/api/jobs/{ids['fsc']}/files/fsc.png")
    assert plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    page = client.get(f"/jobs/{ids['fsc']}").text
    assert f"{expected['resolution_0143_angstrom']:.4g}" in page and "fsc.png" in page
    for key in expected["headline"]:  # the page leads with the keys the command names
        assert f'<b data-key="{key}">' in page


def test_postprocess_job_equals_cli(served, maps, tmp_path):
    client, ids, data = served
    expected = _cli(
        postprocess_cli.main,
        [str(maps["half1"]), str(maps["half2"]), "--auto-mask", "--json"]
        + ["--out", str(tmp_path / "post")],
    )
    job = _wait(client, ids["postprocess"])
    assert job["status"] == "done", job["error"]
    result = job["result"]
    assert list(result) == list(expected)
    for key in set(expected) - {"inputs", "files"}:  # paths differ: uploads vs originals
        assert result[key] == expected[key], key
    assert sorted(result["files"]) == sorted(expected["files"])
    names = {p.name for p in (tmp_path / "post").iterdir()}
    assert set(job["files"]) == names  # every output can be downloaded
    script = client.get(f"/api/jobs/{ids['postprocess']}/files/postprocess.cxc").text
    assert script == (tmp_path / "post" / "postprocess.cxc").read_text()
    archive = client.get(f"/api/jobs/{ids['postprocess']}/archive.zip")
    listed = zipfile.ZipFile(__import__("io").BytesIO(archive.content)).namelist()
    assert sorted(n.split("/")[1] for n in listed) == sorted(names)
    # nothing outside the job's outputs is reachable by name
    for name in ("..%2Fjobs.sqlite", "..%2F..%2Fjobs.sqlite", "jobs.sqlite", ".hidden"):
        assert client.get(f"/api/jobs/{ids['postprocess']}/files/{name}").status_code == 404
    assert client.get("/api/jobs/..%2F..%2Fetc/files/passwd").status_code == 404


def test_3dfsc_job_equals_cli(served, maps, tmp_path):
    client, ids, _ = served
    expected = _cli(
        fsc3d_cli.main,
        [str(maps["half1"]), str(maps["half2"]), "--full", str(maps["full"])]
        + ["--cone-deg", "25", "--json", "--out", str(tmp_path / "r")],
    )
    job = _wait(client, ids["3dfsc"])
    assert job["status"] == "done", job["error"]
    assert job["result"] == expected
    assert {"3dfsc.mrc", "chimerax.cxc", "histogram.png", "full.mrc"} <= set(job["files"])
    page = client.get(f"/jobs/{ids['3dfsc']}").text
    assert f'data-key="sphericity">{expected["sphericity"]:.4g}<' in page


def test_bad_uploads_are_rejected_before_a_job_exists(served, maps):
    client, _, data = served
    before = {j["id"] for j in client.get("/api/jobs").json()}
    cases = [
        ("fsc", {"half1": maps["text"], "half2": maps["half2"]}, "half1: not a readable MRC"),
        ("fsc", {"half1": maps["half1"], "half2": maps["other_box"]}, "half2 has shape"),
        ("ctf", {"half1": maps["half1"], "half2": maps["half2"]}, "kind must be one of"),
        ("fsc", maps, "a full map is used only by 3dfsc"),
        ("fsc", {"half1": maps["half1"]}, ""),
    ]
    for kind, paths, message in cases:
        response = _submit(client, kind, {k: v for k, v in paths.items() if k != "text"})
        assert response.status_code in (400, 422), response.text
        assert message in response.json()["detail"].__repr__()
        assert str(data) not in response.text  # no server paths in the answers
    assert {j["id"] for j in client.get("/api/jobs").json()} == before
    assert {p.name for p in (data / "jobs").iterdir()} == before  # no upload left behind
    # the HTML form answers with the page and the reason
    form = client.post(
        "/jobs",
        data={"kind": "fsc"},
        files={"half1": ("notes.txt", b"nope"), "half2": ("h2.mrc", maps["half2"].read_bytes())},
    )
    assert form.status_code == 400 and "half1: not a readable MRC map" in form.text


def test_upload_size_limit(tmp_path, maps):
    client = TestClient(create_app(tmp_path, workers=1, max_upload_bytes=10_000))
    response = _submit(client, "fsc", {k: maps[k] for k in ("half1", "half2")})
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    chunked = client.post(
        "/api/jobs",
        content=iter([b"x" * 8000, b"y" * 8000]),
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    assert chunked.status_code == 413
    assert not (tmp_path / "jobs").exists()


def test_form_submission_redirects_to_the_job(served, maps):
    client, _, _ = served
    files = {n: (f"{n}.mrc", maps[n].read_bytes()) for n in ("half1", "half2")}
    response = client.post(
        "/jobs", data={"kind": "fsc", "apix": "1.5"}, files=files, follow_redirects=False
    )
    assert response.status_code == 303
    job_id = response.headers["location"].rsplit("/", 1)[1]
    job = _wait(client, job_id)
    assert job["status"] == "done" and job["result"]["pixel_size_angstrom"] == 1.5
    assert job_id in client.get("/").text


def _queue_copy(store: JobStore, job_id: str, pair: dict) -> None:
    """Record a queued fsc job on copies of the half maps, as POST /api/jobs would."""
    inputs = store.job_dir(job_id) / "inputs"
    inputs.mkdir(parents=True)
    for name, path in pair.items():
        (inputs / f"{name}.mrc").write_bytes(path.read_bytes())
    store.create(job_id, "fsc", {"uploads": {}, "shape": [BOX] * 3})


def test_restart_keeps_jobs_and_fails_interrupted_ones(tmp_path, maps):
    pair = {k: maps[k] for k in ("half1", "half2")}
    store = JobStore(tmp_path)
    _queue_copy(store, "d0e000000001", pair)
    assert run_job("d0e000000001", str(tmp_path)) == "done"  # finished under the old server
    store.create("dead00000001", "fsc", {})  # the old server died while this one ran
    store.claim("dead00000001", 999_999)
    _queue_copy(store, "feed00000001", pair)  # queued, never started
    with TestClient(create_app(tmp_path, workers=1)) as client:
        listed = {j["id"]: j for j in client.get("/api/jobs").json()}
        assert set(listed) == {"d0e000000001", "dead00000001", "feed00000001"}
        assert listed["dead00000001"]["status"] == "failed"
        assert listed["dead00000001"]["error"] == "server stopped while the job was running"
        assert client.get("/api/jobs/d0e000000001").json()["result"]["box_size"] == BOX
        assert _wait(client, "feed00000001")["status"] == "done"  # queued jobs run again
        assert "server stopped while the job was running" in client.get("/").text


@pytest.mark.slow
def test_stopping_the_server_mid_job(tmp_path, maps):
    pair = {k: maps[k] for k in ("half1", "half2")}
    with TestClient(create_app(tmp_path, workers=1)) as client:
        job_id = _submit(client, "3dfsc", pair, cone_deg="5").json()["id"]
        job = _wait(client, job_id, until=("running", "done", "failed"))
    after = JobStore(tmp_path).get(job_id)
    if job["status"] == "running" and after["status"] == "failed":
        assert after["error"] == INTERRUPTED
        assert not (tmp_path / "jobs" / job_id / "out" / "result.json").exists()
    else:  # the job finished before the app stopped: nothing was interrupted
        assert after["status"] == "done"
    with TestClient(create_app(tmp_path, workers=1)) as client:
        assert client.get(f"/api/jobs/{job_id}").json()["status"] == after["status"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_end_to_end(tmp_path):
    from cryoglass.cli.main import COMMANDS

    port = _free_port()
    args = ["--port", str(port), "--data-dir", str(tmp_path / "data"), "--workers", "1"]
    if "serve" in dict(COMMANDS):
        command = [sys.executable, "-m", "cryoglass", "serve", *args]
    else:  # until the lead registers the command
        script = "import typer; from cryoglass.cli.serve import main; typer.run(main)"
        command = [sys.executable, "-c", script, *args]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/api/jobs", timeout=2) as answer:
                    assert json.load(answer) == []
                break
            except OSError:
                assert server.poll() is None, server.communicate()
                time.sleep(0.1)
        with urllib.request.urlopen(base + "/", timeout=10) as answer:
            assert answer.status == 200 and b"Submit a job" in answer.read()
        with urllib.request.urlopen(base + "/openapi.json", timeout=10) as answer:
            assert "/api/jobs" in json.load(answer)["paths"]
        url = base + "/api/explore/ctf/profile.png?defocus_angstrom=20000"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.read()[:4] == b"\x89PNG"
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out
    assert (tmp_path / "data" / "jobs.sqlite").is_file()
