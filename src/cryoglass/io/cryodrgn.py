"""cryoDRGN's pose and CTF pickles ↔ cryoglass' convention (for interoperability only).

Formats (as written by cryoDRGN's ``parse_pose_star``/``parse_pose_csparc``/``parse_ctf_*``)
-----------------------------------------------------------------------------------------
* ``poses.pkl``: a tuple ``(R, t)``; ``R`` (N, 3, 3) equals RELION's Euler matrix ``A``;
  ``t`` (N, 2) is RELION's origin in **fractions of the box**: ``t = rlnOrigin[px] / D``.
  So ``shift_angstrom = t · D · pixel_size``.  (Some files hold only ``R``.)
* ``ctf.pkl``: a float32 array (N, 9) with columns
  ``D, Apix [Å], dfU [Å], dfV [Å], dfAngle [deg], kV, Cs [mm], Q0, phase shift [deg]``.

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

__all__ = [
    "read_cryodrgn_ctf",
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
