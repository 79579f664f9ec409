"""SCF / SCF* for 1,000,000 projection directions (goal < 5 s).

Peer: the authors' CommandLineSCF (numpy) is not installable here (breaks on current numpy); its
algorithm is a dense (rays × directions) dot-product matrix.  As its stand-in we time that dense
algorithm in torch on 100,000 directions and scale linearly (labelled as such).
"""

import os
import platform
import time

import torch

from cryoglass.validate.orientations import orientation_statistics


def main() -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, loadavg {os.getloadavg()}"
    )
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(
        torch.randn(1_000_000, 3, generator=g, dtype=torch.float64), dim=1
    )
    t0 = time.perf_counter()
    stats = orientation_statistics(d, fourier_radius=50)
    ours = time.perf_counter() - t0
    print(f"cryoglass SCF, 1e6 directions, R=50, 5000 rays: {ours:.2f} s (scf={stats.scf:.4f})")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on an oversubscribed machine one thread avoids spin-waits
    t0 = time.perf_counter()
    orientation_statistics(d, fourier_radius=50)
    print(f"same, 1 thread: {time.perf_counter() - t0:.2f} s, loadavg {os.getloadavg()}")
    torch.set_num_threads(threads)
    rays = torch.nn.functional.normalize(torch.randn(5000, 3, generator=g), dim=1)
    sub = d[:100_000].float()
    t0 = time.perf_counter()
    counts = torch.zeros(5000)
    for chunk in sub.split(20_000):
        counts += ((rays @ chunk.T).abs() * 50 < 0.5).sum(1)
    dense = (time.perf_counter() - t0) * 10
    print(f"dense rays x directions (program's algorithm), scaled to 1e6: {dense:.2f} s")
    print(f"ratio dense/cryoglass: {dense / ours:.1f}x")


if __name__ == "__main__":
    main()
