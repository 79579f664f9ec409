"""Small helpers shared by the command modules (no heavy imports here)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
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
