"""`cryoglass reconstruct` on a small synthetic data set: outputs, halves, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import torch
import typer
from typer.testing import CliRunner

from cryoglass.cli.reconstruct import main
from cryoglass.ctf import CTFParams
from cryoglass.geometry import euler_to_matrix
from cryoglass.projection import project
from cryoglass.simulate.phantom import gaussian_map

N, PIXEL, COUNT = 24, 2.0, 300

app = typer.Typer()
app.command()(main)


def _write_dataset(folder: Path, *, poses: bool = True, subset: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    centres = (torch.rand(8, 3, generator=g, dtype=torch.float64) - 0.5) * N * PIXEL / 2
    volume = gaussian_map(centres, shape=(N, N, N), pixel_size_angstrom=PIXEL, sigma_angstrom=3.0)
    rng = np.random.default_rng(0)
    euler = np.stack(
        [
            rng.uniform(-180, 180, COUNT),
            np.degrees(np.arccos(rng.uniform(-1, 1, COUNT))),
            rng.uniform(-180, 180, COUNT),
        ],
        1,
    )
    shifts = rng.uniform(-4, 4, (COUNT, 2))
    du = rng.uniform(8000, 20000, COUNT)
    ctf = CTFParams(defocus_u_angstrom=torch.as_tensor(du), defocus_v_angstrom=torch.as_tensor(du))
    images = project(
        volume,
        euler_to_matrix(torch.as_tensor(euler)),
        pixel_size_angstrom=PIXEL,
        shift_angstrom=torch.as_tensor(shifts),
        ctf=ctf,
    )
    with mrcfile.new(folder / "images.mrcs", overwrite=True) as mrc:
        mrc.set_data(images.numpy().astype(np.float32))
        mrc.voxel_size = PIXEL
    columns = [
        "rlnImageName",
        "rlnDefocusU",
        "rlnDefocusV",
        "rlnDefocusAngle",
        "rlnOriginXAngst",
        "rlnOriginYAngst",
        "rlnOpticsGroup",
    ]
    if poses:
        columns += ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    if subset:
        columns += ["rlnRandomSubset"]
    lines = ["# version 30001", "", "data_optics", "", "loop_"]
    lines += [
        f"_{c} #{i + 1}"
        for i, c in enumerate(
            [
                "rlnOpticsGroup",
                "rlnOpticsGroupName",
                "rlnImagePixelSize",
                "rlnImageSize",
                "rlnImageDimensionality",
                "rlnVoltage",
                "rlnSphericalAberration",
                "rlnAmplitudeContrast",
            ]
        )
    ]
    lines += [
        f"1 og1 {PIXEL} {N} 2 300 2.7 0.1",
        "",
        "",
        "# version 30001",
        "",
        "data_particles",
        "",
        "loop_",
    ]
    lines += [f"_{c} #{i + 1}" for i, c in enumerate(columns)]
    for i in range(COUNT):
        row = [
            f"{i + 1:06d}@images.mrcs",
            f"{du[i]:.2f}",
            f"{du[i]:.2f}",
            "0.0",
            f"{shifts[i, 0]:.5f}",
            f"{shifts[i, 1]:.5f}",
            "1",
        ]
        if poses:
            row += [f"{v:.5f}" for v in euler[i]]
        if subset:
            row += [str(1 + i % 2)]
        lines.append(" ".join(row))
    (folder / "particles.star").write_text("\n".join(lines) + "\n")
    return volume


def _ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    axis = torch.arange(N) - N // 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    inside = r < N / 2 - 2
    x, y = a[inside].double(), b[inside].double()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()))


def test_reconstruct_command_writes_map_halves_and_fsc(tmp_path):
    volume = _write_dataset(tmp_path, subset=True)
    out = tmp_path / "map.mrc"
    result = CliRunner().invoke(
        app,
        [
            str(tmp_path / "particles.star"),
            "--out",
            str(out),
            "--halves",
            "--json",
            "--batch-size",
            "64",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "needs about" in result.output
    for name in ("map_half1.mrc", "map_half2.mrc", "map_fsc.json", "map_fsc.png"):
        assert (tmp_path / name).is_file()
    with mrcfile.open(out) as mrc:
        rec = torch.from_numpy(mrc.data.copy())
        assert abs(float(mrc.voxel_size.x) - PIXEL) < 1e-4
    assert _ncc(rec, volume) > 0.98
    fsc = json.loads((tmp_path / "map_fsc.json").read_text())
    assert fsc["shells"][1]["fsc"] > 0.99  # noise-free halves agree at low resolution
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["half_sizes"] == [COUNT // 2, COUNT // 2]  # from rlnRandomSubset
    # refuses to overwrite without --overwrite
    again = CliRunner().invoke(app, [str(tmp_path / "particles.star"), "--out", str(out)])
    assert again.exit_code != 0 and "exists" in again.output


def test_reconstruct_command_errors(tmp_path):
    _write_dataset(tmp_path, poses=False)
    star = tmp_path / "particles.star"
    runner = CliRunner()
    result = runner.invoke(app, [str(star), "--out", str(tmp_path / "a.mrc")])
    assert result.exit_code != 0 and "needs known poses: rlnAngleRot/Tilt/Psi" in result.output
    _write_dataset(tmp_path)
    (tmp_path / "images.mrcs").unlink()
    result = runner.invoke(app, [str(star), "--out", str(tmp_path / "a.mrc")])
    assert result.exit_code != 0 and "missing" in result.output
    result = runner.invoke(app, [str(star), "--out", str(star)])
    assert result.exit_code != 0 and "input" in result.output
    result = runner.invoke(app, [str(tmp_path / "nope.star"), "--out", str(tmp_path / "a.mrc")])
    assert result.exit_code != 0 and "not found" in result.output
    result = runner.invoke(app, [str(star), "--out", str(tmp_path / "a.mrc"), "--symmetry", "Q7"])
    assert result.exit_code != 0 and "--symmetry" in result.output


def test_pixel_size_mismatch_between_optics_groups_is_refused(tmp_path):
    _write_dataset(tmp_path)
    star = tmp_path / "particles.star"
    text = star.read_text().replace(
        f"1 og1 {PIXEL} {N} 2 300 2.7 0.1",
        f"1 og1 {PIXEL} {N} 2 300 2.7 0.1\n2 og2 1.3 {N} 2 300 2.7 0.1",
    )
    lines = text.splitlines()
    last = lines[-1].split()
    last[6] = "2"  # the last particle belongs to optics group 2
    lines[-1] = " ".join(last)
    star.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, [str(star), "--out", str(tmp_path / "a.mrc")])
    assert result.exit_code != 0 and "pixel size" in result.output


def test_memory_check_refuses_with_a_hint(tmp_path, monkeypatch):
    _write_dataset(tmp_path)
    import cryoglass.cli.reconstruct as command

    monkeypatch.setattr(command, "available_memory_bytes", lambda: 1000)
    result = CliRunner().invoke(
        app, [str(tmp_path / "particles.star"), "--out", str(tmp_path / "a.mrc")]
    )
    assert result.exit_code != 0 and "not enough memory" in result.output
    assert "--pad 1" in result.output
    assert not (tmp_path / "a.mrc").exists()
