"""3D reconstruction by direct Fourier inversion (RELION's method), chunked and symmetric.

* :mod:`~cryoglass.reconstruct.backproject` — insertion of slices into a padded 3D
  half-transform, the exact adjoint of :mod:`cryoglass.projection` (``insert_slices``,
  ``backproject``).
* :mod:`~cryoglass.reconstruct.fourier_inversion` — ``empty_accumulator`` → ``accumulate`` (per
  chunk, any order) → ``merge`` → ``finalize`` (Wiener-like division, gridding correction,
  relion_reconstruct's soft mask); ``reconstruct`` does all of it for images in memory.
* :mod:`~cryoglass.reconstruct.halves` — half sets (rlnRandomSubset or a seeded split) and
  ``accumulate_subsets``, the one back-projection of particle batches into per-half sums.
* :mod:`~cryoglass.reconstruct.symmetry` — symmetry-equivalent poses ``A·L``.
"""

from cryoglass.reconstruct.backproject import (
    backproject,
    ctf_slice_values,
    image_slice_values,
    insert_slices,
    insert_values,
    spectrum_adjoint,
    table_shape,
)
from cryoglass.reconstruct.fourier_inversion import (
    Accumulator,
    accumulate,
    accumulate_values,
    empty_accumulator,
    finalize,
    memory_estimate_bytes,
    merge,
    reconstruct,
    shell_mean_weight,
    tau2_from_fsc,
)
from cryoglass.reconstruct.halves import (
    accumulate_subsets,
    half_set_indices,
    join_below,
    split_halves,
)
from cryoglass.reconstruct.symmetry import expand_rotations

__all__ = [
    "Accumulator",
    "accumulate",
    "accumulate_subsets",
    "accumulate_values",
    "backproject",
    "ctf_slice_values",
    "empty_accumulator",
    "expand_rotations",
    "finalize",
    "half_set_indices",
    "image_slice_values",
    "insert_slices",
    "insert_values",
    "join_below",
    "memory_estimate_bytes",
    "merge",
    "reconstruct",
    "shell_mean_weight",
    "spectrum_adjoint",
    "split_halves",
    "table_shape",
    "tau2_from_fsc",
]
