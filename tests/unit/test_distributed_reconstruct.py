"""Distributed reconstruct (Dask LocalCluster, worker processes) equals the single-process sums."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

pytest.importorskip("dask.distributed")

from cryoglass.distributed import (  # noqa: E402
    ReconstructSettings,
    RunStats,
    accumulator_from_sums,
    add_sums,
    load_checkpoint,
    make_chunks,
    open_client,
    peak_memory,
    reconstruct_chunk,
    reconstruct_sums,
    save_checkpoint,
)
from cryoglass.geometry import euler_to_matrix, matrix_to_euler, random_rotations  # noqa: E402
from cryoglass.io import make_particle_set, write_mrc  # noqa: E402
from cryoglass.reconstruct import accumulate, empty_accumulator, finalize  # noqa: E402

BOX, COUNT, PIXEL = 16, 180, 2.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Random images in two .mrcs files, with poses, origins, CTF and half labels."""
    from cryoglass.ctf import CTFParams

    folder = tmp_path_factory.mktemp("stack")
    g = torch.Generator().manual_seed(7)
    images = torch.randn(COUNT, BOX, BOX, generator=g)
    split = 110
    write_mrc(folder / "a.mrcs", images[:split], pixel_size_angstrom=PIXEL, stack=True)
    write_mrc(folder / "b.mrcs", images[split:], pixel_size_angstrom=PIXEL, stack=True)
    names = [f"{i + 1:06d}@a.mrcs" for i in range(split)]
    names += [f"{i + 1:06d}@b.mrcs" for i in range(COUNT - split)]
    euler = matrix_to_euler(random_rotations(COUNT, generator=g, dtype=torch.float64))
    ctf = CTFParams(
        defocus_u_angstrom=torch.rand(COUNT, generator=g, dtype=torch.float64) * 1e4 + 5e3,
        defocus_v_angstrom=torch.rand(COUNT, generator=g, dtype=torch.float64) * 1e4 + 5e3,
        astigmatism_angle_deg=torch.rand(COUNT, generator=g, dtype=torch.float64) * 180,
    )
    particles = make_particle_set(
        names,
        pixel_size_angstrom=PIXEL,
        image_size=BOX,
        euler_deg=euler,
        shift_angstrom=torch.randn(COUNT, 2, generator=g, dtype=torch.float64) * 3,
        ctf=ctf,
        image_root=folder,
    )
    labels = torch.randint(1, 3, (COUNT,), generator=g)
    return particles, images, labels


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster of three worker processes for the whole module."""
    with open_client(workers=3, dashboard=False) as (client, info):
        client.wait_for_workers(3)
        yield client, info


def _serial(particles, images, labels, *, symmetry="C1"):
    """The single-process accumulation of ``cryoglass reconstruct`` (float32)."""
    rotations = euler_to_matrix(particles.euler_deg.to(torch.float32))
    shifts = particles.shift_angstrom.to(torch.float32)
    ctf = particles.ctf.as_tensors(dtype=torch.float32)
    accs = {}
    for g in (1, 2):
        sel = torch.nonzero(labels == g).reshape(-1)
        accs[g] = accumulate(
            empty_accumulator(BOX),
            images[sel],
            rotations[sel],
            shift_angstrom=shifts[sel],
            ctf=ctf[sel],
            pixel_size_angstrom=PIXEL,
            symmetry=symmetry,
        )
    return accs


def _assert_same(accs, reference):
    for g in (1, 2):
        a, b = accs[g], reference[g]
        assert a.count == b.count
        scale_d = float(b.data.abs().max())
        scale_w = float(b.weight.abs().max())
        assert float((a.data - b.data).abs().max()) <= 2e-5 * scale_d
        assert float((a.weight - b.weight).abs().max()) <= 2e-5 * scale_w
        ma, mb = finalize(a), finalize(b)
        assert torch.allclose(ma, mb, rtol=0, atol=1e-4 * float(mb.abs().max()))


SETTINGS = ReconstructSettings(box=BOX, pixel_size_angstrom=PIXEL, groups=(1, 2), batch_size=32)


def test_make_chunks_covers_all_particles(dataset):
    particles, _, labels = dataset
    chunks = make_chunks(particles, chunk_size=50, labels=labels)
    assert [len(c) for c in chunks] == [50, 50, 50, 30]
    assert [c.start for c in chunks] == [0, 50, 100, 150]
    # the chunk spanning both files keeps two; the others only their own file
    assert [len(c.particles.image_files) for c in chunks] == [1, 1, 2, 1]
    assert np.array_equal(np.concatenate([c.labels for c in chunks]), labels.numpy())
    assert chunks[2].particles.particles_table is None
    with pytest.raises(ValueError, match="chunk_size"):
        make_chunks(particles, chunk_size=0)


def test_chunk_sums_add_up_in_process(dataset):
    """Partial sums of any chunking add to the serial sums (no cluster involved)."""
    particles, images, labels = dataset
    reference = _serial(particles, images, labels)
    total = None
    for chunk in make_chunks(particles, chunk_size=47, labels=labels):
        total = add_sums(total, reconstruct_chunk(chunk, SETTINGS))
    accs = {g: accumulator_from_sums(total, size=BOX, pad=2, prefix=f"{g}/") for g in (1, 2)}
    _assert_same(accs, reference)


@pytest.mark.parametrize(("n_workers", "chunk_size"), [(1, 180), (2, 37), (3, 64)])
def test_distributed_equals_single_process(dataset, cluster, n_workers, chunk_size):
    particles, images, labels = dataset
    client, _ = cluster
    addresses = sorted(client.scheduler_info()["workers"])[:n_workers]
    stats = RunStats()
    accs = reconstruct_sums(
        client,
        particles,
        settings=SETTINGS,
        chunk_size=chunk_size,
        labels=labels,
        workers=addresses,
        stats=stats,
    )
    assert stats.computed == -(-COUNT // chunk_size)
    _assert_same(accs, _serial(particles, images, labels))


def test_lanes_keep_only_their_newest_totals_on_the_workers(dataset, cluster):
    """Each chain holds at most its newest and running totals: memory does not grow with chunks."""
    particles, images, labels = dataset
    client, _ = cluster
    addresses = sorted(client.scheduler_info()["workers"])[:2]

    def in_memory(dask_scheduler):
        tasks = dask_scheduler.tasks.values()
        return sum(ts.state == "memory" and "-lane" in str(ts.key) for ts in tasks)

    held = []
    accs = reconstruct_sums(
        client,
        particles,
        settings=SETTINGS,
        chunk_size=10,
        labels=labels,
        workers=addresses,
        progress=lambda count: held.append(client.run_on_scheduler(in_memory)),
    )
    assert len(held) == 18
    # two lanes (one per worker thread); each holds its newest total, the one being replaced and
    # at most one more while the client's release message is on its way: ≤ 3, not one per chunk
    assert max(held) <= 3 * 2
    _assert_same(accs, _serial(particles, images, labels))


def test_checkpoint_resume_skips_done_chunks(dataset, cluster, tmp_path):
    """Interrupted after two chunks, a rerun in the same work folder computes only the rest."""
    particles, images, labels = dataset
    client, _ = cluster
    seen = []

    def interrupt(count):
        seen.append(count)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct_sums(
            client,
            particles,
            settings=SETTINGS,
            chunk_size=30,
            labels=labels,
            work_dir=tmp_path,
            checkpoint_seconds=0,
            progress=interrupt,
        )
    saved = tmp_path / "partial_sums.npz"
    assert saved.is_file()
    stats = RunStats()
    accs = reconstruct_sums(
        client,
        particles,
        settings=SETTINGS,
        chunk_size=30,
        labels=labels,
        work_dir=tmp_path,
        checkpoint_seconds=0,
        stats=stats,
    )
    assert stats.resumed == 2 and stats.computed == 4
    _assert_same(accs, _serial(particles, images, labels))
    # another chunking is another job: its checkpoint is refused
    with pytest.raises(ValueError, match="checkpoint of another job"):
        reconstruct_sums(
            client, particles, settings=SETTINGS, chunk_size=31, labels=labels, work_dir=tmp_path
        )


def test_checkpoint_roundtrip(tmp_path):
    total = {"1/data": np.arange(4, dtype=np.complex64), "1/count": np.asarray(3, np.int64)}
    save_checkpoint(tmp_path / "c.npz", total, {3, 1}, job="abc")
    loaded, done = load_checkpoint(tmp_path / "c.npz", job="abc")
    assert done == {1, 3}
    assert np.array_equal(loaded["1/data"], total["1/data"]) and int(loaded["1/count"]) == 3
    assert load_checkpoint(tmp_path / "missing.npz", job="abc") is None
    with pytest.raises(ValueError, match="another job"):
        load_checkpoint(tmp_path / "c.npz", job="xyz")


def test_peak_memory_reports_every_worker(cluster):
    client, _ = cluster
    report = peak_memory(client)
    assert len(report["workers_bytes"]) == 3
    assert report["max_worker_bytes"] > 50 * 2**20  # a Python process with torch
    assert report["client_bytes"] > 50 * 2**20


def _tick_interval():
    import dask

    return dask.config.get("distributed.admin.tick.interval")


def _profiling(dask_worker):
    return "profile" in dask_worker.periodic_callbacks


def test_local_cluster_workers_get_the_quiet_config(cluster):
    """The LocalCluster's workers run with cryoglass's slower watchdog and monitors."""
    from cryoglass.distributed.cluster import LOCAL_CLUSTER_CONFIG

    client, _ = cluster
    ticks = client.run(_tick_interval)
    assert len(ticks) == 3
    assert set(ticks.values()) == {LOCAL_CLUSTER_CONFIG["distributed.admin.tick.interval"]}
    assert set(client.run(_profiling).values()) == {False}  # no 10 ms stack sampling
    # one malloc arena: the task thread's freed work buffers stay in the (untrimmed) main heap
    assert set(client.run(os.getenv, "MALLOC_ARENA_MAX").values()) == {"1"}


def _preloaded():
    import sys

    return "cryoglass.distributed.preload" in sys.modules


def test_local_cluster_workers_preload_the_task_code(cluster):
    """Every worker imported cryoglass's preload module (torch, task code) as it started."""
    client, _ = cluster
    assert client.run(_preloaded) == {address: True for address in client.nthreads()}


def test_lanes_pull_chunks_so_a_faster_worker_sums_more(dataset, cluster):
    """One worker 10× slower: the other lane takes most chunks instead of a fixed half."""
    from dask.distributed import get_worker

    from cryoglass.distributed import run_lanes

    particles, _, _ = dataset
    client, _ = cluster
    addresses = sorted(client.scheduler_info()["workers"])[:2]
    names = client.run(lambda dask_worker: dask_worker.name, workers=addresses)
    slow = names[addresses[0]]

    def count_where_run(chunk, settings):
        worker = get_worker()
        time.sleep(0.3 if worker.name == slow else 0.03)
        where = np.zeros(3, np.int64)
        where[int(worker.name)] = 1
        return {"chunks": where}

    chunks = make_chunks(particles, chunk_size=10)
    total = run_lanes(
        client, count_where_run, chunks, settings=None, job="pull-test", workers=addresses
    )
    fast = int(names[addresses[1]])
    assert total["chunks"].sum() == len(chunks) == 18
    # a fixed deal would give each lane 9; pulling gives the fast one ~16 (≥ 2 go to the slow
    # one at the start)
    assert total["chunks"][fast] >= 13


def test_killed_worker_chunks_are_recomputed(dataset, cluster, busy_worker_killer):
    """SIGKILL one busy worker process mid-run: the nanny restarts it, the result is the same."""
    particles, images, labels = dataset
    client, _ = cluster
    kill_busy_worker = busy_worker_killer(client)

    accs = reconstruct_sums(
        client,
        particles,
        settings=SETTINGS,
        chunk_size=12,
        labels=labels,
        progress=kill_busy_worker,
    )
    assert kill_busy_worker.killed, "no worker was busy to be killed"
    _assert_same(accs, _serial(particles, images, labels))


@pytest.mark.parametrize(("n", "chunk_size", "n_workers"), [(600, 256, 3), (300, 1000, 1)])
def test_distributed_simulate_equals_simulate_dataset(cluster, tmp_path, n, chunk_size, n_workers):
    """Blocks made by the workers, written into a shared memory-mapped stack, are the dataset."""
    import mrcfile

    from cryoglass.distributed import SimulateSettings, simulate_stack
    from cryoglass.simulate import ParticleDistributions, calibrate_noise_std, simulate_dataset
    from cryoglass.simulate.phantom import gaussian_map

    client, _ = cluster
    g = torch.Generator().manual_seed(3)
    centers = (torch.rand(6, 3, generator=g) - 0.5) * 10
    volume = gaussian_map(
        centers, shape=(BOX, BOX, BOX), pixel_size_angstrom=PIXEL, sigma_angstrom=2.5
    )
    write_mrc(tmp_path / "truth.mrc", volume, pixel_size_angstrom=PIXEL)
    dist = ParticleDistributions(shift_scale_angstrom=2.0, astigmatism_angstrom=300.0)
    noise = calibrate_noise_std(
        volume, pixel_size_angstrom=PIXEL, snr=0.5, distributions=dist, seed=5
    )
    settings = SimulateSettings(
        volume_path=str(tmp_path / "truth.mrc"),
        n=n,
        pixel_size_angstrom=PIXEL,
        distributions=dist,
        noise_std=noise,
        seed=5,
    )
    params, examples = simulate_stack(
        client, tmp_path / "p.mrcs", settings=settings, box=BOX, chunk_size=chunk_size
    )
    chunks = list(
        simulate_dataset(
            volume, n=n, pixel_size_angstrom=PIXEL, distributions=dist, snr=0.5, seed=5
        )
    )
    expected = torch.cat([c.images for c in chunks])
    with mrcfile.open(tmp_path / "p.mrcs") as mrc:
        written = torch.from_numpy(np.array(mrc.data))
        assert mrc.header.nz == n and abs(float(mrc.voxel_size.x) - PIXEL) < 1e-4
        assert abs(float(mrc.header.dmean) - float(expected.double().mean())) < 1e-5
    torch.testing.assert_close(written, expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(params.euler_deg, torch.cat([c.parameters.euler_deg for c in chunks]))
    np.testing.assert_allclose(examples[0], expected[:8].numpy(), rtol=1e-6, atol=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))


_FAULTS_SCRIPT = """
import resource, sys, torch
from cryoglass.distributed import tune_allocator

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        torch.empty(2**18).fill_(1.0)  # a 1 MiB tensor, touched, freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
untuned = faults()
tuned_ok = tune_allocator()
faults()
print(untuned, faults(), tuned_ok)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt (Linux)")
def test_tune_allocator_stops_page_faults_under_dask_malloc_setting():
    """With Dask's MALLOC_TRIM_THRESHOLD_=65536 every 1 MiB tensor is a fresh, zero-filled mmap
    (≈256 page faults); after tune_allocator() freed heap memory is reused (≈0)."""
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    untuned, tuned, ok = int(out[0]), int(out[1]), out[2]
    assert ok == "True"
    assert untuned > 100 * 200  # ≥ 200 faults per 1 MiB allocation
    assert tuned < untuned / 20


_BATCH_FAULTS_SCRIPT = """
import ctypes, resource, sys
from cryoglass._allocator import tune_allocator

libc = ctypes.CDLL("libc.so.6")  # the allocator torch's CPU tensors come from (posix_memalign)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.restype = ctypes.c_void_p
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
tuned = tune_allocator() if sys.argv[1] == "tuned" else True
size = 30 * 2**20

def batch():  # five 30 MiB work buffers, touched and freed: one batch's temporaries
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(size) for _ in range(5)]
    for block in blocks:
        libc.memset(block, 1, size)
    for block in blocks:
        libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(tuned, *[batch() for _ in range(4)])
"""


def _batch_faults(mode: str) -> list[int]:
    """Page faults of four batches in a fresh process, allocator tuned or left as glibc sets it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _BATCH_FAULTS_SCRIPT, mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "True"
    return [int(n) for n in out[1:]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt (Linux)")
def test_tune_allocator_keeps_a_batch_of_work_buffers():
    """Untuned, glibc hands a batch's 150 MiB of freed buffers back to the kernel (more than its
    trim threshold, at most 64 MiB, is free) and every batch page-faults them in again (38,369
    faults per batch here); tuned, it keeps them and later batches fault nothing in."""
    pages = 150 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    untuned, tuned = _batch_faults("default"), _batch_faults("tuned")
    assert min(untuned[1:]) > 0.9 * pages  # the counter works and the default really trims
    assert tuned[0] > 0.9 * pages  # the first batch faults its memory in ...
    assert max(tuned[1:]) < 0.01 * pages  # ... and the next ones reuse it


def test_tasks_tune_the_worker_allocator(dataset, cluster):
    """After a reconstruct task the worker process is tuned (by the preload or the task)."""
    particles, _, labels = dataset
    client, _ = cluster
    worker = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
    chunk = make_chunks(particles, chunk_size=20, labels=labels)[0]
    settings = ReconstructSettings(box=BOX, pixel_size_angstrom=PIXEL, groups=(1, 2))
    client.submit(reconstruct_chunk, chunk, settings, workers=[worker], pure=False).result()

    def calls() -> int:
        from cryoglass._allocator import tune_allocator

        return tune_allocator.cache_info().currsize

    assert client.run(calls, workers=[worker]) == {worker: 1}


def test_distributed_multislice_simulate_equals_simulate_dataset(cluster, tmp_path):
    """--multislice on the workers: the dataset of simulate_dataset(multislice=…) exactly."""
    import mrcfile

    from cryoglass.distributed import SimulateSettings, simulate_stack
    from cryoglass.simulate import ParticleDistributions, calibrate_noise_std, simulate_dataset
    from cryoglass.simulate.phantom import gaussian_map

    client, _ = cluster
    box, n, thickness = 12, 300, 2 * PIXEL
    g = torch.Generator().manual_seed(4)
    volume = 2.0 * gaussian_map(
        (torch.rand(4, 3, generator=g) - 0.5) * 8,
        shape=(box,) * 3,
        pixel_size_angstrom=PIXEL,
        sigma_angstrom=2.5,
    )
    write_mrc(tmp_path / "truth.mrc", volume, pixel_size_angstrom=PIXEL)
    dist = ParticleDistributions(shift_scale_angstrom=1.0)
    noise = calibrate_noise_std(
        volume,
        pixel_size_angstrom=PIXEL,
        snr=0.5,
        distributions=dist,
        seed=2,
        multislice_thickness_angstrom=thickness,
    )
    settings = SimulateSettings(
        volume_path=str(tmp_path / "truth.mrc"),
        n=n,
        pixel_size_angstrom=PIXEL,
        distributions=dist,
        noise_std=noise,
        seed=2,
        multislice_thickness_angstrom=thickness,
    )
    simulate_stack(client, tmp_path / "p.mrcs", settings=settings, box=box, chunk_size=100)
    chunks = simulate_dataset(
        volume,
        n=n,
        pixel_size_angstrom=PIXEL,
        distributions=dist,
        snr=0.5,
        seed=2,
        multislice_thickness_angstrom=thickness,
    )
    expected = torch.cat([c.images for c in chunks])
    projection = torch.cat(
        [
            c.images
            for c in simulate_dataset(
                volume, n=n, pixel_size_angstrom=PIXEL, distributions=dist, snr=0.5, seed=2
            )
        ]
    )
    with mrcfile.open(tmp_path / "p.mrcs") as mrc:
        written = torch.from_numpy(np.array(mrc.data))
    torch.testing.assert_close(written, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(written, projection, atol=1e-3)  # it is not the projection path
