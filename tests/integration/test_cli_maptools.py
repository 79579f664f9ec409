"""`cryoglass mask`, `resample`, `localres` and `fsc --xml/--star` through typer's CliRunner."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import starfile
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli import fsc as fsc_cli
from cryoglass.cli import localres as localres_cli
from cryoglass.cli import mask as mask_cli
from cryoglass.cli import resample as resample_cli
from cryoglass.cli.options import rewrite_aliases
from cryoglass.fourier.rescale import resize_fourier
from cryoglass.io import make_particle_set, read_mrc, read_particles, write_mrc, write_relion_star
from cryoglass.simulate import gaussian_map
from cryoglass.validate import soft_sphere_mask

app = typer.Typer()
for _name, _module in (
    ("fsc", fsc_cli),
    ("mask", mask_cli),
    ("resample", resample_cli),
    ("localres", localres_cli),
):
    app.command(_name)(_module.main)
runner = CliRunner()
PIXEL = 2.0
BOX = 40


def _run(*args: str):
    return runner.invoke(app, rewrite_aliases([str(a) for a in args]))


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maps")
    g = torch.Generator().manual_seed(0)
    centers = (torch.rand(700, 3, generator=g, dtype=torch.float64) - 0.5) * 0.7 * BOX * PIXEL
    truth = gaussian_map(centers, shape=(BOX,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=1.3)
    sigma = 1.0 * float(truth.std())
    paths = {"truth": write_mrc(folder / "truth.mrc", truth.float(), pixel_size_angstrom=PIXEL)}
    for name in ("half1", "half2"):
        noisy = truth + sigma * torch.randn(truth.shape, generator=g, dtype=torch.float64)
        paths[name] = write_mrc(folder / f"{name}.mrc", noisy.float(), pixel_size_angstrom=PIXEL)
    mask = soft_sphere_mask((BOX,) * 3, radius_px=12, edge_width_px=4)
    paths["mask"] = write_mrc(folder / "mask.mrc", mask, pixel_size_angstrom=PIXEL)
    paths["bad_mask"] = write_mrc(folder / "bad_mask.mrc", 2.0 * mask, pixel_size_angstrom=PIXEL)
    paths["small"] = write_mrc(
        folder / "small.mrc", truth[:32, :32, :32].float(), pixel_size_angstrom=PIXEL
    )
    paths["flat"] = write_mrc(
        folder / "flat.mrc", truth[:, :, :36].float(), pixel_size_angstrom=PIXEL
    )
    return paths


# ------------------------------------------------------------------------------------ mask
def test_mask_json_plot_and_values(maps, tmp_path):
    out, plot = tmp_path / "mask.mrc", tmp_path / "mask.png"
    result = _run(
        "mask", maps["truth"], "--threshold", "0.05", "--lowpass", "10", "--extend-px", "2",
        "--soft-edge-px", "4", "--out", out, "--plot", plot, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["headline"] == mask_cli.HEADLINE and set(payload) >= set(mask_cli.HEADLINE)
    mask, info = read_mrc(out)
    assert info.pixel_size_angstrom == pytest.approx(PIXEL)
    assert float(mask.min()) >= 0.0 and float(mask.max()) == 1.0
    assert payload["mask_fraction"] == pytest.approx(float((mask > 0.5).double().mean()))
    assert 0.05 < payload["mask_fraction"] < 0.9 and plot.stat().st_size > 5000
    auto = _run("mask", maps["truth"], "--auto-threshold", "--out", tmp_path / "a.mrc", "--json")
    assert auto.exit_code == 0, auto.output
    assert json.loads(auto.stdout)["threshold_source"] == "otsu"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "either --threshold"),
        (["--threshold", "0.1", "--auto-threshold"], "either --threshold"),
        (["--threshold", "0.1", "--soft-edge-px", "-1"], "--soft-edge-px"),
        (["--threshold", "0.1", "--lowpass", "1.0"], "finer than Nyquist"),
        (["--threshold", "0.1", "--extend-px", "60"], "smaller than the box"),
    ],
)
def test_mask_bad_options_are_one_line_errors(maps, tmp_path, extra, message):
    result = _run("mask", maps["truth"], "--out", tmp_path / "m.mrc", *extra)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m.mrc").exists()


def test_mask_refuses_inputs_and_existing_outputs(maps, tmp_path):
    result = _run("mask", maps["truth"], "--threshold", "0.1", "--out", maps["truth"])
    assert result.exit_code == 2 and "is an input" in result.output
    (tmp_path / "m.mrc").write_text("keep")
    result = _run("mask", maps["truth"], "--threshold", "0.1", "--out", tmp_path / "m.mrc")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "m.mrc").read_text() == "keep"
    result = _run(
        "mask", maps["flat"], "--threshold", "0.1", "--lowpass", "10", "--out", tmp_path / "f.mrc"
    )
    assert result.exit_code == 2 and "cubic" in result.output


# ------------------------------------------------------------------------------------ resample
def test_resample_map_by_pixel_size_box_and_both(maps, tmp_path):
    truth, _ = read_mrc(maps["truth"])
    result = _run("resample", maps["truth"], "--apix", "3.1", "--out", tmp_path / "a.mrc", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # 40 px · 2 Å / 3.1 Å = 25.8 → 26 (even): 80/26 Å
    assert payload["box"] == 26 and payload["pixel_size_angstrom"] == pytest.approx(80 / 26)
    a, info = read_mrc(tmp_path / "a.mrc")
    assert a.shape == (26, 26, 26) and info.pixel_size_angstrom == pytest.approx(80 / 26, rel=1e-5)
    torch.testing.assert_close(
        a, resize_fourier(truth.double(), (26, 26, 26)).float(), atol=1e-5, rtol=0
    )
    assert float(a.mean()) == pytest.approx(float(truth.mean()), abs=1e-6)
    result = _run("resample", maps["truth"], "--box", "64", "--out", tmp_path / "b.mrc", "--json")
    assert json.loads(result.stdout)["pixel_size_angstrom"] == pytest.approx(1.25)
    # both: rescale to 3.1 Å (26 px), then window in real space to 30 px (RELION's --new_box)
    result = _run(
        "resample", maps["truth"], "--apix", "3.1", "--box", "30", "--out", tmp_path / "c.mrc"
    )
    assert result.exit_code == 0, result.output
    c, _ = read_mrc(tmp_path / "c.mrc")
    assert c.shape == (30, 30, 30)
    torch.testing.assert_close(c[2:28, 2:28, 2:28], a)
    assert float(c[0].abs().max()) == 0.0


def _stack_and_star(folder, n=7, box=32):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, box, box, generator=g)
    stack = write_mrc(folder / "parts.mrcs", images, pixel_size_angstrom=1.7, stack=True)
    particles = make_particle_set(
        [f"{i + 1:06d}@parts.mrcs" for i in range(n)],
        pixel_size_angstrom=1.7,
        image_size=box,
        euler_deg=torch.rand(n, 3, generator=g, dtype=torch.float64) * 90,
        shift_angstrom=torch.randn(n, 2, generator=g, dtype=torch.float64),
        image_root=folder,
    )
    star = write_relion_star(folder / "parts.star", particles)
    return images, stack, star, read_particles(star)  # the values as written (6 decimals)


def test_resample_star_streams_the_stack_and_rewrites_the_star(tmp_path):
    images, _, star, particles = _stack_and_star(tmp_path)
    out = tmp_path / "out" / "small.star"
    out.parent.mkdir()
    result = _run("resample", star, "--box", "20", "--batch-size", "3", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_images"] == 7 and payload["pixel_size_angstrom"] == pytest.approx(
        1.7 * 32 / 20
    )
    new = read_particles(out)
    assert new.image_size == 20 and new.image_files == (tmp_path / "out" / "small.mrcs",)
    torch.testing.assert_close(
        new.pixel_size_angstrom, torch.full((7,), 1.7 * 32 / 20, dtype=torch.float64)
    )
    torch.testing.assert_close(new.shift_angstrom, particles.shift_angstrom)
    torch.testing.assert_close(new.euler_deg, particles.euler_deg)
    got, _ = read_mrc(tmp_path / "out" / "small.mrcs")
    torch.testing.assert_close(got, resize_fourier(images, (20, 20)), atol=1e-5, rtol=0)
    assert starfile.read(out)["particles"]["rlnImageName"].tolist()[0] == "000001@small.mrcs"


def test_resample_stack_and_input_pixel_size_alias(tmp_path):
    images, stack, _, _ = _stack_and_star(tmp_path)
    # --angpix is the *input's* pixel size for resample (a hidden alias of --input-apix)
    result = _run(
        "resample",
        stack,
        "--angpix",
        "1.0",
        "--apix",
        "2.0",
        "--out",
        tmp_path / "s.mrcs",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["input_pixel_size_angstrom"] == 1.0 and payload["box"] == 16
    got, info = read_mrc(tmp_path / "s.mrcs")
    assert got.shape == (7, 16, 16) and info.is_stack


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.mrc"], "give --apix"),
        (["--box", "31", "--out", "x.mrc"], "even"),
        (["--apix", "0", "--out", "x.mrc"], "positive"),
        (["--apix", "3.0", "--out", "x.mrcs"], "written as .mrc"),
        (["--apix", "100", "--out", "x.mrc"], "less than 2 pixels"),
    ],
)
def test_resample_bad_inputs(maps, tmp_path, args, message):
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    result = _run("resample", maps["truth"], *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_resample_never_writes_over_its_input_stack(tmp_path):
    _, _, star, _ = _stack_and_star(tmp_path)
    result = _run("resample", star, "--box", "16", "--out", tmp_path / "parts.star")
    assert result.exit_code == 2 and "input" in result.output
    result = _run("resample", star, "--box", "16", "--out", tmp_path / "other" / "parts.star")
    assert result.exit_code == 2  # another folder that does not exist: one-line error
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------ localres
def test_localres_writes_its_files_and_json(maps, tmp_path):
    out = tmp_path / "lr"
    args = ["localres", maps["half1"], maps["half2"], "--mask", maps["mask"], "--sampling", "12"]
    result = _run(*args, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["headline"] == localres_cli.HEADLINE and set(payload) >= set(
        localres_cli.HEADLINE
    )
    for name in localres_cli.OUTPUT_FILES.values():
        assert (out / name).stat().st_size > 100, name
    res, info = read_mrc(out / "localres.mrc")
    mask, _ = read_mrc(maps["mask"])
    inside = res[mask > 0.5]
    assert info.pixel_size_angstrom == pytest.approx(PIXEL)
    assert payload["median_resolution_angstrom"] == pytest.approx(
        float(inside.double().median()), rel=1e-3
    )
    assert 2 * PIXEL <= payload["median_resolution_angstrom"] < 20.0
    script = (out / "localres.cxc").read_text()
    assert "color sample #1 map #2 palette" in script and "open localres.mrc" in script
    assert json.loads((out / "localres.json").read_text())["n_windows"] == payload["n_windows"]
    again = _run(*args, "--out", out)
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.parametrize(
    ("which", "extra", "message"),
    [
        ("small", [], "different boxes"),
        ("half2", ["--mask", "bad_mask"], "[0, 1]"),
        ("half2", ["--sampling", "60"], "larger than the box"),
        ("half2", ["--sampling", "-1"], "positive"),
    ],
)
def test_localres_bad_inputs_are_one_line_errors(maps, tmp_path, which, extra, message):
    extra = [str(maps[e]) if e in maps else e for e in extra]
    result = _run("localres", maps["half1"], maps[which], *extra, "--out", tmp_path / "lr")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "lr" / "localres.mrc").exists()


def test_localres_needs_cubic_maps(maps, tmp_path):
    result = _run("localres", maps["flat"], maps["flat"], "--out", tmp_path / "lr")
    assert result.exit_code == 2 and "cubic" in result.output


# ------------------------------------------------------------------------------------ fsc
def test_fsc_writes_emdb_xml_and_relion_star(maps, tmp_path):
    xml, star = tmp_path / "fsc.xml", tmp_path / "fsc.star"
    args = ["fsc", maps["half1"], maps["half2"], "--mask", maps["mask"]]
    result = _run(*args, "--xml", xml, "--star", star, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    curve = np.array([row["fsc"] for row in payload["shells"]])
    y = [float(p.find("y").text) for p in ET.parse(xml).getroot().findall("coordinate")]
    np.testing.assert_allclose(y, curve, atol=1e-6)
    table = starfile.read(star)["fsc"]
    np.testing.assert_allclose(table["rlnFourierShellCorrelationCorrected"], curve, atol=1e-6)
    unmasked = [row["fsc_unmasked"] for row in payload["shells"]]
    np.testing.assert_allclose(table["rlnFourierShellCorrelationUnmaskedMaps"], unmasked, atol=1e-6)
    again = _run(*args, "--xml", xml)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert _run(*args, "--xml", xml, "--overwrite").exit_code == 0
