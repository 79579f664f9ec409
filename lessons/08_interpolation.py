# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 08 · Interpolation
#
# **Syllabus:** 11 Mar 2021 (Blur) and 18 Mar 2021 (Sharpen): interpolation.
#
# Every cryo-EM forward model asks for values *between* grid points: a rotated map, a central
# slice through a 3D Fourier transform, a shifted image.  Modules: `cryoglass.interpolate`,
# `cryoglass.projection`; peers: `scipy.interpolate.griddata`, `scipy.ndimage.map_coordinates`.
#
# **Questions answered here** (search for the tag):
#
# * **Interpolation Blur Q1** — nearest, linear, polynomial/cubic, spline; 1D vs 2D: accuracy,
#   cost, data points needed, smoothness → *Blur: three kernels*
# * **Interpolation Blur Q2** — `griddata` for a 3D Fourier slice: what are `points`, `values`,
#   `xi`, and how big? → *griddata and map_coordinates*
# * **Interpolation Blur Q3** — does interpolating complex numbers cause problems?
#   → *Interpolating complex values*
# * **Interpolation Blur Q4** — where cryo-EM packages interpolate, in how many dimensions,
#   with which kernel → *Interpolating complex values* (last cell)
# * **Interpolation Sharpen Q1** — the bottleneck of `griddata`, read and benchmarked
#   → *griddata and map_coordinates: a benchmark*
# * **Interpolation Sharpen Q2** — a scattered-data interpolator of our own; its bottleneck and
#   how to speed it up → *Our own scattered-data interpolator*
# * **Interpolation Sharpen Q3** — how sensitive `griddata` is to noise; pathologies
#   → *Sensitivity to noise*
# * **Interpolation Sharpen Q4** — how `map_coordinates` differs from `griddata`
#   → *griddata and map_coordinates*

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.interpolate import griddata
from scipy.ndimage import map_coordinates
from scipy.spatial import Delaunay, cKDTree

from cryoglass.geometry import euler_to_matrix
from cryoglass.interpolate import interpolate_grid
from cryoglass.projection import (
    gaussian_blobs_projection,
    gaussian_blobs_volume,
    project,
    project_real_space,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)
rng = np.random.default_rng(0)
try:  # scipy's triangulation calls LAPACK once per simplex: a threaded BLAS only adds overhead
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
except ImportError:  # threadpoolctl comes with scikit-learn (and umap-learn)
    pass

# %% [markdown]
# ## Blur: three kernels on one curve (Interpolation Blur Q1)
#
# Interpolation = weighted sum of nearby samples, $f(x) \approx \sum_j f_j\,h(x - j)$, with a
# kernel $h$ that is 1 at 0 and 0 at the other integers (so the curve passes through the
# samples):
#
# $$h_{\text{nearest}}(t) = \begin{cases}1 & |t| < \tfrac12\\ 0 & \text{else}\end{cases},\qquad
#   h_{\text{linear}}(t) = \max(0,\, 1 - |t|),$$
# $$h_{\text{cubic}}(t) = \begin{cases}\tfrac32|t|^3 - \tfrac52|t|^2 + 1 & |t| \le 1\\
#   -\tfrac12|t|^3 + \tfrac52|t|^2 - 4|t| + 2 & 1 < |t| < 2\\ 0 & \text{else}\end{cases}
#   \quad\text{(Keys, } a = -\tfrac12\text{)}.$$
#
# In $d$ dimensions the kernels are products over the axes (bi-/trilinear …), so the number of
# samples used per point is (support)$^d$:
#
# | scheme | samples per point (1D / 2D / 3D) | smoothness | error for smooth data | cost |
# |---|---|---|---|---|
# | nearest | 1 / 1 / 1 | steps (discontinuous) | $O(h)$ | lowest |
# | linear | 2 / 4 / 8 | continuous, kinks at samples | $O(h^2)$ | low |
# | cubic (Keys) | 4 / 16 / 64 | continuous first derivative | $O(h^3)$ | ~8× linear in 3D |
# | cubic B-spline (`map_coordinates`, order 3) | 4 / 16 / 64 + a global prefilter | continuous second derivative | $O(h^4)$ | prefilter over all samples |
# | global polynomial through all samples | all | smooth, but oscillates (Runge) | poor far from the centre | $O(P)$ per point |
#
# More neighbours cost more but follow smooth signals better.

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

# %% [markdown]
# ## `griddata` and `map_coordinates` (Interpolation Blur Q2, Sharpen Q4)
#
# `scipy.interpolate.griddata(points, values, xi)` accepts *scattered* points: it first builds
# a Delaunay triangulation of `points` (Qhull), computes for every simplex the matrix that turns
# a position into barycentric coordinates, then finds the simplex containing each `xi` (a walk
# through neighbouring simplices) and interpolates barycentrically.  For a 3D Fourier slice,
# `points` would be all $M^3$ voxel frequencies ($M = 256$ → 16.8 M points × 3), `values` their
# complex coefficients, and `xi` the $\sim 0.8 N^2$ slice points per image (× B images).
#
# `scipy.ndimage.map_coordinates(input, coordinates, order)` (and `torch.nn.functional.grid_sample`,
# which cryoglass uses) knows the samples lie on a *regular grid*: the neighbours of $x$ are
# found by $\lfloor x\rfloor$ — no triangulation, $O(1)$ per point.  The differences:
#
# | | `griddata` | `map_coordinates` |
# |---|---|---|
# | samples | scattered points, any layout | a regular grid (array indices) |
# | set-up | Delaunay triangulation, $O(P\log P)$ in 2D, much more in 3D; per-simplex transforms | none (order 1); a B-spline prefilter over the whole array (order ≥ 2) |
# | per query point | locate its simplex (walk), $d + 1$ samples | $\lfloor x\rfloor$, $(\text{order}+1)^d$ samples |
# | kernels | nearest, linear (barycentric), cubic (Clough–Tocher, 2D only) | B-splines of order 0–5 |
# | outside the data | NaN (outside the convex hull) or `fill_value` | `mode`: constant, nearest, reflect, wrap … |
#
# That is why every cryo-EM package uses the regular-grid form.  Both agree where they overlap:
# linear `map_coordinates` equals cryoglass's `interpolate_grid` (the same bilinear weights):

# %%
field = torch.randn(40, 50, dtype=torch.float64)
query = (torch.rand(1000, 2, dtype=torch.float64) - 0.5) * torch.tensor([40.0, 30.0])  # (x, y)
ours = interpolate_grid(field, query)
index_yx = (query.flip(-1) + torch.tensor([20.0, 25.0], dtype=torch.float64)).T.numpy()  # (row, col)
scipy_linear = map_coordinates(field.numpy(), index_yx, order=1)
print(f"max |interpolate_grid − map_coordinates(order=1)| = {np.abs(ours.numpy() - scipy_linear).max():.1e}")

# %% [markdown]
# ### A benchmark (Interpolation Sharpen Q1)
#
# The syllabus's experiment: sample a Gaussian at $P$ random points, then interpolate it onto a
# Cartesian grid with `griddata`, timing each stage; and, for comparison, the same Gaussian
# sampled on a regular grid and resampled by `map_coordinates`.  (Timings depend on the load of
# the machine; the ratios are what matters.)


# %%
def gaussian(x: np.ndarray) -> np.ndarray:
    return np.exp(-(x**2).sum(-1) / (2 * 0.3**2))


def stage_times(points: np.ndarray, xi: np.ndarray) -> dict[str, float]:
    """griddata's stages, timed one by one (what griddata(..., 'linear') does inside)."""
    values = gaussian(points)
    t0 = time.perf_counter()
    tri = Delaunay(points)
    t1 = time.perf_counter()
    transforms = tri.transform  # per simplex: T⁻¹ and the last vertex (barycentric coordinates)
    t2 = time.perf_counter()
    simplex = tri.find_simplex(xi)
    t3 = time.perf_counter()
    inside = simplex >= 0
    d = points.shape[1]
    bary = np.einsum("nij,nj->ni", transforms[simplex[inside], :d], xi[inside] - transforms[simplex[inside], d])
    weights = np.c_[bary, 1 - bary.sum(1)]
    estimate = np.full(len(xi), np.nan)
    estimate[inside] = (weights * values[tri.simplices[simplex[inside]]]).sum(1)
    t4 = time.perf_counter()
    error = np.nanmax(np.abs(estimate - gaussian(xi)))
    return {"delaunay": t1 - t0, "transforms": t2 - t1, "locate": t3 - t2, "interpolate": t4 - t3,
            "error": error, "simplices": len(tri.simplices)}


for dim, sizes, side in ((2, (1000, 4000) if FAST else (1000, 10000, 100000), 64),
                         (3, (1000, 4000) if FAST else (1000, 10000, 40000), 24)):
    grid_line = np.linspace(-0.9, 0.9, side)
    xi = np.stack(np.meshgrid(*[grid_line] * dim, indexing="ij"), -1).reshape(-1, dim)
    for n_points in sizes:
        pts = rng.uniform(-1, 1, (n_points, dim))
        t = stage_times(pts, xi)
        total = sum(t[k] for k in ("delaunay", "transforms", "locate", "interpolate"))
        check = griddata(pts, gaussian(pts), xi, method="linear")
        print(f"{dim}D, P = {n_points:6d} ({t['simplices']:6d} simplices) → {len(xi)} grid points: "
              f"Delaunay {1e3 * t['delaunay']:7.1f} ms, transforms {1e3 * t['transforms']:6.1f} ms, "
              f"locate {1e3 * t['locate']:6.1f} ms, interpolate {1e3 * t['interpolate']:5.1f} ms "
              f"(total {1e3 * total:7.1f} ms; max error {t['error']:.1e}; griddata's own error "
              f"{np.nanmax(np.abs(check - gaussian(xi))):.1e})")
    # the regular-grid route: the Gaussian sampled on a grid with about as many points
    m = int(round(sizes[-1] ** (1 / dim)))
    grid_axis = np.linspace(-1, 1, m)
    samples = gaussian(np.stack(np.meshgrid(*[grid_axis] * dim, indexing="ij"), -1))
    coordinates = ((xi + 1) / 2 * (m - 1)).T
    t0 = time.perf_counter()
    resampled = map_coordinates(samples, coordinates, order=1)
    t_map = time.perf_counter() - t0
    print(f"{dim}D, regular grid of {m}^{dim} = {m**dim} samples, map_coordinates order 1: "
          f"{1e3 * t_map:.2f} ms, max error {np.abs(resampled - gaussian(xi)).max():.1e}")

# %% [markdown]
# The triangulation dominates, and it grows faster than $P$ (and much faster in 3D, where a
# Delaunay tessellation of $P$ points has ~6.5 $P$ tetrahedra and Qhull works in 4D); locating
# the query points and interpolating are cheap once it exists.  A second, practical bottleneck
# hides in the "transforms" stage: scipy inverts each simplex's small matrix with one LAPACK
# call, and a multi-threaded BLAS wakes its threads for every one of them — on this busy
# 2-core machine that stage took seconds (15 s for 26 000 tetrahedra) until the first cell
# limited BLAS to one thread.  On a regular grid there is
# nothing to build: `map_coordinates` is orders of magnitude faster for the same number of
# samples, and as accurate.  Our regular-grid trilinear interpolation on a cryo-EM-sized job:

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
# ## Our own scattered-data interpolator (Interpolation Sharpen Q2)
#
# The simplest scheme that takes the same inputs as `griddata` — `points` (P, d), `values`
# (P,), `xi` (Q, d) — is **inverse distance weighting** (Shepard 1968) over the $k$ nearest
# samples:
# $$\hat f(\mathbf x) = \frac{\sum_{j \in \mathrm{kNN}(\mathbf x)} w_j f_j}{\sum_j w_j},
#   \qquad w_j = \frac{1}{\lVert\mathbf x - \mathbf p_j\rVert^{2} + \epsilon}.$$
# No triangulation; the work is finding neighbours.  Written plainly (all Q × P distances, in
# chunks, then `topk`), the bottleneck is that $O(QP)$ distance computation.  A spatial index
# (a k-d tree: built in $O(P\log P)$, each query $O(\log P)$) removes it; on a GPU the brute
# force is also fast for moderate P.


# %%
def idw_brute_force(points: torch.Tensor, values: torch.Tensor, xi: torch.Tensor, *,
                    k: int = 8, chunk: int = 4096) -> torch.Tensor:
    """Inverse-distance weighting over the k nearest samples; all distances, chunk by chunk."""
    out = []
    for start in range(0, len(xi), chunk):
        d2 = torch.cdist(xi[start : start + chunk], points).square()  # (chunk, P): the bottleneck
        nearest_d2, nearest = torch.topk(d2, k, dim=1, largest=False)
        weights = 1 / (nearest_d2 + 1e-12)
        out.append((weights * values[nearest]).sum(1) / weights.sum(1))
    return torch.cat(out)


def idw_kdtree(points: np.ndarray, values: np.ndarray, xi: np.ndarray, *, k: int = 8) -> np.ndarray:
    """The same weights, neighbours from a k-d tree."""
    distance, nearest = cKDTree(points).query(xi, k=k)
    weights = 1 / (distance**2 + 1e-12)
    return (weights * values[nearest]).sum(1) / weights.sum(1)


grid_line = np.linspace(-0.9, 0.9, 64)
xi2 = np.stack(np.meshgrid(grid_line, grid_line, indexing="ij"), -1).reshape(-1, 2)
truth2 = gaussian(xi2)
for n_points in (1000, 4000) if FAST else (1000, 10000, 100000):
    pts = rng.uniform(-1, 1, (n_points, 2))
    vals = gaussian(pts)
    t0 = time.perf_counter()
    brute = idw_brute_force(torch.from_numpy(pts), torch.from_numpy(vals), torch.from_numpy(xi2)).numpy()
    t1 = time.perf_counter()
    tree = idw_kdtree(pts, vals, xi2)
    t2 = time.perf_counter()
    linear = griddata(pts, vals, xi2, method="linear")
    t3 = time.perf_counter()
    print(f"P = {n_points:6d}: IDW brute force {1e3 * (t1 - t0):7.1f} ms, IDW k-d tree "
          f"{1e3 * (t2 - t1):6.1f} ms (same: {np.allclose(brute, tree)}), griddata linear "
          f"{1e3 * (t3 - t2):7.1f} ms; max error IDW {np.abs(tree - truth2).max():.3f}, "
          f"griddata {np.nanmax(np.abs(linear - truth2)):.3f}")

# %% [markdown]
# IDW is simple and never returns NaN, but it is not exact for linear functions and flattens
# peaks (a weighted *average* can never exceed the largest sample): its error is larger than
# barycentric interpolation's at the same P.  Ways to speed any scattered interpolator up: a
# spatial index (tree, or bucketing the points into grid cells so that neighbours are found
# by $\lfloor x/h\rfloor$ — the regular grid again), batching queries, and moving the distance
# computation to a GPU.

# %% [markdown]
# ## Sensitivity to noise (Interpolation Sharpen Q3)
#
# An interpolating scheme passes *through* every sample, noise included; higher-order kernels
# (cubic) have negative lobes and overshoot, so they can amplify noise between samples, and
# nothing smooths it away.  First on a regular grid: interpolate noisy samples of a smooth
# function and measure the error away from the samples as the noise grows.  The error floor
# is set by the noise, not by the kernel — to fight noise you must filter (average), not
# interpolate.

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
# Then `griddata` on scattered samples of the same kind, with its two pathologies: outside
# the convex hull of the samples it returns NaN (no triangle contains the point), and long,
# thin triangles — from clustered or nearly collinear samples — interpolate between samples
# that are far apart.  Clough–Tocher (`method="cubic"`) fits gradients estimated from noisy
# neighbours, so noise is amplified more than by the linear scheme.

# %%
radius_p = 0.95 * np.sqrt(rng.uniform(0, 1, 600))  # 600 samples in a disc of radius 0.95
angle_p = rng.uniform(0, 2 * np.pi, 600)
pts = np.c_[radius_p * np.cos(angle_p), radius_p * np.sin(angle_p)]
clean_values = gaussian(pts)
rows = []
for sigma in (0.0, 0.01, 0.05, 0.1):
    noisy_values = clean_values + sigma * rng.standard_normal(len(pts))
    errs = {m: np.nanstd(griddata(pts, noisy_values, xi2, method=m) - truth2) for m in ("linear", "cubic")}
    rows.append((sigma, errs["linear"], errs["cubic"]))
    print(f"noise σ = {sigma:<5}: rms error linear {errs['linear']:.4f}, cubic {errs['cubic']:.4f}")
outside = np.isnan(griddata(pts, clean_values, xi2, method="linear")).mean()
print(f"fraction of grid points outside the samples' convex hull (NaN): {100 * outside:.1f} %")
# pathology: the same number of samples on 3 lines (scan lines, or the rays of a polar grid)
lines = np.concatenate([np.c_[np.linspace(-1, 1, 200), np.full(200, y0)] for y0 in (-0.8, 0.0, 0.8)])
lines[:, 1] += 1e-3 * rng.standard_normal(len(lines))
sliver = griddata(lines, gaussian(lines), xi2, method="linear")
spread = griddata(pts, clean_values, xi2, method="linear")
print(f"600 samples on 3 lines: max error {np.nanmax(np.abs(sliver - truth2)):.2f} "
      f"(triangles 0.8 tall and 0.01 wide, linear across the Gaussian's width of 0.3); "
      f"600 samples spread out: {np.nanmax(np.abs(spread - truth2)):.2f}")
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
axes[0].plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="linear")
axes[0].plot([r[0] for r in rows], [r[2] for r in rows], "s-", label="cubic (Clough–Tocher)")
axes[0].set(xlabel="noise σ of the samples", ylabel="rms error on the grid", title="griddata and noise")
axes[0].legend(fontsize=8)
noisy_cubic = griddata(pts, clean_values + 0.1 * rng.standard_normal(len(pts)), xi2, method="cubic")
axes[1].imshow(noisy_cubic.reshape(64, 64), cmap="viridis", extent=(-0.9, 0.9, 0.9, -0.9))
axes[1].plot(pts[:, 0], pts[:, 1], "k.", ms=1)
axes[1].set_title("cubic, σ = 0.1: NaN outside the hull", fontsize=9)
axes[2].imshow(sliver.reshape(64, 64), cmap="viridis", extent=(-0.9, 0.9, 0.9, -0.9))
axes[2].set_title("samples on 3 lines: slivers", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## Interpolating complex values, and the Fourier-slice projector (Interpolation Blur Q3)
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

# %% [markdown]
# **Where do packages interpolate?** (Interpolation Blur Q4) RELION's `Projector::project` cuts slices out of a
# 2×-padded 3D transform by trilinear interpolation (nearest with `--NN`) after a gridding
# correction — cryoglass' `project` follows the same recipe and reproduces `relion_project`
# to ~1e-6 relative error.  The slice for a batch of B images of size N is B × ~0.8 N² points,
# each needing 8 neighbours: a (B, P, 3) array of coordinates into an (M, M, M/2+1) complex grid.
