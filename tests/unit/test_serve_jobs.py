"""cryoglass.serve.jobs: SQLite job records, upload validation, jobs run in this process."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli import fsc as fsc_cli
from cryoglass.io import write_mrc
from cryoglass.serve.jobs import (
    INTERRUPTED,
    JobStore,
    command_args,
    run_job,
    validate_inputs,
)
from cryoglass.simulate import gaussian_map

PIXEL = 1.5


def _half_maps(folder, generator, *, shape=(24, 24, 24), pixel=PIXEL):
    centers = torch.randn(60, 3, generator=generator, dtype=torch.float64) * 4.0
    truth = gaussian_map(centers, shape=shape, pixel_size_angstrom=pixel, sigma_angstrom=1.2)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("half1", "half2"):
        noise = torch.randn(truth.shape, generator=generator, dtype=torch.float64)
        noisy = truth + 0.5 * float(truth.std()) * noise
        paths[name] = write_mrc(folder / f"{name}.mrc", noisy.float(), pixel_size_angstrom=pixel)
    return paths


def test_store_life_cycle_and_interrupted_jobs(tmp_path):
    store = JobStore(tmp_path)
    store.create("a" * 12, "fsc", {"apix": None})
    store.create("b" * 12, "postprocess", {"apix": 1.0})
    assert store.queued_ids() == ["a" * 12, "b" * 12]
    assert store.claim("a" * 12, 4242)
    assert not store.claim("a" * 12, 4243)  # already running: a second worker must not run it
    # a new store on the same folder (a restarted server) sees the same records
    again = JobStore(tmp_path)
    assert again.get("a" * 12)["status"] == "running"
    assert again.fail_running(INTERRUPTED) == ["a" * 12]
    job = again.get("a" * 12)
    assert (job["status"], job["error"]) == ("failed", INTERRUPTED)
    assert job["finished_at"] >= job["started_at"]
    assert again.get("b" * 12)["status"] == "queued"
    assert [j["id"] for j in again.list()] == ["b" * 12, "a" * 12]
    with pytest.raises(ValueError, match="malformed job id"):
        store.job_dir("../../etc")


def test_fail_running_only_for_one_worker(tmp_path):
    store = JobStore(tmp_path)
    for job_id, pid in (("1" * 12, 11), ("2" * 12, 22)):
        store.create(job_id, "fsc", {})
        store.claim(job_id, pid)
    assert store.fail_running("worker process died", pid=22) == ["2" * 12]
    assert [store.get(i)["status"] for i in ("1" * 12, "2" * 12)] == ["running", "failed"]


def test_validate_inputs_errors(tmp_path, generator):
    paths = _half_maps(tmp_path, generator)
    checked = validate_inputs("fsc", paths, apix=None)
    assert checked == {"shape": [24, 24, 24], "pixel_size_angstrom": PIXEL}
    assert validate_inputs("fsc", paths, apix=2.0)["pixel_size_angstrom"] == 2.0

    text = tmp_path / "notes.mrc"
    text.write_text("not a map at all")
    with pytest.raises(ValueError, match=r"half2: not a readable MRC map \(my_upload.txt"):
        validate_inputs(
            "fsc", {**paths, "half2": text}, apix=None, labels={"half2": "my_upload.txt"}
        )
    other = _half_maps(tmp_path / "small", generator, shape=(20, 24, 24))
    with pytest.raises(ValueError, match=r"half2 has shape \(20, 24, 24\) but half1 has"):
        validate_inputs("fsc", {"half1": paths["half1"], "half2": other["half2"]}, apix=None)
    with pytest.raises(ValueError, match="3dfsc needs cubic maps"):
        validate_inputs("3dfsc", other, apix=None)
    bad_mask = write_mrc(
        tmp_path / "mask.mrc", torch.full((24, 24, 24), 2.0), pixel_size_angstrom=1
    )
    with pytest.raises(ValueError, match=r"mask: values must lie in \[0, 1\]"):
        validate_inputs("fsc", {**paths, "mask": bad_mask}, apix=None)
    stack = write_mrc(
        tmp_path / "s.mrcs", torch.zeros(3, 24, 24), pixel_size_angstrom=1, stack=True
    )
    with pytest.raises(ValueError, match="half1: expected a 3D map"):
        validate_inputs("fsc", {**paths, "half1": stack}, apix=None)


def test_command_args(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    args = command_args("postprocess", {"apix": 1.25, "auto_mask": True}, inputs, out)
    assert args[:3] == [str(inputs / "half1.mrc"), str(inputs / "half2.mrc"), "--json"]
    assert args[args.index("--apix") + 1] == "1.25"
    assert "--auto-mask" in args and args[args.index("--out") + 1] == str(out)
    args = command_args("3dfsc", {"full": True, "mask": True, "cone_deg": 30}, inputs, out)
    assert args[args.index("--full") + 1] == str(inputs / "full.mrc")
    assert args[args.index("--mask") + 1] == str(inputs / "mask.mrc")
    assert args[args.index("--cone-deg") + 1] == "30.0"
    with pytest.raises(ValueError, match="unknown job kind"):
        command_args("ctf", {}, inputs, out)


def test_run_job_in_process_equals_cli(tmp_path, generator):
    store = JobStore(tmp_path / "data")
    job_id = "c0ffee000001"
    paths = _half_maps(store.job_dir(job_id) / "inputs", generator)
    store.create(job_id, "fsc", {"apix": None, "mask": False})
    assert run_job(job_id, str(store.data_dir)) == "done"
    job = store.get(job_id)
    assert job["status"] == "done" and job["error"] is None
    assert job["files"] == ["fsc.json", "fsc.png"]
    assert "$ cryoglass fsc" in job["log"]

    app = typer.Typer()
    app.command()(fsc_cli.main)
    cli = CliRunner().invoke(app, [str(paths["half1"]), str(paths["half2"]), "--json"])
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)
    assert job["result"] == expected
    saved = json.loads((store.job_dir(job_id) / "out" / "fsc.json").read_text())
    assert saved == expected


def test_run_job_failure_is_recorded(tmp_path, generator):
    store = JobStore(tmp_path / "data")
    job_id = "c0ffee000002"
    _half_maps(store.job_dir(job_id) / "inputs", generator)
    store.create(job_id, "postprocess", {"bfactor": "auto", "apix": -1.0})
    assert run_job(job_id, str(store.data_dir)) == "failed"
    job = store.get(job_id)
    assert job["status"] == "failed" and job["result"] is None
    assert "--apix must be positive" in job["error"]
    assert str(store.data_dir) not in job["error"]
    assert run_job(job_id, str(store.data_dir)) == "skipped"  # only queued jobs run
