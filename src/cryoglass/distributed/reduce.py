r"""Reducing partial sums: plain element-wise addition, checkpointed to disk.

Every distributed job in cryoglass is a sum over particles.  A chunk task returns its partial
sums as a flat ``dict`` of numpy arrays (``PartialSums``) — numpy, not torch, at the task
boundary, so that Dask serialises them without copies and any worker can send them to any
client.  Because

.. math:: S = \sum_{i=1}^{n} s_i = \sum_{c} \Big(\sum_{i \in c} s_i\Big),

the total does not depend on how the particles were cut into chunks, nor on which worker ran
which chunk, nor on the order the chunks finished — up to float rounding (each addition
rounds; the relative difference is a few units of the accumulator's precision).

Checkpoints hold the running total and the set of chunks already in it (one ``.npz``, replaced
atomically), so disk use does not grow with the number of chunks.  A fingerprint of the job
(inputs, chunking, settings) is stored with it: a checkpoint of another job is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from cryoglass.io import atomic_write

__all__ = [
    "PartialSums",
    "accumulator_from_sums",
    "accumulator_to_sums",
    "add_estep_sums",
    "add_sums",
    "class3d_from_sums",
    "class3d_to_sums",
    "estep_from_sums",
    "estep_to_sums",
    "fingerprint",
    "load_checkpoint",
    "save_checkpoint",
]

#: A chunk's partial sums: name → array (or 0-d array for counts).
PartialSums = dict[str, np.ndarray]

_DONE, _FINGERPRINT = "__done__", "__fingerprint__"


def add_sums(total: PartialSums | None, part: PartialSums) -> PartialSums:
    """``total + part`` key by key (``total`` is updated in place and returned).

    Parameters
    ----------
    total : PartialSums or None
        Running total (``None``: start from ``part``, copied).
    part : PartialSums
        One chunk's sums; must have the same keys, shapes and dtypes as ``total``.

    Returns
    -------
    PartialSums
    """
    if total is None:
        return {key: np.array(value, copy=True) for key, value in part.items()}
    if total.keys() != part.keys():
        raise ValueError(f"partial sums differ in keys: {sorted(total)} vs {sorted(part)}")
    for key, value in part.items():
        if total[key].shape != value.shape:
            raise ValueError(f"partial sum {key!r}: shape {value.shape} vs {total[key].shape}")
        np.add(total[key], value, out=total[key])
    return total


def accumulator_to_sums(acc, *, prefix: str = "") -> PartialSums:
    """A :class:`cryoglass.reconstruct.Accumulator` as numpy arrays (for the task boundary).

    Keys ``{prefix}data``, ``{prefix}weight``, ``{prefix}count``; ``size``, ``pad`` and
    ``interpolation`` are settings of the job and travel separately.
    """
    return {
        f"{prefix}data": acc.data.detach().cpu().numpy(),
        f"{prefix}weight": acc.weight.detach().cpu().numpy(),
        f"{prefix}count": np.asarray(acc.count, dtype=np.int64),
    }


def accumulator_from_sums(
    sums: PartialSums, *, size: int, pad: int, interpolation: str = "linear", prefix: str = ""
):
    """The :class:`cryoglass.reconstruct.Accumulator` held in ``sums`` under ``prefix``."""
    from cryoglass.reconstruct import Accumulator

    return Accumulator(
        data=torch.from_numpy(np.ascontiguousarray(sums[f"{prefix}data"])),
        weight=torch.from_numpy(np.ascontiguousarray(sums[f"{prefix}weight"])),
        size=int(size),
        pad=int(pad),
        interpolation=interpolation,
        count=int(sums[f"{prefix}count"]),
    )


def fingerprint(description: dict) -> str:
    """A short hash of a JSON-serialisable job description (inputs, chunking, settings)."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def save_checkpoint(
    path: str | os.PathLike, total: PartialSums, done: Iterable[int], *, job: str
) -> None:
    """Write the running total and the ids of the chunks in it to ``path`` (.npz, atomic).

    Parameters
    ----------
    path : path-like
        Checkpoint file (``.npz``).
    total : PartialSums
    done : iterable of int
        Chunk ids already added into ``total``.
    job : str
        :func:`fingerprint` of the job.
    """
    arrays = dict(total)
    arrays[_DONE] = np.asarray(sorted(done), dtype=np.int64)
    arrays[_FINGERPRINT] = np.asarray(job)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())

    atomic_write(path, write, overwrite=True)


def load_checkpoint(path: str | os.PathLike, *, job: str) -> tuple[PartialSums, set[int]] | None:
    """The running total and done chunk ids saved at ``path``, or None when there is none.

    Raises
    ------
    ValueError
        The checkpoint belongs to another job (different inputs, chunking or settings).
    """
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        saved = str(data[_FINGERPRINT])
        if saved != job:
            raise ValueError(
                f"{path}: checkpoint of another job (inputs, chunk size or settings differ); "
                "use another work folder or delete this file"
            )
        done = {int(i) for i in data[_DONE]}
        total = {key: data[key] for key in data.files if key not in (_DONE, _FINGERPRINT)}
    return total, done


# ----------------------------------------------------------------------------- 2D classification

_ESTEP_SUMS = (
    "num",
    "den",
    "weight",
    "power",
    "mean",
    "count",
    "log_likelihood",
    "pruned_mass_sum",
)
_ASSIGNMENT_FIELDS = (
    "class_index",
    "psi_deg",
    "shift_angstrom",
    "max_probability",
    "log_likelihood",
)


def estep_to_sums(stats, assignments=None) -> PartialSums:
    """A chunk's :class:`~cryoglass.classify.em2d.EStepStats` and assignments as numpy arrays.

    ``assignments`` None (the initial model's pass): statistics only.

    Keys ``stats/<name>`` are added over chunks, ``max/pruned_mass_max`` is maximised,
    ``same/max_shell`` must agree, and ``rows/<field>`` hold the chunk's per-particle
    assignments (placed at the chunk's rows by :func:`add_estep_sums`).
    """
    sums: PartialSums = {}
    for name in _ESTEP_SUMS:
        value = getattr(stats, name)
        sums[f"stats/{name}"] = (
            value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        )
    sums["max/pruned_mass_max"] = np.asarray(stats.pruned_mass_max, np.float64)
    sums["same/max_shell"] = np.asarray(stats.max_shell, np.int64)
    for name in _ASSIGNMENT_FIELDS if assignments is not None else ():
        sums[f"rows/{name}"] = getattr(assignments, name).detach().cpu().numpy()
    return sums


def add_estep_sums(
    total: PartialSums | None, part: PartialSums, *, start: int, n_particles: int
) -> PartialSums:
    """Add one chunk's E-step sums into ``total`` (updated in place and returned).

    Parameters
    ----------
    total : PartialSums or None
        Running total (None: start one with full-length assignment arrays).
    part : PartialSums
        From :func:`estep_to_sums` for the particles ``start … start + len − 1``.
    start : int
        First row of the chunk in the whole set.
    n_particles : int
        Size of the whole set.
    """
    rows = len(part["rows/class_index"]) if "rows/class_index" in part else 0
    if start < 0 or start + rows > n_particles:
        raise ValueError(f"chunk rows {start}…{start + rows - 1} outside 0…{n_particles - 1}")
    if total is None:
        total = {k: np.array(v, copy=True) for k, v in part.items() if not k.startswith("rows/")}
        for key, value in part.items():
            if key.startswith("rows/"):
                total[key] = np.zeros((n_particles, *value.shape[1:]), dtype=value.dtype)
    else:
        if int(total["same/max_shell"]) != int(part["same/max_shell"]):
            raise ValueError("E-step sums of one iteration used different frequency bands")
        for key, value in part.items():
            if key.startswith("stats/") and total[key].ndim:
                np.add(total[key], value, out=total[key])
            elif key.startswith("stats/"):
                total[key] = np.asarray(total[key] + value)
            elif key.startswith("max/"):
                total[key] = np.maximum(total[key], value)
    for key, value in part.items():
        if key.startswith("rows/"):
            total[key][start : start + rows] = value
    return total


def estep_from_sums(sums: PartialSums):
    """``(EStepStats, Assignments or None)`` held in reduced E-step sums (torch, CPU)."""
    from cryoglass.classify.em2d import Assignments, EStepStats

    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(sums[key]))

    stats = EStepStats(
        num=tensor("stats/num"),
        den=tensor("stats/den"),
        weight=tensor("stats/weight"),
        power=tensor("stats/power"),
        mean=tensor("stats/mean"),
        count=int(sums["stats/count"]),
        log_likelihood=float(sums["stats/log_likelihood"]),
        pruned_mass_sum=float(sums["stats/pruned_mass_sum"]),
        pruned_mass_max=float(sums["max/pruned_mass_max"]),
        max_shell=int(sums["same/max_shell"]),
    )
    if "rows/class_index" not in sums:
        return stats, None
    assignments = Assignments(**{name: tensor(f"rows/{name}") for name in _ASSIGNMENT_FIELDS})
    return stats, assignments


#: Per-particle columns of a class3d E-step (:func:`cryoglass.refine.class3d.class3d_estep`).
CLASS3D_ROWS = (
    "rotations",
    "origins_px",
    "classes",
    "max_probability",
    "n_significant",
    "log_likelihood",
)


def class3d_to_sums(sums, rows: dict | None = None) -> PartialSums:
    """A chunk's :class:`~cryoglass.refine.class3d.Class3DSums` (and rows) as numpy arrays.

    Keys ``{j}/data``, ``{j}/weight``, ``{j}/count`` per class map ``j`` (one in a
    cross-correlation iteration), ``noise``, ``count``, ``class_weight``, ``log_likelihood``
    (all added over chunks) and ``rows/<column>`` (:data:`CLASS3D_ROWS`, in particle order).
    """
    out: PartialSums = {
        "noise": sums.noise.detach().cpu().numpy(),
        "count": np.asarray(sums.count, dtype=np.int64),
        "class_weight": sums.class_weight.detach().cpu().numpy(),
        "log_likelihood": np.asarray(sums.log_likelihood, dtype=np.float64),
    }
    for j, acc in enumerate(sums.accumulators):
        out.update(accumulator_to_sums(acc, prefix=f"{j}/"))
    for name in CLASS3D_ROWS if rows is not None else ():
        out[f"rows/{name}"] = rows[name].detach().cpu().numpy()
    return out


def class3d_from_sums(total: PartialSums, *, size: int, pad: int):
    """``(Class3DSums, rows)`` of reduced class3d sums: what the M-step takes (torch, CPU).

    ``rows`` are the per-particle columns of every particle in order, with ``indices``.
    """
    from cryoglass.refine.class3d import Class3DSums

    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(total[key]))

    maps = sum(1 for key in total if key.endswith("/data") and not key.startswith("rows/"))
    sums = Class3DSums(
        tuple(
            accumulator_from_sums(total, size=size, pad=pad, prefix=f"{j}/") for j in range(maps)
        ),
        tensor("noise"),
        int(total["count"]),
        tensor("class_weight"),
        float(total["log_likelihood"]),
    )
    rows = {name: tensor(f"rows/{name}") for name in CLASS3D_ROWS}
    rows["indices"] = torch.arange(len(rows["classes"]))
    return sums, rows
