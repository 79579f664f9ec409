"""RELION's ``run_itNNN_model.star`` of a classification: per-class distributions and SSNR.

Blocks written (the RELION 3.1 labels that downstream tools read):

* ``data_model_general`` — ``rlnReferenceDimensionality`` 3, ``rlnDataDimensionality`` 2,
  ``rlnOriginalImageSize``, ``rlnCurrentResolution`` [1/Å], ``rlnPixelSize``,
  ``rlnNrClasses``, ``rlnTau2FudgeFactor``, ``rlnLogLikelihood``, ``rlnAveragePmax``;
* ``data_model_classes`` — one row per class: ``rlnReferenceImage`` (the class map's file
  name), ``rlnClassDistribution``, ``rlnEstimatedResolution`` [Å];
* ``data_model_class_N`` — per shell: ``rlnSpectralIndex``, ``rlnResolution`` [1/Å],
  ``rlnAngstromResolution`` [Å], ``rlnSsnrMap`` (the class's ``data_vs_prior``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import starfile
import torch

from cryoglass.io._atomic import atomic_write

__all__ = ["write_class3d_model_star"]


def write_class3d_model_star(
    path: str | os.PathLike,
    *,
    class_maps: list[str],
    class_distribution: torch.Tensor,
    resolution_angstrom: torch.Tensor,
    ssnr: torch.Tensor,
    pixel_size_angstrom: float,
    tau2_fudge: float,
    log_likelihood: float,
    average_pmax: float,
    overwrite: bool = False,
) -> Path:
    """Write a Class3D model STAR file (RELION 3.1 labels).

    Parameters
    ----------
    path : path-like
    class_maps : list of str
        The K class maps' file names (as RELION: relative to its working directory).
    class_distribution : Tensor, (K,)
    resolution_angstrom : Tensor, (K,)
    ssnr : Tensor, (K, N//2 + 1)
        Per class and shell.
    pixel_size_angstrom : float
    tau2_fudge : float
    log_likelihood : float
    average_pmax : float
    overwrite : bool

    Returns
    -------
    Path
    """
    k, n_shells = ssnr.shape
    size = 2 * (n_shells - 1)
    shells = torch.arange(n_shells, dtype=torch.float64)
    frequency = shells / (size * pixel_size_angstrom)
    resolution = torch.tensor([resolution_angstrom.min().item() if k else 0.0], dtype=torch.float64)
    blocks: dict[str, pd.DataFrame] = {
        "model_general": pd.DataFrame(
            {
                "rlnReferenceDimensionality": [3],
                "rlnDataDimensionality": [2],
                "rlnOriginalImageSize": [size],
                "rlnCurrentResolution": [1.0 / float(resolution[0])],
                "rlnPixelSize": [pixel_size_angstrom],
                "rlnNrClasses": [k],
                "rlnTau2FudgeFactor": [tau2_fudge],
                "rlnLogLikelihood": [log_likelihood],
                "rlnAveragePmax": [average_pmax],
            }
        ),
        "model_classes": pd.DataFrame(
            {
                "rlnReferenceImage": list(class_maps),
                "rlnClassDistribution": class_distribution.double().cpu().numpy(),
                "rlnEstimatedResolution": resolution_angstrom.double().cpu().numpy(),
            }
        ),
    }
    with torch.no_grad():
        angstrom = torch.where(shells > 0, 1.0 / frequency.clamp_min(1e-30), torch.inf)
    for c in range(k):
        blocks[f"model_class_{c + 1}"] = pd.DataFrame(
            {
                "rlnSpectralIndex": shells.long().numpy(),
                "rlnResolution": frequency.numpy(),
                "rlnAngstromResolution": angstrom.numpy(),
                "rlnSsnrMap": ssnr[c].double().cpu().numpy(),
            }
        )

    def _write(tmp: Path) -> None:
        starfile.write(blocks, tmp, float_format="%.6f")

    return atomic_write(Path(path), _write, overwrite=overwrite)
