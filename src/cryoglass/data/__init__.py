"""Small bundled data files (CC0/BSD; see README.md beside this file)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["trpv1_model_path"]


def trpv1_model_path() -> Path:
    """Path of the bundled TRPV1 model (PDB 3J5P, 15,820 heavy atoms, mmCIF, gzip)."""
    return Path(str(files("cryoglass.data").joinpath("trpv1_3j5p.cif.gz")))
