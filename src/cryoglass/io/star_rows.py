"""A STAR file with only some rows of one of its tables (``select-micrographs``' output).

Every other block, every column and the order of the kept rows stay as read; columns that
hold file names can be replaced (a file written into another folder has to name its files
relative to that folder).
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import starfile

from cryoglass.io._atomic import atomic_write
from cryoglass.io.outputs import register_input

__all__ = ["write_star_rows"]


def write_star_rows(
    source: str | os.PathLike,
    path: str | os.PathLike,
    rows: Sequence[int],
    *,
    block: str,
    replace_columns: Mapping[str, Sequence] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``source`` to ``path`` with only ``rows`` (0-based) of its table ``block``.

    Parameters
    ----------
    source : path-like
        The STAR file read.
    path : path-like
        The STAR file written (atomically); never ``source`` itself.
    rows : sequence of int
        Rows of ``block`` to keep, in this order.
    block : str
        The table (``"micrographs"``, ``"particles"``, …).
    replace_columns : mapping, optional
        ``{column: values for every row of the source table}``, applied before the selection.
    overwrite : bool

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        ``path`` is ``source``; no table ``block``; a replacement of the wrong length.

    Examples
    --------
    >>> import tempfile, pandas as pd, starfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> starfile.write({"optics": pd.DataFrame({"rlnOpticsGroup": [1]}),
    ...                 "micrographs": pd.DataFrame({"rlnMicrographName": ["a", "b", "c"]})},
    ...                folder / "in.star")
    >>> _ = write_star_rows(folder / "in.star", folder / "out.star", [2, 0], block="micrographs")
    >>> list(starfile.read(folder / "out.star")["micrographs"]["rlnMicrographName"])
    ['c', 'a']
    """
    source, path = Path(source), Path(path)
    if path.resolve() == source.resolve():
        raise ValueError(f"{path}: output would overwrite the input file")
    register_input(source)
    try:
        blocks = starfile.read(source, always_dict=True)
    except Exception as error:  # starfile raises many kinds on malformed files
        raise ValueError(f"{source}: not a readable STAR file ({error})") from None
    finally:  # starfile reads through linecache and keeps stale lines on errors
        linecache.clearcache()
    if block not in blocks or not isinstance(blocks[block], pd.DataFrame):
        raise ValueError(f"{source}: no data_{block} table")
    table = blocks[block].reset_index(drop=True).copy()
    for column, values in (replace_columns or {}).items():
        if len(values) != len(table):
            raise ValueError(f"{column}: {len(values)} values for {len(table)} rows of {source}")
        table[column] = list(values)
    blocks[block] = table.iloc[list(rows)].reset_index(drop=True)
    return atomic_write(
        path, lambda tmp: starfile.write(blocks, tmp, float_format="%.6f"), overwrite=overwrite
    )
