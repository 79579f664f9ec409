"""report.figures.pyplot: Agg for commands, the caller's backend where pyplot was imported first."""

from __future__ import annotations

import os
import subprocess
import sys


def _backend_after(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().lower()


def test_commands_draw_with_agg():
    code = (
        "from cryoglass.report.figures import pyplot\n"
        "import matplotlib\n"
        "pyplot()\n"
        "print(matplotlib.get_backend())"
    )
    assert _backend_after(code) == "agg"


def test_a_backend_chosen_before_is_kept():
    """A notebook's inline backend (here: svg) must survive, or lessons' figures never show."""
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import matplotlib.pyplot\n"
        "from cryoglass.report.figures import pyplot\n"
        "pyplot()\n"
        "print(matplotlib.get_backend())"
    )
    assert _backend_after(code) == "svg"
