"""Every command that writes files checks its outputs before the work (docs/reliability.md).

One row per writing command (``WRITERS``): how to build small valid inputs, the command line
with its output, and where an output may collide with an input.  Each row is run three ways:

* **output = input** — the output is one of the command's inputs, with ``--overwrite``;
* **existing output** — the output exists, no ``--overwrite``;
* **missing folder** — a file output in a folder that does not exist, or a folder output
  (``--out DIR``) that exists as a file.

Every case asserts (``_badinput.assert_refused``): non-zero exit, one line on stderr naming
the file, no traceback, every file byte-for-byte unchanged and nothing added (no folder
either); and that the refusal came *before the work*: no atomic write was even attempted
(``io._atomic.check_writable`` — the gate of every write and the write-time backstop — is
never reached), within a few seconds.  ``test_every_writing_command_has_a_row`` fails when a
command in ``cli/main.COMMANDS`` is neither in the table nor listed as writing nothing.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import typer
from _badinput import (
    COLUMNS,
    PIXEL,
    assert_refused,
    half_maps,
    invoke,
    model_pdb,
    particle_rows,
    particles,
    snapshot,
    write_map,
)

import cryoglass.io._atomic as atomic
from cryoglass.cli.main import COMMANDS, app

# ----------------------------------------------------------------------------- inputs


def maps(folder: Path) -> None:
    half_maps(folder)


def stack(folder: Path) -> None:
    particles(folder)


def stack_and_maps(folder: Path) -> None:
    particles(folder)
    half_maps(folder)


def classes(folder: Path) -> None:
    """particles.star with rlnClassNumber (what class2d writes)."""
    rows = particle_rows()
    for k, row in enumerate(rows):
        row["rlnClassNumber"] = 1 + k % 2
    particles(folder, rows, (*COLUMNS, "rlnClassNumber"))


def model(folder: Path) -> None:
    model_pdb(folder / "helix.pdb")


def _optics():
    from cryoglass.io.micrographs import MicrographOptics

    return MicrographOptics(
        original_pixel_size_angstrom=PIXEL, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1
    )


def movies(folder: Path) -> None:
    from cryoglass.io.micrographs import write_micrograph_table

    rng = np.random.default_rng(2)
    write_map(folder / "mov.mrc", rng.poisson(2.0, (4, 64, 64)).astype(np.float32))
    write_micrograph_table(folder / "movies.star", ["mov.mrc"], kind="movies", optics=_optics())


def micrographs(folder: Path) -> None:
    """mic.mrc (128², 2 Å), micrographs.star with CTF and ctffind's columns, coords.star."""
    from cryoglass.ctf import CTFParams
    from cryoglass.io.micrographs import write_micrograph_table

    rng = np.random.default_rng(3)
    write_map(folder / "mic.mrc", rng.standard_normal((128, 128)))
    write_micrograph_table(
        folder / "micrographs.star",
        ["mic.mrc"],
        kind="micrographs",
        optics=_optics(),
        ctf=CTFParams(
            defocus_u_angstrom=np.array([15000.0]), defocus_v_angstrom=np.array([14800.0])
        ),
        ctf_max_resolution_angstrom=[5.0],
        ctf_figure_of_merit=[0.2],
    )
    (folder / "coords.star").write_text(
        "\ndata_\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n"
        "mic.mrc 64 64\n"
    )


@functools.cache
def _trained_vae() -> Path:
    """One tiny `vae train` run (6 images 16², 1 epoch), shared by the vae rows."""
    folder = Path(tempfile.mkdtemp(prefix="cryoglass-vae-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    particles(folder)
    result = invoke(
        ["vae", "train", folder / "particles.star", "--epochs", "1", "--out", folder / "run"]
    )
    assert result.exit_code == 0, result.output
    return folder / "run"


def vae_run(folder: Path) -> None:
    """run/ (a trained VAE), z.npy (two latent points) and idx.txt (particle indices)."""
    shutil.copytree(_trained_vae(), folder / "run")
    zdim = json.loads((folder / "run" / "config.json").read_text())["vae_config"]["zdim"]
    np.save(folder / "z.npy", np.zeros((2, zdim), np.float32))
    (folder / "idx.txt").write_text("0\n2\n")


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Writer:
    """A writing command: ``args(out)`` is its command line writing ``out``.

    ``folder``: ``out`` is a folder the command creates (``--out DIR``).  ``collide``: for a
    folder command, the name of one of its outputs inside ``out``; the output = input case
    then names an input file so (``rename``: from which input) and runs with ``--out .``.
    For a file command, ``collide`` is the input passed as the output.  ``inputs``: False
    when no input can carry an output's name (no output = input case).  ``makes_folder``: a
    file command that creates its output's folder (``select``/``convert`` into a new RELION
    ``Select/jobNNN/``): its missing-folder case is a folder path through an existing file.
    """

    setup: Callable[[Path], None]
    args: Callable[[str], list[str]]
    collide: str
    folder: bool = False
    rename: str | None = None
    out: str = "out"
    inputs: bool = True
    makes_folder: bool = False


H = ["h1.mrc", "h2.mrc"]
REF = ["--ref", "h1.mrc"]
WRITERS: dict[str, Writer] = {
    # file outputs
    "project": Writer(
        stack_and_maps,
        lambda o: ["project", "h1.mrc", "--star", "particles.star", "--out", o],
        "particles.star",
        out="p.mrcs",
    ),
    "reconstruct": Writer(
        stack,
        lambda o: ["reconstruct", "particles.star", "--out", o],
        "particles.mrcs",
        out="m.mrc",
    ),
    "select": Writer(
        classes,
        lambda o: ["select", "particles.star", "--classes", "1", "--out", o],
        "particles.star",
        out="s.star",
        makes_folder=True,
    ),
    "ctf": Writer(
        stack,
        lambda o: ["ctf", "--star", "particles.star", "--plot", o],
        "particles.star",
        out="ctf.png",
    ),
    "select-micrographs": Writer(
        micrographs,
        lambda o: ["select-micrographs", "micrographs.star", "--out", o],
        "micrographs.star",
        out="sel.star",
    ),
    "fsc": Writer(maps, lambda o: ["fsc", *H, "--plot", o], "h2.mrc", out="fsc.png"),
    "filter": Writer(
        maps,
        lambda o: ["filter", "h1.mrc", "--lowpass-angstrom", "8", "--out", o],
        "h1.mrc",
        out="f.mrc",
    ),
    "mask": Writer(
        maps, lambda o: ["mask", "h1.mrc", "--threshold", "0.5", "--out", o], "h1.mrc", out="k.mrc"
    ),
    "resample": Writer(
        maps, lambda o: ["resample", "h1.mrc", "--box", "12", "--out", o], "h1.mrc", out="r.mrc"
    ),
    "orientations": Writer(
        stack,
        lambda o: ["orientations", "particles.star", "--bild", o],
        "particles.star",
        out="o.bild",
    ),
    "plan-orientations": Writer(
        stack,
        lambda o: ["plan-orientations", "particles.star", "--n-particles", "1000", "--plot", o],
        "particles.star",
        out="plan.png",
    ),
    "convert": Writer(
        stack,
        lambda o: ["convert", "particles.star", "--to", "cryodrgn-poses", "--out", o],
        "particles.star",
        out="poses.pkl",
        makes_folder=True,
    ),
    "stack convert": Writer(
        stack,
        lambda o: ["stack", "convert", "particles.star", "--out", o],
        "particles.mrcs",
        out="p.zarr",
    ),
    # folder outputs
    "simulate": Writer(
        maps,
        lambda o: ["simulate", "--volume", "h1.mrc", "--n-particles", "4", "--out", o],
        "truth.mrc",
        folder=True,
        rename="h1.mrc",
    ),
    "simulate-movies": Writer(
        maps,
        lambda o: ["simulate-movies", "--volume", "h1.mrc", "--n-micrographs", "1", "--out", o],
        "gain.mrc",
        folder=True,
        rename="h1.mrc",
    ),
    "motioncorr": Writer(
        movies, lambda o: ["motioncorr", "movies.star", "--out", o], "mov.mrc", folder=True
    ),
    "extract": Writer(
        micrographs,
        lambda o: [
            "extract",
            "micrographs.star",
            "--coords",
            "coords.star",
            "--box",
            "32",
            "--out",
            o,
        ],
        "particles.star",
        folder=True,
        rename="coords.star",
    ),
    "class2d": Writer(
        stack,
        lambda o: ["class2d", "particles.star", "--classes", "2", "--out", o],
        "particles.star",
        folder=True,
    ),
    "refine3d": Writer(
        stack,
        lambda o: ["refine3d", "particles.star", *REF, "--out", o],
        "run_data.star",
        folder=True,
        rename="particles.star",
    ),
    "class3d": Writer(
        stack,
        lambda o: ["class3d", "particles.star", *REF, "--classes", "2", "--out", o],
        "report.html",
        folder=True,
        rename="particles.star",
    ),
    "abinitio": Writer(
        stack,
        lambda o: ["abinitio", "particles.star", "--out", o],
        "history.json",
        folder=True,
        rename="particles.star",
    ),
    "ctffind": Writer(
        micrographs,
        lambda o: ["ctffind", "micrographs.star", "--tile-size", "64", "--out", o],
        "micrographs_ctf.star",
        folder=True,
        rename="micrographs.star",
    ),
    "pick": Writer(
        micrographs,
        lambda o: ["pick", "micrographs.star", "--diameter", "40", "--out", o],
        "autopick.star",
        folder=True,
        rename="micrographs.star",
    ),
    "postprocess": Writer(
        maps,
        lambda o: ["postprocess", *H, "--out", o],
        "postprocess.mrc",
        folder=True,
        rename="h1.mrc",
    ),
    "localres": Writer(
        maps, lambda o: ["localres", *H, "--out", o], "localres.mrc", folder=True, rename="h1.mrc"
    ),
    "3dfsc": Writer(
        maps, lambda o: ["3dfsc", *H, "--out", o], "3dfsc.mrc", folder=True, rename="h1.mrc"
    ),
    "nma": Writer(
        model,
        lambda o: ["nma", "helix.pdb", "--out", o],
        "mode_1.pdb",
        folder=True,
        rename="helix.pdb",
    ),
    "nma-dataset": Writer(
        model,
        lambda o: ["nma-dataset", "helix.pdb", "--n-particles", "4", "--out", o],
        "particles.star",
        folder=True,
        rename="helix.pdb",
    ),
    "vae train": Writer(
        stack,
        lambda o: ["vae", "train", "particles.star", "--out", o],
        "config.json",
        folder=True,
        rename="particles.star",
    ),
    "vae analyze": Writer(
        vae_run,
        lambda o: ["vae", "analyze", "run", "--kmeans", "2"],
        "report.html",
        folder=True,
        inputs=False,  # writes run/analyze.E: no input there to collide with
        out="run/analyze.1",
    ),
    "vae volumes": Writer(
        vae_run,
        lambda o: ["vae", "volumes", "run", "--z", "z.npy", "--out", o],
        "z_values.npy",
        folder=True,
        rename="z.npy",
    ),
    "vae traverse": Writer(
        vae_run,
        lambda o: ["vae", "traverse", "run", "--anchors", "0,3", "--out", o],
        "z_values.npy",
        folder=True,
        inputs=False,  # its inputs (run/config.json, checkpoints) have fixed names
    ),
    "vae select": Writer(
        vae_run,
        lambda o: ["vae", "select", "run", "--indices", "idx.txt", "--out", o],
        "idx.txt",
        out="sel.star",
    ),
    "demo": Writer(maps, lambda o: ["demo", "--out", o], "report.html", folder=True, inputs=False),
}

#: Commands (and sub-commands) that write no file, or are covered elsewhere, and why.
NOT_WRITERS = {
    "serve": "a server: its job folders are pinned by tests/reliability/test_serve_reliability.py",
    "lessons": "writes notebooks into --out only (no inputs to collide with; creates the folder)",
}


def _command_names() -> set[str]:
    """Every command and sub-command of ``cryoglass`` ("stack convert", "vae train", …)."""
    import importlib

    names = set()
    for name, module in COMMANDS:
        sub = getattr(importlib.import_module(f"cryoglass.cli.{module}"), "app", None)
        if isinstance(sub, typer.Typer):
            names |= {f"{name} {c.name or c.callback.__name__}" for c in sub.registered_commands}
        else:
            names.add(name)
    return names


def test_every_writing_command_has_a_row():
    names = _command_names()
    assert names, app
    missing = sorted(names - set(WRITERS) - set(NOT_WRITERS))
    assert not missing, f"writing commands without a row in WRITERS (or NOT_WRITERS): {missing}"
    assert not (set(WRITERS) | set(NOT_WRITERS)) - names, "rows for commands that do not exist"


# ----------------------------------------------------------------------------- the cases


def _refuse(folder: Path, monkeypatch, args: list[str], names: str) -> None:
    """Run ``args``; assert a clean refusal before any write, within a few seconds."""
    writes: list[str] = []
    gate = atomic.check_writable

    def watched(path, **kwargs):
        writes.append(str(path))
        return gate(path, **kwargs)

    monkeypatch.setattr(atomic, "check_writable", watched)
    before = snapshot(folder)
    folders = {p for p in folder.rglob("*") if p.is_dir()}
    started = time.perf_counter()
    result = invoke(args)
    seconds = time.perf_counter() - started
    assert_refused(result, folder, before, names=names)
    assert {p for p in folder.rglob("*") if p.is_dir()} == folders, "a folder was left behind"
    assert writes == [], f"refused only at the write (after the work): {writes}"
    assert seconds < 15, f"took {seconds:.1f} s to refuse"


ROWS = sorted(WRITERS)


@pytest.mark.parametrize("name", ROWS)
def test_output_is_an_input(tmp_path, monkeypatch, name):
    row = WRITERS[name]
    if not row.inputs:
        pytest.skip(f"{name}: no input can be named like one of its outputs")
    monkeypatch.chdir(tmp_path)
    row.setup(tmp_path)
    if row.folder:
        target = row.collide
        if row.rename is not None:
            # name the input like one of the outputs, and point the command at it
            (tmp_path / row.rename).rename(tmp_path / target)
            args = [target if a == row.rename else a for a in row.args(".")]
        else:
            args = row.args(".")
    else:
        target = row.collide
        args = row.args(target)
    _refuse(tmp_path, monkeypatch, [*args, "--overwrite"], target)


@pytest.mark.parametrize("name", ROWS)
def test_existing_output_needs_overwrite(tmp_path, monkeypatch, name):
    row = WRITERS[name]
    monkeypatch.chdir(tmp_path)
    row.setup(tmp_path)
    if row.folder:
        (tmp_path / row.out).mkdir()
        (tmp_path / row.out / row.collide).write_text("an earlier result\n")
    else:
        (tmp_path / row.out).write_text("an earlier result\n")
    _refuse(tmp_path, monkeypatch, row.args(row.out), "--overwrite")


@pytest.mark.parametrize("name", ROWS)
def test_missing_folder(tmp_path, monkeypatch, name):
    row = WRITERS[name]
    monkeypatch.chdir(tmp_path)
    row.setup(tmp_path)
    if row.folder:  # --out DIR exists as a file
        (tmp_path / row.out).write_text("a file, not a folder\n")
        _refuse(tmp_path, monkeypatch, [*row.args(row.out), "--overwrite"], row.out)
    elif row.makes_folder:  # the folder would be made: refused when a file is in the way
        (tmp_path / "afile").write_text("a file, not a folder\n")
        _refuse(tmp_path, monkeypatch, row.args(f"afile/{row.out}"), "afile")
    else:
        _refuse(tmp_path, monkeypatch, row.args(f"nodir/{row.out}"), "nodir")
