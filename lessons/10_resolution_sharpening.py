# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Lesson 10 — Resolution and sharpening: FSC, SSNR, Guinier, B-factors
#
# **Syllabus:** no session of its own: the FSC, SSNR and B-factor background of the
# preferred-orientation master classes of 13 May 2021 (Tan: how the 3DFSC relates to the FSC)
# and 20 May 2021 (Baldwin Q1: SSNR ↔ FSC), and of the B-factors of phase contrast (14 Jan
# 2021, Phase contrast Blur Q5).
#
# **Blur**: two half maps, the Fourier shell correlation between them, what "3.5 Å at
# FSC = 0.143" means, why a tight mask makes a map look better than it is, and what a blurred
# and a sharpened map look like. **Sharpen**: FSC ↔ SSNR, the 0.143 and 0.5 thresholds, the
# phase-randomisation correction, the Guinier plot and the B-factor as a Gaussian envelope,
# FSC weighting — with numbers from a synthetic map whose true B-factor we know.
#
# **Questions answered here** (search for the tag):
#
# * **Baldwin Q1** — what the SSNR is, how it relates to the FSC, and what a sigmoid FSC means
#   for the SSNR → *Sharpen — from FSC to signal-to-noise* (and lesson 14)
# * **Phase contrast Blur Q5** — the B-factors of cryo-EM; here the one of a Guinier plot
#   → *Guinier plot and the B-factor*
# * **Tan 3DFSC** — the global FSC that the 3DFSC splits into cones (lesson 14) → *Blur*
#
# Library: `cryoglass.validate` (`fourier_shell_correlation`, `resolution_at_threshold`,
# `ssnr_from_fsc`, `masked_fsc`, `guinier_plot`, `fit_bfactor`, `sharpen`, `postprocess`,
# masks), `cryoglass.fourier.apply_bfactor`, `cryoglass.simulate.gaussian_map`.

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from cryoglass.fourier import apply_bfactor, shell_frequencies
from cryoglass.simulate import gaussian_map
from cryoglass.validate import (
    fit_bfactor,
    fourier_shell_correlation,
    fourier_shell_sizes,
    fsc_weight,
    guinier_plot,
    masked_fsc,
    postprocess,
    resolution_at_threshold,
    soft_sphere_mask,
    ssnr_from_fsc,
    threshold_mask,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
N = 48 if FAST else 80
PIXEL = 1.5  # Å
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Blur — a molecule, two half maps, one curve
#
# Our "molecule" is a few hundred small Gaussian blobs (atom-like), blurred by a known
# B-factor of 60 Å². A refinement splits the particles in two and reconstructs two *half
# maps*: the same signal, independent noise. We imitate that by adding white noise to two
# copies.

# %%
n_atoms = 300 if FAST else 600
radius = 0.38 * N * PIXEL
directions = torch.randn(n_atoms, 3, generator=g, dtype=torch.float64)
r = radius * torch.rand(n_atoms, 1, generator=g, dtype=torch.float64) ** (1 / 3)
centers = directions / directions.norm(dim=1, keepdim=True) * r
sharp_truth = gaussian_map(centers, shape=(N, N, N), pixel_size_angstrom=PIXEL, sigma_angstrom=1.0)
B_TRUE = 60.0
truth = apply_bfactor(sharp_truth, ndim=3, bfactor_a2=B_TRUE, pixel_size_angstrom=PIXEL)
sigma = 4.0 * float(truth.std())
half1 = truth + sigma * torch.randn(truth.shape, generator=g, dtype=torch.float64)
half2 = truth + sigma * torch.randn(truth.shape, generator=g, dtype=torch.float64)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
panels = [("truth", truth), ("half map 1", half1), ("half map 2", half2)]
for ax, (title, vol) in zip(axes, panels, strict=True):
    ax.imshow(vol[N // 2].numpy(), cmap="gray")
    ax.set_title(title)
    ax.axis("off")

# %% [markdown]
# The FSC compares the two half maps shell by shell in Fourier space: in each shell $S_i$ of
# frequencies with the same $|\mathbf k|$ it is the correlation coefficient of the two sets of
# complex numbers,
# $$\mathrm{FSC}_i = \frac{\mathrm{Re}\sum_{\mathbf k\in S_i} F_1(\mathbf k)\,F_2(\mathbf k)^*}
#   {\sqrt{\sum_{\mathbf k\in S_i}|F_1(\mathbf k)|^2\,\sum_{\mathbf k\in S_i}|F_2(\mathbf k)|^2}} .$$
# At low frequency the signal dominates and the halves agree (FSC ≈ 1); at high frequency only
# noise is left and the FSC falls to ≈ 0, wobbling by about $1/\sqrt{n_i}$ ($n_i$ voxels in the
# shell).

# %%
fsc = fourier_shell_correlation(half1, half2)
freq = shell_frequencies(fsc.shape[-1], box_size=N, pixel_size_angstrom=PIXEL)
res143 = float(resolution_at_threshold(fsc, threshold=0.143, box_size=N, pixel_size_angstrom=PIXEL))
res05 = float(resolution_at_threshold(fsc, threshold=0.5, box_size=N, pixel_size_angstrom=PIXEL))
noise_band = 3 / fourier_shell_sizes((N, N, N)).sqrt()

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(freq, fsc, label="FSC(half1, half2)")
ax.plot(freq[2:], noise_band[2:], ":", color="0.5", label="3/√(shell size)")
ax.axhline(0.143, ls="--", color="k", lw=0.7)
ax.axvline(1 / res143, ls=":", color="k", lw=0.7)
ax.set(xlabel="k [1/Å]", ylabel="FSC", title=f"unmasked: {res143:.2f} Å at 0.143")
ax.legend()
print(f"unmasked half-map FSC: {res143:.2f} Å at 0.143, {res05:.2f} Å at 0.5")

# %% [markdown]
# ## Sharpen — from FSC to signal-to-noise
#
# Write each half as signal plus noise, $X_j = S + N_j$, with the noise independent and of
# equal power.  Then, per shell,
# $$\mathrm{FSC} = \frac{\langle |S|^2\rangle}{\langle|S|^2\rangle + \langle|N|^2\rangle}
#   = \frac{\mathrm{SSNR}_{\text{half}}}{1 + \mathrm{SSNR}_{\text{half}}}
#   \quad\Longleftrightarrow\quad \mathrm{SSNR}_{\text{half}} = \frac{\mathrm{FSC}}{1 - \mathrm{FSC}} .$$
# Averaging the two halves halves the noise power: $\mathrm{SSNR}_{\text{full}} =
# 2\,\mathrm{FSC}/(1 - \mathrm{FSC})$.  The 0.143 threshold (Rosenthal & Henderson 2003) is the
# FSC at which the *full* map correlates with the truth at
# $$C_{\text{ref}} = \sqrt{\frac{2\,\mathrm{FSC}}{1 + \mathrm{FSC}}} = 0.5:
#   \qquad C_{\text{ref}}(0.143) = \sqrt{0.286/1.143} = 0.50 .$$
# That is why a half-map FSC uses 0.143 but a map-to-model FSC uses 0.5.  A sigmoid FSC is an
# SSNR that falls steeply through 1/6 (FSC 0.143) and 1 (FSC 0.5) — roughly exponentially in
# $k^2$ (the Guinier fall-off below), see lesson 14.

# %%
for f in (0.8, 0.5, 0.143):
    t = torch.tensor(f, dtype=torch.float64)
    print(
        f"FSC {f:5.3f}: SNR(half) = {float(ssnr_from_fsc(t)):.3f}, "
        f"SNR(full) = {float(ssnr_from_fsc(t, full_map=True)):.3f}, "
        f"C_ref = {float(fsc_weight(t)):.3f}"
    )
fsc_truth = fourier_shell_correlation(0.5 * (half1 + half2), truth)
res_truth = float(
    resolution_at_threshold(fsc_truth, threshold=0.5, box_size=N, pixel_size_angstrom=PIXEL)
)
print(f"full map vs truth at 0.5: {res_truth:.2f} Å (half maps at 0.143: {res143:.2f} Å)")

# %% [markdown]
# ## Masks inflate the FSC — phase randomisation tells by how much
#
# Most of the box is solvent noise, so a mask around the molecule raises the FSC. But a
# mask is a multiplication in real space, i.e. a convolution in Fourier space: it smears each
# shell's content into neighbouring shells and creates correlation where there is none. Chen et
# al. (2013) measure that artefact: randomise the phases of both halves beyond the resolution
# where the unmasked FSC drops below 0.8, mask, and compute FSC_n. Any correlation left there is
# the mask's; FSC_true = (FSC_t − FSC_n)/(1 − FSC_n).

# %%
mask = threshold_mask(truth, threshold=0.2 * float(truth.max()), extend_px=2, soft_edge_px=4)
tight = soft_sphere_mask((N, N, N), radius_px=N / 4, edge_width_px=0, dtype=torch.float64)
curves = {}
for name, m in (("soft mask", mask), ("hard sphere", tight)):
    curves[name] = masked_fsc(half1, half2, m, generator=torch.Generator().manual_seed(1))
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, (name, c) in zip(axes, curves.items(), strict=True):
    for label, curve in (
        ("unmasked", c.unmasked),
        ("masked", c.masked),
        ("phase-randomised, masked", c.randomized),
        ("corrected", c.corrected),
    ):
        ax.plot(freq, curve, label=label)
    ax.axhline(0.143, ls="--", color="k", lw=0.7)
    res = float(
        resolution_at_threshold(c.corrected, box_size=N, pixel_size_angstrom=PIXEL)
    )
    ax.set(xlabel="k [1/Å]", title=f"{name}: corrected {res:.2f} Å")
axes[0].set_ylabel("FSC")
axes[0].legend(fontsize=8)

# %% [markdown]
# ## Guinier plot and the B-factor
#
# Every Gaussian-like blur — motion, radiation damage, alignment error, flexibility —
# multiplies amplitudes by $e^{-Bk^2/4}$ ($k = 1/d$).  On a **Guinier plot**, the logarithm of
# the shell-averaged amplitude against $k^2$,
# $$\ln\langle|F(k)|\rangle = \ln\langle|F_0(k)|\rangle - \frac{B}{4}\,k^2 ,$$
# that is a straight line of slope $-B/4$.  For atom-like maps $\ln\langle|F_0|\rangle$ beyond
# ~10 Å is nearly flat (the "Wilson" regime), so a line fitted from 10 Å to the resolution
# measures the overall $B$.  Our map carries $B = 60$ Å² plus the blobs' own width
# ($\sigma = 1$ Å ≙ $8\pi^2\sigma^2 \approx 79$ Å²); the fit lands within ~15 % of their sum, because
# the arrangement of the blobs (the molecule's own structure factor) is not perfectly flat
# between 10 Å and the resolution.  Sharpening multiplies by $e^{+|B|k^2/4}$ (RELION writes a
# negative B).

# %%
k2, ln_truth = guinier_plot(truth, pixel_size_angstrom=PIXEL)
fit = fit_bfactor(k2, ln_truth, low_resolution_angstrom=10.0, high_resolution_angstrom=res143)
expected = B_TRUE + 8 * math.pi**2 * 1.0**2
print(f"fitted B on the noise-free map: {float(fit.bfactor_a2):.1f} Å² "
      f"(−{expected:.1f} expected from blur + blob width)")

# %% [markdown]
# ## Blur vs sharpen, the whole recipe
#
# `postprocess` follows relion_postprocess: masked + corrected FSC → resolution; FSC weight
# √(2FSC/(1+FSC)) per shell (down-weights noisy shells); B from the Guinier fit of the
# weighted map; exp(−Bk²/4) with the negative B (sharpening); a low-pass at the resolution so
# that boosted noise beyond it does not come back.

# %%
result = postprocess(
    half1, half2, pixel_size_angstrom=PIXEL, mask=mask, generator=torch.Generator().manual_seed(2)
)
print(
    f"postprocess: {result.resolution_angstrom:.2f} Å, B = {result.bfactor_a2:.1f} Å² "
    f"(RELION sign: negative = sharpening)"
)
blurred = apply_bfactor(truth, ndim=3, bfactor_a2=200.0, pixel_size_angstrom=PIXEL)
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
panels = [
    ("blurred truth (B = +200)", blurred),
    ("average of halves", 0.5 * (half1 + half2)),
    ("FSC-weighted, low-passed", result.unsharpened * mask),
    (f"sharpened (B = {result.bfactor_a2:.0f})", result.sharpened * mask),
]
for ax, (title, vol) in zip(axes, panels, strict=True):
    ax.imshow(vol[N // 2].numpy(), cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig, ax = plt.subplots(figsize=(7, 3.6))
for label, curve in (
    ("input", result.guinier_input),
    ("FSC-weighted", result.guinier_weighted),
    ("sharpened", result.guinier_sharpened),
):
    keep = torch.isfinite(curve)
    ax.plot(result.guinier_k2[keep][1:], curve[keep][1:], label=label)
ax.set(xlabel="k² [1/Å²]", ylabel="ln⟨|F|⟩", title="Guinier plot")
ax.legend()

# %% [markdown]
# **Questions to answer with this notebook**: Why does the FSC fall to zero and not below?
# (It wobbles around zero by ≈ 1/√(shell size).) Why 0.143 for half maps but 0.5 against a
# model? (C_ref.) What does the phase-randomised curve measure, and why is it larger for the
# hard sphere? What physical effects does one B-factor lump together, and why can't we sharpen
# beyond the resolution? (The FSC weight and the low-pass stop amplified noise.)

# %% [markdown]
# ## Map tools: a mask, a new pixel size, local resolution, an FSC for deposition
#
# Between refinement and model building four tools come back again and again
# (`cryoglass mask`, `resample`, `localres`, `fsc --xml/--star`); here is what each computes.
#
# **A mask as relion_mask_create makes it.** Low-pass the map (here at 15 Å, rounded to a whole
# Fourier shell as RELION does), binarise it at a threshold (here Otsu's: the level that best
# splits the voxel histogram in two), grow the binary mask by `extend_px` pixels (every voxel
# closer than that joins), and add a soft edge m(s) = ½(1 + cos(π s / W)) at distance s < W
# from it. The soft edge matters: a hard edge is a sharp step whose transform rings across
# Fourier space, and the phase-randomised FSC above showed what that costs.

# %%
from cryoglass.validate import mask_from_map

average = 0.5 * (half1 + half2)
made, level = mask_from_map(
    average, threshold=None, extend_px=3.0, soft_edge_px=6.0, lowpass_angstrom=15.0,
    pixel_size_angstrom=PIXEL,
)
inside = made > 0.5
print(
    f"Otsu threshold {level:.4f}: the mask covers {100 * float(inside.double().mean()):.1f} % "
    f"of the box ({float(inside.sum()) * PIXEL**3 / 1000:.0f} nm³)"
)
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(average[N // 2].numpy(), cmap="gray")
ax.contour(made[N // 2].numpy(), levels=[0.5], colors="orange")
ax.contour(made[N // 2].numpy(), levels=[0.01, 0.99], colors="orange", linestyles="dashed")
ax.set_title("mask: 0.5 solid, soft edge dashed")
ax.axis("off")

# %% [markdown]
# **Resampling by Fourier cropping.** Cutting the central M × M × M block out of the N-box
# spectrum keeps every Fourier coefficient up to the new Nyquist and throws away the rest:
# the pixel size becomes pixel · N/M, the field of view N · pixel stays, and nothing aliases.
# Shell i of the small box is the same spatial frequency i/(M · pixel') = i/(N · pixel) as
# shell i of the big one, so the FSC of the cropped halves *is* the FSC of the originals,
# shell by shell, up to the new Nyquist (only the Nyquist shell differs: two bins fold onto it).
# relion_image_handler --rescale_angpix rounds M to an even box, as `rescaled_box_size` does.

# %%
from cryoglass.fourier.rescale import rescaled_box_size, resize_fourier

M, new_pixel = rescaled_box_size(N, pixel_size_angstrom=PIXEL, new_pixel_size_angstrom=2 * PIXEL)
small1, small2 = (resize_fourier(h, (M, M, M)) for h in (half1, half2))
fsc_small = fourier_shell_correlation(small1, small2)
print(f"{N}³ at {PIXEL} Å → {M}³ at {new_pixel:.3f} Å")
print(
    "largest FSC difference below the new Nyquist: "
    f"{float((fsc_small[: M // 2] - fsc[: M // 2]).abs().max()):.2e}"
)

# %% [markdown]
# **Local resolution by windowed FSC** (relion_postprocess --locres, blocres). Parts of a
# molecule differ: a flexible domain is blurred more than the core. Cut both half maps with a
# soft sphere around a point c, m_c(x), and compute the FSC of m_c·h1 and m_c·h2, corrected for
# the window's own correlation by phase randomisation exactly as the global masked FSC; where
# it drops below 0.143 is the window's resolution d_c. Windows every 15 Å cover the map, and
# each voxel gets the weighted harmonic mean d(x) = Σ m_c(x) / Σ (m_c(x)/d_c). Because a
# windowed map is zero outside a small cube, its FSC can be computed in a box about twice the
# window instead of the whole map — that is why `local_resolution` is fast. We blur the
# molecule's +x half by B = +300 Å² and watch the local resolution follow.

# %%
from cryoglass.report.maps import plot_localres_histogram, plot_localres_slices
from cryoglass.validate import LocalResolutionParams, local_resolution

right = torch.arange(N) >= N // 2  # the +x half of the box
blurred = apply_bfactor(truth, ndim=3, bfactor_a2=300.0, pixel_size_angstrom=PIXEL)
uneven = torch.where(right, blurred, truth)
uneven1 = uneven + sigma * torch.randn(uneven.shape, generator=g, dtype=torch.float64)
uneven2 = uneven + sigma * torch.randn(uneven.shape, generator=g, dtype=torch.float64)
local = local_resolution(
    uneven1.float(), uneven2.float(), pixel_size_angstrom=PIXEL,
    params=LocalResolutionParams(sampling_angstrom=15.0), mask=made,
    generator=torch.Generator().manual_seed(3),
)
res_map = local.resolution_angstrom.double()
in_mask = (made > 0.5) & (res_map > 0)
left_side = float(res_map[in_mask & ~right].median())
right_side = float(res_map[in_mask & right].median())
print(
    f"{local.centers.shape[0]} windows in a {local.fft_box}³ FFT box; median local resolution "
    f"{left_side:.2f} Å on the sharp side, {right_side:.2f} Å on the blurred side"
)
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
plot_localres_slices(axes[:3], local.filtered, res_map, mask=made)
plot_localres_histogram(axes[3], res_map[in_mask], median_angstrom=float(res_map[in_mask].median()))

# %% [markdown]
# **An FSC the EMDB accepts.** A deposition asks for the half maps and, optionally, the FSC
# curve as XML (`<fsc><coordinate><x>1/Å</x><y>FSC</y></coordinate>…`); RELION keeps the same
# curves in postprocess.star's `data_fsc` table (rlnSpectralIndex, rlnResolution,
# rlnAngstromResolution, rlnFourierShellCorrelationCorrected, …). Both come from one FSC
# summary, so the numbers are those `cryoglass fsc` prints. (Written to a temporary folder
# here; `cryoglass fsc half1.mrc half2.mrc --mask mask.mrc --xml fsc.xml --star fsc.star`.)

# %%
import tempfile
from pathlib import Path

from cryoglass.io.fsc_tables import fsc_star_tables, write_fsc_xml
from cryoglass.validate import fsc_summary

soft = curves["soft mask"]
summary = fsc_summary(
    soft.corrected, box_size=N, pixel_size_angstrom=PIXEL,
    curves={"fsc_unmasked": soft.unmasked, "fsc_masked": soft.masked,
            "fsc_phase_randomized": soft.randomized},
)
tables = fsc_star_tables(summary)
print(tables["fsc"].head(4).to_string())
print("rlnFinalResolution (RELION's: last shell ≥ 0.143):", round(tables["general"]["rlnFinalResolution"], 3))
with tempfile.TemporaryDirectory() as folder:
    text = write_fsc_xml(Path(folder) / "fsc.xml", summary).read_text()
print("\n".join(text.splitlines()[:7]))

# %% [markdown]
# **Questions**: Why must the mask be soft, and what happens to the corrected FSC if the soft
# edge is 0? Why is Fourier cropping better than averaging 2 × 2 × 2 blocks of voxels (think
# of what each does to the frequencies just below the new Nyquist)? How does the window size
# trade the precision of each local FSC against how local it is? Why does the local
# resolution stay poor a few Å into the sharp half near the boundary?
