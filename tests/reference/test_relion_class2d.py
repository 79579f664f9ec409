"""RELION's 2D classification reports rlnAnglePsi and rlnOriginX/YAngst with our meaning.

relion_refine (2D, no reference, K = 1) aligns a small simulated set of one view; applying
cryoglass's alignment operator (translate by +origin, then rotate by −psi with
``rotate_images``) to the noise-free particles must bring them onto RELION's own class
average, and RELION's psi must match the true in-plane angles up to one rotation.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import pytest
import starfile
import torch
from conftest import run_relion

from cryoglass.classify import inplane_error_deg, rotate_images
from cryoglass.classify.synthetic import simulate_views
from cryoglass.data import model_map
from cryoglass.fourier import shift_image
from cryoglass.io import make_particle_set, write_mrc, write_relion_star
from cryoglass.projection import project

N, PIXEL = 32, 5.0


def _ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean((-2, -1), keepdim=True)
    b = b - b.mean((-2, -1), keepdim=True)
    return (a * b).sum((-2, -1)) / (a.norm(dim=(-2, -1)) * b.norm(dim=(-2, -1)))


@pytest.mark.relion
@pytest.mark.slow
def test_relion_2d_pose_convention_matches_ours(tmp_path: Path):
    volume = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=5.0)[0]
    data = simulate_views(
        volume,
        view_euler_deg=torch.tensor([[20.0, 50.0]]),  # an oblique view: no 2D symmetry
        n=200,
        pixel_size_angstrom=PIXEL,
        snr=1.0,
        generator=torch.Generator().manual_seed(4),
        shift_range_angstrom=10.0,
    )
    write_mrc(
        tmp_path / "p.mrcs", data.images / data.noise_std, pixel_size_angstrom=PIXEL, stack=True
    )
    names = [f"{i + 1:06d}@p.mrcs" for i in range(200)]
    particles = make_particle_set(
        names, pixel_size_angstrom=PIXEL, image_size=N, ctf=data.ctf, image_root=tmp_path
    )
    write_relion_star(tmp_path / "p.star", particles)
    (tmp_path / "r").mkdir()
    run_relion(
        ["relion_refine", "--i", "p.star", "--o", "r/run", "--K", "1", "--iter", "6",
         "--psi_step", "10", "--offset_range", "3", "--offset_step", "1", "--ctf",
         "--tau2_fudge", "2", "--particle_diameter", "140", "--zero_mask", "--flatten_solvent",
         "--random_seed", "0", "--dont_check_norm", "--dont_combine_weights_via_disc"],
        cwd=tmp_path,
    )  # fmt: skip
    table = starfile.read(tmp_path / "r" / "run_it006_data.star")["particles"]
    index = torch.tensor([int(n.split("@")[0]) - 1 for n in table["rlnImageName"]])
    klass = torch.as_tensor(table["rlnClassNumber"].to_numpy().astype("int64")) - 1
    psi = torch.as_tensor(table["rlnAnglePsi"].to_numpy().astype("float32"))
    origin = torch.as_tensor(
        table[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy().astype("float32")
    )
    errors = inplane_error_deg(psi.double(), data.euler_deg[index, 2], klass)
    assert float(errors.median()) < 10.0
    with mrcfile.open(tmp_path / "r" / "run_it006_classes.mrcs") as mrc:
        classes = torch.as_tensor(mrc.data.copy()).reshape(-1, N, N)
    clean = project(
        volume,
        euler_deg=data.euler_deg[index].float(),
        shift_angstrom=data.shift_angstrom[index].float(),
        pixel_size_angstrom=PIXEL,
    )
    recentred = shift_image(clean, origin, pixel_size_angstrom=PIXEL)
    good = _ncc(rotate_images(recentred, -psi), classes[klass])
    bad = _ncc(rotate_images(recentred, psi), classes[klass])
    assert float(good.median()) > 0.85
    assert float((good > bad).float().mean()) > 0.9
    unshifted = _ncc(rotate_images(clean, -psi), classes[klass])
    assert float(good.mean()) > float(unshifted.mean())
