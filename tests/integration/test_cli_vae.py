"""`cryoglass vae` train/analyze/volumes/traverse/select on a tiny simulated set (CliRunner)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cryoglass.cli.vae import app
from cryoglass.hetero import blob_model, blob_particles
from cryoglass.io import (
    make_particle_set,
    read_particles,
    write_cryodrgn_ctf,
    write_cryodrgn_poses,
    write_mrc,
    write_relion_star,
)

runner = CliRunner()
N, D, PX = 40, 16, 3.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vae_data")
    g = torch.Generator().manual_seed(0)
    model = blob_model(radius_angstrom=0.3 * D * PX, sigma_angstrom=2 * PX, generator=g)
    amplitudes = 0.15 * D * PX * (2 * torch.rand(N, generator=g, dtype=torch.float64) - 1)
    sp = blob_particles(
        model,
        amplitudes,
        image_size=D,
        pixel_size_angstrom=PX,
        snr=1.0,
        max_shift_angstrom=PX,
        generator=g,
    )
    write_mrc(folder / "particles.mrcs", sp.images, pixel_size_angstrom=PX, stack=True)
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(N)]
    particles = make_particle_set(
        names,
        pixel_size_angstrom=PX,
        image_size=D,
        euler_deg=sp.euler_deg,
        shift_angstrom=sp.shift_angstrom,
        ctf=sp.ctf,
        image_root=folder,
    )
    write_relion_star(folder / "particles.star", particles)
    write_relion_star(
        folder / "noposes.star", dataclasses.replace(particles, euler_deg=None, shift_angstrom=None)
    )
    write_cryodrgn_poses(
        folder / "poses.pkl", sp.euler_deg, sp.shift_angstrom, image_size=D, pixel_size_angstrom=PX
    )
    write_cryodrgn_ctf(folder / "ctf.pkl", sp.ctf, image_size=D, pixel_size_angstrom=PX)
    return folder


def _run(args):
    torch.set_num_threads(1)
    return runner.invoke(app, [str(a) for a in args])


ARCH = ["--enc-dim", 16, "--dec-dim", 32, "--enc-layers", 1, "--dec-layers", 1, "--zdim", 2]


def test_train_continue_analyze_volumes_traverse_select(dataset, tmp_path):
    before = torch.get_num_threads()
    out = tmp_path / "run"
    result = _run(["train", dataset / "particles.star", "--epochs", 2, "--out", out, *ARCH])
    assert result.exit_code == 0, result.output
    for name in (
        "config.json",
        "checkpoint.1.pt",
        "checkpoint.2.pt",
        "latents.2.npy",
        "latents.npy",
        "train_log.json",
        "learning_curve.png",
    ):
        assert (out / name).is_file(), name
    assert np.load(out / "latents.npy").shape == (N, 2)
    # no silent overwrite; --continue with another architecture is refused
    assert _run(["train", dataset / "particles.star", "--epochs", 3, "--out", out]).exit_code == 2
    clash = _run(
        [
            "train",
            dataset / "particles.star",
            "--epochs",
            3,
            "--out",
            out,
            "--continue",
            "--dec-dim",
            64,
        ]
    )
    assert clash.exit_code == 2 and "another architecture" in clash.output
    result = _run(["train", dataset / "particles.star", "--epochs", 3, "--out", out, "--continue"])
    assert result.exit_code == 0, result.output
    log = json.loads((out / "train_log.json").read_text())
    assert [h["epoch"] for h in log] == [1, 2, 3]

    result = _run(["analyze", out, "--kmeans", 3])
    assert result.exit_code == 0, result.output
    analysis = out / "analyze.3"
    assert (analysis / "report.html").is_file() and (analysis / "pca.png").is_file()
    labels = np.load(analysis / "labels.npy")
    assert labels.shape == (N,) and set(labels.tolist()) == {0, 1, 2}
    with mrcfile.open(analysis / "kmeans_000.mrc") as mrc:
        assert mrc.data.shape == (D, D, D) and float(mrc.voxel_size.x) == pytest.approx(PX)

    result = _run(["volumes", out, "--pc-traversal", 1, "--n-points", 3, "--out", tmp_path / "pc1"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "pc1").glob("vol_*.mrc"))) == 3
    np.save(tmp_path / "z.npy", np.zeros((2, 2), dtype=np.float32))
    assert _run(["volumes", out, "--z", tmp_path / "z.npy", "--out", tmp_path / "z"]).exit_code == 0
    with (
        mrcfile.open(tmp_path / "z" / "vol_000.mrc") as a,
        mrcfile.open(tmp_path / "z" / "vol_001.mrc") as b,
    ):
        assert np.array_equal(a.data, b.data)  # same z → same map

    result = _run(
        ["traverse", out, "--anchors", "0,5", "--neighbours", 8, "--out", tmp_path / "path"]
    )
    assert result.exit_code == 0, result.output
    path = np.loadtxt(tmp_path / "path" / "path_indices.txt", dtype=int)
    assert path[0] == 0 and path[-1] == 5

    selected = tmp_path / "sel.star"
    result = _run(
        [
            "select",
            out,
            "--kmeans-labels",
            analysis / "labels.npy",
            "--classes",
            "0,2",
            "--out",
            selected,
        ]
    )
    assert result.exit_code == 0, result.output
    subset = read_particles(selected)
    keep = np.isin(labels, [0, 2])
    assert len(subset) == keep.sum()
    z = np.load(out / "latents.3.npy")
    assert np.allclose(
        subset.particles_table["rlnCryoglassLatent2"].to_numpy(), z[keep, 1], atol=1e-5
    )
    assert torch.allclose(
        subset.euler_deg, read_particles(dataset / "particles.star").euler_deg[keep]
    )
    torch.set_num_threads(before)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_analyze_out_folder_and_output_policy(dataset, tmp_path):
    before = torch.get_num_threads()
    run = tmp_path / "run"
    result = _run(["train", dataset / "particles.star", "--epochs", 1, "--out", run, *ARCH])
    assert result.exit_code == 0, result.output
    training = _snapshot(run)
    out = tmp_path / "Analysis" / "job002"  # parents made, as serve's job folders
    result = _run(["analyze", run, "--kmeans", 4, "--out", out, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["out"] == str(out) and summary["kmeans"] == 4 and summary["epoch"] == 1
    assert summary["headline"] == ["epoch", "particles", "kmeans"] and sum(summary["counts"]) == N
    for name in ("report.html", "pca.png", "umap.png", "kmeans_volumes.png", "learning_curve.png",
                 "labels.npy", "centers_ind.txt", "kmeans_003.mrc"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "kmeans_004.mrc").exists()
    assert np.load(out / "labels.npy").shape == (N,)
    report = (out / "report.html").read_text()
    assert "pca.png" in report and "umap.png" in report and "kmeans_volumes.png" in report
    assert _snapshot(run) == training  # nothing written into the training folder
    assert not list(run.glob("analyze.*"))

    written = _snapshot(out)
    again = _run(["analyze", run, "--kmeans", 4, "--out", out])
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    assert _snapshot(out) == written  # refused before anything was written
    into_input = _run(["analyze", run, "--out", run, "--overwrite"])
    assert into_input.exit_code == 2 and "training folder" in into_input.output
    assert _run(["analyze", run, "--kmeans", 0, "--out", tmp_path / "k0"]).exit_code == 2
    assert not (tmp_path / "k0").exists()
    result = _run(["analyze", run, "--kmeans", 4, "--out", out, "--overwrite", "--seed", 1])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").stat().st_mtime_ns > written["report.html"][1]
    assert _snapshot(run) == training
    # the default stays FOLDER/analyze.E/, and a rerun there needs --overwrite too
    assert _run(["analyze", run, "--kmeans", 2]).exit_code == 0
    assert (run / "analyze.1" / "kmeans_001.mrc").is_file()
    assert _run(["analyze", run, "--kmeans", 2]).exit_code == 2
    torch.set_num_threads(before)


def test_cryodrgn_pickles_and_zdim0(dataset, tmp_path):
    before = torch.get_num_threads()
    out = tmp_path / "homo"
    result = _run(
        [
            "train",
            dataset / "noposes.star",
            "--poses",
            dataset / "poses.pkl",
            "--ctf-pkl",
            dataset / "ctf.pkl",
            "--epochs",
            1,
            "--out",
            out,
            "--zdim",
            0,
            "--dec-dim",
            32,
        ]
    )
    assert result.exit_code == 0, result.output
    assert _run(["analyze", out]).exit_code == 0
    assert (out / "analyze.1" / "vol_000.mrc").is_file()
    torch.set_num_threads(before)


def test_bad_inputs(dataset, tmp_path):
    result = _run(["train", dataset / "noposes.star", "--epochs", 1, "--out", tmp_path / "x"])
    assert result.exit_code == 2 and "needs known poses" in result.output
    result = _run(["analyze", tmp_path])
    assert result.exit_code == 2 and "config.json" in result.output
    # poses for another number of particles
    write_cryodrgn_poses(
        tmp_path / "short.pkl",
        torch.zeros(3, 3, dtype=torch.float64),
        None,
        image_size=D,
        pixel_size_angstrom=PX,
    )
    result = _run(
        [
            "train",
            dataset / "particles.star",
            "--poses",
            tmp_path / "short.pkl",
            "--out",
            tmp_path / "y",
        ]
    )
    assert result.exit_code == 2 and "3 poses for 40 particles" in result.output
    bad = _run(
        ["train", dataset / "particles.star", "--point-fraction", 0, "--out", tmp_path / "pf"]
    )
    assert bad.exit_code == 2 and "--point-fraction must be in (0, 1]" in bad.output
    assert not (tmp_path / "pf").exists()


def test_demo_section(tmp_path):
    from cryoglass.demos.vae import run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    sections = run(tmp_path, seed=0)
    torch.set_num_threads(before)
    assert (tmp_path / "vae_latent_pca.png").stat().st_size > 1000
    assert sections[0].figures[0][0] == "vae_latent_pca.png"
    ari = float(dict(sections[0].table)["k-means (K = 2) vs truth, adjusted Rand index"])
    assert ari >= 0.9  # the two conformations are recovered from the latents alone
