"""3D classification's E-step cut into chunks (as the Dask workers run it) equals one pass.

The chunk task is called here in this process (no cluster: fast); the CLI test with
``--workers 2`` (tests/integration/test_cli_class3d_abinitio.py, slow) runs it on Dask.
"""

from __future__ import annotations

import random

import pytest
import torch

from cryoglass.distributed.jobs import _add_with_rows
from cryoglass.distributed.reduce import class3d_from_sums
from cryoglass.distributed.tasks import Class3DTask, class3d_chunk, make_chunks
from cryoglass.io import make_particle_set, write_mrc
from cryoglass.refine.class3d import (
    Class3DSettings,
    class3d_iteration,
    class3d_mstep,
    initial_class3d_state,
)

N, PIXEL, COUNT = 20, 6.0, 70
SETTINGS = Class3DSettings(
    pixel_size_angstrom=PIXEL,
    particle_diameter_angstrom=100.0,
    n_classes=2,
    ini_high_angstrom=30.0,
    order=2,
    offset_range_px=2.0,
    offset_step_px=1.0,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """70 noisy CTF particles of the TRPV1 model without poses, on disk, and the reference."""
    from cryoglass.data import model_map
    from cryoglass.simulate.dataset import ParticleParameters, simulate_dataset

    truth = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=PIXEL)[0].float()
    chunks = list(simulate_dataset(truth, n=COUNT, pixel_size_angstrom=PIXEL, snr=0.5, seed=3))
    images = torch.cat([c.images for c in chunks])
    ctf = ParticleParameters.concatenate([c.parameters for c in chunks]).ctf.expand(COUNT)
    folder = tmp_path_factory.mktemp("class3d_chunks")
    write_mrc(folder / "particles.mrcs", images, pixel_size_angstrom=PIXEL, stack=True)
    particles = make_particle_set(
        [f"{i + 1}@particles.mrcs" for i in range(COUNT)],
        image_root=folder,
        pixel_size_angstrom=PIXEL,
        image_size=N,
        ctf=ctf,
    )
    return particles, images, ctf, truth


def _chunked_iteration(state, particles, chunk_size: int, order_seed: int):
    """One iteration with the E-step of each chunk as a worker computes it, added in any order."""
    task = Class3DTask(f"test-{state.iteration}", state, SETTINGS, ctf=True, batch_size=16)
    parts = [(c, class3d_chunk(c, task)) for c in make_chunks(particles, chunk_size=chunk_size)]
    random.Random(order_seed).shuffle(parts)
    combine, total = _add_with_rows(COUNT), None
    for chunk, part in parts:
        total = combine(total, part, chunk)
    sums, rows = class3d_from_sums(total, size=N, pad=SETTINGS.pad)
    return class3d_mstep(state, sums, rows, settings=SETTINGS)


@pytest.mark.parametrize(("chunk_size", "order_seed"), [(70, 0), (16, 1), (29, 2)])
def test_chunked_estep_equals_one_pass(dataset, chunk_size, order_seed):
    particles, images, ctf, truth = dataset

    def batches():
        for start in range(0, COUNT, 16):
            yield torch.arange(start, min(start + 16, COUNT)), images[start : start + 16]

    one = chunked = initial_class3d_state(truth, COUNT, SETTINGS)
    for kind in ("cc", "seed", "classify"):
        one = class3d_iteration(one, batches, ctf=ctf, settings=SETTINGS)
        chunked = _chunked_iteration(chunked, particles, chunk_size, order_seed)
        assert chunked.history[-1]["kind"] == kind
        assert torch.equal(one.classes, chunked.classes), kind
        assert torch.equal(one.poses.rotations, chunked.poses.rotations), kind
        assert torch.equal(one.poses.origins_px, chunked.poses.origins_px), kind
        scale = float(one.references.abs().max())
        assert float((one.references - chunked.references).abs().max()) < 1e-5 * scale, kind
        assert torch.allclose(one.class_prior, chunked.class_prior, rtol=0, atol=1e-6), kind
        assert torch.allclose(one.sigma2, chunked.sigma2, rtol=1e-5), kind
        one_ll, chunked_ll = (s.history[-1]["log_likelihood"] for s in (one, chunked))
        assert abs(one_ll - chunked_ll) <= 1e-8 * abs(one_ll), kind


def test_killed_worker_leaves_the_iteration_unchanged(dataset, busy_worker_killer):
    """SIGKILL a busy Dask worker during a class3d E-step: its chunks are redone by the others
    (and the restarted worker), and the iteration equals the single-process one.  refine3d's
    E-step runs through the same ``_iteration_sums`` (scatter once, rows placed as they come)."""
    pytest.importorskip("dask.distributed")
    from cryoglass.distributed import open_client
    from cryoglass.distributed.jobs import class3d_estep_sums

    particles, images, ctf, truth = dataset

    def batches():
        for start in range(0, COUNT, 16):
            yield torch.arange(start, min(start + 16, COUNT)), images[start : start + 16]

    start = initial_class3d_state(truth, COUNT, SETTINGS)
    start = class3d_iteration(start, batches, ctf=ctf, settings=SETTINGS)  # the cc iteration
    one = class3d_iteration(start, batches, ctf=ctf, settings=SETTINGS)
    with open_client(workers=2, dashboard=False) as (client, _):
        client.wait_for_workers(2)
        kill_busy_worker = busy_worker_killer(client)
        task = Class3DTask("killed-1", start, SETTINGS, ctf=True, batch_size=16)
        total = class3d_estep_sums(
            client,
            make_chunks(particles, chunk_size=10),
            task,
            n_particles=COUNT,
            progress=kill_busy_worker,
        )
    assert kill_busy_worker.killed, "no worker was busy to be killed"
    sums, rows = class3d_from_sums(total, size=N, pad=SETTINGS.pad)
    after = class3d_mstep(start, sums, rows, settings=SETTINGS)
    assert torch.equal(one.classes, after.classes)
    assert torch.equal(one.poses.rotations, after.poses.rotations)
    scale = float(one.references.abs().max())
    assert float((one.references - after.references).abs().max()) < 1e-5 * scale
    assert torch.allclose(one.sigma2, after.sigma2, rtol=1e-5)
