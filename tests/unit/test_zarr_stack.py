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
