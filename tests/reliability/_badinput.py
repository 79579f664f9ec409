"""Small inputs for the bad-input suite, and the checks every refusal must pass.

Every command runs in-process through the real ``cryoglass`` app (``cli/main.py``, so the
output policy's command scope is active) with typer's ``CliRunner``.  A refusal must: exit
non-zero, print one line (``cryoglass: error: ...``) naming the file or option, print no
traceback, leave every file in the folder byte-for-byte as it was, and add nothing.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import mrcfile
import numpy as np
from typer.testing import CliRunner

from cryoglass.cli.main import app

BOX, PIXEL, COUNT = 16, 2.0, 6


def invoke(args: list[str]):
    """Run ``cryoglass ARGS`` in this process; the click Result (stdout/stderr apart)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under ``folder`` (hidden temporaries included)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(result, folder: Path, before: dict[str, str], *, names: str) -> str:
    """Non-zero exit, one line naming ``names``, no traceback, the folder unchanged."""
    err = result.stderr.strip()
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"raised {type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output, result.output
    assert len(err.splitlines()) == 1, err
    assert names in err, f"{names!r} not in {err!r}"
    assert snapshot(folder) == before, "the folder changed (an input was touched or a file left)"
    return err


def write_map(path: Path, data: np.ndarray, *, pixel: float = PIXEL) -> Path:
    with warnings.catch_warnings(), mrcfile.new(path, overwrite=True) as mrc:
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN/Inf maps on purpose
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = pixel
    return path


def half_maps(folder: Path) -> tuple[Path, Path]:
    """Two noisy copies of a blob, 16³ at 2 Å."""
    rng = np.random.default_rng(0)
    grid = np.indices((BOX,) * 3) - BOX / 2
    blob = np.exp(-(grid**2).sum(0) / 8.0)
    h1 = write_map(folder / "h1.mrc", blob + 0.05 * rng.standard_normal(blob.shape))
    h2 = write_map(folder / "h2.mrc", blob + 0.05 * rng.standard_normal(blob.shape))
    return h1, h2


COLUMNS = (
    "rlnImageName",
    "rlnDefocusU",
    "rlnDefocusV",
    "rlnDefocusAngle",
    "rlnAngleRot",
    "rlnAngleTilt",
    "rlnAnglePsi",
    "rlnOriginXAngst",
    "rlnOriginYAngst",
    "rlnOpticsGroup",
)


def star_text(rows: list[dict], columns=COLUMNS, *, pixel: float = PIXEL) -> str:
    """A RELION 3.1 particle STAR file (optics + particles) from row dicts."""
    lines = ["# version 30001", "", "data_optics", "", "loop_"]
    optics = {
        "rlnOpticsGroup": 1,
        "rlnOpticsGroupName": "opticsGroup1",
        "rlnImagePixelSize": pixel,
        "rlnImageSize": BOX,
        "rlnImageDimensionality": 2,
        "rlnVoltage": 300,
        "rlnSphericalAberration": 2.7,
        "rlnAmplitudeContrast": 0.1,
    }
    lines += [f"_{k} #{i + 1}" for i, k in enumerate(optics)]
    lines += [" ".join(str(v) for v in optics.values()), "", "", "data_particles", "", "loop_"]
    lines += [f"_{c} #{i + 1}" for i, c in enumerate(columns)]
    lines += [" ".join(str(row[c]) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def particle_rows(count: int = COUNT, stack: str = "particles.mrcs") -> list[dict]:
    return [
        {
            "rlnImageName": f"{i + 1:06d}@{stack}",
            "rlnDefocusU": 12000.0 + 100 * i,
            "rlnDefocusV": 11800.0 + 100 * i,
            "rlnDefocusAngle": 10.0,
            "rlnAngleRot": 30.0 * i,
            "rlnAngleTilt": 15.0 * i,
            "rlnAnglePsi": 7.0 * i,
            "rlnOriginXAngst": 0.0,
            "rlnOriginYAngst": 0.0,
            "rlnOpticsGroup": 1,
        }
        for i in range(count)
    ]


def particles(folder: Path, rows: list[dict] | None = None, columns=COLUMNS) -> Path:
    """particles.mrcs (COUNT noise images 16², 2 Å) and particles.star pointing at it."""
    rng = np.random.default_rng(1)
    write_map(folder / "particles.mrcs", rng.standard_normal((COUNT, BOX, BOX)))
    star = folder / "particles.star"
    star.write_text(star_text(particle_rows() if rows is None else rows, columns))
    return star


def model_pdb(path: Path, count: int = 30) -> Path:
    """A Cα-only helix of ``count`` alanines (PDB format)."""
    lines = []
    for i in range(count):
        x, y, z = 2.3 * math.cos(1.75 * i), 2.3 * math.sin(1.75 * i), 1.5 * i
        lines.append(
            f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00"
            "           C"
        )
    path.write_text("\n".join(lines) + "\nEND\n")
    return path
