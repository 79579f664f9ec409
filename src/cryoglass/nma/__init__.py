"""Normal-mode analysis: elastic network models of structures and maps (the ProDy sessions).

* :mod:`~cryoglass.nma.anm` — anisotropic network model (``anm``, ``anm_hessian``).
* :mod:`~cryoglass.nma.gnm` — Gaussian network model (``gnm``, ``kirchhoff_matrix``).
* :mod:`~cryoglass.nma.modes` — ``NormalModes`` and the eigensolvers (dense, sparse, torch).
* :mod:`~cryoglass.nma.analysis` — fluctuations, B-factors, cross-correlations, collectivity,
  overlaps with a conformational change.
* :mod:`~cryoglass.nma.trn` — pseudo-atoms from a density map (topology representing network).
* :mod:`~cryoglass.nma.deform` — structures and maps deformed along modes, ensembles, and a
  heterogeneous particle dataset.

The network models and the analysis work on numpy arrays (float64) and do **not** import torch,
so that a CPU analysis of a model starts in a fraction of a second; ``trn`` and ``deform`` work
on torch tensors (maps, projections) and are imported on first use.
"""

from cryoglass.nma.analysis import (
    collectivity,
    cross_correlations,
    cumulative_overlap,
    fit_bfactors,
    match_residues,
    overlaps,
    square_fluctuations,
    superpose,
)
from cryoglass.nma.anm import anm, anm_hessian
from cryoglass.nma.gnm import gnm, kirchhoff_matrix
from cryoglass.nma.modes import NormalModes, lowest_eigenpairs

__all__ = [
    "NormalModes",
    "anm",
    "anm_hessian",
    "collectivity",
    "cross_correlations",
    "cumulative_overlap",
    "fit_bfactors",
    "gnm",
    "kirchhoff_matrix",
    "lowest_eigenpairs",
    "match_residues",
    "overlaps",
    "square_fluctuations",
    "superpose",
]

_LAZY = {
    "trn": (
        "TopologyNetwork",
        "topology_representing_network",
        "density_samples",
    ),
    "deform": (
        "deform_coordinates",
        "amplitude_for_rmsd",
        "mode_trajectory",
        "extend_modes",
        "gaussian_mixture_amplitudes",
        "deformed_maps",
        "HeterogeneousDataset",
        "heterogeneous_dataset",
        "MODE_AMPLITUDE_COLUMN",
    ),
}
__all__ += [name for names in _LAZY.values() for name in names]


def __getattr__(name: str):
    """Import the torch-based parts (``trn``, ``deform``) on first use."""
    import importlib

    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(f"cryoglass.nma.{module}"), name)
    raise AttributeError(f"module 'cryoglass.nma' has no attribute {name!r}")
