# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 05 — Image formation: the forward model
#
# **Syllabus:** 28 Jan 2021 (Blur) and 11 Feb 2021 (Sharpen): image formation (forward model),
# multislice.
#
# From atoms to a potential, from a potential to an exit wave, through the lens to an image,
# onto a detector — and what that model implies for noise and for pooling data.  Modules
# taught: `cryoglass.simulate` (`potential_map`, `projected_potential`,
# `interaction_constant_rad_per_volt_angstrom`, `weak_phase_contrast`, `weak_phase_image`,
# `phase_object_image`, `counting_detector_mtf/dqe`, `apply_mtf`, `apply_dqe`,
# `compare_to_projection`), `cryoglass.validate.fourier_shell_correlation`,
# `cryoglass.interpolate.interpolate_grid`.
#
# **Questions answered here** (search for the tag):
#
# * **Forward model Blur Q1** — how is real noise different from additive Gaussian noise?
#   → *Real noise versus additive Gaussian noise*
# * **Forward model Blur Q2** — can particles from different grids (thin carbon, graphene) be
#   combined into one data set? → *Pooling data*
# * **Forward model Blur Q3** — why not pool EMPIAR data sets of the same particle into tens of
#   millions of particles? → *Pooling data*
# * **Forward model Sharpen Q1** — the DQE/MTF applied in 2D vs its 1D curve → *Detector*
# * **Forward model Sharpen Q2** — the "complex CTF" (Vulović eq. 5) vs the sine CTF; when to
#   use which → *The two approximations*
# * **Forward model Sharpen Q3** — is the noise additive, Gaussian and pixel-independent in
#   Vulović et al.?  Which models break pixel independence? → *Correlated pixel noise*
# * **Forward model Sharpen Q4** — reconstruction with more accurate forward models (multislice);
#   the bottlenecks → *Reconstructing with a better forward model* (and lesson 15)
# * **Forward model Sharpen Q5** — the weak-phase approximation vs the projection assumption,
#   and where each is made (Koeck & Karshikoff 2015) → *The two approximations*

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from cryoglass.ctf import CTFParams
from cryoglass.data import trpv1_model_path
from cryoglass.io import read_structure
from cryoglass.fourier import coordinate_grid, radial_power_spectrum, shift_image
from cryoglass.interpolate import interpolate_grid
from cryoglass.simulate import (
    POTENTIAL_CONSTANT_VOLT_ANGSTROM2,
    apply_dqe,
    apply_mtf,
    compare_to_projection,
    counting_detector_dqe,
    counting_detector_mtf,
    interaction_constant_rad_per_volt_angstrom,
    model_center_angstrom,
    phase_object_image,
    potential_map,
    projected_potential,
    weak_phase_contrast,
    weak_phase_image,
)
from cryoglass.validate import fourier_shell_correlation

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)
generator = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Blur: from atoms to an image
#
# Every atom is a small cloud of positive potential (the nucleus, screened by its electrons).
# Peng et al. (1996) fitted each element's electron scattering factor with five Gaussians;
# the B-factor blurs each one further.  Summing the clouds gives the potential map in volts.

# %%
model = read_structure(trpv1_model_path())
xyz = model.coordinates_angstrom.float()
center = model_center_angstrom(xyz, model.elements)
pixel = 2.0 if FAST else 1.0
box = 64 if FAST else 128
volume = potential_map(xyz, model.elements, shape=(box, box, box), pixel_size_angstrom=pixel,
                       bfactors_a2=30.0, origin_angstrom=center, outside="ignore")
vp = projected_potential(xyz, model.elements, image_size=box, pixel_size_angstrom=pixel,
                         bfactors_a2=30.0, origin_angstrom=center)[0]
print(f"potential: max {float(volume.max()):.1f} V, projected potential max {float(vp.max()):.0f} V·Å")
print(f"h²/(2π m0 e) = {POTENTIAL_CONSTANT_VOLT_ANGSTROM2:.3f} V·Å²")
sigma = interaction_constant_rad_per_volt_angstrom(300.0)
print(f"σ_e(300 kV) = {sigma:.6f} rad/(V·Å): largest phase {sigma * float(vp.max()):.2f} rad")

# %%
ctf = CTFParams(15000.0, 15000.0, amplitude_contrast=0.07)
image = phase_object_image(vp, ctf, pixel_size_angstrom=pixel)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
axes[0].imshow(volume.sum(0), cmap="gray")
axes[0].set_title("projected potential")
axes[1].imshow(image, cmap="gray")
axes[1].set_title("image, 1.5 µm underfocus\n(protein dark)")
axes[2].imshow(weak_phase_contrast(vp, ctf, pixel_size_angstrom=pixel), cmap="gray")
axes[2].set_title("RELION convention\n(CTF × projection, protein white)")
for ax in axes:
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## Sharpen: the two approximations, and where each one is made (Forward model Sharpen Q2, Q5)
#
# 1. **Projection assumption** (thin specimen): the exit wave depends only on
#    $\int V\,dz$, i.e. the electron does not spread (Fresnel propagate) while crossing the
#    specimen.  Koeck & Karshikoff make it when they replace the 3D wave equation's solution
#    by $\psi = e^{i\sigma_e V_p}$.  It fails when the specimen is thicker than the depth of
#    field $\sim 1/(\lambda k^2)$ at the resolution $k$.
# 2. **Weak-phase approximation**: $e^{i\sigma_e V_p} \approx 1 + i\sigma_e V_p$, so the image is
#    *linear* in the potential and the CTF is a real filter $\sin\chi$.  It fails when the
#    phase $\sigma_e V_p$ is not $\ll 1$.  Keeping the exponential and the complex lens
#    transfer $e^{i\chi}$ is the "complex CTF" picture: needed when the phase is large (thick
#    ice, heavy atoms, high defocus spread) or for the non-linear $|\text{scattered}|^2$ term.
#
# Below: how far each approximation is from the better model, on this particle.

# %%
for scale in (1.0, 3.0):
    full = phase_object_image(vp * scale, ctf, pixel_size_angstrom=pixel) - 1
    weak = weak_phase_image(vp * scale, ctf, pixel_size_angstrom=pixel) - 1
    err = float((full - weak).norm() / weak.norm())
    print(f"projected potential ×{scale:.0f}: weak-phase relative error {err:.3f}")
slab = volume[box // 2 - 25 : box // 2 + 25]
numbers = compare_to_projection(slab, ctf, pixel_size_angstrom=pixel, slice_thickness_angstrom=2 * pixel)
print("50-voxel slab, multislice vs projection:", {k: round(v, 4) for k, v in numbers.items()})

# %% [markdown]
# ## Detector: DQE in 2D versus a 1D curve (Forward model Sharpen Q1)
#
# A counting detector's MTF is the square pixel's transfer function
# $\mathrm{sinc}(\pi\omega_x/2)\,\mathrm{sinc}(\pi\omega_y/2)$ — separable, not radial.
# Papers plot it in 1D (along an axis).  Applying that 1D curve radially, $f(|\omega|)$, is a
# different 2D filter: equal on the axes, wrong along the diagonals (lower in the corners for
# the sinc), and the noise it predicts there is wrong too.  Measured 2D NPS/MTF maps avoid it.

# %%
mtf_2d = counting_detector_mtf(64, rfft=False)
mtf_radial = counting_detector_mtf(64, separable=False, rfft=False)
print(f"at the corner (ω = Nyquist on both axes): separable {float(mtf_2d[0, 0]):.3f}, "
      f"1D curve applied radially {float(mtf_radial[0, 0]):.3f}")
print(f"at Nyquist along x both give {float(mtf_2d[32, 0]):.3f} (2/π)")

# %% [markdown]
# ## Real noise versus additive Gaussian noise (Forward model Blur Q1)
#
# Shot noise is Poisson: its variance equals the mean *in each pixel*, so it depends on the
# signal (a dark protein pixel is less noisy than a bright vacuum one) and is not Gaussian at
# ~1 e⁻/pixel.  The DQE multiplies the signal's spectral SNR by $\mathrm{DQE}(\omega)$; a
# detector whose point-spread covers several pixels makes the noise *correlated* between
# neighbours — pixel independence breaks (so does any interpolation, motion correction, or
# Fourier cropping applied before the noise model).  Below, the same expected image with
# Poisson noise at 1 e⁻/pixel: the variance follows the mean.

# %%
dose = 1.0
expected = dose * image.clamp(min=0)
expected = apply_dqe(expected, counting_detector_dqe(box, dqe_zero=0.8, dtype=expected.dtype))
counts = torch.poisson(expected.clamp(min=0).expand(200, -1, -1), generator=generator)
mean, var = counts.mean(0), counts.var(0)
print(f"Poisson: mean {float(mean.mean()):.3f}, variance {float(var.mean()):.3f} (equal), "
      f"variance/mean correlation across pixels "
      f"{float(torch.corrcoef(torch.stack([mean.flatten(), var.flatten()]))[0, 1]):.2f}")

# %% [markdown]
# ## Correlated pixel noise (Forward model Sharpen Q3)
#
# Sigworth's simple model — and the likelihood of RELION and cryoSPARC written in real space —
# assumes additive Gaussian noise, independent from pixel to pixel.  Vulović et al. do not:
# their noise is Poisson shot noise (signal-dependent, above), passed through the detector's
# noise transfer function (NTF), so neighbouring pixels share noise.  What breaks pixel
# independence, measured on pure noise (the correlation coefficient of horizontally adjacent
# pixels, and the noise power spectrum, flat for independent pixels):
#
# * a detector whose point spread covers more than one pixel (charge spreading, the MTF);
# * any resampling in real space — motion correction, magnification correction, rotation —
#   done by **bilinear interpolation**, which averages neighbours;
# * but *not* a shift by a Fourier phase ramp: it is unitary (only phases change), so white
#   noise stays white.
#
# A model with correlated (stationary) noise is still tractable: noise that is stationary is
# diagonal in Fourier space, so one weights each frequency by $1/\sigma^2(k)$ ("pre-whitening",
# RELION's per-shell noise spectra, lesson 06).  Non-stationary noise (ice thickness varying
# across a micrograph, the particle's own shot noise) is not.

# %%
gen_noise = torch.Generator().manual_seed(5)
side = 128 if FAST else 256
white = torch.randn(6, side, side, generator=gen_noise, dtype=torch.float64)  # 6 noise images
grid_xy = coordinate_grid((side, side), dtype=torch.float64)
step = torch.tensor([0.5, 0.3], dtype=torch.float64)  # (x, y) in pixels
cases = {
    "independent pixels": white,
    "detector spread (σ = 0.7 px)": apply_mtf(
        white, counting_detector_mtf(side, charge_spread_px=0.7, dtype=torch.float64)
    ),
    "bilinear shift (0.5, 0.3) px": torch.stack([interpolate_grid(w, grid_xy + step) for w in white]),
    "Fourier shift (0.5, 0.3) px": shift_image(white, step, pixel_size_angstrom=1.0),
}
fig, ax = plt.subplots(figsize=(6, 3.3))
for name, noise_images in cases.items():
    inner = noise_images[:, 2:-2, 2:-2]  # away from the zero-filled edge of the interpolated image
    rho = float(torch.corrcoef(torch.stack([inner[..., :-1].flatten(), inner[..., 1:].flatten()]))[0, 1])
    nps, freq = radial_power_spectrum(inner, ndim=2, pixel_size_angstrom=1.0)
    nps = nps.mean(0)
    ax.plot(freq[1:], nps[1:] / nps[1:].mean(), label=f"{name}: ρ = {rho:.2f}")
    print(f"{name:30s}: neighbour correlation {rho:+.3f}")
ax.set(xlabel="frequency [1/pixel]", ylabel="noise power / mean", title="noise power spectra")
ax.legend(fontsize=7)

# %% [markdown]
# ## Pooling data from different grids and data sets (Forward model Blur Q2, Q3)
#
# Pooling works exactly as far as the forward model is right for every image.  Two things
# that differ between grids, sessions and EMPIAR entries, and what each costs when ignored:
#
# **1. The noise level.**  A thin continuous carbon support adds its own scattering and shot
# noise; single-layer graphene adds almost none; thicker ice adds more.  Averaging $n_A$ images
# with noise variance $\sigma_A^2$ and $n_B$ with $\sigma_B^2$ with equal weights leaves noise
# variance $(n_A\sigma_A^2 + n_B\sigma_B^2)/(n_A+n_B)^2$; weighting each image by $1/\sigma^2$
# (the maximum-likelihood average, what a per-group noise model gives — RELION estimates
# $\sigma^2(k)$ per optics group) leaves $1/(n_A/\sigma_A^2 + n_B/\sigma_B^2)$, never worse than
# either group alone.  Unweighted, adding the noisy group can make the result *worse* than
# the clean group alone:

# %%
n_group = 100 if FAST else 400
signal = vp / vp.std()
sigma_a, sigma_b = 3.0, 6.0  # graphene-like and carbon-like groups (per-pixel SNR 1/9, 1/36)
group_a = signal + sigma_a * torch.randn(n_group, box, box, generator=gen_noise)
group_b = signal + sigma_b * torch.randn(n_group, box, box, generator=gen_noise)
estimates = {
    "group A alone": group_a.mean(0),
    "A + B, equal weights": torch.cat([group_a, group_b]).mean(0),
    "A + B, weights 1/σ²": (group_a.sum(0) / sigma_a**2 + group_b.sum(0) / sigma_b**2)
    / (n_group / sigma_a**2 + n_group / sigma_b**2),
}
predicted = {
    "group A alone": sigma_a**2 / n_group,
    "A + B, equal weights": (sigma_a**2 + sigma_b**2) / (4 * n_group),
    "A + B, weights 1/σ²": 1 / (n_group / sigma_a**2 + n_group / sigma_b**2),
}
for name, est in estimates.items():
    print(f"{name:22s}: residual noise variance {float((est - signal).var()):.4f} "
          f"(predicted {predicted[name]:.4f})")

# %% [markdown]
# **2. The pixel size.**  Nominal pixel sizes of different microscopes, sessions or detectors
# differ by 1–3 % from the true ones unless calibrated.  The same particle then appears
# slightly larger in one data set than in the other, and a feature at radius $R$ is misplaced
# by $\delta R$.  Beyond the frequency where that misplacement becomes a sizeable fraction of
# the wavelength, $2\pi k\,\delta R \gtrsim 1$ (resolution $d \lesssim 2\pi\,\delta R$, with $R$ a
# typical distance of features from the centre, here half the particle's radius), the two
# data sets disagree, and averaging them cancels signal instead of adding it.  Below: the Fourier ring correlation between the same
# particle imaged at the nominal pixel and at a pixel larger by $\delta$ (no noise at all).

# %%
fig, ax = plt.subplots(figsize=(6, 3.3))
radius = 0.5 * float((xyz - center).norm(dim=1).max())
for delta in (0.005, 0.01, 0.02, 0.04):
    other = projected_potential(xyz, model.elements, image_size=box,
                                pixel_size_angstrom=pixel * (1 + delta), bfactors_a2=30.0,
                                origin_angstrom=center)[0]
    frc = fourier_shell_correlation(vp, other, ndim=2)
    freq = torch.arange(len(frc)) / (box * pixel)
    ax.plot(freq, frc, label=f"δ = {100 * delta:.1f} %")
    below = torch.nonzero(frc < 0.5)
    where = f"{1 / float(freq[below[0, 0]]):.1f} Å" if len(below) else "never (to Nyquist)"
    print(f"pixel sizes {100 * delta:.1f} % apart: the two data sets' FRC falls below 0.5 at {where}"
          f" (estimate d ≈ 2π δ R = {2 * math.pi * delta * radius:.1f} Å with R = {radius:.0f} Å)")
ax.axhline(0.5, color="k", lw=0.5, ls=":")
ax.set(xlabel="k [1/Å]", ylabel="FRC(nominal, mis-scaled)", title="one particle, two pixel sizes")
ax.legend(fontsize=8)

# %% [markdown]
# So particles from different grids can be combined into one data set (Forward model Blur Q2)
# — in RELION as separate *optics groups*, each with its own pixel size, CTF parameters,
# noise spectrum and scale — and the combination helps when those are right.  Pooling EMPIAR
# entries (Forward model Blur Q3) asks for all of that across microscopes and detectors
# (different MTF/DQE, voltage, Cs, calibration), and adds what no optics model fixes:
# different buffers, ligands and conformations (heterogeneity that averages into blur), and
# different processing histories.  And the return is small: resolution improves only
# logarithmically with the number of particles (Rosenthal & Henderson 2003:
# $\ln N = B/(2d^2) + \text{const}$, so with $B = 100$ Å² a hundred-fold more particles moves
# 3.0 Å to about 2.2 Å — if nothing else limits it).

# %%
b_factor = 100.0
for d0 in (4.0, 3.0):
    d1 = (1 / d0**2 + 2 / b_factor * math.log(100)) ** -0.5
    print(f"B = {b_factor:.0f} Å²: {d0:.1f} Å with N particles → {d1:.2f} Å with 100 N")

# %% [markdown]
# ## Reconstructing with a better forward model (Forward model Sharpen Q4)
#
# Direct Fourier inversion (lesson 09) rests on the projection assumption: each image is a
# central slice of one 3D transform, so millions of images are inserted into one grid and
# divided once.  With a multislice (or higher-order) forward model there is no such slice:
# the image depends non-linearly on the whole 3D potential.  Reconstruction becomes an
# optimisation — start from a projection-based map, simulate every particle with the better
# model at its pose, and update the potential by the gradient of the misfit (back-propagating
# through the slices), iterating until it converges.  The bottlenecks: each image costs one
# FFT pair per slice instead of one slice extraction, needs the potential rotated into its
# frame (no reuse between poses), and the gradient needs the stored intermediate waves
# (memory ∝ slices); plus the potential must be sampled finely enough for the propagator
# (lesson 15 measures the cost).  An intermediate step used in practice is the Ewald-sphere
# correction (inserting images on curved instead of flat sections), which keeps direct
# inversion.

# %% [markdown]
# ## Take-aways
#
# * The potential is in volts, the projected potential in V·Å, the phase $\sigma_e V_p$ in rad;
#   TRPV1 reaches 0.4 rad at 300 kV, and the weak-phase image is already ~10 % off the full
#   phase-object image (the error grows linearly with the phase); worse in thick ice and at
#   low voltage.
# * The projection assumption holds to within ~2 % of the image for 50 Å slabs at 300 kV, but
#   at high resolution it degrades fast with thickness (table in lesson 15).
# * Combining data from different grids/sessions works if the forward model (CTF, dose, MTF,
#   B-factors, noise, scale, pixel size) is right for each image; weighting by each group's
#   noise makes pooling never worse than the best group; a 1–2 % pixel-size mismatch makes two
#   data sets disagree at high resolution.
# * Detector spread and real-space interpolation correlate pixel noise; Fourier shifts do not.
