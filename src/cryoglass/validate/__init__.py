"""Validation and post-processing: FSC and resolution, masks, Guinier/B-factor, sharpening.

* :mod:`~cryoglass.validate.fsc` — Fourier shell correlation on cryoglass's shells, resolution
  at 0.143/0.5 (interpolated), SSNR, phase-randomisation-corrected masked FSC.
* :mod:`~cryoglass.validate.masks` — soft spheres (and relion_reconstruct's), threshold +
  dilate + raised-cosine masks, Otsu auto-threshold, relion_mask_create's recipe.
* :mod:`~cryoglass.validate.localres` — local resolution by windowed FSC (relion --locres).
* :mod:`~cryoglass.validate.postprocess` — Guinier plot, automatic B-factor, FSC weighting,
  sharpening and the full ``postprocess`` of two half maps (RELION's relion_postprocess).
"""

from cryoglass.validate.fsc import (
    FSCSummary,
    MaskedFSC,
    corrected_fsc,
    fourier_shell_correlation,
    fourier_shell_correlation_spectra,
    fourier_shell_index,
    fourier_shell_sizes,
    fsc_against_reference,
    fsc_summary,
    fsc_weight,
    masked_fsc,
    phase_randomization_shell,
    randomize_phases_beyond,
    resolution_at_threshold,
    shell_values_to_grid,
    ssnr_from_fsc,
)
from cryoglass.validate.masks import (
    auto_mask,
    otsu_threshold,
    relion_reconstruct_sphere_mask,
    soft_mask_outside_sphere,
    soft_sphere_mask,
    squared_distance_to_mask,
    threshold_mask,
)
from cryoglass.validate.postprocess import (
    BFactorFit,
    PostprocessResult,
    fit_bfactor,
    fsc_weighting_filter,
    guinier_plot,
    postprocess,
    sharpen,
)

__all__ = [
    "BFactorFit",
    "FSCSummary",
    "MaskedFSC",
    "PostprocessResult",
    "auto_mask",
    "corrected_fsc",
    "fit_bfactor",
    "fourier_shell_correlation",
    "fourier_shell_correlation_spectra",
    "fourier_shell_index",
    "fourier_shell_sizes",
    "fsc_against_reference",
    "fsc_summary",
    "fsc_weight",
    "fsc_weighting_filter",
    "guinier_plot",
    "masked_fsc",
    "otsu_threshold",
    "phase_randomization_shell",
    "postprocess",
    "randomize_phases_beyond",
    "relion_reconstruct_sphere_mask",
    "resolution_at_threshold",
    "sharpen",
    "shell_values_to_grid",
    "soft_mask_outside_sphere",
    "soft_sphere_mask",
    "squared_distance_to_mask",
    "ssnr_from_fsc",
    "threshold_mask",
]

# Preferred orientation (issue 5): SCF/SCF*, orientation plots, conical FSC (3DFSC).
from cryoglass.validate.fsc3d import (  # noqa: E402
    ThreeDFSC,
    conical_fsc,
    icosphere,
    principal_axes,
    sphericity,
    three_d_fsc,
)
from cryoglass.validate.orientations import (  # noqa: E402
    OrientationStats,
    SamplingMap,
    direction_density,
    directional_sampling,
    orientation_bild,
    orientation_statistics,
    projection_directions,
    sampling_compensation_factors,
    tilt_directions,
)

__all__ += [
    "OrientationStats",
    "SamplingMap",
    "ThreeDFSC",
    "conical_fsc",
    "direction_density",
    "directional_sampling",
    "icosphere",
    "orientation_bild",
    "orientation_statistics",
    "principal_axes",
    "projection_directions",
    "sampling_compensation_factors",
    "sphericity",
    "three_d_fsc",
    "tilt_directions",
]

# Orientation planner (issue 5): predicted directional SSNR/3DFSC, SCF and stage-tilt scan.
from cryoglass.validate.planner import (  # noqa: E402
    OrientationPlan,
    SSNRModel,
    TiltScan,
    anisotropic_half_maps,
    orientation_model,
    plan_orientations,
    plan_tilt_scan,
    relative_sampling_grid,
    shell_sampling,
)

__all__ += [
    "OrientationPlan",
    "SSNRModel",
    "TiltScan",
    "anisotropic_half_maps",
    "orientation_model",
    "plan_orientations",
    "plan_tilt_scan",
    "relative_sampling_grid",
    "shell_sampling",
]

# Map tools (issue 20): relion_mask_create's recipe, local resolution by windowed FSC.
from cryoglass.validate.localres import (  # noqa: E402
    LocalResolution,
    LocalResolutionParams,
    local_resolution,
    window_centers,
)
from cryoglass.validate.masks import mask_from_map, relion_lowpass_resolution  # noqa: E402

__all__ += [
    "LocalResolution",
    "LocalResolutionParams",
    "local_resolution",
    "mask_from_map",
    "relion_lowpass_resolution",
    "window_centers",
]
