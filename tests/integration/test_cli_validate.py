"""`cryoglass fsc`, `cryoglass postprocess` and `cryoglass filter` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli import filter as filter_cli
from cryoglass.cli import fsc as fsc_cli
from cryoglass.cli import postprocess as postprocess_cli
from cryoglass.fourier import apply_bfactor
from cryoglass.io import read_mrc, write_mrc
from cryoglass.simulate import gaussian_map
from cryoglass.validate import fourier_shell_correlation, soft_sphere_mask

app = typer.Typer()
app.command("fsc")(fsc_cli.main)
app.command("postprocess")(postprocess_cli.main)
app.command("filter")(filter_cli.main)
runner = CliRunner()
PIXEL = 1.5


@pytest.fixture
def maps(tmp_path, generator):
    centers = torch.randn(200, 3, generator=generator, dtype=torch.float64) * 6.0
    truth = gaussian_map(centers, shape=(40, 40, 40), pixel_size_angstrom=PIXEL, sigma_angstrom=1.2)
    sigma = 2.0 * float(truth.std())
    paths = {}
    for name in ("half1", "half2"):
        noisy = truth + sigma * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
        paths[name] = write_mrc(tmp_path / f"{name}.mrc", noisy.float(), pixel_size_angstrom=PIXEL)
    mask = soft_sphere_mask((40, 40, 40), radius_px=13, edge_width_px=5)
    paths["mask"] = write_mrc(tmp_path / "mask.mrc", mask, pixel_size_angstrom=PIXEL)
    return paths


def test_fsc_json(maps, tmp_path):
    plot = tmp_path / "fsc.png"
    result = runner.invoke(
        app, ["fsc", str(maps["half1"]), str(maps["half2"]), "--json", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) >= {"resolution_0143_angstrom", "resolution_05_angstrom", "shells"}
    shells = payload["shells"]
    assert len(shells) == 21 and set(shells[1]) >= {
        "frequency_inv_angstrom",
        "resolution_angstrom",
        "fsc",
    }
    h1, _ = read_mrc(maps["half1"])
    h2, _ = read_mrc(maps["half2"])
    expected = fourier_shell_correlation(h1.double(), h2.double())
    got = torch.tensor([row["fsc"] for row in shells], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert shells[4]["resolution_angstrom"] == pytest.approx(40 * PIXEL / 4)
    assert payload["resolution_05_angstrom"] > payload["resolution_0143_angstrom"]
    assert plot.stat().st_size > 1000
    masked = runner.invoke(
        app, ["fsc", str(maps["half1"]), str(maps["half2"]), "--mask", str(maps["mask"]), "--json"]
    )
    assert masked.exit_code == 0, masked.output
    assert "fsc_phase_randomized" in json.loads(masked.stdout)["shells"][3]


def test_fsc_errors_name_the_files(maps, tmp_path):
    other_box = write_mrc(
        tmp_path / "small.mrc", torch.zeros(32, 32, 32), pixel_size_angstrom=PIXEL
    )
    result = runner.invoke(app, ["fsc", str(maps["half1"]), str(other_box)])
    assert result.exit_code == 2 and "different boxes" in result.output
    assert "small.mrc" in result.output and "half1.mrc" in result.output
    other_px = write_mrc(tmp_path / "px.mrc", torch.zeros(40, 40, 40), pixel_size_angstrom=2.0)
    result = runner.invoke(app, ["fsc", str(maps["half1"]), str(other_px)])
    assert result.exit_code == 2 and "different pixel sizes" in result.output
    assert "px.mrc" in result.output
    bad_mask = write_mrc(tmp_path / "m.mrc", torch.ones(32, 32, 32), pixel_size_angstrom=PIXEL)
    result = runner.invoke(
        app, ["fsc", str(maps["half1"]), str(maps["half2"]), "--mask", str(bad_mask)]
    )
    assert result.exit_code == 2 and "m.mrc" in result.output and "shape" in result.output
    result = runner.invoke(app, ["fsc", str(maps["half1"]), str(tmp_path / "missing.mrc")])
    assert result.exit_code == 2 and "missing.mrc" in result.output


def test_postprocess_writes_maps_plots_and_json(maps, tmp_path):
    out = tmp_path / "post"
    args = [
        "postprocess",
        str(maps["half1"]),
        str(maps["half2"]),
        "--mask",
        str(maps["mask"]),
        "--out",
        str(out),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["bfactor"] < 0 and 3.0 < payload["resolution_angstrom"] < 20.0
    assert {"fsc_corrected", "fsc_masked", "fsc_phase_randomized"} <= set(payload["shells"][5])
    for name in (
        "postprocess.mrc",
        "postprocess_unmasked.mrc",
        "postprocess_unsharpened.mrc",
        "postprocess_fsc.png",
        "postprocess_guinier.png",
        "postprocess.json",
        "postprocess.cxc",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "postprocess.json").read_text())["bfactor"] == payload["bfactor"]
    sharpened, info = read_mrc(out / "postprocess.mrc")
    mask, _ = read_mrc(maps["mask"])
    assert info.pixel_size_angstrom == pytest.approx(PIXEL)
    assert float(sharpened[mask == 0].abs().max()) == 0.0  # masked output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exist" in again.output  # no silent overwrite
    fixed = runner.invoke(app, args[:-1] + ["--bfactor", "-40", "--overwrite", "--auto-mask"])
    assert fixed.exit_code == 2 and "either --mask or --auto-mask" in fixed.output
    fixed = runner.invoke(app, args[:-1] + ["--bfactor", "-40", "--overwrite", "--json"])
    assert fixed.exit_code == 0 and json.loads(fixed.stdout)["bfactor"] == -40.0


def test_filter_blurs_sharpens_and_protects_the_input(maps, tmp_path):
    out = tmp_path / "blurred.mrc"
    result = runner.invoke(
        app, ["filter", str(maps["half1"]), "--bfactor", "100", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    original, _ = read_mrc(maps["half1"])
    blurred, _ = read_mrc(out)
    expected = apply_bfactor(original.double(), ndim=3, bfactor_a2=100.0, pixel_size_angstrom=PIXEL)
    torch.testing.assert_close(blurred.double(), expected, atol=1e-5, rtol=1e-5)
    result = runner.invoke(
        app, ["filter", str(maps["half1"]), "--lowpass-angstrom", "6", "--out", str(maps["half1"])]
    )
    assert result.exit_code == 2 and "is an input" in result.output
    result = runner.invoke(
        app, ["filter", str(maps["half1"]), "--lowpass-angstrom", "6", "--out", str(out)]
    )
    assert result.exit_code == 2 and "exists" in result.output
    result = runner.invoke(app, ["filter", str(maps["half1"]), "--out", str(tmp_path / "x.mrc")])
    assert result.exit_code == 2 and "at least one" in result.output
    result = runner.invoke(
        app,
        ["filter", str(maps["half1"]), "--lowpass-angstrom", "2", "--out", str(tmp_path / "x.mrc")],
    )
    assert result.exit_code == 2 and "Nyquist" in result.output
