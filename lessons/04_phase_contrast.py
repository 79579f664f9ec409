# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 04 — Phase contrast in the EM: the CTF explorer
#
# **Syllabus:** 14 Jan 2021 (Blur) and 21 Jan 2021 (Sharpen): phase-contrast imaging in the EM.
#
# Modules taught: `cryoglass.ctf` (`CTFParams`, `ctf_1d`, `ctf_2d`, `ctf_zeros_inv_angstrom`,
# `multiply_ctf`, `phase_flip`, `wiener_filter`) and `cryoglass.simulate.weak_phase_image`.
#
# The CTF in cryoglass (RELION 3.1's formula and sign; Å, 1/Å, degrees):
#
# $$\mathrm{CTF}(\mathbf k) = s\,\sin\chi(\mathbf k)\,e^{-Bk^2/4},\qquad
#   \chi = \pi\lambda\Delta f(\alpha)k^2 - \tfrac{\pi}{2}C_s\lambda^3k^4 + \varphi
#   + \arcsin Q_0,$$
#
# with $\Delta f(\alpha) = \tfrac12[(\Delta_u+\Delta_v) + (\Delta_u-\Delta_v)\cos 2(\alpha -
# \alpha_{ast})]$, defocus positive for underfocus.  It is positive ($\approx Q_0$) at low
# frequency in underfocus.  The **raw image** on the detector is $1 - 2\,\mathcal F^{-1}[\mathrm{CTF}
# \cdot\mathcal F[\sigma_e V_p]]/\sqrt{1-Q_0^2}$: protein dark in underfocus (lesson 01).
# RELION's particle images are contrast-inverted and modelled as CTF × projection
# (`multiply_ctf`): protein white in underfocus.
#
# **Questions answered here** (search for the tag; numbered as in the syllabus):
#
# * **Phase contrast Blur Q1** — the "signal star" after the CTF → *Q1*
# * **Phase contrast Blur Q2** — B negative vs positive → *Q2, Q5, Q6*
# * **Phase contrast Blur Q3** — why Thon rings are easier to see in an FFT at high
#   magnification → *Q3*
# * **Phase contrast Blur Q4** — underfocus vs overfocus by eye, and why → *Q4*
# * **Phase contrast Blur Q5** — the physics in this B; the other B-factors of cryo-EM
#   → *Q2, Q5, Q6*
# * **Phase contrast Blur Q6** — does "B = 100 Å² attenuates 5 Å⁻¹ to 1/e" agree with the
#   formula and the notebook? → *Q2, Q5, Q6*
# * **Phase contrast Blur Q7** — more or less amplitude contrast; a wrong $Q_0$ in CTF fitting
#   → *Q7*
# * **Phase contrast Blur Q8** — how far defocus delocalises information; real micrographs
#   → *Q8*
# * **Phase contrast Sharpen** (21 Jan 2021; pre-reading only: Philippsen et al. 2007, Voortman
#   et al. 2011, 2012) — tilted and thick specimens, where the CTF varies across the image
#   → *Tilted and thick specimens*

# %%
import math
import os
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.ctf import (
    CTFParams,
    ctf_1d,
    ctf_2d,
    ctf_zeros_inv_angstrom,
    electron_wavelength_angstrom,
    multiply_ctf,
    phase_flip,
    wiener_filter,
)
from cryoglass.simulate import weak_phase_image

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
N = 128 if FAST else 256
F64 = torch.float64
k = torch.linspace(0.0, 0.5, 1500, dtype=F64)
kk = k.numpy()

# %% [markdown]
# ## Blur part
#
# ### The explorer: one knob at a time

# %%
base = dict(defocus_u_angstrom=15000.0, defocus_v_angstrom=15000.0)
knobs = {
    "defocus [Å]": ("defocus", [8000.0, 15000.0, 25000.0]),
    "B-factor [Å²]": ("bfactor_a2", [0.0, 50.0, 150.0]),
    "amplitude contrast Q0": ("amplitude_contrast", [0.0, 0.1, 0.3]),
    "Cs [mm]": ("cs_mm", [0.0, 2.7, 4.0]),
}
fig, axes = plt.subplots(len(knobs), 1, figsize=(9, 9), sharex=True)
for ax, (title, (field, values)) in zip(axes, knobs.items(), strict=True):
    for value in values:
        if field == "defocus":
            p = CTFParams(value, value)
        else:
            p = CTFParams(**base, **{field: value})
        ax.plot(kk, ctf_1d(p, k).numpy(), lw=0.8, label=f"{value:g}")
    ax.set(ylabel="CTF", title=title)
    ax.legend(fontsize=7, loc="upper right")
axes[-1].set_xlabel("spatial frequency k [1/Å]")
fig.tight_layout()

# %% [markdown]
# ### Q1 — the signal star through the CTF (Phase contrast Blur Q1)
#
# A "signal star" (Siemens star) contains every spatial frequency: the spokes get closer
# towards the centre.  Applying the CTF (multiplying its Fourier transform, equivalent to
# convolving the image with the CTF's point-spread function) gives rings: at radii where the
# local spoke frequency sits on a CTF zero the spokes vanish, and between consecutive zeros
# the contrast reverses (black and white spokes swap).  Phase flipping undoes the reversals
# but not the missing rings; a Wiener filter also boosts weak frequencies without blowing up
# the zeros.

# %%
pixel = 2.0
yx = torch.arange(N, dtype=F64) - N // 2
y, x = torch.meshgrid(yx, yx, indexing="ij")
star = torch.sign(torch.sin(36 * torch.atan2(y, x))) * (torch.hypot(x, y) < 0.45 * N)
p_star = CTFParams(20000.0, 20000.0, cs_mm=2.7)
panels = {
    "star": star,
    "× CTF": multiply_ctf(star, p_star, pixel_size_angstrom=pixel),
    "phase-flipped": phase_flip(
        multiply_ctf(star, p_star, pixel_size_angstrom=pixel), p_star, pixel_size_angstrom=pixel
    ),
    "Wiener (ε = 0.1)": wiener_filter(
        multiply_ctf(star, p_star, pixel_size_angstrom=pixel), p_star, pixel_size_angstrom=pixel
    ),
}
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
for ax, (title, img) in zip(axes, panels.items(), strict=True):
    ax.imshow(img.numpy(), cmap="gray")
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ### Q4 — underfocus vs overfocus (Phase contrast Blur Q4)
#
# In underfocus ($\Delta f > 0$) defocus and spherical aberration have opposite signs in
# $\chi$, so $\chi$ grows slowly at first: the first lobe of the CTF is broad and positive.
# The raw image carries $-2\,\mathrm{CTF}$ (lesson 01), so **protein is dark in the raw image**,
# surrounded by a bright Fresnel fringe; in RELION's contrast-inverted particle images
# (CTF × projection) the same particle is white.  In overfocus both terms add up: the first
# lobe is negative (contrast reversed at low resolution: bright protein in the raw image) and
# the rings get closer together faster.  The difference is visible by eye — in the contrast
# of large features and in the ring spacing; the same $|\Delta f|$ gives different zeros.  (In
# overfocus the tiny positive lobe from $Q_0$ at $k \to 0$ ends almost at once, at ~70 Å here.)

# %%
p_under = CTFParams(8000.0, 8000.0)
p_over = CTFParams(-8000.0, -8000.0)
print("first zeros, underfocus [Å]:", (1 / ctf_zeros_inv_angstrom(p_under, 5)).numpy().round(2))
print("first zeros, overfocus  [Å]:", (1 / ctf_zeros_inv_angstrom(p_over, 5)).numpy().round(2))
blob = torch.exp(-(x**2 + y**2) / (2 * 6.0**2)) + 0.5 * torch.exp(-((x - 20) ** 2 + y**2) / 8)
potential = 100.0 * blob  # projected potential [V·Å]
fig, axes = plt.subplots(1, 5, figsize=(16, 3.3))
axes[0].plot(kk, ctf_1d(p_under, k).numpy(), lw=0.8, label="underfocus 0.8 µm")
axes[0].plot(kk, ctf_1d(p_over, k).numpy(), lw=0.8, label="overfocus 0.8 µm")
axes[0].set(xlim=(0, 0.25), xlabel="k [1/Å]", ylabel="CTF")
axes[0].legend(fontsize=7)
centre = N // 2, N // 2
raws = [weak_phase_image(potential, pp, pixel_size_angstrom=pixel) for pp in (p_under, p_over)]
particles = [multiply_ctf(potential, pp, pixel_size_angstrom=pixel) for pp in (p_under, p_over)]
span_raw = max(float((r - 1).abs().max()) for r in raws)  # one grey scale: vacuum = mid-grey
span_particle = max(float(q.abs().max()) for q in particles)
for ax, name, raw in zip(axes[1:3], ("underfocus", "overfocus"), raws, strict=True):
    ax.imshow(raw.numpy(), cmap="gray", vmin=1 - span_raw, vmax=1 + span_raw)
    ax.set_title(f"raw image, {name}\ncentre {float(raw[centre]):.4f} (vacuum 1)", fontsize=9)
    ax.axis("off")
for ax, name, particle in zip(axes[3:], ("underfocus", "overfocus"), particles, strict=True):
    ax.imshow(particle.numpy(), cmap="gray", vmin=-span_particle, vmax=span_particle)
    ax.set_title(f"RELION particle (CTF × proj.), {name}\ncentre {float(particle[centre]):+.2f}",
                 fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ### Q3 — magnification and the FFT (Phase contrast Blur Q3)
#
# The CTF is fixed in 1/Å by the optics.  The FFT of an image of $N$ pixels of size $p$ covers
# frequencies up to Nyquist $1/(2p)$.  Magnification sets $p$.  At high magnification (small
# $p$) the FFT reaches high frequency and many rings appear, each several pixels wide.  At low
# magnification the FFT stops early and rings beyond Nyquist **alias** back in as moiré
# patterns; also the ring spacing in pixels $\Delta r \approx N p\,\Delta k$ changes.  (And at
# high magnification the area per pixel is small, so for a given dose per Å² the counts per
# pixel are low — yet the rings are summed over many pixels per ring.)

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for ax, px in zip(axes, [0.8, 2.0, 5.0], strict=True):
    image = ctf_2d(CTFParams(20000.0, 18000.0, 30.0), image_size=N, pixel_size_angstrom=px, rfft=False)
    ax.imshow(image.numpy() ** 2, cmap="gray")
    ax.set_title(f"pixel {px} Å: Nyquist {1 / (2 * px):.2f} 1/Å")
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ### Q7 — amplitude contrast (Phase contrast Blur Q7)
#
# $Q_0$ adds a $\cos\chi$ term, strongest where $\chi \approx 0$: it fills in the low
# frequencies (CTF(0) = $Q_0$ instead of 0).  More amplitude contrast would mean more
# low-resolution contrast for picking — but we cannot choose it: ~7–10 % for ice-embedded
# protein.  What $Q_0$ does to CTF *fitting*: it shifts every zero by the same amount in
# $k^2$, almost exactly what a small change of defocus does over the first few rings.  So the
# two are nearly degenerate; estimators fix $Q_0$ (e.g. 0.07 or 0.1) and let defocus absorb
# the difference.  If unsure, keep the usual value: the fitted defocus shifts by a few tens
# of Å, far below the precision that matters.

# %%
lam = electron_wavelength_angstrom(300.0)
true = CTFParams(15000.0, 15000.0, amplitude_contrast=0.10)
zeros_true = ctf_zeros_inv_angstrom(true, 6, dtype=F64)
trial = torch.linspace(14800.0, 15200.0, 4001, dtype=F64)
zeros_trial = ctf_zeros_inv_angstrom(CTFParams(trial, trial, amplitude_contrast=0.07), 6)
best = trial[((zeros_trial - zeros_true) ** 2).sum(-1).argmin()]
print(f"fit with Q0 = 0.07 to zeros made with Q0 = 0.10: defocus {float(best):.0f} Å (true 15000)")
residual = ctf_zeros_inv_angstrom(CTFParams(best, best, amplitude_contrast=0.07), 6) - zeros_true
print("remaining zero mismatch [1/Å]:", residual.numpy().round(6))

# %% [markdown]
# ### Q8 — delocalisation (Phase contrast Blur Q8)
#
# A frequency $k$ leaves the image displaced by $R(k) = \frac{1}{2\pi}\frac{d\chi}{dk} =
# \lambda\Delta f\,k - C_s\lambda^3k^3$ (the lens bends each scattered beam by a slightly
# different amount).  A point's information spreads over a disc of that radius.  More
# defocus, more delocalisation; on a real micrograph that information leaves the particle's
# box (box sizes must be ≳ particle + 2R) and neighbours' information leaks in.  FFT-based
# filtering of a box also wraps it round to the opposite edge (below, the largest defocus).

# %%
for df in (5000.0, 20000.0, 40000.0):
    for res in (8.0, 3.0):
        kr = 1 / res
        delocal = lam * df * kr - 2.7e7 * lam**3 * kr**3
        print(f"Δf = {df / 1e4:3.1f} µm, {res:3.0f} Å detail: R = {delocal:6.1f} Å")
point = torch.zeros(N, N, dtype=F64)
point[N // 2, N // 2] = 1.0
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for ax, df in zip(axes, (5000.0, 20000.0, 40000.0), strict=True):
    psf = multiply_ctf(point, CTFParams(df, df, bfactor_a2=20.0), pixel_size_angstrom=1.0)
    ax.imshow(psf.numpy(), cmap="gray", vmin=-0.01, vmax=0.01)
    ax.set_title(f"point spread, Δf = {df / 1e4:.1f} µm, {N} Å box")
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## Sharpen part
#
# ### Q2, Q5, Q6 — the B-factor envelope (Phase contrast Blur Q2, Q5, Q6)
#
# The envelope $e^{-Bk^2/4}$ multiplies the CTF amplitude.  $B > 0$ damps high frequencies
# (blur: drift, charging, beam-induced motion, partial coherence of the source, detector
# MTF, radiation damage all lumped into one Gaussian).  $B < 0$ would *amplify* high
# frequencies — unphysical for the microscope, but exactly what map sharpening does with a
# negative B.  The name comes from crystallography's Debye–Waller temperature factor
# $e^{-B s^2/4}$ ($s = 1/d$): a Gaussian blur of atomic positions with mean-square displacement
# $\langle u^2\rangle$ gives $B = 8\pi^2\langle u^2\rangle$.  Others in cryo-EM: the per-particle
# and per-frame B in Bayesian polishing (dose weighting), the global B of a Guinier plot used
# for sharpening, atomic B-factors of a model.  All are a Gaussian fall-off in frequency, hence
# one name.
#
# The quoted sentence "B = 100 Å² attenuates 5 Å⁻¹ to 1/e" means *5 Å* detail, i.e.
# $k = 0.2$ Å⁻¹: $e^{-100 \cdot 0.2^2/4} = e^{-1}$.  Literally 5 Å⁻¹ would give $e^{-625}$.
# Interactive notebooks that write the envelope as $e^{-Bk^2}$ (no /4) or use $k$ in 1/pixel
# instead of 1/Å disagree with this by a factor 4 or by the pixel size squared.

# %%
envelope_only = CTFParams(0.0, 0.0, cs_mm=0.0, amplitude_contrast=0.0, phase_shift_deg=90.0)
for b in (-50.0, 50.0, 100.0):
    env = ctf_1d(replace(envelope_only, bfactor_a2=b), torch.tensor([0.2], dtype=F64))
    print(f"B = {b:6.1f} Å²: envelope at 5 Å = {float(env[0]):.4f}   (e^-1 = {math.exp(-1):.4f})")

# %% [markdown]
# ### Tilted and thick specimens (Phase contrast Sharpen, 21 Jan 2021)
#
# The CTF assumes every scatterer sits at the same height.  In a tilted specimen (tilt angle
# $\theta$) the defocus changes linearly across the image, $\Delta f(x) = \Delta f_0 + x\tan\theta$,
# so one CTF per micrograph is wrong away from the tilt axis (Philippsen et al. 2007);
# Voortman et al. correct strips or use a fast local correction.  In a thick specimen each
# height $z$ has its own defocus $\Delta f_0 + z$ — the same effect along the beam, which is why
# thick samples blur out the high-frequency rings (the "defocus spread" of lesson 01) and why
# per-particle defocus refinement helps.

# %%
tilt = math.radians(30.0)
field = 4000.0  # Å across the micrograph
for x_pos in (-field / 2, 0.0, field / 2):
    local = 15000.0 + x_pos * math.tan(tilt)
    zeros = ctf_zeros_inv_angstrom(CTFParams(local, local), 8)
    print(f"x = {x_pos:6.0f} Å: Δf = {local:7.0f} Å, 8th zero at {1 / float(zeros[-1]):.2f} Å")
err = ctf_1d(CTFParams(15000.0 + field / 2 * math.tan(tilt), 15000.0 + field / 2 * math.tan(tilt)), k)
ref = ctf_1d(CTFParams(15000.0, 15000.0), k)
sign_ok = np.mean((torch.sign(err) == torch.sign(ref)).numpy()[k.numpy() < 0.25])
print(f"edge of a 30° tilted image corrected with the centre's CTF: right sign at {100 * sign_ok:.0f} % of k < 0.25 1/Å")
