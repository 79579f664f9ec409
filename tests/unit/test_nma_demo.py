"""The NMA demo section runs and writes its files."""

from __future__ import annotations

import mrcfile
import numpy as np

from cryoglass.demos.nma import run


def test_nma_demo_section(tmp_path):
    sections = run(tmp_path, seed=0)
    assert len(sections) == 1 and sections[0].figures
    for name, _ in sections[0].figures:
        assert (tmp_path / name).is_file()
    with (
        mrcfile.open(tmp_path / "nma_mode1_minus.mrc") as a,
        mrcfile.open(tmp_path / "nma_mode1_plus.mrc") as b,
    ):
        difference = np.linalg.norm(a.data - b.data) / np.linalg.norm(a.data)
    assert difference > 0.05  # the two conformations give different maps
