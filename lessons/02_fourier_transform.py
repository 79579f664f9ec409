# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Lesson 02 — The Fourier transform: waves, transforms, filters and cross-correlation
#
# **Syllabus:** 3 Dec 2020 (Blur) and 10 Dec 2020 (Sharpen): the Fourier transform;
# 27 May 2021 and 10 Jun 2021 (Blur): G. Jensen's "Fourier transforms and reciprocal space for
# the beginner" (2D waves and images, 2D transforms and filters, 3D waves and transforms,
# convolution and cross-correlation).
#
# **Questions answered here** (search for the tag):
#
# * **FT Blur Q1** — prove linearity, scale, shift and convolution properties in 1D → *Blur 4*
# * **FT Blur Q2** — "a narrower function transforms into a broader one": examples in practice
#   (magnification) → *Blur 2*
# * **FT Blur Q3** — a 128 Å box at 1 Å/px: bin spacing, the lengths of the first and last
#   bins, bins between 10 and 5 Å vs 5 and 2.5 Å → *Blur 3*
# * **FT Sharpen Q1** — DFT by hand vs FFT: error, the continuous answer, floating point, the
#   speed-up against the theoretical limit → *Sharpen 1*
# * **FT Sharpen Q2** — how long FFTs take (2D, 3D) next to disk I/O and interpolation
#   → *Sharpen 2*
# * **FT Sharpen Q3** — numerical issues and bottlenecks of FFTs, and remedies → *Sharpen 3*
# * **Jensen 2D** (27 May 2021) — 2D waves and images, 2D transforms and filters → *Jensen 1–3*
# * **Jensen 3D** (10 Jun 2021) — 3D waves and transforms; convolution (lesson 03) and
#   **cross-correlation** → *Jensen 4–5*
#
# Library: `cryoglass.fourier` (centred transforms: real-space origin and DC both at index
# `N//2`; frequencies in 1/Å; filters; `convolve`; `shift_image`).

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.fourier import (
    bandpass,
    convolve,
    coordinate_grid,
    fft2_centered,
    fftn_centered,
    frequency_axis,
    highpass,
    ifft2_centered,
    lowpass,
    next_fast_size,
    radial_power_spectrum,
    rescale,
    shift_image,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## Blur 1 — a picture of the transform
# An image is a sum of waves. The centred transform
# $$F(\mathbf k) = \int f(\mathbf r)\,e^{-2\pi i\,\mathbf k\cdot\mathbf r}\,d\mathbf r,
#   \qquad f(\mathbf r) = \int F(\mathbf k)\,e^{+2\pi i\,\mathbf k\cdot\mathbf r}\,d\mathbf k$$
# shows, at each frequency vector $\mathbf k = (k_x, k_y)$, how much of the wave with that
# frequency and direction the image contains (amplitude $|F|$) and where its crests lie (phase
# $\arg F$).  Below: a "particle" made of a few Gaussian blobs and the log-amplitude of its
# transform.

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
print(f"F at DC = {spectrum[n // 2, n // 2].real:.3f} = sum of pixels = {blobs.sum():.3f}")

# %% [markdown]
# ## Blur 2 — a narrower function has a broader transform (FT Blur Q2)
# If $g(x) = f(ax)$ then $G(u) = F(u/a)/|a|$ (proved in Blur 4).  A Gaussian of width $\sigma$
# transforms into a Gaussian of width $1/(2\pi\sigma)$:
# $$e^{-x^2/2\sigma^2} \;\longleftrightarrow\; \sqrt{2\pi}\,\sigma\,e^{-2\pi^2\sigma^2u^2}.$$
# In practice: raising the **magnification** makes each Å cover more pixels, so
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
# ## Blur 3 — frequency bins in Å (FT Blur Q3)
# A box of $N$ pixels of size $p$ (here 128 px × 1 Å) has Fourier bins spaced by
# $\Delta k = 1/(Np) = 1/128$ Å⁻¹, from $-N/2$ to $N/2 - 1$ (DC at index $N/2$; Nyquist
# $1/(2p) = 1/2$ Å⁻¹).  Bin $i \ge 1$ corresponds to a wavelength (resolution) of $Np/i$ Å:
# 128, 64, 42.7, 32 … and at the top end 2.06, 2.03, 2.00 Å.  Read as the syllabus's
# intervals $[i/128, (i+1)/128)$, the first bins hold lengths above 128 Å, 128–64 Å,
# 64–42.7 Å, and the last ones 2.06–2.03 Å and 2.03–2.00 Å.  Bins are evenly spaced in
# frequency, **not** in Å, so there are few of them at low resolution and many at high
# resolution.

# %%
k = frequency_axis(128, pixel_size_angstrom=1.0, dtype=torch.float64)
print(f"bin spacing = {(k[1] - k[0]).item():.6f} 1/Å = 1/{1 / (k[1] - k[0]).item():.0f}")
positive = torch.unique(k.abs())[1:]  # 1/128 ... 64/128 (the Nyquist bin is -64/128)
first = ", ".join(f"{1 / f:.1f}" for f in positive[:4].tolist())
last = ", ".join(f"{1 / f:.2f}" for f in positive[-3:].tolist())
print(f"first bins: {first} Å;  last bins: {last} Å")
intervals = [(i / 128, (i + 1) / 128) for i in (0, 1, 2, 62, 63)]
print("bins as length ranges [Å]: " + "; ".join(
    f"{'∞' if lo == 0 else f'{1 / lo:.2f}'}–{1 / hi:.2f}" for lo, hi in intervals))


def bins_between(d_low: float, d_high: float) -> int:
    """Number of bins with 1/d_low <= k < 1/d_high."""
    return int(((positive >= 1 / d_low) & (positive < 1 / d_high)).sum())


print(f"bins between 10 and 5 Å: {bins_between(10, 5)}; between 5 and 2.5 Å: {bins_between(5, 2.5)}")

# %% [markdown]
# 13 bins cover 10–5 Å but 26 cover 5–2.5 Å: each halving of the resolution doubles the number of
# shells (and in 2D/3D the number of Fourier voxels grows with k and k²), which is why FSC curves
# look "stretched" at high resolution and why high-resolution shells contain most of the data.

# %% [markdown]
# ## Blur 4 — the properties, proved and checked (FT Blur Q1)
# With $F(u) = \int f(x)\,e^{-2\pi iux}\,dx$:
#
# * **Linearity** — the integral is linear: $\mathcal F[af + bg] = aF + bG$.
# * **Scale** — substitute $y = ax$ ($dx = dy/|a|$; for $a < 0$ the limits swap, hence $|a|$):
#   $$\int f(ax)\,e^{-2\pi iux}\,dx = \frac{1}{|a|}\int f(y)\,e^{-2\pi i(u/a)y}\,dy
#     = \frac{1}{|a|}F\!\left(\frac{u}{a}\right).$$
# * **Shift** — substitute $y = x - s$:
#   $$\int f(x - s)\,e^{-2\pi iux}\,dx = e^{-2\pi ius}\int f(y)\,e^{-2\pi iuy}\,dy
#     = e^{-2\pi ius}F(u):$$
#   only the phase changes, $|F|$ does not.
# * **Convolution** — with $(f * g)(x) = \int f(t)\,g(x - t)\,dt$ and $y = x - t$:
#   $$\int\!\!\int f(t)\,g(x-t)\,e^{-2\pi iux}\,dt\,dx
#     = \int f(t)\,e^{-2\pi iut}dt\int g(y)\,e^{-2\pi iuy}dy = F(u)\,G(u).$$
#
# The DFT obeys the same rules exactly (with circular shifts and circular convolution):

# %%
x = torch.randn(64, 64, dtype=torch.float64)
y = torch.randn(64, 64, dtype=torch.float64)
lin = (fft2_centered(2 * x - 3 * y) - (2 * fft2_centered(x) - 3 * fft2_centered(y))).abs().max()
moved = shift_image(x, torch.tensor([3.3, -7.25], dtype=torch.float64), pixel_size_angstrom=1.0)
amp_change = (fft2_centered(moved).abs() - fft2_centered(x).abs())[1:, 1:].abs().max()
print(f"linearity error {lin:.2e}; |F| change after a sub-pixel shift (off Nyquist) {amp_change:.2e}")
g1 = torch.randn(64, dtype=torch.float64)
h1 = torch.randn(64, dtype=torch.float64)
circular = torch.stack([(g1 * h1[(i - torch.arange(64)) % 64]).sum() for i in range(64)])
theorem = torch.fft.ifft(torch.fft.fft(g1) * torch.fft.fft(h1)).real
print(f"convolution theorem (circular, by the sum vs by F·G): max difference "
      f"{(circular - theorem).abs().max():.1e}")

# %% [markdown]
# ## Sharpen 1 — DFT by matrix versus FFT (FT Sharpen Q1)
# The DFT of length $N$ is the matrix product
# $$F_j = \sum_{k} W_{jk} f_k, \qquad W_{jk} = e^{-2\pi i\,jk/N}:$$
# $O(N^2)$ operations.  The FFT factorises $W$ into $\log_2 N$ sparse stages: $O(N\log N)$.
# We sample a Gaussian $f(x) = e^{-x^2/2\sigma^2}$, whose continuous transform is
# $F(u) = \sqrt{2\pi}\,\sigma\,e^{-2\pi^2\sigma^2u^2}$, and compare: the DFT times the pixel
# size $\Delta x$ approximates the continuous transform at $u_j = j/(N\Delta x)$.

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

# %% [markdown]
# ## Sharpen 2 — how long do FFTs take in practice, and how does that compare? (FT Sharpen Q2)
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
# ## Sharpen 3 — numerical issues and bottlenecks (FT Sharpen Q3)
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

# %% [markdown]
# ## Jensen 1 — 2D waves and images (Jensen 2D)
# The building block of every image is the plane wave
# $$w(\mathbf r) = A\cos\!\big(2\pi\,\mathbf k\cdot\mathbf r + \varphi\big):$$
# straight crests perpendicular to $\mathbf k$, spaced $1/|\mathbf k|$ apart (its wavelength,
# the "resolution" it carries), shifted sideways by its phase $\varphi$.  Its transform is two
# points, at $+\mathbf k$ and $-\mathbf k$ (a real image has $F(-\mathbf k) = F(\mathbf k)^*$), each
# of height $A/2$ times the number of pixels.  Adding waves adds their points: an image *is*
# the list of the waves it contains.

# %%
r1 = coordinate_grid((n, n), dtype=torch.float64)  # pixels = Å here (1 Å/px)
wave_vectors = torch.tensor([[1 / 16, 0.0], [1 / 32, 1 / 32], [-3 / 64, 1 / 8]], dtype=torch.float64)
waves = [torch.cos(2 * math.pi * (r1 * kv).sum(-1)) for kv in wave_vectors]
waves.append(sum(waves))
fig, axes = plt.subplots(2, 4, figsize=(12, 6))
for col, w in enumerate(waves):
    spectrum_w = fft2_centered(w).abs()
    axes[0, col].imshow(w, cmap="gray")
    axes[1, col].imshow(spectrum_w[n // 2 - 24 : n // 2 + 25, n // 2 - 24 : n // 2 + 25],
                        cmap="magma", extent=(-24.5 / n, 24.5 / n, 24.5 / n, -24.5 / n))
    title = "sum of the three" if col == 3 else f"k = ({wave_vectors[col, 0]:.3f}, {wave_vectors[col, 1]:.3f}) 1/Å"
    axes[0, col].set_title(title, fontsize=9)
    axes[1, col].set_title("|F| (centre of the transform)", fontsize=9)
    axes[0, col].axis("off")
    axes[1, col].set_xlabel("k_x [1/Å]")
fig.tight_layout()
peaks = torch.nonzero(fft2_centered(waves[3]).abs() > 0.25 * n * n)
print("spikes of the sum at k (1/Å, (x, y)):",
      sorted({(round((int(c) - n // 2) / n, 4), round((int(rw) - n // 2) / n, 4)) for rw, c in peaks}))

# %% [markdown]
# ## Jensen 2 — amplitudes say "how much", phases say "where"
# Swap the amplitudes and phases of two images: the hybrid looks like the image whose
# **phases** it carries.  This is why phase errors (wrong poses, wrong CTF signs) are so
# damaging, and why a map's phases matter more than its amplitudes (which sharpening rescales).

# %%
ring = ((r.square().sum(-1).sqrt() - 25).abs() < 3).double() + (r[..., 0].abs() < 2).double()
amp_a, amp_b = fft2_centered(blobs).abs(), fft2_centered(ring).abs()
phase_a, phase_b = torch.angle(fft2_centered(blobs)), torch.angle(fft2_centered(ring))
hybrid = ifft2_centered(amp_a * torch.exp(1j * phase_b)).real  # blobs' amplitudes, ring's phases


def ncc(u: torch.Tensor, v: torch.Tensor) -> float:
    """Normalised cross-correlation coefficient of two images (Pearson)."""
    u, v = u - u.mean(), v - v.mean()
    return float((u * v).sum() / (u.norm() * v.norm()))


fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (title, img) in zip(axes, [("image A (blobs)", blobs), ("image B (ring + bar)", ring),
                                    ("|F_A| with the phases of B", hybrid)], strict=True):
    ax.imshow(img, cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
print(f"hybrid vs A {ncc(hybrid, blobs):.2f}, vs B {ncc(hybrid, ring):.2f}")

# %% [markdown]
# ## Jensen 3 — 2D transforms and filters (Jensen 2D)
# A filter multiplies the transform by a mask $H(\mathbf k)$ and transforms back:
# $f_{\text{filtered}} = \mathcal F^{-1}[H\cdot F]$.  A **low-pass** ($H = 1$ inside a radius)
# keeps the coarse shape and removes noise — and detail; a **high-pass** keeps edges and
# fine texture; a **band-pass** keeps one range of sizes (what particle pickers use to find
# particle-sized blobs).  Each is, by the convolution theorem, a convolution with the inverse
# transform of $H$ (lesson 03).

# %%
gen = torch.Generator().manual_seed(1)
noisy_blobs = blobs + 0.5 * torch.randn(blobs.shape, generator=gen, dtype=torch.float64)
filtered = {
    "noisy image": noisy_blobs,
    "low-pass 10 Å": lowpass(noisy_blobs, ndim=2, resolution_angstrom=10.0, pixel_size_angstrom=1.0),
    "high-pass 10 Å": highpass(noisy_blobs, ndim=2, resolution_angstrom=10.0, pixel_size_angstrom=1.0),
    "band-pass 30–8 Å": bandpass(noisy_blobs, ndim=2, low_resolution_angstrom=30.0,
                                 high_resolution_angstrom=8.0, pixel_size_angstrom=1.0),
}
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, (title, img) in zip(axes, filtered.items(), strict=True):
    ax.imshow(img, cmap="gray")
    ax.set_title(f"{title}\nNCC with clean {ncc(img, blobs):.2f}", fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## Jensen 4 — 3D waves and transforms (Jensen 3D)
# In 3D the wave $\cos(2\pi\,\mathbf k\cdot\mathbf r)$ has flat crests (planes) perpendicular to
# $\mathbf k = (k_x, k_y, k_z)$, and its 3D transform is again two points, $\pm\mathbf k$.  A map
# is a sum of such waves.  The link to images: projecting a map along $z$ keeps exactly the
# waves with $k_z = 0$ (all others integrate to zero), so **the 2D transform of a projection
# is the central plane $k_z = 0$ of the 3D transform** — the projection-slice theorem behind
# every reconstruction (lesson 09).

# %%
m = 32
r3 = coordinate_grid((m, m, m), dtype=torch.float64)
k3 = torch.tensor([2 / m, -3 / m, 5 / m], dtype=torch.float64)
wave3 = torch.cos(2 * math.pi * (r3 * k3).sum(-1))
spikes = torch.nonzero(fftn_centered(wave3, ndim=3).abs() > 0.25 * m**3) - m // 2
print("3D wave: spikes at (z, y, x) index offsets", spikes.tolist(), "→ ±k·N =",
      (k3 * m).flip(0).tolist())
centres3 = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 4
volume = sum(torch.exp(-(r3 - c).square().sum(-1) / (2 * 2.0**2)) for c in centres3)
projection = volume.sum(dim=0)  # along z (volume[z, y, x])
central_plane = fftn_centered(volume, ndim=3)[m // 2]  # k_z = 0
print(f"max |FT₂(projection along z) − (3D FT at k_z = 0)| = "
      f"{(fft2_centered(projection) - central_plane).abs().max():.1e} "
      f"(|F| up to {central_plane.abs().max():.0f})")

# %% [markdown]
# ## Jensen 5 — cross-correlation (Jensen 3D)
# Convolution (lesson 03) *blurs* one function with another.  Cross-correlation *compares*
# them at every relative shift $\mathbf s$:
# $$(f \star g)(\mathbf s) = \int f(\mathbf r)^*\,g(\mathbf r + \mathbf s)\,d\mathbf r
#   \qquad\Longleftrightarrow\qquad \mathcal F[f \star g](\mathbf k) = F(\mathbf k)^*\,G(\mathbf k)$$
# (the **correlation theorem**, proved like the convolution theorem).  It is a convolution
# with $f$ flipped, $f \star g = \tilde f * g$ with $\tilde f(\mathbf r) = f(-\mathbf r)^*$ — no
# flip, so the product is not symmetric: $g \star f$ is $f \star g$ mirrored.  Its peak is at
# the shift that best lays $f$ onto $g$.  Where cryo-EM uses it: **particle picking**
# (templates correlated with a micrograph), **2D/3D alignment** (finding shifts and angles of
# particles against references), **motion correction** (aligning movie frames), CTF fitting
# (correlating a spectrum with model CTFs) — and the FSC is a correlation normalised shell by
# shell.  The correlation of $f$ with itself, $\mathcal F^{-1}[|F|^2]$, is the autocorrelation
# (the Patterson map of crystallography): it has lost the phases.
#
# Below: a reference particle, and a noisy copy shifted by (+7.3, −4.6) Å at SNR 0.1.  One FFT
# product finds the shift for every candidate at once; the same result through the library's
# `convolve` with the flipped reference confirms the relation to convolution.

# %%
true_shift = torch.tensor([7.3, -4.6], dtype=torch.float64)
target = shift_image(blobs, true_shift, pixel_size_angstrom=1.0)
noise_sigma = float(blobs.std()) / math.sqrt(0.1)
target = target + noise_sigma * torch.randn(target.shape, generator=gen, dtype=torch.float64)
# correlation theorem on the centred grid: the zero shift sits at index N//2
cc = ifft2_centered(fft2_centered(blobs).conj() * fft2_centered(target)).real
peak = torch.nonzero(cc == cc.max())[0]
found = (peak.flip(0) - n // 2).double()  # (x, y)
flipped = blobs.flip(-2, -1).roll((1, 1), dims=(-2, -1))  # f(−r) about the N//2 origin
cc_by_convolution = convolve(target, flipped, ndim=2)  # linear: no wrap-around
peak_conv = torch.nonzero(cc_by_convolution == cc_by_convolution.max())[0].flip(0) - n // 2
# sub-pixel: a parabola through the peak and its two neighbours along each axis
row, col = int(peak[0]), int(peak[1])
line_x, line_y = cc[row, col - 1 : col + 2], cc[row - 1 : row + 2, col]
refined = found + torch.stack([0.5 * (v[0] - v[2]) / (v[0] - 2 * v[1] + v[2]) for v in (line_x, line_y)])
print(f"true shift (x, y) = {true_shift.tolist()} Å; correlation peak at {found.tolist()} Å "
      f"(parabola: {[round(float(v), 2) for v in refined]}); via convolve with the flipped "
      f"reference {peak_conv.tolist()} Å")
print(f"peak height over the rms of the map away from it: "
      f"{float(cc.max() / cc[cc < 0.5 * cc.max()].std()):.1f} (the image itself: SNR 0.1)")
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
axes[0].imshow(blobs, cmap="gray")
axes[0].set_title("reference f", fontsize=9)
axes[1].imshow(target, cmap="gray")
axes[1].set_title("target g: shifted, SNR 0.1", fontsize=9)
axes[2].imshow(cc, cmap="magma", extent=(-n / 2 - 0.5, n / 2 - 0.5, n / 2 - 0.5, -n / 2 - 0.5))
axes[2].plot(found[0], found[1], "c+", ms=14)
axes[2].set_title("f ⋆ g: peak at the shift", fontsize=9)
for ax in axes[:2]:
    ax.axis("off")
fig.tight_layout()
