"""From movies to particles: motion correction and particle extraction (RELION's preprocessing).

* :mod:`~cryoglass.preprocess.motion` — global and patch motion estimation, dose-weighted sums.
* :mod:`~cryoglass.preprocess.extract` — windowing particles from micrographs, RELION's
  background normalisation.
"""

from cryoglass.preprocess.extract import (
    background_mask,
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
    "MotionEstimate",
    "MotionSettings",
    "align_spectra",
    "background_mask",
    "correct_movie",
    "estimate_motion",
    "extract_windows",
    "fit_polynomial_motion",
    "motion_corrected_sum",
    "normalise_background",
    "polynomial_motion",
    "preprocess_particles",
    "smooth_trajectory",
]
