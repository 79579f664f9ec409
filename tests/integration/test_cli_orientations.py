"""`cryoglass orientations` and `cryoglass 3dfsc` through typer (local app until registered)."""

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli import fsc3d as fsc3d_cli
from cryoglass.cli import orientations as orientations_cli
from cryoglass.io import make_particle_set, write_mrc, write_relion_star
from cryoglass.simulate.distributions import uniform_orientations, vmf_orientations


def _app(main):
    app = typer.Typer()
    app.command()(main)
    return app


def _star(path, euler):
    n = 0 if euler is None else euler.shape[0]
    n = n or 10
    particles = make_particle_set(
        [f"{i + 1}@p.mrcs" for i in range(n)],
        pixel_size_angstrom=1.0,
        image_size=32,
        euler_deg=euler,
    )
    write_relion_star(path, particles)
    return path


def test_orientations_json_plot_bild(tmp_path, generator):
    star = _star(tmp_path / "p.star", uniform_orientations(20_000, generator=generator))
    result = CliRunner().invoke(
        _app(orientations_cli.main),
        [
            str(star),
            "--json",
            "--plot",
            str(tmp_path / "o.png"),
            "--bild",
            str(tmp_path / "o.bild"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"scf", "scf_star", "efficiency", "empty_fraction", "n_particles"} <= data.keys()
    assert data["n_particles"] == 20_000 and data["scf"] > 0.95
    assert (tmp_path / "o.png").stat().st_size > 0
    assert ".cylinder" in (tmp_path / "o.bild").read_text()


def test_orientations_symmetry_and_tilt(tmp_path, generator):
    star = _star(tmp_path / "t.star", vmf_orientations(5000, kappa=30.0, generator=generator))

    def run(*args):
        app = _app(orientations_cli.main)
        return json.loads(CliRunner().invoke(app, [str(star), "--json", *args]).output)

    flat, tilted = run(), run("--tilt-deg", "40")
    assert tilted["scf_star"] > flat["scf_star"]
    assert run("--symmetry", "C4")["n_directions"] == 20_000


def test_orientations_star_without_angles(tmp_path):
    star = _star(tmp_path / "noangles.star", None)
    result = CliRunner().invoke(_app(orientations_cli.main), [str(star), "--json"])
    assert result.exit_code != 0
    assert "angles" in result.output


@pytest.fixture()
def half_maps(tmp_path, generator):
    truth = torch.randn(24, 24, 24, generator=generator)
    paths = []
    for i in range(2):
        half = truth + 0.3 * torch.randn(24, 24, 24, generator=generator)
        paths.append(tmp_path / f"half{i + 1}.mrc")
        write_mrc(paths[-1], half, pixel_size_angstrom=1.5)
    return paths


def test_3dfsc_outputs(tmp_path, half_maps):
    out = tmp_path / "res"
    result = CliRunner().invoke(
        _app(fsc3d_cli.main),
        [
            str(half_maps[0]),
            str(half_maps[1]),
            "--full",
            str(half_maps[0]),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in (
        "sphericity",
        "global_resolution_angstrom",
        "resolution_min_angstrom",
        "resolution_max_angstrom",
        "best_direction",
        "worst_direction",
    ):
        assert key in data
    assert data["sphericity"] > 0.9
    for name in ("3dfsc.mrc", "histogram.png", "fsc.png", "chimerax.cxc", "result.json"):
        assert (out / name).stat().st_size > 0
    assert "open 3dfsc.mrc" in (out / "chimerax.cxc").read_text()


def test_3dfsc_bad_input(tmp_path, half_maps, generator):
    other = tmp_path / "other.mrc"
    write_mrc(other, torch.randn(24, 24, 24, generator=generator), pixel_size_angstrom=2.0)
    app = _app(fsc3d_cli.main)
    mismatch = CliRunner().invoke(
        app, [str(half_maps[0]), str(other), "--out", str(tmp_path / "x")]
    )
    assert mismatch.exit_code != 0 and "pixel" in mismatch.output
    small = tmp_path / "small.mrc"
    write_mrc(small, torch.randn(20, 20, 20, generator=generator), pixel_size_angstrom=1.5)
    shape = CliRunner().invoke(app, [str(half_maps[0]), str(small), "--out", str(tmp_path / "y")])
    assert shape.exit_code != 0 and "box" in shape.output
    for cone in ("0", "90"):
        bad = CliRunner().invoke(
            app,
            [
                str(half_maps[0]),
                str(half_maps[1]),
                "--cone-deg",
                cone,
                "--out",
                str(tmp_path / "z"),
            ],
        )
        assert bad.exit_code != 0 and "cone" in bad.output
