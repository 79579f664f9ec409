"""What a 2D-classification checkpoint holds: tensors for the model and assignments, plus a record.

A run is resumed from the state after a completed iteration: the :class:`Class2DModel`, the
last :class:`Assignments` and a JSON-able record (what the run was made from, its settings, the
iteration reached and the per-iteration log).  These functions only convert between those
objects and plain dictionaries; ``cryoglass.io.save_tensors``/``load_tensors`` and a JSON file
put them on disk.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from cryoglass.classify.em2d import Assignments, Class2DModel, Class2DSettings

__all__ = [
    "check_same_run",
    "checkpoint_record",
    "checkpoint_tensors",
    "model_from_checkpoint",
    "run_description",
]

_MODEL_FIELDS = ("classes", "class_prior", "sigma2", "tau2", "resolution_angstrom")
_SPLIT_FIELDS = ("split_from", "split_since")  # re-seeding state, absent until a re-seed
_ASSIGNMENT_FIELDS = (
    "class_index",
    "psi_deg",
    "shift_angstrom",
    "max_probability",
    "log_likelihood",
)


def run_description(*, source: str, n_particles: int, settings: Class2DSettings) -> dict:
    """The JSON-able description of a run that a checkpoint must match to be resumed.

    Parameters
    ----------
    source : str
        What the particles were read from (e.g. the absolute path of the STAR file).
    n_particles : int
    settings : Class2DSettings

    Returns
    -------
    dict
        ``{"input": source, "particles": n_particles, "settings": {field: value}}``.

    Examples
    --------
    >>> s = Class2DSettings(n_classes=2, pixel_size_angstrom=2.0)
    >>> run_description(source="p.star", n_particles=10, settings=s)["settings"]["n_classes"]
    2
    """
    return {"input": source, "particles": int(n_particles), "settings": asdict(settings)}


def checkpoint_tensors(model: Class2DModel, assignments: Assignments) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint after a completed iteration (model fields on the CPU).

    Parameters
    ----------
    model : Class2DModel
        Classes (K, N, N), class prior (K,), σ² (N//2 + 1,), τ² (K, N//2 + 1) and resolution
        (K,) [Å], on any device.
    assignments : Assignments
        Per-particle class index, ψ [deg], origin (n, 2) [Å], maximum posterior and
        log-likelihood, on the CPU.

    Returns
    -------
    dict of str to Tensor
        One entry per field, named as the dataclass fields.

    Examples
    --------
    >>> m = Class2DModel(torch.zeros(2, 4, 4), torch.ones(2) / 2, torch.ones(3),
    ...                  torch.ones(2, 3), torch.full((2,), 8.0))
    >>> a = Assignments(torch.zeros(5, dtype=torch.int64), torch.zeros(5), torch.zeros(5, 2),
    ...                 torch.ones(5), torch.zeros(5, dtype=torch.float64))
    >>> sorted(checkpoint_tensors(m, a))[:3]
    ['class_index', 'class_prior', 'classes']
    """
    tensors = {name: getattr(model, name).cpu() for name in _MODEL_FIELDS}
    tensors.update(
        {
            name: getattr(model, name).cpu()
            for name in _SPLIT_FIELDS
            if getattr(model, name) is not None
        }
    )
    tensors.update({name: getattr(assignments, name) for name in _ASSIGNMENT_FIELDS})
    return tensors


def checkpoint_record(model: Class2DModel, log: list[dict], description: dict) -> dict:
    """The JSON part of a checkpoint: the run description, the iteration reached and the log.

    Parameters
    ----------
    model : Class2DModel
        Gives ``iteration`` (completed iterations).
    log : list of dict
        One entry per completed iteration (as returned by ``em_iteration``).
    description : dict
        From :func:`run_description`.

    Returns
    -------
    dict
        ``description`` plus ``"iteration"`` and ``"log"``.
    """
    return {**description, "iteration": model.iteration, "log": log}


def model_from_checkpoint(
    tensors: dict[str, torch.Tensor],
    record: dict,
    *,
    device: torch.device | str | None = None,
) -> tuple[Class2DModel, Assignments]:
    """Rebuild the model and assignments saved by :func:`checkpoint_tensors`.

    Parameters
    ----------
    tensors : dict of str to Tensor
        The checkpoint's tensors.
    record : dict
        The checkpoint's record (:func:`checkpoint_record`); gives the iteration.
    device : torch device, optional
        Where the model's tensors go (the assignments stay where they are).

    Returns
    -------
    model : Class2DModel
    assignments : Assignments
    """
    model = Class2DModel(
        **{name: tensors[name].to(device) for name in _MODEL_FIELDS},
        **{name: tensors[name] for name in _SPLIT_FIELDS if name in tensors},
        iteration=int(record["iteration"]),
    )
    assignments = Assignments(**{name: tensors[name] for name in _ASSIGNMENT_FIELDS})
    return model, assignments


def check_same_run(record: dict, description: dict) -> None:
    """Check that a checkpoint was made from the same input and settings as this run.

    The batch size (a memory knob, not a result) may differ.

    Parameters
    ----------
    record : dict
        The checkpoint's record.
    description : dict
        This run's :func:`run_description`.

    Raises
    ------
    ValueError
        Another input, number of particles or setting.
    """
    if record.get("particles") != description["particles"] or (
        record.get("input") != description["input"]
    ):
        raise ValueError(
            f"checkpoint was made from {record.get('input')} ({record.get('particles')} particles)"
        )
    saved = {k: v for k, v in record.get("settings", {}).items() if k != "batch_size"}
    wanted = {k: v for k, v in description["settings"].items() if k != "batch_size"}
    if saved != wanted:
        raise ValueError(f"options differ from the checkpoint's: {record.get('settings')}")
