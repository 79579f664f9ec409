"""Benchmark: particle picking F1 against the truth, cryoglass vs ``relion_autopick --LoG``.

Micrographs come from ``cryoglass simulate-movies --no-movies`` (TRPV1 from the bundled model
in vitreous ice, random poses, crowding 0.3) at two exposures; their CTF from ``cryoglass
ctffind``.  On the same micrographs, in the same run:

* ``relion_autopick --LoG`` (RELION 3.1, diameters 0.8–1.2 × the particle's) at a sweep of
  ``--LoG_adjust_threshold`` values — its **best** F1 is the reference;
* ``cryoglass pick`` reference-free (LoG), with its automatic threshold, and its best F1 over
  thresholds (from all candidates);
* ``cryoglass pick --map`` (CTF-aware templates: projections of the particle's map every 30°,
  in-plane every 10°), automatic threshold.

A pick is correct within a quarter of the particle diameter of a true centre, each true particle
matched once (:func:`cryoglass.preprocess.pick.match_picks`).

    python benchmarks/bench_pick.py --work /tmp/bench_pick [--n 6] [--size 2048] \
        [--conditions low,hard] [--no-templates]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import starfile
import torch

from cryoglass.preprocess.pick import PickMatch, match_picks

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "src" / "cryoglass" / "data" / "trpv1_3j5p.cif.gz"
ENV = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")

#: name → (frames, dose per frame [e/Å²], ice thickness [Å])
CONDITIONS = {
    "typical": (20, 2.0, 300.0),  # 40 e/Å²
    "low": (5, 2.0, 500.0),  # 10 e/Å²
    "hard": (5, 0.6, 900.0),  # 3 e/Å²
}
RELION_THRESHOLDS = (-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def _cryoglass(*args) -> dict:
    command = [sys.executable, "-m", "cryoglass", *map(str, args), "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout)


def simulate(folder: Path, *, n: int, size: int, apix: float, condition: str, seed: int):
    if (folder / "micrographs.star").is_file():
        return
    frames, dose, ice = CONDITIONS[condition]
    _cryoglass("simulate-movies", "--model", MODEL, "--apix", apix, "--n-micrographs", n,
               "--no-movies", "--out", folder, "--size", size, "--frames", frames,
               "--dose-per-frame", dose, "--ice-thickness-angstrom", ice, "--crowding", 0.3,
               "--seed", seed)  # fmt: skip


def _truth(folder: Path) -> tuple[dict[str, torch.Tensor], float]:
    table = starfile.read(folder / "truth" / "coordinates.star")
    out = {}
    for name, rows in table.groupby("rlnMicrographName"):
        out[Path(name).stem] = torch.tensor(rows[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy())
    return out, float(table["rlnParticleDiameter"].iloc[0])


def _picks(folder: Path, stems) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    out = {}
    for stem in stems:
        table = starfile.read(folder / f"{stem}_autopick.star")
        if isinstance(table, dict):
            table = next(iter(table.values()), None)
        if table is None or len(table) == 0:
            out[stem] = (torch.zeros(0, 2, dtype=torch.float64), np.zeros(0))
            continue
        xy = torch.tensor(table[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy(dtype=float))
        out[stem] = (xy, table["rlnAutopickFigureOfMerit"].to_numpy(dtype=float))
    return out


def _f1(truth, picks, tolerance: float, threshold: float = -np.inf) -> PickMatch:
    tp = fp = fn = 0
    for stem, true_xy in truth.items():
        xy, fom = picks[stem]
        m = match_picks(xy[torch.as_tensor(fom >= threshold)], true_xy, tolerance_px=tolerance)
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
    return PickMatch(tp, fp, fn)


def _best(truth, picks, tolerance: float) -> tuple[PickMatch, float]:
    values = np.concatenate([fom for _, fom in picks.values()])
    best = (PickMatch(0, 0, 0), -np.inf)
    for threshold in np.unique(np.quantile(values, np.linspace(0.0, 0.995, 200))):
        m = _f1(truth, picks, tolerance, threshold)
        if m.f1 > best[0].f1:
            best = (m, float(threshold))
    return best


def _row(m: PickMatch, **extra) -> dict:
    return {"f1": round(m.f1, 3), "precision": round(m.precision, 3),
            "recall": round(m.recall, 3), **extra}  # fmt: skip


def relion(folder: Path, truth, diameter: float, apix: float, tolerance: float) -> dict:
    """relion_autopick --LoG at every threshold; the best F1 and the time of one run."""
    results = {}
    seconds = []
    for threshold in RELION_THRESHOLDS:
        odir = f"AutoPick_LoG_{threshold:g}/"
        started = time.perf_counter()
        subprocess.run(
            ["relion_autopick", "--i", "micrographs.star", "--odir", odir, "--pickname",
             "autopick", "--LoG", "--LoG_diam_min", f"{0.8 * diameter:g}", "--LoG_diam_max",
             f"{1.2 * diameter:g}", "--angpix", f"{apix:g}", "--shrink", "0", "--lowpass", "20",
             "--LoG_adjust_threshold", f"{threshold:g}"],
            cwd=folder, capture_output=True, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
        )  # fmt: skip
        seconds.append(time.perf_counter() - started)
        picks = _picks(folder / odir / "Micrographs", truth)
        results[threshold] = _f1(truth, picks, tolerance)
    best = max(results, key=lambda t: results[t].f1)
    return _row(results[best], threshold=best, seconds_per_run=round(float(np.median(seconds)), 2),
                all={f"{t:g}": round(m.f1, 3) for t, m in results.items()})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_pick"))
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--apix", type=float, default=1.5)
    parser.add_argument("--conditions", default="low,hard")
    parser.add_argument("--no-templates", action="store_true")
    args = parser.parse_args()
    rows = {}
    for seed, condition in enumerate(args.conditions.split(","), start=21):
        folder = args.work / condition
        simulate(folder, n=args.n, size=args.size, apix=args.apix, condition=condition, seed=seed)
        truth, diameter = _truth(folder)
        tolerance = diameter / args.apix / 4
        if not (folder / "CtfFind" / "micrographs_ctf.star").is_file():
            _cryoglass("ctffind", folder / "micrographs.star", "--out", folder / "CtfFind")
        star = folder / "CtfFind" / "micrographs_ctf.star"
        row = {"load": _load(), "diameter_angstrom": round(diameter, 1),
               "particles": sum(len(t) for t in truth.values())}  # fmt: skip
        row["relion_log_best"] = relion(folder, truth, diameter, args.apix, tolerance)
        started = time.perf_counter()
        log = _cryoglass("pick", star, "--diameter", diameter, "--out", folder / "LoG",
                         "--overwrite", "--overlays", 1)  # fmt: skip
        wall = time.perf_counter() - started
        found = _f1(truth, _picks(folder / "LoG", truth), tolerance)
        row["cryoglass_log_auto"] = _row(
            found,
            threshold=log["threshold"],
            seconds_per_run=round(wall, 2),
            seconds_per_micrograph=log["seconds_per_micrograph"],
        )
        _cryoglass("pick", star, "--diameter", diameter, "--out", folder / "LoG_all",
                   "--overwrite", "--threshold", -1e9, "--overlays", 0)  # fmt: skip
        best, threshold = _best(truth, _picks(folder / "LoG_all", truth), tolerance)
        row["cryoglass_log_best"] = _row(best, threshold=round(threshold, 3))
        if not args.no_templates:
            started = time.perf_counter()
            templ = _cryoglass("pick", star, "--diameter", diameter, "--out", folder / "Templates",
                               "--map", folder / "truth" / "potential.mrc", "--overwrite",
                               "--overlays", 1)  # fmt: skip
            wall = time.perf_counter() - started
            row["cryoglass_templates_auto"] = _row(
                _f1(truth, _picks(folder / "Templates", truth), tolerance),
                threshold=templ["threshold"],
                templates=templ["templates"],
                seconds_per_run=round(wall, 2),
                seconds_per_micrograph=templ["seconds_per_micrograph"],
            )
        rows[condition] = row
        print(condition, json.dumps(row), flush=True)
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
