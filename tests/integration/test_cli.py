"""The command line as a user meets it: fast --help listing every command."""

from __future__ import annotations

import subprocess
import sys
import time

from cryoglass.cli.main import COMMANDS


def test_help_lists_every_command_quickly():
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cryoglass", "--help"], capture_output=True, text=True, timeout=60
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    for name, _ in COMMANDS:
        assert name in proc.stdout
    # generous bound for a loaded CI machine; the point is that torch is not imported
    assert elapsed < 5.0


def test_help_does_not_import_torch():
    code = (
        "import sys; from cryoglass.cli import main; "
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False"], proc.stdout + proc.stderr


def test_every_command_has_help():
    for name, _ in COMMANDS:
        proc = subprocess.run(
            [sys.executable, "-m", "cryoglass", name, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, (name, proc.stderr)
        assert "Usage" in proc.stdout


def test_version():
    from cryoglass import __version__

    proc = subprocess.run(
        [sys.executable, "-m", "cryoglass", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"cryoglass {__version__}"


def test_one_spelling_per_concept_with_the_old_ones_hidden(tmp_path):
    """docs/cli.md: --apix everywhere; --pixel-size (and RELION's --angpix) still work, unlisted."""
    from typer.testing import CliRunner

    from cryoglass.cli.main import app
    from cryoglass.cli.options import rewrite_aliases

    runner = CliRunner()
    new = runner.invoke(app, ["ctf", "--defocus-u", "12000", "--apix", "1.7", "--json"])
    for old in ("--pixel-size", "--angpix", "--pixel-size-angstrom"):
        again = runner.invoke(app, ["ctf", "--defocus-u", "12000", old, "1.7", "--json"])
        assert again.exit_code == 0 and again.stdout == new.stdout
    assert '"pixel_size_angstrom": 1.7' in new.stdout
    for name in (
        "ctf",
        "project",
        "reconstruct",
        "stack convert",
        "demo",
        "nma-dataset",
        "simulate",
    ):
        shown = runner.invoke(app, [*name.split(), "--help"]).output
        assert "--apix" in shown and "--pixel-size" not in shown and "--angpix" not in shown
    assert "--n-particles" in runner.invoke(app, ["simulate", "--help"]).output
    # command-specific aliases touch only their command, and never option values
    assert rewrite_aliases(["simulate", "--n", "5"]) == ["simulate", "--n-particles", "5"]
    assert rewrite_aliases(["vae", "train", "--n", "5"]) == ["vae", "train", "--n", "5"]
    assert rewrite_aliases(["fsc", "a.mrc", "--mask", "m.mrc"])[-2:] == ["--mask", "m.mrc"]
    assert rewrite_aliases(["reconstruct", "p.star", "--no-mask"])[-1] == "--no-sphere-mask"
    assert rewrite_aliases(["demo", "--topic", "preprocessing"])[1] == "--topics"
