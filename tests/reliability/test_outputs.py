"""The output policy: no command writes over one of its inputs; existing outputs need --overwrite.

Each case of issue 21 ("outputs overwrite inputs and unrelated files") is one test here.
"""

from __future__ import annotations

import os

import pytest
import torch
from _badinput import assert_refused, half_maps, invoke, model_pdb, particles, snapshot

from cryoglass.io import OutputIsInputError, check_outputs, command_scope, read_mrc, write_mrc


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty folder that is also the current folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_fsc_plot_onto_a_half_map_is_refused(work, overwrite):
    h1, h2 = half_maps(work)
    before = snapshot(work)
    result = invoke(["fsc", h1, h2, "--plot", h2, *overwrite])
    err = assert_refused(result, work, before, names="h2.mrc")
    assert "is an input" in err


def test_the_same_file_by_another_name_is_caught(work):
    h1, h2 = half_maps(work)
    (work / "sub").mkdir()
    os.link(h2, work / "hard.mrc")  # a hard link: another path, the same inode
    before = snapshot(work)
    for alias in ("sub/../h2.mrc", "hard.mrc", str(h2.resolve())):
        result = invoke(["fsc", h1, h2, "--plot", alias, "--overwrite"])
        assert_refused(result, work, before, names="is an input")


def test_fsc_existing_plot_needs_overwrite(work):
    h1, h2 = half_maps(work)
    (work / "fsc.png").write_bytes(b"old plot")
    before = snapshot(work)
    assert_refused(invoke(["fsc", h1, h2, "--plot", "fsc.png"]), work, before, names="--overwrite")
    result = invoke(["fsc", h1, h2, "--plot", "fsc.png", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (work / "fsc.png").read_bytes()[:4] == b"\x89PNG"


def test_fsc_plot_into_a_missing_folder(work):
    h1, h2 = half_maps(work)
    before = snapshot(work)
    result = invoke(["fsc", h1, h2, "--plot", "nodir/x.png"])
    assert_refused(result, work, before, names="nodir")


def test_orientations_bild_onto_the_star_is_refused(work):
    star = particles(work)
    before = snapshot(work)
    result = invoke(["orientations", star, "--bild", star, "--overwrite"])
    assert_refused(result, work, before, names="particles.star")
    (work / "o.bild").write_text("old")
    before = snapshot(work)
    assert_refused(invoke(["orientations", star, "--bild", "o.bild"]), work, before, names="o.bild")


def test_3dfsc_needs_overwrite_and_keeps_its_inputs(work):
    h1, h2 = half_maps(work)
    out = work / "run"
    assert invoke(["3dfsc", h1, h2, "--out", out]).exit_code == 0
    before = snapshot(work)
    result = invoke(["3dfsc", h1, h2, "--out", out])  # a rerun no longer overwrites silently
    assert_refused(result, work, before, names="--overwrite")
    result = invoke(["3dfsc", h1, h2, "--out", out, "--overwrite"])
    assert result.exit_code == 0, result.output


def test_3dfsc_input_named_like_an_output_is_refused(work):
    h1, h2 = half_maps(work)
    os.replace(h2, work / "3dfsc.mrc")  # the second half map is called 3dfsc.mrc, --out .
    before = snapshot(work)
    result = invoke(["3dfsc", h1, "3dfsc.mrc", "--out", ".", "--overwrite"])
    assert_refused(result, work, before, names="3dfsc.mrc")


def test_3dfsc_full_does_not_copy_over_a_file(work):
    h1, h2 = half_maps(work)
    (work / "maps").mkdir()
    full = write_map_copy(h1, work / "maps" / "full.mrc")
    (work / "run").mkdir()
    (work / "run" / "full.mrc").write_text("someone else's file")
    before = snapshot(work)
    result = invoke(["3dfsc", h1, h2, "--out", "run", "--full", full])
    assert_refused(result, work, before, names="full.mrc")


def write_map_copy(source, target):
    target.write_bytes(source.read_bytes())
    return target


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_nma_does_not_overwrite_its_input(work, overwrite):
    model_pdb(work / "mode_1.pdb")
    before = snapshot(work)
    result = invoke(["nma", "mode_1.pdb", "--out", ".", "--modes", "3", *overwrite])
    assert_refused(result, work, before, names="mode_1.pdb")


def test_nma_existing_outputs_need_overwrite(work):
    model_pdb(work / "helix.pdb")
    assert invoke(["nma", "helix.pdb", "--out", "n", "--modes", "3"]).exit_code == 0
    before = snapshot(work)
    assert_refused(
        invoke(["nma", "helix.pdb", "--out", "n", "--modes", "3"]),
        work,
        before,
        names="--overwrite",
    )


def test_reconstruct_out_onto_its_own_stack_is_refused(work):
    star = particles(work)
    before = snapshot(work)
    result = invoke(["reconstruct", star, "--out", "particles.mrcs", "--overwrite"])
    assert_refused(result, work, before, names="particles.mrcs")


def test_the_atomic_writers_refuse_an_input_read_by_the_running_command(tmp_path):
    """The backstop: whatever a command forgot to declare, io's readers recorded."""
    path = write_mrc(tmp_path / "m.mrc", torch.zeros(4, 4, 4), pixel_size_angstrom=1.0)
    with command_scope():
        read_mrc(path)
        with pytest.raises(OutputIsInputError, match="m.mrc: is an input"):
            write_mrc(path, torch.ones(4, 4, 4), pixel_size_angstrom=1.0, overwrite=True)
    assert read_mrc(path)[0].abs().sum() == 0
    # outside a command (library use) nothing is recorded
    write_mrc(path, torch.ones(4, 4, 4), pixel_size_angstrom=1.0, overwrite=True)


def test_check_outputs_rules(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("x")
    with pytest.raises(FileExistsError, match="two outputs"):
        check_outputs([tmp_path / "o", tmp_path / "o"])
    with pytest.raises(IsADirectoryError):
        check_outputs([tmp_path])
    assert check_outputs([tmp_path / "new" / "o.mrc"], creates=[tmp_path / "new"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_outputs([tmp_path / "new" / "o.mrc"])
    with pytest.raises(OutputIsInputError):
        check_outputs([a], inputs=[a], overwrite=True)
