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


# ----------------------------------------------------------------------------- motioncorr


@pytest.fixture(scope="module")
def corrected(movies, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mc") / "MC"
    result = _run("motioncorr", movies / "movies.star", "--out", out, "--dose-per-frame", 5,
                  "--save-no-dw", "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    assert json.loads(result.stdout)["headline"][0] == "movies"
    return out


def test_motioncorr_writes_relions_layout(corrected, movies):
    from cryoglass.io.micrographs import read_motion_star

    table = read_micrograph_table(corrected / "corrected_micrographs.star")
    assert table.kind == "micrographs" and table.names[0] == "Movies/mic_0001.mrc"
    assert table.pixel_size_angstrom(0) == PIXEL
    assert table.column("rlnAccumMotionTotal")[0] > 0
    image, info = read_mrc(corrected / "Movies" / "mic_0001.mrc")
    assert image.shape == (160, 160) and info.pixel_size_angstrom == pytest.approx(PIXEL)
    assert (corrected / "Movies" / "mic_0001_noDW.mrc").is_file()
    assert (corrected / "Movies" / "mic_0001_shifts.png").is_file()
    track = read_motion_star(corrected / "Movies" / "mic_0001.star")
    truth = read_motion_truth(movies / "truth" / "motion.star")["mic_0001"]["global"]
    assert track.global_shifts_px.shape == (6, 2) and track.dose_per_frame == 5.0
    # the global track follows the truth (RELION's sign) to a fraction of a pixel
    assert float((track.global_shifts_px - truth).norm(dim=1).max()) < 1.0


def test_motioncorr_bins_and_refuses_to_overwrite(corrected, movies, tmp_path):
    result = _run("motioncorr", movies / "movies.star", "--out", corrected)
    assert result.exit_code == 2 and "--overwrite" in _text(result)
    result = _run("motioncorr", movies / "movies.star", "--out", tmp_path / "b", "--bin", 2,
                  "--no-plots")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    table = read_micrograph_table(tmp_path / "b" / "corrected_micrographs.star")
    assert table.pixel_size_angstrom(0) == 2 * PIXEL
    image, _ = read_mrc(tmp_path / "b" / "Movies" / "mic_0001.mrc")
    assert image.shape == (80, 80)
    # writing into the movies' own folder would replace them
    result = _run("motioncorr", movies / "movies.star", "--out", movies)
    assert result.exit_code == 2 and "is an input" in _text(result)


def _copy_movies(movies: Path, target: Path, *, frames_of_second: int | None = None,
                 gain: bool = True, pixel: bool = True) -> Path:  # fmt: skip
    import shutil

    from cryoglass.io.micrographs import (
        MicrographOptics,
        read_movie,
        write_micrograph_table,
        write_movie,
    )

    (target / "Movies").mkdir(parents=True)
    for i in (1, 2):
        frames = read_movie(movies / "Movies" / f"mic_000{i}.mrc")
        if i == 2 and frames_of_second is not None:
            frames = frames[:frames_of_second]
        write_movie(target / "Movies" / f"mic_000{i}.mrc", frames, pixel_size_angstrom=PIXEL)
    if gain:
        shutil.copy(movies / "gain.mrc", target / "gain.mrc")
    optics = MicrographOptics(original_pixel_size_angstrom=PIXEL, voltage_kv=300.0, cs_mm=2.7,
                              amplitude_contrast=0.1, gain_name="gain.mrc")  # fmt: skip
    star = write_micrograph_table(
        target / "movies.star",
        ["Movies/mic_0001.mrc", "Movies/mic_0002.mrc"],
        kind="movies",
        optics=optics,
    )
    if not pixel:
        text = star.read_text().replace("_rlnMicrographOriginalPixelSize", "_rlnSomethingElse")
        star.write_text(text)
    return star


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"frames_of_second": 4}, "inconsistent movies"),
        ({"gain": False}, "gain reference not found"),
        ({"pixel": False}, "no pixel size"),
    ],
)
def test_motioncorr_refuses_bad_movies_in_one_line(movies, tmp_path, case, message):
    star = _copy_movies(movies, tmp_path / "in", **case)
    result = _run("motioncorr", star, "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in _text(result), _text(result)
    assert len(set(_text(result).strip().splitlines())) == 1
    assert not (tmp_path / "out" / "corrected_micrographs.star").exists()


def test_motioncorr_apix_supplies_a_missing_pixel_size(movies, tmp_path):
    star = _copy_movies(movies, tmp_path / "in", pixel=False)
    result = _run("motioncorr", star, "--out", tmp_path / "out", "--apix", PIXEL, "--no-plots")
    assert result.exit_code == 0, _text(result)


def test_motioncorr_on_dask_workers_gives_the_same_micrographs(movies, corrected, tmp_path):
    result = _run("motioncorr", movies / "movies.star", "--out", tmp_path / "d", "--workers", 2,
                  "--dose-per-frame", 5, "--no-plots")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    for i in (1, 2):
        a, _ = read_mrc(corrected / "Movies" / f"mic_000{i}.mrc")
        b, _ = read_mrc(tmp_path / "d" / "Movies" / f"mic_000{i}.mrc")
        assert torch.allclose(a, b, atol=1e-3 * float(a.abs().max()))


# ----------------------------------------------------------------------------- extract


@pytest.fixture(scope="module")
def micrographs(potential, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mics") / "sim"
    result = _run("simulate-movies", "--volume", potential, "--n-micrographs", 2, "--size", 192,
                  "--no-movies", "--crowding", 0.3, "--out", out, "--seed", 3)  # fmt: skip
    assert result.exit_code == 0, _text(result)
    return out


def test_extract_writes_normalised_particles_with_their_ctf(micrographs, tmp_path):
    from cryoglass.io import read_images, read_particles

    star = micrographs / "truth" / "micrographs_ctf.star"
    coords = micrographs / "truth" / "coordinates.star"
    result = _run("extract", star, "--coords", coords, "--box", 48, "--invert-contrast",
                  "--out", tmp_path / "ex", "--json")  # fmt: skip
    assert result.exit_code == 0, _text(result)
    summary = json.loads(result.stdout)
    particles = read_particles(tmp_path / "ex" / "particles.star")
    truth = read_coordinates(coords, ["mic_0001", "mic_0002"])
    assert (
        summary["particles"]
        == len(particles)
        == sum(len(t["coordinates_px"]) for t in truth.values())
    )
    assert particles.image_size == 48 and float(particles.pixel_size_angstrom[0]) == PIXEL
    table = read_micrograph_table(star)
    first = particles.particles_table["rlnMicrographName"] == "Micrographs/mic_0001.mrc"
    assert torch.allclose(
        particles.ctf.defocus_u_angstrom[torch.tensor(first.to_numpy())],
        table.ctf.defocus_u_angstrom[0].expand(int(first.sum())),
    )
    images = read_images(particles, torch.arange(len(particles))).double()
    offsets = torch.arange(48) - 24
    background = offsets[:, None] ** 2 + offsets[None, :] ** 2 > 18**2  # default 0.375 × 48
    assert float(images[:, background].mean(dim=1).abs().max()) < 1e-4
    assert float((images[:, background].std(dim=1, unbiased=False) - 1).abs().max()) < 1e-4
    # inverted raw data: the particle (dark in the micrograph) is bright at the centre
    centre = images[:, 20:28, 20:28].mean()
    assert float(centre) > 0.2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--box", "400"], "larger than micrograph"),
        (["--box", "47"], "must be even"),
        (["--box", "48", "--bin", "5"], "--bin 5"),
        (["--box", "48", "--bg-radius", "30"], "--bg-radius 30"),
    ],
)
def test_extract_refuses_bad_boxes(micrographs, tmp_path, extra, message):
    truth = micrographs / "truth"
    result = _run("extract", truth / "micrographs_ctf.star", "--coords",
                  truth / "coordinates.star", "--out", tmp_path / "x", *extra)  # fmt: skip
    assert result.exit_code == 2 and message in _text(result), _text(result)
    assert not (tmp_path / "x" / "particles.star").exists()


def test_extract_refuses_coordinates_outside_the_micrograph(micrographs, tmp_path):
    from cryoglass.io.micrographs import write_coordinates_star

    folder = tmp_path / "picks" / "Micrographs"
    folder.mkdir(parents=True)
    write_coordinates_star(folder / "mic_0001_autopick.star", torch.tensor([[10.0, 20.0]]))
    path = write_coordinates_star(folder / "mic_0002_autopick.star",
                                  torch.tensor([[50.0, 60.0], [250.0, 30.0]]))  # fmt: skip
    result = _run("extract", micrographs / "truth" / "micrographs_ctf.star", "--coords",
                  tmp_path / "picks", "--box", 48, "--out", tmp_path / "x")  # fmt: skip
    assert result.exit_code == 2 and "outside micrograph" in _text(result)
    assert str(path) in _text(result) and "particle 2" in _text(result)


def test_extract_reads_a_folder_of_picks_bins_and_runs_on_dask(micrographs, tmp_path):
    from cryoglass.io import read_images, read_particles
    from cryoglass.io.micrographs import write_coordinates_star

    truth = read_coordinates(micrographs / "truth" / "coordinates.star", ["mic_0001", "mic_0002"])
    folder = tmp_path / "picks" / "Micrographs"
    folder.mkdir(parents=True)
    for stem, entry in truth.items():
        xy = entry["coordinates_px"]
        write_coordinates_star(folder / f"{stem}_autopick.star", xy, figure_of_merit=xy[:, 0])
    star = micrographs / "truth" / "micrographs_ctf.star"
    one = _run("extract", star, "--coords", tmp_path / "picks", "--box", 48, "--bin", 2,
               "--out", tmp_path / "a")  # fmt: skip
    assert one.exit_code == 0, _text(one)
    two = _run("extract", star, "--coords", tmp_path / "picks", "--box", 48, "--bin", 2,
               "--out", tmp_path / "b", "--workers", 2)  # fmt: skip
    assert two.exit_code == 0, _text(two)
    a = read_particles(tmp_path / "a" / "particles.star")
    b = read_particles(tmp_path / "b" / "particles.star")
    assert a.image_size == 24 and float(a.pixel_size_angstrom[0]) == 2 * PIXEL
    assert "rlnAutopickFigureOfMerit" in a.particles_table.columns
    assert torch.equal(read_images(a, torch.arange(len(a))), read_images(b, torch.arange(len(b))))


# ----------------------------------------------------------------------------- the demo


@pytest.mark.slow
def test_preprocessing_demo_scores_every_step_against_the_truth(tmp_path):
    from cryoglass.demos.preprocessing import run

    sections = run(tmp_path, seed=0)
    table = dict(sections[0].table)
    motion = float(table["motion: RMS trajectory error (global + local, 4 × 4 points)"].split()[0])
    assert motion < 1.0
    assert float(table["CTF: mean defocus error"].split()[0]) < 1.0
    f1 = float(table["picking (LoG, automatic threshold): precision / recall / F1"].split()[-1])
    assert f1 > 0.9
    for name, _ in sections[0].figures:
        assert (tmp_path / name).stat().st_size > 1000
