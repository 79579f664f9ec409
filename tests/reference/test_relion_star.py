"""RELION 3.1 reads the STAR files we write, and keeps their values."""

from __future__ import annotations

import pytest
import starfile
import torch
from conftest import run_relion

from cryoglass.io import read_particles, write_relion_star


@pytest.mark.relion
@pytest.mark.parametrize(
    "relative",
    ["particles/relion31_5ptcl/relion31.star", "particles/empiar10076_7ptcl/empiar_10076_7.star"],
)
def test_relion_star_handler_accepts_our_star(shared_data, tmp_path, relative):
    ours = read_particles(shared_data / relative)
    write_relion_star(tmp_path / "ours.star", ours)
    run_relion(
        [
            "relion_star_handler",
            "--i",
            "ours.star",
            "--o",
            "out.star",
            "--select",
            "rlnDefocusU",
            "--minval",
            "-1",
            "--maxval",
            "1e9",
        ],
        cwd=tmp_path,
    )
    blocks = starfile.read(tmp_path / "out.star", always_dict=True)
    assert set(blocks) == {"optics", "particles"}  # RELION kept it as a 3.1 file
    back = read_particles(tmp_path / "out.star")
    assert len(back) == len(ours) and back.image_size == ours.image_size
    assert back.image_paths == ours.image_paths
    torch.testing.assert_close(
        back.pixel_size_angstrom, ours.pixel_size_angstrom, atol=1e-6, rtol=0
    )
    for name in ("defocus_u_angstrom", "defocus_v_angstrom", "astigmatism_angle_deg", "voltage_kv"):
        torch.testing.assert_close(
            getattr(back.ctf, name), getattr(ours.ctf, name), atol=1e-5, rtol=0
        )
    if ours.euler_deg is not None:
        torch.testing.assert_close(back.euler_deg, ours.euler_deg, atol=1e-5, rtol=0)
        torch.testing.assert_close(back.shift_angstrom, ours.shift_angstrom, atol=1e-5, rtol=0)


@pytest.mark.relion
def test_relion_operate_changes_what_we_read(shared_data, tmp_path):
    """RELION adds 10 to rlnAngleRot in our file; we read exactly that change back."""
    ours = read_particles(shared_data / "particles/relion31_5ptcl/relion31.star")
    write_relion_star(tmp_path / "ours.star", ours)
    run_relion(
        ["relion_star_handler", "--i", "ours.star", "--o", "plus.star"]
        + ["--operate", "rlnAngleRot", "--add_to", "10"],
        cwd=tmp_path,
    )
    back = read_particles(tmp_path / "plus.star")
    torch.testing.assert_close(back.euler_deg[:, 0], ours.euler_deg[:, 0] + 10, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.euler_deg[:, 1:], ours.euler_deg[:, 1:], atol=1e-5, rtol=0)
