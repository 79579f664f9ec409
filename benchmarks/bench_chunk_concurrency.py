"""Benchmark: does one reconstruct chunk slow down when another process runs one at the same time?

The distributed reconstruct can only scale with the workers if a chunk takes as long with two
workers busy as with one.  This script times ``cryoglass.distributed.reconstruct_chunk`` on one
thread in plain processes (no Dask): one process alone, then two processes side by side on
different particles, and prints the per-chunk times and the slow-down.

Run:  /work/venv/bin/python benchmarks/bench_chunk_concurrency.py STAR [--chunks 4]
      [--chunk-size 2048] [--batch-size 256]
(STAR: a particle set with poses and CTF, e.g. the 100,000 × 128² set of benchmarks/RESULTS.md.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def child(star: str, offset: int, chunks: int, chunk_size: int, batch_size: int) -> None:
    """Time ``chunks`` chunks starting at particle ``offset``; print their seconds as JSON."""
    import torch

    from cryoglass.distributed.tasks import ReconstructSettings, make_chunks, reconstruct_chunk
    from cryoglass.io import read_particles

    torch.set_num_threads(1)
    particles = read_particles(star)
    particles = particles.subset(torch.arange(offset, offset + chunks * chunk_size))
    labels = torch.arange(len(particles)) % 2 + 1
    settings = ReconstructSettings(
        box=particles.image_size,
        pixel_size_angstrom=float(particles.pixel_size_angstrom[0]),
        groups=(1, 2),
        ctf=True,
        batch_size=batch_size,
    )
    seconds = []
    for chunk in make_chunks(particles, chunk_size=chunk_size, labels=labels):
        start = time.perf_counter()
        reconstruct_chunk(chunk, settings)
        seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


def run(args, offsets: list[int]) -> list[list[float]]:
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, args.star, "--child", str(offset)]
            + ["--chunks", str(args.chunks), "--chunk-size", str(args.chunk_size)]
            + ["--batch-size", str(args.batch_size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for offset in offsets
    ]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("star")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.star, args.child, args.chunks, args.chunk_size, args.batch_size)
        return
    print(f"loadavg {open('/proc/loadavg').read().split()[:3]}")
    # the first chunk of a process pays imports and page faults: report the mean of the others
    (alone,) = run(args, [0])
    both = run(args, [0, args.chunks * args.chunk_size])
    mean = lambda xs: sum(xs[1:]) / max(len(xs) - 1, 1)  # noqa: E731
    print(f"alone:       {[round(x, 2) for x in alone]} s per chunk, mean {mean(alone):.2f} s")
    for k, times in enumerate(both):
        print(f"two at once, process {k}: {[round(x, 2) for x in times]}, mean {mean(times):.2f} s")
    slow = max(mean(t) for t in both) / mean(alone)
    print(f"slow-down with two processes: {slow:.2f}x (1.00 = the cores scale perfectly)")


if __name__ == "__main__":
    main()
