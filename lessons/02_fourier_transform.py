# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Lesson 02 — The Fourier transform (3 & 10 Dec 2020)
#
# **Blur** (3 Dec): what the transform does to an image, why narrow things become broad, and what
# the frequency bins of a box mean in Å.
# **Sharpen** (10 Dec): DFT by matrix versus FFT — error and speed, compared with the continuous
# answer; how long FFTs take in 2D/3D; numerical pitfalls.
#
# Library: `cryoglass.fourier` (centred transforms: real-space origin and DC both at index
# `N//2`; frequencies in 1/Å).

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.fourier import (
    coordinate_grid,
    fft2_centered,
    fftn_centered,
    frequency_axis,
    next_fast_size,
    radial_power_spectrum,
    rescale,
    shift_image,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## Blur 1 — a picture of the transform
# An image is a sum of waves. The centred transform shows, at each frequency vector
# (k_x, k_y), how much of the wave with that frequency and direction the image contains.
# Below: a "particle" made of a few Gaussian blobs and the log-amplitude of its transform.

# %%
n, pixel = 128, 1.0
r = coordinate_grid((n, n), dtype=torch.float64) * pixel  # (y, x, 2) in Å, ordered (x, y)
centres = torch.tensor([[0.0, 0.0], [12.0, 5.0], [-9.0, 14.0], [-15.0, -10.0]])
blobs = sum(torch.exp(-(r - c).square().sum(-1) / (2 * 3.0**2)) for c in centres.double())
spectrum = fft2_centered(blobs)

fig, ax = plt.subplots(1, 2, figsize=(8, 4))
ax[0].imshow(blobs, cmap="gray")
ax[0].set_title("image")
ax[1].imshow(torch.log1p(spectrum.abs()), cmap="magma")
ax[1].set_title("log(1 + |F|), DC at the centre")
plt.close(fig)
print(f"F at DC = {spectrum[n // 2, n // 2].real:.3f} = sum of pixels = {blobs.sum():.3f}")

# %% [markdown]
# ## Blur 2 — a narrower function has a broader transform (scale property)
# If g(x) = f(a x) then G(u) = F(u/a)/|a|. A Gaussian of width σ transforms into a Gaussian of
# width 1/(2πσ). In practice: raising the **magnification** makes each Å cover more pixels, so
# the particle is "wider" in pixels and its transform (and the CTF Thon rings) shrinks towards
# the centre of the FFT; binning (larger pixels) does the opposite. Sharp features (atoms)
# need high frequencies; a blurred map needs only low ones.

# %%
for sigma in (1.5, 3.0, 6.0):
    g = torch.exp(-r.square().sum(-1) / (2 * sigma**2))
    amp = fft2_centered(g).abs()[n // 2, n // 2 :]
    k = frequency_axis(n, pixel_size_angstrom=pixel, dtype=torch.float64)[n // 2 :]
    # interpolate where |F| crosses half its maximum (|F| decreases with k)
    half_width = float(np.interp(0.5, (amp / amp[0]).flip(0).numpy(), k.flip(0).numpy()))
    print(
        f"sigma = {sigma:3.1f} Å  ->  half-maximum of |F| at ≈{half_width:.4f} 1/Å "
        f"(analytic sqrt(ln2/2)/(π σ) = {math.sqrt(math.log(2) / 2) / (math.pi * sigma):.4f})"
    )

# %% [markdown]
# The same with magnification: the same blob image rescaled to a 2× smaller pixel (2× higher
# magnification) has the same physical transform, but the transform now spans twice the
# frequency range, so it covers half as many Fourier pixels.

# %%
finer, finer_pixel = rescale(blobs, pixel_size_angstrom=1.0, new_pixel_size_angstrom=0.5, ndim=2)
print(f"rescaled to {finer_pixel} Å/px: box {tuple(finer.shape)}, mean kept "
      f"({blobs.mean():.5f} -> {finer.mean():.5f})")

# %% [markdown]
# ## Blur 3 — frequency bins in Å
# A box of N pixels of size p (here 128 px × 1 Å) has Fourier bins spaced by 1/(N p) = 1/128 Å⁻¹,
# from −N/2 to N/2 − 1 (DC at index N/2; Nyquist 1/(2p) = 1/2 Å⁻¹). Bin i ≥ 1 corresponds to a
# wavelength (resolution) of N p / i Å: 128, 64, 42.7, 32 … and at the top end 2.03, 2.02, 2 Å.
# Bins are evenly spaced in frequency, **not** in Å, so there are few of them at low resolution
# and many at high resolution.

# %%
k = frequency_axis(128, pixel_size_angstrom=1.0, dtype=torch.float64)
print(f"bin spacing = {(k[1] - k[0]).item():.6f} 1/Å = 1/{1 / (k[1] - k[0]).item():.0f}")
positive = torch.unique(k.abs())[1:]  # 1/128 ... 64/128 (the Nyquist bin is -64/128)
first = ", ".join(f"{1 / f:.1f}" for f in positive[:4].tolist())
last = ", ".join(f"{1 / f:.2f}" for f in positive[-3:].tolist())
print(f"first bins: {first} Å;  last bins: {last} Å")


def bins_between(d_low: float, d_high: float) -> int:
    """Number of bins with 1/d_low <= k < 1/d_high."""
    return int(((positive >= 1 / d_low) & (positive < 1 / d_high)).sum())


print(f"bins between 10 and 5 Å: {bins_between(10, 5)}; between 5 and 2.5 Å: {bins_between(5, 2.5)}")

# %% [markdown]
# 13 bins cover 10–5 Å but 26 cover 5–2.5 Å: each halving of the resolution doubles the number of
# shells (and in 2D/3D the number of Fourier voxels grows with k and k²), which is why FSC curves
# look "stretched" at high resolution and why high-resolution shells contain most of the data.

# %% [markdown]
# ## Blur 4 — properties you can check numerically
# Linearity F[a f + b g] = a F + b G; shift F[f(x − s)] = F e^{−2πiks} (only the phase changes,
# |F| is unchanged); convolution F[f * g] = F·G (lesson 03).

# %%
x = torch.randn(64, 64, dtype=torch.float64)
y = torch.randn(64, 64, dtype=torch.float64)
lin = (fft2_centered(2 * x - 3 * y) - (2 * fft2_centered(x) - 3 * fft2_centered(y))).abs().max()
moved = shift_image(x, torch.tensor([3.3, -7.25], dtype=torch.float64), pixel_size_angstrom=1.0)
amp_change = (fft2_centered(moved).abs() - fft2_centered(x).abs())[1:, 1:].abs().max()
print(f"linearity error {lin:.2e}; |F| change after a sub-pixel shift (off Nyquist) {amp_change:.2e}")

# %% [markdown]
# ## Sharpen 1 — DFT by matrix versus FFT
# The DFT of length N is the matrix product F = W f with W_jk = exp(−2πi jk/N): O(N²)
# operations. The FFT factorises W into log₂N sparse stages: O(N log N). We sample a Gaussian
# f(x) = exp(−x²/2σ²), whose continuous transform is F(u) = √(2π)σ exp(−2π²σ²u²), and compare.

# %%
def dft_matrix(n: int, dtype: torch.dtype) -> torch.Tensor:
    """Centred DFT matrix: origin and DC at index n//2 (same convention as fftn_centered)."""
    j = torch.arange(n, dtype=torch.float64) - n // 2
    return torch.exp(-2j * math.pi * torch.outer(j, j) / n).to(dtype)


sizes = [64, 256, 1024] if FAST else [64, 256, 1024, 2048, 4096]
rows = []
for n1 in sizes:
    dx = 40.0 / n1  # fixed field of view: 40 Å
    xs = (torch.arange(n1, dtype=torch.float64) - n1 // 2) * dx
    f = torch.exp(-xs.square() / (2 * 1.0**2))
    w = dft_matrix(n1, torch.complex128)
    t0 = time.perf_counter()
    for _ in range(3):
        f_dft = w @ f.to(torch.complex128)
    t_dft = (time.perf_counter() - t0) / 3
    t0 = time.perf_counter()
    for _ in range(50):
        f_fft = fftn_centered(f, ndim=1)
    t_fft = (time.perf_counter() - t0) / 50
    u = frequency_axis(n1, pixel_size_angstrom=dx, dtype=torch.float64)
    continuous = math.sqrt(2 * math.pi) * torch.exp(-2 * math.pi**2 * u.square())
    err_fft_dft = (f_fft - f_dft).abs().max().item()
    err_cont = (f_fft.real * dx - continuous).abs().max().item()
    f32 = fftn_centered(f.float(), ndim=1)
    err32 = (f32.to(torch.complex128) - f_fft).abs().max().item()
    rows.append((n1, t_dft, t_fft, err_fft_dft, err32, err_cont))
    print(
        f"N={n1:5d}: DFT {t_dft * 1e3:8.3f} ms, FFT {t_fft * 1e3:6.3f} ms, speed-up "
        f"{t_dft / t_fft:7.1f} (N/log2N = {n1 / math.log2(n1):6.1f}); |FFT-DFT| {err_fft_dft:.1e}, "
        f"float32 vs float64 {err32:.1e}, |FFT·dx - continuous| {err_cont:.1e}"
    )

# %% [markdown]
# What the numbers say:
# * FFT and matrix DFT agree to ~1e-13 in float64 — both compute the same sum; the FFT is
#   actually *more* accurate (error grows like log N rather than N).
# * float32 gives ~1e-6 relative error: fine for images, but accumulate sums in float64.
# * The DFT samples the continuous transform: F_cont(u_k) ≈ dx · DFT_k, with an error (aliasing +
#   truncation) set by how well the function is sampled and how much of it fits in the box. At
#   N=64 (dx = 0.625 Å) the Gaussian's transform at Nyquist is still ~3e-6 of its peak and
#   folds back (aliasing); from N=256 on the error is at rounding level.
# * The speed-up grows roughly like N/log N (the ratio of operation counts), less the constant
#   factors (matrix products are highly optimised BLAS; the O(N²) memory of W becomes the limit).

# %%
arr = np.array(rows)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(arr[:, 0], arr[:, 1] * 1e3, "o-", label="DFT (matrix)")
ax.loglog(arr[:, 0], arr[:, 2] * 1e3, "s-", label="FFT")
ax.set_xlabel("N")
ax.set_ylabel("time [ms]")
ax.legend()
plt.close(fig)

# %% [markdown]
# ## Sharpen 2 — how long do FFTs take in practice, and how does that compare?
# Typical particle boxes are 128–512 px; maps 128³–512³. Below: one 2D transform of a batch of
# images and one 3D transform on this CPU, and for comparison a bilinear interpolation of the
# same images (`grid_sample`, the workhorse of projection) and a memory copy. Disk I/O: at
# ~500 MB/s (SSD) a 256² float32 image (256 KiB) takes ~0.5 ms to read — usually slower than its
# FFT.

# %%
box2, batch = (128, 32) if FAST else (256, 64)
box3 = 64 if FAST else 128
imgs = torch.randn(batch, box2, box2)
vol = torch.randn(box3, box3, box3)


def timeit(fn, repeat: int = 3) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


grid = torch.rand(batch, box2, box2, 2) * 2 - 1
t2 = timeit(lambda: torch.fft.rfft2(imgs))
t3 = timeit(lambda: torch.fft.rfftn(vol))
t_interp = timeit(
    lambda: torch.nn.functional.grid_sample(imgs[:, None], grid, align_corners=False)
)
t_copy = timeit(lambda: imgs.clone())
print(f"2D rfft, {batch} × {box2}²: {t2 * 1e3:.2f} ms ({t2 / batch * 1e6:.0f} µs per image)")
print(f"3D rfft, {box3}³: {t3 * 1e3:.2f} ms")
print(f"bilinear interpolation of the same images: {t_interp * 1e3:.2f} ms; memory copy "
      f"{t_copy * 1e3:.2f} ms; disk at 500 MB/s would need {imgs.numel() * 4 / 500e6 * 1e3:.1f} ms")

# %% [markdown]
# ## Sharpen 3 — numerical issues and bottlenecks
# 1. **Awkward lengths.** FFTs are fastest for lengths with small prime factors; a prime length
#    falls back to slower algorithms. Pad to `next_fast_size(n)` when the size is free.
# 2. **Centring.** Forgetting `ifftshift` before the FFT puts the origin at the corner and
#    multiplies the transform by a (−1)^k checkerboard phase. cryoglass's centred transforms
#    put origin and DC at N//2.
# 3. **Even boxes and the Nyquist bin** have no ± partner; shifts and resampling must treat it
#    consistently (see `cryoglass.fourier.shift`).
# 4. **Precision.** float32 gives ~1e-7 relative error per operation; long sums (reconstruction
#    over millions of particles) should accumulate in float64.
# 5. **Memory and bandwidth.** A 512³ complex64 volume is 1 GiB; FFTs are memory-bound, and
#    real-input (rfft) transforms halve time and memory.
# 6. **Wrap-around.** The DFT is periodic: shifts and convolutions wrap unless you zero-pad.

# %%
for n_bad in (509, 997) if FAST else (509, 997, 2039):
    n_good = next_fast_size(n_bad)
    a = torch.randn(16, n_bad, n_bad)
    b = torch.randn(16, n_good, n_good)
    t_bad = timeit(lambda a=a: torch.fft.fft2(a), repeat=2)
    t_good = timeit(lambda b=b: torch.fft.fft2(b), repeat=2)
    print(f"prime N={n_bad}: {t_bad * 1e3:7.1f} ms;  next fast size {n_good}: {t_good * 1e3:7.1f} ms")

x_centre = torch.zeros(9, dtype=torch.float64)
x_centre[4] = 1.0
print("delta at the origin, centred FFT:", fftn_centered(x_centre, ndim=1).real.numpy().round(3))
print("same delta, plain FFT (no ifftshift):", torch.fft.fft(x_centre).real.numpy().round(3))

# %% [markdown]
# A last connection: the rotationally averaged power spectrum (what Thon rings are read from)
# is a 1D function of frequency in 1/Å computed from these bins.

# %%
power, freq = radial_power_spectrum(blobs, ndim=2, pixel_size_angstrom=pixel)
print("power at 1/20, 1/10, 1/5 Å⁻¹:",
      [f"{power[int(round(128 / d))].item():.2e}" for d in (20, 10, 5)])
