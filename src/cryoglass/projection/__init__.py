"""Projection of 3D maps: Fourier-slice projector (RELION-compatible) and a real-space reference."""

from cryoglass.projection.analytic import gaussian_blobs_projection, gaussian_blobs_volume
from cryoglass.projection.fourier_slice import (
    VolumeFourier,
    extract_slices,
    gridding_correction,
    prepare_volume_fourier,
    slice_frequencies,
    slice_values,
    slice_values_at,
)
from cryoglass.projection.project import project, project_prepared, shift_phase
from cryoglass.projection.real_space import project_real_space

__all__ = [
    "VolumeFourier",
    "extract_slices",
    "gaussian_blobs_projection",
    "gaussian_blobs_volume",
    "gridding_correction",
    "prepare_volume_fourier",
    "project",
    "project_prepared",
    "project_real_space",
    "shift_phase",
    "slice_frequencies",
    "slice_values",
    "slice_values_at",
]
