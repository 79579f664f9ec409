"""RELION reads a simulated dataset as written: relion_reconstruct --ctf gives back truth.mrc.

This pins the STAR file, poses, origins (sign and units), CTF parameters and image stack
together: any convention slip between `cryoglass simulate` and RELION breaks the FSC.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import typer
from conftest import run_relion
from typer.testing import CliRunner

from cryoglass.cli.simulate import main
from cryoglass.data import model_map
from cryoglass.fourier import fft3_centered, radial_shell_index
from cryoglass.io import read_mrc, read_particles, write_mrc, write_relion_star

BOX, PIXEL = 64, 2.5


def _fsc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Fourier shell correlation per shell 0 … N/2 (shell i: floor(|k| N + 1/2) = i)."""
    fa, fb = fft3_centered(a.double()), fft3_centered(b.double())
    shells = radial_shell_index(a.shape).reshape(-1)
    size = int(shells.max()) + 1

    def shell_sum(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(size, dtype=torch.float64).index_add_(0, shells, values.reshape(-1))

    cross = shell_sum((fa * fb.conj()).real)
    return (cross / torch.sqrt(shell_sum(fa.abs() ** 2) * shell_sum(fb.abs() ** 2)))[
        : a.shape[0] // 2 + 1
    ]


def _resolution_angstrom(fsc: torch.Tensor) -> float:
    """Resolution [Å] at the first shell where the FSC drops below 0.5."""
    below = torch.nonzero(fsc < 0.5)
    shell = int(below[0]) if len(below) else len(fsc)
    return BOX * PIXEL / max(shell, 1)


@pytest.mark.relion
def test_relion_reconstruct_of_simulated_dataset_gives_back_truth(tmp_path):
    volume, _, _ = model_map(box=BOX, pixel_size_angstrom=PIXEL, sigma_angstrom=2.5)
    map_path = tmp_path / "trpv1.mrc"
    write_mrc(map_path, volume, pixel_size_angstrom=PIXEL)
    out = tmp_path / "sim"
    app = typer.Typer()
    app.command()(main)
    args = [
        "--volume",
        map_path,
        "--n-particles",
        2000,
        "--out",
        out,
        "--snr",
        10,
        "--seed",
        1,
        "--defocus-min",
        10000.0,
        "--defocus-max",
        25000.0,
        "--astigmatism-angstrom",
        600,
        "--shift-std-angstrom",
        4.0,
    ]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output

    run_relion(["relion_reconstruct", "--i", "particles.star", "--o", "rec.mrc", "--ctf"], cwd=out)
    reconstruction, _ = read_mrc(out / "rec.mrc")
    truth, _ = read_mrc(out / "truth.mrc")
    fsc = _fsc(reconstruction, truth)
    resolution = _resolution_angstrom(fsc)
    assert resolution < 3 * PIXEL, f"FSC=0.5 at {resolution:.2f} Å; FSC {fsc.tolist()}"

    # negative control: the same images with the origins' sign flipped must not reconstruct
    particles = read_particles(out / "particles.star")
    flipped = dataclasses.replace(particles, shift_angstrom=-particles.shift_angstrom)
    write_relion_star(out / "flipped.star", flipped)
    run_relion(["relion_reconstruct", "--i", "flipped.star", "--o", "flip.mrc", "--ctf"], cwd=out)
    wrong, _ = read_mrc(out / "flip.mrc")
    assert _resolution_angstrom(_fsc(wrong, truth)) > 2 * resolution
