# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 16 — Office hours: the parameters of preprocessing and the plots that judge them
#
# Modules taught: `cryoglass.simulate.micrograph` (`simulate_micrograph`: movies with a known
# truth), `cryoglass.preprocess` (`estimate_motion`, `estimate_ctf`, `pick.log_figure_of_merit`,
# `pick.match_picks`, `preprocess_particles`) and `cryoglass.ctf.exposure`.  Commands:
# `simulate-movies`, `motioncorr`, `ctffind`, `pick`, `extract` (and `cryoglass demo --topics
# preprocessing` for the whole chain with 2D classes).
#
# **Syllabus:** 22 Apr 2021 and 3 Jun 2021 (Blur/Sharpen): office hours on preprocessing —
# import, motion correction, CTF estimation, curation, picking, 2D classification (S2C2
# workshop, day 2).
#
# **Questions answered here** (search for the tag):
#
# * **Office hours Q1** — parameters you do not understand: change them and see what they do
#   → every section changes one parameter (B-factor and frame groups, dose, fit range,
#   threshold, background radius) against the known truth
# * **Office hours Q2** — results of an algorithm whose paper is hard to follow → each section
#   states the formula the step evaluates (Grant & Grigorieff's critical exposure, CTFFIND's
#   |sin χ| fit, the LoG figure of merit)
# * **Office hours Q3** — intermediate plots and how to read them → the *Plot to read*
#   paragraph of each section; *6. The other diagnostic plots of the course*
# * **Office hours Q4** — following power users' reasoning → *6.*: the questions to ask of
#   each step when a dataset fails (which step fails first, and which plot shows it?)
#
# With simulated data every plot can be read against the truth, so each section changes one
# parameter and shows what it does.

# %%
import os

import matplotlib.pyplot as plt
import torch

from cryoglass.ctf.exposure import critical_exposure, dose_weights, frame_exposures
from cryoglass.preprocess import (
    CTFSearch,
    MotionSettings,
    correct_movie,
    estimate_ctf,
    estimate_motion,
    preprocess_particles,
)
from cryoglass.preprocess import pick
from cryoglass.simulate.micrograph import Exposure, Microscope, Specimen, simulate_micrograph
from cryoglass.simulate.phantom import gaussian_map

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
PIXEL = 2.0
SIZE = 256 if FAST else 512

# A small particle (a cluster of Gaussian blobs; units: volts) — `--model X.cif` gives a real one.
g = torch.Generator().manual_seed(1)
centres = (torch.rand(14, 3, generator=g) - 0.5) * 18
particle = gaussian_map(centres, shape=(28, 28, 28), pixel_size_angstrom=PIXEL, sigma_angstrom=2.5)
particle = 25 * particle / particle.max()
microscope = Microscope(pixel_size_angstrom=PIXEL, defocus_min_angstrom=15000,
                        defocus_max_angstrom=20000, astigmatism_max_angstrom=800)


def movie(dose_per_frame: float, *, frames: int = 16, seed: int = 0):
    exposure = Exposure(n_frames=frames, dose_per_frame=dose_per_frame, drift_angstrom=16.0,
                        local_motion_angstrom=0.0)
    specimen = Specimen(shape_px=(SIZE, SIZE), crowding=0.35, ice_thickness_angstrom=200.0)
    return simulate_micrograph(particle, index=0, seed=seed, microscope=microscope,
                               specimen=specimen, exposure=exposure)


# %% [markdown]
# ## 1. Motion correction: the B-factor and frame grouping
#
# Each frame is aligned to the sum of the others by the maximum of a cross-correlation
# weighted by $e^{-2Bk^2}$ (RELION's `--bfactor`, in pixel²).  A large $B$ keeps only low
# frequencies (robust, blunt peaks); a small $B$ keeps noise.  At low dose per frame single
# frames carry too little signal: `coarse_group_frames` aligns sums of frames first.
# **Plot to read:** the trajectory, against the truth here.  A trajectory that zig-zags frame
# to frame is noise; real beam-induced motion is smooth, fastest in the first frames.

# %%
low = movie(1.5 if FAST else 1.0)
truth = low.truth.motion.relion_shifts_px()
fig, ax = plt.subplots(figsize=(6, 5))
ax.plot(truth[:, 0], truth[:, 1], "k--", label="truth")
for label, settings in (
    ("B = 150, groups of 4", MotionSettings()),
    ("B = 150, single frames", MotionSettings(coarse_group_frames=1, smoothing=0)),
    ("B = 1000, groups of 4", MotionSettings(bfactor_px2=1000)),
):
    estimate, _ = estimate_motion(low.frames, settings=settings)
    error = (estimate.global_shifts_px - truth).norm(dim=1).pow(2).mean().sqrt()
    ax.plot(estimate.global_shifts_px[:, 0], estimate.global_shifts_px[:, 1], "-o", ms=3,
            label=f"{label}: RMS error {float(error):.2f} px")
ax.invert_yaxis()
ax.set_xlabel("shift x [px]")
ax.set_ylabel("shift y [px]")
ax.legend(fontsize=8)

# %% [markdown]
# ## 2. Dose weighting: which frames carry which frequencies
#
# Radiation damage destroys high resolution first: after an exposure $N$ the amplitude at
# frequency $k$ is $e^{-N/2N_e(k)}$ with $N_e(k) = 0.245\,k^{-1.665} + 2.81$ e⁻/Å² (Grant &
# Grigorieff 2015).  The dose-weighted sum gives frame $f$ the weight
# $q_f(k)/\sqrt{\sum_f q_f^2}$.  **Plot to read:** the weights per frame at a few
# resolutions — at 3 Å only the first ~10 e⁻/Å² count.  Try another dose per frame.

# %%
exposures = frame_exposures(40, dose_per_frame=1.0)
k = 1 / torch.tensor([20.0, 8.0, 5.0, 3.0])
weights = dose_weights(k, exposures)
fig, ax = plt.subplots(figsize=(6, 4))
for i, resolution in enumerate((20, 8, 5, 3)):
    ax.plot(exposures, weights[:, i], label=f"{resolution} Å (N_e {float(critical_exposure(k[i])):.1f})")
ax.set_xlabel("exposure at the end of the frame [e⁻/Å²]")
ax.set_ylabel("weight in the sum")
ax.legend(fontsize=8)

# %% [markdown]
# ## 3. CTF estimation: the fitted range and the Thon rings
#
# The estimate fits $|\sin\chi|$ to the background-subtracted spectrum between two
# resolutions (CTFFIND's 30 and 5 Å).  **Plots to read:** the 1D equi-phase average against
# the fit — the rings should line up to the fit resolution; beyond it the data are noise.
# Raise `max_resolution_angstrom` past what the data hold and watch the fit resolution.
# (The micrograph: the motion-corrected, dose-weighted sum of the movie above.)

# %%
summed, _ = correct_movie(low.frames, pixel_size_angstrom=PIXEL, dose_per_frame=1.0)
search = CTFSearch(tile_size=SIZE // 2, max_resolution_angstrom=6.0)  # tiles fit the micrograph
fit = estimate_ctf(summed, pixel_size_angstrom=PIXEL, voltage_kv=300.0, cs_mm=2.7,
                   amplitude_contrast=0.1, search=search)
true = low.truth.ctf
print(f"defocus U/V: fit {fit.defocus_u_angstrom:.0f} / {fit.defocus_v_angstrom:.0f} Å, "
      f"truth {true.defocus_u_angstrom:.0f} / {true.defocus_v_angstrom:.0f} Å; "
      f"fit resolution {fit.max_resolution_angstrom:.1f} Å, FOM {fit.figure_of_merit:.3f}")
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(fit.frequency_inv_angstrom, fit.rotational_average, label="equi-phase average")
ax.plot(fit.frequency_inv_angstrom, fit.fit_profile, label="|sin χ| of the fit")
ax.axvline(1 / fit.max_resolution_angstrom, color="k", ls=":", label="fit resolution")
ax.set_xlabel("spatial frequency [1/Å]")
ax.legend(fontsize=8)

# %% [markdown]
# ## 4. Picking: the figure-of-merit histogram and the threshold
#
# The LoG picker scores every blob of about the particle's size.  **Plot to read:** the
# histogram of the figures of merit — particles form a separate, higher mode when the picker
# works; the threshold sits in the valley.  Move it and watch precision (how many picks are
# particles) trade against recall (how many particles are picked).

# %%
diameter = low.truth.diameter_angstrom
working = pick.working_pixel_size(PIXEL, diameter)
image, binning = pick.bin_micrograph(summed, pixel_size_angstrom=PIXEL,
                                     working_pixel_size_angstrom=working)
diameter_px = diameter / (PIXEL * binning.scale[0])
fom, _ = pick.log_figure_of_merit(image, diameters_px=torch.linspace(0.75, 1.25, 5) * diameter_px)
xy, values = pick.find_peaks(fom, min_distance_px=0.8 * diameter_px, border_px=diameter_px / 2)
xy = binning.to_original(xy)
threshold = pick.mixture_threshold(values)
rows = []
for t in (0.5 * threshold, threshold, 1.5 * threshold):
    m = pick.match_picks(xy[values >= t], low.truth.coordinates_px, tolerance_px=diameter / 4 / PIXEL)
    rows.append((t, m.precision, m.recall, m.f1))
    print(f"threshold {t:6.2f}: precision {m.precision:.2f} recall {m.recall:.2f} F1 {m.f1:.2f}")
fig, ax = plt.subplots(figsize=(6, 4))
ax.hist(values.numpy(), bins=40)
ax.axvline(threshold, color="k", ls="--", label="automatic threshold (two-Gaussian mixture)")
ax.set_xlabel("LoG figure of merit")
ax.legend(fontsize=8)

# %% [markdown]
# ## 5. Extraction: background radius and contrast
#
# `extract` normalises each particle so the *background* (outside `--bg-radius`) has mean 0
# and standard deviation 1, after removing a fitted plane.  A radius inside the particle puts
# protein into the "background"; raw data have the protein dark, `--invert-contrast` makes it
# white (what 2D classification expects).

# %%
picked = xy[values >= threshold]
box = 48
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (radius, invert) in zip(axes, ((18, False), (18, True), (6, True))):
    particles = preprocess_particles(summed, picked, box=box, radius_px=radius,
                                     invert_contrast=invert)
    ax.imshow(particles.mean(0).numpy(), cmap="gray")
    ax.set_title(f"radius {radius}, {'inverted' if invert else 'raw'}", fontsize=9)
    ax.set_axis_off()

# %% [markdown]
# ## 6. The other diagnostic plots of the course
#
# * FSC and its thresholds, the Guinier plot — lesson 10 (`cryoglass fsc`, `postprocess`);
# * angular distributions and the sampling-compensation factor — lesson 14
#   (`cryoglass orientations`);
# * 2D class averages and their occupancy — lesson 06 (`cryoglass class2d`);
# * the VAE's learning curves and latent space — lessons 11–12 (`cryoglass vae`).
#
# Parameters to vary at home: `--patches` and `--group-frames` of `motioncorr` on 4k movies
# (`simulate-movies --size 4096`), `--max-res` of `ctffind` on thick ice
# (`--ice-thickness-angstrom 800`), picking next to a carbon edge (`--carbon-edge`), and the
# crowding (`--crowding 0.45`): which step fails first, and which plot shows it?
