# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 15 — Journal club: multislice (Himes & Grigorieff 2021)
#
# **Syllabus:** Multislice journal club with Ben Himes (date TBD, Blur): Himes & Grigorieff
# (2021), cryo-TEM simulations of amorphous radiation-sensitive samples using multislice wave
# propagation.  Also the multislice half of 11 Feb 2021 (Sharpen; lesson 05).
#
# Modules taught: `cryoglass.simulate` (`multislice_image`, `fresnel_propagator`,
# `stack_volume`, `thickness_voltage_table`) and `cryoglass.report.figures.plot_thickness_voltage_table`.
#
# **Questions answered here** (search for the tag):
#
# * **Multislice Q1** — what the paper extends compared with past treatments → *What the
#   paper adds*
# * **Multislice Q2** — what is not modelled → *What is not modelled*
# * **Multislice Q3** — the computational bottlenecks of multislice simulation → *Blur* (the
#   timing) and *Compute bottlenecks*
# * **Multislice Q4** — which noise sources dominate, and how to test it → *Which noise
#   dominates*
# * **Forward model Sharpen Q4**, **Forward model Sharpen Q5** (lesson 05) — how thick a
#   specimen may be before the projection assumption fails → *Sharpen*

# %%
import os
import time

import matplotlib.pyplot as plt  # noqa: F401  (figures show in the notebook)
import torch

from cryoglass.ctf import CTFParams
from cryoglass.data import trpv1_model_path
from cryoglass.io import read_structure
from cryoglass.report.figures import plot_thickness_voltage_table
from cryoglass.simulate import (
    multislice_image,
    phase_object_image,
    potential_map,
    thickness_voltage_table,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
generator = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Blur: slice, transmit, propagate
#
# Cut the specimen into thin slices along the beam.  Each slice shifts the phase of the wave
# by $\sigma_e\int_{slice}V\,dz$; between slices the wave spreads by Fresnel propagation,
# $P(k)=e^{-i\pi\lambda\Delta z k^2}$.  The projection approximation is the one-slice limit.

# %%
model = read_structure(trpv1_model_path())
pixel = 2.0 if FAST else 1.0
size = 64 if FAST else 128
depth = 56 if FAST else 112
particle = potential_map(model.coordinates_angstrom.float(), model.elements, shape=(depth, size, size),
                         pixel_size_angstrom=pixel, bfactors_a2=20.0, outside="ignore")
ctf = CTFParams(10000.0, 10000.0, amplitude_contrast=0.07)
t = time.perf_counter()
ms = multislice_image(particle, ctf, pixel_size_angstrom=pixel, slice_thickness_angstrom=2 * pixel)
t_ms = time.perf_counter() - t
t = time.perf_counter()
pa = phase_object_image(particle.sum(0) * pixel, ctf, pixel_size_angstrom=pixel)
t_pa = time.perf_counter() - t
print(f"multislice {t_ms * 1e3:.0f} ms vs projection {t_pa * 1e3:.1f} ms "
      f"({depth * pixel / (2 * pixel):.0f} slices, {size}²)")

# %% [markdown]
# ## Sharpen: how thick before projection fails?  (measured)
#
# Specimens are stacks of laterally shifted TRPV1 slabs (B = 20 Å²), imaged at 1 µm underfocus,
# Cs 2.7 mm, Q0 0.07, 2 Å slices.  Columns: NCC between multislice and projection images,
# relative error of the contrast, NCC above 1/4 Å⁻¹ (high resolution), and the weak-phase error.
#
# Full run at 1 Å/px, 128² (measured with `thickness_voltage_table`, 18 rows, 43 s on 2 cores):
#
# | thickness Å | kV | NCC | rel. err | NCC (>1/4 Å⁻¹) | weak-phase err | max phase rad |
# |---|---|---|---|---|---|---|
# | 100 | 100 | 0.9985 | 0.054 | 0.977 | 0.178 | 0.73 |
# | 100 | 300 | 0.9994 | 0.035 | 0.993 | 0.121 | 0.51 |
# | 200 | 100 | 0.9917 | 0.128 | 0.876 | 0.256 | 1.07 |
# | 200 | 300 | 0.9966 | 0.082 | 0.960 | 0.165 | 0.76 |
# | 400 | 100 | 0.9743 | 0.223 | 0.555 | 0.287 | 1.67 |
# | 400 | 200 | 0.9825 | 0.183 | 0.762 | 0.224 | 1.31 |
# | 400 | 300 | 0.9872 | 0.156 | 0.843 | 0.188 | 1.18 |
# | 1000 | 100 | 0.9160 | 0.393 | −0.155 | 0.526 | 3.12 |
# | 1000 | 300 | 0.9393 | 0.328 | 0.268 | 0.336 | 2.20 |
#
# The low-resolution image barely changes (NCC > 0.9), but the high-resolution content of a
# 400 Å specimen is badly wrong in the projection approximation at 100 kV and still off at
# 300 kV: depth of field $1/(\lambda k^2)$ at 4 Å is 810 Å at 300 kV and 430 Å at 100 kV.

# %%
thicknesses = [50.0, 200.0] if FAST else [50.0, 100.0, 200.0, 400.0]
rows = thickness_voltage_table(particle, pixel_size_angstrom=pixel, thicknesses_angstrom=thicknesses,
                               voltages_kv=[100.0, 300.0], slice_thickness_angstrom=2 * pixel,
                               high_resolution_angstrom=max(4.0, 3 * pixel), generator=generator)
for r in rows:
    print(f"{r['thickness_angstrom']:6.0f} Å {r['voltage_kv']:4.0f} kV  NCC {r['ncc_projection']:.4f}  "
          f"rel.err {r['relative_error_projection']:.3f}  NCC(high) {r['ncc_projection_high']:.3f}  "
          f"weak-phase err {r['relative_error_weak_phase']:.3f}")
fig = plot_thickness_voltage_table(rows)

# %% [markdown]
# ## What the paper adds (Multislice Q1)
#
# Earlier simulators of cryo-EM images (e.g. TEM-simulator, InSilicoTEM; Vulović et al. 2013,
# lesson 05) mostly used the projection approximation, or multislice for crystalline
# materials.  As we read Himes & Grigorieff, their simulator (in cisTEM) combines, for
# biological specimens: multislice wave propagation through thick, amorphous specimens; an
# explicit, amorphous solvent (water displaced by the protein, not a constant background);
# radiation damage as an exposure-dependent blurring of the atoms during the exposure;
# inelastic scattering and its loss of coherent contrast; and a detector model — and they
# compare the simulated images with experimental ones.  The cells above reproduce the core:
# when does propagation inside the specimen matter, at which resolution, voltage and
# thickness.
#
# ## What is not modelled (Multislice Q2; here, and partly in the paper)
#
# * Inelastic scattering: only as an imaginary potential (amplitude contrast); no energy loss,
#   no chromatic blur of the inelastic image, no energy filter slit.  Himes & Grigorieff add
#   an inelastic/ice model and a solvent with its own (amorphous, moving) potential.
# * Solvent/ice, its thickness variation, and radiation damage during the exposure.
# * Backscattering and large-angle effects (paraxial propagator), detector charge sharing
#   beyond a Gaussian, drift and beam-induced motion.
#
# ## Compute bottlenecks (Multislice Q3)
#
# Cost per image is $N_{slices}\times$ (one FFT pair $O(n^2\log n)$ + an exp of $n^2$ complex
# numbers).  The measured ratio above is the price over the projection approximation
# (a single FFT pair).  Building the 3D potential at fine sampling (≤ 0.5 Å voxels so that the
# propagator and transmission are not aliased) costs memory $\propto$ thickness: a
# 256² × 400 Å specimen at 0.5 Å is 800×256×256 floats (210 MB).  And each pose needs its own
# rotated potential — you cannot reuse a Fourier slice as projection does — so reconstruction
# with a multislice forward model is ~$N_{slices}$ times slower per iteration and needs the
# adjoint (back-propagation) for gradients.
#
# ## Which noise dominates, and how to test it (Multislice Q4)
#
# At 1 e⁻/pixel, shot noise (Poisson, variance = mean) dominates everything else: its SNR per
# pixel is ~1, whereas the modelling errors above are a few per cent of the *signal*, which is
# itself ~10 % of the background.  Test: simulate the same particles with and without each
# effect (multislice vs projection, ice, detector DQE) at the real dose, and compare the FSC
# of reconstructions or the spectral SNR; an effect matters only if it changes the FSC more
# than the difference between two independent noise realisations.
