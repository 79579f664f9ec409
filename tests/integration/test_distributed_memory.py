"""Out of core: a stack twice a worker's memory limit is read with flat peak memory."""

from __future__ import annotations

import os

import mrcfile
import numpy as np
import pytest

pytest.importorskip("dask.distributed")

from cryoglass.distributed import open_client, peak_memory, stack_sums  # noqa: E402
from cryoglass.io import make_particle_set  # noqa: E402

BOX = 64
LIMIT = 640 * 2**20  # the worker's Dask memory limit (its nanny restarts it at 95 %)


def _stack(path, n):
    """An MRC stack of n images; image i is (i mod 7) + pattern, written block by block."""
    pattern = (np.arange(BOX * BOX, dtype=np.float32).reshape(BOX, BOX) % 13) / 13
    with mrcfile.new_mmap(path, shape=(n, BOX, BOX), mrc_mode=2, overwrite=True) as mrc:
        for start in range(0, n, 4096):
            stop = min(start + 4096, n)
            mrc.data[start:stop] = (np.arange(start, stop) % 7)[:, None, None] + pattern
    names = [f"{i + 1:06d}@{path.name}" for i in range(n)]
    particles = make_particle_set(
        names, pixel_size_angstrom=1.0, image_size=BOX, image_root=path.parent
    )
    counts = np.bincount(np.arange(n) % 7, minlength=7)
    expected = sum(c * (np.float32(r) + pattern).astype(np.float64) for r, c in enumerate(counts))
    return particles, expected


@pytest.mark.slow
def test_stack_twice_the_memory_limit_has_flat_peak_memory(tmp_path):
    small_n = 8192  # 128 MiB
    big_n = (2 * LIMIT) // (BOX * BOX * 4)  # 1.25 GiB on disk = 2 × the limit
    small, small_sum = _stack(tmp_path / "small.mrcs", small_n)
    big, big_sum = _stack(tmp_path / "big.mrcs", big_n)
    assert (tmp_path / "big.mrcs").stat().st_size >= 2 * LIMIT
    with open_client(workers=1, memory_limit=LIMIT, dashboard=False) as (client, _):
        pids = client.run(os.getpid)
        sums = stack_sums(client, small, chunk_size=1024)
        np.testing.assert_allclose(sums["sum"], small_sum, rtol=1e-9)
        after_small = peak_memory(client)["max_worker_bytes"]
        sums = stack_sums(client, big, chunk_size=1024)
        np.testing.assert_allclose(sums["sum"], big_sum, rtol=1e-9)
        assert int(sums["count"]) == big_n
        after_big = peak_memory(client)["max_worker_bytes"]
        assert client.run(os.getpid) == pids  # the same process: never restarted for memory
    print(
        f"worker peak RSS: {after_small / 2**20:.0f} MiB after {small_n} images, "
        f"{after_big / 2**20:.0f} MiB after {big_n} images ({big_n * BOX * BOX * 4 >> 20} MiB)"
    )
    assert after_big < LIMIT
    assert after_big - after_small < 64 * 2**20  # flat: 10 × more data, < 64 MiB more peak
