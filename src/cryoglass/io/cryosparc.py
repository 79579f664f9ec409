"""cryoSPARC particle files (``.cs``, numpy structured arrays) → :class:`ParticleSet`.

Conversion to cryoglass' (RELION 3.1) convention
------------------------------------------------
* Pose: ``alignments3D/pose`` is a rotation vector ``r`` (axis × angle, radians).  The RELION
  matrix is ``A = R(r)ᵀ`` with ``R(r) = exp([r]×)``, and the Euler angles are those of ``A``.
  This is how cryoDRGN converts cryoSPARC poses (its ``parse_pose_csparc`` stores
  ``R(r)ᵀ``, and its pose matrices equal RELION's ``A``); pinned by a test against cryoDRGN's
  ``pose.cs.pkl``.
* 2D alignments: ``alignments2D/pose`` is an in-plane angle θ (radians), the rotation vector
  (0, 0, θ); by the same rule ``A = Rz(θ)`` in RELION's form, i.e. (rot, tilt, psi) = (0, 0, θ°).
* Shift: ``alignments3D/shift`` (x, y) in pixels of ``alignments3D/psize_A`` has RELION's
  rlnOriginX/Y meaning (cryoDRGN divides both by the box size without a sign change), so
  ``shift_angstrom = shift · psize``.
* CTF: ``ctf/df1_A``, ``ctf/df2_A`` → defocus U, V [Å]; ``ctf/df_angle_rad`` → astigmatism
  angle (same axis convention as RELION, in degrees); ``ctf/accel_kv``, ``ctf/cs_mm``,
  ``ctf/amp_contrast``, ``ctf/phase_shift_rad`` (→ degrees), ``ctf/bfactor``, ``ctf/scale``.
* Images: ``blob/path`` (a leading ``>`` is dropped; paths are relative to the cryoSPARC
  project folder: they are looked for in the current folder, then the ``.cs`` file's folder,
  or pass the project folder as ``datadir``), ``blob/idx`` (0-based), ``blob/shape``,
  ``blob/psize_A``.
* Further columns, as pyem's ``csparc2star`` writes them: ``location/micrograph_path`` →
  rlnMicrographName; ``location/center_x_frac``, ``center_y_frac`` × ``micrograph_shape``
  (ny, nx) → rlnCoordinateX, rlnCoordinateY [px]; ``alignments3D/split`` (0/1) →
  rlnRandomSubset (1/2); ``alignments2D/class`` or ``alignments3D/class`` (0-based) →
  rlnClassNumber (1-based).
* Passthrough: a job's ``*_passthrough_particles.cs`` holds the fields its main file does not
  (``blob``, ``ctf``, ``location`` …); rows are matched on ``uid``, the main file wins.

References
----------
Punjani et al. (2017) cryoSPARC: algorithms for rapid unsupervised cryo-EM structure
determination. Nat. Methods 14:290-296. https://doi.org/10.1038/nmeth.4169
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.geometry.euler import matrix_to_euler
from cryoglass.geometry.rotations import rotvec_to_matrix
from cryoglass.io.outputs import register_input
from cryoglass.io.particles import ParticleSet, make_particle_set

__all__ = ["cryosparc_pose_to_euler", "read_cryosparc"]

_F64 = torch.float64
_REQUIRED = ("blob/path", "blob/idx", "blob/shape", "blob/psize_A")
_CTF_FIELDS = (
    "ctf/df1_A",
    "ctf/df2_A",
    "ctf/df_angle_rad",
    "ctf/accel_kv",
    "ctf/cs_mm",
    "ctf/amp_contrast",
)


def cryosparc_pose_to_euler(rotvec: torch.Tensor) -> torch.Tensor:
    """cryoSPARC rotation vectors (radians) → RELION Euler angles (rot, tilt, psi) [degrees].

    Parameters
    ----------
    rotvec : Tensor, shape (..., 3)
        ``alignments3D/pose``.

    Returns
    -------
    Tensor, shape (..., 3)

    Notes
    -----
    ``A = exp([r]×)ᵀ`` (cryoDRGN's rule; A is RELION's Euler matrix), angles from
    ``matrix_to_euler(A)``.
    """
    matrix = rotvec_to_matrix(torch.as_tensor(rotvec, dtype=_F64))
    return matrix_to_euler(matrix.transpose(-1, -2))


def _column(path: Path, records: np.ndarray, name: str) -> torch.Tensor:
    return torch.tensor(np.array(records[name], dtype=np.float64), dtype=_F64)


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: cryoSPARC file not found")
    register_input(path)
    try:
        records = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a cryoSPARC .cs (numpy) file: {error}") from error
    if records.dtype.names is None:
        raise ValueError(f"{path}: not a cryoSPARC .cs file (no named fields)")
    return records


def _with_passthrough(path: Path, records: np.ndarray, extra_path: Path) -> np.ndarray:
    """``records`` with the fields of the passthrough file it lacks, rows matched on ``uid``."""
    extra = _load(extra_path)
    for name, table in ((path, records), (extra_path, extra)):
        if "uid" not in table.dtype.names:
            raise ValueError(f"{name}: no uid field to match the passthrough rows on")
    order = np.argsort(extra["uid"], kind="stable")
    position = np.searchsorted(extra["uid"][order], records["uid"])
    position = np.minimum(position, len(order) - 1)
    rows = order[position]
    unmatched = np.flatnonzero(extra["uid"][rows] != records["uid"])
    if len(unmatched):
        raise ValueError(
            f"{extra_path}: {len(unmatched)} particle(s) of {path} are not in the passthrough "
            f"file (e.g. uid {int(records['uid'][unmatched[0]])}); is it the same job's?"
        )
    added = [n for n in extra.dtype.names if n not in records.dtype.names]
    dtype = [(n, records.dtype[n]) for n in records.dtype.names]
    dtype += [(n, extra.dtype[n]) for n in added]
    merged = np.empty(len(records), dtype=dtype)
    for name in records.dtype.names:
        merged[name] = records[name]
    for name in added:
        merged[name] = extra[name][rows]
    return merged


def _text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _extra_columns(records: np.ndarray, names: set[str], prefix: str | None) -> pd.DataFrame | None:
    """RELION columns cryoglass does not interpret but RELION users need (pyem's choices)."""
    columns: dict[str, np.ndarray | list] = {}
    if "location/micrograph_path" in names:
        columns["rlnMicrographName"] = [
            p.lstrip(">") for p in _text(records["location/micrograph_path"])
        ]
    if {"location/center_x_frac", "location/center_y_frac", "location/micrograph_shape"} <= names:
        shape = np.asarray(records["location/micrograph_shape"], dtype=np.float64).reshape(-1, 2)
        columns["rlnCoordinateX"] = np.asarray(records["location/center_x_frac"]) * shape[:, 1]
        columns["rlnCoordinateY"] = np.asarray(records["location/center_y_frac"]) * shape[:, 0]
    if "alignments3D/split" in names and prefix == "alignments3D":
        columns["rlnRandomSubset"] = np.asarray(records["alignments3D/split"], np.int64) + 1
    if prefix is not None and f"{prefix}/class" in names:
        columns["rlnClassNumber"] = np.asarray(records[f"{prefix}/class"], np.int64) + 1
    return pd.DataFrame(columns) if columns else None


def read_cryosparc(
    path: str | os.PathLike,
    *,
    pixel_size_angstrom: float | None = None,
    amplitude_contrast: float | None = None,
    image_root: str | os.PathLike | None = None,
    datadir: str | os.PathLike | None = None,
    passthrough: str | os.PathLike | None = None,
    read_ctf: bool = True,
) -> ParticleSet:
    """Read a cryoSPARC particle ``.cs`` file into a :class:`ParticleSet`.

    Parameters
    ----------
    path : path-like
        The ``.cs`` file.
    pixel_size_angstrom : float, optional
        Override ``blob/psize_A`` [Å].
    amplitude_contrast : float, optional
        Override ``ctf/amp_contrast``.
    image_root : path-like, optional
        The one folder ``blob/path`` is relative to (the cryoSPARC project folder).  Default:
        the current folder, then the ``.cs`` file's folder.
    datadir : path-like, optional
        Searched first (:func:`~cryoglass.io.particles.image_search_paths`).
    passthrough : path-like, optional
        The job's passthrough ``.cs`` (fields the main file lacks, matched on ``uid``).
    read_ctf : bool
        False: leave the CTF out.

    Returns
    -------
    ParticleSet
        Poses from ``alignments3D`` (else ``alignments2D``, marked ``in_plane_only``, else
        None); CTF when ``ctf/*`` fields exist; micrograph names, coordinates, half sets and
        classes in ``particles_table`` when present.

    Raises
    ------
    ValueError
        Missing required fields (all listed), mixed box sizes, passthrough rows missing.
    """
    path = Path(path)
    records = _load(path)
    if passthrough is not None:
        records = _with_passthrough(path, records, Path(passthrough))
    names = set(records.dtype.names)
    missing = [f for f in _REQUIRED if f not in names]
    if missing:
        hint = "" if passthrough is not None else " (give the job's passthrough .cs too?)"
        raise ValueError(f"{path}: missing required field(s): {', '.join(missing)}{hint}")
    n = len(records)
    blob_paths = [p.lstrip(">") for p in _text(records["blob/path"])]
    index = np.asarray(records["blob/idx"], dtype=np.int64)
    image_names = [f"{i + 1}@{p}" for i, p in zip(index.tolist(), blob_paths, strict=True)]
    shapes = np.unique(np.asarray(records["blob/shape"]).reshape(n, -1), axis=0)
    if len(shapes) != 1 or shapes[0][0] != shapes[0][-1]:
        raise ValueError(
            f"{path}: particles must share one square box, got shapes {shapes.tolist()}"
        )
    if pixel_size_angstrom is not None:
        pixel = torch.full((n,), float(pixel_size_angstrom), dtype=_F64)
    else:
        pixel = _column(path, records, "blob/psize_A")

    euler, shift, prefix = _poses(path, records, names, pixel)
    root = Path(image_root) if image_root is not None else path.parent
    particles = make_particle_set(
        image_names,
        pixel_size_angstrom=pixel,
        image_size=int(shapes[0][0]),
        euler_deg=euler,
        shift_angstrom=shift,
        ctf=_ctf(path, records, names, amplitude_contrast) if read_ctf else None,
        optics_group=_optics_groups(records, names),
        image_root=root,
        image_roots=(root,) if image_root is not None else (Path.cwd(), root),
        datadir=datadir,
    )
    return dataclasses.replace(
        particles,
        source_path=path,
        particles_table=_extra_columns(records, names, prefix),
        in_plane_only=prefix == "alignments2D",
    )


def _poses(
    path: Path, records: np.ndarray, names: set[str], pixel: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None, str | None]:
    """(Euler angles, shifts [Å], the field prefix used) from alignments3D, else alignments2D."""
    for prefix in ("alignments3D", "alignments2D"):
        if f"{prefix}/pose" not in names:
            continue
        pose = _column(path, records, f"{prefix}/pose")
        if prefix == "alignments2D":  # in-plane angle theta = rotation vector (0, 0, theta)
            theta = pose.reshape(-1, 1)
            pose = torch.cat([torch.zeros_like(theta), torch.zeros_like(theta), theta], dim=-1)
        euler = cryosparc_pose_to_euler(pose.reshape(-1, 3))
        shift = None
        if f"{prefix}/shift" in names:
            psize = (
                _column(path, records, f"{prefix}/psize_A")
                if f"{prefix}/psize_A" in names
                else pixel
            )
            shift = _column(path, records, f"{prefix}/shift").reshape(-1, 2) * psize[:, None]
        return euler, shift, prefix
    return None, None, None


def _ctf(
    path: Path, records: np.ndarray, names: set[str], amplitude_contrast: float | None
) -> CTFParams | None:
    if not any(f.startswith("ctf/") for f in names):
        return None
    missing = [f for f in _CTF_FIELDS if f not in names]
    if amplitude_contrast is not None and "ctf/amp_contrast" in missing:
        missing.remove("ctf/amp_contrast")
    if missing:
        raise ValueError(f"{path}: missing required CTF field(s): {', '.join(missing)}")
    n = len(records)

    def optional(name: str, default: float) -> torch.Tensor:
        if name in names:
            return _column(path, records, name)
        return torch.full((n,), default, dtype=_F64)

    q0 = (
        torch.full((n,), float(amplitude_contrast), dtype=_F64)
        if amplitude_contrast is not None
        else _column(path, records, "ctf/amp_contrast")
    )
    return CTFParams(
        defocus_u_angstrom=_column(path, records, "ctf/df1_A"),
        defocus_v_angstrom=_column(path, records, "ctf/df2_A"),
        astigmatism_angle_deg=torch.rad2deg(_column(path, records, "ctf/df_angle_rad")),
        voltage_kv=_column(path, records, "ctf/accel_kv"),
        cs_mm=_column(path, records, "ctf/cs_mm"),
        amplitude_contrast=q0,
        phase_shift_deg=torch.rad2deg(optional("ctf/phase_shift_rad", 0.0)),
        bfactor_a2=optional("ctf/bfactor", 0.0),
        scale=optional("ctf/scale", 1.0),
    )


def _optics_groups(records: np.ndarray, names: set[str]) -> torch.Tensor | None:
    if "ctf/exp_group_id" not in names:
        return None
    _, codes = np.unique(np.asarray(records["ctf/exp_group_id"]), return_inverse=True)
    return torch.as_tensor(codes.reshape(-1) + 1, dtype=torch.int64)
