"""What a new user meets (issue 19): the README's commands after the README's install, optional
extras that say how to get them, 2D alignments refused as 3D poses, ``ctf --star`` on every
particle format, and feedback from long commands."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cryoglass.cli.main import COMMANDS, app
from cryoglass.io import make_particle_set, write_mrc, write_relion_star

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _invoke(*args):
    torch.set_num_threads(1)
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cryoglass: error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _named_commands() -> set[str]:
    """``cryoglass NAME`` in the README's code and in the demo report's ``<code>``."""
    readme = (REPO / "README.md").read_text()
    report = (REPO / "src/cryoglass/demos/pipeline.py").read_text()
    named = re.findall(r"`cryoglass ([a-z0-9-]+)", readme)
    named += re.findall(r"bin/cryoglass ([a-z0-9-]+)", readme)
    named += re.findall(r"<code>cryoglass ([a-z0-9-]+)", report)
    return set(named)


def test_every_command_the_readme_and_report_name_exists_and_needs_no_extra():
    names = {name for name, _ in COMMANDS}
    named = _named_commands()
    assert {"demo", "lessons", "convert", "fsc"} <= named
    assert named <= names, named - names
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dependencies = " ".join(project["dependencies"])
    # `lessons --out` (report) and `lessons --execute` need these after a plain install
    for package in ("jupytext", "nbformat", "nbclient", "ipykernel"):
        assert package in dependencies, package
    assert "zarr" not in dependencies and "zarr" in project["optional-dependencies"]


def test_lessons_list_needs_no_out_and_out_is_asked_for():
    result = _invoke("lessons", "--list")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("01_")
    _one_line_error(_invoke("lessons"), "--out", "--list")


def test_stack_convert_without_zarr_says_how_to_install_it(tmp_path, monkeypatch):
    write_mrc(tmp_path / "s.mrcs", torch.zeros(3, 8, 8), pixel_size_angstrom=2.0, stack=True)
    monkeypatch.setitem(sys.modules, "zarr", None)  # as in an installation without the extra
    result = _invoke("stack", "convert", tmp_path / "s.mrcs", "--out", tmp_path / "s.zarr")
    _one_line_error(result, "pip install 'cryoglass[zarr]'")
    assert not (tmp_path / "s.zarr").exists()
    # a STAR file pointing at a Zarr store: the same sentence, no traceback
    from cryoglass.io import read_images

    particles = make_particle_set(
        ["1@s.zarr"], pixel_size_angstrom=2.0, image_size=8, image_root=tmp_path
    )
    (tmp_path / "s.zarr").mkdir()
    with pytest.raises(ValueError, match=r"cryoglass\[zarr\]"):
        read_images(particles, [0])


def test_3d_uses_of_2d_alignments_are_refused(shared_data, tmp_path):
    cs = shared_data / "metadata/cryosparc_J2_particles_exported.cs"
    _one_line_error(_invoke("orientations", cs, "--json"), "2D alignments")
    _one_line_error(_invoke("reconstruct", cs, "--out", tmp_path / "x.mrc"), "2D alignments")
    write_mrc(tmp_path / "m.mrc", torch.zeros(8, 8, 8), pixel_size_angstrom=1.345)
    _one_line_error(
        _invoke("project", tmp_path / "m.mrc", "--star", cs, "--out", tmp_path / "p.mrcs"),
        "2D alignments",
    )
    result = _invoke(
        "simulate", "--volume", tmp_path / "m.mrc", "--views", f"star:{cs}", "--n-particles", 10,
        "--out", tmp_path / "sim",
    )  # fmt: skip
    assert result.exit_code == 2 and "2D alignments" in result.output, result.output
    # 3D alignments of a refinement are accepted
    refined = shared_data / "metadata/cryosparc_P12_J24_001_particles.cs"
    result = _invoke("orientations", refined, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["n_particles"] == 2019


def test_ctf_star_reads_cryosparc_and_takes_the_amplitude_contrast(shared_data):
    folder = shared_data / "particles/empiar10076_7ptcl"
    star = json.loads(_invoke("ctf", "--star", folder / "empiar_10076_7.star", "--row", 6,
                              "--json").stdout)["parameters"]  # fmt: skip
    result = _invoke("ctf", "--star", folder / "empiar_10076_7.cs", "--row", 6, "--json")
    assert result.exit_code == 0, result.output
    cs = json.loads(result.stdout)["parameters"]
    for key in ("defocus_u_angstrom", "defocus_v_angstrom", "astigmatism_angle_deg", "cs_mm"):
        assert cs[key] == pytest.approx(star[key], abs=1e-3), key
    pfcrt = shared_data / "metadata/FinalRefinement-OriginalParticles-PfCRT.star"
    _one_line_error(_invoke("ctf", "--star", pfcrt), "rlnAmplitudeContrast", "--amplitude-contrast")
    given = _invoke("ctf", "--star", pfcrt, "--amplitude-contrast", 0.07, "--json")
    assert json.loads(given.stdout)["parameters"]["amplitude_contrast"] == pytest.approx(0.07)
    # a file that has Q0 (0.1) and an explicit --amplitude-contrast: the option wins
    relion31 = shared_data / "particles/relion31_5ptcl/relion31.star"
    default = json.loads(_invoke("ctf", "--star", relion31, "--json").stdout)["parameters"]
    assert default["amplitude_contrast"] == pytest.approx(0.1)
    override = _invoke("ctf", "--star", relion31, "--amplitude-contrast", 0.2, "--json")
    assert json.loads(override.stdout)["parameters"]["amplitude_contrast"] == pytest.approx(0.2)


@pytest.fixture
def tiny_particles(tmp_path):
    """24 projections of a blob map, 16² px, with poses and CTF, in particles.star."""
    from cryoglass.ctf import CTFParams
    from cryoglass.projection import project
    from cryoglass.simulate import gaussian_map

    g = torch.Generator().manual_seed(0)
    n, box, pixel = 24, 16, 3.0
    volume = gaussian_map(
        torch.randn(6, 3, generator=g, dtype=torch.float64) * 4,
        shape=(box,) * 3,
        pixel_size_angstrom=pixel,
        sigma_angstrom=4.0,
    )
    low, high = torch.tensor([-180.0, 0.0, -180.0]), torch.tensor([180.0, 180.0, 180.0])
    euler = low + (high - low) * torch.rand(n, 3, generator=g, dtype=torch.float64)
    images = project(volume, euler_deg=euler, pixel_size_angstrom=pixel)
    write_mrc(tmp_path / "particles.mrcs", images.float(), pixel_size_angstrom=pixel, stack=True)
    write_mrc(tmp_path / "map.mrc", volume.float(), pixel_size_angstrom=pixel)
    ctf = CTFParams(defocus_u_angstrom=15000.0, defocus_v_angstrom=14000.0, voltage_kv=300.0)
    particles = make_particle_set(
        [f"{i + 1}@particles.mrcs" for i in range(n)],
        pixel_size_angstrom=pixel,
        image_size=box,
        euler_deg=euler,
        ctf=ctf,
        image_root=tmp_path,
    )
    write_relion_star(tmp_path / "particles.star", particles)
    return tmp_path


def test_vae_train_reports_batches_not_only_epochs(tiny_particles):
    out = tiny_particles / "vae"
    result = _invoke(
        "vae", "train", tiny_particles / "particles.star", "--epochs", 1, "--out", out,
        "--zdim", 1, "--enc-dim", 8, "--dec-dim", 8, "--enc-layers", 1, "--dec-layers", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    batch = [
        ln for ln in result.output.splitlines() if re.match(r"epoch 1/1: \d+/24 particles", ln)
    ]
    assert batch and batch[0].startswith("epoch 1/1: 8/24 particles"), result.output
    assert any(ln.startswith("epoch 1/1: loss") for ln in result.output.splitlines())


def test_project_and_filter_and_nma_report_what_they_wrote(tiny_particles, shared_data):
    folder = tiny_particles
    result = _invoke(
        "project", folder / "map.mrc", "--star", folder / "particles.star", "--out",
        folder / "proj.mrcs", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["projections"] == 24 and payload["box"] == 16 and "headline" in payload
    result = _invoke(
        "filter", folder / "map.mrc", "--lowpass-angstrom", 10, "--out", folder / "f.mrc", "--json"
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["output"] == str(folder / "f.mrc")
    model = shared_data / "models/pdb1ubi_ca.pdb"
    result = _invoke("nma", model, "--out", folder / "nma", "--modes", 3, "--no-report")
    assert result.exit_code == 0, result.output
    assert f"wrote {folder / 'nma'}/: modes.npz" in result.output
    result = _invoke("nma", model, "--out", folder / "nma2", "--modes", 3, "--json")
    payload = json.loads(result.stdout)
    assert str(folder / "nma2" / "report.html") in payload["files"]
