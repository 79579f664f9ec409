"""`cryoglass simulate` end to end: outputs readable by cryoglass' readers, resampling, errors."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli.simulate import main
from cryoglass.io import (
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    read_mrc,
    read_particles,
    write_mrc,
    write_relion_star,
)
from cryoglass.simulate import gaussian_map
from cryoglass.simulate.dataset import ParticleDistributions, dataset_parameters, simulate_dataset

PIXEL = 2.0

app = typer.Typer()
app.command()(main)


def _run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _text(result) -> str:
    try:
        return result.output + (result.stderr or "")
    except ValueError:
        return result.output


@pytest.fixture(scope="module")
def map_path(tmp_path_factory) -> Path:
    g = torch.Generator().manual_seed(0)
    centers = (torch.rand(15, 3, generator=g) - 0.5) * 24
    volume = gaussian_map(
        centers, shape=(32, 32, 32), pixel_size_angstrom=PIXEL, sigma_angstrom=3.0
    )
    path = tmp_path_factory.mktemp("map") / "map.mrc"
    write_mrc(path, volume, pixel_size_angstrom=PIXEL)
    return path


def test_outputs_are_consistent_and_readable(map_path, tmp_path):
    out = tmp_path / "sim"
    result = _run(
        "--volume",
        map_path,
        "--n-particles",
        300,
        "--out",
        out,
        "--snr",
        1.0,
        "--seed",
        11,
        "--shift-std-angstrom",
        2.0,
        "--astigmatism-angstrom",
        400,
        "--chunk-size",
        128,
        "--views",
        "vmf:4",
    )
    assert result.exit_code == 0, _text(result)
    for name in (
        "particles.mrcs",
        "particles.star",
        "poses.pkl",
        "ctf.pkl",
        "truth.mrc",
        "report.html",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp"))
    # images: the library's stream, written in order
    with mrcfile.open(out / "particles.mrcs", permissive=False) as mrc:
        stack = torch.from_numpy(np.array(mrc.data))
        assert mrc.header.ispg == 0 and float(mrc.voxel_size.x) == pytest.approx(PIXEL)
        assert float(mrc.header.dmean) == pytest.approx(
            float(stack.double().mean()), rel=1e-4, abs=1e-6
        )
    volume, _ = read_mrc(map_path)
    truth, info = read_mrc(out / "truth.mrc")
    assert torch.equal(truth, volume) and info.pixel_size_angstrom == pytest.approx(PIXEL)
    from cryoglass.simulate.distributions import VonMisesFisherViews

    dist = ParticleDistributions(
        views=VonMisesFisherViews(kappa=4.0), shift_scale_angstrom=2.0, astigmatism_angstrom=400.0
    )
    expected = torch.cat(
        [
            c.images
            for c in simulate_dataset(
                volume, n=300, pixel_size_angstrom=PIXEL, distributions=dist, snr=1.0, seed=11
            )
        ]
    )
    torch.testing.assert_close(stack, expected)
    # STAR: poses, origins, CTF and half sets as drawn
    params = dataset_parameters(dist, n=300, seed=11)
    particles = read_particles(out / "particles.star")
    assert len(particles) == 300 and particles.image_size == 32
    torch.testing.assert_close(
        particles.pixel_size_angstrom, torch.full((300,), PIXEL, dtype=torch.float64)
    )
    torch.testing.assert_close(particles.euler_deg, params.euler_deg, atol=2e-6, rtol=0)
    torch.testing.assert_close(particles.shift_angstrom, params.shift_angstrom, atol=2e-6, rtol=0)
    torch.testing.assert_close(
        particles.ctf.defocus_u_angstrom, params.ctf.defocus_u_angstrom, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        particles.ctf.astigmatism_angle_deg, params.ctf.astigmatism_angle_deg, atol=2e-6, rtol=0
    )
    assert float(particles.ctf.voltage_kv[0]) == 300 and float(
        particles.ctf.amplitude_contrast[0]
    ) == pytest.approx(0.1)
    subset = particles.particles_table["rlnRandomSubset"].to_numpy()
    assert np.array_equal(subset, params.random_subset.numpy()) and set(subset) == {1, 2}
    assert "rlnPhaseShift" in particles.particles_table.columns
    assert particles.image_paths[0] == (out / "particles.mrcs").resolve()
    assert particles.image_index.tolist() == list(range(300))
    # cryoDRGN pickles
    euler, shift = read_cryodrgn_poses(out / "poses.pkl", image_size=32, pixel_size_angstrom=PIXEL)
    from cryoglass.geometry import euler_to_matrix

    torch.testing.assert_close(euler_to_matrix(euler), euler_to_matrix(params.euler_deg))
    torch.testing.assert_close(shift, params.shift_angstrom)
    ctf, size, pixel = read_cryodrgn_ctf(out / "ctf.pkl")
    assert size == 32 and float(pixel[0]) == pytest.approx(PIXEL)
    torch.testing.assert_close(
        ctf.defocus_v_angstrom, params.ctf.defocus_v_angstrom, atol=0.01, rtol=0
    )
    assert "orientations.png" in (out / "report.html").read_text()


def test_apix_resamples_and_box_pads(map_path, tmp_path):
    out = tmp_path / "sim"
    result = _run(
        "--volume", map_path, "--n-particles", 5, "--out", out, "--apix", 4.0, "--box", 24, "--json"
    )
    assert result.exit_code == 0, _text(result)
    truth, info = read_mrc(out / "truth.mrc")
    assert truth.shape == (24, 24, 24) and info.pixel_size_angstrom == pytest.approx(4.0)
    volume, _ = read_mrc(map_path)
    # the mass (sum × voxel volume) is kept by Fourier resampling and zero padding
    assert float(truth.sum()) * 4.0**3 == pytest.approx(float(volume.sum()) * PIXEL**3, rel=1e-4)
    particles = read_particles(out / "particles.star")
    assert particles.image_size == 24 and float(particles.pixel_size_angstrom[0]) == pytest.approx(
        4.0
    )
    assert '"pixel_size_angstrom": 4.0' in result.stdout


def test_views_from_a_star_file(map_path, tmp_path):
    from cryoglass.io import make_particle_set

    table = torch.tensor([[10.0, 20.0, 30.0], [100.0, 60.0, -30.0]], dtype=torch.float64)
    star = tmp_path / "in.star"
    write_relion_star(
        star,
        make_particle_set(
            ["1@x.mrcs", "2@x.mrcs"], pixel_size_angstrom=1.0, image_size=8, euler_deg=table
        ),
    )
    out = tmp_path / "sim"
    result = _run(
        "--volume", map_path, "--n-particles", 20, "--out", out, "--views", f"star:{star}"
    )
    assert result.exit_code == 0, _text(result)
    euler = read_particles(out / "particles.star").euler_deg
    assert bool(((euler[:, None, :] - table[None]).abs() < 1e-4).all(-1).any(-1).all())


def test_model_input(tmp_path):
    from cryoglass.data import trpv1_model_path

    out = tmp_path / "sim"
    result = _run(
        "--model", trpv1_model_path(), "--apix", 6.0, "--n-particles", 4, "--out", out, "--dose", 50
    )
    assert result.exit_code == 0, _text(result)
    truth, info = read_mrc(out / "truth.mrc")
    assert info.pixel_size_angstrom == pytest.approx(6.0) and float(truth.max()) > 0
    small = _run(
        "--model",
        trpv1_model_path(),
        "--apix",
        6.0,
        "--box",
        8,
        "--n-particles",
        4,
        "--out",
        tmp_path / "s2",
    )
    assert small.exit_code == 2 and "box needed is at least" in _text(small)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n-particles", "0"], "at least 1"),
        (["--n-particles", "5", "--snr", "1", "--dose", "10"], "not both"),
        (["--n-particles", "5", "--box", "10"], "box needed is at least"),
        (["--n-particles", "5", "--views", "spiral"], "expected 'uniform'"),
        (["--n-particles", "5", "--views", "vmf:abc"], "needs a number"),
        (["--n-particles", "5", "--views", "star:/nonexistent.star"], "not found"),
        (["--n-particles", "5", "--defocus-min", "3e4", "--defocus-max", "1e4"], "min"),
        (["--n-particles", "5", "--defocus-min-um", "3", "--defocus-max-um", "1"], "min"),
        (
            ["--n-particles", "5", "--multislice", "--slice-thickness-angstrom", "3"],
            "whole multiple",
        ),
    ],
)
def test_bad_input_errors(map_path, tmp_path, extra, message):
    result = _run("--volume", map_path, "--out", tmp_path / "sim", *extra)
    assert result.exit_code == 2
    assert message in _text(result)
    assert not (tmp_path / "sim" / "particles.star").exists()


def test_missing_files_and_non_empty_folder(map_path, tmp_path):
    missing = _run("--volume", tmp_path / "nope.mrc", "--n-particles", 3, "--out", tmp_path / "a")
    assert missing.exit_code == 2 and "not found" in _text(missing)
    neither = _run("--n-particles", 3, "--out", tmp_path / "b")
    assert neither.exit_code == 2 and "exactly one" in _text(neither)
    out = tmp_path / "full"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    refused = _run("--volume", map_path, "--n-particles", 3, "--out", out)
    assert refused.exit_code == 2 and "--overwrite" in _text(refused)
    accepted = _run("--volume", map_path, "--n-particles", 3, "--out", out, "--overwrite")
    assert accepted.exit_code == 0 and (out / "notes.txt").read_text() == "keep me"
    # an input inside DIR under an output name is never overwritten
    inside = tmp_path / "inside"
    inside.mkdir()
    victim = inside / "truth.mrc"
    victim.write_bytes(map_path.read_bytes())
    clash = _run("--volume", victim, "--n-particles", 3, "--out", inside, "--overwrite")
    assert clash.exit_code == 2 and "is an input" in _text(clash)
    assert victim.read_bytes() == map_path.read_bytes()
