"""What a 3D classification checkpoint holds: its tensors and its record (the format, not the file).

``cryoglass class3d`` saves one after every iteration (tensors through
:func:`cryoglass.io.save_tensors`, the record as JSON) and ``--continue`` resumes from it.
"""

from __future__ import annotations

import torch

from cryoglass.refine.checkpoint import poses_from_tensors, poses_tensors
from cryoglass.refine.class3d import Class3DState

__all__ = ["class3d_from_checkpoint", "class3d_record", "class3d_tensors"]

FORMAT = "cryoglass-class3d-1"


def class3d_tensors(state: Class3DState) -> dict[str, torch.Tensor]:
    """The tensors of a classification state (CPU)."""
    return {
        "references": state.references.cpu(),
        "sigma2": state.sigma2.cpu(),
        "class_prior": state.class_prior.cpu(),
        "resolution_angstrom": state.resolution_angstrom.cpu(),
        "ssnr": state.ssnr.cpu(),
        "classes": state.classes.cpu(),
        **poses_tensors(state.poses),
    }


def class3d_record(state: Class3DState, description: dict) -> dict:
    """The JSON part: format, the run's description, iteration, history."""
    return {
        "format": FORMAT,
        "run": description,
        "iteration": state.iteration,
        "history": list(state.history),
    }


def class3d_from_checkpoint(
    tensors: dict[str, torch.Tensor], record: dict, *, device: torch.device | str = "cpu"
) -> Class3DState:
    """Rebuild a :class:`~cryoglass.refine.class3d.Class3DState` from a checkpoint.

    Raises
    ------
    ValueError
        Not a class3d checkpoint, or tensors missing.
    """
    if record.get("format") != FORMAT:
        raise ValueError(f"not a cryoglass class3d checkpoint (format {record.get('format')!r})")
    try:
        poses = poses_from_tensors(tensors)
        return Class3DState(
            iteration=int(record["iteration"]),
            references=tensors["references"].to(device),
            sigma2=tensors["sigma2"].to(device),
            class_prior=tensors["class_prior"].to(device),
            resolution_angstrom=tensors["resolution_angstrom"],
            ssnr=tensors["ssnr"],
            poses=poses,
            classes=tensors["classes"],
            history=tuple(record["history"]),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"class3d checkpoint is incomplete ({error})") from None
