"""RELION STAR files (3.0, 3.1 and 5 dialects) ↔ :class:`~cryoglass.io.particles.ParticleSet`.

Dialects
--------
* RELION 3.0: one table (any block name) whose rows carry everything: rlnVoltage,
  rlnSphericalAberration, rlnAmplitudeContrast, rlnMagnification + rlnDetectorPixelSize
  (pixel = DetectorPixelSize[µm] · 10⁴ / Magnification Å) and rlnOriginX/Y in **pixels**.
* RELION 3.1 and 5: a ``data_optics`` table (voltage, Cs, Q0, rlnImagePixelSize,
  rlnImageSize per rlnOpticsGroup) and a ``data_particles`` table with rlnOriginX/YAngst in
  **Å**.  The blocks may come in either order.

Everything is converted to one :class:`ParticleSet`; :func:`write_relion_star` always writes
RELION 3.1 (optics + particles).  Shifts keep RELION 3.1's meaning: an image with origin
(ox, oy) Å is the centred projection translated by −(ox, oy).

References
----------
Zivanov et al. (2020) Estimation of high-order aberrations and anisotropic magnification from
cryo-EM data sets in RELION-3.1. IUCrJ 7:253-267. https://doi.org/10.1107/S2052252520000081
"""

from __future__ import annotations

import linecache
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import starfile
import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.io._atomic import atomic_write
from cryoglass.io.mrc import read_mrc_header
from cryoglass.io.outputs import register_input
from cryoglass.io.particles import (
    ParticleSet,
    image_search_paths,
    locate_images,
    split_image_names,
)

if TYPE_CHECKING:
    from cryoglass.classify.em2d import Assignments

__all__ = [
    "RELION_DIALECTS",
    "class_numbers",
    "read_particles",
    "read_relion_star",
    "write_class2d_star",
    "write_refine3d_star",
    "write_latent_star",
    "write_relion_star",
]

_F64 = torch.float64
# Columns that belong to the optics table in RELION 3.1 (removed from particle rows on write).
_OPTICS_COLUMNS = (
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
    "rlnImagePixelSize",
    "rlnImageSize",
    "rlnImageDimensionality",
    "rlnMagnification",
    "rlnDetectorPixelSize",
)


def read_particles(
    path: str | os.PathLike,
    *,
    pixel_size_angstrom: float | None = None,
    image_size: int | None = None,
    amplitude_contrast: float | None = None,
    image_root: str | os.PathLike | None = None,
    datadir: str | os.PathLike | None = None,
    passthrough: str | os.PathLike | None = None,
    read_ctf: bool = True,
) -> ParticleSet:
    """Read particle metadata from a RELION ``.star`` or a cryoSPARC ``.cs`` file.

    Parameters
    ----------
    path : path-like
        ``.star`` (RELION 3.0/3.1/5) or ``.cs`` (cryoSPARC).
    pixel_size_angstrom : float, optional
        Override the pixel size [Å] (needed for files that do not record it).
    image_size : int, optional
        Override the box size [pixels] (needed when neither the file nor the images say).
    amplitude_contrast : float, optional
        Override Q0 for every particle (cryoDRGN's ``-w``).
    image_root : path-like, optional
        The one folder relative image paths resolve against.  Default: the current folder
        (as RELION, which runs in the project folder), then the file's folder.
    datadir : path-like, optional
        A folder searched first for the image files (``--datadir``; see
        :func:`~cryoglass.io.particles.image_search_paths`).
    passthrough : path-like, optional
        cryoSPARC only: the job's ``*_passthrough_particles.cs``, joined on ``uid``.
    read_ctf : bool
        False: leave the CTF out (``ctf`` None), e.g. to read poses from a file whose CTF
        columns are incomplete.

    Returns
    -------
    ParticleSet
    """
    path = Path(path)
    if path.suffix == ".cs":
        from cryoglass.io.cryosparc import read_cryosparc

        return read_cryosparc(
            path,
            pixel_size_angstrom=pixel_size_angstrom,
            amplitude_contrast=amplitude_contrast,
            image_root=image_root,
            datadir=datadir,
            passthrough=passthrough,
            read_ctf=read_ctf,
        )
    if passthrough is not None:
        raise ValueError(f"{path}: a passthrough file goes with a cryoSPARC .cs file only")
    return read_relion_star(
        path,
        pixel_size_angstrom=pixel_size_angstrom,
        image_size=image_size,
        amplitude_contrast=amplitude_contrast,
        image_root=image_root,
        datadir=datadir,
        read_ctf=read_ctf,
    )


def _read_blocks(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: STAR file not found")
    register_input(path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as error:  # starfile raises several types on malformed input
        raise ValueError(f"{path}: cannot parse STAR file: {error}") from error
    finally:  # starfile reads through linecache and keeps stale lines on errors
        linecache.clearcache()
    tables = {name: df for name, df in blocks.items() if isinstance(df, pd.DataFrame)}
    optics = tables.get("optics")
    if "particles" in tables:
        particles = tables["particles"]
    else:
        candidates = [df for name, df in tables.items() if name != "optics" and len(df.columns)]
        with_images = [df for df in candidates if "rlnImageName" in df.columns]
        chosen = with_images or candidates
        if not chosen:
            raise ValueError(f"{path}: no particle table (loop) found")
        particles = chosen[0]
    return particles, optics


def _require(path: Path, table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s) for {what}: {', '.join(missing)}")


def _numeric(path: Path, table: pd.DataFrame, column: str) -> torch.Tensor:
    values = pd.to_numeric(table[column], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(
            f"{path}: column {column} row {row}: {table[column].iloc[row]!r} is not a number"
        )
    return torch.tensor(values.to_numpy(dtype=np.float64).copy(), dtype=_F64)


def _synthesize_optics(
    particles: pd.DataFrame, pixel: torch.Tensor
) -> tuple[pd.DataFrame, torch.Tensor]:
    """RELION 3.0 rows → optics groups: one per distinct (voltage, Cs, Q0, pixel size)."""
    keys = pd.DataFrame({"rlnImagePixelSize": pixel.numpy()})
    for column in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"):
        if column in particles.columns:
            keys[column] = pd.to_numeric(particles[column], errors="coerce").to_numpy()
    codes = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup().to_numpy()
    optics = keys.drop_duplicates().reset_index(drop=True)
    optics.insert(0, "rlnOpticsGroup", np.arange(1, len(optics) + 1))
    optics.insert(1, "rlnOpticsGroupName", [f"opticsGroup{i}" for i in optics["rlnOpticsGroup"]])
    return optics, torch.as_tensor(codes + 1, dtype=torch.int64)


def _per_particle(
    path: Path,
    particles: pd.DataFrame,
    optics: pd.DataFrame,
    row_of: np.ndarray,
    column: str,
) -> torch.Tensor | None:
    """A column from the optics table (expanded to particles) or else from the particle rows."""
    if column in optics.columns:
        return _numeric(path, optics, column)[torch.as_tensor(row_of)]
    if column in particles.columns:
        return _numeric(path, particles, column)
    return None


def _pixel_size_30(path: Path, particles: pd.DataFrame) -> torch.Tensor | None:
    if "rlnImagePixelSize" in particles.columns:
        return _numeric(path, particles, "rlnImagePixelSize")
    if {"rlnDetectorPixelSize", "rlnMagnification"} <= set(particles.columns):
        detector_um = _numeric(path, particles, "rlnDetectorPixelSize")
        magnification = _numeric(path, particles, "rlnMagnification")
        return detector_um * 1e4 / magnification
    return None


def read_relion_star(
    path: str | os.PathLike,
    *,
    pixel_size_angstrom: float | None = None,
    image_size: int | None = None,
    amplitude_contrast: float | None = None,
    image_root: str | os.PathLike | None = None,
    datadir: str | os.PathLike | None = None,
    read_ctf: bool = True,
) -> ParticleSet:
    """Read a RELION 3.0, 3.1 or 5 particle STAR file into a :class:`ParticleSet`.

    Parameters
    ----------
    path : path-like
        The STAR file.
    pixel_size_angstrom : float, optional
        Pixel size [Å] for every particle, overriding the file (required when the file has
        neither rlnImagePixelSize nor rlnDetectorPixelSize + rlnMagnification).
    image_size : int, optional
        Box size [px]; otherwise rlnImageSize, else the header of the first image file.
    amplitude_contrast : float, optional
        Q0 for every particle, overriding (or supplying) rlnAmplitudeContrast.
    image_root : path-like, optional
        The one folder for relative image paths.  Default: the current folder, as RELION
        (which writes paths relative to its project folder, ``Extract/job005/…``, and runs
        there), then the STAR file's folder.
    datadir : path-like, optional
        Searched before those (``--datadir``): ``datadir/path``, then ``datadir/basename``.
    read_ctf : bool
        False: leave the CTF out (``ctf`` None).

    Returns
    -------
    ParticleSet
        Poses are None when the file has no angles; shifts None when it has no origins;
        CTF None when it has no rlnDefocusU.  An image file found in none of the folders
        keeps its path under the last folder; ``image_search`` lists every path tried.

    Raises
    ------
    ValueError
        Missing required columns (all listed), unknown optics groups, unparsable values,
        no way to know the pixel or box size.  Messages name the file.

    Notes
    -----
    Pixel size, in order: the argument; optics rlnImagePixelSize; particle
    rlnImagePixelSize; rlnDetectorPixelSize [µm] × 10⁴ / rlnMagnification.
    Shift [Å]: rlnOriginX/YAngst, else rlnOriginX/Y [px] × pixel size.
    """
    path = Path(path)
    particles, optics = _read_blocks(path)
    _require(path, particles, ["rlnImageName"], "images")
    if len(particles) == 0:
        raise ValueError(f"{path}: no particles (the particle table has no rows)")
    n = len(particles)
    if optics is None:
        if pixel_size_angstrom is not None:
            pixel = torch.full((n,), float(pixel_size_angstrom), dtype=_F64)
        else:
            pixel = _pixel_size_30(path, particles)
            if pixel is None:
                raise ValueError(
                    f"{path}: no pixel size (needs rlnImagePixelSize or rlnDetectorPixelSize and "
                    "rlnMagnification); pass pixel_size_angstrom"
                )
        optics, group = _synthesize_optics(particles, pixel)
        row_of = (group - 1).numpy()
    else:
        _require(path, particles, ["rlnOpticsGroup"], "optics groups")
        _require(path, optics, ["rlnOpticsGroup"], "optics groups (data_optics)")
        group = _numeric(path, particles, "rlnOpticsGroup").to(torch.int64)
        ids = _numeric(path, optics, "rlnOpticsGroup").to(torch.int64).tolist()
        lookup = {g: i for i, g in enumerate(ids)}
        unknown = sorted(set(torch.unique(group).tolist()) - set(lookup))
        if unknown:
            raise ValueError(
                f"{path}: particles refer to optics groups {unknown} not in data_optics"
            )
        row_of = np.array([lookup[g] for g in group.tolist()], dtype=np.int64)
        if pixel_size_angstrom is not None:
            pixel = torch.full((n,), float(pixel_size_angstrom), dtype=_F64)
        else:
            pixel = _per_particle(path, particles, optics, row_of, "rlnImagePixelSize")
            if pixel is None:
                raise ValueError(
                    f"{path}: missing required column(s) for pixel size: rlnImagePixelSize "
                    "(data_optics); or pass pixel_size_angstrom"
                )
    if not bool((pixel > 0).all()):
        raise ValueError(f"{path}: pixel sizes must be > 0")

    root = Path(image_root) if image_root is not None else path.parent
    roots = (root,) if image_root is not None else (Path.cwd(), root)
    found = locate_images(
        particles["rlnImageName"].astype(str).tolist(),
        roots=roots,
        datadir=datadir,
        source=str(path),
    )
    size = _image_size(path, particles, optics, row_of, image_size, found.files)
    euler = _euler(path, particles)
    return ParticleSet(
        image_files=found.files,
        image_file_index=found.file_index,
        image_index=found.index,
        pixel_size_angstrom=pixel,
        image_size=size,
        euler_deg=euler,
        shift_angstrom=_shift(path, particles, pixel),
        ctf=_ctf(path, particles, optics, row_of, amplitude_contrast) if read_ctf else None,
        optics_group=group,
        source_path=path,
        image_root=root,
        particles_table=particles,
        optics_table=optics,
        image_file_names=found.names,
        image_search=found.tried,
        in_plane_only=euler is not None and "rlnAngleTilt" not in particles.columns,
    )


def _image_size(
    path: Path,
    particles: pd.DataFrame,
    optics: pd.DataFrame,
    row_of: np.ndarray,
    override: int | None,
    files: tuple[Path, ...],
) -> int:
    if override is not None:
        return int(override)
    sizes = _per_particle(path, particles, optics, row_of, "rlnImageSize")
    if sizes is not None:
        unique = torch.unique(sizes).tolist()
        if len(unique) != 1:
            raise ValueError(
                f"{path}: optics groups have different image sizes {unique}; split the file"
            )
        return int(unique[0])
    if files and files[0].is_file():
        return int(read_mrc_header(files[0]).shape[-1])
    raise ValueError(
        f"{path}: no image size (no rlnImageSize and image file {files[0] if files else '?'} "
        "not found); pass image_size"
    )


def _euler(path: Path, particles: pd.DataFrame) -> torch.Tensor | None:
    names = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    present = [c for c in names if c in particles.columns]
    if not present:
        return None
    if present == ["rlnAnglePsi"]:  # 2D classification: in-plane angle only
        psi = _numeric(path, particles, "rlnAnglePsi")
        return torch.stack([torch.zeros_like(psi), torch.zeros_like(psi), psi], dim=-1)
    _require(path, particles, names, "Euler angles")
    return torch.stack([_numeric(path, particles, c) for c in names], dim=-1)


def _shift(path: Path, particles: pd.DataFrame, pixel: torch.Tensor) -> torch.Tensor | None:
    if "rlnOriginXAngst" in particles.columns or "rlnOriginYAngst" in particles.columns:
        _require(path, particles, ["rlnOriginXAngst", "rlnOriginYAngst"], "shifts")
        x, y = (_numeric(path, particles, c) for c in ("rlnOriginXAngst", "rlnOriginYAngst"))
        return torch.stack([x, y], dim=-1)
    if "rlnOriginX" in particles.columns or "rlnOriginY" in particles.columns:
        _require(path, particles, ["rlnOriginX", "rlnOriginY"], "shifts")
        x, y = (_numeric(path, particles, c) for c in ("rlnOriginX", "rlnOriginY"))
        return torch.stack([x, y], dim=-1) * pixel[:, None]
    return None


def _ctf(
    path: Path,
    particles: pd.DataFrame,
    optics: pd.DataFrame,
    row_of: np.ndarray,
    amplitude_contrast: float | None,
) -> CTFParams | None:
    if "rlnDefocusU" not in particles.columns:
        return None
    n = len(particles)
    _require(path, particles, ["rlnDefocusU", "rlnDefocusV"], "CTF")
    optic = {
        c: _per_particle(path, particles, optics, row_of, c)
        for c in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
    }
    if amplitude_contrast is not None:
        optic["rlnAmplitudeContrast"] = torch.full((n,), float(amplitude_contrast), dtype=_F64)
    missing = [c for c, v in optic.items() if v is None]
    if missing:
        raise ValueError(
            f"{path}: missing required column(s) for CTF: {', '.join(missing)} "
            "(neither in data_optics nor in the particle rows)"
        )

    def optional(column: str, default: float) -> torch.Tensor:
        if column in particles.columns:
            return _numeric(path, particles, column)
        return torch.full((n,), default, dtype=_F64)

    return CTFParams(
        defocus_u_angstrom=_numeric(path, particles, "rlnDefocusU"),
        defocus_v_angstrom=_numeric(path, particles, "rlnDefocusV"),
        astigmatism_angle_deg=optional("rlnDefocusAngle", 0.0),
        voltage_kv=optic["rlnVoltage"],
        cs_mm=optic["rlnSphericalAberration"],
        amplitude_contrast=optic["rlnAmplitudeContrast"],
        phase_shift_deg=optional("rlnPhaseShift", 0.0),
        bfactor_a2=optional("rlnCtfBfactor", 0.0),
        scale=optional("rlnCtfScalefactor", 1.0),
    )


# ----------------------------------------------------------------------------- writing


def _file_names_out(particles: ParticleSet, folder: Path, relative: bool) -> list[str]:
    """The path to write for each image file of ``particles`` in a STAR file in ``folder``.

    A name as the metadata wrote it is kept when a reader of the new file finds the same
    file with it (the current folder first, as RELION, then ``folder``), and when the file
    exists nowhere (its meaning is then the original file's, RELION's: relative to the project
    folder).  Otherwise the path is written relative to ``folder`` when inside it, else
    absolute.  ``relative=False`` writes absolute paths.
    """
    given = particles.image_file_names or (None,) * len(particles.image_files)
    cwd = Path.cwd()
    out = []
    for file, name in zip(particles.image_files, given, strict=True):
        file = Path(os.path.abspath(file))
        if not relative:
            out.append(str(file))
            continue
        if name is not None:
            candidates = image_search_paths(name, roots=(cwd, folder))
            seen = next((c for c in candidates if c.exists()), candidates[-1])
            if seen == file or not file.exists():
                out.append(name)
                continue
        inside = os.path.relpath(file, folder)
        out.append(str(file) if inside.startswith("..") else inside)
    return out


def _image_name_column(particles: ParticleSet, star_path: Path, relative: bool) -> list[str]:
    """rlnImageName for each particle: ``index@path`` with the paths of :func:`_file_names_out`.

    A row whose original name still says the same (same path text, same index) is kept
    verbatim, so a STAR file read and written back keeps its image names byte for byte.
    """
    folder = Path(os.path.abspath(star_path.parent))
    names = np.array(_file_names_out(particles, folder, relative), dtype=object)
    file_index = particles.image_file_index.numpy()
    index = particles.image_index.numpy()
    new = [f"{i + 1:06d}@{n}" for i, n in zip(index.tolist(), names[file_index], strict=True)]
    table = particles.particles_table
    if table is None or "rlnImageName" not in table.columns or not particles.image_file_names:
        return new
    original = table["rlnImageName"].astype(str)
    try:
        paths, numbers = split_image_names(original.tolist(), "rlnImageName")
    except ValueError:
        return new
    given = np.array(particles.image_file_names, dtype=object)[file_index]
    same = (
        (paths.to_numpy(dtype=object) == names[file_index])
        & (names[file_index] == given)
        & (numbers.to_numpy(dtype=np.int64) - 1 == index)
    )
    return [o if k else m for o, k, m in zip(original.tolist(), same.tolist(), new, strict=True)]


def _group_value(
    particles: ParticleSet, values: torch.Tensor, mask: torch.Tensor, name: str, group: int
) -> float:
    chosen = values[mask]
    first = float(chosen[0])
    if not torch.allclose(chosen, torch.full_like(chosen, first), rtol=1e-6, atol=1e-9):
        raise ValueError(
            f"optics group {group}: particles disagree on {name} "
            f"({float(chosen.min())}..{float(chosen.max())}); give them different optics groups"
        )
    return first


def _optics_out(particles: ParticleSet) -> pd.DataFrame:
    groups = torch.unique(particles.optics_group).tolist()
    old = particles.optics_table
    rows = []
    ctf = (
        None if particles.ctf is None else particles.ctf.expand(len(particles), dtype=torch.float64)
    )
    for g in groups:  # loop over optics groups (few), not particles
        mask = particles.optics_group == g
        row: dict[str, object] = {"rlnOpticsGroup": int(g), "rlnOpticsGroupName": f"opticsGroup{g}"}
        if old is not None and "rlnOpticsGroup" in old.columns:
            match = old[pd.to_numeric(old["rlnOpticsGroup"], errors="coerce") == g]
            if len(match):
                row.update(match.iloc[0].to_dict())
        if ctf is not None:
            row["rlnVoltage"] = _group_value(particles, ctf.voltage_kv, mask, "voltage", g)
            row["rlnSphericalAberration"] = _group_value(particles, ctf.cs_mm, mask, "Cs", g)
            row["rlnAmplitudeContrast"] = _group_value(
                particles, ctf.amplitude_contrast, mask, "amplitude contrast", g
            )
        row["rlnImagePixelSize"] = _group_value(
            particles, particles.pixel_size_angstrom, mask, "pixel size", g
        )
        row["rlnImageSize"] = int(particles.image_size)
        row["rlnImageDimensionality"] = 2
        for column in ("rlnMagnification", "rlnDetectorPixelSize"):
            row.pop(column, None)
        rows.append(row)
    optics = pd.DataFrame(rows)
    for column in ("rlnOpticsGroup", "rlnImageSize", "rlnImageDimensionality"):
        optics[column] = optics[column].astype(int)
    return optics


def _particles_out(particles: ParticleSet, star_path: Path, relative: bool) -> pd.DataFrame:
    n = len(particles)
    table = particles.particles_table
    out = pd.DataFrame(index=range(n)) if table is None else table.reset_index(drop=True).copy()
    out = out.drop(columns=[c for c in (*_OPTICS_COLUMNS, "rlnOriginX", "rlnOriginY") if c in out])
    out["rlnImageName"] = _image_name_column(particles, star_path, relative)
    out["rlnOpticsGroup"] = particles.optics_group.numpy().astype(int)
    if particles.euler_deg is not None and particles.in_plane_only:  # 2D: ψ only, as Class2D
        out = out.drop(columns=[c for c in ("rlnAngleRot", "rlnAngleTilt") if c in out])
        out["rlnAnglePsi"] = particles.euler_deg[:, 2].numpy()
    elif particles.euler_deg is not None:
        for k, column in enumerate(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
            out[column] = particles.euler_deg[:, k].numpy()
    if particles.shift_angstrom is not None:
        out["rlnOriginXAngst"] = particles.shift_angstrom[:, 0].numpy()
        out["rlnOriginYAngst"] = particles.shift_angstrom[:, 1].numpy()
    if particles.ctf is not None:
        ctf = particles.ctf.expand(n, dtype=torch.float64)
        columns = {
            "rlnDefocusU": ctf.defocus_u_angstrom,
            "rlnDefocusV": ctf.defocus_v_angstrom,
            "rlnDefocusAngle": ctf.astigmatism_angle_deg,
            "rlnPhaseShift": ctf.phase_shift_deg,
            "rlnCtfBfactor": ctf.bfactor_a2,
            "rlnCtfScalefactor": ctf.scale,
        }
        for column, value in columns.items():
            out[column] = value.numpy()
    return out


def _relion30_table(optics: pd.DataFrame, particles: pd.DataFrame) -> pd.DataFrame:
    """One RELION 3.0 table: optics values on every row (voltage, Cs, Q0, rlnImageSize, beam
    tilt), origins in pixels, pixel size as rlnDetectorPixelSize [µm] with rlnMagnification
    10000 (pixel = det · 10⁴ / mag)."""
    rows = optics.set_index("rlnOpticsGroup").loc[particles["rlnOpticsGroup"].to_numpy()]
    rows = rows.reset_index(drop=True)
    pixel = rows["rlnImagePixelSize"].to_numpy(dtype=np.float64)
    out = particles.drop(columns=["rlnOpticsGroup"]).reset_index(drop=True)
    for angst in [c for c in out.columns if c.startswith("rlnOrigin") and "Angst" in c]:
        out[angst.replace("Angst", "")] = out.pop(angst).to_numpy(dtype=np.float64) / pixel
    for column in (*_OPTICS_COLUMNS[:3], "rlnImageSize", "rlnBeamTiltX", "rlnBeamTiltY"):
        if column in rows.columns:
            out[column] = rows[column].to_numpy()
    out["rlnMagnification"] = 10000.0
    out["rlnDetectorPixelSize"] = pixel
    return out


#: Dialects :func:`write_relion_star` writes, and the ``# version`` line RELION puts on blocks.
RELION_DIALECTS = {"3.0": None, "3.1": "30001", "5": "50001"}


def write_relion_star(
    path: str | os.PathLike,
    particles: ParticleSet,
    *,
    overwrite: bool = False,
    relative_image_paths: bool = True,
    dialect: str = "3.1",
) -> Path:
    """Write a :class:`ParticleSet` as a RELION STAR file (3.1 by default).

    Pose, shift, CTF, optics-group and image-name columns are written from the tensors;
    other columns of the original tables are kept.  The file appears atomically.

    Parameters
    ----------
    path : path-like
        Output file; refused if it exists unless ``overwrite``.
    particles : ParticleSet
    overwrite : bool
        Replace an existing file.
    relative_image_paths : bool
        True: keep each image path as it was read where it still finds the same file (from
        the current folder, as RELION, or the new file's folder) or where the file exists
        nowhere; otherwise write it relative to the new file's folder when inside it, else
        absolute.  False: absolute paths.
    dialect : {"3.1", "5", "3.0"}
        "3.1": data_optics + data_particles, origins in Å (rlnOriginX/YAngst), each block
        marked ``# version 30001`` as RELION 3.1 writes it.  "5": the same tables marked
        ``# version 50001`` (RELION 4 and 5 read and write this layout).  "3.0": one table
        ``data_`` whose rows carry voltage, Cs and Q0, origins in pixels (rlnOriginX/Y) and
        the pixel size as rlnDetectorPixelSize [µm] with rlnMagnification 10000.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Particles in one optics group disagree on voltage, Cs, Q0 or pixel size; an
        unknown dialect.
    """
    if dialect not in RELION_DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(RELION_DIALECTS)}, got {dialect!r}")
    path = Path(path)
    optics = _optics_out(particles)
    table = _particles_out(particles, path, relative_image_paths)
    if dialect == "3.0":
        blocks = {"": _relion30_table(optics, table)}
    else:
        blocks = {"optics": optics, "particles": table}
    version = RELION_DIALECTS[dialect]

    def _write(tmp: Path) -> None:
        starfile.write(blocks, tmp, float_format="%.6f")
        if version is not None:
            headers = {f"data_{name}" for name in blocks}
            lines = tmp.read_text().splitlines(keepends=True)
            marked = [
                f"# version {version}\n{line}" if line.strip() in headers else line
                for line in lines
            ]
            tmp.write_text("".join(marked))

    return atomic_write(path, _write, overwrite=overwrite)


def write_class2d_star(
    path: str | os.PathLike,
    particles: ParticleSet,
    assignments: Assignments,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the input particles with the columns of a RELION Class2D ``_data.star``.

    The input rows are kept, their 3D angles (rlnAngleRot, rlnAngleTilt) dropped, and these
    columns set from ``assignments``: rlnAnglePsi [deg], rlnOriginX/YAngst [Å],
    rlnClassNumber (1-based), rlnMaxValueProbDistribution and rlnLogLikeliContribution.

    Parameters
    ----------
    path : path-like
        Output STAR file (RELION 3.1).
    particles : ParticleSet
        The n classified particles, in the order of ``assignments``.
    assignments : cryoglass.classify.Assignments
        Class index (n,) (0-based), ψ (n,) [deg], origin (n, 2) [Å], maximum posterior (n,) and
        log-likelihood contribution (n,), on the CPU.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.

    See Also
    --------
    class_numbers : reads rlnClassNumber back.
    """
    table = particles.particles_table.copy()
    table = table.drop(columns=[c for c in ("rlnAngleRot", "rlnAngleTilt") if c in table])
    table["rlnAnglePsi"] = assignments.psi_deg.double().numpy()
    table["rlnClassNumber"] = (assignments.class_index + 1).numpy().astype(int)
    table["rlnMaxValueProbDistribution"] = assignments.max_probability.numpy()
    table["rlnLogLikeliContribution"] = assignments.log_likelihood.numpy()
    classified = replace(
        particles,
        euler_deg=None,
        shift_angstrom=assignments.shift_angstrom.to(_F64),
        particles_table=table,
    )
    return write_relion_star(path, classified, overwrite=overwrite)


def write_refine3d_star(
    path: str | os.PathLike,
    particles: ParticleSet,
    *,
    euler_deg: torch.Tensor,
    origin_angstrom: torch.Tensor,
    random_subset: torch.Tensor | None = None,
    class_number: torch.Tensor | None = None,
    max_probability: torch.Tensor | None = None,
    n_significant: torch.Tensor | None = None,
    log_likelihood: torch.Tensor | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the input particles with the columns of a RELION Refine3D/Class3D ``_data.star``.

    The input rows and columns are kept; these are set: rlnAngleRot/Tilt/Psi [deg],
    rlnOriginXAngst/YAngst [Å], and where given rlnRandomSubset, rlnClassNumber (1-based),
    rlnMaxValueProbDistribution, rlnNrOfSignificantSamples, rlnLogLikeliContribution.

    Parameters
    ----------
    path : path-like
        Output STAR file (RELION 3.1).
    particles : ParticleSet
        The n particles, in the order of the other arguments.
    euler_deg : Tensor, (n, 3)
        RELION angles (rot, tilt, psi) [degrees].
    origin_angstrom : Tensor, (n, 2)
        RELION origins [Å].
    random_subset : Tensor, (n,), optional
        Half set (1 or 2).
    class_number : Tensor, (n,), optional
        1-based class.
    max_probability, n_significant, log_likelihood : Tensor, (n,), optional
    overwrite : bool

    Returns
    -------
    Path
    """
    table = particles.particles_table.copy()
    columns = {
        "rlnRandomSubset": random_subset,
        "rlnClassNumber": class_number,
        "rlnMaxValueProbDistribution": max_probability,
        "rlnNrOfSignificantSamples": n_significant,
        "rlnLogLikeliContribution": log_likelihood,
    }
    for name, values in columns.items():
        if values is None:
            continue
        array = torch.as_tensor(values).detach().cpu()
        integer = name in ("rlnRandomSubset", "rlnClassNumber", "rlnNrOfSignificantSamples")
        table[name] = array.numpy().astype(int) if integer else array.double().numpy()
    refined = replace(
        particles,
        euler_deg=torch.as_tensor(euler_deg).detach().cpu().to(_F64),
        shift_angstrom=torch.as_tensor(origin_angstrom).detach().cpu().to(_F64),
        particles_table=table,
    )
    return write_relion_star(path, refined, overwrite=overwrite)


def class_numbers(particles: ParticleSet) -> torch.Tensor | None:
    """The 2D class of each particle (rlnClassNumber, 1-based), or None without that column.

    Parameters
    ----------
    particles : ParticleSet
        Read from a STAR file, e.g. one written by :func:`write_class2d_star`.

    Returns
    -------
    Tensor (n,), int64, or None
    """
    table = particles.particles_table
    if table is None or "rlnClassNumber" not in table.columns:
        return None
    return torch.as_tensor(table["rlnClassNumber"].to_numpy().astype("int64"))


def write_latent_star(
    path: str | os.PathLike,
    particles: ParticleSet,
    latents: torch.Tensor,
    *,
    overwrite: bool = False,
) -> Path:
    """Write particles with their latent coordinates as columns rlnCryoglassLatent1, 2, …

    Parameters
    ----------
    path : path-like
        Output STAR file (RELION 3.1).
    particles : ParticleSet
        n particles; the columns are added to their original rows (particles without
        original rows are written without them).
    latents : Tensor (n, zdim)
        Latent coordinates, in the order of ``particles``.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if particles.particles_table is not None:
        table = particles.particles_table.copy()
        for j in range(latents.shape[1]):
            table[f"rlnCryoglassLatent{j + 1}"] = latents[:, j].numpy().astype(np.float64)
        particles = replace(particles, particles_table=table)
    return write_relion_star(path, particles, overwrite=overwrite)
