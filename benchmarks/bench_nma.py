"""Benchmark: ANM normal modes vs ProDy 2.6 (peer venv /work/peers), same coordinates, same run.

1. ANM on 3000 Cα (a compact patch of the 7CTH icosahedral assembly), 20 modes: cryoglass
   (sparse shift-invert Lanczos) vs ProDy (``ANM.buildHessian`` + ``calcModes(20)``, dense).
2. Whole process on a 398-Cα model (8ZPM): ``cryoglass nma MODEL --out DIR`` (with and
   without the report) vs a ProDy script (parsePDB, ANM, calcModes, writeNPZ), wall clock.
3. TRN with 1000 nodes on a 128³ map (TRPV1 potential at 1.5 Å) vs ProDy's ``parseEMD``.

    python benchmarks/bench_nma.py [--skip-trn]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("CRYOGLASS_SHARED_DATA", "/work/shared/data"))
PEER = Path("/work/peers/bin/python")

PRODY_ANM = """
import sys, time, json, numpy as np
t0 = time.perf_counter(); import prody; prody.confProDy(verbosity='none'); t1 = time.perf_counter()
xyz = np.load(sys.argv[1]); anm = prody.ANM('x')
t2 = time.perf_counter(); anm.buildHessian(xyz); anm.calcModes(20); t3 = time.perf_counter()
np.save(sys.argv[2], anm.getEigvals())
print(json.dumps({'import_s': t1 - t0, 'anm_s': t3 - t2, 'version': prody.__version__}))
"""

PRODY_SCRIPT = """
import sys, prody
prody.confProDy(verbosity='none')
ca = prody.parsePDB(sys.argv[1]).select('protein and name CA')
anm = prody.ANM('m'); anm.buildHessian(ca); anm.calcModes(20)
prody.saveModel(anm, sys.argv[2])
"""

PRODY_TRN = """
import sys, time, json, prody
prody.confProDy(verbosity='none')
t = time.perf_counter(); emd = prody.parseEMD(sys.argv[1], n_nodes=1000)
print(json.dumps({'trn_s': time.perf_counter() - t}))
"""

CLI = """
import sys, typer
from cryoglass.cli.nma import main
app = typer.Typer(); app.command('nma')(main); app.command('x')(lambda: None)
sys.argv = ['cryoglass', 'nma', *sys.argv[1:]]
app()
"""


def patch_3000() -> np.ndarray:
    import gemmi

    st = gemmi.read_structure(str(SHARED / "models" / "mmcif_7cth.cif"))
    assembly = gemmi.make_assembly(st.assemblies[0], st[0], gemmi.HowToNameCopiedChain.Short)
    xyz = np.array(
        [[a.pos.x, a.pos.y, a.pos.z] for c in assembly for r in c for a in r if a.name == "CA"]
    )
    start = xyz[0]
    order = np.argsort(((xyz - start) ** 2).sum(1))
    return xyz[order[:3000]]


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-trn", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"loadavg {open('/proc/loadavg').read().split()[:3]}"
    )
    from cryoglass.nma import anm

    tmp = Path(tempfile.mkdtemp())
    xyz = patch_3000()
    np.save(tmp / "xyz.npy", xyz)
    t = time.perf_counter()
    ours = anm(xyz, n_modes=20)
    ours_s = time.perf_counter() - t
    peer = subprocess.run(
        [str(PEER), "-c", PRODY_ANM, str(tmp / "xyz.npy"), str(tmp / "ev.npy")],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(peer.stdout.strip().splitlines()[-1])
    theirs = np.load(tmp / "ev.npy")
    diff = np.abs(ours.eigenvalues - theirs).max()
    print(
        f"ANM 3000 Ca, 20 modes: cryoglass {ours_s:.2f} s (sparse shift-invert), "
        f"ProDy {info['version']} {info['anm_s']:.2f} s (dense), ratio "
        f"{info['anm_s'] / ours_s:.1f}x, max |dλ| = {diff:.2e} "
        f"(rel {np.max(diff / theirs):.1e})"
    )

    model = SHARED / "models" / "8zpm.cif"
    py = sys.executable
    ours_full = wall([py, "-c", CLI, str(model), "--out", str(tmp / "a")])
    ours_light = wall([py, "-c", CLI, str(model), "--out", str(tmp / "b"), "--no-report"])
    theirs_full = wall([str(PEER), "-c", PRODY_SCRIPT, str(model), str(tmp / "p")])
    print(
        f"whole process, 8ZPM (398 Ca), 20 modes: cryoglass nma {ours_full:.2f} s with "
        f"report, {ours_light:.2f} s --no-report; ProDy script {theirs_full:.2f} s"
    )

    if args.skip_trn:
        return
    import torch

    from cryoglass.data import model_map
    from cryoglass.io import write_mrc
    from cryoglass.nma import topology_representing_network

    volume, _, _ = model_map(box=128, pixel_size_angstrom=1.5, sigma_angstrom=2.0)
    write_mrc(tmp / "map.mrc", volume, pixel_size_angstrom=1.5, overwrite=True)
    t = time.perf_counter()
    net = topology_representing_network(volume.float(), 1000, pixel_size_angstrom=1.5, seed=0)
    ours_trn = time.perf_counter() - t
    try:
        peer = subprocess.run(
            [str(PEER), "-c", PRODY_TRN, str(tmp / "map.mrc")],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
        trn_peer = f"{json.loads(peer.stdout.strip().splitlines()[-1])['trn_s']:.1f} s"
    except (subprocess.SubprocessError, ValueError) as error:
        trn_peer = f"failed ({type(error).__name__})"
    print(
        f"TRN 1000 nodes, 128^3 map: cryoglass {ours_trn:.1f} s "
        f"({net.edges.shape[0]} edges, torch threads {torch.get_num_threads()}); "
        f"ProDy parseEMD {trn_peer}"
    )


if __name__ == "__main__":
    main()
