"""`cryoglass class2d` and `cryoglass select` end to end on a small simulated star."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch
import typer
from typer.testing import CliRunner

from cryoglass.classify import adjusted_rand_index
from cryoglass.classify.synthetic import simulate_views
from cryoglass.cli import class2d, select
from cryoglass.data import model_map
from cryoglass.io import make_particle_set, write_mrc, write_relion_star

N, PIXEL = 32, 5.0


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("class2d")(class2d.main)
    app.command("select")(select.main)
    return app


def _write(folder: Path, images: torch.Tensor, *, ctf=None, name="particles") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_mrc(folder / f"{name}.mrcs", images, pixel_size_angstrom=PIXEL, stack=True)
    names = [f"{i + 1:06d}@{name}.mrcs" for i in range(images.shape[0])]
    particles = make_particle_set(
        names, pixel_size_angstrom=PIXEL, image_size=images.shape[-1], ctf=ctf, image_root=folder
    )
    return write_relion_star(folder / f"{name}.star", particles)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    volume = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=5.0)[0]
    data = simulate_views(
        volume,
        view_euler_deg=torch.tensor([[0.0, 0.0], [0.0, 90.0]]),
        n=160,
        pixel_size_angstrom=PIXEL,
        snr=0.1,
        generator=torch.Generator().manual_seed(11),
        shift_range_angstrom=5.0,
    )
    folder = tmp_path_factory.mktemp("class2d_data")
    return data, _write(folder, data.images, ctf=data.ctf)


def _run(*args: str):
    return CliRunner().invoke(_app(), [str(a) for a in args])


def test_class2d_writes_outputs_continues_and_selects(dataset, tmp_path):
    data, star = dataset
    out = tmp_path / "c2d"
    common = (
        "class2d",
        star,
        "--classes",
        2,
        "--out",
        out,
        "--psi-step-deg",
        15,
        "--offset-range-angstrom",
        5,
        "--particle-diameter-angstrom",
        140,
    )
    first = _run(*common, "--iterations", 3)
    assert first.exit_code == 0, first.output
    assert json.loads((out / "checkpoint.json").read_text())["iteration"] == 3
    resumed = _run(*common, "--iterations", 6, "--continue", "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout[resumed.stdout.index("{") :])
    assert summary["iterations"] == 6 and len(summary["log"]) == 6
    with mrcfile.open(out / "classes.mrcs") as mrc:
        assert mrc.data.shape == (2, N, N)
        assert float(mrc.voxel_size.x) == pytest.approx(PIXEL)
    table = starfile.read(out / "particles.star")["particles"]
    for column in (
        "rlnClassNumber",
        "rlnAnglePsi",
        "rlnOriginXAngst",
        "rlnOriginYAngst",
        "rlnMaxValueProbDistribution",
        "rlnLogLikeliContribution",
        "rlnDefocusU",
    ):
        assert column in table.columns
    assert len(table) == 160
    classes = torch.as_tensor(table["rlnClassNumber"].to_numpy().copy())
    assert adjusted_rand_index(data.labels, classes) > 0.9
    assert np.all(np.abs(table["rlnAnglePsi"].to_numpy()) <= 180)
    model = json.loads((out / "model.json").read_text())
    assert len(model["log"]) == 6
    report = (out / "report.html").read_text()
    assert "classes.png" in report and (out / "convergence.png").stat().st_size > 1000

    chosen = tmp_path / "chosen.star"
    sel = _run("select", out / "particles.star", "--classes", "2", "--out", chosen)
    assert sel.exit_code == 0, sel.output
    kept = starfile.read(chosen)["particles"]
    assert len(kept) == int((classes == 2).sum()) and set(kept["rlnClassNumber"]) == {2}
    missing = _run("select", out / "particles.star", "--classes", "7", "--out", tmp_path / "x.star")
    assert missing.exit_code != 0 and "no particles" in missing.output


def test_class2d_rejects_bad_input(dataset, tmp_path):
    data, star = dataset
    too_many = _run("class2d", star, "--classes", 500, "--out", tmp_path / "a", "--iterations", 1)
    assert too_many.exit_code != 0 and "must not exceed the number of particles" in too_many.output
    no_ctf = _write(tmp_path / "noctf", data.images[:20])
    result = _run("class2d", no_ctf, "--classes", 2, "--out", tmp_path / "b", "--ctf")
    assert result.exit_code != 0 and "CTF columns" in result.output
    # a star whose images differ from the size it declares
    odd = _write(tmp_path / "odd", data.images[:20, :30, :30], ctf=data.ctf[:20])
    frame = starfile.read(odd)
    frame["optics"]["rlnImageSize"] = N
    starfile.write(frame, odd, overwrite=True)
    result = _run("class2d", odd, "--classes", 2, "--out", tmp_path / "c")
    assert result.exit_code != 0 and "one size" in result.output
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    busy = _run("class2d", star, "--classes", 2, "--out", tmp_path / "d")
    assert busy.exit_code != 0 and "not empty" in busy.output


def test_progress_line_and_report_say_what_a_split_trial_did():
    """The iteration line and the report name the re-seeded class and each split's verdict."""
    from cryoglass.report.class2d import _reseed_sections

    entry = {
        "iteration": 7,
        "log_likelihood": -1.5e6,
        "occupancies": [0.5, 0.0, 0.5],
        "reseeded": [3],
        "split_tests": [
            {"class": 2, "parent": 1, "ratio": 1.13, "coefficients": 155, "kept": False}
        ],
    }
    line = class2d._progress_line(entry)
    assert line.startswith("iteration 7: log p(X | model) -1.5e+06, occupancies 0.50 0.00 0.50")
    assert "re-seeded class 3" in line and "split 1/2 merged back (r = 1.13)" in line
    (section,) = _reseed_sections([entry])
    assert ("iteration 7", "class 3 re-seeded by a split") in section.table
    assert (
        "iteration 7",
        "split 1/2: r = 1.13 over 155 coefficients, merged back into class 1",
    ) in section.table
    assert _reseed_sections([{**entry, "reseeded": [], "split_tests": []}]) == []
