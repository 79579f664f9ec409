"""Table-driven bad-input suite: every case is refused cleanly, before the work.

Each row: how to spoil a small valid data set, the command line, and the text the one-line
error must contain (the file or the option at fault).  For every row the test asserts
(``_badinput.assert_refused``): non-zero exit, exactly one line on stderr naming it, no
traceback, every file in the folder byte-for-byte unchanged, nothing added (no output, no
temporary file).
"""

from __future__ import annotations

import numpy as np
import pytest
from _badinput import (
    COLUMNS,
    assert_refused,
    half_maps,
    invoke,
    model_pdb,
    particle_rows,
    particles,
    snapshot,
    star_text,
    write_map,
)

# ----------------------------------------------------------------- spoilers (build the inputs)


def maps(folder):
    half_maps(folder)


def truncated_map(folder):
    h1, _ = half_maps(folder)
    data = h1.read_bytes()
    h1.write_bytes(data[: len(data) // 2])


def empty_map(folder):
    half_maps(folder)
    (folder / "h1.mrc").write_bytes(b"")


def text_map(folder):
    half_maps(folder)
    (folder / "h1.mrc").write_text("this is not a map\n" * 100)


def nan_map(folder):
    h1, _ = half_maps(folder)
    data = np.ones((16, 16, 16))
    data[3, 4, 5] = np.nan
    write_map(h1, data)


def inf_map(folder):
    h1, _ = half_maps(folder)
    data = np.ones((16, 16, 16))
    data[0, 0, 0] = np.inf
    write_map(h1, data)


def zero_maps(folder):
    write_map(folder / "h1.mrc", np.zeros((16, 16, 16)))
    write_map(folder / "h2.mrc", np.zeros((16, 16, 16)))


def shape_mismatch(folder):
    half_maps(folder)
    write_map(folder / "h2.mrc", np.ones((20, 20, 20)))


def negative_pixel(folder):
    h1, h2 = half_maps(folder)
    for path in (h1, h2):
        write_map(path, np.random.default_rng(0).standard_normal((16, 16, 16)), pixel=-4.0)


def stack(folder):
    particles(folder)


def _rows(folder, change, columns=COLUMNS, rows=None):
    particles(folder)
    rows = particle_rows() if rows is None else rows
    for row in rows:
        change(row)
    (folder / "particles.star").write_text(star_text(rows, columns))


def index_beyond_stack(folder):
    particles(folder)
    rows = particle_rows()
    rows[-1]["rlnImageName"] = "000099@particles.mrcs"
    (folder / "particles.star").write_text(star_text(rows))


def nan_defocus(folder):
    _rows(folder, lambda r: r.update(rlnDefocusU="nan"))


def inf_defocus(folder):
    _rows(folder, lambda r: r.update(rlnDefocusV="inf"))


def missing_angles(folder):
    cols = tuple(c for c in COLUMNS if c != "rlnAngleTilt")
    _rows(folder, lambda r: None, columns=cols)


def missing_stack(folder):
    particles(folder)
    (folder / "particles.mrcs").unlink()


def zero_rows(folder):
    particles(folder)
    (folder / "particles.star").write_text(star_text([]))


def garbage_star(folder):
    particles(folder)
    (folder / "particles.star").write_text("data_\nloop_\n_rlnFoo #1\n\x00\x01\x02 garbage\n")


def existing_out(folder):
    particles(folder)
    (folder / "m.mrc").write_text("an existing map")


def model(folder):
    model_pdb(folder / "helix.pdb")


def empty_model(folder):
    (folder / "helix.pdb").write_text("END\n")


# ----------------------------------------------------------------------------- the table

H = ["h1.mrc", "h2.mrc"]
REC = ["reconstruct", "particles.star", "--out", "m.mrc"]
CASES = [
    # maps: unreadable, non-finite, degenerate, mismatched
    ("fsc-truncated", truncated_map, ["fsc", *H], "h1.mrc"),
    ("fsc-empty", empty_map, ["fsc", *H], "h1.mrc"),
    ("fsc-text", text_map, ["fsc", *H], "h1.mrc"),
    ("fsc-nan", nan_map, ["fsc", *H], "h1.mrc"),
    ("fsc-inf", inf_map, ["fsc", *H], "h1.mrc"),
    ("fsc-all-zero", zero_maps, ["fsc", *H], "h1.mrc"),
    ("fsc-shapes", shape_mismatch, ["fsc", *H], "h2.mrc"),
    ("fsc-missing", maps, ["fsc", "h1.mrc", "nope.mrc"], "nope.mrc"),
    ("fsc-apix-inf", maps, ["fsc", *H, "--apix", "inf"], "--apix"),
    ("fsc-apix-negative", maps, ["fsc", *H, "--apix", "-1"], "--apix"),
    ("fsc-negative-header-pixel", negative_pixel, ["fsc", *H], "h1.mrc"),
    (
        "filter-negative-header-pixel",
        negative_pixel,
        ["filter", "h1.mrc", "--out", "f.mrc", "--lowpass-angstrom", "8"],
        "h1.mrc",
    ),
    ("postprocess-nan", nan_map, ["postprocess", *H, "--out", "pp"], "h1.mrc"),
    ("3dfsc-text", text_map, ["3dfsc", *H, "--out", "r"], "h1.mrc"),
    (
        "mask-all-zero",
        zero_maps,
        ["mask", "h1.mrc", "--out", "k.mrc", "--auto-threshold"],
        "h1.mrc",
    ),
    # particles: STAR and stack problems
    ("reconstruct-index-beyond-stack", index_beyond_stack, REC, "particles.mrcs"),
    ("reconstruct-nan-defocus", nan_defocus, REC, "rlnDefocusU"),
    ("reconstruct-inf-defocus", inf_defocus, REC, "rlnDefocusV"),
    ("reconstruct-missing-angles", missing_angles, REC, "rlnAngleTilt"),
    ("reconstruct-missing-stack", missing_stack, REC, "particles.mrcs"),
    ("reconstruct-zero-rows", zero_rows, REC, "no particles"),
    ("reconstruct-garbage-star", garbage_star, REC, "particles.star"),
    ("reconstruct-apix-inf", stack, [*REC, "--apix", "inf"], "--apix"),
    (
        "reconstruct-out-folder-missing",
        stack,
        ["reconstruct", "particles.star", "--out", "nodir/m.mrc"],
        "nodir",
    ),
    ("reconstruct-existing-out", existing_out, REC, "--overwrite"),
    (
        "reconstruct-out-is-input",
        stack,
        ["reconstruct", "particles.star", "--out", "particles.star", "--overwrite"],
        "particles.star",
    ),
    (
        "class2d-index-beyond-stack",
        index_beyond_stack,
        ["class2d", "particles.star", "--classes", "2", "--out", "c"],
        "particles.mrcs",
    ),
    (
        "class2d-nan-defocus",
        nan_defocus,
        ["class2d", "particles.star", "--classes", "2", "--out", "c"],
        "rlnDefocusU",
    ),
    ("orientations-zero-rows", zero_rows, ["orientations", "particles.star"], "no particles"),
    (
        "orientations-bad-symmetry",
        stack,
        ["orientations", "particles.star", "--symmetry", "Q7"],
        "--symmetry",
    ),
    (
        "vae-batch-size-0",
        stack,
        ["vae", "train", "particles.star", "--out", "v", "--batch-size", "0"],
        "--batch-size",
    ),
    ("vae-lr-nan", stack, ["vae", "train", "particles.star", "--out", "v", "--lr", "nan"], "--lr"),
    (
        "vae-nan-defocus",
        nan_defocus,
        ["vae", "train", "particles.star", "--out", "v"],
        "rlnDefocusU",
    ),
    ("ctf-nan-defocus", stack, ["ctf", "--defocus-u", "nan"], "--defocus-u"),
    ("ctf-apix-inf", stack, ["ctf", "--defocus-u", "10000", "--apix", "inf"], "--apix"),
    # models
    ("nma-no-atoms", empty_model, ["nma", "helix.pdb", "--out", "n"], "helix.pdb"),
    ("nma-missing", model, ["nma", "nope.pdb", "--out", "n"], "nope.pdb"),
]


@pytest.mark.parametrize(
    ("spoil", "args", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_cleanly(tmp_path, monkeypatch, spoil, args, names):
    monkeypatch.chdir(tmp_path)
    spoil(tmp_path)
    before = snapshot(tmp_path)
    assert_refused(invoke(args), tmp_path, before, names=names)


def test_a_failed_star_parse_does_not_poison_the_next_read(tmp_path, monkeypatch):
    """starfile reads through linecache; a parse error used to leave the bad file's lines
    cached, so the next file of the same (relative) name read as the broken one."""
    from cryoglass.io import read_particles

    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir(), good.mkdir()
    garbage_star(bad)
    particles(good)
    monkeypatch.chdir(bad)
    with pytest.raises(ValueError, match="particles.star"):
        read_particles("particles.star")
    monkeypatch.chdir(good)
    assert len(read_particles("particles.star")) == 6
