"""Fourier toolkit: centred transforms, grids, shifts, rescaling, radial averages, filters."""

from cryoglass.fourier.fft import (
    fft2_centered,
    fft3_centered,
    fftn_centered,
    ifft2_centered,
    ifft3_centered,
    ifftn_centered,
    irfft2_centered,
    irfft3_centered,
    irfftn_centered,
    rfft2_centered,
    rfft3_centered,
    rfftn_centered,
)
from cryoglass.fourier.grids import (
    centered_indices,
    coordinate_grid,
    frequency_axis,
    frequency_grid,
    frequency_radius,
)

__all__ = [
    "centered_indices",
    "coordinate_grid",
    "fft2_centered",
    "fft3_centered",
    "fftn_centered",
    "frequency_axis",
    "frequency_grid",
    "frequency_radius",
    "ifft2_centered",
    "ifft3_centered",
    "ifftn_centered",
    "irfft2_centered",
    "irfft3_centered",
    "irfftn_centered",
    "rfft2_centered",
    "rfft3_centered",
    "rfftn_centered",
]
