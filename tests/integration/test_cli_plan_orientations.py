"""`cryoglass plan-orientations` through a local typer app (until the lead registers it)."""

import json

import typer
from typer.testing import CliRunner

from cryoglass.cli import plan_orientations as cli
from cryoglass.io import make_particle_set, write_relion_star
from cryoglass.simulate.distributions import vmf_orientations


def _app():
    app = typer.Typer()
    app.command()(cli.main)
    return app


def test_model_json_and_plot(tmp_path):
    result = CliRunner().invoke(
        _app(),
        [
            "--model",
            "vmf:10",
            "--n-particles",
            "100000",
            "--box",
            "64",
            "--json",
            "--plot",
            str(tmp_path / "plan.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert abs(data["worst_direction"][2]) > 0.9  # top views: worst along z
    assert data["best_tilt_deg"] > 0 and data["sphericity"] < 0.95
    assert len(data["tilt_scan"]) == 11 and 0 <= data["scf_star"] < 0.5
    assert (tmp_path / "plan.png").stat().st_size > 0


def test_star_input_and_errors(tmp_path, generator):
    euler = vmf_orientations(3000, kappa=5.0, generator=generator)
    star = tmp_path / "p.star"
    write_relion_star(
        star,
        make_particle_set(
            [f"{i + 1}@p.mrcs" for i in range(3000)],
            pixel_size_angstrom=1.0,
            image_size=32,
            euler_deg=euler,
        ),
    )
    ok = CliRunner().invoke(_app(), [str(star), "--n-particles", "5000", "--box", "48", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["n_particles"] == 5000
    both = CliRunner().invoke(_app(), [str(star), "--model", "vmf:3", "--n-particles", "10"])
    assert both.exit_code != 0 and "not both" in both.output
    bad = CliRunner().invoke(_app(), ["--model", "gauss:3", "--n-particles", "10"])
    assert bad.exit_code != 0 and "--model" in bad.output
