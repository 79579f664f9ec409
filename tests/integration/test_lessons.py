"""Every lesson runs as a script in fast mode, and `cryoglass lessons` turns them into notebooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LESSONS = sorted((REPO / "lessons").glob("[0-9][0-9]_*.py"))


def test_there_are_lessons():
    assert len(LESSONS) >= 1


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_fast_mode(lesson: Path, tmp_path: Path):
    env = dict(
        os.environ,
        CRYOGLASS_FAST="1",
        MPLBACKEND="Agg",
        PYTHONWARNINGS="error,ignore:__array__ implementation:DeprecationWarning",
    )
    proc = subprocess.run(
        [sys.executable, str(lesson)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert list(tmp_path.iterdir()) == [], "lessons must not write files"


def test_lessons_command_writes_notebooks(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "cryoglass", "lessons", "--out", str(tmp_path / "nb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    notebooks = sorted((tmp_path / "nb").glob("*.ipynb"))
    assert [p.stem for p in notebooks] == [p.stem for p in LESSONS]
    cells = json.loads(notebooks[0].read_text())["cells"]
    assert any(c["cell_type"] == "markdown" for c in cells)
    assert any(c["cell_type"] == "code" for c in cells)
