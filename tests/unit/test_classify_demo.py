"""The class2d demo section runs and writes what it shows."""

from __future__ import annotations

from pathlib import Path

import mrcfile

from cryoglass.demos import class2d


def test_demo_section_writes_gallery_and_classes(tmp_path: Path):
    sections = class2d.run(tmp_path, seed=0)
    assert len(sections) == 1
    section = sections[0]
    for name, _ in section.figures:
        assert (tmp_path / name).stat().st_size > 1000
    with mrcfile.open(tmp_path / "class2d_classes.mrcs") as mrc:
        assert mrc.data.shape == (4, 48, 48)
    ari = float(dict(section.table)["adjusted Rand index vs the true views"])
    assert ari > 0.9
