"""MRC/MRCS files (MRC2014) via ``mrcfile``: read maps and stacks, write them atomically.

Conventions
-----------
* Arrays come back indexed ``[z, y, x]`` (volumes), ``[n, y, x]`` (stacks) or ``[y, x]``
  (single images), whatever order the file stores its axes in.  MRC2014 stores sections,
  rows and columns; header words ``mapc, mapr, maps`` say which physical axis (1 = X, 2 = Y,
  3 = Z) runs along columns, rows and sections.  ``mrcfile`` returns the raw block indexed
  ``[section, row, column]``; :func:`read_mrc` permutes it to ``[z, y, x]``.  Example:
  EMD-3001 has ``mapc, mapr, maps = 3, 1, 2``, mrcfile shape (25, 43, 73) = (Y, X, Z) and our
  shape (73, 25, 43) = (Z, Y, X).
* Voxel sizes are in Å, ordered (x, y, z) (``cella / (mx, my, mz)``).  A voxel size of 0 or
  exactly 1.0 is usually "never set" (RELION and many programs write 1.0 into stacks whose
  real pixel is elsewhere), so :class:`MRCHeaderInfo` flags it (``pixel_size_trusted``).
* Values are returned as float32 (modes 0, 1, 2, 6, 12); complex modes are refused.
  Non-finite values (NaN/Inf) are refused with their count.

Files lacking the ``MAP`` ID string or the machine stamp (older programs, e.g. some RELION 3
stacks) are read, because ``mrcfile`` can still decode them; every other header problem
(truncated data, unknown mode, wrong sizes) is an error that names the file.

References
----------
Cheng et al. (2015) MRC2014: Extensions to the MRC format header for electron cryo-microscopy
and tomography. J. Struct. Biol. 192:146-150. https://doi.org/10.1016/j.jsb.2015.04.002

Burnley, Palmer & Winn (2017) Recent developments in the CCP-EM software suite (mrcfile).
Acta Cryst. D73:469-477. https://doi.org/10.1107/S2059798317007859
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryoglass.io._atomic import atomic_path, atomic_write
from cryoglass.io.outputs import register_input

__all__ = [
    "MRCHeaderInfo",
    "MRCStack",
    "MRCStackWriter",
    "StackStatistics",
    "write_stack_images",
    "check_pixel_size",
    "open_mrc_stack",
    "read_mrc",
    "read_mrc_header",
    "write_mrc",
]

# Warnings from mrcfile's permissive mode that still leave a readable file.
_TOLERATED_WARNINGS = ("Map ID string not found", "Unrecognised machine stamp")
_REAL_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}
_COMPLEX_MODES = {3: "complex int16", 4: "complex float32"}
_UNSET_PIXEL_SIZES = (0.0, 1.0)


@dataclass(frozen=True)
class MRCHeaderInfo:
    """What cryoglass keeps from an MRC header.

    Attributes
    ----------
    path : Path
        The file.
    shape : tuple of int
        Shape of the array :func:`read_mrc` returns, ``(d, h, w)``, ``(n, h, w)`` or ``(h, w)``.
    mode : int
        MRC data mode (0 int8, 1 int16, 2 float32, 6 uint16, 12 float16).
    voxel_size_angstrom : tuple of float
        (x, y, z) voxel size [Å] from ``cella / (mx, my, mz)``.
    pixel_size_trusted : bool
        False when the voxel size is 0 or exactly 1.0 (usually unset) or anisotropic in x/y.
    axis_order : tuple of int
        ``(mapc, mapr, maps)`` as stored (1, 2, 3 is standard).
    origin_start : tuple of int
        ``(nxstart, nystart, nzstart)`` as stored.
    space_group : int
        ``ispg`` (0 for image stacks, 1 for single-particle volumes).
    extended_header_bytes : int
        ``nsymbt``.
    dmin, dmax, dmean, rms : float
        Statistics stored in the header (not recomputed).
    is_stack : bool
        True when the header marks an image stack (``ispg == 0``, ``mz == 1``) or the file
        holds a single image.
    cell_angles_deg : tuple of float
        (α, β, γ) of the unit cell [degrees] (``cellb``); 90, 90, 90 for orthogonal maps
        (0, 0, 0, "unset", is read as 90).
    """

    path: Path
    shape: tuple[int, ...]
    mode: int
    voxel_size_angstrom: tuple[float, float, float]
    pixel_size_trusted: bool
    axis_order: tuple[int, int, int]
    origin_start: tuple[int, int, int]
    space_group: int
    extended_header_bytes: int
    dmin: float
    dmax: float
    dmean: float
    rms: float
    is_stack: bool
    cell_angles_deg: tuple[float, float, float] = (90.0, 90.0, 90.0)

    @property
    def orthogonal(self) -> bool:
        """Whether the cell's axes are perpendicular (all angles 90°)."""
        return all(abs(a - 90.0) < 1e-3 for a in self.cell_angles_deg)

    @property
    def pixel_size_angstrom(self) -> float | None:
        """The x voxel size [Å], or None when it is not trusted (0, 1.0 or anisotropic)."""
        return self.voxel_size_angstrom[0] if self.pixel_size_trusted else None


def _open(path: Path, *, mmap: bool) -> mrcfile.mrcfile.MrcFile:
    """Open strictly; retry permissively only for the harmless ID/machine-stamp problems."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MRC file not found")
    register_input(path)
    opener = mrcfile.mmap if mmap else mrcfile.open
    try:
        return opener(path, mode="r", permissive=False)
    except ValueError as strict_error:
        if not any(text in str(strict_error) for text in _TOLERATED_WARNINGS):
            raise ValueError(f"{path}: not a readable MRC file: {strict_error}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mrc = opener(path, mode="r", permissive=True)
    problems = [str(w.message) for w in caught]
    fatal = [p for p in problems if not any(text in p for text in _TOLERATED_WARNINGS)]
    if fatal or mrc.data is None:
        mrc.close()
        reason = "; ".join(fatal) or "no data block"
        raise ValueError(f"{path}: corrupt or truncated MRC file: {reason}")
    return mrc


def _check_mode(path: Path, mode: int) -> None:
    if mode in _COMPLEX_MODES:
        raise ValueError(
            f"{path}: MRC mode {mode} ({_COMPLEX_MODES[mode]}) is complex; cryoglass reads real "
            "maps and images only"
        )
    if mode not in _REAL_MODES:
        raise ValueError(f"{path}: unsupported MRC mode {mode}")


def _is_image_stack(path: Path, mrc: mrcfile.mrcfile.MrcFile) -> bool:
    """Whether 3D data are a stack of images (``ispg = 0``) rather than a volume.

    RELION 3.1 writes its *maps* (relion_reconstruct, relion_refine) with ``ispg = 0`` too, and
    tells maps from stacks by the extension: ``.mrcs`` is a stack, ``.mrc``/``.map`` a map.
    So a ``.mrc``/``.map`` file with ``ispg = 0`` and ``mz = nz > 1`` (one volume of ``nz``
    sections, as RELION writes it) is read as a volume; stacks written with ``mz = 1`` (as
    cryoglass and mrcfile write them) stay stacks whatever the extension.
    """
    if not mrc.is_image_stack():
        return False
    header = mrc.header
    relion_map = path.suffix.lower() in (".mrc", ".map") and int(header.mz) == int(header.nz) > 1
    return not relion_map


def _header_info(path: Path, mrc: mrcfile.mrcfile.MrcFile, shape: tuple[int, ...]) -> MRCHeaderInfo:
    header = mrc.header
    voxel = mrc.voxel_size
    voxel_xyz = (float(voxel.x), float(voxel.y), float(voxel.z))
    trusted = (
        voxel_xyz[0] not in _UNSET_PIXEL_SIZES
        and np.isfinite(voxel_xyz[0])
        and abs(voxel_xyz[0] - voxel_xyz[1]) <= 1e-4 * abs(voxel_xyz[0])
    )
    return MRCHeaderInfo(
        path=path,
        shape=shape,
        mode=int(header.mode),
        voxel_size_angstrom=voxel_xyz,
        pixel_size_trusted=bool(trusted),
        axis_order=(int(header.mapc), int(header.mapr), int(header.maps)),
        origin_start=(int(header.nxstart), int(header.nystart), int(header.nzstart)),
        space_group=int(header.ispg),
        extended_header_bytes=int(header.nsymbt),
        dmin=float(header.dmin),
        dmax=float(header.dmax),
        dmean=float(header.dmean),
        rms=float(header.rms),
        is_stack=bool(_is_image_stack(path, mrc) or mrc.is_single_image()),
        cell_angles_deg=_cell_angles(header),
    )


def _cell_angles(header) -> tuple[float, float, float]:
    angles = tuple(float(header.cellb[name]) for name in ("alpha", "beta", "gamma"))
    return (90.0, 90.0, 90.0) if all(a == 0 for a in angles) else angles


def _zyx_permutation(path: Path, axis_order: tuple[int, int, int]) -> tuple[int, int, int]:
    """Permutation taking the stored [section, row, column] block to [z, y, x]."""
    mapc, mapr, maps = axis_order
    stored = (maps, mapr, mapc)  # physical axis (1=X, 2=Y, 3=Z) of stored dims 0, 1, 2
    if sorted(stored) != [1, 2, 3]:
        raise ValueError(f"{path}: invalid axis order mapc/mapr/maps = {axis_order}")
    return (stored.index(3), stored.index(2), stored.index(1))


def _to_float_tensor(path: Path, array: np.ndarray) -> torch.Tensor:
    data = torch.from_numpy(np.asarray(array, dtype=np.float32).copy())
    _check_finite(path, data)
    return data


def _check_finite(path: Path | str, data: torch.Tensor) -> None:
    finite = torch.isfinite(data)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"{path}: {bad} non-finite values (NaN or Inf) in the data")


def read_mrc(path: str | os.PathLike) -> tuple[torch.Tensor, MRCHeaderInfo]:
    """Read an MRC map, image or stack as a float32 tensor indexed [z, y, x].

    Parameters
    ----------
    path : path-like
        ``.mrc``, ``.mrcs`` or ``.map`` file.

    Returns
    -------
    data : Tensor, float32, shape (d, h, w), (n, h, w) or (h, w)
        Values in [z, y, x] order (the file's mapc/mapr/maps permutation undone for volumes).
    info : MRCHeaderInfo
        Header values (voxel size in Å, axis order, statistics).

    Raises
    ------
    ValueError
        Truncated or corrupt file, complex or unknown mode, NaN/Inf values; the message
        names the file.

    Notes
    -----
    Stacks (``ispg = 0``) are never permuted: their third axis counts images.  RELION's maps
    (``.mrc`` with ``ispg = 0`` and ``mz = nz``) are volumes (:func:`_is_image_stack`).
    """
    path = Path(path)
    with _open(path, mmap=False) as mrc:
        _check_mode(path, int(mrc.header.mode))
        array = mrc.data
        axis_order = (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps))
        if array.ndim == 3 and axis_order != (1, 2, 3) and not _is_image_stack(path, mrc):
            array = np.transpose(array, _zyx_permutation(path, axis_order))
        data = _to_float_tensor(path, array)
        info = _header_info(path, mrc, tuple(data.shape))
    return data, info


def read_mrc_header(path: str | os.PathLike) -> MRCHeaderInfo:
    """Read only the header summary of an MRC file (the data are memory-mapped, not loaded)."""
    path = Path(path)
    with _open(path, mmap=True) as mrc:
        _check_mode(path, int(mrc.header.mode))
        shape = tuple(int(s) for s in mrc.data.shape)
        axis_order = (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps))
        if len(shape) == 3 and axis_order != (1, 2, 3) and not _is_image_stack(path, mrc):
            shape = tuple(shape[i] for i in _zyx_permutation(path, axis_order))
        return _header_info(path, mrc, shape)


#: Header words a written map takes from its template (``write_mrc(header_from=...)``):
#: everything about the geometry and provenance; the data's shape, mode and statistics are
#: the new data's.
_TEMPLATE_FIELDS = (
    "mx",
    "my",
    "mz",
    "cella",
    "cellb",
    "mapc",
    "mapr",
    "maps",
    "ispg",
    "nxstart",
    "nystart",
    "nzstart",
    "origin",
    "exttyp",
    "nlabl",
    "label",
)


def _template(path: Path) -> tuple[np.recarray, np.ndarray, tuple[int, int, int], bool]:
    """(header, extended header, axis order, is_stack) of an existing MRC file."""
    with _open(path, mmap=True) as mrc:
        header = mrc.header.copy()
        extended = np.array(mrc.extended_header).copy()
        axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
        return header, extended, axis_order, bool(_is_image_stack(path, mrc))


def write_mrc(
    path: str | os.PathLike,
    data: torch.Tensor,
    *,
    pixel_size_angstrom: float | None = None,
    overwrite: bool = False,
    stack: bool = False,
    dtype: torch.dtype = torch.float32,
    header_from: str | os.PathLike | None = None,
) -> Path:
    """Write a map, image or image stack to an MRC file, atomically.

    Parameters
    ----------
    path : path-like
        Output file; refused if it exists unless ``overwrite``.
    data : Tensor, shape (d, h, w), (n, h, w) or (h, w)
        Real values indexed [z, y, x] (or [n, y, x] with ``stack=True``).
    pixel_size_angstrom : float, optional
        Voxel size [Å] written to the header (isotropic).  Required without
        ``header_from``; with it, it replaces the template's cell (else the cell is kept).
    overwrite : bool
        Replace an existing file.
    stack : bool
        Mark a 3D array as an image stack (``ispg = 0``, ``mz = 1``), as for ``.mrcs``.
    dtype : torch.float32 or torch.float16
        Stored precision (mode 2 or 12).
    header_from : path-like, optional
        An MRC file of the same shape whose header the output keeps: cell and sampling
        (``cella``, ``cellb``, ``mx/my/mz``, so per-axis voxel sizes and non-cubic cells),
        axis order (``mapc/mapr/maps``; the data are stored back in that order), origin
        (``nxstart…``, ``origin``), space group, extended header and labels.  Mode and
        statistics are the new data's.  For operations that change values, not geometry
        (filters, sharpening).

    Returns
    -------
    Path
        The written file.  Header statistics (dmin, dmax, dmean, rms) are computed.

    Raises
    ------
    ValueError
        Non-finite or complex data, no pixel size, a template of another shape.
    """
    data = torch.as_tensor(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"{path}: data must be 2D or 3D, got shape {tuple(data.shape)}")
    if data.is_complex():
        raise ValueError(f"{path}: complex data cannot be written; take the real part first")
    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"{path}: dtype must be torch.float32 or torch.float16, got {dtype}")
    if pixel_size_angstrom is None and header_from is None:
        raise ValueError(f"{path}: give pixel_size_angstrom (or a header_from template)")
    if pixel_size_angstrom is not None and not pixel_size_angstrom > 0:
        raise ValueError(f"{path}: pixel_size_angstrom must be > 0, got {pixel_size_angstrom}")
    _check_finite(path, data)
    array = data.detach().to("cpu", dtype).numpy()
    template = None
    if header_from is not None:
        header_from = Path(header_from)
        template = _template(header_from)
        header, _, axis_order, template_stack = template
        if array.ndim == 3 and axis_order != (1, 2, 3) and not template_stack:
            array = np.transpose(array, np.argsort(_zyx_permutation(header_from, axis_order)))
        stored = (int(header.nz), int(header.ny), int(header.nx))[3 - array.ndim :]
        if tuple(array.shape) != stored:
            raise ValueError(
                f"{path}: data of shape {tuple(data.shape)} do not fit the header of "
                f"{header_from} (stored shape {stored})"
            )

    def _write(tmp: Path) -> None:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            if template is not None and template[1].size:
                mrc.set_extended_header(template[1])
            mrc.set_data(np.ascontiguousarray(array))
            if template is not None:
                for name in _TEMPLATE_FIELDS:
                    mrc.header[name] = template[0][name]
            elif stack and array.ndim == 3:
                mrc.set_image_stack()
            if pixel_size_angstrom is not None:
                mrc.voxel_size = float(pixel_size_angstrom)
            mrc.update_header_stats()

    return atomic_write(path, _write, overwrite=overwrite)


@dataclass(frozen=True)
class StackStatistics:
    """Running header statistics of an image stack: count, Σx, Σx², min and max (float64).

    Partial statistics of disjoint image ranges add with :meth:`merge` (in any order), so a
    stack written in chunks, by one process or many, gets the header of the whole.
    """

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    @classmethod
    def of(cls, images: np.ndarray) -> StackStatistics:
        """Statistics of an array of values (any shape)."""
        return cls(
            count=int(images.size),
            total=float(images.sum(dtype=np.float64)),
            total_sq=float(np.square(images, dtype=np.float64).sum()),
            low=float(images.min()) if images.size else math.inf,
            high=float(images.max()) if images.size else -math.inf,
        )

    def merge(self, other: StackStatistics) -> StackStatistics:
        """Statistics of both ranges together."""
        return StackStatistics(
            self.count + other.count,
            self.total + other.total,
            self.total_sq + other.total_sq,
            min(self.low, other.low),
            max(self.high, other.high),
        )

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)

    @property
    def rms(self) -> float:
        """Standard deviation about the mean (the MRC header's ``rms``)."""
        return math.sqrt(max(self.total_sq / max(self.count, 1) - self.mean**2, 0.0))


def _images_as_float32(path, images) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise ValueError(f"{path}: {bad} non-finite value(s) (NaN or inf) in the images to write")
    return array


def write_stack_images(
    path: str | os.PathLike,
    images: torch.Tensor | np.ndarray,
    *,
    start: int,
    data_offset: int,
    n_images: int,
    byte_order: str = "<",
) -> StackStatistics:
    """Write images into rows ``start …`` of a pre-sized stack (e.g. from a Dask worker).

    The file is the temporary file of an open :class:`MRCStackWriter`
    (``writer.temporary_path``, ``writer.data_offset``); the writer adds the returned
    statistics with :meth:`MRCStackWriter.add_statistics` and renames the file when complete.

    Parameters
    ----------
    path : path-like
    images : (b, h, w) float tensor or array
    start : int
        0-based index of the first image.
    data_offset : int
        Byte offset of image 0 (header + extended header).
    n_images : int
        Length of the stack (a range past it is refused).
    byte_order : str
        ``"<"`` or ``">"``, the file's.

    Returns
    -------
    StackStatistics
        Of the images written.
    """
    array = _images_as_float32(path, images)
    if start < 0 or start + len(array) > n_images:
        raise IndexError(
            f"{path}: images {start}..{start + len(array) - 1} are outside the stack of {n_images}"
        )
    image_bytes = array.shape[-1] * array.shape[-2] * 4
    # plain writes, not a memory map: the writing process then holds one chunk at a time
    # (a memory map counts every written page in the process's resident memory)
    with open(path, "r+b") as handle:
        handle.seek(data_offset + start * image_bytes)
        handle.write(
            np.ascontiguousarray(array, dtype=np.dtype("f4").newbyteorder(byte_order)).tobytes()
        )
    return StackStatistics.of(array)


class MRCStackWriter:
    """Stream an image stack (``.mrcs``, mode 2) to disk, range by range; atomic on close.

    The one streaming stack writer of cryoglass (``simulate``, ``project``, the Dask jobs).
    The file is created at full size under a temporary name beside ``path``; images are written
    at their rows in any order (:meth:`write`, or :func:`write_stack_images` from other
    processes); :meth:`close` writes the header statistics and renames the file to ``path``.
    If the ``with`` block raises (or :meth:`abort` is called) the temporary file is removed.

    Parameters
    ----------
    path : path-like
        Final ``.mrcs`` file; refused if it exists unless ``overwrite``.
    n_images : int
    image_shape : (h, w)
    pixel_size_angstrom : float
    overwrite : bool

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "s.mrcs"
    >>> with MRCStackWriter(out, n_images=3, image_shape=(4, 4), pixel_size_angstrom=2.0) as w:
    ...     w.write(0, torch.zeros(2, 4, 4))
    ...     w.write(2, torch.ones(1, 4, 4))
    >>> read_mrc(out)[0].shape
    torch.Size([3, 4, 4])
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_images: int,
        image_shape: tuple[int, int],
        pixel_size_angstrom: float,
        overwrite: bool = False,
    ) -> None:
        if n_images < 1:
            raise ValueError(f"{path}: a stack needs at least one image, got {n_images}")
        if not pixel_size_angstrom > 0:
            raise ValueError(f"{path}: pixel_size_angstrom must be > 0, got {pixel_size_angstrom}")
        self.path = Path(path)
        self.n_images = int(n_images)
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.statistics = StackStatistics()
        self._exit = contextlib.ExitStack()
        self.temporary_path: Path = self._exit.enter_context(
            atomic_path(self.path, overwrite=overwrite, suffix=".mrcs.tmp")
        )
        try:
            with mrcfile.new_mmap(
                self.temporary_path,
                shape=(self.n_images, *self.image_shape),
                mrc_mode=2,
                overwrite=True,
            ) as mrc:
                mrc.set_image_stack()
                mrc.voxel_size = float(pixel_size_angstrom)
                self.data_offset = int(mrc.header.nbytes) + int(mrc.header.nsymbt)
                self.byte_order = "<" if mrc.data.dtype.byteorder in "<=|" else ">"
        except BaseException:
            self.abort()
            raise

    def write(self, start: int, images: torch.Tensor | np.ndarray) -> None:
        """Write ``images`` (b, h, w) at rows ``start … start + b − 1``."""
        stats = write_stack_images(
            self.temporary_path,
            images,
            start=start,
            data_offset=self.data_offset,
            n_images=self.n_images,
            byte_order=self.byte_order,
        )
        self.statistics = self.statistics.merge(stats)

    def add_statistics(self, statistics: StackStatistics) -> None:
        """Count images another process wrote with :func:`write_stack_images`."""
        self.statistics = self.statistics.merge(statistics)

    def close(self) -> Path:
        """Write the header statistics and move the stack to ``path``; returns ``path``."""
        stats = self.statistics
        with mrcfile.mmap(self.temporary_path, mode="r+") as mrc:
            mrc.header.dmin, mrc.header.dmax = stats.low, stats.high
            mrc.header.dmean, mrc.header.rms = stats.mean, stats.rms
        self._exit.close()
        return self.path

    def abort(self) -> None:
        """Remove the temporary file; ``path`` is left as it was."""
        error = RuntimeError(f"{self.path}: writing aborted")
        try:
            self._exit.__exit__(RuntimeError, error, None)
        except RuntimeError as raised:
            if raised is not error:
                raise

    def __enter__(self) -> MRCStackWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class MRCStack:
    """A memory-mapped MRC image stack: images are read on demand, never all at once.

    Use :func:`open_mrc_stack`.  Indexing follows numpy/torch (0-based).  A 2D file counts as
    a stack of one image.  Close it (or use ``with``) to release the file.

    Attributes
    ----------
    path : Path
    info : MRCHeaderInfo
    image_shape : tuple of int
        ``(h, w)``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._mrc = _open(self.path, mmap=True)
        try:
            _check_mode(self.path, int(self._mrc.header.mode))
            data = self._mrc.data
            self._data = data[None] if data.ndim == 2 else data
            self.info = _header_info(self.path, self._mrc, tuple(self._data.shape))
        except BaseException:
            self._mrc.close()
            raise
        self.image_shape: tuple[int, int] = (int(self._data.shape[1]), int(self._data.shape[2]))

    def __len__(self) -> int:
        return int(self._data.shape[0])

    def read(self, indices: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
        """Images at 0-based ``indices`` as a float32 tensor (B, h, w), in the order given.

        Raises
        ------
        IndexError
            An index is negative or past the end; the message names the file, the index
            and the stack length.
        ValueError
            The selected images contain NaN/Inf.
        """
        idx = np.asarray(torch.as_tensor(indices, dtype=torch.int64).cpu().numpy()).reshape(-1)
        n = len(self)
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            first = int(idx[bad][0])
            raise IndexError(
                f"{self.path}: image index {first} (0-based; RELION index {first + 1}) is "
                f"outside the stack of {n} images"
            )
        order = np.argsort(idx, kind="stable")
        block = np.empty((idx.size, *self.image_shape), dtype=np.float32)
        block[order] = self._data[idx[order]]  # sorted reads touch the file sequentially
        images = torch.from_numpy(block)
        _check_finite(self.path, images)
        return images

    def close(self) -> None:
        """Release the memory map and the file."""
        self._mrc.close()

    def __enter__(self) -> MRCStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_mrc_stack(path: str | os.PathLike) -> MRCStack:
    """Open an MRC/MRCS image stack lazily (memory-mapped).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    MRCStack
        ``len(stack)`` images of shape ``stack.image_shape``; ``stack.read(indices)`` returns
        a float32 tensor (B, h, w).
    """
    return MRCStack(path)


def check_pixel_size(
    star_pixel_size_angstrom: float,
    header_pixel_size_angstrom: float | None,
    *,
    tolerance: float = 0.01,
    source: str = "",
) -> None:
    """Raise if a metadata pixel size and an MRC header pixel size disagree.

    The header value is only compared when it is meaningful: None, 0 and exactly 1.0 are
    treated as "unset" and accepted.

    Parameters
    ----------
    star_pixel_size_angstrom : float
        Pixel size from the metadata (e.g. rlnImagePixelSize) [Å].
    header_pixel_size_angstrom : float or None
        Pixel size from the MRC header [Å].
    tolerance : float
        Allowed relative difference |a - b| / a.
    source : str
        Names the files involved, for the message.

    Raises
    ------
    ValueError
        The relative difference exceeds ``tolerance``.
    """
    if header_pixel_size_angstrom is None or header_pixel_size_angstrom in _UNSET_PIXEL_SIZES:
        return
    star = float(star_pixel_size_angstrom)
    header = float(header_pixel_size_angstrom)
    if abs(star - header) > tolerance * abs(star):
        where = f"{source}: " if source else ""
        raise ValueError(
            f"{where}pixel size disagreement: metadata says {star:.4f} Å, MRC header says "
            f"{header:.4f} Å (relative tolerance {tolerance})"
        )
