"""Contrast transfer function (RELION's formula and sign): parameters, 1D/2D CTFs, correction."""

from cryoglass.ctf.correct import multiply_ctf, phase_flip, wiener_filter
from cryoglass.ctf.ctf import (
    aberration_phase,
    amplitude_contrast_phase,
    ctf_1d,
    ctf_2d,
    ctf_at_frequencies,
    ctf_zeros_angstrom,
    ctf_zeros_inv_angstrom,
    electron_wavelength_angstrom,
)
from cryoglass.ctf.params import CTFParams

__all__ = [
    "CTFParams",
    "aberration_phase",
    "amplitude_contrast_phase",
    "ctf_1d",
    "ctf_2d",
    "ctf_at_frequencies",
    "ctf_zeros_angstrom",
    "ctf_zeros_inv_angstrom",
    "electron_wavelength_angstrom",
    "multiply_ctf",
    "phase_flip",
    "wiener_filter",
]
