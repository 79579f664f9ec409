"""Small helpers shared by the command modules (no heavy imports here)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import typer


def fail(message: str, *, code: int = 2) -> None:
    """Print ``message`` to stderr as ``cryoglass: error: ...`` and exit with ``code``."""
    typer.echo(f"cryoglass: error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def failing(*errors: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Turn the given exceptions (default: ValueError, OSError) into :func:`fail`'s one line.

    Library and ``io`` functions raise exceptions whose message names the file and the
    problem; a command wraps its calls in ``with failing():`` instead of repeating
    ``try/except/fail``.  ``prefix`` (e.g. ``"in.star: "``) is put before the message.
    """
    caught = errors or (ValueError, OSError)
    try:
        yield
    except caught as error:
        text = str(error).strip("'\"") if isinstance(error, KeyError) else str(error)
        named = prefix and text.startswith(prefix.rstrip(": "))  # the message names it already
        fail(text if named else f"{prefix}{text}")


def check_outputs(
    outputs: Iterable[Any],
    *,
    inputs: Iterable[Any] = (),
    overwrite: bool = False,
    creates: Iterable[Any] = (),
) -> None:
    """The output policy (:func:`cryoglass.io.outputs.check_outputs`), failing with one line.

    Call it before the work: no output may be one of ``inputs`` (not even with --overwrite),
    an existing output needs --overwrite, and an output's folder must exist unless it is in
    ``creates`` (folders the command makes).
    """
    from cryoglass.io.outputs import check_outputs as check

    with failing(OSError):
        check(outputs, inputs=inputs, overwrite=overwrite, creates=creates)


def require_memory(need_bytes: float, *, what: str, available_bytes: int | None = None) -> None:
    """Fail with "WHAT: needs N GiB, M GiB available" when the estimate exceeds free memory.

    Commands call it with an estimate from every size that matters (box, batch, symmetry
    order, classes) before they allocate anything large (:func:`cryoglass._allocator.check_memory`).
    """
    from cryoglass._allocator import NotEnoughMemoryError, check_memory

    try:
        check_memory(need_bytes, what=what, available_bytes=available_bytes)
    except NotEnoughMemoryError as error:
        fail(str(error))


def torch_device(device: str):
    """``torch.device(device)`` after checking that a tensor can be made there; else fail."""
    import torch

    try:
        target = torch.device(device)
        torch.empty(0, device=target)
    except (RuntimeError, AssertionError) as error:
        fail(f"--device {device}: not available ({error})")
    return target


def print_json(payload: dict[str, Any]) -> None:
    """Write ``payload`` as one JSON document on stdout."""
    json.dump(payload, sys.stdout, indent=2, sort_keys=False, default=float)
    sys.stdout.write("\n")


def read_particles_checked(star, *, purpose: str, ctf: bool):
    """Read a STAR file of particles and check it for ``purpose``; one line on any problem.

    Returns the particle set and its pixel size [Å] (``io.check_particle_set``).
    """
    from cryoglass.io import check_particle_set, read_particles

    if not star.is_file():
        fail(f"{star}: particle file not found")
    with failing(ValueError, KeyError, OSError, prefix=f"{star}: "):
        particles = read_particles(star)
    with failing():
        pixel = check_particle_set(
            particles,
            source=str(star),
            purpose=purpose,
            ctf=ctf,
            image_sizes=True,
            ctf_hint="use --no-ctf",
        )
    return particles, pixel


#: A resumable command's checkpoint in its output folder: tensors and a JSON record.
CHECKPOINT, CHECKPOINT_JSON = "checkpoint.pt", "checkpoint.json"


def save_checkpoint(out, tensors: dict, record: dict) -> None:
    """Write ``out/checkpoint.pt`` and ``out/checkpoint.json`` (atomically)."""
    from cryoglass.io import save_tensors, write_text_atomic

    save_tensors(out / CHECKPOINT, tensors, overwrite=True)
    write_text_atomic(out / CHECKPOINT_JSON, json.dumps(record, indent=2) + "\n")


def load_checkpoint(out, description: dict, rebuild, *, device):
    """``rebuild(tensors, record, device=device)`` of the checkpoint in ``out``.

    Refused in one line when the checkpoint was made from other inputs or options
    (its ``"run"`` differs from ``description``).
    """
    from cryoglass.io import load_tensors

    with failing(prefix=f"{out}: "):
        record = json.loads((out / CHECKPOINT_JSON).read_text())
        if record.get("run") != description:
            raise ValueError(
                "the checkpoint was made from other inputs or options; use --overwrite to restart"
            )
        return rebuild(load_tensors(out / CHECKPOINT), record, device=device)
