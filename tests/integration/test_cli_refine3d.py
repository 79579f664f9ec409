"""`cryoglass refine3d` as a user runs it: outputs with RELION's names, resume, bad input."""

from __future__ import annotations

import json
import shutil

import mrcfile
import pytest
import torch
from conftest import run_relion
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.fourier import lowpass
from cryoglass.io import make_particle_set, read_particles, write_mrc, write_relion_star

N, PIXEL, COUNT = 32, 4.0, 120


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small particle set without poses, its truth and a 30 Å reference."""
    from cryoglass.data import model_map
    from cryoglass.fourier import lowpass
    from cryoglass.simulate.dataset import (
        ParticleDistributions,
        ParticleParameters,
        simulate_dataset,
    )

    folder = tmp_path_factory.mktemp("refine3d")
    truth = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=4.0)[0].float()
    chunks = list(
        simulate_dataset(
            truth,
            n=COUNT,
            pixel_size_angstrom=PIXEL,
            distributions=ParticleDistributions(shift_scale_angstrom=PIXEL),
            snr=0.5,
            seed=3,
        )
    )
    images = torch.cat([c.images for c in chunks])
    params = ParticleParameters.concatenate([c.parameters for c in chunks])
    write_mrc(
        folder / "particles.mrcs", images / images.std(), pixel_size_angstrom=PIXEL, stack=True
    )
    particles = make_particle_set(
        [f"{i + 1}@particles.mrcs" for i in range(COUNT)],
        image_root=folder,
        pixel_size_angstrom=PIXEL,
        image_size=N,
        ctf=params.ctf,
    )
    write_relion_star(folder / "particles.star", particles)
    write_mrc(folder / "truth.mrc", truth, pixel_size_angstrom=PIXEL)
    reference = lowpass(truth, ndim=3, resolution_angstrom=30.0, pixel_size_angstrom=PIXEL)
    write_mrc(folder / "reference.mrc", reference, pixel_size_angstrom=PIXEL)
    return folder


def _refine(folder, out, *extra):
    return CliRunner().invoke(
        app,
        [
            "refine3d",
            str(folder / "particles.star"),
            "--ref",
            str(folder / "reference.mrc"),
            "--out",
            str(out),
            "--max-iterations",
            "2",
            "--healpix-order",
            "2",
            "--particle-diameter",
            "110",
            "--json",
            *extra,
        ],
    )


def test_refine3d_writes_relion_outputs_and_resumes(dataset, tmp_path):
    out = tmp_path / "Refine3D"
    result = _refine(dataset, out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["iterations"] == 3  # two iterations and the final one
    assert "iteration  1:" in result.stderr and "iteration  3:" in result.stderr
    for name in (
        "run_data.star",
        "run_class001.mrc",
        "run_half1_class001_unfil.mrc",
        "run_half2_class001_unfil.mrc",
        "run_fsc.json",
        "run_fsc.png",
        "run_history.json",
        "report.html",
    ):
        assert (out / name).is_file(), name
    refined = read_particles(out / "run_data.star")
    assert refined.euler_deg is not None and refined.shift_angstrom is not None
    table = refined.particles_table
    for column in (
        "rlnRandomSubset",
        "rlnMaxValueProbDistribution",
        "rlnNrOfSignificantSamples",
        "rlnLogLikeliContribution",
    ):
        assert column in table.columns
    assert set(table["rlnRandomSubset"]) == {1, 2}
    with mrcfile.open(out / "run_class001.mrc") as mrc:
        assert mrc.data.shape == (N, N, N) and abs(float(mrc.voxel_size.x) - PIXEL) < 1e-4
    fsc = json.loads((out / "run_fsc.json").read_text())
    assert fsc["shells"][1]["fsc"] > 0.8 and summary["resolution_angstrom"] < 30
    # a non-empty folder needs --continue or --overwrite; --continue resumes the checkpoint
    again = _refine(dataset, out)
    assert again.exit_code == 2 and "--continue" in again.output
    resumed = _refine(dataset, out, "--continue")
    assert resumed.exit_code == 0, resumed.output
    assert "iteration  1:" not in resumed.stderr  # nothing redone but the final iteration
    changed = _refine(dataset, out, "--continue", "--ini-high", "25")
    assert changed.exit_code == 2 and "other inputs or options" in changed.output


def test_refine3d_bad_inputs_are_one_line_errors(dataset, tmp_path):
    runner = CliRunner()
    base = ["refine3d", str(dataset / "particles.star"), "--ref"]
    wrong = tmp_path / "no_pixel.mrc"
    with mrcfile.new(wrong) as mrc:
        noise = torch.rand(N, N, N, generator=torch.Generator().manual_seed(0))
        mrc.set_data(noise.numpy())  # a map, but no pixel size in the header
    cases = [
        ([*base, str(tmp_path / "nope.mrc"), "--out", str(tmp_path / "a")], "no such file"),
        ([*base, str(wrong), "--out", str(tmp_path / "b")], "no pixel size"),
        (
            [
                *base,
                str(dataset / "reference.mrc"),
                "--out",
                str(tmp_path / "c"),
                "--particle-diameter",
                "500",
            ],
            "--particle-diameter",
        ),
        (
            [*base, str(dataset / "reference.mrc"), "--out", str(dataset)],
            "folder is not empty",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    # a STAR without CTF columns: refused with --ctf (the default)
    plain = make_particle_set(
        [f"{i + 1}@particles.mrcs" for i in range(COUNT)],
        image_root=dataset,
        pixel_size_angstrom=PIXEL,
        image_size=N,
    )
    write_relion_star(tmp_path / "noctf.star", plain)
    shutil.copy(dataset / "particles.mrcs", tmp_path / "particles.mrcs")
    result = runner.invoke(
        app,
        [
            "refine3d",
            str(tmp_path / "noctf.star"),
            "--ref",
            str(dataset / "reference.mrc"),
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 2 and "needs CTF columns" in result.output
    assert result.output.count("noctf.star") == 1


@pytest.mark.slow
@pytest.mark.relion
def test_run_data_star_means_the_same_in_relion(dataset, tmp_path):
    """relion_reconstruct of our run_data.star gives our map (the poses mean what RELION means)."""
    out = tmp_path / "r"
    result = _refine(dataset, out)
    assert result.exit_code == 0, result.output
    run_relion(
        [
            "relion_reconstruct",
            "--i",
            str(out / "run_data.star"),
            "--o",
            str(tmp_path / "rel.mrc"),
            "--ctf",
        ],
        cwd=dataset,
    )
    ours = CliRunner().invoke(
        app, ["reconstruct", str(out / "run_data.star"), "--out", str(tmp_path / "cg.mrc")]
    )
    assert ours.exit_code == 0, ours.output
    with mrcfile.open(tmp_path / "rel.mrc") as a, mrcfile.open(tmp_path / "cg.mrc") as b:
        x, y = torch.from_numpy(a.data.copy()).double(), torch.from_numpy(b.data.copy()).double()
    with mrcfile.open(dataset / "truth.mrc") as t:
        truth = torch.from_numpy(t.data.copy()).double()

    def corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / (a.norm() * b.norm()))

    # 120 particles of 32²: the two programs treat the sparsely sampled shells near Nyquist
    # differently (full maps correlate 0.85), so the meaning of the poses is compared below 12 Å,
    # where both maps resemble the truth equally (a misread pose would not).
    x, y = (lowpass(v, ndim=3, resolution_angstrom=12.0, pixel_size_angstrom=PIXEL) for v in (x, y))
    assert corr(x, y) > 0.97
    assert corr(x, truth) > 0.95 * corr(y, truth) > 0.8


@pytest.mark.slow
def test_refine3d_with_workers_equals_one_process(dataset, tmp_path):
    """--workers 2 (chunks of ≤ 50 summed as they arrive) gives one process's refinement.

    Measured (120 × 32², 3 iterations): identical angles and origins, half maps within
    4.4·10⁻⁶ of their maximum, the final map within 10⁻⁶.  10.6 s with OMP_NUM_THREADS=1.
    """
    import starfile

    one, two = tmp_path / "one", tmp_path / "two"
    assert _refine(dataset, one).exit_code == 0
    result = _refine(dataset, two, "--workers", "2", "--chunk-size", "50")
    assert result.exit_code == 0, result.output
    assert "dask: local cluster, 2 worker processes" in result.stderr
    a, b = (starfile.read(d / "run_data.star")["particles"] for d in (one, two))
    for column in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst"):
        assert (a[column] - b[column]).abs().max() < 1e-6, column
    assert (a["rlnRandomSubset"] == b["rlnRandomSubset"]).all()
    for name in ("run_half1_class001_unfil.mrc", "run_half2_class001_unfil.mrc"):
        with mrcfile.open(one / name) as x, mrcfile.open(two / name) as y:
            scale = float(abs(x.data).max())
            assert float(abs(x.data - y.data).max()) < 1e-5 * scale, name
