"""`cryoglass ctf` command: JSON output against the library, STAR input, plot, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli.ctf import main
from cryoglass.ctf import CTFParams, ctf_zeros_inv_angstrom, electron_wavelength_angstrom

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("ctf")(main)
app.command("other")(lambda: None)  # two commands so that "ctf" is a sub-command as in cryoglass
runner = CliRunner()

STAR = """
# version 30001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnVoltage #3
_rlnSphericalAberration #4
_rlnAmplitudeContrast #5
_rlnImagePixelSize #6
_rlnImageSize #7
_rlnImageDimensionality #8
opticsGroup1 1 300.0 2.7 0.1 1.5 64 2
opticsGroup2 2 200.0 1.4 0.07 0.9 64 2

# version 30001

data_particles

loop_
_rlnImageName #1
_rlnDefocusU #2
_rlnDefocusV #3
_rlnDefocusAngle #4
_rlnOpticsGroup #5
1@stack.mrcs 10000 8000 30 1
2@stack.mrcs 20000 25000 -60 2
"""


def _invoke(*args: str):
    return runner.invoke(app, ["ctf", *args])


def test_json_matches_library() -> None:
    result = _invoke("--defocus-u", "15000", "--defocus-v", "14000", "--angle", "30", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    p = CTFParams(15000.0, 14000.0, 30.0)
    expected = ctf_zeros_inv_angstrom(p, 5, dtype=torch.float64)
    assert out["zeros_inv_angstrom"] == pytest.approx(expected.tolist(), rel=1e-12)
    assert out["zeros_angstrom"] == pytest.approx((1 / expected).tolist(), rel=1e-12)
    assert out["wavelength_angstrom"] == pytest.approx(
        electron_wavelength_angstrom(300.0), rel=1e-12
    )
    assert out["parameters"]["defocus_v_angstrom"] == 14000.0
    assert out["parameters"]["pixel_size_angstrom"] == 1.0


def test_defocus_v_defaults_to_u() -> None:
    result = _invoke("--defocus-u", "9000", "--cs-mm", "0", "--amplitude-contrast", "0", "--json")
    out = json.loads(result.stdout)
    assert out["parameters"]["defocus_v_angstrom"] == 9000.0
    lam = electron_wavelength_angstrom(300.0)
    assert out["zeros_inv_angstrom"][1] == pytest.approx(math.sqrt(2 / (lam * 9000.0)), rel=1e-12)


def test_star_row_uses_its_optics_group(tmp_path: Path) -> None:
    star = tmp_path / "particles.star"
    star.write_text(STAR)
    result = _invoke("--star", str(star), "--row", "1", "--json")
    assert result.exit_code == 0, result.output
    params = json.loads(result.stdout)["parameters"]
    assert params["defocus_u_angstrom"] == 20000.0
    assert params["voltage_kv"] == 200.0
    assert params["cs_mm"] == 1.4
    assert params["amplitude_contrast"] == pytest.approx(0.07)
    assert params["pixel_size_angstrom"] == 0.9
    result = _invoke("--star", str(star), "--row", "2")
    assert result.exit_code == 2
    assert "out of range" in result.output


def test_plot_is_written(tmp_path: Path) -> None:
    target = tmp_path / "ctf.png"
    result = _invoke(
        "--defocus-u", "12000", "--defocus-v", "10000", "--box", "64", "--plot", str(target)
    )
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ctf.png"]  # no temporary left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--defocus-u"),
        (("--defocus-u", "1e4", "--amplitude-contrast", "1.2"), "amplitude contrast"),
        (("--defocus-u", "1e4", "--apix", "0"), "--apix"),
        (("--defocus-u", "1e4", "--n-zeros", "0"), "--n-zeros"),
        (("--star", "missing.star"), "no such file"),
        (("--defocus-u", "1e4", "--plot", "no/such/folder/x.png"), "does not exist"),
    ],
)
def test_errors_are_clear(args: tuple[str, ...], message: str) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
