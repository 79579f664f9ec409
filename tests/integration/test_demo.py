"""`cryoglass demo`, the main job, runs end to end and writes what its report shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryoglass.demos.pipeline import TOPIC_SECTIONS
from cryoglass.validate import fourier_shell_correlation, resolution_at_threshold

PIXEL = 1.3  # the defaults of `cryoglass demo`
BOX = 128


def _read(path: Path) -> np.ndarray:
    with mrcfile.open(path) as mrc:
        return np.array(mrc.data, dtype=np.float32)


def test_demo_pipeline_from_model_to_sharpened_map(tmp_path: Path):
    """The default demo, as the README runs it (about 20 s on 2 idle cores)."""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "cryoglass", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # each section says when it starts and when it ends (issue 19: the demo was silent)
    lines = proc.stderr.splitlines()
    starts = [ln for ln in lines if ln.startswith("[") and ln.endswith(" …")]
    ends = [ln for ln in lines if ln.startswith("[") and ": done in " in ln]
    steps = 7 + len(TOPIC_SECTIONS)  # 6 pipeline steps, the topics, the report
    assert len(starts) == len(ends) == steps, proc.stderr[-3000:]
    assert starts[0].startswith(f"[1/{steps}] potential")
    assert ends[-1].startswith(f"[{steps}/{steps}] report.html")
    report = (out / "report.html").read_text()
    for name in (
        "map_slices.png",
        "projections.png",
        "ctf_defocus_series.png",
        "dataset.png",
        "fsc.png",
        "reconstruction.png",
        "postprocess.png",
        "blur_sharpen.png",
    ):
        assert (out / name).stat().st_size > 1000, name
        assert name in report

    truth = _read(out / "truth.mrc").copy()
    assert truth.shape == (BOX,) * 3
    with mrcfile.open(out / "truth.mrc") as mrc:
        assert abs(float(mrc.voxel_size.x) - PIXEL) < 1e-4
    # the potential is centred on the model's centre of mass: its centroid sits at voxel N//2
    grid = np.indices(truth.shape).reshape(3, -1)
    centroid = (grid * truth.reshape(-1)).sum(1) / truth.sum()
    assert np.abs(centroid - BOX // 2).max() < 1.0

    # the top view (tilt 0) of the four-fold channel is unchanged by 90° about the N//2 origin
    top = _read(out / "projections.mrcs")[0]
    centred = np.roll(top, (-(BOX // 2), -(BOX // 2)), (0, 1))
    rotated = np.roll(np.roll(np.flip(centred, 0), 1, 0).T, (BOX // 2, BOX // 2), (0, 1))
    assert np.corrcoef(top.ravel(), rotated.ravel())[0, 1] > 0.99
    side = _read(out / "projections.mrcs")[1]
    centred = np.roll(side, (-(BOX // 2), -(BOX // 2)), (0, 1))
    rotated = np.roll(np.roll(np.flip(centred, 0), 1, 0).T, (BOX // 2, BOX // 2), (0, 1))
    assert np.corrcoef(side.ravel(), rotated.ravel())[0, 1] < 0.95

    # the half maps come from the simulated particles and reach a sensible resolution
    average = torch.from_numpy((_read(out / "half1.mrc") + _read(out / "half2.mrc")) / 2)
    fsc = fourier_shell_correlation(average, torch.from_numpy(truth))
    resolution = float(
        resolution_at_threshold(fsc, threshold=0.5, box_size=BOX, pixel_size_angstrom=PIXEL)
    )
    assert resolution < 5 * PIXEL, resolution
    assert _read(out / "postprocess.mrc").shape == (BOX,) * 3
    # the topic sections (2D classes, orientations, normal modes, VAE) are in the report
    for title in ("2D classification", "orientation", "ormal mode", "VAE"):
        assert title.lower() in report.lower(), title
    _check_refine_chain(report)


def _row(report: str, name: str) -> float:
    """The number in the report table row ``name`` (its value cell, before the unit)."""
    match = re.search(rf"<td>{re.escape(name)}</td><td>(-?[0-9.]+)", report)
    assert match, name
    return float(match.group(1))


def _check_refine_chain(report: str) -> None:
    """The refine topic: particles without poses → ab initio → refine3d → postprocess, scored."""
    assert "ab initio → refine3d → postprocess" in report
    assert "Projections cannot determine the hand" in report
    # 600 particles, 40² at 3.5 Å/px, SNR 0.2: measured 18.4 Å, 9.85 Å, 9.97 Å, 2.77°, 9.83 Å
    assert _row(report, "ab initio vs truth (superposed), FSC = 0.5") < 25.0
    assert _row(report, "refine3d: half-map FSC = 0.143") < 12.0
    assert _row(report, "refine3d: map vs truth, FSC = 0.5") < 12.0
    assert _row(report, "refine3d: median angular error (mod C4)") < 4.0
    post = _row(report, "postprocess: corrected FSC = 0.143")
    assert 7.0 <= post < 12.0  # Nyquist is 7 Å
    assert _row(report, "postprocess: B-factor") < 0  # sharpening
