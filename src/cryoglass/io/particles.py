"""Particle metadata (:class:`ParticleSet`) and the lazy particle image stack.

A :class:`ParticleSet` is what every metadata reader returns (RELION STAR, cryoSPARC ``.cs``,
cryoDRGN pickles): images, pixel sizes, poses and CTF as batched tensors in cryoglass'
convention (RELION 3.1 meaning, Å and degrees).  Metadata tensors are float64, so values
written back to a STAR file are exactly those read; cast with ``.to(dtype)`` for computing.

Images are referenced RELION-style, ``"index@path"`` with a 1-based index; here they are
resolved once into the unique image files (absolute paths) and two integer tensors: which
file, and the 0-based index inside it.  :class:`ParticleStack` reads them lazily, in batches,
from memory-mapped MRC stacks (it never loads a whole stack).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.io.mrc import MRCStack, open_mrc_stack
from cryoglass.io.zarr_stack import ZarrStack, open_zarr_stack

__all__ = [
    "ImageLocations",
    "ParticleSet",
    "ParticleStack",
    "check_3d_poses",
    "check_particle_set",
    "image_search_paths",
    "locate_images",
    "make_particle_set",
    "missing_images_message",
    "parse_image_names",
    "read_images",
]


def image_search_paths(
    path_text: str, *, roots: Sequence[str | os.PathLike], datadir: str | os.PathLike | None = None
) -> tuple[Path, ...]:
    """Every place an image file named in metadata is looked for, in order (absolute paths).

    Parameters
    ----------
    path_text : str
        The file part of an image name, as written (``"Extract/job005/mic1.mrcs"``).
    roots : sequence of path-like
        Folders a relative path is resolved against, in order.  The STAR readers pass the
        current folder first (RELION resolves against the folder it runs in: the project
        folder), then the STAR file's folder.
    datadir : path-like, optional
        A folder searched before the others (``--datadir``): ``datadir/path`` and then
        ``datadir/basename`` (as cryoDRGN's ``--datadir``), for stacks moved or copied
        elsewhere.

    Returns
    -------
    tuple of Path
        Distinct absolute candidates; an absolute ``path_text`` is its own (last) candidate.

    Examples
    --------
    >>> [str(p) for p in image_search_paths("Extract/a.mrcs", roots=["/proj", "/proj/Refine"])]
    ['/proj/Extract/a.mrcs', '/proj/Refine/Extract/a.mrcs']
    >>> [str(p) for p in image_search_paths("/old/a.mrcs", roots=["/x"], datadir="/new")]
    ['/new/a.mrcs', '/old/a.mrcs']
    """
    path = Path(path_text)
    tried: list[Path] = []
    if datadir is not None:
        if not path.is_absolute():
            tried.append(Path(datadir) / path)
        tried.append(Path(datadir) / path.name)
    if path.is_absolute():
        tried.append(path)
    else:
        tried.extend(Path(root) / path for root in roots)
    return tuple(dict.fromkeys(Path(os.path.abspath(p)) for p in tried))


@dataclass(frozen=True)
class ImageLocations:
    """Image names resolved to files (what :func:`locate_images` returns).

    Attributes
    ----------
    files : tuple of Path
        Unique image files (absolute), in order of first appearance: for each, the first
        candidate that exists, else the last candidate.
    file_index : Tensor, int64, (N,)
        Position of each particle's file in ``files``.
    index : Tensor, int64, (N,)
        0-based index of each particle inside its file.
    names : tuple of str
        Each file's path as the metadata wrote it (aligned with ``files``).
    tried : tuple of tuple of Path
        Each file's candidates, in the order they were tried (:func:`image_search_paths`).
    """

    files: tuple[Path, ...]
    file_index: torch.Tensor
    index: torch.Tensor
    names: tuple[str, ...]
    tried: tuple[tuple[Path, ...], ...]


def split_image_names(names: Sequence[str], source: str) -> tuple[pd.Series, pd.Series]:
    """``"index@path"`` → (path text, 1-based index) as two Series; a bare path is index 1."""
    series = pd.Series(list(names), dtype=str)
    has_at = series.str.contains("@", regex=False)
    parts = series.str.split("@", n=1, expand=True)
    if parts.shape[1] == 1:
        parts[1] = None
    paths = parts[1].where(has_at, series)
    index = pd.to_numeric(parts[0].where(has_at, "1"), errors="coerce")
    bad = index.isna() | (index < 1) | (index != index.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{source}: row {row}: image name {series.iloc[row]!r} is not 'index@path' with a "
            "1-based integer index"
        )
    return paths, index


def locate_images(
    names: Sequence[str],
    *,
    roots: Sequence[str | os.PathLike],
    datadir: str | os.PathLike | None = None,
    source: str = "image names",
) -> ImageLocations:
    """Resolve RELION image names ``"index@path"`` to files, searching several folders.

    Parameters
    ----------
    names : sequence of str
        ``"000012@Extract/job003/mic1.mrcs"`` (1-based index); a name without ``@`` is a
        single-image file.
    roots, datadir
        Where relative paths are looked for, in order (:func:`image_search_paths`).
    source : str
        Named in error messages (e.g. the STAR file).

    Returns
    -------
    ImageLocations
        A file found nowhere keeps its last candidate; :func:`missing_images_message` names
        every candidate when it is needed.

    Notes
    -----
    Each distinct file is looked up once (a few ``stat`` calls per micrograph stack).
    """
    paths, index = split_image_names(names, source)
    codes, uniques = pd.factorize(paths)
    tried = tuple(image_search_paths(p, roots=roots, datadir=datadir) for p in uniques)
    files = tuple(next((c for c in cand if c.exists()), cand[-1]) for cand in tried)
    return ImageLocations(
        files=files,
        file_index=torch.tensor(np.array(codes), dtype=torch.int64),
        index=torch.tensor(index.to_numpy(dtype=np.int64) - 1, dtype=torch.int64),
        names=tuple(str(p) for p in uniques),
        tried=tried,
    )


def parse_image_names(
    names: Sequence[str],
    *,
    image_root: Path,
    source: str = "image names",
    datadir: str | os.PathLike | None = None,
) -> tuple[tuple[Path, ...], torch.Tensor, torch.Tensor]:
    """Resolve RELION image names ``"index@path"`` (1-based index) to files and 0-based indices.

    Parameters
    ----------
    names : sequence of str
        ``"000012@Extract/job003/mic1.mrcs"``; a name without ``@`` is a single-image file.
    image_root : Path
        Folder that relative paths are resolved against.
    source : str
        Named in error messages (e.g. the STAR file).
    datadir : path-like, optional
        Searched first (:func:`image_search_paths`).

    Returns
    -------
    image_files : tuple of Path
        Unique absolute paths, in order of first appearance.
    image_file_index : Tensor, int64, shape (N,)
        Position of each particle's file in ``image_files``.
    image_index : Tensor, int64, shape (N,)
        0-based index of each particle inside its file.

    See Also
    --------
    locate_images : several folders, and what was tried.
    """
    found = locate_images(names, roots=(image_root,), datadir=datadir, source=source)
    return found.files, found.file_index, found.index


@dataclass(frozen=True, eq=False)
class ParticleSet:
    """Particles' images, pixel sizes, poses and CTF, in cryoglass' convention.

    Change fields with ``dataclasses.replace``; ``write_relion_star`` writes the tensors back.

    Attributes
    ----------
    image_files : tuple of Path
        Unique image files (absolute paths).
    image_file_index : Tensor, int64, shape (N,)
        For each particle, its file's position in ``image_files``.
    image_index : Tensor, int64, shape (N,)
        For each particle, its 0-based index inside that file (RELION's index minus 1).
    pixel_size_angstrom : Tensor, float64, shape (N,)
        Pixel size of each particle image [Å] (from its optics group).
    image_size : int
        Box size [pixels]; images are (image_size, image_size).
    euler_deg : Tensor, float64, shape (N, 3), or None
        RELION Euler angles (rot, tilt, psi) [degrees].
    shift_angstrom : Tensor, float64, shape (N, 2), or None
        (x, y) origin offsets [Å] with RELION 3.1's rlnOriginX/YAngst meaning.
    ctf : CTFParams or None
        Batched CTF parameters (fields of shape (N,)).
    optics_group : Tensor, int64, shape (N,)
        RELION optics group of each particle (1-based ids).
    source_path : Path or None
        The metadata file read (None for sets made in memory).
    image_root : Path
        The metadata file's folder (or the one folder given to the reader): the last place a
        relative image path is looked for (after ``--datadir`` and the current folder,
        ``image_search``), and the default root of :meth:`with_image_names`.
    particles_table, optics_table : pandas.DataFrame or None
        The original tables (RELION column names), kept so that writing preserves the
        columns cryoglass does not interpret.  Never modified in place.
    image_file_names : tuple of str
        Each image file's path as the metadata wrote it (aligned with ``image_files``; empty
        when unknown).  Writers keep these names where they still point at the same files.
    image_search : tuple of tuple of Path
        Each image file's candidates in the order they were looked for (aligned with
        ``image_files``; empty when unknown): what an error about a missing file names.
    in_plane_only : bool
        The poses are 2D alignments (an in-plane angle ψ and a shift, e.g. cryoSPARC
        ``alignments2D`` or a RELION Class2D STAR file), not 3D orientations: ``euler_deg``
        is (0, 0, ψ) and must not be used as a 3D pose.
    """

    image_files: tuple[Path, ...]
    image_file_index: torch.Tensor
    image_index: torch.Tensor
    pixel_size_angstrom: torch.Tensor
    image_size: int
    euler_deg: torch.Tensor | None = None
    shift_angstrom: torch.Tensor | None = None
    ctf: CTFParams | None = None
    optics_group: torch.Tensor | None = None
    source_path: Path | None = None
    image_root: Path = field(default_factory=Path.cwd)
    particles_table: pd.DataFrame | None = field(default=None, repr=False)
    optics_table: pd.DataFrame | None = field(default=None, repr=False)
    image_file_names: tuple[str, ...] = field(default=(), repr=False)
    image_search: tuple[tuple[Path, ...], ...] = field(default=(), repr=False)
    in_plane_only: bool = False

    def __post_init__(self) -> None:
        n = int(self.image_index.shape[0])
        where = self.source_path or "ParticleSet"
        checks = {
            "image_file_index": (self.image_file_index, (n,)),
            "pixel_size_angstrom": (self.pixel_size_angstrom, (n,)),
            "euler_deg": (self.euler_deg, (n, 3)),
            "shift_angstrom": (self.shift_angstrom, (n, 2)),
            "optics_group": (self.optics_group, (n,)),
        }
        for name, (value, shape) in checks.items():
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(
                    f"{where}: {name} has shape {tuple(value.shape)}, expected {shape}"
                )
        if self.particles_table is not None and len(self.particles_table) != n:
            raise ValueError(
                f"{where}: particles_table has {len(self.particles_table)} rows, not {n}"
            )
        for name in ("image_file_names", "image_search"):
            value = getattr(self, name)
            if value and len(value) != len(self.image_files):
                raise ValueError(
                    f"{where}: {name} has {len(value)} entries for {len(self.image_files)} files"
                )
        if self.optics_group is None:
            object.__setattr__(self, "optics_group", torch.ones(n, dtype=torch.int64))

    def __len__(self) -> int:
        return int(self.image_index.shape[0])

    @property
    def image_paths(self) -> list[Path]:
        """The image file of each particle (absolute paths)."""
        return [self.image_files[i] for i in self.image_file_index.tolist()]

    @property
    def image_names(self) -> list[str]:
        """RELION image names ``"000001@/abs/path.mrcs"`` (1-based index), one per particle."""
        files = [str(f) for f in self.image_files]
        return [
            f"{i + 1:06d}@{files[f]}"
            for f, i in zip(self.image_file_index.tolist(), self.image_index.tolist(), strict=True)
        ]

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ParticleSet:
        """The particles at ``indices`` (integer indices or a boolean mask), in that order."""
        idx = torch.as_tensor(indices)
        if idx.dtype == torch.bool:
            idx = torch.nonzero(idx).reshape(-1)
        idx = idx.to(torch.int64).reshape(-1)
        rows = idx.numpy()

        def pick(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value[idx]

        table = self.particles_table
        return dataclasses.replace(
            self,
            image_file_index=self.image_file_index[idx],
            image_index=self.image_index[idx],
            pixel_size_angstrom=self.pixel_size_angstrom[idx],
            euler_deg=pick(self.euler_deg),
            shift_angstrom=pick(self.shift_angstrom),
            ctf=None if self.ctf is None else _ctf_subset(self.ctf, idx, len(self)),
            optics_group=pick(self.optics_group),
            particles_table=None if table is None else table.iloc[rows].reset_index(drop=True),
        )

    def with_image_names(
        self, names: Sequence[str], *, image_root: str | os.PathLike | None = None
    ) -> ParticleSet:
        """A copy pointing at new images ``"index@path"`` (1-based), one name per particle.

        Relative paths resolve against ``image_root`` (default: this set's ``image_root``).
        """
        if len(names) != len(self):
            raise ValueError(f"with_image_names: got {len(names)} names for {len(self)} particles")
        root = Path(image_root) if image_root is not None else self.image_root
        found = locate_images(names, roots=(root,))
        table = self.particles_table
        if table is not None:
            table = table.copy()
            table["rlnImageName"] = list(names)
        return dataclasses.replace(
            self,
            image_files=found.files,
            image_file_index=found.file_index,
            image_index=found.index,
            image_root=root,
            particles_table=table,
            image_file_names=found.names,
            image_search=found.tried,
        )


def _ctf_subset(ctf: CTFParams, idx: torch.Tensor, n: int) -> CTFParams:
    return ctf.expand(n, dtype=torch.float64)[idx]


def make_particle_set(
    image_names: Sequence[str],
    *,
    pixel_size_angstrom: float | torch.Tensor,
    image_size: int,
    euler_deg: torch.Tensor | None = None,
    shift_angstrom: torch.Tensor | None = None,
    ctf: CTFParams | None = None,
    optics_group: torch.Tensor | None = None,
    image_root: str | os.PathLike | None = None,
    image_roots: Sequence[str | os.PathLike] | None = None,
    datadir: str | os.PathLike | None = None,
) -> ParticleSet:
    """Build a :class:`ParticleSet` in memory (e.g. for simulated particles).

    Parameters
    ----------
    image_names : sequence of str
        ``"index@path"`` (1-based index), one per particle.
    pixel_size_angstrom : float or Tensor (N,)
        Pixel size [Å].
    image_size : int
        Box size [pixels].
    euler_deg : Tensor (N, 3), optional
        RELION (rot, tilt, psi) [degrees].
    shift_angstrom : Tensor (N, 2), optional
        RELION 3.1 origin offsets (x, y) [Å].
    ctf : CTFParams, optional
        Scalars or (N,) tensors; expanded to (N,) float64.
    optics_group : Tensor (N,), optional
        Optics group ids (default all 1).
    image_root : path-like, optional
        Folder for relative image paths (default: current folder).
    image_roots : sequence of path-like, optional
        Folders searched in order for relative paths (default: ``image_root`` only).
    datadir : path-like, optional
        Searched before them (:func:`image_search_paths`).
    """
    root = Path(image_root) if image_root is not None else Path.cwd()
    found = locate_images(
        image_names, roots=tuple(image_roots) if image_roots else (root,), datadir=datadir
    )
    n = len(image_names)
    f64 = torch.float64
    pixel = torch.as_tensor(pixel_size_angstrom, dtype=f64).expand(n).clone()
    if ctf is not None:
        ctf = ctf.expand(n, dtype=torch.float64)
    return ParticleSet(
        image_files=found.files,
        image_file_index=found.file_index,
        image_index=found.index,
        pixel_size_angstrom=pixel,
        image_size=int(image_size),
        euler_deg=None if euler_deg is None else torch.as_tensor(euler_deg, dtype=f64),
        shift_angstrom=None
        if shift_angstrom is None
        else torch.as_tensor(shift_angstrom, dtype=f64),
        ctf=ctf,
        optics_group=None
        if optics_group is None
        else torch.as_tensor(optics_group, dtype=torch.int64),
        image_root=root,
        image_file_names=found.names,
        image_search=found.tried,
    )


#: RELION's column of each CTF parameter (for messages about bad values).
_CTF_COLUMNS = {
    "defocus_u_angstrom": "rlnDefocusU",
    "defocus_v_angstrom": "rlnDefocusV",
    "astigmatism_angle_deg": "rlnDefocusAngle",
    "voltage_kv": "rlnVoltage",
    "cs_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
    "phase_shift_deg": "rlnPhaseShift",
    "bfactor_a2": "rlnCtfBfactor",
    "scale": "rlnCtfScalefactor",
}


def _first_bad(values, source: str, column: str) -> None:
    values = torch.as_tensor(values)
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        row = int(bad.reshape(-1).nonzero()[0]) + 1 if values.ndim else 1
        raise ValueError(
            f"{source}: {column} is NaN or infinite for {int(bad.sum())} particle(s) "
            f"(first: particle {row})"
        )


def _check_finite(particles: ParticleSet, *, source: str, poses: bool, ctf: bool) -> None:
    """Refuse NaN/Inf in the CTF parameters, poses and shifts a computation will use."""
    if ctf and particles.ctf is not None:
        for name, column in _CTF_COLUMNS.items():
            _first_bad(getattr(particles.ctf, name), source, column)
    if poses and particles.euler_deg is not None:
        for k, column in enumerate(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
            _first_bad(particles.euler_deg[:, k], source, column)
    if particles.shift_angstrom is not None:
        for k, column in enumerate(("rlnOriginXAngst", "rlnOriginYAngst")):
            _first_bad(particles.shift_angstrom[:, k], source, column)


def check_image_indices(particles: ParticleSet) -> None:
    """Refuse an image index beyond its stack (reads each image file's header only).

    Raises
    ------
    ValueError
        ``"{stack}: image 99 (rlnImageName 99@...) is beyond the stack's 6 images"``.
    """
    from cryoglass.io.mrc import read_mrc_header

    for k, path in enumerate(particles.image_files):
        indices = particles.image_index[particles.image_file_index == k]
        if indices.numel() == 0:
            continue
        if Path(path).is_dir():  # a Zarr store
            from cryoglass.io.zarr_stack import open_zarr_stack

            count = len(open_zarr_stack(path))
        else:
            shape = read_mrc_header(path).shape
            count = int(shape[0]) if len(shape) == 3 else 1
        top = int(indices.max())
        if top >= count or int(indices.min()) < 0:
            bad = top if top >= count else int(indices.min())
            raise ValueError(
                f"{path}: image {bad + 1} (RELION's 1-based index) is beyond the stack's "
                f"{count} images"
            )


def check_particle_set(
    particles: ParticleSet,
    *,
    source: str,
    purpose: str,
    poses: bool = False,
    ctf: bool = False,
    image_sizes: bool = False,
    poses_hint: str = "",
    ctf_hint: str = "",
) -> float:
    """Check what a computation on ``particles`` needs before it starts; return the pixel size.

    Parameters
    ----------
    particles : ParticleSet
    source : str
        Names the particles in messages (their STAR file).
    purpose : str
        What needs them, for messages ("reconstruction", "2D classification", "the VAE").
    poses, ctf : bool
        Require Euler angles / CTF parameters.
    image_sizes : bool
        Also read every image file's header and require the STAR's image size.
    poses_hint, ctf_hint : str
        Appended to the message when poses / CTF are missing (what the user can do).

    Returns
    -------
    float
        The one pixel size [Å].

    Raises
    ------
    ValueError
        No particles; optics groups with pixel sizes more than 1 % apart; missing poses or CTF;
        missing image files; image files of another size.  One line naming the file.
    """
    if len(particles) == 0:
        raise ValueError(f"{source}: no particles")
    pixel = particles.pixel_size_angstrom
    low, high = float(pixel.min()), float(pixel.max())
    if not (math.isfinite(low) and math.isfinite(high) and low > 0):
        raise ValueError(
            f"{source}: pixel size {low if not low > 0 else high:g} Å is not a positive finite "
            "number (rlnImagePixelSize, or --apix)"
        )
    if high - low > 0.01 * low:
        raise ValueError(
            f"{source}: pixel size mismatch between optics groups ({low:.4f}–{high:.4f} Å); "
            f"{purpose} needs one pixel size (rescale the particles)"
        )
    if poses and particles.euler_deg is None:
        raise ValueError(
            f"{source}: {purpose} needs known poses: rlnAngleRot/Tilt/Psi (none in this file)"
            + (f"; {poses_hint}" if poses_hint else "")
        )
    if poses:
        check_3d_poses(particles, source=source, purpose=purpose)
    if ctf and particles.ctf is None:
        raise ValueError(
            f"{source}: {purpose} needs CTF columns (rlnDefocusU, rlnDefocusV)"
            + (f"; {ctf_hint}" if ctf_hint else "")
        )
    _check_finite(particles, source=source, poses=poses, ctf=ctf)
    message = missing_images_message(particles, source=source)
    if message is not None:
        raise ValueError(message)
    check_image_indices(particles)
    if image_sizes:
        from cryoglass.io.mrc import read_mrc_header

        size = particles.image_size
        for path in particles.image_files:
            shape = tuple(int(v) for v in read_mrc_header(path).shape[-2:])
            if shape != (size, size):
                raise ValueError(
                    f"{path}: images are {shape[1]}×{shape[0]} px but {source} says {size} px "
                    "(rlnImageSize); all images must have one size"
                )
    return float(pixel[0])


def check_3d_poses(particles: ParticleSet, *, source: str, purpose: str) -> None:
    """Refuse 2D (in-plane) alignments where 3D orientations are needed.

    Raises
    ------
    ValueError
        ``particles.in_plane_only`` (cryoSPARC ``alignments2D``, a RELION Class2D file): the
        angles are an in-plane ψ, and using them as 3D poses would put every particle at the
        same viewing direction.
    """
    if particles.in_plane_only:
        raise ValueError(
            f"{source}: {purpose} needs 3D poses, but the file holds only 2D alignments (an "
            "in-plane angle per particle: cryoSPARC alignments2D or a 2D classification); use "
            "the particles of a 3D refinement"
        )


def missing_images_message(particles: ParticleSet, *, source: str) -> str | None:
    """One line naming the first missing image file and every path tried; None if all exist.

    Examples
    --------
    >>> p = make_particle_set(["1@Extract/a.mrcs"], pixel_size_angstrom=1.0, image_size=8,
    ...                       image_roots=["/proj", "/proj/Refine3D"])
    >>> print(missing_images_message(p, source="run_data.star"))  # doctest: +NORMALIZE_WHITESPACE
    run_data.star: 1 image file(s) missing: 'Extract/a.mrcs' is in none of /proj/Extract/a.mrcs,
    /proj/Refine3D/Extract/a.mrcs (RELION resolves image paths against the folder it runs in:
    run from the project folder, or give --datadir)
    """
    missing = [j for j, path in enumerate(particles.image_files) if not Path(path).exists()]
    if not missing:
        return None
    return f"{source}: {len(missing)} image file(s) missing: {_not_found(particles, missing[0])}"


def _not_found(particles: ParticleSet, j: int) -> str:
    """Image file ``j`` of ``particles``: its name as written and every path tried."""
    name = particles.image_file_names[j] if particles.image_file_names else None
    tried = particles.image_search[j] if particles.image_search else (particles.image_files[j],)
    what = f"{name!r} is in none of" if name is not None else "not found:"
    return (
        f"{what} {', '.join(str(p) for p in tried)} (RELION resolves image paths against the "
        "folder it runs in: run from the project folder, or give --datadir)"
    )


class ParticleStack:
    """Lazy access to a :class:`ParticleSet`'s images, read in batches from memory-mapped MRCs.

    An image file whose name ends in ``.zarr`` is read as a Zarr store written by
    ``cryoglass stack convert`` (:mod:`cryoglass.io.zarr_stack`), so a STAR file may point at
    ``000042@particles.zarr`` as it points at ``000042@particles.mrcs``.

    Parameters
    ----------
    particles : ParticleSet
    max_open_files : int
        How many MRC files stay memory-mapped at once (least recently used are closed).

    Examples
    --------
    >>> stack = ParticleStack(particle_set)                      # doctest: +SKIP
    >>> for indices, images in stack.iter_batches(256): ...      # doctest: +SKIP
    """

    def __init__(self, particles: ParticleSet, *, max_open_files: int = 32) -> None:
        self.particles = particles
        self.max_open_files = max(1, int(max_open_files))
        self._open: OrderedDict[int, MRCStack | ZarrStack] = OrderedDict()

    def __len__(self) -> int:
        return len(self.particles)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(image_size, image_size)``."""
        return (self.particles.image_size, self.particles.image_size)

    def _stack(self, file_id: int) -> MRCStack | ZarrStack:
        if file_id in self._open:
            self._open.move_to_end(file_id)
            return self._open[file_id]
        path = Path(self.particles.image_files[file_id])
        if not path.exists():
            source = self.particles.source_path or "particle set"
            raise FileNotFoundError(f"{source}: image file {_not_found(self.particles, file_id)}")
        if path.suffix.lower() == ".zarr":  # a store of `cryoglass stack convert`
            stack = open_zarr_stack(path)
        else:
            stack = open_mrc_stack(path)
        if stack.image_shape != self.image_shape:
            stack.close()
            raise ValueError(
                f"{stack.path}: images are {stack.image_shape[0]}x{stack.image_shape[1]} but the "
                f"metadata ({self.particles.source_path or 'particle set'}) says box "
                f"{self.particles.image_size}"
            )
        self._open[file_id] = stack
        while len(self._open) > self.max_open_files:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        return stack

    def read(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Images of the particles at ``indices`` (positions in the set), float32 (B, h, w).

        Images are grouped by file and read in sorted order; the output keeps the order of
        ``indices``.
        """
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        n = len(self.particles)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"particle indices must be in [0, {n}), got {idx.min()}..{idx.max()}")
        file_ids = self.particles.image_file_index[idx]
        within = self.particles.image_index[idx]
        out = torch.empty((idx.numel(), *self.image_shape), dtype=torch.float32)
        for file_id in torch.unique(file_ids).tolist():  # loop over files, not particles
            rows = torch.nonzero(file_ids == file_id).reshape(-1)
            out[rows] = self._stack(file_id).read(within[rows])
        return out

    def iter_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(indices, images)`` over the whole set, ``batch_size`` particles at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self.particles)
        for start in range(0, n, batch_size):
            indices = torch.arange(start, min(start + batch_size, n))
            yield indices, self.read(indices)

    def close(self) -> None:
        """Close every open file."""
        while self._open:
            _, stack = self._open.popitem()
            stack.close()

    def __enter__(self) -> ParticleStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def read_images(particles: ParticleSet, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Read the images of ``particles[indices]`` as float32 (B, h, w) (files opened and closed).

    Parameters
    ----------
    particles : ParticleSet
    indices : Tensor (B,) or sequence of int
        Positions in the particle set (not indices inside the files).

    Returns
    -------
    Tensor, float32, shape (B, image_size, image_size)
    """
    with ParticleStack(particles) as stack:
        return stack.read(indices)
