"""FSC curves in other programs' files: the EMDB's FSC XML and RELION's postprocess.star table.

Both writers take one :class:`cryoglass.validate.FSCSummary` (the one FSC summary), so the
numbers are those ``cryoglass fsc`` and ``postprocess`` report; only the layout is converted.

EMDB FSC XML (accepted by OneDep with a map deposition, and written by relion_postprocess as
``postprocess_fsc.xml``)::

    <fsc title="..." xaxis="Resolution (A-1)" yaxis="Correlation Coefficient">
      <coordinate>
        <x>0.0123</x>     spatial frequency [1/Å]
        <y>0.9987</y>     FSC
      </coordinate>
      ...
    </fsc>

RELION postprocess.star: ``data_general`` (rlnFinalResolution — RELION's meaning: the last
shell whose FSC is still ≥ 0.143, not interpolated — the half maps, the mask) and ``data_fsc``
with rlnSpectralIndex, rlnResolution [1/Å], rlnAngstromResolution [Å] (999 for shell 0, as
RELION writes it) and the curves under RELION's names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

import pandas as pd
import starfile

from cryoglass.io._atomic import atomic_write, write_text_atomic
from cryoglass.validate.fsc import resolution_at_threshold

if TYPE_CHECKING:
    from cryoglass.validate import FSCSummary

__all__ = ["RELION_FSC_COLUMNS", "fsc_star_tables", "write_fsc_star", "write_fsc_xml"]

#: cryoglass curve names → RELION postprocess.star columns (masked, corrected layout).
RELION_FSC_COLUMNS = {
    "fsc_corrected": "rlnFourierShellCorrelationCorrected",
    "fsc_unmasked": "rlnFourierShellCorrelationUnmaskedMaps",
    "fsc_masked": "rlnFourierShellCorrelationMaskedMaps",
    "fsc_phase_randomized": "rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps",
}


def _curves(summary: FSCSummary) -> dict:
    """The summary's curves keyed by RELION column.

    The main curve is the corrected FSC when the summary has a masked curve (``fsc --mask``,
    ``postprocess``), else the FSC of the maps as given (RELION's unmasked column).
    """
    masked = "fsc_masked" in summary.curves
    main = "fsc_corrected" if masked else "fsc_unmasked"
    curves = {RELION_FSC_COLUMNS[main]: summary.fsc}
    for name, curve in summary.curves.items():
        if name in RELION_FSC_COLUMNS and name != main:
            curves[RELION_FSC_COLUMNS[name]] = curve
    return curves


def fsc_star_tables(
    summary: FSCSummary,
    *,
    half_maps: tuple[str, str] | None = None,
    mask: str | None = None,
) -> dict:
    """The ``general`` and ``fsc`` blocks of a RELION postprocess.star for one FSC summary.

    Returns
    -------
    dict
        ``{"general": dict, "fsc": DataFrame}`` as :func:`starfile.write` takes them.

    Examples
    --------
    >>> import torch
    >>> from cryoglass.validate import fsc_summary
    >>> s = fsc_summary(torch.tensor([1.0, 0.9, 0.5, 0.1]), box_size=6, pixel_size_angstrom=2.0)
    >>> tables = fsc_star_tables(s)
    >>> list(tables["fsc"].columns)[3:], round(tables["general"]["rlnFinalResolution"], 2)
    (['rlnFourierShellCorrelationUnmaskedMaps'], 6.0)
    """
    n = summary.fsc.shape[-1]
    box, pixel = summary.box_size, summary.pixel_size_angstrom
    angstrom = [999.0] + [box * pixel / i for i in range(1, n)]
    table = {
        "rlnSpectralIndex": list(range(n)),
        "rlnResolution": [1.0 / d for d in angstrom],
        "rlnAngstromResolution": angstrom,
    }
    table.update({column: curve.tolist() for column, curve in _curves(summary).items()})
    final = resolution_at_threshold(
        summary.fsc, threshold=0.143, box_size=box, pixel_size_angstrom=pixel, interpolate=False
    )
    general: dict = {"rlnFinalResolution": float(final)}
    if half_maps is not None:
        general["rlnUnfilteredMapHalf1"], general["rlnUnfilteredMapHalf2"] = half_maps
    if mask is not None:
        general["rlnMaskName"] = mask
    return {"general": general, "fsc": pd.DataFrame(table)}


def write_fsc_star(
    path: str | os.PathLike,
    summary: FSCSummary,
    *,
    half_maps: tuple[str, str] | None = None,
    mask: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an FSC summary as RELION's postprocess.star tables (``data_general``, ``data_fsc``).

    Parameters
    ----------
    path : path-like
        The ``.star`` file (atomically; refused if it exists unless ``overwrite``).
    summary : FSCSummary
    half_maps : (str, str), optional
        Written as rlnUnfilteredMapHalf1/2.
    mask : str, optional
        Written as rlnMaskName.
    overwrite : bool

    Returns
    -------
    Path
    """
    blocks = fsc_star_tables(summary, half_maps=half_maps, mask=mask)
    return atomic_write(
        path, lambda tmp: starfile.write(blocks, tmp, float_format="%.6f"), overwrite=overwrite
    )


def write_fsc_xml(
    path: str | os.PathLike,
    summary: FSCSummary,
    *,
    title: str = "cryoglass FSC",
    overwrite: bool = False,
) -> Path:
    """Write the main FSC curve of a summary in the EMDB's XML layout (for deposition).

    Parameters
    ----------
    path : path-like
        The ``.xml`` file (atomically; refused if it exists unless ``overwrite``).
    summary : FSCSummary
        Its main curve (``summary.fsc``: the corrected FSC when masked) against the shell
        frequencies ``i / (box · pixel)`` [1/Å], shell 0 included.
    title : str
        The ``title`` attribute (escaped).
    overwrite : bool

    Returns
    -------
    Path
    """
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<fsc title={quoteattr(title)} xaxis="Resolution (A-1)" yaxis="Correlation Coefficient">',
    ]
    for x, y in zip(summary.frequency_inv_angstrom.tolist(), summary.fsc.tolist(), strict=True):
        lines += [
            "  <coordinate>",
            f"    <x>{x:.6f}</x>",
            f"    <y>{y:.6f}</y>",
            "  </coordinate>",
        ]
    lines.append("</fsc>")
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite=overwrite)
