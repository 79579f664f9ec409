"""3D refinement: orientation determination by maximum likelihood (RELION's auto-refine).

* :mod:`~cryoglass.refine.poses` — global SO(3) grids, local neighbourhoods, origin grids.
* :mod:`~cryoglass.refine.likelihood` — the E-step's scores (GEMMs), posteriors, significance.
* :mod:`~cryoglass.refine.align` — align a batch (coarse + fine passes) and its M-step sums.
* :mod:`~cryoglass.refine.auto` — the gold-standard auto-refinement loop.
* :mod:`~cryoglass.refine.checkpoint` — what a checkpoint holds (``--continue``).
"""

from cryoglass.refine.align import Alignment, Sampling, align_batch, insert_batch
from cryoglass.refine.auto import (
    Poses,
    RefineResult,
    RefineSettings,
    RefineState,
    auto_refine,
    initial_state,
    refine_iteration,
)
from cryoglass.refine.poses import global_rotations, local_rotations, origin_grid, rotation_lattice

__all__ = [
    "Alignment",
    "Poses",
    "RefineResult",
    "RefineSettings",
    "RefineState",
    "Sampling",
    "align_batch",
    "auto_refine",
    "global_rotations",
    "initial_state",
    "insert_batch",
    "local_rotations",
    "origin_grid",
    "refine_iteration",
    "rotation_lattice",
]
