"""`cryoglass convert` against cryoDRGN's own conversions of real files, and round trips.

The references in shared data were written by cryoDRGN: ``pose.star.pkl`` / ``ctf1.pkl``
(``parse_pose_star -D 300``, ``parse_ctf_star -w 0.1 -D 300 --Apix 1.035`` of the PfCRT STAR
file) and ``pose.cs.pkl`` / ``ctf2.pkl`` (``parse_pose_csparc -D 180``, ``parse_ctf_csparc`` of
the cryoSPARC P12 J24 file).
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import starfile
import torch
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.geometry import euler_to_matrix
from cryoglass.io import make_particle_set, read_particles, write_mrc, write_relion_star
from cryoglass.projection import project
from cryoglass.simulate import gaussian_map

runner = CliRunner()
F64 = torch.float64


def _invoke(*args):
    return runner.invoke(app, ["convert", *[str(a) for a in args]])


def _load(path):
    with open(path, "rb") as handle:
        return pickle.load(handle)


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cryoglass: error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_relion30_star_to_cryodrgn_matches_parse_pose_star_and_parse_ctf_star(
    shared_data, tmp_path
):
    meta = shared_data / "metadata"
    star = meta / "FinalRefinement-OriginalParticles-PfCRT.star"
    # the file has no rlnImageSize and no images here: cryoDRGN needs -D, so do we
    _one_line_error(_invoke(star, "--to", "cryodrgn-poses", "--out", tmp_path / "p.pkl"), "--box")
    result = _invoke(star, "--to", "cryodrgn-poses", "--out", tmp_path / "p.pkl", "--box", 300)
    assert result.exit_code == 0, result.output
    rotations, t = _load(tmp_path / "p.pkl")
    ref_rotations, ref_t = _load(meta / "pose.star.pkl")
    assert rotations.dtype == ref_rotations.dtype == t.dtype == ref_t.dtype == np.float64
    np.testing.assert_allclose(rotations, ref_rotations, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t, ref_t, rtol=0, atol=1e-15)
    # no rlnAmplitudeContrast in the file: cryoDRGN's -w, our --amplitude-contrast
    ctf_args = [star, "--to", "cryodrgn-ctf", "--out", tmp_path / "c.pkl", "--box", 300]
    _one_line_error(_invoke(*ctf_args), "rlnAmplitudeContrast", "--amplitude-contrast")
    result = _invoke(*ctf_args, "--amplitude-contrast", 0.1)
    assert result.exit_code == 0, result.output
    ctf, reference = _load(tmp_path / "c.pkl"), _load(meta / "ctf1.pkl")
    assert ctf.dtype == reference.dtype == np.float32
    np.testing.assert_array_equal(ctf, reference)  # every float32 bit


def test_cryosparc_to_cryodrgn_matches_parse_pose_csparc_and_parse_ctf_csparc(
    shared_data, tmp_path
):
    meta = shared_data / "metadata"
    cs = meta / "cryosparc_P12_J24_001_particles.cs"
    for to, name in (("cryodrgn-poses", "p.pkl"), ("cryodrgn-ctf", "c.pkl")):
        result = _invoke(cs, "--to", to, "--out", tmp_path / name, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["particles"] == 2019
    rotations, t = _load(tmp_path / "p.pkl")
    ref_rotations, ref_t = _load(meta / "pose.cs.pkl")  # cryoDRGN computed these in float32
    np.testing.assert_allclose(rotations, ref_rotations, rtol=0, atol=1e-6)
    np.testing.assert_allclose(t, ref_t, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(_load(tmp_path / "c.pkl"), _load(meta / "ctf2.pkl"))


def test_cryosparc_to_relion_keeps_the_meaning(shared_data, tmp_path):
    cs = shared_data / "metadata/cryosparc_P12_J24_001_particles.cs"
    out = tmp_path / "from_cs.star"
    result = _invoke(cs, "--to", "relion", "--out", out)
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and ".mrcs" in result.output  # cryoSPARC's .mrc stacks
    direct, converted = read_particles(cs), read_particles(out)
    torch.testing.assert_close(
        euler_to_matrix(converted.euler_deg), euler_to_matrix(direct.euler_deg), atol=2e-6, rtol=0
    )
    torch.testing.assert_close(converted.shift_angstrom, direct.shift_angstrom, atol=1e-5, rtol=0)
    for name in ("defocus_u_angstrom", "defocus_v_angstrom", "astigmatism_angle_deg"):
        torch.testing.assert_close(
            getattr(converted.ctf, name), getattr(direct.ctf, name), atol=1e-3, rtol=0
        )
    table = starfile.read(out, always_dict=True)["particles"]
    records = np.load(cs)
    np.testing.assert_array_equal(table["rlnRandomSubset"], records["alignments3D/split"] + 1)
    # the images are not here: their names stay as cryoSPARC wrote them (project-relative)
    blob = records["blob/path"][0].decode()
    assert table["rlnImageName"][0] == f"000001@{blob}"


def test_cryosparc_passthrough_is_joined_on_uid(shared_data, tmp_path):
    """A job's main file (poses) + passthrough (blob, ctf, shuffled rows) = the full file."""
    records = np.load(shared_data / "metadata/cryosparc_P12_J24_001_particles.cs")
    main = [n for n in records.dtype.names if n == "uid" or n.startswith("alignments3D/")]
    rest = [n for n in records.dtype.names if n not in main or n == "uid"]
    order = np.random.default_rng(0).permutation(len(records))
    with open(tmp_path / "J24_particles.cs", "wb") as handle:
        np.save(handle, records[main])
    with open(tmp_path / "J24_passthrough_particles.cs", "wb") as handle:
        np.save(handle, records[rest][order])
    main_cs = tmp_path / "J24_particles.cs"
    _one_line_error(_invoke(main_cs, "--to", "relion", "--out", tmp_path / "x.star"), "passthrough")
    result = _invoke(
        main_cs,
        "--passthrough",
        tmp_path / "J24_passthrough_particles.cs",
        "--to",
        "relion",
        "--out",
        tmp_path / "joined.star",
    )
    assert result.exit_code == 0, result.output
    joined = read_particles(tmp_path / "joined.star")
    full = read_particles(shared_data / "metadata/cryosparc_P12_J24_001_particles.cs")
    torch.testing.assert_close(
        joined.ctf.defocus_u_angstrom, full.ctf.defocus_u_angstrom, atol=1e-3, rtol=0
    )
    torch.testing.assert_close(
        euler_to_matrix(joined.euler_deg), euler_to_matrix(full.euler_deg), atol=2e-6, rtol=0
    )
    # a passthrough of another job is refused, naming a missing uid
    with open(tmp_path / "other.cs", "wb") as handle:
        np.save(handle, records[rest][:10])
    result = _invoke(
        main_cs, "--passthrough", tmp_path / "other.cs", "--to", "relion", "--out",
        tmp_path / "y.star",
    )  # fmt: skip
    _one_line_error(result, "other.cs", "not in the passthrough file")


def test_cryosparc_2d_alignments_are_refused_as_3d_poses(shared_data, tmp_path):
    cs = shared_data / "metadata/cryosparc_J2_particles_exported.cs"
    _one_line_error(
        _invoke(cs, "--to", "cryodrgn-poses", "--out", tmp_path / "p.pkl"), "2D alignments"
    )
    assert not (tmp_path / "p.pkl").exists()
    # as RELION: a Class2D-like file, psi and class only
    result = _invoke(cs, "--to", "relion", "--out", tmp_path / "c2d.star")
    assert result.exit_code == 0, result.output
    table = starfile.read(tmp_path / "c2d.star", always_dict=True)["particles"]
    assert "rlnAngleRot" not in table and "rlnAngleTilt" not in table
    records = np.load(cs)
    np.testing.assert_array_equal(table["rlnClassNumber"], records["alignments2D/class"] + 1)
    psi = np.deg2rad(table["rlnAnglePsi"].to_numpy())
    np.testing.assert_allclose(np.cos(psi - records["alignments2D/pose"]), 1.0, atol=1e-9)
    assert read_particles(tmp_path / "c2d.star").in_plane_only  # still 2D when read back
    for args in (["orientations", cs], ["orientations", tmp_path / "c2d.star"]):
        result = runner.invoke(app, [str(a) for a in args])
        _one_line_error(result, "2D alignments")


@pytest.fixture
def cryodrgn_dataset(tmp_path):
    """particles.mrcs with cryoDRGN pose/CTF pickles (two optics groups by voltage)."""
    from cryoglass.ctf import CTFParams
    from cryoglass.io import write_cryodrgn_ctf, write_cryodrgn_poses

    g = torch.Generator().manual_seed(1)
    n, box, pixel = 12, 24, 2.5
    volume = gaussian_map(
        torch.randn(8, 3, generator=g, dtype=F64) * 5,
        shape=(box,) * 3,
        pixel_size_angstrom=pixel,
        sigma_angstrom=4.0,
    )
    low, high = torch.tensor([-180.0, 0.0, -180.0]), torch.tensor([180.0, 180.0, 180.0])
    euler = low + (high - low) * torch.rand(n, 3, generator=g, dtype=F64)
    shift = (torch.rand(n, 2, generator=g, dtype=F64) - 0.5) * 6
    images = project(volume, euler_deg=euler, shift_angstrom=shift, pixel_size_angstrom=pixel)
    write_mrc(tmp_path / "particles.mrcs", images.float(), pixel_size_angstrom=pixel, stack=True)
    ctf = CTFParams(
        defocus_u_angstrom=torch.linspace(10000, 20000, n, dtype=F64),
        defocus_v_angstrom=torch.linspace(9500, 19000, n, dtype=F64),
        astigmatism_angle_deg=torch.linspace(-80, 80, n, dtype=F64),
        voltage_kv=torch.tensor([300.0, 200.0], dtype=F64).repeat(n // 2),
        cs_mm=2.7,
        amplitude_contrast=0.1,
        phase_shift_deg=0.0,
    )
    write_cryodrgn_poses(
        tmp_path / "poses.pkl", euler, shift, image_size=box, pixel_size_angstrom=pixel
    )
    write_cryodrgn_ctf(tmp_path / "ctf.pkl", ctf, image_size=box, pixel_size_angstrom=pixel)
    return tmp_path


def test_cryodrgn_pickles_to_relion_and_back(cryodrgn_dataset, monkeypatch):
    folder = cryodrgn_dataset
    monkeypatch.chdir(folder)
    result = _invoke(
        "poses.pkl", "--ctf", "ctf.pkl", "--stack", "particles.mrcs", "--to", "relion", "--out",
        "particles.star",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    blocks = starfile.read(folder / "particles.star", always_dict=True)
    assert len(blocks["optics"]) == 2  # 300 and 200 kV: two optics groups, as cryoDRGN's
    assert blocks["particles"]["rlnImageName"][3] == "000004@particles.mrcs"
    particles = read_particles("particles.star")
    assert particles.image_files == (folder / "particles.mrcs",)
    for to, name in (("cryodrgn-poses", "back_poses.pkl"), ("cryodrgn-ctf", "back_ctf.pkl")):
        result = _invoke("particles.star", "--to", to, "--out", name)
        assert result.exit_code == 0, result.output
    (rotations, t), (back_rotations, back_t) = _load("poses.pkl"), _load("back_poses.pkl")
    np.testing.assert_allclose(back_rotations, rotations, atol=2e-6)  # 6 decimals in the STAR
    np.testing.assert_allclose(back_t, t, atol=1e-7)
    np.testing.assert_allclose(_load("back_ctf.pkl"), _load("ctf.pkl"), rtol=1e-6, atol=1e-4)


def test_cryodrgn_inputs_are_checked(cryodrgn_dataset, monkeypatch):
    folder = cryodrgn_dataset
    monkeypatch.chdir(folder)
    _one_line_error(_invoke("poses.pkl", "--to", "relion", "--out", "x.star"), "--stack")
    short = folder / "short.mrcs"
    write_mrc(short, torch.zeros(5, 24, 24), pixel_size_angstrom=2.5, stack=True)
    _one_line_error(
        _invoke("poses.pkl", "--stack", short, "--to", "relion", "--out", "x.star"),
        "12 poses for 5 images",
    )
    _one_line_error(
        _invoke("poses.pkl", "--stack", "particles.mrcs", "--to", "relion", "--out", "x.pkl"),
        "writes a .star file",
    )
    _one_line_error(
        _invoke("ctf.pkl", "--stack", "particles.mrcs", "--to", "cryodrgn-ctf", "--out", "ctf.pkl"),
        "is an input",
    )
    # a CTF table alone (no poses) with its stack: a STAR file with CTF and no angles
    result = _invoke("ctf.pkl", "--stack", "particles.mrcs", "--to", "relion", "--out", "c.star")
    assert result.exit_code == 0, result.output
    ctf_only = read_particles("c.star")
    assert ctf_only.euler_deg is None and ctf_only.ctf is not None


@pytest.mark.parametrize(
    "source",
    [
        "particles/relion31_5ptcl/relion31.star",
        "particles/aspire_sample_17ptcl/sample_relion_data.star",
        "metadata/relion31.6opticsgroups.star",
        "metadata/relion5.star",
    ],
)
def test_relion_dialects_round_trip(shared_data, tmp_path, source):
    """3.x → 3.0 → 3.1 → 5: poses, shifts (Å), CTF, optics values and pixel sizes survive."""
    original = read_particles(shared_data / source)
    previous = shared_data / source
    for to in ("relion-3.0", "relion-3.1", "relion-5"):
        out = tmp_path / f"{to}.star"
        result = _invoke(previous, "--to", to, "--out", out)
        assert result.exit_code == 0, result.output
        back = read_particles(out)
        torch.testing.assert_close(
            back.pixel_size_angstrom, original.pixel_size_angstrom, atol=1e-6, rtol=0
        )
        torch.testing.assert_close(back.euler_deg, original.euler_deg, atol=1e-6, rtol=0)
        torch.testing.assert_close(back.shift_angstrom, original.shift_angstrom, atol=1e-4, rtol=0)
        for name in ("defocus_u_angstrom", "voltage_kv", "cs_mm", "amplitude_contrast"):
            torch.testing.assert_close(
                getattr(back.ctf, name), getattr(original.ctf, name), atol=1e-5, rtol=0
            )
        if all(path.exists() for path in original.image_files):  # the same images
            assert back.image_paths == original.image_paths
        else:  # images absent: their names are kept as RELION wrote them
            assert back.image_file_names == original.image_file_names
        previous = out
    text = {
        to: (tmp_path / f"{to}.star").read_text() for to in ("relion-3.0", "relion-3.1", "relion-5")
    }
    assert "data_optics" not in text["relion-3.0"] and "rlnOriginXAngst" not in text["relion-3.0"]
    assert "rlnMagnification" in text["relion-3.0"] and "_rlnOriginX #" in text["relion-3.0"]
    assert text["relion-3.1"].count("# version 30001") == 2
    assert text["relion-5"].count("# version 50001") == 2


def test_convert_refuses_to_overwrite(shared_data, tmp_path):
    star = shared_data / "particles/relion31_5ptcl/relion31.star"
    out = tmp_path / "out.star"
    assert _invoke(star, "--to", "relion", "--out", out).exit_code == 0
    _one_line_error(_invoke(star, "--to", "relion", "--out", out), "--overwrite")
    assert _invoke(star, "--to", "relion", "--out", out, "--overwrite").exit_code == 0
    _one_line_error(_invoke(star, "--to", "relion", "--out", star), "input")
    _one_line_error(_invoke(star, "--to", "eman", "--out", out), "--to")


def test_writer_keeps_given_names_that_still_find_the_file(tmp_path, monkeypatch):
    """A name is kept byte for byte where it finds the same file from the new STAR file."""
    write_mrc(tmp_path / "s.mrcs", torch.zeros(2, 8, 8), pixel_size_angstrom=1.5, stack=True)
    monkeypatch.chdir(tmp_path)
    particles = make_particle_set(["1@s.mrcs", "2@s.mrcs"], pixel_size_angstrom=1.5, image_size=8)
    (tmp_path / "sub").mkdir()
    write_relion_star(tmp_path / "sub/a.star", particles)
    names = starfile.read(tmp_path / "sub/a.star", always_dict=True)["particles"]["rlnImageName"]
    assert names.tolist() == ["000001@s.mrcs", "000002@s.mrcs"]  # RELION: from this folder
    monkeypatch.chdir(tmp_path / "sub")  # from elsewhere the name would not find it: rewritten
    write_relion_star(tmp_path / "sub/b.star", particles)
    names = starfile.read(tmp_path / "sub/b.star", always_dict=True)["particles"]["rlnImageName"]
    assert names.tolist() == [f"000001@{tmp_path / 's.mrcs'}", f"000002@{tmp_path / 's.mrcs'}"]
