"""Agreement with RELION 3.1's ``relion_preprocess --extract --norm`` on simulated micrographs.

The same micrographs (``simulate-movies --no-movies``), micrographs_ctf.star and coordinates
(per-micrograph ``_pick.star`` files, some particles near the edges so that windows leave the
micrograph) are extracted by both programs, with and without binning; every image must agree
with RELION's (normalised correlation ≥ 0.999, the issue's criterion) and the STAR files must
carry the same coordinates, micrographs and CTFs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_relion
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.io import read_images, read_particles, write_mrc
from cryoglass.io.micrographs import read_coordinates, write_coordinates_star
from cryoglass.simulate.phantom import gaussian_map

pytestmark = pytest.mark.relion
PIXEL = 2.0


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extract")
    g = torch.Generator().manual_seed(5)
    centres = (torch.rand(12, 3, generator=g) - 0.5) * 16
    v = gaussian_map(centres, shape=(24, 24, 24), pixel_size_angstrom=PIXEL, sigma_angstrom=2.5)
    write_mrc(root / "potential.mrc", 20 * v / v.max(), pixel_size_angstrom=PIXEL)
    args = ["simulate-movies", "--volume", root / "potential.mrc", "--n-micrographs", 2,
            "--size", "256x192", "--no-movies", "--crowding", 0.3,
            "--out", root / "sim"]  # fmt: skip
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    sim = root / "sim"
    found = read_coordinates(sim / "truth" / "coordinates.star", ["mic_0001", "mic_0002"])
    edge = torch.tensor([[3.0, 5.0], [250.7, 100.2], [128.4, 190.9]], dtype=torch.float64)
    (sim / "coords" / "Micrographs").mkdir(parents=True)
    for stem, entry in found.items():
        xy = torch.cat([entry["coordinates_px"], edge])  # windows that leave the micrograph
        write_coordinates_star(sim / "coords" / "Micrographs" / f"{stem}_pick.star", xy)
    return sim


def _relion(sim: Path, name: str, extra: list[str]) -> Path:
    run_relion(
        ["relion_preprocess", "--i", "truth/micrographs_ctf.star", "--coord_dir", "coords/",
         "--coord_suffix", "_pick.star", "--part_star", f"{name}/particles.star", "--part_dir",
         f"{name}/", "--extract", "--extract_size", "64", "--norm", "--bg_radius", "24",
         "--invert_contrast", *extra],
        cwd=sim,
    )  # fmt: skip
    return sim / name / "particles.star"


def _ours(sim: Path, name: str, extra: list[str]) -> Path:
    args = ["extract", sim / "truth" / "micrographs_ctf.star", "--coords", sim / "coords",
            "--box", 64, "--invert-contrast", "--out", sim / name, *extra]  # fmt: skip
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return sim / name / "particles.star"


@pytest.mark.parametrize(
    ("tag", "relion_extra", "ours_extra", "size", "radius"),
    [
        ("full", ["--bg_radius", "24"], ["--bg-radius", "24"], 64, 24),
        (
            "bin",
            ["--scale", "32", "--bg_radius", "12"],
            ["--bin", "2", "--bg-radius", "12"],
            32,
            12,
        ),
    ],
)
def test_images_agree_with_relion_preprocess(data, tag, relion_extra, ours_extra, size, radius):
    theirs = read_particles(_relion(data, f"relion_{tag}", relion_extra), image_root=data)
    mine = read_particles(_ours(data, f"ours_{tag}", ours_extra))
    assert len(theirs) == len(mine) > 6
    assert theirs.image_size == mine.image_size == size
    assert float(mine.pixel_size_angstrom[0]) == pytest.approx(float(theirs.pixel_size_angstrom[0]))
    a = read_images(theirs, torch.arange(len(theirs))).double()
    b = read_images(mine, torch.arange(len(mine))).double()
    a = a - a.mean(dim=(1, 2), keepdim=True)
    b = b - b.mean(dim=(1, 2), keepdim=True)
    correlation = (a * b).sum(dim=(1, 2)) / (a.norm(dim=(1, 2)) * b.norm(dim=(1, 2)))
    assert float(correlation.min()) >= 0.999, correlation
    # the background outside the radius has std 1 (and mean 0 before inversion) in ours
    offsets = torch.arange(size) - size // 2
    background = offsets[:, None] ** 2 + offsets[None, :] ** 2 > radius**2
    spread = b[:, background].std(dim=1, unbiased=False)
    assert float((spread - 1).abs().max()) < 1e-4
    assert torch.allclose(theirs.ctf.defocus_u_angstrom, mine.ctf.defocus_u_angstrom, atol=0.01)
    assert torch.allclose(
        theirs.ctf.astigmatism_angle_deg, mine.ctf.astigmatism_angle_deg, atol=1e-3
    )
    for column in ("rlnCoordinateX", "rlnCoordinateY"):
        assert torch.allclose(
            torch.tensor(theirs.particles_table[column].to_numpy(float)),
            torch.tensor(mine.particles_table[column].to_numpy(float)),
            atol=1e-3,
        )
