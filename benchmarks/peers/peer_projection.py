"""Peer benchmark: project a map at N RELION poses with ASPIRE or cryojax (peer python).

Run with the peers' virtual environment, not cryoglass's (see README.md in this folder):

    /work/peers/bin/python benchmarks/peers/peer_projection.py --map map.mrc \
        --angles angles.npy --pixel-size 1.0 --tool cryojax --pad 2 --repeat 3 --out proj.npy

``angles.npy`` holds (N, 3) RELION Euler angles (rot, tilt, psi) in degrees.  The script prints one
JSON line ``{"tool", "version", "n_images", "box", "pad", "seconds_median", "seconds_all",
"images_per_s", ...}`` and saves the images (N, box, box) float32 indexed [n, y, x] to ``--out``,
converted to cryoglass's units (sum over z of voxel values, as ``cryoglass.projection.project``).

Only the projection call is timed (after one untimed warm-up call that also compiles jax code);
loading the map and building the peer's volume object (its Fourier transform, padding and
interpolation pre-correction) are not timed.

Conventions (verified against cryoglass, numbers in README.md):

* ASPIRE: ``Rotation.from_euler(radians(rot, tilt, psi))`` is scipy's intrinsic "ZYZ" rotation
  Rz(rot) Ry(tilt) Rz(psi), i.e. the transpose of RELION's matrix A; ASPIRE's own RELION reader
  builds rotations exactly this way, and ``Volume.project`` expects that matrix.  The map is
  passed as [z, y, x] unchanged and images come back [y, x].  ASPIRE projects with a NUFFT
  (finufft) at the box size, so there is no padding factor: ``--pad`` has no effect (reported as
  ``"method"``).  ASPIRE divides by the box size L; we multiply by L to get voxel sums.
* cryojax: ``EulerAnglePose`` is an extrinsic zyz rotation that *generates* the pose; RELION's
  angles convert by negating each angle: (phi, theta, psi) = (-rot, -tilt, -psi).  The map is
  passed as [z, y, x]; ``FourierVoxelGridVolume.from_real_voxel_grid(..., pad_scale=pad)`` pads
  the map before its FFT, and ``FourierSliceExtraction`` (linear interpolation) crops back to the
  box.  cryojax multiplies by the pixel size (a line integral in Å); we divide it out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", required=True, help="cubic MRC map, even box")
    parser.add_argument("--angles", required=True, help=".npy (N, 3) RELION rot, tilt, psi [deg]")
    parser.add_argument("--pixel-size", type=float, required=True, help="pixel size [Å]")
    parser.add_argument("--tool", choices=("aspire", "cryojax"), required=True)
    parser.add_argument("--pad", type=int, choices=(1, 2), default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the peer")
    parser.add_argument("--batch", type=int, default=100, help="cryojax: images per vmapped batch")
    parser.add_argument("--out", default=None, help="where to save the (N, box, box) images")
    return parser.parse_args()


def limit_threads(threads: int) -> None:
    """Must run before numpy/finufft/jax are imported by the peer code."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
    ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def read_map(path: str) -> np.ndarray:
    import mrcfile

    with mrcfile.open(path, permissive=True) as mrc:
        data = np.asarray(mrc.data, dtype=np.float32)
    if data.ndim != 3 or len(set(data.shape)) != 1 or data.shape[0] % 2:
        sys.exit(f"{path}: need a cubic map with an even box, got shape {data.shape}")
    return np.ascontiguousarray(data)


def read_angles(path: str) -> np.ndarray:
    angles = np.load(path)
    if angles.ndim != 2 or angles.shape[1] != 3:
        sys.exit(f"{path}: need (N, 3) RELION angles rot, tilt, psi [deg], got {angles.shape}")
    return angles.astype(np.float64)


def quiet_aspire_config() -> None:
    """Point ASPIRE's config (confuse, $ASPIREDIR) at a temp dir so it logs there, not to ./logs."""
    import atexit
    import shutil
    import tempfile

    config_dir = tempfile.mkdtemp(prefix="aspire_cfg_")
    atexit.register(shutil.rmtree, config_dir, ignore_errors=True)
    with open(os.path.join(config_dir, "config.yaml"), "w") as f:
        f.write(
            f"logging:\n  log_dir: {config_dir}/logs\n  console_level: WARNING\n"
            "  tqdm_disable: true\n"
        )
    os.environ["ASPIREDIR"] = config_dir


def aspire_projector(volume: np.ndarray, angles_deg: np.ndarray, pixel_size: float, pad: int):
    """Return (version, method, run() -> raw images, convert(raw) -> voxel sums [n, y, x])."""
    quiet_aspire_config()
    import aspire
    from aspire.utils import Rotation
    from aspire.volume import Volume

    vol = Volume(volume, pixel_size=pixel_size)
    # ASPIRE's matrix = Rz(rot) Ry(tilt) Rz(psi) (active, intrinsic ZYZ) = A_RELION^T.
    rotations = Rotation.from_euler(np.deg2rad(angles_deg), dtype=np.float32)
    box = volume.shape[0]

    def run():
        return vol.project(rotations).asnumpy()

    def to_voxel_sums(images):
        return np.asarray(images, dtype=np.float32) * box

    return (
        aspire.__version__,
        "NUFFT (finufft) at box size; --pad has no effect",
        run,
        to_voxel_sums,
    )


def cryojax_projector(
    volume: np.ndarray, angles_deg: np.ndarray, pixel_size: float, pad: int, batch: int
):
    """Return (version, method, run() -> raw images, convert(raw) -> voxel sums [n, y, x])."""
    import cryojax
    import cryojax.simulator as cxs
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    box = volume.shape[0]
    fourier_volume = cxs.FourierVoxelGridVolume.from_real_voxel_grid(
        jnp.asarray(volume), pad_scale=float(pad), interp="linear"
    )
    config = cxs.BasicImageConfig((box, box), pixel_size)
    integrator = cxs.FourierSliceExtraction()
    # RELION (rot, tilt, psi) -> cryojax EulerAnglePose (phi, theta, psi) = (-rot, -tilt, -psi).
    poses = jnp.asarray(-angles_deg, dtype=jnp.float32)

    def one_image(vol, angles):
        pose = cxs.EulerAnglePose(phi_angle=angles[0], theta_angle=angles[1], psi_angle=angles[2])
        model = cxs.make_image_model(vol, config, pose, volume_integrator=integrator)
        return model.simulate()

    @eqx.filter_jit
    def project_all(vol, angles):
        return jax.lax.map(lambda a: one_image(vol, a), angles, batch_size=batch)

    def run():
        return project_all(fourier_volume, poses).block_until_ready()

    def to_voxel_sums(images):
        return np.asarray(images, dtype=np.float32) / pixel_size

    method = f"Fourier slice, linear interpolation, pad_scale={pad}, jit + lax.map(batch={batch})"
    return cryojax.__version__, method, run, to_voxel_sums


def main() -> None:
    args = parse_args()
    limit_threads(args.threads)
    volume = read_map(args.map)
    angles = read_angles(args.angles)
    if args.tool == "aspire":
        version, method, run, convert = aspire_projector(volume, angles, args.pixel_size, args.pad)
    else:
        version, method, run, convert = cryojax_projector(
            volume, angles, args.pixel_size, args.pad, args.batch
        )

    images = run()  # warm-up (and jax compilation)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        images = run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)

    images = convert(images)
    if args.out:
        np.save(args.out, images)
    print(
        json.dumps(
            {
                "tool": args.tool,
                "version": version,
                "n_images": int(images.shape[0]),
                "box": int(volume.shape[0]),
                "pad": args.pad,
                "seconds_median": round(median, 4),
                "seconds_all": [round(t, 4) for t in times],
                "images_per_s": round(images.shape[0] / median, 1),
                "method": method,
                "threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
