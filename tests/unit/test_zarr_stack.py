"""Chunked Zarr particle stacks and `cryoglass stack convert`: round trip against the MRC stack."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

pytest.importorskip("zarr")

from cryoglass.cli import stack as stack_cli  # noqa: E402
from cryoglass.io import make_particle_set, open_mrc_stack, write_mrc, write_relion_star  # noqa: E402
from cryoglass.io.zarr_stack import open_zarr_stack, write_zarr_stack  # noqa: E402

PIXEL = 1.7


@pytest.fixture(scope="module")
def mrcs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zarr")
    g = torch.Generator().manual_seed(3)
    images = torch.randn(37, 12, 10, generator=g)  # non-square: rows/columns stay in place
    path = folder / "p.mrcs"
    write_mrc(path, images, pixel_size_angstrom=PIXEL, stack=True)
    return path, images


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(stack_cli.app, name="stack")
    return app


def _run(*args):
    return CliRunner().invoke(_app(), [str(a) for a in args])


@pytest.mark.parametrize("chunk_images", [1, 8, 37, 100])
def test_write_from_mrc_stack_reads_back_identically(mrcs, tmp_path, chunk_images):
    path, images = mrcs
    with open_mrc_stack(path) as mrc:
        write_zarr_stack(
            tmp_path / "s.zarr", mrc, pixel_size_angstrom=PIXEL, chunk_images=chunk_images
        )
        reference = mrc.read(torch.arange(len(mrc)))
    stack = open_zarr_stack(tmp_path / "s.zarr")
    assert len(stack) == 37 and stack.image_shape == (12, 10)
    assert stack.pixel_size_angstrom == pytest.approx(PIXEL)
    assert stack.chunk_images == min(chunk_images, 37)
    assert torch.equal(stack.read(torch.arange(37)), reference)
    assert torch.equal(reference, images)
    picks = torch.tensor([30, 2, 2, 17, 0, 36])  # unsorted, repeated, across chunks
    assert torch.equal(stack.read(picks), images[picks])
    assert torch.equal(stack.read([5, 6, 7]), images[5:8])
    assert stack.read([]).shape == (0, 12, 10)
    with pytest.raises(IndexError, match="outside the stack of 37"):
        stack.read([37])
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_refuses_existing_and_bad_input(tmp_path):
    x = torch.zeros(3, 4, 4)
    write_zarr_stack(tmp_path / "a.zarr", x, pixel_size_angstrom=1.0)
    with pytest.raises(FileExistsError, match="exists"):
        write_zarr_stack(tmp_path / "a.zarr", x, pixel_size_angstrom=1.0)
    write_zarr_stack(tmp_path / "a.zarr", x + 2, pixel_size_angstrom=2.0, overwrite=True)
    assert torch.equal(open_zarr_stack(tmp_path / "a.zarr").read([0]), x[:1] + 2)
    with pytest.raises(ValueError, match="chunk_images"):
        write_zarr_stack(tmp_path / "b.zarr", x, pixel_size_angstrom=1.0, chunk_images=0)
    with pytest.raises(ValueError, match="pixel_size"):
        write_zarr_stack(tmp_path / "b.zarr", x, pixel_size_angstrom=0.0)
    with pytest.raises(FileNotFoundError):
        open_zarr_stack(tmp_path / "missing.zarr")
    import zarr

    zarr.open_group(tmp_path / "other.zarr", mode="w")
    with pytest.raises(ValueError, match="not a cryoglass particle stack"):
        open_zarr_stack(tmp_path / "other.zarr")


def test_cli_convert_mrcs_and_star(mrcs, tmp_path):
    path, images = mrcs
    out = tmp_path / "m.zarr"
    result = _run("stack", "convert", path, "--out", out, "--chunk-images", 16, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["images"] == 37 and summary["image_shape"] == [12, 10]
    stack = open_zarr_stack(out)
    assert stack.chunk_images == 16 and stack.pixel_size_angstrom == pytest.approx(PIXEL)
    assert torch.equal(stack.read(torch.arange(37)), images)
    again = _run("stack", "convert", path, "--out", out)
    assert again.exit_code != 0 and "exists" in again.output

    # a STAR file: images in STAR order, pixel size from the STAR file
    square = torch.randn(5, 8, 8, generator=torch.Generator().manual_seed(1))
    write_mrc(tmp_path / "sq.mrcs", square, pixel_size_angstrom=PIXEL, stack=True)
    names = [f"{i:06d}@sq.mrcs" for i in (5, 3, 1, 2, 4)]
    particles = make_particle_set(
        names, pixel_size_angstrom=PIXEL, image_size=8, image_root=tmp_path
    )
    star = write_relion_star(tmp_path / "sq.star", particles)
    result = _run("stack", "convert", star, "--out", tmp_path / "s.zarr", "--chunk-images", 2)
    assert result.exit_code == 0, result.output
    read = open_zarr_stack(tmp_path / "s.zarr").read(torch.arange(5))
    assert torch.equal(read, square[torch.tensor([4, 2, 0, 1, 3])])
    bad = _run("stack", "convert", tmp_path / "x.txt", "--out", tmp_path / "t.zarr")
    assert bad.exit_code != 0


def test_zarr_stack_feeds_batches_like_mrc(mrcs, tmp_path):
    """Reading in consecutive batches (the pattern of the E-step and reconstruct) matches."""
    path, images = mrcs
    write_zarr_stack(tmp_path / "s.zarr", images.numpy(), pixel_size_angstrom=PIXEL, chunk_images=5)
    stack = open_zarr_stack(tmp_path / "s.zarr")
    parts = [stack.read(torch.arange(s, min(s + 7, 37))) for s in range(0, 37, 7)]
    assert torch.equal(torch.cat(parts), images)
    assert np.isfinite(torch.cat(parts).numpy()).all()


def test_star_pointing_at_a_zarr_store_reconstructs_like_the_mrcs(tmp_path):
    """`stack convert IN.star --star-out` gives a STAR that every command reads like IN."""
    from cryoglass.cli.main import app
    from cryoglass.ctf import CTFParams
    from cryoglass.geometry import matrix_to_euler, random_rotations
    from cryoglass.io import ParticleStack, read_mrc, read_particles

    g = torch.Generator().manual_seed(5)
    n, box = 40, 16
    images = torch.randn(n, box, box, generator=g)
    write_mrc(tmp_path / "a.mrcs", images[:25], pixel_size_angstrom=PIXEL, stack=True)
    write_mrc(tmp_path / "b.mrcs", images[25:], pixel_size_angstrom=PIXEL, stack=True)
    names = [f"{i + 1:06d}@a.mrcs" for i in range(25)] + [f"{i + 1:06d}@b.mrcs" for i in range(15)]
    particles = make_particle_set(
        names,
        pixel_size_angstrom=PIXEL,
        image_size=box,
        euler_deg=matrix_to_euler(random_rotations(n, generator=g, dtype=torch.float64)),
        shift_angstrom=torch.randn(n, 2, generator=g, dtype=torch.float64),
        ctf=CTFParams(
            defocus_u_angstrom=torch.full((n,), 12000.0, dtype=torch.float64),
            defocus_v_angstrom=torch.full((n,), 11000.0, dtype=torch.float64),
        ),
        image_root=tmp_path,
    )
    star = write_relion_star(tmp_path / "in.star", particles)
    (tmp_path / "sub").mkdir()
    (tmp_path / "store").mkdir()
    store, star_out = tmp_path / "store" / "p.zarr", tmp_path / "sub" / "z.star"
    runner = CliRunner()
    ok = runner.invoke(
        app, ["stack", "convert", str(star), "--out", str(store), "--star-out", str(star_out)]
    )
    assert ok.exit_code == 0, ok.output
    moved = read_particles(star_out)
    assert [p.name for p in moved.image_files] == ["p.zarr"]
    assert torch.equal(moved.euler_deg, read_particles(star).euler_deg)
    with ParticleStack(moved) as stack:
        assert torch.equal(stack.read(torch.arange(n)), images)
    maps = []
    for source, name in ((star, "m.mrc"), (star_out, "z.mrc")):
        result = runner.invoke(app, ["reconstruct", str(source), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        maps.append(read_mrc(tmp_path / name)[0])
    assert torch.equal(maps[0], maps[1])
    # refusals: overwriting the input, a non-STAR input
    same = runner.invoke(
        app,
        ["stack", "convert", str(star), "--out", str(tmp_path / "x.zarr"), "--star-out", str(star)],
    )
    assert same.exit_code != 0 and "overwrite the input" in same.output
    mrcs = runner.invoke(
        app,
        [
            "stack",
            "convert",
            str(tmp_path / "a.mrcs"),
            "--out",
            str(tmp_path / "y.zarr"),
            "--star-out",
            str(tmp_path / "y.star"),
        ],
    )
    assert mrcs.exit_code != 0 and "needs particles from a .star" in mrcs.output
