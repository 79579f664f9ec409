"""What a refinement checkpoint holds: its tensors and its record (the format, not the file).

``cryoglass refine3d`` saves a checkpoint after every iteration (tensors through
:func:`cryoglass.io.save_tensors`, the record as JSON) and ``--continue`` resumes from it.
"""

from __future__ import annotations

import dataclasses

import torch

from cryoglass.refine.align import Sampling
from cryoglass.refine.auto import Poses, RefineState

__all__ = [
    "poses_from_tensors",
    "poses_tensors",
    "state_from_checkpoint",
    "state_record",
    "state_tensors",
]

FORMAT = "cryoglass-refine3d-1"


def poses_tensors(poses: Poses) -> dict[str, torch.Tensor]:
    """Each field of :class:`~cryoglass.refine.auto.Poses` by its name (CPU)."""
    return {f.name: getattr(poses, f.name).cpu() for f in dataclasses.fields(poses)}


def poses_from_tensors(tensors: dict[str, torch.Tensor]) -> Poses:
    """Poses from :func:`poses_tensors`'s names (KeyError if one is missing)."""
    return Poses(*(tensors[f.name] for f in dataclasses.fields(Poses)))


def state_tensors(state: RefineState) -> dict[str, torch.Tensor]:
    """The tensors of a refinement state (CPU)."""
    return {
        "references": state.references.cpu(),
        "sigma2": state.sigma2.cpu(),
        "fsc": state.fsc.cpu(),
        **poses_tensors(state.poses),
    }


def state_record(state: RefineState, description: dict) -> dict:
    """The JSON part: format, the run's description, iteration, sampling, history."""
    return {
        "format": FORMAT,
        "run": description,
        "iteration": state.iteration,
        "resolution_angstrom": state.resolution_angstrom,
        "best_resolution_angstrom": state.best_resolution_angstrom,
        "no_gain": state.no_gain,
        "converged": state.converged,
        "sampling": dataclasses.asdict(state.sampling),
        "history": list(state.history),
    }


def state_from_checkpoint(
    tensors: dict[str, torch.Tensor], record: dict, *, device: torch.device | str = "cpu"
) -> RefineState:
    """Rebuild a :class:`~cryoglass.refine.auto.RefineState` from a checkpoint.

    Raises
    ------
    ValueError
        Not a refine3d checkpoint, or tensors missing.
    """
    if record.get("format") != FORMAT:
        raise ValueError(f"not a cryoglass refine3d checkpoint (format {record.get('format')!r})")
    try:
        poses = poses_from_tensors(tensors)
        return RefineState(
            iteration=int(record["iteration"]),
            references=tensors["references"].to(device),
            sigma2=tensors["sigma2"].to(device),
            resolution_angstrom=float(record["resolution_angstrom"]),
            best_resolution_angstrom=float(record["best_resolution_angstrom"]),
            no_gain=int(record["no_gain"]),
            sampling=Sampling(**record["sampling"]),
            poses=poses,
            fsc=tensors["fsc"],
            history=tuple(record["history"]),
            converged=bool(record["converged"]),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"refine3d checkpoint is incomplete ({error})") from None
