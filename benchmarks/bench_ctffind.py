"""Benchmark: CTF estimation accuracy and speed on simulated micrographs with a known CTF.

Micrographs come from ``cryoglass simulate-movies --no-movies`` (particles in vitreous ice, RELION
CTF with random defocus and astigmatism, counting detector, Poisson noise) at several exposures
and ice thicknesses.  For each, cryoglass's ``estimate_ctf`` (CTFFIND4's method, one thread) and
— when the peer environment exists (benchmarks/peers/README.md) — ASPIRE's ``estimate_ctf``
(one thread) run on the same files in the same run.  CTFFIND itself is not installable here; its
published accuracy is the anchor (Rohou & Grigorieff 2015: defocus within ~1 %).

Reported per condition: median and largest relative error of the mean defocus, the largest
astigmatism-angle error where U − V ≥ 500 Å, seconds per micrograph; and the seconds for one
4096² micrograph.

    python benchmarks/bench_ctffind.py --work /tmp/bench_ctffind [--n 8] [--size 2048] \
        [--conditions typical,low,hard] [--size-4k 4096] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import starfile
import torch

from cryoglass.io import read_mrc
from cryoglass.preprocess import CTFSearch, estimate_ctf

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "src" / "cryoglass" / "data" / "trpv1_3j5p.cif.gz"
PEERS_PYTHON = Path(os.environ.get("CRYOGLASS_PEERS_PYTHON", "/work/peers/bin/python"))
PEER_SCRIPT = REPO / "benchmarks" / "peers" / "peer_ctffind.py"

#: name → (frames, dose per frame [e/Å²], ice thickness [Å])
CONDITIONS = {
    "typical": (20, 2.0, 300.0),  # 40 e/Å², thin ice
    "low": (5, 2.0, 500.0),  # 10 e/Å²
    "hard": (5, 0.6, 900.0),  # 3 e/Å², thick ice
}


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"


def simulate(folder: Path, *, n: int, size: int, apix: float, condition: str, seed: int) -> None:
    """The micrographs of one condition (kept between runs)."""
    if (folder / "micrographs.star").is_file():
        return
    frames, dose, ice = CONDITIONS[condition]
    command = [
        sys.executable, "-m", "cryoglass", "simulate-movies", "--model", str(MODEL),
        "--apix", str(apix), "--n-micrographs", str(n), "--no-movies", "--out", str(folder),
        "--size", str(size), "--frames", str(frames), "--dose-per-frame", str(dose),
        "--ice-thickness-angstrom", str(ice), "--defocus-min", "5000", "--defocus-max", "35000",
        "--astigmatism-angstrom", "2000", "--seed", str(seed),
    ]  # fmt: skip
    subprocess.run(command, check=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))


def _truth(folder: Path) -> list[dict]:
    table = starfile.read(folder / "truth" / "micrographs_ctf.star")["micrographs"]
    return [
        {
            "file": folder / row.rlnMicrographName,
            "mean": 0.5 * (row.rlnDefocusU + row.rlnDefocusV),
            "astigmatism": row.rlnDefocusU - row.rlnDefocusV,
            "angle": row.rlnDefocusAngle,
        }
        for row in table.itertuples()
    ]


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + 90.0) % 180.0 - 90.0)


def _score(truth: list[dict], fits: list[tuple[float, float, float]]) -> dict:
    """Errors of (mean defocus, astigmatism, angle) fits against the truth."""
    relative = [abs(f[0] - t["mean"]) / t["mean"] * 100 for t, f in zip(truth, fits, strict=True)]
    angles = [_angle_error(f[2], t["angle"]) for t, f in zip(truth, fits, strict=True)
              if t["astigmatism"] >= 500]  # fmt: skip
    astig = [abs(f[1] - t["astigmatism"]) for t, f in zip(truth, fits, strict=True)]
    return {
        "median_rel_error_pct": round(statistics.median(relative), 3),
        "max_rel_error_pct": round(max(relative), 3),
        "max_angle_error_deg": round(max(angles), 2) if angles else None,
        "median_angle_error_deg": round(statistics.median(angles), 2) if angles else None,
        "angle_cases": len(angles),
        "median_astigmatism_error_angstrom": round(statistics.median(astig), 1),
    }


def run_cryoglass(truth: list[dict], apix: float) -> tuple[list, list[float], list[float]]:
    """Fits, wall seconds and CPU seconds of each micrograph (one thread, reading excluded)."""
    fits, seconds, cpu = [], [], []
    torch.set_num_threads(1)
    for t in truth:
        micrograph, _ = read_mrc(t["file"])
        started, cpu_started = time.perf_counter(), time.process_time()
        fit = estimate_ctf(micrograph, pixel_size_angstrom=apix, voltage_kv=300.0, cs_mm=2.7,
                           amplitude_contrast=0.1, search=CTFSearch())  # fmt: skip
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        fits.append((fit.defocus_mean_angstrom, fit.astigmatism_angstrom,
                     fit.astigmatism_angle_deg))  # fmt: skip
    return fits, seconds, cpu


def run_aspire(truth: list[dict], apix: float, folder: Path) -> tuple[list, float, float] | None:
    """ASPIRE on the same files (symlinked into one folder); None without the peer venv."""
    if not PEERS_PYTHON.exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for t in truth:
        link = folder / Path(t["file"]).name
        if not link.exists():
            link.symlink_to(Path(t["file"]).resolve())
    command = [str(PEERS_PYTHON), str(PEER_SCRIPT), "--folder", str(folder), "--pixel-size",
               str(apix), "--threads", "1"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    (folder / "aspire_raw.json").write_text(json.dumps(report, indent=2))
    fits = []
    for t in truth:
        r = report["results"][Path(t["file"]).name]
        u, v = max(r["defocus_u"], r["defocus_v"]), min(r["defocus_u"], r["defocus_v"])
        # ASPIRE's angle is measured from the image y axis (its grids are indexed (y, x)):
        # RELION's angle from x is 90° − ASPIRE's (checked on the "typical" truth: median
        # error 0.84°; θ, −θ and θ + 90° give 57°, 89° and 33°)
        angle = 90.0 - float(torch.rad2deg(torch.tensor(r["defocus_ang"])))
        if r["defocus_u"] < r["defocus_v"]:
            angle += 90.0
        fits.append((0.5 * (u + v), u - v, angle))
    return fits, report["seconds"] / len(truth), report.get("cpu_seconds", 0.0) / len(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_ctffind"))
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--apix", type=float, default=1.5)
    parser.add_argument("--conditions", default="typical,low,hard")
    parser.add_argument("--size-4k", type=int, default=4096)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    rows = {}
    conditions = [c for c in args.conditions.split(",") if c]
    for seed, condition in enumerate(conditions, start=11):
        folder = args.work / condition
        simulate(folder, n=args.n, size=args.size, apix=args.apix, condition=condition, seed=seed)
        truth = _truth(folder)
        load = _load()
        fits, seconds, cpu = run_cryoglass(truth, args.apix)
        ours = {
            **_score(truth, fits),
            "seconds_per_micrograph": round(statistics.median(seconds), 2),
            "cpu_seconds_per_micrograph": round(statistics.median(cpu), 2),
        }
        row = {"load": load, "cryoglass": ours}
        peer = (
            None
            if args.no_peer
            else run_aspire(truth, args.apix, args.work / f"{condition}_aspire")
        )
        if peer is not None:
            row["aspire"] = {**_score(truth, peer[0]), "seconds_per_micrograph": round(peer[1], 2),
                             "cpu_seconds_per_micrograph": round(peer[2], 2)}  # fmt: skip
        rows[condition] = row
        print(condition, json.dumps(row), flush=True)
    if args.size_4k:
        folder = args.work / "typical_4k"
        simulate(folder, n=1, size=args.size_4k, apix=1.0, condition="typical", seed=99)
        truth = _truth(folder)
        load = _load()
        fits, seconds, cpu = run_cryoglass(truth, 1.0)
        ours = {**_score(truth, fits), "seconds": round(seconds[0], 2),
                "cpu_seconds": round(cpu[0], 2)}  # fmt: skip
        row = {"load": load, "cryoglass": ours}
        peer = None if args.no_peer else run_aspire(truth, 1.0, args.work / "typical_4k_aspire")
        if peer is not None:
            row["aspire"] = {**_score(truth, peer[0]), "seconds": round(peer[1], 2),
                             "cpu_seconds": round(peer[2], 2)}  # fmt: skip
        rows["4k"] = row
        print("4k", json.dumps(row), flush=True)
    (args.work / "results_{}.json".format(time.strftime("%H%M%S"))).write_text(
        json.dumps(rows, indent=2)
    )


if __name__ == "__main__":
    main()
