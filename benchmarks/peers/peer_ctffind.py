"""ASPIRE's CTF estimator on a folder of micrographs (run with the peers' Python, not cryoglass's).

    /work/peers/bin/python benchmarks/peers/peer_ctffind.py --folder mics/ --pixel-size 1.5 \
        [--cs 2.7 --voltage 300 --amplitude-contrast 0.1 --psd-size 512 --g-min 30 --g-max 5] \
        [--threads 1]

Prints one JSON line: {"tool": "aspire", "version", "seconds" and "cpu_seconds" (total),
"results": {file name:
{"defocus_u", "defocus_v" [Å], "defocus_ang" [rad, ASPIRE's convention]}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", required=True)
    parser.add_argument("--pixel-size", type=float, required=True)
    parser.add_argument("--cs", type=float, default=2.7)
    parser.add_argument("--voltage", type=float, default=300.0)
    parser.add_argument("--amplitude-contrast", type=float, default=0.1)
    parser.add_argument("--psd-size", type=int, default=512)
    parser.add_argument("--g-min", type=float, default=30.0)
    parser.add_argument("--g-max", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import aspire
    from aspire.ctf import estimate_ctf

    with tempfile.TemporaryDirectory() as out:
        started, cpu = time.perf_counter(), time.process_time()
        results = estimate_ctf(
            data_folder=args.folder,
            pixel_size=args.pixel_size,
            cs=args.cs,
            amplitude_contrast=args.amplitude_contrast,
            voltage=args.voltage,
            psd_size=args.psd_size,
            g_min=args.g_min,
            g_max=args.g_max,
            output_dir=out,
        )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    clean = {
        name: {k: float(v) for k, v in r.items() if k in ("defocus_u", "defocus_v", "defocus_ang")}
        for name, r in results.items()
    }
    json.dump({"tool": "aspire", "version": aspire.__version__, "seconds": seconds,
               "cpu_seconds": cpu_seconds, "results": clean}, sys.stdout)  # fmt: skip
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
