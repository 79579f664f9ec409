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
