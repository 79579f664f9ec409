"""`cryoglass class3d` and `cryoglass abinitio` as a user runs them: files, JSON, refusals."""

from __future__ import annotations

import json

import mrcfile
import pytest
import starfile
import torch
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.io import make_particle_set, write_mrc, write_relion_star

N, PIXEL, COUNT = 24, 4.0, 120


def _blobs(seed: int, moved: int):
    from cryoglass.simulate.phantom import gaussian_map

    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(12, 3, generator=g, dtype=torch.float64) - 0.5) * N * PIXEL / 2
    other = centres.clone()
    other[:moved] = (torch.rand(moved, 3, generator=g, dtype=torch.float64) - 0.5) * N * PIXEL / 2
    return [
        gaussian_map(
            c, shape=(N,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=1.5 * PIXEL
        ).float()
        for c in (centres, other)
    ]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two maps (3 of 12 blobs moved), 120 noisy CTF particles without poses, their mean."""
    from cryoglass.ctf import CTFParams
    from cryoglass.geometry import random_rotations
    from cryoglass.projection import project

    folder = tmp_path_factory.mktemp("class3d")
    maps = _blobs(4, 3)
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(COUNT) % 2
    rotations = random_rotations(COUNT, generator=g, dtype=torch.float32)
    defocus = 8000 + 12000 * torch.rand(COUNT, generator=g, dtype=torch.float64)
    images = torch.empty(COUNT, N, N)
    for k, volume in enumerate(maps):
        rows = torch.nonzero(labels == k).reshape(-1)
        ctf = CTFParams(defocus_u_angstrom=defocus[rows], defocus_v_angstrom=defocus[rows])
        images[rows] = project(volume, rotations[rows], ctf=ctf, pixel_size_angstrom=PIXEL)
    images = images + 0.5 * images.std() * torch.randn(images.shape, generator=g)
    write_mrc(
        folder / "particles.mrcs", images / images.std(), pixel_size_angstrom=PIXEL, stack=True
    )
    particles = make_particle_set(
        [f"{i + 1}@particles.mrcs" for i in range(COUNT)],
        image_root=folder,
        pixel_size_angstrom=PIXEL,
        image_size=N,
        ctf=CTFParams(defocus_u_angstrom=defocus, defocus_v_angstrom=defocus).expand(COUNT),
    )
    write_relion_star(folder / "particles.star", particles)
    write_mrc(folder / "reference.mrc", (maps[0] + maps[1]) / 2, pixel_size_angstrom=PIXEL)
    return folder, labels


def _class3d(folder, out, *extra, iterations: int = 4):
    return CliRunner().invoke(
        app,
        [
            "class3d", str(folder / "particles.star"), "--ref", str(folder / "reference.mrc"),
            "--classes", "2", "--iterations", str(iterations), "--out", str(out),
            "--particle-diameter", "80", "--ini-high", "20", "--healpix-order", "2",
            "--offset-range", "2", "--json", *extra,
        ],
    )  # fmt: skip


def test_class3d_writes_relion_outputs_and_resumes(dataset, tmp_path):
    folder, labels = dataset
    out = tmp_path / "Class3D"
    result = _class3d(folder, out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["headline"] == ["class_distribution", "resolution_angstrom", "iterations"]
    assert summary["iterations"] == 4 and abs(sum(summary["class_distribution"]) - 1) < 1e-3
    assert "iteration  1 (cc)" in result.stderr and "iteration  4 (classify)" in result.stderr
    for it in range(1, 5):
        for name in ("data.star", "model.star", "class001.mrc", "class002.mrc"):
            assert (out / f"run_it{it:03d}_{name}").is_file(), (it, name)
    for name in ("report.html", "class_occupancy.png", "checkpoint.pt"):
        assert (out / name).is_file(), name
    table = starfile.read(out / "run_it004_data.star")["particles"]
    assert set(table["rlnClassNumber"]) <= {1, 2}
    for column in ("rlnAngleRot", "rlnOriginXAngst", "rlnMaxValueProbDistribution"):
        assert column in table.columns
    assert sum(summary["particles_per_class"]) == COUNT
    with mrcfile.open(out / "run_it004_class002.mrc") as mrc:
        assert mrc.data.shape == (N, N, N) and abs(float(mrc.voxel_size.x) - PIXEL) < 1e-4
    model = starfile.read(out / "run_it004_model.star")
    assert len(model["model_classes"]) == 2
    # the folder holds a run: refused without --continue; --continue goes on from iteration 4
    again = _class3d(folder, out)
    assert again.exit_code == 2 and "--continue" in again.output
    more = _class3d(folder, out, "--continue", iterations=5)
    assert more.exit_code == 0, more.output
    assert "iteration  4" not in more.stderr and "iteration  5 (classify)" in more.stderr


def test_class3d_bad_inputs_are_one_line_errors(dataset, tmp_path):
    folder, _ = dataset
    runner = CliRunner()
    star, ref = str(folder / "particles.star"), str(folder / "reference.mrc")
    cases = [
        (["--classes", "20", "--out", str(tmp_path / "a")], "need at least 10 per class"),
        (["--classes", "2", "--out", str(tmp_path / "b"), "--particle-diameter", "500"],
         "particle diameter 500"),
        (["--classes", "2", "--out", str(folder)], "folder is not empty"),
        (["-K", "2", "--out", str(tmp_path / "c"), "--workers", "2", "--scheduler", "tcp://x:1"],
         "not both"),
        (["-K", "2", "--out", str(tmp_path / "d"), "--workers", "2", "--device", "cuda"],
         "drop --device"),
    ]  # fmt: skip
    for extra, message in cases:
        result = runner.invoke(app, ["class3d", star, "--ref", ref, *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output and "Traceback" not in result.output
    missing = runner.invoke(
        app, ["class3d", star, "--ref", str(tmp_path / "no.mrc"), "-K", "2", "--out", "x"]
    )
    assert missing.exit_code == 2 and "no.mrc" in missing.output


def test_abinitio_writes_maps_and_says_the_hand_is_undetermined(dataset, tmp_path):
    folder, _ = dataset
    out = tmp_path / "InitialModel"
    args = [
        "abinitio", str(folder / "particles.star"), "--out", str(out), "--particle-diameter", "80",
        "--iterations", "6", "--ini-batch", "40", "--final-batch", "60", "--classes", "2",
        "--final-resolution", "12", "--ini-resolution", "24", "--seed", "1", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["headline"] == ["maps", "iterations", "seconds"]
    assert [m.split("/")[-1] for m in summary["maps"]] == [
        "initial_model_class001.mrc",
        "initial_model_class002.mrc",
    ]
    assert "undetermined" in summary["hand"] and "hand" in result.stderr
    assert "iteration    6/6" in result.stderr
    assert "cannot determine the hand" in (out / "report.html").read_text()
    for name in summary["maps"]:
        with mrcfile.open(name) as mrc:
            assert mrc.data.shape == (N, N, N) and float(abs(mrc.data).max()) > 0
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    too_few = CliRunner().invoke(app, [*args[:3], str(tmp_path / "c"), "--classes", "3"])
    assert too_few.exit_code == 2 and "needs at least 150" in too_few.output


def _iteration_files(out, iteration: int):
    table = starfile.read(out / f"run_it{iteration:03d}_data.star")["particles"]
    maps = []
    for c in (1, 2):
        with mrcfile.open(out / f"run_it{iteration:03d}_class{c:03d}.mrc") as mrc:
            maps.append(torch.from_numpy(mrc.data.copy()))
    model = starfile.read(out / f"run_it{iteration:03d}_model.star")["model_classes"]
    return table, torch.stack(maps), model


@pytest.mark.slow
def test_class3d_with_workers_equals_one_process(dataset, tmp_path):
    """--workers 2 (3 chunks of ≤ 50, summed as they arrive) gives one process's iterations.

    Measured: identical classes, angles and origins; maps within 6·10⁻⁷ of their maximum;
    class distributions equal to the model STAR file's precision (10⁻⁶).  Slow: 20.5 s on a
    shared 2-core VM at load 5.4 (10 s with OMP_NUM_THREADS=1); the chunk merge itself is
    tested without a cluster in tests/unit/test_distributed_class3d.py.
    """
    folder, _ = dataset
    one, two = tmp_path / "one", tmp_path / "two"
    assert _class3d(folder, one).exit_code == 0
    result = _class3d(folder, two, "--workers", "2", "--chunk-size", "50")
    assert result.exit_code == 0, result.output
    assert "dask: local cluster, 2 worker processes" in result.stderr
    for iteration in (1, 2, 3, 4):  # cc, seeds, classification × 2
        a_table, a_maps, a_model = _iteration_files(one, iteration)
        b_table, b_maps, b_model = _iteration_files(two, iteration)
        if "rlnClassNumber" in a_table.columns:
            assert (a_table["rlnClassNumber"] == b_table["rlnClassNumber"]).all(), iteration
        for column in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst"):
            assert (a_table[column] - b_table[column]).abs().max() < 1e-6, (iteration, column)
        scale = float(a_maps.abs().max())
        assert float((a_maps - b_maps).abs().max()) < 1e-5 * scale, iteration
        distribution = "rlnClassDistribution"
        assert (a_model[distribution] - b_model[distribution]).abs().max() < 1e-5, iteration
