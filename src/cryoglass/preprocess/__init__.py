"""From micrographs to particles: CTF estimation and particle picking (science, no files).

* :mod:`~cryoglass.preprocess.ctffind` — CTFFIND4-class CTF estimation: tiled periodogram
  averaging, background subtraction, a search over defocus U/V/angle (and phase shift), local
  refinement, fit resolution and figure of merit (``estimate_ctf``).
* :mod:`~cryoglass.preprocess.pick` — particle picking: reference-free Laplacian-of-Gaussian
  blobs (as RELION's LoG picker) and CTF-aware template matching (``pick_log``,
  ``pick_templates``), peak finding and automatic thresholds.
"""

from cryoglass.preprocess.ctffind import (
    CTFFit,
    CTFSearch,
    PowerSpectrum,
    average_power_spectrum,
    ctf_fit_score,
    diagnostic_image,
    equiphase_average,
    estimate_ctf,
    fit_resolution,
    power_spectrum,
    subtract_background,
)

__all__ = [
    "CTFFit",
    "CTFSearch",
    "PowerSpectrum",
    "average_power_spectrum",
    "ctf_fit_score",
    "diagnostic_image",
    "equiphase_average",
    "estimate_ctf",
    "fit_resolution",
    "power_spectrum",
    "subtract_background",
]
