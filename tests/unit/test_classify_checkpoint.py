"""The 2D-classification checkpoint: tensors and record ↔ model and assignments, through disk."""

from __future__ import annotations

import json

import pytest
import torch

from cryoglass.classify import (
    Class2DSettings,
    check_same_run,
    checkpoint_record,
    checkpoint_tensors,
    classify_2d,
    model_from_checkpoint,
    run_description,
)
from cryoglass.io import load_tensors, save_tensors


@pytest.fixture(scope="module")
def result():
    g = torch.Generator().manual_seed(0)
    settings = Class2DSettings(
        n_classes=2, pixel_size_angstrom=2.0, psi_step_deg=45, offset_range_angstrom=2.0
    )
    images = torch.randn(12, 16, 16, generator=g)
    return settings, classify_2d(images, settings=settings, iterations=2, generator=g)


def test_round_trip_through_disk(result, tmp_path):
    settings, run = result
    description = run_description(source="p.star", n_particles=12, settings=settings)
    record = checkpoint_record(run.model, run.log, description)
    path = save_tensors(tmp_path / "checkpoint.pt", checkpoint_tensors(run.model, run.assignments))
    with pytest.raises(FileExistsError):
        save_tensors(path, {})
    record = json.loads(json.dumps(record))  # as stored in checkpoint.json
    model, assignments = model_from_checkpoint(load_tensors(path), record, device="cpu")
    assert model.iteration == run.model.iteration == 2 and record["log"] == run.log
    for name in ("classes", "class_prior", "sigma2", "tau2", "resolution_angstrom"):
        assert torch.equal(getattr(model, name), getattr(run.model, name))
    for name in ("class_index", "psi_deg", "shift_angstrom", "max_probability", "log_likelihood"):
        assert torch.equal(getattr(assignments, name), getattr(run.assignments, name))
    check_same_run(record, description)


def test_another_run_is_refused(result):
    settings, run = result
    description = run_description(source="p.star", n_particles=12, settings=settings)
    record = checkpoint_record(run.model, run.log, description)
    bigger_batches = {**description, "settings": {**description["settings"], "batch_size": 4}}
    check_same_run(record, bigger_batches)  # a memory knob, not a result
    with pytest.raises(ValueError, match=r"checkpoint was made from p\.star \(12 particles\)"):
        check_same_run(record, {**description, "particles": 13})
    with pytest.raises(ValueError, match="checkpoint was made from p.star"):
        check_same_run(record, {**description, "input": "q.star"})
    finer = {**description, "settings": {**description["settings"], "psi_step_deg": 10.0}}
    with pytest.raises(ValueError, match="options differ from the checkpoint's"):
        check_same_run(record, finer)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_tensors("no/such/checkpoint.pt")


def test_split_trial_state_round_trips(result, tmp_path):
    """A run resumed mid-trial keeps which class was split from which, and when."""
    from dataclasses import replace

    settings, run = result
    model = replace(run.model, split_from=torch.tensor([-1, 0]), split_since=torch.tensor([0, 1]))
    path = save_tensors(tmp_path / "checkpoint.pt", checkpoint_tensors(model, run.assignments))
    record = checkpoint_record(model, run.log, {"input": "p.star"})
    loaded, _ = model_from_checkpoint(load_tensors(path), record, device="cpu")
    assert torch.equal(loaded.split_from, model.split_from)
    assert torch.equal(loaded.split_since, model.split_since)
    plain, _ = model_from_checkpoint(
        load_tensors(
            save_tensors(tmp_path / "plain.pt", checkpoint_tensors(run.model, run.assignments))
        ),
        record,
    )
    assert plain.split_from is None and plain.split_since is None
