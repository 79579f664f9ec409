"""Distributed reconstruct and simulate: single process vs 1 and 2 Dask worker processes.

Simulates N particles (box B) to disk with 1 and 2 workers, then reconstructs them with the
single-process loop of ``cryoglass reconstruct`` and with 1 and 2 workers; prints wall times,
speed-ups, the overhead of the distributed path and peak memory (VmHWM), with the machine load.
The cluster start-up is timed separately (it is paid once per command).

    python benchmarks/bench_distributed.py [N] [BOX]
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from cryoglass.distributed import (
    ReconstructSettings,
    SimulateSettings,
    open_client,
    peak_memory,
    peak_rss_bytes,
    reconstruct_sums,
    simulate_stack,
)
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.io import ParticleStack, make_particle_set, write_mrc
from cryoglass.reconstruct import accumulate, empty_accumulator
from cryoglass.simulate import ParticleDistributions, calibrate_noise_std
from cryoglass.simulate.phantom import gaussian_map


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else "?"


def serial_reconstruct(particles, pixel: float, batch: int) -> float:
    started = time.perf_counter()
    acc = empty_accumulator(particles.image_size)
    rotations = euler_to_matrix(particles.euler_deg.to(torch.float32))
    shifts = particles.shift_angstrom.to(torch.float32)
    ctf = particles.ctf.as_tensors(dtype=torch.float32)
    with ParticleStack(particles) as stack:
        for idx, images in stack.iter_batches(batch):
            acc = accumulate(
                acc,
                images,
                rotations[idx],
                shift_angstrom=shifts[idx],
                ctf=ctf[idx],
                pixel_size_angstrom=pixel,
                inplace=True,
            )
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    box = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    pixel, chunk = 2.0, 1024
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads in this process)"
    )
    print(f"sizes: {n} particles, box {box}, chunk {chunk}; loadavg before: {loadavg()}")
    folder = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    g = torch.Generator().manual_seed(0)
    volume = gaussian_map(
        (torch.rand(20, 3, generator=g) - 0.5) * box * pixel * 0.5,
        shape=(box,) * 3,
        pixel_size_angstrom=pixel,
        sigma_angstrom=4.0,
    )
    write_mrc(folder / "truth.mrc", volume, pixel_size_angstrom=pixel)
    dist = ParticleDistributions()
    settings = SimulateSettings(
        volume_path=str(folder / "truth.mrc"),
        n=n,
        pixel_size_angstrom=pixel,
        distributions=dist,
        noise_std=calibrate_noise_std(
            volume, pixel_size_angstrom=pixel, snr=0.1, distributions=dist
        ),
    )
    times, params = {}, None
    for workers in (1, 2):
        t0 = time.perf_counter()
        with open_client(workers=workers, dashboard=False) as (client, _):
            client.wait_for_workers(workers)
            client.run(lambda: __import__("cryoglass.distributed.tasks"))  # warm imports
            t1 = time.perf_counter()
            params, _ = simulate_stack(
                client, folder / "particles.mrcs", settings=settings, box=box, chunk_size=chunk
            )
            t2 = time.perf_counter()
            times[("simulate", workers)] = t2 - t1
            names = [f"{i + 1:06d}@particles.mrcs" for i in range(n)]
            particles = make_particle_set(
                names,
                pixel_size_angstrom=pixel,
                image_size=box,
                euler_deg=params.euler_deg,
                shift_angstrom=params.shift_angstrom,
                ctf=params.ctf,
                image_root=folder,
            )
            rec = ReconstructSettings(box=box, pixel_size_angstrom=pixel, batch_size=256)
            t3 = time.perf_counter()
            reconstruct_sums(client, particles, settings=rec, chunk_size=chunk)
            times[("reconstruct", workers)] = time.perf_counter() - t3
            mem = peak_memory(client)
            print(
                f"{workers} worker(s): cluster start {t1 - t0:.1f} s, simulate {t2 - t1:.2f} s, "
                f"reconstruct {times[('reconstruct', workers)]:.2f} s, peak worker RSS "
                f"{mem['max_worker_bytes'] / 2**20:.0f} MiB; loadavg {loadavg()}"
            )
    serial = serial_reconstruct(particles, pixel, 256)
    print(
        f"single process ({torch.get_num_threads()} torch threads) reconstruct {serial:.2f} s, "
        f"peak RSS {peak_rss_bytes() / 2**20:.0f} MiB; loadavg {loadavg()}"
    )
    for kind in ("simulate", "reconstruct"):
        print(f"{kind}: speed-up 2 vs 1 worker {times[(kind, 1)] / times[(kind, 2)]:.2f}x")
    print(
        "reconstruct overhead, 1 worker vs single process: "
        f"{times[('reconstruct', 1)] / serial:.2f}x"
        f" (the worker runs 1 torch thread, this process {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
