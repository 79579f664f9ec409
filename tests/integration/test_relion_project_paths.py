"""A real RELION project layout: image paths relative to the project folder (issue 19, item 2).

RELION writes ``rlnImageName`` relative to the folder it runs in (the project folder), so
``Refine3D/job012/run_data.star`` says ``000001@Extract/job005/Movies/mic1.mrcs``.  cryoglass
looks in the current folder first (as RELION), then the STAR file's folder, then nowhere else;
``--datadir`` adds a folder in front, and a missing file is one line naming every path tried.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.io import read_particles, write_mrc, write_relion_star
from cryoglass.projection import project
from cryoglass.simulate import gaussian_map

BOX, PIXEL, PER_MIC = 16, 3.0, 6
STACKS = ("Extract/job005/Movies/mic1.mrcs", "Extract/job005/Movies/mic2.mrcs")
runner = CliRunner()


def _relion31(rows: list[str]) -> str:
    """A STAR file laid out as RELION 3.1's Refine3D writes it."""
    optics = (
        "\n# version 30001\n\ndata_optics\n\nloop_ \n_rlnOpticsGroupName #1 \n_rlnOpticsGroup #2 \n"
        "_rlnVoltage #3 \n_rlnSphericalAberration #4 \n_rlnAmplitudeContrast #5 \n"
        "_rlnImagePixelSize #6 \n_rlnImageSize #7 \n_rlnImageDimensionality #8 \n"
        f"opticsGroup1 1 300.000000 2.700000 0.100000 {PIXEL:.6f} {BOX} 2 \n\n"
    )
    columns = (
        "rlnImageName rlnMicrographName rlnAngleRot rlnAngleTilt rlnAnglePsi rlnOriginXAngst "
        "rlnOriginYAngst rlnDefocusU rlnDefocusV rlnDefocusAngle rlnOpticsGroup rlnClassNumber "
        "rlnRandomSubset"
    ).split()
    header = "".join(f"_{c} #{i + 1} \n" for i, c in enumerate(columns))
    return optics + "\n# version 30001\n\ndata_particles\n\nloop_ \n" + header + "".join(rows)


@pytest.fixture(scope="module")
def relion_project(tmp_path_factory) -> Path:
    """proj/Extract/job005/Movies/mic{1,2}.mrcs and proj/Refine3D/job012/run_data.star."""
    proj = tmp_path_factory.mktemp("relion") / "proj"
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(12, 3, generator=g, dtype=torch.float64) * 4.0
    volume = gaussian_map(centers, shape=(BOX,) * 3, pixel_size_angstrom=PIXEL, sigma_angstrom=4.0)
    n = PER_MIC * len(STACKS)
    euler = torch.stack(
        [
            torch.rand(n, generator=g, dtype=torch.float64) * 360 - 180,
            torch.rad2deg(torch.arccos(2 * torch.rand(n, generator=g, dtype=torch.float64) - 1)),
            torch.rand(n, generator=g, dtype=torch.float64) * 360 - 180,
        ],
        dim=-1,
    )
    images = project(volume, euler_deg=euler, pixel_size_angstrom=PIXEL)
    rows = []
    for m, stack in enumerate(STACKS):
        (proj / stack).parent.mkdir(parents=True, exist_ok=True)
        part = slice(m * PER_MIC, (m + 1) * PER_MIC)
        write_mrc(proj / stack, images[part].float(), pixel_size_angstrom=PIXEL, stack=True)
        for k in range(PER_MIC):
            rot, tilt, psi = euler[m * PER_MIC + k].tolist()
            rows.append(
                f"{k + 1:06d}@{stack} MotionCorr/job002/Movies/mic{m + 1}.mrc {rot:.6f} "
                f"{tilt:.6f} {psi:.6f} 0.000000 0.000000 15000.0 14500.0 30.0 1 {1 + k % 2} "
                f"{1 + k % 2}\n"
            )
    (proj / "Refine3D/job012").mkdir(parents=True)
    (proj / "Refine3D/job012/run_data.star").write_text(_relion31(rows))
    return proj


def _invoke(*args) -> object:
    torch.set_num_threads(1)
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cryoglass: error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_library_resolves_against_the_current_folder_first(relion_project, monkeypatch):
    star = relion_project / "Refine3D/job012/run_data.star"
    monkeypatch.chdir(relion_project)
    particles = read_particles(Path("Refine3D/job012/run_data.star"))
    assert particles.image_files == tuple(relion_project / s for s in STACKS)
    assert particles.image_file_names == STACKS
    # the search order is RELION's: the current (project) folder, then the STAR's folder
    assert particles.image_search[0] == (
        relion_project / STACKS[0],
        relion_project / "Refine3D/job012" / STACKS[0],
    )
    monkeypatch.chdir(relion_project.parent)
    elsewhere = read_particles(star)
    assert not elsewhere.image_files[0].exists()  # nowhere to be found from here
    found = read_particles(star, datadir=relion_project)
    assert found.image_files == particles.image_files


def test_reconstruct_from_the_project_folder_equals_absolute_paths(
    relion_project, tmp_path, monkeypatch
):
    table = starfile.read(relion_project / "Refine3D/job012/run_data.star", always_dict=True)
    particles = table["particles"].copy()
    particles["rlnImageName"] = [
        name.replace("@", f"@{relion_project}/", 1) for name in particles["rlnImageName"]
    ]
    absolute = tmp_path / "absolute.star"
    starfile.write({"optics": table["optics"], "particles": particles}, absolute)
    reference = _invoke("reconstruct", absolute, "--out", tmp_path / "ref.mrc", "--no-ctf")
    assert reference.exit_code == 0, reference.output

    monkeypatch.chdir(relion_project)
    result = _invoke(
        "reconstruct", "Refine3D/job012/run_data.star", "--out", tmp_path / "rel.mrc", "--no-ctf"
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        mrcfile.read(tmp_path / "rel.mrc"), mrcfile.read(tmp_path / "ref.mrc")
    )


def test_outside_the_project_the_error_names_every_path_tried(
    relion_project, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    star = relion_project / "Refine3D/job012/run_data.star"
    result = _invoke("reconstruct", star, "--out", tmp_path / "x.mrc", "--no-ctf")
    _one_line_error(
        result,
        str(star),
        f"'{STACKS[0]}'",
        str(tmp_path / STACKS[0]),  # the current folder, as RELION
        str(relion_project / "Refine3D/job012" / STACKS[0]),  # the STAR file's folder
        "--datadir",
    )
    assert not (tmp_path / "x.mrc").exists()


@pytest.mark.parametrize("layout", ["project", "flat"])
def test_datadir_finds_moved_images_for_every_image_reading_command(
    relion_project, tmp_path, monkeypatch, layout
):
    """--datadir PROJECT (paths as written) or --datadir FOLDER (the stacks' file names)."""
    if layout == "project":
        datadir = relion_project
    else:
        datadir = tmp_path / "stacks"
        datadir.mkdir()
        for stack in STACKS:
            shutil.copy(relion_project / stack, datadir / Path(stack).name)
    monkeypatch.chdir(tmp_path)
    star = relion_project / "Refine3D/job012/run_data.star"
    out = tmp_path / "out"
    commands = {
        "reconstruct": ["reconstruct", star, "--out", f"{out}.mrc", "--no-ctf"],
        "class2d": ["class2d", star, "--classes", 1, "--iterations", 1, "--out", out / "c2d"],
        "stack convert": ["stack", "convert", star, "--out", out / "p.zarr"],
        "vae train": [
            "vae",
            "train",
            star,
            "--epochs",
            1,
            "--out",
            out / "vae",
            "--zdim",
            1,
            "--enc-dim",
            8,
            "--dec-dim",
            8,
            "--enc-layers",
            1,
            "--dec-layers",
            1,
        ],  # fmt: skip
    }
    for name, args in commands.items():
        missing = _invoke(*args)
        assert missing.exit_code == 2 and "--datadir" in missing.output, (name, missing.output)
        found = _invoke(*args, "--datadir", datadir)
        assert found.exit_code == 0, (name, found.output)


@pytest.mark.parametrize(
    "command",
    [
        ["reconstruct"],
        ["project"],
        ["class2d"],
        ["vae", "train"],
        ["orientations"],
        ["ctf"],
        ["stack", "convert"],
        ["select"],
        ["convert"],
    ],
)
def test_every_command_that_reads_particles_takes_datadir(command):
    result = _invoke(*command, "--help")
    assert result.exit_code == 0 and "--datadir" in result.output


def test_written_star_keeps_project_relative_names(relion_project, tmp_path, monkeypatch):
    """select (and every writer) keeps Extract/job005/... where it still finds the same file."""
    monkeypatch.chdir(relion_project)
    out = Path("Select/job020/particles.star")
    result = _invoke("select", "Refine3D/job012/run_data.star", "--classes", 2, "--out", out)
    assert result.exit_code == 0, result.output
    written = starfile.read(out, always_dict=True)["particles"]["rlnImageName"].tolist()
    source = starfile.read("Refine3D/job012/run_data.star", always_dict=True)["particles"]
    assert written == source["rlnImageName"][source["rlnClassNumber"] == 2].tolist()
    assert all(name.split("@")[1] in STACKS for name in written)
    # read back from the project folder: the same images; written elsewhere: paths that work
    assert (
        read_particles(out).image_paths
        == read_particles("Refine3D/job012/run_data.star")
        .subset(source["rlnClassNumber"].to_numpy() == 2)
        .image_paths
    )
    # written from outside the project (images found with --datadir): absolute paths, so
    # the copy works from anywhere
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "copy.star"
    write_relion_star(copy, read_particles(relion_project / out, datadir=relion_project))
    names = starfile.read(copy, always_dict=True)["particles"]["rlnImageName"].tolist()
    assert all(Path(name.split("@")[1]).is_absolute() for name in names)
    monkeypatch.chdir(relion_project.parent)
    assert all(path.exists() for path in read_particles(copy).image_files)
