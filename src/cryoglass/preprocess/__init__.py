"""From movies to particles: motion correction, CTF estimation, picking and extraction.

Science only (tensors in, tensors out; the commands and ``cryoglass.distributed`` read and write
the files):

* :mod:`~cryoglass.preprocess.motion` — global and patch motion estimation, dose-weighted sums
  (``correct_movie``).
* :mod:`~cryoglass.preprocess.ctffind` — CTFFIND4-class CTF estimation: tiled periodogram
  averaging, background subtraction, a search over defocus U/V/angle (and phase shift), local
  refinement, fit resolution and figure of merit (``estimate_ctf``).
* :mod:`~cryoglass.preprocess.pick` — particle picking: reference-free Laplacian-of-Gaussian
  blobs (as RELION's LoG picker) and CTF-aware template matching, peak finding and automatic
  thresholds.
* :mod:`~cryoglass.preprocess.extract` — windowing particles from micrographs, RELION's
  background normalisation (``preprocess_particles``).
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
from cryoglass.preprocess.extract import (
    background_mask,
    bin_windows,
    extract_windows,
    normalise_background,
    preprocess_particles,
)
from cryoglass.preprocess.motion import (
    MotionEstimate,
    MotionSettings,
    align_spectra,
    correct_movie,
    estimate_motion,
    fit_polynomial_motion,
    motion_corrected_sum,
    polynomial_motion,
    smooth_trajectory,
)

__all__ = [
    "CTFFit",
    "CTFSearch",
    "MotionEstimate",
    "MotionSettings",
    "PowerSpectrum",
    "align_spectra",
    "average_power_spectrum",
    "background_mask",
    "bin_windows",
    "correct_movie",
    "ctf_fit_score",
    "diagnostic_image",
    "equiphase_average",
    "estimate_ctf",
    "estimate_motion",
    "extract_windows",
    "fit_polynomial_motion",
    "fit_resolution",
    "motion_corrected_sum",
    "normalise_background",
    "polynomial_motion",
    "power_spectrum",
    "preprocess_particles",
    "smooth_trajectory",
    "subtract_background",
]
