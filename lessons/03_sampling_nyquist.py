# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Lesson 03 — Convolution, sampling, Nyquist
#
# **Syllabus:** 17 Dec 2020 (Blur) and 7 Jan 2021 (Sharpen): convolution, sampling, Nyquist
# (also the convolution half of G. Jensen's 10 Jun 2021 session; its cross-correlation half is
# in lesson 02).
#
# **Questions answered here** (search for the tag):
#
# * **Convolution Blur Q1** — the homework: $G(u)$ of $g(x) = e^{-\pi(x-2)^2} - e^{-\pi(x+2)^2}$
#   → *Blur 1*
# * **Convolution Blur Q2** — commutativity of convolution, shown explicitly → *Blur 2*
# * **Convolution Blur Q3** — the animation: the mathematical object, its bounds, one snapshot
#   → *Blur 2*
# * **Convolution Blur Q4** — where convolution happens in cryo-EM: what is convolved, its
#   form, how many dimensions → *Blur 3*
# * **Convolution Blur Q5** — a broad Gaussian in real space is a narrow filter in Fourier
#   space → *Blur 4*
# * **Convolution Sharpen Q1** — why deconvolution blows up, and how to overcome it
#   → *Sharpen 1*
# * **Convolution Sharpen Q2** — associativity for Gaussians → *Sharpen 2*
# * **Convolution Sharpen Q3** — kernel and image of different sizes in Fourier space
#   → *Sharpen 3*
# * **Convolution Sharpen Q4** — Gaussian vs box vs sharpening kernels in Fourier and real
#   space; is Fourier always faster? → *Sharpen 3*
# * **Convolution Sharpen Q5** — raising Nyquist in data collection; trade-offs; choosing it
#   → *Sharpen 5*
# * **Convolution Sharpen Q6** — the convolution theorem on a projection, with truncated
#   real-space kernels: accuracy and speed → *Sharpen 4*
#
# Library: `cryoglass.fourier` (`convolve`, `circular_convolve`, filters, `fourier_crop`),
# `cryoglass.ctf` (the CTF as a convolution).

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import torch

from cryoglass.ctf import CTFParams, multiply_ctf
from cryoglass.fourier import (
    apply_fourier_filter,
    circular_convolve,
    convolve,
    coordinate_grid,
    fftn_centered,
    fourier_crop,
    frequency_axis,
    gaussian_lowpass_filter,
    lowpass,
    radial_power_spectrum,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## Blur 1 — the homework (Convolution Blur Q1)
# $g(x) = e^{-\pi(x-2)^2} - e^{-\pi(x+2)^2}$.  The Gaussian $e^{-\pi x^2}$ is its own transform,
# and a shift by $a$ multiplies the transform by $e^{-2\pi iua}$ (lesson 02), so
# $$G(u) = e^{-\pi u^2}\left(e^{-4\pi iu} - e^{+4\pi iu}\right) = -2i\,\sin(4\pi u)\,e^{-\pi u^2}.$$
# Purely imaginary and odd, as it must be for a real odd function.  Check with the FFT
# (continuous transform ≈ $\Delta x$ · centred DFT):

# %%
n, dx = 512, 1 / 16
x = (torch.arange(n, dtype=torch.float64) - n // 2) * dx
g = torch.exp(-math.pi * (x - 2) ** 2) - torch.exp(-math.pi * (x + 2) ** 2)
u = frequency_axis(n, pixel_size_angstrom=dx, dtype=torch.float64)
numeric = fftn_centered(g, ndim=1) * dx
analytic = -2j * torch.sin(4 * math.pi * u) * torch.exp(-math.pi * u**2)
print(f"max |G_fft - G_analytic| = {(numeric - analytic).abs().max():.2e}")

# %% [markdown]
# ## Blur 2 — convolution, commutativity, and the animation (Convolution Blur Q2, Q3)
# $$(g * h)(x) = \int_{-\infty}^{\infty} g(t)\,h(x - t)\,dt .$$
# Substituting $t' = x - t$ ($dt = -dt'$, and the limits $\pm\infty$ swap, which cancels the
# sign) gives
# $$\int_{-\infty}^{\infty} g(x - t')\,h(t')\,dt' = (h * g)(x),$$
# so $g * h = h * g$.  The animation shows this integral: one frame is, for one fixed $x$, the
# product $g(t)\,h(x - t)$ as a function of $t$ ($h$ flipped and slid to $x$), integrated over
# all $t$ from $-\infty$ to $\infty$ (in practice over the overlap of the two supports); the
# **area** under that product is one value of the output curve.  Numerically (FFT convolution,
# zero-padded so nothing wraps around):

# %%
box = torch.where(x.abs() < 1.0, 1.0, 0.0).double()
gauss = torch.exp(-(x**2) / (2 * 0.5**2))
gh = convolve(box, gauss, ndim=1) * dx
hg = convolve(gauss, box, ndim=1) * dx
print(f"max |g*h - h*g| = {(gh - hg).abs().max():.2e}")
x0 = 0.75  # one frame (a grid point) of the animation
frame = box * torch.exp(-((x0 - x) ** 2) / (2 * 0.5**2))
print(f"area of the frame at x={x0}: {frame.sum() * dx:.5f} = (g*h)({x0}) = "
      f"{gh[(x - x0).abs().argmin()]:.5f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(x, box, label="g (box)")
ax.plot(x, torch.exp(-((x0 - x) ** 2) / (2 * 0.5**2)), label="h(x0 - t)")
ax.fill_between(x, frame, alpha=0.4, label="product (area = output)")
ax.plot(x, gh, label="g * h")
ax.set_xlim(-4, 4)
ax.legend(fontsize=7)

# %% [markdown]
# ## Blur 3 — where convolution happens in cryo-EM (Convolution Blur Q4)
# * **The CTF** (2D, in the image plane): a particle image in RELION's convention is the
#   projection convolved with the point-spread function $\mathrm{psf} = \mathcal F^{-1}[\mathrm{CTF}]$,
#   with $\mathrm{CTF}(k) = \sin\big(\chi(k) + \arcsin Q_0\big)$ (positive at low $k$ in
#   underfocus; `docs/conventions.md` item 7).  The raw image on the detector carries the
#   opposite sign — protein dark, $I = 1 - 2\,\mathrm{psf} * \sigma_e V_p$ (lesson 01) — and
#   RELION's particles are contrast-inverted so that CTF × projection describes them.  The PSF
#   is a set of rings whose radius grows with defocus: it delocalises information (lesson 04).
# * **Envelopes / B-factors**: temporal/spatial coherence, drift and radiation damage act like
#   a Gaussian blur: multiplication by $e^{-Bk^2/4}$ in Fourier space, i.e. convolution with a
#   Gaussian of $\sigma^2 = B/(8\pi^2)$ in real space (2D for images, 3D for maps).
# * **The detector MTF** (2D), **interpolation kernels** (gridding in reconstruction, 3D), and
#   **masks**: multiplying a map by a mask in real space convolves its transform with the mask's
#   transform — soft masks make a small kernel, hard masks ring.
#
# Below: the PSF of RELION's CTF at two defoci (the same library call makes particle images).

# %%
point = torch.zeros(96, 96, dtype=torch.float64)
point[48, 48] = 1.0
fig, axes = plt.subplots(1, 2, figsize=(7, 3.3))
for ax, df in zip(axes, (8000.0, 25000.0), strict=True):
    psf = multiply_ctf(point, CTFParams(df, df, bfactor_a2=50.0), pixel_size_angstrom=1.5)
    ax.imshow(psf, cmap="RdBu_r", vmin=-0.02, vmax=0.02)
    ax.set_title(f"PSF of the CTF, Δf = {df / 1e4:.1f} µm\n(centre {float(psf[48, 48]):+.3f})",
                 fontsize=9)
    ax.axis("off")

# %% [markdown]
# ## Blur 4 — a broad Gaussian is a narrow low-pass (Convolution Blur Q5)
# By the convolution theorem $\mathcal F[g * h] = G\,H$.  Convolving with a Gaussian of width
# $\sigma$ multiplies the transform by
# $$H(k) = e^{-2\pi^2\sigma^2k^2},$$
# a Gaussian of width $1/(2\pi\sigma)$: the broader the blur, the narrower the pass band.
# Fourier filtering is convolution done by the convolution theorem.

# %%
for sigma in (1.0, 3.0, 6.0):
    filt = gaussian_lowpass_filter((1, 256), sigma_angstrom=sigma, pixel_size_angstrom=1.0,
                                   dtype=torch.float64)[0, 128:]
    k_half = frequency_axis(256, dtype=torch.float64)[128:][(filt >= 0.5).sum() - 1]
    print(f"blur σ = {sigma} Å  ->  filter ≥ 1/2 up to k ≈ {k_half:.4f} 1/Å "
          f"(a resolution of {1 / k_half:.1f} Å)")

# %% [markdown]
# ## Sharpen 1 — why deconvolution blows up, and the fix (Convolution Sharpen Q1)
# If $f = g * h$ then $F = G\,H$ and naively $G = F/H$.  Wherever $H(u) \approx 0$ (a
# Gaussian's far tail, a box's sinc zeros, the CTF's zeros) the division amplifies noise and
# round-off without bound: with $F = GH + N$ the estimate is $G + N/H$.  In the video, dividing
# by a transform that vanishes makes the recovered signal explode.  Remedies: divide only
# where $|H|$ is large (band-limit), or use the **Wiener filter**
# $$\hat G = \frac{H^*\,F}{|H|^2 + 1/\mathrm{SNR}},$$
# which tends to $F/H$ where the signal is strong and to 0 where it is not — the least-squares
# optimal linear estimate for a signal-to-noise ratio SNR per frequency.  RELION's CTF
# correction is of this kind ($H$ = the CTF; lesson 06 derives the same form as the M-step of
# EM, lesson 09 in reconstruction).

# %%
size = 128
r = coordinate_grid((size, size), dtype=torch.float64)
obj = (r.square().sum(-1) < 20**2).double() - 0.5 * ((r - torch.tensor([10.0, 5.0])).square().sum(-1) < 6**2).double()
h_filter = gaussian_lowpass_filter((size, size), sigma_angstrom=2.5, pixel_size_angstrom=1.0,
                                   rfft=True, dtype=torch.float64)
blurred = apply_fourier_filter(obj, h_filter, ndim=2)
noisy = blurred + 1e-3 * torch.randn(size, size, dtype=torch.float64)
naive = apply_fourier_filter(noisy, 1 / h_filter, ndim=2)
wiener = apply_fourier_filter(noisy, h_filter / (h_filter**2 + 1e-4), ndim=2)
for name, est in [("blurred", blurred), ("naive F/H", naive), ("Wiener", wiener)]:
    print(f"{name:10s}: rms error vs object = {(est - obj).square().mean().sqrt():.3e}")

# %% [markdown]
# ## Sharpen 2 — associativity for Gaussians (Convolution Sharpen Q2)
# With $f_a = e^{-ax^2}$, completing the square in the exponent and using
# $\int e^{-ax^2}dx = \sqrt{\pi/a}$:
# $$f_a * f_b = \int e^{-at^2 - b(x-t)^2}\,dt = \sqrt{\frac{\pi}{a+b}}\;f_{ab/(a+b)}(x).$$
# Hence $(f_1 * f_2) * f_3 = \sqrt{\pi/3}\,\sqrt{\pi/(2/3 + 3)}\;f_{(2/3\cdot 3)/(2/3+3)}$, and
# $f_1 * (f_2 * f_3)$ gives the same, because the inverse widths add:
# $1/a_{\text{eff}} = 1/1 + 1/2 + 1/3$ either way.  Numerically:

# %%
xs = (torch.arange(1024, dtype=torch.float64) - 512) * 0.02


def f(a: float) -> torch.Tensor:
    return torch.exp(-a * xs**2)


def conv(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return convolve(p, q, ndim=1) * 0.02


left, right = conv(conv(f(1), f(2)), f(3)), conv(f(1), conv(f(2), f(3)))
a_eff = 1 / (1 + 1 / 2 + 1 / 3)
closed = math.pi / math.sqrt(1 * 2 + 2 * 3 + 1 * 3) * f(a_eff)
print(f"|(f1*f2)*f3 - f1*(f2*f3)| = {(left - right).abs().max():.1e}; vs closed form "
      f"{(left - closed).abs().max():.1e}")

# %% [markdown]
# ## Sharpen 3 — kernel and image of different sizes; wrap-around (Convolution Sharpen Q3, Q4)
# The transforms of a 7×7 kernel and a 256×256 image cannot be multiplied element-wise:
# zero-pad the kernel (keeping its origin at the centre) to the image size — same pixel size,
# same frequency bins. That product is a **circular** convolution; content near one edge leaks
# into the other. To get exactly the real-space (linear) result, pad both to N + K − 1
# (`convolve` does this, rounding up to a fast FFT size).

# %%
img = torch.zeros(64, 64, dtype=torch.float64)
img[:, :3] = 1.0  # a stripe at the left edge
kernel = torch.ones(9, 9, dtype=torch.float64) / 81  # box blur
padded_kernel = torch.zeros(64, 64, dtype=torch.float64)
padded_kernel[32 - 4 : 32 + 5, 32 - 4 : 32 + 5] = kernel
circ = circular_convolve(img, padded_kernel, ndim=2)
lin = convolve(img, kernel, ndim=2)
print(f"right-edge column: circular {circ[32, -1]:.3f} (wrapped around), linear {lin[32, -1]:.3f}")

# %% [markdown]
# Why Fourier and real-space filtering look the same for a Gaussian blur but not for a box or
# a sharpening kernel: a small Gaussian kernel is nearly band-limited, so sampling it and
# taking its DFT reproduces the smooth continuous filter; a box kernel's transform is a sinc
# with slow, oscillating tails (ringing, negative lobes), and a sharpening kernel amplifies
# high frequencies up to Nyquist, where the wrap-around/edge handling and the truncated
# kernel differ most. Is Fourier always faster? Direct convolution costs ~N²K², FFT
# convolution ~N² log N regardless of K: small kernels are faster directly.

# %%
def best_time(fn, repeat: int = 3) -> float:
    """Fastest of a few runs (after a warm-up): robust on a busy machine."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


image_size = 256 if FAST else 512
image = torch.randn(1, 1, image_size, image_size)
for k_size in (3, 9, 31) if FAST else (3, 9, 31, 63):
    ker = torch.randn(1, 1, k_size, k_size)
    t_direct = best_time(lambda ker=ker: torch.nn.functional.conv2d(image, ker.flip(-1, -2), padding=ker.shape[-1] // 2))
    t_fft = best_time(lambda ker=ker: convolve(image, ker, ndim=2))
    direct = torch.nn.functional.conv2d(image, ker.flip(-1, -2), padding=k_size // 2)
    via_fft = convolve(image, ker, ndim=2)
    print(f"K={k_size:2d}: direct {t_direct * 1e3:7.2f} ms, FFT {t_fft * 1e3:6.2f} ms, "
          f"max difference {(direct - via_fft).abs().max():.1e}")

# %% [markdown]
# ## Sharpen 4 — the convolution theorem on a projection, and truncated kernels (Convolution Sharpen Q6)
# A "projection" of a 3D density (sum along z of a few Gaussian atoms), low-pass filtered to
# 8 Å in Fourier space, versus the same filter applied as a real-space kernel truncated to
# K × K pixels. The error falls quickly once K covers the kernel's main lobe — a soft edge
# (Gaussian) converges much faster than a hard one.

# %%
pixel = 1.0
vol_size = 48 if FAST else 96
grid3 = coordinate_grid((vol_size,) * 3, dtype=torch.float64)
atoms = torch.randn(30, 3, dtype=torch.float64) * vol_size / 8
density = torch.exp(-(grid3[None] - atoms[:, None, None, None]).square().sum(-1) / 2).sum(0)
projection = density.sum(dim=-3)  # integrate along z
reference = lowpass(projection, ndim=2, resolution_angstrom=8.0, pixel_size_angstrom=pixel,
                    edge_width_inv_angstrom=0.03)
# the real-space kernel of the low-pass = its response to a delta at the origin (N//2)
delta = torch.zeros(vol_size, vol_size, dtype=torch.float64)
delta[vol_size // 2, vol_size // 2] = 1.0
full_kernel = lowpass(delta, ndim=2, resolution_angstrom=8.0, pixel_size_angstrom=pixel,
                      edge_width_inv_angstrom=0.03)
c = vol_size // 2
t0 = time.perf_counter()
lowpass(projection, ndim=2, resolution_angstrom=8.0, pixel_size_angstrom=pixel,
        edge_width_inv_angstrom=0.03)
t_fourier = time.perf_counter() - t0
for k_size in (3, 7, 11, 21, 41):
    small = full_kernel[c - k_size // 2 : c + k_size // 2 + 1, c - k_size // 2 : c + k_size // 2 + 1]
    t0 = time.perf_counter()
    approx = torch.nn.functional.conv2d(
        torch.nn.functional.pad(projection[None, None], [k_size // 2] * 4, mode="circular"),
        small.flip(-1, -2)[None, None],
    )[0, 0]
    t_real = time.perf_counter() - t0
    err = (approx - reference).abs().max() / reference.abs().max()
    print(f"kernel {k_size:2d}×{k_size:<2d}: relative max error {err:.1e}, real space "
          f"{t_real * 1e3:.2f} ms (Fourier filter {t_fourier * 1e3:.2f} ms)")

fig, ax = plt.subplots(1, 3, figsize=(9, 3))
ax[0].imshow(projection, cmap="gray")
ax[0].set_title("projection")
ax[1].imshow(reference, cmap="gray")
ax[1].set_title("low-pass 8 Å (Fourier)")
ax[2].imshow(full_kernel[c - 10 : c + 11, c - 10 : c + 11], cmap="RdBu_r")
ax[2].set_title("its real-space kernel")

# %% [markdown]
# ## Sharpen 5 — Nyquist, aliasing and how to raise Nyquist (Convolution Sharpen Q5)
# Sampling at pixel size p replicates the spectrum every 1/p; anything above the Nyquist
# frequency 1/(2p) folds back onto lower frequencies (aliasing). Below: a 3 Å wave sampled at
# 1 Å is fine; sampled at 2 Å (Nyquist 4 Å) it shows up as a 6 Å wave. Down-sampling by
# simply taking every second pixel aliases; Fourier cropping low-passes first.

# %%
n_fine = 96
t = torch.arange(n_fine, dtype=torch.float64)
wave = torch.cos(2 * math.pi * t / 3.0).expand(n_fine, n_fine)  # 3 Å period at 1 Å/px
decimated = wave[::2, ::2]  # 2 Å/px: Nyquist is 4 Å
cropped = fourier_crop(wave, (n_fine // 2, n_fine // 2))
p_dec, f_dec = radial_power_spectrum(decimated, ndim=2, pixel_size_angstrom=2.0)
print(f"decimated: strongest period {1 / f_dec[p_dec[1:].argmax() + 1]:.2f} Å (true 3 Å, aliased); "
      f"Fourier-cropped rms {cropped.square().mean().sqrt():.1e} (removed, not aliased)")

# %% [markdown]
# To raise Nyquist in data collection, use a **smaller pixel** (higher magnification): the
# Nyquist resolution is 2p. The trade-offs: a smaller field of view (fewer particles per
# micrograph, so more micrographs and microscope time), the same dose per Å² spread over more
# pixels (fewer counts per pixel), and detectors' DQE falls towards Nyquist, so the useful limit is usually ~2/3 of
# Nyquist. Super-resolution counting and later Fourier cropping recover some of this. Choose
# p so that the resolution you can realistically reach (set by the specimen, its size and
# order, ice, and the microscope's envelopes) sits comfortably below Nyquist, e.g.
# p ≈ 0.3–0.4 × target resolution, without shrinking the field of view more than needed.
