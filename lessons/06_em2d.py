# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 06 — 2D classification by expectation–maximisation
#
# **Syllabus:** 18 Feb 2021 (Sharpen): 2D expectation–maximisation (pre-reading: Eddy 2004 on
# Bayesian statistics, Nelson 2019 ch. 12, the TU Delft practical).
#
# Module taught: `cryoglass.classify` (`classify_2d`, `Class2DSettings`, `initial_model`,
# `em_iteration`, `rotate_images`, `simulate_views`, `adjusted_rand_index`), the engine of
# `cryoglass class2d`.
#
# **Questions answered here** (search for the tag):
#
# * **EM Sharpen Q1** — what is uncertain in cryo-EM analysis, what are good priors, and do
#   people integrate over the uncertainty or use point estimates? → *The Bayesian view*
# * **EM Sharpen Q2** — why do the 2D-classification equations work in Fourier space, and what
#   has to change? → *Why Fourier space*
# * **EM Sharpen Q3** — Nelson has one class: what changes for many?  What is constant during
#   a round, what is updated between rounds? → *From one class to many*
# * **EM Sharpen Q4** — how does a prior change the log loss; which forms are convenient and
#   what do they mean? → *The prior in the log loss*
# * **EM Sharpen Q5** — Gaussian noise in real and Fourier space; radially dependent
#   (coloured) noise and pixel-dependent noise → *Gaussian noise in real space and in Fourier
#   space*

# %%
import math
import os
from dataclasses import replace

import matplotlib.pyplot as plt
import torch

from cryoglass.classify import (
    Class2DSettings,
    adjusted_rand_index,
    classify_2d,
    em_iteration,
    initial_model,
    inplane_error_deg,
    rotate_images,
    simulate_views,
    tensor_batches,
)
from cryoglass.data import model_map
from cryoglass.fourier import radial_average, shift_image

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)
generator = torch.Generator().manual_seed(0)
N, PIXEL = (32, 5.0) if FAST else (48, 3.5)
COUNT = 360 if FAST else 900

# %% [markdown]
# ## Blur: many noisy copies, a few hidden views
#
# A 2D classification data set is thousands of images of the same molecule lying in a few
# preferred ways on the grid.  Each image is one of K *views*, turned by an unknown in-plane
# angle ψ, shifted by an unknown (x, y), blurred by the microscope's CTF and buried in noise.
# We make such a set from the TRPV1 model: three views, SNR 0.1.

# %%
volume = model_map(box=N, pixel_size_angstrom=PIXEL, sigma_angstrom=PIXEL)[0]
views = torch.tensor([[0.0, 0.0], [0.0, 90.0], [45.0, 60.0]])
data = simulate_views(
    volume,
    view_euler_deg=views,
    n=COUNT,
    pixel_size_angstrom=PIXEL,
    snr=0.1,
    generator=generator,
    shift_range_angstrom=2 * PIXEL,
)
fig, axes = plt.subplots(2, 6, figsize=(10, 3.6))
for k in range(3):
    axes[0, k].imshow(data.views[k].numpy(), cmap="gray", origin="lower")
    axes[0, k].set_title(f"true view {k}", fontsize=8)
for k in range(3, 6):
    axes[0, k].imshow(data.clean[k].numpy(), cmap="gray", origin="lower")
    axes[0, k].set_title(f"particle {k}, no noise", fontsize=8)
for k in range(6):
    axes[1, k].imshow(data.images[k].numpy(), cmap="gray", origin="lower")
    axes[1, k].set_title(f"particle {k}: view {int(data.labels[k])}", fontsize=8)
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ### The Bayesian view in one picture (EM Sharpen Q1)
#
# Bayes: *posterior ∝ likelihood × prior*.  For one image $X$ and one known template $A$ the
# hidden variable is the in-plane angle $\psi$.  The likelihood of $\psi$ is how well the
# template, turned by $\psi$, explains the image under Gaussian noise of variance $\sigma^2$;
# with a flat prior the posterior over $\psi$ is that likelihood normalised:
# $$p(\psi \mid X) = \frac{\exp\!\big(-\lVert X - R_\psi A\rVert^2 / 2\sigma^2\big)}
#   {\sum_{\psi'} \exp\!\big(-\lVert X - R_{\psi'} A\rVert^2 / 2\sigma^2\big)}.$$  At high SNR it is a sharp peak (a point estimate would do);
# at SNR 0.1 it is broad — and averaging images with these *weights* instead of their single
# best angle is what makes maximum-likelihood methods robust (Sigworth 1998, Scheres 2012).

# %%
angles = torch.arange(0.0, 360.0, 5.0)
turned = rotate_images(data.views[int(data.labels[0])], angles)  # (J, N, N)
# clean image without CTF at the true shift, plus noise of two strengths
clean0 = shift_image(
    rotate_images(data.views[int(data.labels[0])], data.euler_deg[0, 2].float()),
    -data.shift_angstrom[0].float(),
    pixel_size_angstrom=PIXEL,
)
recentred = shift_image(clean0, data.shift_angstrom[0].float(), pixel_size_angstrom=PIXEL)
sigma_signal = float(recentred.std())
fig, ax = plt.subplots(figsize=(6, 3))
for snr in (1.0, 0.1):
    sigma = sigma_signal / math.sqrt(snr)
    noisy = recentred + sigma * torch.randn(recentred.shape, generator=generator)
    log_like = -((noisy - turned) ** 2).sum((-2, -1)) / (2 * sigma**2)
    posterior = torch.softmax(log_like, dim=0)
    ax.plot(angles.numpy(), posterior.numpy(), label=f"SNR {snr}")
ax.axvline(float(data.euler_deg[0, 2]) % 360, color="k", ls=":", label="true ψ")
ax.set(xlabel="ψ [degrees]", ylabel="posterior p(ψ | X)", title="one image, one template")
ax.legend(fontsize=8)

# %% [markdown]
# What is uncertain in cryo-EM, and the usual priors:
#
# | unknown | prior used in practice | integrated or point estimate? |
# |---|---|---|
# | class (2D/3D) | occupancies π_c, learned | integrated |
# | in-plane angle, direction | uniform (or Gaussian near an old estimate) | integrated |
# | origin shift | Gaussian about the centre (RELION learns σ) | integrated |
# | map / class averages | Gaussian per shell (power τ²): Wiener | MAP point estimate |
# | CTF (defocus, astigmatism) | none, from CTFFIND/Gctf | point estimate |
# | noise spectrum σ²(k) | none, re-estimated each round | point estimate |
# | scale, B-factor, beam tilt, conformation | mostly none | point (or ignored) |
#
# Poses are integrated during refinement, but what is written out (`particles.star`) and used
# downstream is the most probable pose — a point estimate.
#
# Integrating is affordable for the few discrete hidden variables (class, angle on a grid,
# shift on a grid); the continuous high-dimensional ones (the map, CTF) are point estimates
# because an integral over them has no closed form and sampling it would cost orders of
# magnitude more.

# %% [markdown]
# ### From one class (Nelson) to many, and what a round does (EM Sharpen Q3)
#
# Nelson's single-class EM alternates: (E) for every image, a posterior over its pose given the
# current average; (M) a new average = every image, un-rotated and un-shifted, weighted by
# those posteriors.  With $K$ classes the hidden variable becomes the pair (class, pose)
# $\phi = (c, \psi, \mathbf s)$; the **E-step** computes, for every image $i$,
# $$\gamma_{i\phi} = \frac{\pi_c\, p(X_i \mid \phi, A)}{\sum_{\phi'} \pi_{c'}\, p(X_i \mid \phi', A)},$$
# over $K$ × angles × shifts; each class average is made only from the weight each image gives
# to *that* class, and the class occupancies $\pi_c = \frac1n\sum_i\sum_{\psi,\mathbf s}\gamma_{i\phi}$
# become parameters too.
#
# Within a round, the class averages A_c, the occupancies π_c and the noise spectrum σ²(k) are
# **fixed**; every image's posterior is computed against them (images are independent, so this
# is one big batched computation).  Between rounds, A_c, π_c, σ²(k) and the prior power τ²(k)
# are **updated** from the weighted sums.  Fixed for the whole run: the data, the CTFs, the
# grids of angles and shifts, K, the mask and T.

# %%
settings = Class2DSettings(
    n_classes=3,
    pixel_size_angstrom=PIXEL,
    psi_step_deg=10.0,
    offset_range_angstrom=2 * PIXEL,
    particle_diameter_angstrom=0.85 * N * PIXEL,
)
batches = tensor_batches(data.images, 512)
model = initial_model(
    batches(),
    n_particles=COUNT,
    image_size=N,
    ctf=data.ctf,
    settings=settings,
    generator=torch.Generator().manual_seed(0),
)
snapshots, log = [model.classes], []
for _ in range(8 if FAST else 12):
    model, assignments, entry = em_iteration(
        model, batches(), n_particles=COUNT, ctf=data.ctf, settings=settings
    )
    snapshots.append(model.classes)
    log.append(entry)
ari = adjusted_rand_index(data.labels, assignments.class_index)
psi_error = inplane_error_deg(assignments.psi_deg, data.euler_deg[:, 2], assignments.class_index)
print(f"adjusted Rand index vs the true views: {ari:.3f}")
print(f"median in-plane error: {float(psi_error.median()):.1f}° (grid 10°, 5° near likely poses)")

shown = [0, 1, 2, len(snapshots) - 1]
fig, axes = plt.subplots(3, len(shown), figsize=(1.8 * len(shown), 5.4))
for col, it in enumerate(shown):
    for c in range(3):
        axes[c, col].imshow(snapshots[it][c].numpy(), cmap="gray", origin="lower")
        axes[c, col].axis("off")
    axes[0, col].set_title("start" if it == 0 else f"iteration {it}", fontsize=8)
fig.suptitle("class averages: random subsets → views", fontsize=9)

# %% [markdown]
# The start is the average of random subsets at random angles: round blobs.  Noise makes them
# slightly different; each round the images that fit one blob a bit better sharpen it, and
# within a few rounds the classes lock onto the views.  (The ARI printed above is 1 for a perfect
# split up to relabelling, 0 for chance.)
#
# The search is **adaptive** (RELION's `--oversampling 1`, `Class2DSettings.oversampling`):
# every pose is scored on the 10° / 1-pixel grid; the (class, ψ) pairs that hold 99.9 % of an
# image's posterior are then scored again at ψ ∓ 2.5° and shifts ∓ ¼ pixel, and the averages
# are made from that finer posterior.  Cheap (a few pairs per image once the classes have
# formed), and it matters when views differ by a few degrees: four views 5° apart went from
# ARI 0.33 to 0.61–0.68 (`benchmarks/RESULTS.md`).
#
# A class that empties is **re-seeded** by splitting the largest class in two (A ± a small
# random image).  Whether the split was real is tested five rounds later: the two halves'
# unregularised averages $N_a/D_a$ and $N_b/D_b$ (b aligned on a) are compared frequency by
# frequency in units of their noise,
# $r = \langle |N_a/D_a - N_b/D_b|^2 / (\sigma^2 (1/D_a + 1/D_b)) \rangle$ — about 1 for two
# random halves of one view.  Below `split_min_ratio` (2.5) the halves are merged back and the
# emptied class is left empty for good, as RELION leaves classes it cannot fill; views 8°
# apart at signal/noise 0.3 were split at random before this test (ARI 0.54 vs RELION's 0.60).
# Each round's log says what happened:

# %%
for entry in log:
    for test in entry["split_tests"]:
        print(
            f"round {entry['iteration']}: split of class {test['parent']} into "
            f"{test['parent']}/{test['class']}, r = {test['ratio']:.2f}, kept: {test['kept']}"
        )
print("re-seeded:", {e["iteration"]: e["reseeded"] for e in log if e["reseeded"]} or "none")

# %% [markdown]
# ## Sharpen: the equations
#
# ### Why Fourier space (EM Sharpen Q2)
#
# Write the model of image $i$ as $X_i = C_i \cdot S_{\mathbf s} R_\psi A_c + \text{noise}$, with
# $S_{\mathbf s}$ a shift, $R_\psi$ a rotation, $C_i$ the CTF.  In real space $C_i$ is a
# convolution; in Fourier space it is a product.  A shift is a phase ramp
# $e^{-2\pi i\mathbf k\cdot\mathbf s}$, so **all shifts at once** come from one cross-correlation
# (lesson 02): the data term of the log-likelihood,
# $$\sum_{\mathbf k} \frac{\mathrm{Re}\big[X_i(\mathbf k)\, C_i(\mathbf k)\, (R_\psi A_c)^*(\mathbf k)\,
#   e^{+2\pi i\mathbf k\cdot\mathbf s}\big]}{\sigma^2(|\mathbf k|)},$$
# is an inverse Fourier sum over $\mathbf k$, evaluated for every $\mathbf s$ by one FFT.
# Noise that is stationary but not white (more at low frequency, from ice and detector) is
# diagonal in Fourier space, so the likelihood is a sum over k with a weight 1/σ²(k) per
# shell — in real space it would need the full pixel covariance.  What has to change: the
# rotation (a rotation in real space is the same rotation of Fourier coordinates, but
# interpolated on a grid), the Hermitian half-plane (each independent coefficient counted
# once) and the CTF and σ² that now multiply and weight each frequency.  Parseval says the
# squared distance is the same in both spaces:

# %%
x, a = data.images[0], data.views[0]
real_space = float(((x - a) ** 2).sum())
fourier = float((torch.fft.fft2(x - a).abs() ** 2).sum() / (N * N))
print(f"Σ|x − a|² in real space {real_space:.6g}, via Fourier {fourier:.6g}")

# %% [markdown]
# ### The prior in the log loss (EM Sharpen Q4)
#
# $\log p(A \mid X) = \log p(X \mid A) + \log p(A) + \text{const}$.  A Gaussian prior of power
# $\tau^2(k)$ per Fourier coefficient adds $-\sum_{\mathbf k} |A(\mathbf k)|^2 / 2\tau^2(k)$ to the
# log posterior: a quadratic (L2, "ridge") penalty, so the **M-step** stays a linear solve per
# frequency — for each class $c$ and frequency $\mathbf k$,
# $$A_c(\mathbf k) = \frac{\sum_i \sum_{\psi,\mathbf s} \gamma_{i\phi}\; C_i(\mathbf k)\,
#     \big[R_\psi^{-1} S_{\mathbf s}^{-1} X_i\big](\mathbf k)}
#   {\sum_i \sum_{\psi,\mathbf s} \gamma_{i\phi}\; C_i(\mathbf k)^2 \;+\; \sigma^2(k)/\tau^2(k)} ,$$
# a **Wiener filter** (lesson 03): without the prior term it is the CTF-weighted average; the
# prior pulls frequencies whose signal power $\tau^2$ is small against the noise $\sigma^2$
# towards 0.  The noise and the prior are updated from the same weighted sums,
# $\sigma^2(k) = \langle \gamma\, |X_i - C_i R_\psi S_{\mathbf s} A_c|^2 \rangle_{\text{shell}}$ and
# $\tau^2(k) = \langle |A_c|^2 \rangle_{\text{shell}}$.
#
# RELION multiplies $\tau^2$ by $T$ (tau2_fudge): $T > 1$ trusts the data more.  Convenient priors are
# conjugate or log-concave (Gaussian → L2, Laplace → L1 / sparsity, uniform on a grid → no term,
# Gaussian on shifts → a quadratic penalty on |s|).  Below: the same weighted sums, averaged
# with three values of T, for the last round's first class.

# %%
fig, axes = plt.subplots(1, 3, figsize=(7, 2.6))
for ax, fudge in zip(axes, (0.05, 2.0, None), strict=True):
    s = replace(settings, tau2_fudge=fudge)
    m, _, _ = em_iteration(model, batches(), n_particles=COUNT, ctf=data.ctf, settings=s)
    ax.imshow(m.classes[0].numpy(), cmap="gray", origin="lower")
    ax.set_title("no prior" if fudge is None else f"T = {fudge}", fontsize=8)
    ax.axis("off")
fig.suptitle("stronger prior (small T) = smoother average", fontsize=9)

# %% [markdown]
# ### EM never decreases the likelihood
#
# Without the prior, mask and re-centring, each round is an exact EM step (up to
# interpolation) and the log-likelihood log p(X | θ) = Σ_i log Σ_{c,ψ,s} π_c p(X_i | c, ψ, s)
# cannot decrease.  (With the adaptive frequency band of `cryoglass class2d`, the number of
# frequencies in the sum grows between rounds, so its values are not comparable.)

# %%
plain = Class2DSettings(
    n_classes=3,
    pixel_size_angstrom=PIXEL,
    psi_step_deg=10.0,
    offset_range_angstrom=2 * PIXEL,
    tau2_fudge=None,
    mask_classes=False,
    recenter=False,
    reseed_below=0.0,
    adaptive_shells=None,
)
run = classify_2d(data.images[:150], settings=plain, iterations=5, ctf=data.ctf[:150])
values = [e["log_likelihood"] for e in run.log]
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.plot(range(1, len(values) + 1), values, "o-k")
ax.set(xlabel="round", ylabel="log p(X | θ)", title="plain EM: monotone")
print("increments:", [f"{b - a:.1f}" for a, b in zip(values, values[1:], strict=False)])

# %% [markdown]
# ### Gaussian noise in real space and in Fourier space (EM Sharpen Q5)
#
# If $n(\mathbf r)$ is i.i.d. Gaussian with variance $v$, its DFT
# $\hat n(\mathbf k) = \sum_{\mathbf r} n(\mathbf r)\, e^{-2\pi i\mathbf k\cdot\mathbf r/N}$ is a linear
# map of Gaussians, hence Gaussian; the map is unitary up to $N$, so the covariance stays
# diagonal: each complex coefficient has $E|\hat n|^2 = N^2 v$, real and imaginary parts
# $vN^2/2$ each, independent across $\mathbf k$ except for the Hermitian pair
# $\hat n(-\mathbf k) = \hat n(\mathbf k)^*$.
#
# *Radially dependent* (coloured, stationary) noise — $\hat n(\mathbf k)$ with variance
# $\sigma^2(|\mathbf k|)$ — is still independent across frequencies: the likelihood keeps its
# per-frequency form with one $\sigma^2$ per shell, which is exactly what 2D classification
# estimates.  *Pixel-dependent* variance in real space (a thickness gradient, a mask, a carbon
# edge) is not stationary: its Fourier coefficients become correlated, so a diagonal
# $\sigma^2(k)$ model is only an approximation.  The numbers:

# %%
trials = 400 if FAST else 2000
g = torch.Generator().manual_seed(2)
white = torch.randn(trials, N, N, generator=g)
ramp = torch.linspace(0.2, 2.0, N)[None, :].expand(N, N)  # pixel-dependent σ along x
nonstationary = white * ramp
for name, noise in (("white", white), ("pixel-dependent", nonstationary)):
    f = torch.fft.fft2(noise)
    a1, a2 = f[:, 5, 5], f[:, 5, 6]  # neighbouring frequencies
    corr = (a1 * a2.conj()).mean().abs() / torch.sqrt(
        (a1.abs() ** 2).mean() * (a2.abs() ** 2).mean()
    )
    print(
        f"{name:>16}: E|n̂|²/N² = {float((f.abs() ** 2).mean()) / N**2:.3f}, "
        f"|corr(n̂(k), n̂(k+1))| = {float(corr):.3f}"
    )

# a radial filter: the noise amplitude depends on |k| only, so its power is one σ² per shell
k_radius = torch.hypot(torch.fft.fftfreq(N)[:, None], torch.fft.fftfreq(N)[None, :])
coloured = torch.fft.ifft2(torch.fft.fft2(white) / (1 + 8 * k_radius)).real
spectrum = radial_average(
    torch.fft.fftshift(torch.fft.fft2(coloured).abs() ** 2, dim=(-2, -1)).mean(0), ndim=2
)
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.semilogy(spectrum[: N // 2].numpy())
ax.set(xlabel="shell [Fourier pixels]", ylabel="σ²(k)", title="coloured noise: one σ² per shell")
