"""The preprocessing commands end to end on simulated movies: outputs, truth, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.io import read_mrc, write_mrc
from cryoglass.io.micrographs import read_coordinates, read_micrograph_table, read_motion_truth
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
def potential(tmp_path_factory) -> Path:
    g = torch.Generator().manual_seed(3)
    centres = (torch.rand(12, 3, generator=g) - 0.5) * 16
    v = gaussian_map(centres, shape=(24, 24, 24), pixel_size_angstrom=PIXEL, sigma_angstrom=2.5)
    path = tmp_path_factory.mktemp("map") / "potential.mrc"
    write_mrc(path, 20 * v / v.max(), pixel_size_angstrom=PIXEL)
    return path


@pytest.fixture(scope="module")
def movies(tmp_path_factory, potential) -> Path:
    out = tmp_path_factory.mktemp("sim") / "sim"
    result = _run(
        "simulate-movies",
        "--volume",
        potential,
        "--n-micrographs",
        2,
        "--size",
        160,
        "--frames",
        6,
        "--dose-per-frame",
        5,
        "--gain-spread",
        0.05,
        "--crowding",
        0.3,
        "--drift-angstrom",
        12,
        "--out",
        out,
        "--json",
    )
    assert result.exit_code == 0, _text(result)
    return out


def test_simulate_movies_writes_relion_files_and_the_truth(movies):
    table = read_micrograph_table(movies / "movies.star")
    assert table.kind == "movies" and table.names == ("Movies/mic_0001.mrc", "Movies/mic_0002.mrc")
    assert table.pixel_size_angstrom(0) == PIXEL and table.gain_file(0) == movies / "gain.mrc"
    frames, info = read_mrc(movies / "Movies" / "mic_0001.mrc")
    assert frames.shape == (6, 160, 160) and info.mode == 6
    assert info.pixel_size_angstrom == pytest.approx(PIXEL)
    truth = read_micrograph_table(movies / "truth" / "micrographs_ctf.star")
    assert truth.ctf is not None and bool((truth.ctf.defocus_u_angstrom >= 8000).all())
    coordinates = read_coordinates(movies / "truth" / "coordinates.star", truth.stems)
    assert sum(len(c["coordinates_px"]) for c in coordinates.values()) > 2
    motion = read_motion_truth(movies / "truth" / "motion.star")
    assert motion["mic_0001"]["global"].shape == (6, 2)
    assert motion["mic_0001"]["local"].shape == (6, 36, 2)
    drift = motion["mic_0001"]["global"].diff(dim=0).norm(dim=1).sum()
    assert float(drift) == pytest.approx(12 / PIXEL, rel=1e-4)


def test_simulate_movies_json_and_no_movies(potential, tmp_path):
    result = _run(
        "simulate-movies",
        "--volume",
        potential,
        "--n-micrographs",
        1,
        "--size",
        128,
        "--no-movies",
        "--out",
        tmp_path / "mics",
        "--json",
        "--seed",
        4,
    )
    assert result.exit_code == 0, _text(result)
    summary = json.loads(result.stdout)
    assert summary["headline"][0] == "micrographs" and summary["frames"] == 0
    table = read_micrograph_table(tmp_path / "mics" / "micrographs.star")
    assert table.kind == "micrographs" and table.pixel_size_angstrom(0) == PIXEL
    image, _ = read_mrc(tmp_path / "mics" / "Micrographs" / "mic_0001.mrc")
    assert image.shape == (128, 128)
    assert float(image.mean()) == pytest.approx(summary["total_dose_e_per_a2"] * PIXEL**2, rel=0.05)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "2"], "at least 3 frames"),
        (["--size", "40"], "--size 40"),
        (["--size", "100x"], "--size 100x"),
        (["--n-micrographs", "0"], "--n-micrographs 0"),
        (["--dose-per-frame", "0"], "--dose-per-frame 0"),
        (["--defocus-min", "30000"], "need 0 ≤ min ≤ max"),
    ],
)
def test_simulate_movies_refuses_bad_options(potential, tmp_path, extra, message):
    args = ["simulate-movies", "--volume", potential, "--out", tmp_path / "x", "--size", "128"]
    args += ["--n-micrographs", "1"] if "--n-micrographs" not in extra else []
    result = _run(*args, *extra)
    assert result.exit_code == 2 and message in _text(result)
    assert len(set(_text(result).strip().splitlines())) == 1  # one line (stdout/err mixed)


def test_simulate_movies_refuses_a_full_folder_and_two_sources(potential, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep")
    result = _run(
        "simulate-movies", "--volume", potential, "--n-micrographs", 1, "--out", tmp_path / "full"
    )
    assert result.exit_code == 2 and "not empty" in _text(result)
    result = _run(
        "simulate-movies",
        "--volume",
        potential,
        "--model",
        potential,
        "--n-micrographs",
        1,
        "--out",
        tmp_path / "y",
    )
    assert result.exit_code == 2 and "exactly one" in _text(result)
