"""`cryoglass demo`, the main job, runs end to end and writes what its report shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np


def test_demo_writes_report_figures_and_maps(tmp_path: Path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "cryoglass", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.html").read_text()
    for name in ("projections.png", "ctf_defocus_series.png", "thon_rings.png", "blur_sharpen.png"):
        assert (out / name).stat().st_size > 1000
        assert name in report
    with mrcfile.open(out / "trpv1_map.mrc") as mrc:
        volume = np.asarray(mrc.data)
        assert volume.shape == (64, 64, 64)
        assert float(mrc.voxel_size.x) == 2.5
    # the map is centred on the model's centre of mass: its centre of mass is at voxel N//2
    grid = np.indices(volume.shape).reshape(3, -1)
    com = (grid * volume.reshape(-1)).sum(1) / volume.sum()
    assert np.abs(com - 32).max() < 0.5
    with mrcfile.open(out / "projections.mrcs") as mrc:
        assert mrc.data.shape == (8, 64, 64)
    # the top view (tilt 0) of the four-fold channel is unchanged by a 90° rotation
    with mrcfile.open(out / "projections.mrcs") as mrc:
        top = np.asarray(mrc.data[0])
    centred = np.roll(top, (-32, -32), (0, 1))  # origin N//2 → index 0
    rotated = np.roll(np.flip(centred, 0), 1, 0).T  # rotated[i, j] = centred[-j, i]: 90° about 0
    rotated = np.roll(rotated, (32, 32), (0, 1))
    assert np.corrcoef(top.ravel(), rotated.ravel())[0, 1] > 0.9
