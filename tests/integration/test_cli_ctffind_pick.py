"""ctffind, select-micrographs and pick end to end on simulated micrographs with a known truth."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import starfile
import torch
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.io import write_mrc
from cryoglass.io.micrographs import read_coordinates, read_micrograph_table
from cryoglass.preprocess.pick import match_picks
from cryoglass.simulate.phantom import gaussian_map

PIXEL = 2.0


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _text(result) -> str:
    try:
        return result.output + (result.stderr or "")
    except ValueError:
        return result.output


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three 512² micrographs (2 Å/px) of a 12-blob particle, made by simulate-movies."""
    g = torch.Generator().manual_seed(5)
    centres = (torch.rand(12, 3, generator=g) - 0.5) * 18
    volume = gaussian_map(centres, shape=(32, 32, 32), pixel_size_angstrom=PIXEL,
                          sigma_angstrom=3.0)  # fmt: skip
    folder = tmp_path_factory.mktemp("data")
    write_mrc(folder / "potential.mrc", 25 * volume / volume.max(), pixel_size_angstrom=PIXEL)
    out = folder / "sim"
    result = _run(
        "simulate-movies", "--volume", folder / "potential.mrc", "--n-micrographs", 3,
        "--size", 512, "--no-movies", "--crowding", 0.25, "--frames", 5,
        "--dose-per-frame", 8, "--defocus-min", 10000, "--defocus-max", 25000,
        "--astigmatism-angstrom", 1500, "--out", out, "--seed", 2,
    )  # fmt: skip
    assert result.exit_code == 0, _text(result)
    return out


@pytest.fixture(scope="module")
def ctf_run(dataset, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ctf") / "CtfFind"
    result = _run("ctffind", dataset / "micrographs.star", "--out", out, "--tile-size", 256,
                  "--max-res", 6, "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    return out, json.loads(result.stdout)


def test_ctffind_matches_the_truth_and_writes_relion_columns(dataset, ctf_run):
    out, summary = ctf_run
    assert summary["micrographs"] == 3
    assert set(summary["headline"]) <= set(summary)
    fitted = read_micrograph_table(out / "micrographs_ctf.star")
    truth = read_micrograph_table(dataset / "truth" / "micrographs_ctf.star")
    assert fitted.stems == truth.stems
    assert all(f.is_file() for f in fitted.files)  # names rewritten for the new folder
    mean_fit = 0.5 * (fitted.ctf.defocus_u_angstrom + fitted.ctf.defocus_v_angstrom)
    mean_true = 0.5 * (truth.ctf.defocus_u_angstrom + truth.ctf.defocus_v_angstrom)
    assert float(((mean_fit - mean_true).abs() / mean_true).max()) < 0.01
    astigmatism = truth.ctf.defocus_u_angstrom - truth.ctf.defocus_v_angstrom
    error = (fitted.ctf.astigmatism_angle_deg - truth.ctf.astigmatism_angle_deg + 90) % 180 - 90
    assert float(error[astigmatism >= 500].abs().max()) < 5.0
    table = starfile.read(out / "micrographs_ctf.star")["micrographs"]
    for column in ("rlnCtfImage", "rlnDefocusU", "rlnDefocusV", "rlnCtfAstigmatism",
                   "rlnDefocusAngle", "rlnCtfFigureOfMerit", "rlnCtfMaxResolution"):  # fmt: skip
        assert column in table.columns
    for name in table["rlnCtfImage"]:
        assert name.endswith(":mrc") and (out / name[: -len(":mrc")]).is_file()
    assert all((out / f"mic_{i:04d}_ctf.png").is_file() for i in (1, 2, 3))


def test_ctffind_refuses_bad_input(dataset, ctf_run, tmp_path):
    star = dataset / "micrographs.star"
    out, _ = ctf_run
    cases = [
        (["--out", out], "exists; pass --overwrite"),
        (["--out", tmp_path / "a", "--tile-size", 1024], "smaller than the spectrum tile"),
        (["--out", tmp_path / "b", "--max-res", 3], "beyond Nyquist"),
        (["--out", tmp_path / "c", "--defocus-min", 3e4, "--defocus-max", 2e4], "defocus range"),
    ]
    for extra, message in cases:
        result = _run("ctffind", star, *extra)
        assert result.exit_code != 0 and message in _text(result), (extra, _text(result))
        assert "Traceback" not in _text(result)
    blocks = starfile.read(star, always_dict=True)
    missing = tmp_path / "missing.star"
    starfile.write({"micrographs": blocks["micrographs"]}, missing)
    result = _run("ctffind", missing, "--out", tmp_path / "d")
    assert result.exit_code != 0 and "pixel size" in _text(result)
    gone = blocks["micrographs"].copy()
    gone["rlnMicrographName"] = ["nowhere.mrc"] * len(gone)
    starfile.write({"optics": blocks["optics"], "micrographs": gone}, tmp_path / "gone.star")
    result = _run("ctffind", tmp_path / "gone.star", "--out", tmp_path / "e")
    assert result.exit_code != 0 and "nowhere.mrc not found" in _text(result)


def test_select_micrographs_applies_cuts_and_plots(ctf_run, tmp_path):
    out, _ = ctf_run
    star = out / "micrographs_ctf.star"
    table = starfile.read(star)["micrographs"]
    mean = 0.5 * (table["rlnDefocusU"] + table["rlnDefocusV"])
    cut = float(mean.median())
    selected = tmp_path / "selected.star"
    result = _run("select-micrographs", star, "--out", selected, "--defocus-max", cut, "--json")
    assert result.exit_code == 0, _text(result)
    summary = json.loads(result.stdout)
    kept = starfile.read(selected, always_dict=True)
    assert summary["selected"] == int((mean <= cut).sum()) == len(kept["micrographs"])
    assert list(kept["micrographs"].columns) == list(table.columns)
    assert "optics" in kept
    assert read_micrograph_table(selected).files[0].is_file()  # names still resolve
    assert (tmp_path / "selected_selection.png").is_file()
    refused = _run("select-micrographs", star, "--out", tmp_path / "x.star", "--max-drift", 10)
    assert refused.exit_code != 0 and "--max-drift" in _text(refused)
    again = _run("select-micrographs", star, "--out", selected)
    assert again.exit_code != 0 and "--overwrite" in _text(again)


def test_select_micrographs_uses_drift_columns(ctf_run, tmp_path):
    out, _ = ctf_run
    blocks = starfile.read(out / "micrographs_ctf.star", always_dict=True)
    blocks["micrographs"]["rlnAccumMotionTotal"] = [5.0, 50.0, 10.0]
    with_drift = out / "with_drift.star"
    starfile.write(blocks, with_drift)
    result = _run("select-micrographs", with_drift, "--out", tmp_path / "s.star",
                  "--max-drift", 20, "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    assert json.loads(result.stdout)["selected"] == 2


def test_select_micrographs_sums_drift_from_motion_files(ctf_run, tmp_path):
    from cryoglass.io.micrographs import MotionTrack, write_motion_star

    out, _ = ctf_run
    blocks = starfile.read(out / "micrographs_ctf.star", always_dict=True)
    names = []
    for i, step in enumerate((0.5, 3.0, 1.0)):  # px per frame along x, 1.5 Å/px
        shifts = torch.stack([torch.arange(11.0) * step, torch.zeros(11)], dim=-1).double()
        track = MotionTrack(movie_name=f"m{i}.mrc", shape_px=(512, 512, 11),
                            global_shifts_px=shifts, pixel_size_angstrom=1.5)  # fmt: skip
        write_motion_star(tmp_path / f"m{i}.star", track)
        names.append(str(tmp_path / f"m{i}.star"))
    blocks["micrographs"]["rlnMicrographMetadata"] = names
    star = out / "with_motion.star"
    starfile.write(blocks, star)
    result = _run("select-micrographs", star, "--out", tmp_path / "s.star", "--max-drift", 20,
                  "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    assert json.loads(result.stdout)["selected"] == 2  # drifts 7.5, 45 and 15 Å


def _f1(dataset: Path, picks: Path, diameter_px: float) -> float:
    truth = starfile.read(dataset / "truth" / "coordinates.star")
    stems = [Path(n).stem for n in truth["rlnMicrographName"].unique()]
    found = read_coordinates(picks, stems)
    tp = fp = fn = 0
    for stem in stems:
        rows = truth[truth["rlnMicrographName"].map(lambda n: Path(n).stem) == stem]
        true_xy = torch.tensor(rows[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy())
        m = match_picks(found[stem]["coordinates_px"], true_xy, tolerance_px=diameter_px / 4)
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
    return 2 * tp / (2 * tp + fp + fn)


@pytest.fixture(scope="module")
def diameter(dataset) -> float:
    return float(starfile.read(dataset / "truth" / "coordinates.star")["rlnParticleDiameter"][0])


def test_pick_log_finds_the_particles(dataset, ctf_run, diameter, tmp_path):
    out, _ = ctf_run
    picks = tmp_path / "AutoPick"
    result = _run("pick", out / "micrographs_ctf.star", "--diameter", diameter, "--out", picks,
                  "--overlays", 1, "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    summary = json.loads(result.stdout)
    assert summary["method"] == "LoG" and summary["threshold_automatic"]
    assert _f1(dataset, picks, diameter / PIXEL) >= 0.9
    for stem in ("mic_0001", "mic_0002", "mic_0003"):
        table = starfile.read(picks / f"{stem}_autopick.star")
        assert {"rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit"} <= set(table)
    every = starfile.read(picks / "autopick.star")
    assert len(every) == summary["picks"] and "rlnMicrographName" in every
    assert (picks / "fom_histogram.png").is_file()
    assert (picks / "overlays" / "mic_0001_picks.png").is_file()
    higher = _run("pick", out / "micrographs_ctf.star", "--diameter", diameter, "--out", picks,
                  "--threshold", summary["threshold"] * 2, "--overwrite", "--json")  # fmt: skip
    assert json.loads(higher.stdout)["picks"] < summary["picks"]


def test_pick_with_map_templates(dataset, ctf_run, diameter, tmp_path):
    out, _ = ctf_run
    picks = tmp_path / "Templates"
    result = _run("pick", out / "micrographs_ctf.star", "--diameter", diameter, "--out", picks,
                  "--map", dataset / "truth" / "potential.mrc", "--angular-step", 60,
                  "--psi-step", 20, "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    assert json.loads(result.stdout)["method"] == "map"
    assert _f1(dataset, picks, diameter / PIXEL) >= 0.9


def test_pick_refuses_bad_input(dataset, tmp_path):
    star = dataset / "micrographs.star"
    cases = [
        (["--diameter", 5000], "larger than the micrograph"),
        (["--diameter", 60, "--map", tmp_path / "none.mrc"], "not found"),
        (["--diameter", 60, "--map", star, "--reference", star], "not both"),
    ]
    for extra, message in cases:
        result = _run("pick", star, "--out", tmp_path / "p", *extra)
        assert result.exit_code != 0 and message in _text(result), (extra, _text(result))
        assert "Traceback" not in _text(result)


@pytest.mark.slow
def test_ctffind_and_pick_on_dask_give_the_same_results(dataset, ctf_run, diameter, tmp_path):
    out, summary = ctf_run
    result = _run("ctffind", dataset / "micrographs.star", "--out", tmp_path / "ctf",
                  "--tile-size", 256, "--max-res", 6, "--workers", 2, "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    here = pd.DataFrame(summary["per_micrograph"])
    there = pd.DataFrame(json.loads(result.stdout)["per_micrograph"])
    for column in ("defocus_u_angstrom", "defocus_v_angstrom", "astigmatism_angle_deg"):
        assert (here[column] - there[column]).abs().max() < 1e-6
    a = _run("pick", out / "micrographs_ctf.star", "--diameter", diameter, "--out",
             tmp_path / "p1", "--json")  # fmt: skip
    b = _run("pick", out / "micrographs_ctf.star", "--diameter", diameter, "--out",
             tmp_path / "p2", "--workers", 2, "--json")  # fmt: skip
    assert json.loads(a.stdout)["picks"] == json.loads(b.stdout)["picks"]


def test_ctffind_takes_ctffind_spellings_of_the_defocus_range():
    from cryoglass.cli.options import rewrite_aliases

    args = ["ctffind", "m.star", "--min-defocus", "3000", "--max-defocus=40000"]
    assert rewrite_aliases(args) == [
        "ctffind",
        "m.star",
        "--defocus-min",
        "3000",
        "--defocus-max=40000",
    ]
