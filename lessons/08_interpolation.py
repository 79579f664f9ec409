# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 08 · Interpolation (11 & 18 March 2021)
#
# Every cryo-EM forward model asks for values *between* grid points: a rotated map, a central
# slice through a 3D Fourier transform, a shifted image.  This lesson answers the study group's
# questions: how nearest, linear and cubic schemes differ (accuracy, cost, neighbours needed,
# smoothness), what `griddata` and `map_coordinates` really do, how noise hurts, and whether
# complex numbers cause trouble.  Modules: `cryoglass.interpolate`, `cryoglass.projection`.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.interpolate import interpolate_grid
from cryoglass.projection import (
    gaussian_blobs_projection,
    gaussian_blobs_volume,
    project,
    project_real_space,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## Blur: three kernels on one curve
#
# Interpolation = weighted sum of nearby samples.  *Nearest* uses 1 sample per axis (steps,
# not even continuous), *linear* uses 2 (continuous, kinks at samples), *cubic* (Keys /
# Catmull-Rom) uses 4 (smooth first derivative, exact for quadratics).  More neighbours cost
# more but follow smooth signals better.

# %%
n = 16
axis = torch.arange(n, dtype=torch.float64) - n // 2
samples = torch.exp(-(axis**2) / 8) * torch.cos(axis)
grid = samples[None, :].repeat(3, 1)  # a 2D grid whose middle row is our 1D signal
fine = torch.linspace(-7, 6, 400, dtype=torch.float64)
points = torch.stack([fine, torch.zeros_like(fine)], -1)
truth = torch.exp(-(fine**2) / 8) * torch.cos(fine)
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(fine, truth, "k", lw=2, label="true function")
for method in ("nearest", "linear", "cubic"):
    values = interpolate_grid(grid, points, method=method)
    error = float((values - truth).abs().max())
    ax.plot(fine, values, label=f"{method} (max error {error:.3f})")
ax.plot(axis, samples, "o", color="k", ms=3)
ax.legend(fontsize=7)
ax.set(xlabel="x [pixels]", title="one signal, three interpolants")
plt.close(fig)

# %% [markdown]
# ## Sharpen: `griddata` vs `map_coordinates`, and what a cryo-EM interpolation costs
#
# `scipy.interpolate.griddata(points, values, xi)` accepts *scattered* points: it first builds
# a Delaunay triangulation of `points` (the bottleneck, ~O(P log P) and very large in 3D), then
# finds the simplex containing each `xi` and interpolates barycentrically.  For a 3D Fourier
# slice, `points` would be all `M³` voxel frequencies (`M = 256` → 16.8 M points × 3),
# `values` their complex coefficients, and `xi` the `~0.8 N²` slice points per image (×B
# images).  `scipy.ndimage.map_coordinates` (and `torch.nn.functional.grid_sample`, which
# cryoglass uses) know the samples lie on a *regular grid*: the neighbours of `x` are found by
# `floor(x)` — no triangulation, O(1) per point.  That is why every cryo-EM package uses the
# regular-grid form.  Timing our regular-grid trilinear interpolation:

# %%
size = 32 if FAST else 64
volume = torch.randn(size, size, size)
coords = (torch.rand(200_000 if FAST else 1_000_000, 3) - 0.5) * size
t0 = time.perf_counter()
interpolate_grid(volume, coords)
seconds = time.perf_counter() - t0
print(f"{coords.shape[0]} trilinear samples in {seconds * 1e3:.1f} ms "
      f"({seconds / coords.shape[0] * 1e9:.0f} ns per point)")

# %% [markdown]
# ## Sharpen: sensitivity to noise
#
# An interpolating scheme passes *through* every sample, noise included; higher-order kernels
# (cubic) have negative lobes and overshoot, so they can amplify noise between samples, and
# nothing smooths it away.  Below: interpolate noisy samples of a smooth function and measure
# the error away from the samples as the noise grows.  The error floor is set by the noise,
# not by the kernel — to fight noise you must filter (average), not interpolate.

# %%
gen = torch.Generator().manual_seed(1)
clean = torch.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / 18)
between = (torch.rand(4000, 2, generator=gen, dtype=torch.float64) - 0.5) * 12
exact = torch.exp(-(between**2).sum(-1) / 18)
for sigma in (0.0, 0.01, 0.1):
    noisy = clean + sigma * torch.randn(clean.shape, generator=gen, dtype=torch.float64)
    errors = {m: float((interpolate_grid(noisy, between, method=m) - exact).std())
              for m in ("nearest", "linear", "cubic")}
    print(f"noise σ={sigma:<5} " + "  ".join(f"{m}: {e:.4f}" for m, e in errors.items()))

# %% [markdown]
# ## Sharpen: interpolating complex values, and the Fourier-slice projector
#
# Linear interpolation is linear in the data, so interpolating `a + ib` equals interpolating
# `a` and `b` separately (that is how cryoglass feeds complex grids to `grid_sample`: two real
# channels).  What *does* go wrong is interpolating amplitude and phase separately, and —
# more subtly — that a Fourier coefficient of an off-centre object oscillates fast
# (`e^{-2πi k·c}`), so linear interpolation between coarse Fourier samples loses accuracy.
# The fix is to sample the transform more finely: zero-pad the map (`pad = 2`) before the 3D
# FFT, then divide the map by the real-space image of the kernel (`sinc²`, gridding
# correction).  Errors against exact projections of a sum of Gaussians:

# %%
size = 32 if FAST else 64
gen = torch.Generator().manual_seed(2)
centers = (torch.rand(6, 3, generator=gen, dtype=torch.float64) - 0.5) * size / 3
sigmas = 1.5 + 1.5 * torch.rand(6, generator=gen, dtype=torch.float64)
amplitudes = 0.5 + torch.rand(6, generator=gen, dtype=torch.float64)
volume = gaussian_blobs_volume(size, centers, sigmas, amplitudes)
rotations = euler_to_matrix(torch.rand(8, 3, generator=gen, dtype=torch.float64) * 180)
exact = gaussian_blobs_projection(size, centers, sigmas, amplitudes, rotations)


def rel(a):
    return float((a - exact).norm() / exact.norm())


for pad in (1, 2, 3):
    for gridding in (False, True):
        errs = [rel(project(volume, rotations, pad=pad, gridding=gridding, interpolation=m))
                for m in ("nearest", "linear")]
        print(f"pad {pad} gridding {gridding!s:5}: nearest {errs[0]:.3f}  linear {errs[1]:.4f}")
print(f"real-space trilinear projector: {rel(project_real_space(volume, rotations)):.4f}")

# %%
images = project(volume, rotations[:1], pad=1, gridding=False)[0]
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].imshow(exact[0], cmap="gray")
axes[0].set_title("exact")
axes[1].imshow(images, cmap="gray")
axes[1].set_title("pad 1, no gridding")
axes[2].imshow(project(volume, rotations[:1])[0] - exact[0], cmap="RdBu")
axes[2].set_title("pad 2 + gridding − exact")
for a in axes:
    a.axis("off")
plt.close(fig)

# %% [markdown]
# **Where do packages interpolate?** RELION's `Projector::project` cuts slices out of a
# 2×-padded 3D transform by trilinear interpolation (nearest with `--NN`) after a gridding
# correction — cryoglass' `project` follows the same recipe and reproduces `relion_project`
# to ~1e-6 relative error.  The slice for a batch of B images of size N is B × ~0.8 N² points,
# each needing 8 neighbours: a (B, P, 3) array of coordinates into an (M, M, M/2+1) complex grid.
