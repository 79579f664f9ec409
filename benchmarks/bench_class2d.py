"""Benchmark: `cryoglass class2d` vs `relion_refine` 2D classification (same star, same options).

Two modes.

**Single run** (default): ``n`` particles (default 1200 × 64², 3 Å/px) of K = 4 known views of
the TRPV1 model map (top, two sides, one oblique), each with a random in-plane angle, a random
origin within 6 Å, a CTF (defocus 1–2.5 µm) and white noise at SNR 0.1 (signal std / noise std
0.32); images divided by the noise σ (RELION expects normalised particles).  Both programs get
the same STAR file, K, iterations, psi step 10°, offsets ±9 Å in 3 Å steps (RELION: pixels),
--ctf, T = 2, mask diameter 170 Å, seed 0, two threads:

    relion_refine --i particles.star --o relion/run --K 4 --iter 10 --psi_step 10
        --offset_range 3 --offset_step 1 --ctf --tau2_fudge 2 --particle_diameter 170
        --zero_mask --flatten_solvent --oversampling 1 --j 2 --pool 3
        --dont_combine_weights_via_disc --random_seed 0 --dont_check_norm
    cryoglass class2d particles.star --classes 4 --iterations 10 --psi-step-deg 10
        --offset-range-angstrom 9 --offset-step-angstrom 3 --ctf --tau2-fudge 2
        --particle-diameter-angstrom 170 --seed 0          (OMP/torch threads: 2)

**Sweep** (``--sweep``): the cells of :data:`CELLS`, each a small simulated set (300–1,200
images of 48² at 4 Å/px, the same TRPV1 map) varied along one axis at a time from a base cell —
noise (signal std / noise std from 1 down to 0.05), number of views (K = 4, 10, 20, chosen
far apart by a greedy farthest-point pick over rotation-invariant correlation), views a few
degrees apart (4 views 5° apart; 5 pairs 8° apart), and particle count — each with several
seeds (the seed draws the particles, the noise and both programs' random starts).  Each
(cell, seed) runs both programs on the same STAR file with the same K, iterations, psi step,
offset range and step, T, mask and seed, under ``nice``; one JSON line per (cell, seed) is
appended to the results file (``--results``, default ``benchmarks/class2d_sweep.jsonl``) with
the load average before and after, so the sweep can run in pieces (``--cells``, ``--seeds``,
``--resume`` skips (cell, seed) pairs already there).  ``--table`` prints the Markdown table of a
results file (mean over seeds per cell; ✔ where cryoglass's mean ARI ≥ RELION's − 0.02).

Scores: the adjusted Rand index of the final classes against the true views, and the median
in-plane angle error (after removing one rotation per class, which also checks that both
report rlnAnglePsi with the same meaning).  Goal: cryoglass ARI ≥ RELION's − 0.02 in every
cell, in less wall time.  CPU-heavy: note the load average.

Run:
    python benchmarks/bench_class2d.py [--count 1200] [--iterations 10] [--skip-relion]
    python benchmarks/bench_class2d.py --sweep [--cells noise-0.1,k10] [--seeds 0,1,2] --resume
    python benchmarks/bench_class2d.py --table [--results benchmarks/class2d_sweep.jsonl]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

N, PIXEL, K = 64, 3.0, 4
VIEWS = [[0.0, 0.0], [0.0, 90.0], [45.0, 90.0], [30.0, 45.0]]
RESULTS = Path(__file__).with_name("class2d_sweep.jsonl")


# ----------------------------------------------------------------------------- the sweep's cells


@dataclass(frozen=True)
class Cell:
    """One cell of the sweep: how the particles are made and how both programs are run.

    ``views`` names a view set (:func:`view_set`): ``distinct`` (K views picked far apart),
    ``near`` (K views 5° apart in tilt), ``pairs`` (K/2 distinct views, each with a partner
    8° away).  ``std_ratio`` is signal std / noise std inside the particle disc
    (simulate_views's SNR is its square).
    """

    name: str
    axis: str
    k: int = 4
    views: str = "distinct"
    std_ratio: float = 0.15
    count: int = 600
    box: int = 48
    pixel_angstrom: float = 4.0
    iterations: int = 15
    psi_step_deg: float = 10.0
    offset_range_px: int = 3
    offset_step_px: int = 1
    shift_range_angstrom: float = 6.0
    tau2_fudge: float = 2.0
    diameter_angstrom: float = 170.0
    extra: dict = field(default_factory=dict)


def _cells() -> dict[str, Cell]:
    cells = [Cell("base", axis="base")]
    for ratio in (1.0, 0.3, 0.2, 0.1, 0.07, 0.05):
        cells.append(Cell(f"noise-{ratio:g}", axis="noise", std_ratio=ratio))
    cells.append(Cell("k10-0.3", axis="views", k=10, std_ratio=0.3, count=1000))
    cells.append(Cell("k10-0.2", axis="views", k=10, std_ratio=0.2, count=1000))
    cells.append(Cell("k20-0.3", axis="views", k=20, std_ratio=0.3, count=1000))
    cells.append(Cell("near4-1", axis="similar", views="near", std_ratio=1.0))
    cells.append(Cell("near4-0.3", axis="similar", views="near", std_ratio=0.3))
    cells.append(
        Cell("pairs10-0.3", axis="similar", views="pairs", k=10, std_ratio=0.3, count=1000)
    )
    for count in (300, 1200):
        cells.append(Cell(f"n{count}", axis="count", count=count))
    cells.append(
        Cell("box64-0.2", axis="box", box=64, pixel_angstrom=3.0, std_ratio=0.2, count=800)
    )
    return {c.name: c for c in cells}


CELLS = _cells()


def _similarity(images):
    """Largest normalised correlation over in-plane rotations (5° steps), (V, V), symmetric."""
    import torch

    from cryoglass.classify import rotate_images

    centred = images - images.mean((-2, -1), keepdim=True)
    flat = centred.reshape(len(images), -1)
    flat = flat / flat.norm(dim=1, keepdim=True)
    turned = rotate_images(centred[:, None], torch.arange(0.0, 360.0, 5.0)[None, :])
    turned = turned.reshape(len(images), turned.shape[1], -1)
    turned = turned / turned.norm(dim=-1, keepdim=True)
    sim = torch.einsum("if,jrf->ijr", flat, turned).amax(-1)
    return torch.maximum(sim, sim.T)


def view_set(kind: str, k: int, volume, pixel: float):
    """(K, 2) (rot, tilt) [deg] of a view set and the largest pairwise similarity among them.

    ``distinct``: a greedy farthest-point pick (by rotation-invariant correlation of the clean
    projections) over rot 0–80° × tilt 0–180° in 10° steps (TRPV1 is C4: rot repeats every
    90°), starting from the top view.  ``near``: rot 20°, tilts 60°, 65°, … (5° apart).
    ``pairs``: the first K/2 distinct views, each with a partner at tilt + 8°.
    """
    import torch

    from cryoglass.projection import project

    def projections(rt):
        euler = torch.cat((rt, torch.zeros(len(rt), 1)), dim=1)
        return project(volume, euler_deg=euler, pixel_size_angstrom=pixel)

    if kind == "near":
        views = torch.tensor([[20.0, 60.0 + 5.0 * i] for i in range(k)])
    else:
        grid = torch.cartesian_prod(torch.arange(0.0, 90.0, 10.0), torch.arange(0.0, 181.0, 10.0))
        grid = grid[((grid[:, 1] > 0) & (grid[:, 1] < 180)) | (grid[:, 0] == 0)]
        sim = _similarity(projections(grid))
        chosen = [int(((grid[:, 0] == 0) & (grid[:, 1] == 0)).nonzero()[0, 0])]
        wanted = k if kind == "distinct" else k // 2
        while len(chosen) < wanted:  # greedy farthest point: K small
            worst = sim[:, chosen].amax(1)
            worst[chosen] = math.inf
            chosen.append(int(worst.argmin()))
        views = grid[chosen]
        if kind == "pairs":
            partner = views + torch.tensor([0.0, 8.0])
            partner[:, 1] = torch.where(views[:, 1] > 170, views[:, 1] - 8.0, partner[:, 1])
            views = torch.stack((views, partner), dim=1).reshape(-1, 2)
    sim = _similarity(projections(views))
    sim.fill_diagonal_(-1.0)
    return views, float(sim.max())


# ----------------------------------------------------------------------------- data and runs


def write_cell_inputs(folder: Path, cell: Cell, seed: int) -> dict:
    """Simulate a cell's particles into folder/particles.star + .mrcs; the truth and the data."""
    import torch

    from cryoglass.classify.synthetic import simulate_views
    from cryoglass.data import model_map
    from cryoglass.io import make_particle_set, write_mrc, write_relion_star

    volume = model_map(box=cell.box, pixel_size_angstrom=cell.pixel_angstrom, sigma_angstrom=3.0)[0]
    views, similarity = view_set(cell.views, cell.k, volume, cell.pixel_angstrom)
    data = simulate_views(
        volume,
        view_euler_deg=views,
        n=cell.count,
        pixel_size_angstrom=cell.pixel_angstrom,
        snr=cell.std_ratio**2,
        generator=torch.Generator().manual_seed(1000 + seed),
        shift_range_angstrom=cell.shift_range_angstrom,
    )
    images = data.images / data.noise_std
    pixel = cell.pixel_angstrom
    write_mrc(folder / "particles.mrcs", images, pixel_size_angstrom=pixel, stack=True)
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(cell.count)]
    particles = make_particle_set(
        names,
        pixel_size_angstrom=cell.pixel_angstrom,
        image_size=cell.box,
        ctf=data.ctf,
        image_root=folder,
    )
    write_relion_star(folder / "particles.star", particles)
    return {
        "labels": data.labels,
        "psi": data.euler_deg[:, 2],
        "images": images,
        "ctf": data.ctf,
        "views": views,
        "similarity": similarity,
    }


def cryoglass_command(cell: Cell, seed: int, out: str = "cg", oversampling: int = 1) -> list[str]:
    p = cell.pixel_angstrom
    return [
        sys.executable,
        "-c",
        "import typer; from cryoglass.cli.class2d import main; typer.run(main)",
        "particles.star",
        "--classes", str(cell.k),
        "--iterations", str(cell.iterations),
        "--out", out,
        "--psi-step-deg", f"{cell.psi_step_deg:g}",
        "--offset-range-angstrom", f"{cell.offset_range_px * p:g}",
        "--offset-step-angstrom", f"{cell.offset_step_px * p:g}",
        "--ctf",
        "--tau2-fudge", f"{cell.tau2_fudge:g}",
        "--particle-diameter-angstrom", f"{cell.diameter_angstrom:g}",
        "--seed", str(seed),
        "--oversampling", str(oversampling),
    ]  # fmt: skip


def relion_command(cell: Cell, seed: int, threads: int) -> list[str]:
    return [
        "relion_refine",
        "--i", "particles.star",
        "--o", "relion/run",
        "--K", str(cell.k),
        "--iter", str(cell.iterations),
        "--psi_step", f"{cell.psi_step_deg:g}",
        "--offset_range", str(cell.offset_range_px),
        "--offset_step", str(cell.offset_step_px),
        "--ctf",
        "--tau2_fudge", f"{cell.tau2_fudge:g}",
        "--particle_diameter", f"{cell.diameter_angstrom:g}",
        "--zero_mask", "--flatten_solvent", "--oversampling", "1",
        "--j", str(threads), "--pool", "3",
        "--dont_combine_weights_via_disc",
        "--random_seed", str(seed + 1),  # RELION's seed 0 means "do not randomise the order"
        "--dont_check_norm",
    ]  # fmt: skip


def score(star: Path, labels, true_psi) -> tuple[float, float]:
    """(ARI, median psi error [deg]) of a _data.star against the truth."""
    import starfile
    import torch

    from cryoglass.classify import adjusted_rand_index, inplane_error_deg

    table = starfile.read(star)
    table = table["particles"] if isinstance(table, dict) else table
    index = torch.as_tensor(
        [int(name.split("@")[0]) - 1 for name in table["rlnImageName"]], dtype=torch.int64
    )
    classes = torch.as_tensor(table["rlnClassNumber"].to_numpy().astype("int64"))
    psi = torch.as_tensor(table["rlnAnglePsi"].to_numpy().astype("float64"))
    ari = adjusted_rand_index(labels[index], classes)
    error = inplane_error_deg(psi, true_psi[index].double(), classes)
    return ari, float(error.median())


def _timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_cell(
    cell: Cell, seed: int, *, threads: int, relion: bool = True, oversampling: int = 1
) -> dict:
    """Both programs on one simulated set: a JSON-able row."""
    env = _env(threads)
    row: dict = {
        "cell": cell.name,
        "seed": seed,
        "settings": asdict(cell),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cores": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="bench_class2d_") as tmp:
        folder = Path(tmp)
        truth = write_cell_inputs(folder, cell, seed)
        row["view_similarity"] = truth["similarity"]
        row["load_before"] = os.getloadavg()[0]
        wall = _timed(cryoglass_command(cell, seed, oversampling=oversampling), folder, env)
        ari, psi = score(folder / "cg" / "particles.star", truth["labels"], truth["psi"])
        row["cryoglass"] = {
            "wall_s": wall,
            "ari": ari,
            "psi_error_deg": psi,
            "oversampling": oversampling,
        }
        row["cryoglass"]["log"] = json.loads((folder / "cg" / "model.json").read_text())["log"]
        if relion:
            (folder / "relion").mkdir()
            wall = _timed(relion_command(cell, seed, threads), folder, env)
            star = folder / "relion" / f"run_it{cell.iterations:03d}_data.star"
            ari, psi = score(star, truth["labels"], truth["psi"])
            row["relion"] = {"wall_s": wall, "ari": ari, "psi_error_deg": psi}
            stars = [
                star.with_name(f"run_it{i:03d}_data.star") for i in range(1, cell.iterations + 1)
            ]
            row["relion"]["ari_per_iteration"] = [
                round(score(s, truth["labels"], truth["psi"])[0], 4) for s in stars
            ]
        row["load_after"] = os.getloadavg()[0]
    for log in row["cryoglass"]["log"]:  # keep the row small
        log.pop("resolution_angstrom", None)
    return row


# ----------------------------------------------------------------------------- sweep and table


def _done(results: Path) -> set[tuple[str, int]]:
    if not results.is_file():
        return set()
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {(r["cell"], r["seed"]) for r in rows}


def sweep(args) -> None:
    names = args.cells.split(",") if args.cells else list(CELLS)
    unknown = [n for n in names if n not in CELLS]
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; known: {', '.join(CELLS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = Path(args.results)
    done = _done(results) if args.resume else set()
    with_relion = not args.skip_relion and shutil.which("relion_refine") is not None
    os.nice(args.nice)  # inherited by both programs: other engineers share the machine
    for name in names:
        for seed in seeds:
            if (name, seed) in done:
                continue
            row = run_cell(
                CELLS[name],
                seed,
                threads=args.threads,
                relion=with_relion,
                oversampling=args.oversampling,
            )
            ours, peer = row["cryoglass"], row.get("relion", {})
            nan = math.nan
            print(
                f"{name} seed {seed}: cryoglass ARI {ours['ari']:.3f} "
                f"psi {ours['psi_error_deg']:.1f}° {ours['wall_s']:.1f} s | "
                f"relion ARI {peer.get('ari', nan):.3f} psi {peer.get('psi_error_deg', nan):.1f}° "
                f"{peer.get('wall_s', nan):.1f} s "
                f"(load {row['load_before']:.2f} → {row['load_after']:.2f})",
                flush=True,
            )
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")


def table(results: Path) -> str:
    """Markdown table of a results file: one row per cell, means over its seeds."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    by_cell: dict[str, list[dict]] = {}
    for r in rows:
        by_cell.setdefault(r["cell"], []).append(r)
    order = [n for n in CELLS if n in by_cell] + [n for n in by_cell if n not in CELLS]
    lines = [
        "| cell | K | views (max sim.) | signal/noise std | n | seeds | ARI cryoglass | ARI RELION "
        "| Δ ARI | psi err. cg / RELION [°] | time cg / RELION [s] | ratio | load | ✔ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    for name in order:
        group = by_cell[name]
        s = group[0]["settings"]
        cg = [g["cryoglass"] for g in group]
        rl = [g["relion"] for g in group if "relion" in g]
        a_cg = mean([c["ari"] for c in cg])
        a_rl = mean([c["ari"] for c in rl]) if rl else math.nan
        t_cg = mean([c["wall_s"] for c in cg])
        t_rl = mean([c["wall_s"] for c in rl]) if rl else math.nan
        loads = [g["load_before"] for g in group] + [g["load_after"] for g in group]
        ok = "✔" if rl and a_cg >= a_rl - 0.02 else ("✘" if rl else "")
        aris = lambda xs: "/".join(f"{x['ari']:.2f}" for x in xs)  # noqa: E731
        lines.append(
            f"| {name} | {s['k']} | {s['views']} ({group[0]['view_similarity']:.3f}) "
            f"| {s['std_ratio']:g} | {s['count']} | {len(group)} "
            f"| {a_cg:.3f} ({aris(cg)}) | {a_rl:.3f} ({aris(rl)}) | {a_cg - a_rl:+.3f} "
            f"| {mean([c['psi_error_deg'] for c in cg]):.1f} / "
            f"{mean([c['psi_error_deg'] for c in rl]) if rl else math.nan:.1f} "
            f"| {t_cg:.1f} / {t_rl:.1f} | {t_cg / t_rl:.2f} "
            f"| {min(loads):.1f}–{max(loads):.1f} | {ok} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- single run


def _write_inputs(folder: Path, count: int, seed: int = 0):
    """The star + stack of the single run; returns (true labels, true psi)."""
    import torch

    from cryoglass.classify.synthetic import simulate_views
    from cryoglass.data import model_map
    from cryoglass.io import make_particle_set, write_mrc, write_relion_star

    volume = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=3.0)[0]
    data = simulate_views(
        volume,
        view_euler_deg=torch.tensor(VIEWS),
        n=count,
        pixel_size_angstrom=PIXEL,
        snr=0.1,
        generator=torch.Generator().manual_seed(seed),
        shift_range_angstrom=6.0,
    )
    images = data.images / data.noise_std
    write_mrc(folder / "particles.mrcs", images, pixel_size_angstrom=PIXEL, stack=True)
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(count)]
    particles = make_particle_set(
        names, pixel_size_angstrom=PIXEL, image_size=N, ctf=data.ctf, image_root=folder
    )
    write_relion_star(folder / "particles.star", particles)
    return data.labels, data.euler_deg[:, 2]


def single(args) -> None:
    import torch

    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}"
    )
    print(
        f"data: {args.count} × {N}² at {PIXEL} Å/px, K = {K} views, SNR 0.1, CTF, "
        f"{args.iterations} iterations, psi step 10°, offsets ±9 Å step 3 Å, T = 2"
    )
    cell = Cell(
        "single",
        axis="single",
        k=K,
        count=args.count,
        box=N,
        pixel_angstrom=PIXEL,
        iterations=args.iterations,
    )
    env = _env(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_class2d_") as tmp:
        folder = Path(tmp)
        labels, true_psi = _write_inputs(folder, args.count)
        print(f"load average before: {os.getloadavg()}")
        wall = _timed(cryoglass_command(cell, 0), folder, env)
        ari, psi_error = score(folder / "cg" / "particles.star", labels, true_psi)
        print(
            f"cryoglass class2d: {wall:.1f} s, ARI {ari:.3f}, median psi error "
            f"{psi_error:.1f}° (load {os.getloadavg()[0]:.2f})"
        )
        if args.skip_relion or shutil.which("relion_refine") is None:
            print("relion_refine: skipped")
            return
        (folder / "relion").mkdir()
        relion_wall = _timed(relion_command(cell, 0, args.threads), folder, env)
        star = folder / "relion" / f"run_it{args.iterations:03d}_data.star"
        relion_ari, relion_psi = score(star, labels, true_psi)
        print(
            f"relion_refine: {relion_wall:.1f} s, ARI {relion_ari:.3f}, median psi error "
            f"{relion_psi:.1f}° (load {os.getloadavg()[0]:.2f})"
        )
        print(f"ratio cryoglass / RELION wall time: {wall / relion_wall:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1200)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-relion", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="run the cells of the sweep")
    parser.add_argument("--cells", default="", help="comma-separated cell names (default all)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--results", default=str(RESULTS), help="JSON-lines results file")
    parser.add_argument("--resume", action="store_true", help="skip (cell, seed) already done")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the sweep")
    parser.add_argument(
        "--oversampling", type=int, default=1, help="cryoglass --oversampling (RELION runs with 1)"
    )
    parser.add_argument("--table", action="store_true", help="print the results' table")
    parser.add_argument("--list", action="store_true", help="list the cells")
    args = parser.parse_args()
    if args.list:
        for cell in CELLS.values():
            print(cell)
    elif args.table:
        print(table(Path(args.results)))
    elif args.sweep:
        sweep(args)
    else:
        single(args)


if __name__ == "__main__":
    main()
