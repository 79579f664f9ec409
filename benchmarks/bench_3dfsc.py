"""3DFSC on 128³ half maps (goal < 10 s).

Peer: the 3DFSC program (nysbc/Anisotropy) pins numpy 1.13 and is not installable here; Tan et
al. report 89 s on its own example on CPU — quoted, NOT measured in this run.
"""

import os
import platform
import time

import torch

from cryoglass.validate.fsc3d import three_d_fsc


def main() -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, loadavg {os.getloadavg()}"
    )
    g = torch.Generator().manual_seed(0)
    n = 128
    truth = torch.randn(n, n, n, generator=g)
    h1 = truth + 0.5 * torch.randn(n, n, n, generator=g)
    h2 = truth + 0.5 * torch.randn(n, n, n, generator=g)
    t0 = time.perf_counter()
    result = three_d_fsc(h1, h2, pixel_size_angstrom=1.0)
    ours = time.perf_counter() - t0
    print(
        f"cryoglass 3dfsc 128^3, 642 cones of 20°: {ours:.2f} s "
        f"(sphericity {result.sphericity:.3f})"
    )
    print("3DFSC program (Tan et al. 2017): 89 s on its example, quoted, not measured here")


if __name__ == "__main__":
    main()
