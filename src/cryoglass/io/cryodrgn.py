"""cryoDRGN's pose and CTF pickles ↔ cryoglass' convention (for interoperability only).

Formats (as written by cryoDRGN's ``parse_pose_star``/``parse_pose_csparc``/``parse_ctf_*``)
-----------------------------------------------------------------------------------------
* ``poses.pkl``: a tuple ``(R, t)``; ``R`` (N, 3, 3) equals RELION's Euler matrix ``A``;
  ``t`` (N, 2) is RELION's origin in **fractions of the box**: ``t = rlnOrigin[px] / D``.
  So ``shift_angstrom = t · D · pixel_size``.  (Some files hold only ``R``.)
* ``ctf.pkl``: a float32 array (N, 9) with columns
  ``D, Apix [Å], dfU [Å], dfV [Å], dfAngle [deg], kV, Cs [mm], Q0, phase shift [deg]``.
* Images: an MRC stack, or a ``.txt`` list of stacks (paths relative to the list's folder),
  read in order; particle i of the pickles is image i.

From a STAR file, :func:`write_cryodrgn_poses` and :func:`write_cryodrgn_ctf` give the arrays
of cryoDRGN's ``parse_pose_star`` and ``parse_ctf_star``: ``R`` = RELION's matrix of
(rot, tilt, psi) in float64, ``t = rlnOrigin[px] / D`` in float64, the CTF table in float32.
Two details differ, both where cryoDRGN's output is not a number one would want: a STAR file
without rlnPhaseShift gives phase 0 here (cryoDRGN 4 writes NaN), and Å origins are divided by
the float64 pixel size (cryoDRGN 4 divides by its float32 rounding, a relative difference
below 10⁻⁷).

Security
--------
Python pickles can run arbitrary code when loaded.  These readers use a restricted
unpickler that only rebuilds numpy arrays, tuples and lists, and refuses anything else.  Still,
load pickles only from sources you trust; cryoglass never writes pickles except for cryoDRGN.

References
----------
Zhong et al. (2021) CryoDRGN: reconstruction of heterogeneous cryo-EM structures using neural
networks. Nat. Methods 18:176-185. https://doi.org/10.1038/s41592-020-01049-4
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.geometry.euler import euler_to_matrix, matrix_to_euler
from cryoglass.io._atomic import atomic_write
from cryoglass.io.outputs import register_input

__all__ = [
    "cryodrgn_pickle_kind",
    "read_cryodrgn_ctf",
    "read_cryodrgn_particles",
    "read_cryodrgn_poses",
    "write_cryodrgn_ctf",
    "write_cryodrgn_poses",
]

_F64 = torch.float64
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "tuple"),
    ("builtins", "list"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays (and tuples/lists of them) and nothing else."""

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pickle")


def _load_pickle(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    register_input(path)
    try:
        with open(path, "rb") as handle:
            return _ArrayUnpickler(io.BytesIO(handle.read())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: not a cryoDRGN pickle of numpy arrays: {error}") from error


def read_cryodrgn_poses(
    path: str | os.PathLike, *, image_size: int, pixel_size_angstrom: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read a cryoDRGN ``poses.pkl`` as RELION Euler angles and shifts in Å.

    Parameters
    ----------
    path : path-like
    image_size : int
        Box size D [px] the translations were divided by.
    pixel_size_angstrom : float or Tensor (N,)
        Pixel size [Å].

    Returns
    -------
    euler_deg : Tensor, float64, shape (N, 3)
        (rot, tilt, psi) [degrees] with ``euler_to_matrix(euler_deg) = R``.
    shift_angstrom : Tensor, float64, shape (N, 2), or None
        ``t · D · pixel_size`` (RELION 3.1 origin meaning); None if the file has no ``t``.
    """
    path = Path(path)
    content = _load_pickle(path)
    if isinstance(content, np.ndarray):
        rotations, translations = content, None
    elif isinstance(content, tuple | list) and len(content) in (1, 2):
        rotations = content[0]
        translations = content[1] if len(content) == 2 else None
    else:
        raise ValueError(f"{path}: expected (R, t) or R in a cryoDRGN pose pickle")
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.ndim != 3 or rotations.shape[1:] != (3, 3):
        raise ValueError(f"{path}: R must have shape (N, 3, 3), got {rotations.shape}")
    euler = matrix_to_euler(torch.as_tensor(rotations))
    if translations is None:
        return euler, None
    t = torch.as_tensor(np.asarray(translations, dtype=np.float64))
    if tuple(t.shape) != (rotations.shape[0], 2):
        raise ValueError(
            f"{path}: t must have shape ({rotations.shape[0]}, 2), got {tuple(t.shape)}"
        )
    pixel = torch.as_tensor(pixel_size_angstrom, dtype=_F64).reshape(-1, 1)
    return euler, t * image_size * pixel


def write_cryodrgn_poses(
    path: str | os.PathLike,
    euler_deg: torch.Tensor,
    shift_angstrom: torch.Tensor | None,
    *,
    image_size: int,
    pixel_size_angstrom: float | torch.Tensor,
    overwrite: bool = False,
) -> Path:
    """Write poses as a cryoDRGN ``poses.pkl``: ``(R, t)`` with ``t = shift / (D · pixel)``.

    Parameters
    ----------
    path : path-like
    euler_deg : Tensor (N, 3)
        RELION (rot, tilt, psi) [degrees].
    shift_angstrom : Tensor (N, 2) or None
        RELION 3.1 origin [Å]; None writes zeros.
    image_size : int
        Box size D [px].
    pixel_size_angstrom : float or Tensor (N,)
    overwrite : bool
    """
    euler = torch.as_tensor(euler_deg, dtype=_F64)
    rotations = euler_to_matrix(euler).numpy()
    if shift_angstrom is None:
        t = np.zeros((euler.shape[0], 2))
    else:
        pixel = torch.as_tensor(pixel_size_angstrom, dtype=_F64).reshape(-1, 1)
        t = (torch.as_tensor(shift_angstrom, dtype=_F64) / (image_size * pixel)).numpy()

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            pickle.dump((rotations, t), handle)

    return atomic_write(path, _write, overwrite=overwrite)


def read_cryodrgn_ctf(path: str | os.PathLike) -> tuple[CTFParams, int, torch.Tensor]:
    """Read a cryoDRGN ``ctf.pkl`` (N, 9).

    Returns
    -------
    ctf : CTFParams
        float64 fields of shape (N,).
    image_size : int
        D (column 0; must be the same for all rows).
    pixel_size_angstrom : Tensor, float64, shape (N,)
        Apix (column 1).
    """
    path = Path(path)
    array = _load_pickle(path)
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 9:
        shape = getattr(array, "shape", type(array).__name__)
        raise ValueError(f"{path}: expected a cryoDRGN CTF array of shape (N, 9), got {shape}")
    values = torch.as_tensor(array.astype(np.float64))
    sizes = torch.unique(values[:, 0]).tolist()
    if len(sizes) != 1:
        raise ValueError(f"{path}: rows have different box sizes {sizes}")
    ctf = CTFParams(
        defocus_u_angstrom=values[:, 2],
        defocus_v_angstrom=values[:, 3],
        astigmatism_angle_deg=values[:, 4],
        voltage_kv=values[:, 5],
        cs_mm=values[:, 6],
        amplitude_contrast=values[:, 7],
        phase_shift_deg=values[:, 8],
    )
    return ctf, int(sizes[0]), values[:, 1].clone()


def write_cryodrgn_ctf(
    path: str | os.PathLike,
    ctf: CTFParams,
    *,
    image_size: int,
    pixel_size_angstrom: float | torch.Tensor,
    overwrite: bool = False,
) -> Path:
    """Write CTF parameters as a cryoDRGN ``ctf.pkl`` (float32, (N, 9)).

    B-factor and scale are not part of cryoDRGN's format and are dropped.
    """
    n = int(ctf.batch_shape.numel()) if len(ctf.batch_shape) else 1
    columns = [
        torch.full((n,), float(image_size), dtype=_F64),
        torch.as_tensor(pixel_size_angstrom, dtype=_F64).expand(n),
        *(
            torch.as_tensor(getattr(ctf, name), dtype=_F64).expand(n)
            for name in (
                "defocus_u_angstrom",
                "defocus_v_angstrom",
                "astigmatism_angle_deg",
                "voltage_kv",
                "cs_mm",
                "amplitude_contrast",
                "phase_shift_deg",
            )
        ),
    ]
    array = torch.stack(columns, dim=-1).numpy().astype(np.float32)

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            pickle.dump(array, handle)

    return atomic_write(path, _write, overwrite=overwrite)


def cryodrgn_pickle_kind(path: str | os.PathLike) -> str:
    """``"poses"`` for an ``(R, t)``/``R`` pickle, ``"ctf"`` for an (N, 9) CTF table.

    Raises
    ------
    ValueError
        Anything else (the message names the file).
    """
    path = Path(path)
    content = _load_pickle(path)
    if isinstance(content, np.ndarray) and content.ndim == 2 and content.shape[1] == 9:
        return "ctf"
    if isinstance(content, np.ndarray) and content.ndim == 3:
        return "poses"
    if isinstance(content, tuple | list) and len(content) in (1, 2):
        return "poses"
    raise ValueError(f"{path}: neither cryoDRGN poses (R, t) nor a CTF table (N, 9)")


def _stack_files(stack: Path) -> list[tuple[Path, int, int, float | None]]:
    """(file as named, images, box, header pixel size or None) for a stack or a .txt list.

    A ``.txt`` list names stacks relative to its own folder (cryoDRGN's rule); the files are
    returned as paths relative to the current folder when the list's were, so that a STAR file
    written from here keeps them relative.
    """
    from cryoglass.io.mrc import read_mrc_header

    if stack.suffix.lower() == ".txt":
        if not stack.is_file():
            raise FileNotFoundError(f"{stack}: stack list not found")
        register_input(stack)
        entries = [line.strip() for line in stack.read_text().splitlines() if line.strip()]
        if not entries:
            raise ValueError(f"{stack}: the list names no stacks")
        paths = [Path(e) if Path(e).is_absolute() else stack.parent / e for e in entries]
    else:
        paths = [stack]
    out = []
    for path in paths:
        info = read_mrc_header(path)
        shape = info.shape if len(info.shape) == 3 else (1, *info.shape)
        if shape[-1] != shape[-2]:
            raise ValueError(f"{path}: images are {shape[-1]}×{shape[-2]} px, not square")
        out.append((path, int(shape[0]), int(shape[-1]), info.pixel_size_angstrom))
    boxes = sorted({box for _, _, box, _ in out})
    if len(boxes) != 1:
        raise ValueError(f"{stack}: stacks of different box sizes {boxes}")
    return out


def read_cryodrgn_particles(
    stack: str | os.PathLike,
    *,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
    pixel_size_angstrom: float | None = None,
):
    """cryoDRGN's inputs — an image stack, ``poses.pkl``, ``ctf.pkl`` — as one ParticleSet.

    Parameters
    ----------
    stack : path-like
        MRC stack (``.mrcs``/``.mrc``) or ``.txt`` list of stacks; image i is particle i.
    poses : path-like, optional
        ``(R, t)`` pickle (``t`` in fractions of the box D).
    ctf : path-like, optional
        (N, 9) CTF pickle; gives D (checked against the stack) and the pixel size.
    pixel_size_angstrom : float, optional
        Pixel size [Å]; default the CTF table's Apix, else the stack header.

    Returns
    -------
    ParticleSet
        Optics groups: one per distinct (voltage, Cs, Q0, pixel size), as cryoDRGN's
        ``write_star``.

    Raises
    ------
    ValueError
        Counts that differ between the stack and the pickles, a box that differs from the
        CTF table's D, no pixel size anywhere.

    Examples
    --------
    >>> particles = read_cryodrgn_particles("particles.mrcs", poses="pose.pkl",
    ...                                     ctf="ctf.pkl")                  # doctest: +SKIP
    >>> write_relion_star("particles.star", particles)                      # doctest: +SKIP
    """
    from dataclasses import replace

    from cryoglass.io.particles import make_particle_set

    stack = Path(stack)
    files = _stack_files(stack)
    n = sum(count for _, count, _, _ in files)
    box = files[0][2]
    names = [f"{k + 1}@{path}" for path, count, _, _ in files for k in range(count)]
    ctf_params, pixel, source = None, None, stack
    if ctf is not None:
        ctf_params, size, pixel = read_cryodrgn_ctf(ctf)
        source = Path(ctf)
        if size != box:
            raise ValueError(f"{ctf}: CTF for box D = {size}, but the images in {stack} are {box}")
        if pixel.shape[0] != n:
            raise ValueError(f"{ctf}: {pixel.shape[0]} CTF rows for {n} images in {stack}")
    if pixel_size_angstrom is not None:
        pixel = torch.full((n,), float(pixel_size_angstrom), dtype=_F64)
    elif pixel is None:
        header = files[0][3]
        if header is None:
            raise ValueError(f"{stack}: no pixel size in the header; give the CTF pickle or --apix")
        pixel = torch.full((n,), float(header), dtype=_F64)
    euler = shift = None
    if poses is not None:
        euler, shift_px = read_cryodrgn_poses(poses, image_size=box, pixel_size_angstrom=1.0)
        source = Path(poses)
        if euler.shape[0] != n:
            raise ValueError(f"{poses}: {euler.shape[0]} poses for {n} images in {stack}")
        shift = None if shift_px is None else shift_px * pixel[:, None]
    particles = make_particle_set(
        names,
        image_roots=(Path.cwd(),),
        pixel_size_angstrom=pixel,
        image_size=box,
        euler_deg=euler,
        shift_angstrom=shift,
        ctf=ctf_params,
        optics_group=_optics_groups(ctf_params, pixel),
    )
    return replace(particles, source_path=source)


def _optics_groups(ctf: CTFParams | None, pixel: torch.Tensor) -> torch.Tensor:
    """1-based group per particle: one per distinct (voltage, Cs, Q0, pixel size)."""
    keys = [pixel]
    if ctf is not None:
        keys += [ctf.voltage_kv, ctf.cs_mm, ctf.amplitude_contrast]
    table = torch.stack([torch.as_tensor(k, dtype=_F64).expand(pixel.shape[0]) for k in keys], -1)
    _, codes = np.unique(table.numpy(), axis=0, return_inverse=True)
    return torch.as_tensor(codes.reshape(-1) + 1, dtype=torch.int64)
