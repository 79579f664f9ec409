"""Small helpers shared by the command modules (no heavy imports here)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer


def fail(message: str, *, code: int = 2) -> None:
    """Print ``message`` to stderr as ``cryoglass: error: ...`` and exit with ``code``."""
    typer.echo(f"cryoglass: error: {message}", err=True)
    raise typer.Exit(code)


def print_json(payload: dict[str, Any]) -> None:
    """Write ``payload`` as one JSON document on stdout."""
    json.dump(payload, sys.stdout, indent=2, sort_keys=False, default=float)
    sys.stdout.write("\n")
