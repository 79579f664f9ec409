"""Movies, micrographs and particle coordinates in RELION 3.1's files.

The preprocessing steps pass these between them (``movies.star`` → motion correction →
``corrected_micrographs.star`` → CTF estimation → ``micrographs_ctf.star`` → picking →
coordinates → extraction), each a STAR file with a ``data_optics`` table and one row per
movie (``data_movies``, rlnMicrographMovieName) or micrograph (``data_micrographs``,
rlnMicrographName):

* optics: rlnOpticsGroupName, rlnOpticsGroup, rlnMicrographOriginalPixelSize (the movie's pixel),
  rlnMicrographPixelSize (the micrograph's, after binning), rlnVoltage, rlnSphericalAberration,
  rlnAmplitudeContrast, and, written by cryoglass when the movies need one,
  rlnMicrographGainName (RELION keeps the gain reference in a motion-correction option instead);
* rows: the file name, rlnOpticsGroup, and per step rlnMicrographMetadata and
  rlnAccumMotionTotal/Early/Late (motion correction), rlnCtfImage, rlnDefocusU/V/Angle,
  rlnCtfAstigmatism, rlnCtfFigureOfMerit, rlnCtfMaxResolution (CTF estimation).

A per-movie motion file (RELION's ``Micrograph::write``) holds ``data_general`` (sizes, movie,
gain, binning, pixel size, dose), ``data_global_shift`` (rlnMicrographFrameNumber 1-based,
rlnMicrographShiftX/Y: the shift in movie pixels that re-aligns each frame to the first,
``aligned(r) = frame(r − shift)``), an optional ``data_local_motion_model`` (RELION's
third-order polynomial, 18 coefficients per axis) and ``data_local_shift`` (per-patch
observations).

Coordinates (rlnCoordinateX/Y: the particle centre in micrograph pixels, 0-based, as
``relion_preprocess --extract`` reads them) come either as one file per micrograph named
``<micrograph stem>_<suffix>.star`` (``_autopick``, ``_pick``, ``_manualpick``) anywhere under a
folder, or as one STAR file with a rlnMicrographName column.

Relative file names are resolved against the STAR file's folder (cryoglass's convention), else
against the first folder above it where the file exists (RELION names files from its project
folder: ``MotionCorr/job002/Movies/a.mrc`` in ``MotionCorr/job002/corrected_micrographs.star``),
else against the working directory.
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile
import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.io._atomic import atomic_write
from cryoglass.io.outputs import register_input

__all__ = [
    "COORDINATE_SUFFIXES",
    "MicrographOptics",
    "MicrographTable",
    "MotionTrack",
    "find_coordinate_files",
    "read_coordinates",
    "read_micrograph_table",
    "read_motion_star",
    "read_motion_truth",
    "read_movie",
    "write_coordinates_star",
    "write_micrograph_table",
    "write_motion_star",
    "write_motion_truth",
    "write_movie",
]

#: File-name endings of RELION's per-micrograph coordinate files, most specific first.
COORDINATE_SUFFIXES = ("_autopick.star", "_manualpick.star", "_pick.star", "_coords.star")

_F64 = torch.float64


@dataclass(frozen=True)
class MicrographOptics:
    """One optics group of a movie or micrograph STAR file (RELION 3.1 ``data_optics``).

    Attributes
    ----------
    original_pixel_size_angstrom : float
        Pixel size of the movies [Å] (rlnMicrographOriginalPixelSize).
    voltage_kv, cs_mm, amplitude_contrast : float
        rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast.
    pixel_size_angstrom : float, optional
        Pixel size of the micrographs [Å] after binning (rlnMicrographPixelSize); None for
        movies.
    gain_name : str, optional
        Gain reference of the movies (rlnMicrographGainName), as written in the file.
    name : str
        rlnOpticsGroupName.
    """

    original_pixel_size_angstrom: float
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    pixel_size_angstrom: float | None = None
    gain_name: str | None = None
    name: str = "opticsGroup1"


@dataclass(frozen=True)
class MicrographTable:
    """The rows of a movie or micrograph STAR file, with their optics resolved per row.

    Attributes
    ----------
    path : Path
        The STAR file.
    kind : {"movies", "micrographs"}
    names : tuple of str
        rlnMicrographMovieName (movies) or rlnMicrographName (micrographs) as written.
    files : tuple of Path
        The same, resolved (module docstring).
    optics : tuple of MicrographOptics
        One per row.
    ctf : CTFParams or None
        Per-row CTF (shape (n,)) when the file has rlnDefocusU/V.
    table : pandas.DataFrame
        The rows as read (every column kept).
    """

    path: Path
    kind: str
    names: tuple[str, ...]
    files: tuple[Path, ...]
    optics: tuple[MicrographOptics, ...]
    ctf: CTFParams | None
    table: pd.DataFrame = field(repr=False)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def stems(self) -> tuple[str, ...]:
        """File names without folder and extension: how steps match micrographs."""
        return tuple(Path(name).stem for name in self.names)

    def pixel_size_angstrom(self, row: int) -> float:
        """The row's pixel size [Å]: the micrograph's, else the movie's."""
        optics = self.optics[row]
        if self.kind == "micrographs" and optics.pixel_size_angstrom is not None:
            return optics.pixel_size_angstrom
        return optics.original_pixel_size_angstrom

    def gain_file(self, row: int) -> Path | None:
        """The row's gain reference, resolved, or None."""
        name = self.optics[row].gain_name
        return None if name is None else _resolve(self.path, name)

    def column(self, name: str) -> np.ndarray | None:
        """A per-row column as numbers (None when absent), e.g. ``"rlnCtfMaxResolution"``."""
        if name not in self.table.columns:
            return None
        return pd.to_numeric(self.table[name], errors="coerce").to_numpy(dtype=float)


# ----------------------------------------------------------------------------- reading


def _resolve(star_path: Path, name: str) -> Path:
    """A file named in a STAR file: beside it, else in a folder above it, else in the cwd."""
    path = Path(name)
    if path.is_absolute():
        return path
    folder = star_path.parent
    for base in (folder, *folder.resolve().parents):
        if (base / path).exists():
            return folder / path if base == folder else base / path
    return path if path.exists() else folder / path


def _blocks(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: STAR file not found")
    register_input(path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as error:  # starfile raises many kinds on malformed files
        raise ValueError(f"{path}: not a readable STAR file ({error})") from None
    finally:  # starfile reads through linecache and keeps stale lines on errors
        linecache.clearcache()
    return {name: table for name, table in blocks.items()}


def _as_frame(value) -> pd.DataFrame:
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame([value])


def _optics_rows(
    path: Path, optics: pd.DataFrame | None, groups: np.ndarray, pixel: float | None = None
):
    """One MicrographOptics per row; refuse a missing pixel size (unless given) or lens value."""
    if optics is None:
        raise ValueError(
            f"{path}: no data_optics table: cannot tell the pixel size, voltage, Cs and amplitude "
            "contrast (RELION 3.1 movies/micrographs STAR files have one)"
        )
    optics = _as_frame(optics)
    by_group = {}
    for _, row in optics.iterrows():
        group = int(row.get("rlnOpticsGroup", 1))
        original = row.get("rlnMicrographOriginalPixelSize", row.get("rlnMicrographPixelSize"))
        binned = row.get("rlnMicrographPixelSize")
        if pixel is not None:  # given by the user: it overrides the file
            original, binned = pixel, (None if binned is None else pixel)
        if original is None or pd.isna(original) or not float(original) > 0:
            raise ValueError(
                f"{path}: optics group {group} has no pixel size "
                "(rlnMicrographOriginalPixelSize / rlnMicrographPixelSize); give it with --apix"
            )
        missing = [
            c
            for c in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
            if c not in row.index or pd.isna(row[c])
        ]
        if missing:
            raise ValueError(f"{path}: optics group {group} has no {', '.join(missing)}")
        gain = row.get("rlnMicrographGainName")
        by_group[group] = MicrographOptics(
            original_pixel_size_angstrom=float(original),
            voltage_kv=float(row["rlnVoltage"]),
            cs_mm=float(row["rlnSphericalAberration"]),
            amplitude_contrast=float(row["rlnAmplitudeContrast"]),
            pixel_size_angstrom=None if binned is None or pd.isna(binned) else float(binned),
            gain_name=None if gain is None or pd.isna(gain) or str(gain) == "" else str(gain),
            name=str(row.get("rlnOpticsGroupName", f"opticsGroup{group}")),
        )
    unknown = sorted(set(groups.tolist()) - set(by_group))
    if unknown:
        raise ValueError(f"{path}: rows refer to optics group(s) {unknown} not in data_optics")
    return tuple(by_group[int(g)] for g in groups)


def _row_ctf(path: Path, table: pd.DataFrame, optics) -> CTFParams | None:
    if "rlnDefocusU" not in table.columns:
        return None

    def numbers(column: str, default: float | None = None) -> torch.Tensor:
        if column not in table.columns:
            if default is None:
                raise ValueError(f"{path}: has rlnDefocusU but no {column}")
            return torch.full((len(table),), default, dtype=_F64)
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        if np.isnan(values).any():
            raise ValueError(f"{path}: column {column} has non-numeric values")
        return torch.from_numpy(np.array(values, dtype=float))

    return CTFParams(
        defocus_u_angstrom=numbers("rlnDefocusU"),
        defocus_v_angstrom=numbers("rlnDefocusV"),
        astigmatism_angle_deg=numbers("rlnDefocusAngle", 0.0),
        voltage_kv=torch.tensor([o.voltage_kv for o in optics], dtype=_F64),
        cs_mm=torch.tensor([o.cs_mm for o in optics], dtype=_F64),
        amplitude_contrast=torch.tensor([o.amplitude_contrast for o in optics], dtype=_F64),
        phase_shift_deg=numbers("rlnPhaseShift", 0.0),
    )


def read_micrograph_table(
    path: str | os.PathLike, *, kind: str | None = None, pixel_size_angstrom: float | None = None
) -> MicrographTable:
    """Read a RELION 3.1 movies or micrographs STAR file.

    Parameters
    ----------
    path : path-like
    kind : {"movies", "micrographs"}, optional
        Required kind; default: whichever the file holds (``data_movies`` /
        rlnMicrographMovieName, else ``data_micrographs`` / rlnMicrographName).
    pixel_size_angstrom : float, optional
        Replaces the optics' pixel sizes (movies and micrographs alike), e.g. from ``--apix``.

    Returns
    -------
    MicrographTable

    Raises
    ------
    FileNotFoundError, ValueError
        The message names the file: no such file, no table of the wanted kind, no pixel size or
        lens values in the optics, rows with an unknown optics group, non-numeric CTF columns.
    """
    path = Path(path)
    blocks = _blocks(path)
    optics = blocks.get("optics")
    rows, found = None, None
    for block, column, what in (
        ("movies", "rlnMicrographMovieName", "movies"),
        ("micrographs", "rlnMicrographName", "micrographs"),
    ):
        if kind not in (None, what):
            continue
        for name, table in blocks.items():
            table = _as_frame(table)
            if name != "optics" and column in table.columns and (name == block or rows is None):
                rows, found = table.reset_index(drop=True), (what, column)
        if rows is not None:
            break
    if rows is None:
        wanted = {"movies": "rlnMicrographMovieName", "micrographs": "rlnMicrographName"}
        columns = [wanted[kind]] if kind else list(wanted.values())
        raise ValueError(f"{path}: no table with a {' or '.join(columns)} column")
    what, column = found
    if len(rows) == 0:
        raise ValueError(f"{path}: the {what} table is empty")
    names = tuple(str(n) for n in rows[column])
    groups = (
        pd.to_numeric(rows["rlnOpticsGroup"], errors="coerce").fillna(-1).astype(int).to_numpy()
        if "rlnOpticsGroup" in rows.columns
        else np.ones(len(rows), dtype=int)
    )
    optic = _optics_rows(path, optics, groups, pixel_size_angstrom)
    return MicrographTable(
        path=path,
        kind=what,
        names=names,
        files=tuple(_resolve(path, n) for n in names),
        optics=optic,
        ctf=_row_ctf(path, rows, optic),
        table=rows,
    )


# ----------------------------------------------------------------------------- writing


def _optics_frame(optics: Sequence[MicrographOptics], kind: str) -> pd.DataFrame:
    rows = []
    for group, o in enumerate(optics, start=1):
        row = {
            "rlnOpticsGroupName": o.name,
            "rlnOpticsGroup": group,
            "rlnMicrographOriginalPixelSize": o.original_pixel_size_angstrom,
            "rlnVoltage": o.voltage_kv,
            "rlnSphericalAberration": o.cs_mm,
            "rlnAmplitudeContrast": o.amplitude_contrast,
        }
        if kind == "micrographs":
            pixel = o.pixel_size_angstrom or o.original_pixel_size_angstrom
            row["rlnMicrographPixelSize"] = pixel
        if o.gain_name is not None:
            row["rlnMicrographGainName"] = o.gain_name
        rows.append(row)
    return pd.DataFrame(rows)


def write_micrograph_table(
    path: str | os.PathLike,
    names: Sequence[str],
    *,
    kind: str,
    optics: MicrographOptics | Sequence[MicrographOptics],
    optics_group: Sequence[int] | None = None,
    ctf: CTFParams | None = None,
    metadata_names: Sequence[str] | None = None,
    motion_total_px: Sequence[float] | None = None,
    motion_early_px: Sequence[float] | None = None,
    motion_late_px: Sequence[float] | None = None,
    ctf_image_names: Sequence[str] | None = None,
    ctf_max_resolution_angstrom: Sequence[float] | None = None,
    ctf_figure_of_merit: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a RELION 3.1 ``movies.star`` (kind "movies") or micrographs STAR file.

    Parameters
    ----------
    path : path-like
    names : sequence of str, length n
        rlnMicrographMovieName / rlnMicrographName, written as given (relative to the STAR
        file's folder, by cryoglass's convention).
    kind : {"movies", "micrographs"}
    optics : MicrographOptics or sequence of them
        The optics groups (numbered 1, 2, … in this order).
    optics_group : sequence of int, optional
        Each row's group (1-based); default 1.
    ctf : CTFParams, optional
        Per-row CTF (batch (n,)): rlnDefocusU/V/Angle, rlnCtfAstigmatism (``|U − V|``) and,
        when any is non-zero, rlnPhaseShift.
    metadata_names : sequence of str, optional
        rlnMicrographMetadata (the per-movie motion STAR file).
    motion_total_px, motion_early_px, motion_late_px : sequence of float, optional
        rlnAccumMotionTotal/Early/Late [pixels].
    ctf_image_names : sequence of str, optional
        rlnCtfImage.
    ctf_max_resolution_angstrom, ctf_figure_of_merit : sequence of float, optional
        rlnCtfMaxResolution [Å], rlnCtfFigureOfMerit.
    overwrite : bool

    Returns
    -------
    Path
    """
    if kind not in ("movies", "micrographs"):
        raise ValueError(f"kind must be 'movies' or 'micrographs', got {kind!r}")
    groups = [optics] if isinstance(optics, MicrographOptics) else list(optics)
    n = len(names)
    column = "rlnMicrographMovieName" if kind == "movies" else "rlnMicrographName"
    rows = pd.DataFrame({column: [str(x) for x in names]})
    rows["rlnOpticsGroup"] = list(optics_group) if optics_group is not None else [1] * n
    if not set(rows["rlnOpticsGroup"]) <= set(range(1, len(groups) + 1)):
        raise ValueError(f"{path}: optics_group refers to groups beyond the {len(groups)} given")
    optional = {
        "rlnMicrographMetadata": metadata_names,
        "rlnAccumMotionTotal": motion_total_px,
        "rlnAccumMotionEarly": motion_early_px,
        "rlnAccumMotionLate": motion_late_px,
        "rlnCtfImage": ctf_image_names,
    }
    for name, values in optional.items():
        if values is not None:
            if len(values) != n:
                raise ValueError(f"{path}: {name} has {len(values)} values for {n} rows")
            rows[name] = list(values)
    if ctf is not None:
        c = ctf.expand(n, dtype=_F64)
        rows["rlnDefocusU"] = c.defocus_u_angstrom.numpy()
        rows["rlnDefocusV"] = c.defocus_v_angstrom.numpy()
        rows["rlnCtfAstigmatism"] = (c.defocus_u_angstrom - c.defocus_v_angstrom).abs().numpy()
        rows["rlnDefocusAngle"] = c.astigmatism_angle_deg.numpy()
        if bool((c.phase_shift_deg != 0).any()):
            rows["rlnPhaseShift"] = c.phase_shift_deg.numpy()
    for name, values in (
        ("rlnCtfFigureOfMerit", ctf_figure_of_merit),
        ("rlnCtfMaxResolution", ctf_max_resolution_angstrom),
    ):
        if values is not None:
            rows[name] = np.asarray(values, dtype=float)
    blocks = {"optics": _optics_frame(groups, kind), kind: rows}
    return atomic_write(
        path, lambda tmp: starfile.write(blocks, tmp, float_format="%.6f"), overwrite=overwrite
    )


# ----------------------------------------------------------------------------- movies


def write_movie(
    path: str | os.PathLike,
    frames: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    overwrite: bool = False,
) -> Path:
    """Write a movie (frames of electron counts) as an MRC stack, atomically.

    Parameters
    ----------
    path : path-like
        ``.mrc`` (as RELION's import expects).
    frames : Tensor, shape (n_frames, h, w)
        Whole, non-negative counts below 65536 are stored as mode 6 (uint16, as counting
        cameras write); anything else as mode 2 (float32).
    pixel_size_angstrom : float

    Returns
    -------
    Path
    """
    data = torch.as_tensor(frames).detach().cpu()
    if data.ndim != 3:
        raise ValueError(f"{path}: a movie must be (n_frames, h, w), got {tuple(data.shape)}")
    if not bool(torch.isfinite(data).all()):
        raise ValueError(f"{path}: the frames hold NaN or Inf")
    counts = bool((data >= 0).all() and (data < 65536).all() and (data == data.round()).all())
    array = data.numpy().astype(np.uint16 if counts else np.float32)

    def _write(tmp: Path) -> None:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(array)
            mrc.set_image_stack()
            mrc.voxel_size = float(pixel_size_angstrom)
            mrc.update_header_stats()

    return atomic_write(path, _write, overwrite=overwrite)


def read_movie(path: str | os.PathLike) -> torch.Tensor:
    """Read a movie's frames as float32 (n_frames, h, w), in one conversion from the file.

    A movie is a 3D MRC file read as frames (never permuted as a volume); integer modes are
    converted straight from the memory map (counts are always finite), float modes are
    checked for NaN/Inf.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing, corrupt or complex file; NaN/Inf; not 3D.  The message names the file.
    """
    from cryoglass.io.mrc import _check_finite, _check_mode, _open

    path = Path(path)
    with _open(path, mmap=True) as mrc:
        mode = int(mrc.header.mode)
        _check_mode(path, mode)
        data = mrc.data
        if data.ndim != 3:
            raise ValueError(f"{path}: a movie must hold frames (3D), got shape {data.shape}")
        frames = torch.from_numpy(np.asarray(data, dtype=np.float32))
    if mode in (2, 12):
        _check_finite(path, frames)
    return frames


# ----------------------------------------------------------------------------- motion files


@dataclass(frozen=True)
class MotionTrack:
    """The motion of one movie as RELION stores it (``Micrograph::write``).

    Attributes
    ----------
    movie_name : str
        rlnMicrographMovieName.
    shape_px : (w, h, n_frames)
        rlnImageSizeX/Y/Z.
    global_shifts_px : Tensor, float64, shape (n_frames, 2)
        rlnMicrographShiftX/Y per frame [movie pixels]: ``aligned(r) = frame(r − shift)``,
        0 for the first frame.
    pixel_size_angstrom : float
        rlnMicrographOriginalPixelSize.
    binning : float
        rlnMicrographBinning.
    dose_per_frame, pre_exposure : float
        rlnMicrographDoseRate, rlnMicrographPreExposure [e⁻/Å²].
    voltage_kv : float
    gain_name : str, optional
    polynomial_x, polynomial_y : Tensor, shape (18,), optional
        RELION's third-order polynomial local model (data_local_motion_model).
    local_shifts : Tensor, shape (m, 5), optional
        Patch observations: frame (1-based), x, y [px], shift x, shift y [px].
    """

    movie_name: str
    shape_px: tuple[int, int, int]
    global_shifts_px: torch.Tensor
    pixel_size_angstrom: float
    binning: float = 1.0
    dose_per_frame: float = 0.0
    pre_exposure: float = 0.0
    voltage_kv: float = 300.0
    gain_name: str | None = None
    polynomial_x: torch.Tensor | None = None
    polynomial_y: torch.Tensor | None = None
    local_shifts: torch.Tensor | None = None


def write_motion_star(
    path: str | os.PathLike, track: MotionTrack, *, overwrite: bool = False
) -> Path:
    """Write one movie's motion in RELION's per-micrograph layout (module docstring)."""
    w, h, n = track.shape_px
    general = {
        "rlnImageSizeX": int(w),
        "rlnImageSizeY": int(h),
        "rlnImageSizeZ": int(n),
        "rlnMicrographMovieName": track.movie_name,
    }
    if track.gain_name is not None:
        general["rlnMicrographGainName"] = track.gain_name
    general.update(
        {
            "rlnMicrographBinning": float(track.binning),
            "rlnMicrographOriginalPixelSize": float(track.pixel_size_angstrom),
            "rlnMicrographDoseRate": float(track.dose_per_frame),
            "rlnMicrographPreExposure": float(track.pre_exposure),
            "rlnVoltage": float(track.voltage_kv),
            "rlnMicrographStartFrame": 1,
            "rlnMotionModelVersion": 1 if track.polynomial_x is not None else 0,
        }
    )
    shifts = track.global_shifts_px.detach().cpu().to(_F64)
    blocks: dict = {
        "general": general,
        "global_shift": pd.DataFrame(
            {
                "rlnMicrographFrameNumber": np.arange(1, len(shifts) + 1),
                "rlnMicrographShiftX": shifts[:, 0].numpy(),
                "rlnMicrographShiftY": shifts[:, 1].numpy(),
            }
        ),
    }
    if track.polynomial_x is not None and track.polynomial_y is not None:
        blocks["local_motion_model"] = pd.DataFrame(
            {
                "rlnMotionModelCoeffsIdx": np.arange(36),
                "rlnMotionModelCoeff": np.concatenate(
                    [track.polynomial_x.cpu().numpy(), track.polynomial_y.cpu().numpy()]
                ),
            }
        )
    if track.local_shifts is not None and len(track.local_shifts):
        local = track.local_shifts.detach().cpu().to(_F64).numpy()
        blocks["local_shift"] = pd.DataFrame(
            {
                "rlnMicrographFrameNumber": local[:, 0],
                "rlnCoordinateX": local[:, 1],
                "rlnCoordinateY": local[:, 2],
                "rlnMicrographShiftX": local[:, 3],
                "rlnMicrographShiftY": local[:, 4],
            }
        )
    return atomic_write(
        path, lambda tmp: starfile.write(blocks, tmp, float_format="%.6f"), overwrite=overwrite
    )


def read_motion_star(path: str | os.PathLike) -> MotionTrack:
    """Read a per-movie motion STAR file (RELION's or cryoglass's)."""
    path = Path(path)
    blocks = _blocks(path)
    general = blocks.get("general")
    table = blocks.get("global_shift")
    if general is None or table is None:
        raise ValueError(f"{path}: needs data_general and data_global_shift blocks")
    if isinstance(general, pd.DataFrame):
        general = general.iloc[0].to_dict()
    table = _as_frame(table).sort_values("rlnMicrographFrameNumber")
    shifts = torch.tensor(
        table[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy(dtype=float), dtype=_F64
    )
    poly_x = poly_y = None
    model = blocks.get("local_motion_model")
    if model is not None and int(general.get("rlnMotionModelVersion", 0)) == 1:
        coeffs = _as_frame(model).sort_values("rlnMotionModelCoeffsIdx")["rlnMotionModelCoeff"]
        values = torch.tensor(coeffs.to_numpy(dtype=float), dtype=_F64)
        poly_x, poly_y = values[:18], values[18:36]
    local = blocks.get("local_shift")
    local_shifts = None
    if isinstance(local, pd.DataFrame) and len(local):
        columns = [
            "rlnMicrographFrameNumber",
            "rlnCoordinateX",
            "rlnCoordinateY",
            "rlnMicrographShiftX",
            "rlnMicrographShiftY",
        ]
        local_shifts = torch.tensor(local[columns].to_numpy(dtype=float), dtype=_F64)
    return MotionTrack(
        movie_name=str(general.get("rlnMicrographMovieName", "")),
        shape_px=(
            int(general.get("rlnImageSizeX", 0)),
            int(general.get("rlnImageSizeY", 0)),
            int(general.get("rlnImageSizeZ", len(shifts))),
        ),
        global_shifts_px=shifts,
        pixel_size_angstrom=float(general.get("rlnMicrographOriginalPixelSize", 0.0)),
        binning=float(general.get("rlnMicrographBinning", 1.0)),
        dose_per_frame=float(general.get("rlnMicrographDoseRate", 0.0)),
        pre_exposure=float(general.get("rlnMicrographPreExposure", 0.0)),
        voltage_kv=float(general.get("rlnVoltage", 300.0)),
        gain_name=general.get("rlnMicrographGainName"),
        polynomial_x=poly_x,
        polynomial_y=poly_y,
        local_shifts=local_shifts,
    )


# ----------------------------------------------------------------------------- coordinates


def write_coordinates_star(
    path: str | os.PathLike,
    coordinates_px: torch.Tensor,
    *,
    micrograph_names: Sequence[str] | None = None,
    figure_of_merit: torch.Tensor | None = None,
    euler_deg: torch.Tensor | None = None,
    ctf: CTFParams | None = None,
    diameter_angstrom: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write particle coordinates: a per-micrograph file or one file with rlnMicrographName.

    Parameters
    ----------
    path : path-like
        ``<stem>_autopick.star`` for one micrograph, or any name with ``micrograph_names``.
    coordinates_px : Tensor, shape (n, 2)
        rlnCoordinateX/Y [pixels of the micrograph, 0-based].
    micrograph_names : sequence of str, optional
        rlnMicrographName of each row.
    figure_of_merit : Tensor, shape (n,), optional
        rlnAutopickFigureOfMerit.
    euler_deg : Tensor, shape (n, 3), optional
        rlnAngleRot/Tilt/Psi (the simulation's truth).
    ctf : CTFParams, optional
        Per-row rlnDefocusU/V/Angle.
    diameter_angstrom : float, optional
        rlnParticleDiameter (written for the truth, so scorers know the particle's size).
    overwrite : bool
    """
    xy = torch.as_tensor(coordinates_px, dtype=_F64).reshape(-1, 2).cpu().numpy()
    n = len(xy)
    table = pd.DataFrame()
    if micrograph_names is not None:
        if len(micrograph_names) != n:
            raise ValueError(f"{path}: {len(micrograph_names)} micrograph names for {n} rows")
        table["rlnMicrographName"] = [str(m) for m in micrograph_names]
    table["rlnCoordinateX"] = xy[:, 0]
    table["rlnCoordinateY"] = xy[:, 1]
    if figure_of_merit is not None:
        table["rlnAutopickFigureOfMerit"] = torch.as_tensor(figure_of_merit).cpu().numpy()
    if euler_deg is not None:
        angles = torch.as_tensor(euler_deg, dtype=_F64).reshape(-1, 3).cpu().numpy()
        table["rlnAngleRot"], table["rlnAngleTilt"], table["rlnAnglePsi"] = angles.T
    if ctf is not None:
        c = ctf.expand(n, dtype=_F64)
        table["rlnDefocusU"] = c.defocus_u_angstrom.numpy()
        table["rlnDefocusV"] = c.defocus_v_angstrom.numpy()
        table["rlnDefocusAngle"] = c.astigmatism_angle_deg.numpy()
    if diameter_angstrom is not None:
        table["rlnParticleDiameter"] = float(diameter_angstrom)
    block = "particles" if micrograph_names is not None else ""
    return atomic_write(
        path,
        lambda tmp: starfile.write({block: table}, tmp, float_format="%.6f"),
        overwrite=overwrite,
    )


def find_coordinate_files(folder: str | os.PathLike, stems: Sequence[str]) -> dict[str, Path]:
    """Per-micrograph coordinate files under ``folder`` (searched recursively), by stem.

    A file ``<stem><suffix>`` with a suffix of :data:`COORDINATE_SUFFIXES` belongs to the
    micrograph ``stem``; stems without a file are left out.

    Raises
    ------
    ValueError
        Two files (in different sub-folders) for one micrograph.
    """
    folder = Path(folder)
    wanted = set(stems)
    found: dict[str, Path] = {}
    for suffix in COORDINATE_SUFFIXES:  # a more specific suffix wins over a later one
        this_suffix: dict[str, Path] = {}
        for file in sorted(folder.rglob(f"*{suffix}")):
            stem = file.name[: -len(suffix)]
            if stem not in wanted or stem in found:
                continue
            if stem in this_suffix:
                raise ValueError(
                    f"{folder}: two coordinate files for micrograph {stem}: "
                    f"{this_suffix[stem]} and {file}"
                )
            this_suffix[stem] = file
        found.update(this_suffix)
    return found


def _coordinates_table(path: Path) -> pd.DataFrame:
    blocks = _blocks(path)
    for table in blocks.values():
        table = _as_frame(table)
        if {"rlnCoordinateX", "rlnCoordinateY"} <= set(table.columns):
            return table.reset_index(drop=True)
    if all(len(_as_frame(t)) == 0 for t in blocks.values()):
        return pd.DataFrame({"rlnCoordinateX": [], "rlnCoordinateY": []})
    raise ValueError(f"{path}: no table with rlnCoordinateX and rlnCoordinateY")


def read_coordinates(
    source: str | os.PathLike, stems: Sequence[str]
) -> dict[str, dict[str, torch.Tensor]]:
    """Particle coordinates per micrograph, from a folder of per-micrograph files or one file.

    Parameters
    ----------
    source : path-like
        A folder (files found by :func:`find_coordinate_files`) or one STAR file whose rows
        carry rlnMicrographName (matched by stem) or, for a single micrograph, none.
    stems : sequence of str
        The micrographs' stems (:attr:`MicrographTable.stems`).

    Returns
    -------
    dict
        ``{stem: {"coordinates_px": (n, 2) float64, "figure_of_merit": (n,) or absent,
        "source": Path}}`` for the micrographs that have coordinates (possibly 0 rows).

    Raises
    ------
    FileNotFoundError, ValueError
        No such path; a STAR file without coordinate columns; one file for several
        micrographs without rlnMicrographName; non-numeric coordinates.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: coordinates not found (a folder or a STAR file)")
    tables: dict[str, tuple[pd.DataFrame, Path]] = {}
    if source.is_dir():
        for stem, file in find_coordinate_files(source, stems).items():
            tables[stem] = (_coordinates_table(file), file)
    else:
        table = _coordinates_table(source)
        if "rlnMicrographName" in table.columns:
            keys = table["rlnMicrographName"].astype(str).map(lambda n: Path(n).stem)
            for stem in stems:
                tables[stem] = (table[keys == stem].reset_index(drop=True), source)
        elif len(stems) == 1:
            tables[stems[0]] = (table, source)
        else:
            raise ValueError(
                f"{source}: has no rlnMicrographName column, so it cannot hold the coordinates "
                f"of {len(stems)} micrographs (give a folder of per-micrograph files)"
            )
    out = {}
    for stem, (table, file) in tables.items():
        xy = table[["rlnCoordinateX", "rlnCoordinateY"]].apply(pd.to_numeric, errors="coerce")
        values = xy.to_numpy(dtype=float).reshape(-1, 2)
        if np.isnan(values).any():
            raise ValueError(f"{file}: non-numeric rlnCoordinateX/Y values")
        entry = {"coordinates_px": torch.from_numpy(np.array(values, dtype=float)), "source": file}
        if "rlnAutopickFigureOfMerit" in table.columns:
            fom = pd.to_numeric(table["rlnAutopickFigureOfMerit"], errors="coerce").to_numpy(float)
            entry["figure_of_merit"] = torch.from_numpy(np.array(fom, dtype=float))
        out[stem] = entry
    return out


# ----------------------------------------------------------------------------- motion truth


def write_motion_truth(
    path: str | os.PathLike,
    movie_names: Sequence[str],
    global_shifts_px: Sequence[torch.Tensor],
    *,
    points_px: torch.Tensor | None = None,
    local_shifts_px: Sequence[torch.Tensor] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the true motion of many movies in RELION's sign (``truth/motion.star``).

    Parameters
    ----------
    path : path-like
    movie_names : sequence of str, length m
    global_shifts_px : sequence of Tensor (n_frames, 2)
        Per movie, RELION's rlnMicrographShiftX/Y of each frame [pixels] (0 for frame 1).
    points_px : Tensor (P, 2), optional
        Points (x, y) [pixels] where the local shifts are given.
    local_shifts_px : sequence of Tensor (n_frames, P, 2), optional
        Per movie, the whole shift (global + local) at each point, RELION's sign.
    overwrite : bool

    Returns
    -------
    Path
        Blocks ``data_global_shift`` (rlnMicrographMovieName, rlnMicrographFrameNumber,
        rlnMicrographShiftX/Y) and, with points, ``data_local_shift`` (the same plus
        rlnCoordinateX/Y).
    """
    rows, local_rows = [], []
    for index, (name, shifts) in enumerate(zip(movie_names, global_shifts_px, strict=True)):
        values = torch.as_tensor(shifts, dtype=_F64).cpu().numpy()
        for f, (sx, sy) in enumerate(values, start=1):
            rows.append((str(name), f, sx, sy))
        if points_px is not None and local_shifts_px is not None:
            local = torch.as_tensor(local_shifts_px[index], dtype=_F64).cpu().numpy()
            points = torch.as_tensor(points_px, dtype=_F64).cpu().numpy()
            for f in range(local.shape[0]):
                for (x, y), (sx, sy) in zip(points, local[f], strict=True):
                    local_rows.append((str(name), f + 1, x, y, sx, sy))
    blocks = {
        "global_shift": pd.DataFrame(
            rows,
            columns=[
                "rlnMicrographMovieName",
                "rlnMicrographFrameNumber",
                "rlnMicrographShiftX",
                "rlnMicrographShiftY",
            ],
        )
    }
    if local_rows:
        blocks["local_shift"] = pd.DataFrame(
            local_rows,
            columns=[
                "rlnMicrographMovieName",
                "rlnMicrographFrameNumber",
                "rlnCoordinateX",
                "rlnCoordinateY",
                "rlnMicrographShiftX",
                "rlnMicrographShiftY",
            ],
        )
    return atomic_write(
        path, lambda tmp: starfile.write(blocks, tmp, float_format="%.6f"), overwrite=overwrite
    )


def read_motion_truth(path: str | os.PathLike) -> dict[str, dict[str, torch.Tensor]]:
    """Read :func:`write_motion_truth`'s file: ``{movie stem: {"global", "points", "local"}}``.

    ``global`` (n_frames, 2); with a local table also ``points`` (P, 2) and ``local``
    (n_frames, P, 2), all float64 pixels in RELION's sign.
    """
    path = Path(path)
    blocks = _blocks(path)
    if "global_shift" not in blocks:
        raise ValueError(f"{path}: no data_global_shift block")
    table = _as_frame(blocks["global_shift"])
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, rows in table.groupby("rlnMicrographMovieName", sort=False):
        rows = rows.sort_values("rlnMicrographFrameNumber")
        shifts = rows[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy(dtype=float)
        out[Path(str(name)).stem] = {"global": torch.from_numpy(np.array(shifts, dtype=float))}
    local = blocks.get("local_shift")
    if isinstance(local, pd.DataFrame) and len(local):
        for name, rows in local.groupby("rlnMicrographMovieName", sort=False):
            rows = rows.sort_values(
                ["rlnMicrographFrameNumber", "rlnCoordinateY", "rlnCoordinateX"]
            )
            n_frames = int(rows["rlnMicrographFrameNumber"].max())
            first = rows[rows["rlnMicrographFrameNumber"] == 1]
            points = first[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy(dtype=float)
            shifts = rows[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy(dtype=float)
            entry = out.setdefault(Path(str(name)).stem, {})
            entry["points"] = torch.from_numpy(np.array(points, dtype=float))
            entry["local"] = torch.from_numpy(shifts.reshape(n_frames, len(points), 2))
    return out
