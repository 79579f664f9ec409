# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 09 · 3D reconstruction by direct Fourier inversion
#
# **Syllabus:** 25 Mar 2021 (Blur, guest lecture D. Dynerman) and 1 Apr 2021 (Sharpen): 3D
# reconstruction via direct Fourier inversion.
#
# Modules taught: `cryoglass.reconstruct` (insertion, accumulation, Wiener-like division,
# gridding correction, symmetry) and its mirror image `cryoglass.projection`.
#
# **Questions answered here** (search for the tag):
#
# * **Fourier inversion Blur Q1** — how to see one particle *inside* the 3D map, in real and in
#   reciprocal space; other useful visualisations → *Blur 1*, answer 1
# * **Fourier inversion Blur Q2** — why understanding Fourier interpolation and back-projection
#   helps when you run RELION or cryoSPARC → *Blur 2*, *Sharpen 1*, answer 2
# * **Fourier inversion Blur Q3** — will Fourier inversion always be used? → answer 3
# * **Fourier inversion Blur Q4** — other fields that use it → answer 4
# * **Fourier inversion Blur Q5** — how much to know, and what builds intuition → answer 5
# * **Fourier inversion Sharpen Q1** — artefacts with few particles and alignment errors
#   → *Blur 3*, *Sharpen 2*
# * **Fourier inversion Sharpen Q2** — tracking an artefact's cause (poses, preferred
#   orientation, SNR) with a synthetic example → *Sharpen 3*

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.fourier import rfft2_centered
from cryoglass.geometry import euler_to_matrix, random_rotations, rotvec_to_matrix
from cryoglass.projection import project
from cryoglass.reconstruct import (
    accumulate,
    backproject,
    empty_accumulator,
    finalize,
    reconstruct,
)
from cryoglass.simulate import gaussian_map
from cryoglass.validate import fsc_against_reference

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
N = 32 if FAST else 48
PIXEL = 2.0
generator = torch.Generator().manual_seed(0)


def ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normalised cross-correlation inside a sphere of radius N/2 − 2."""
    axis = torch.arange(N) - N // 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    inside = r < N / 2 - 2
    x, y = a[inside].double(), b[inside].double()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()))


# A "molecule": 25 Gaussian atoms-of-density (3 Å wide) within 35 % of the box.
directions = torch.randn(25, 3, generator=generator, dtype=torch.float64)
directions = directions / directions.norm(dim=1, keepdim=True)
centres = directions * 0.35 * N * PIXEL / 2 * torch.rand(25, 1, generator=generator) ** (1 / 3)
truth = gaussian_map(centres, shape=(N, N, N), pixel_size_angstrom=PIXEL, sigma_angstrom=3.0)

# %% [markdown]
# ## Blur 1 — one image, seen in the map (Fourier inversion Blur Q1)
#
# A projection adds up the density along the beam (z in the particle's frame).  Going back,
# the only thing one image can tell us is "somewhere along this line there was this much
# density": **back-projection smears the image back along the beam direction**.  In reciprocal
# space the same image is a **central plane** (the Fourier-slice theorem): its 2D transform is
# the 3D transform of the map on the plane through the origin perpendicular to the beam.

# %%
pose = euler_to_matrix(torch.tensor([[30.0, 60.0, 0.0]], dtype=torch.float64))
image = project(truth, pose, pixel_size_angstrom=PIXEL)
smear = backproject(image, pose, pixel_size_angstrom=PIXEL)
one_plane = empty_accumulator(N, dtype=torch.float64)
one_plane = accumulate(one_plane, image, pose, pixel_size_angstrom=PIXEL)
weights_plane = one_plane.weight.sum(dim=0)  # the inserted plane seen from k_z

fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
axes[0].imshow(image[0], cmap="gray")
axes[0].set_title("projection (tilt 60°)")
axes[1].imshow(smear.sum(dim=1), cmap="gray")
axes[1].set_title("back-projection, side view:\nstreaks along the beam")
axes[2].imshow(torch.log1p(rfft2_centered(image[0]).abs()), cmap="magma")
axes[2].set_title("|2D FT| of the image")
axes[3].imshow(weights_plane > 0, cmap="gray")
axes[3].set_title("where it lands in 3D:\na tilted central plane")
for ax in axes:
    ax.set_axis_off()

# %% [markdown]
# ## Blur 2 — adding views: plain back-projection blurs, weighting fixes it
#
# With many views the smears overlap where the molecule is.  But the centre of Fourier space
# is crossed by *every* plane while the edge is visited rarely: a plain sum of back-projections
# over-weights low frequencies (a 1/|k| blur).  Direct Fourier inversion divides each Fourier
# voxel by how often it was sampled (`Σ CTF²`, the **weights**): that is the whole trick.

# %%
count = 300 if FAST else 1000
rotations = random_rotations(count, generator=generator, dtype=torch.float64)
images = project(truth, rotations, pixel_size_angstrom=PIXEL)
plain = backproject(images, rotations, pixel_size_angstrom=PIXEL)
weighted = reconstruct(images, rotations, pixel_size_angstrom=PIXEL)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
titles = ("truth", "Σ back-projections", "Σ CTF·F / Σ CTF²")
for ax, vol, title in zip(axes, (truth, plain, weighted), titles, strict=True):
    ax.imshow(vol[N // 2], cmap="gray")
    ax.set_title(f"{title}\nNCC {ncc(vol, truth):.3f}")
    ax.set_axis_off()
print(f"plain back-projection NCC {ncc(plain, truth):.3f}; weighted {ncc(weighted, truth):.4f}")

# %% [markdown]
# ## Blur 3 — artefacts: few particles, pose errors, missing views (Fourier inversion Sharpen Q1)
#
# * **Few particles**: planes do not yet cover Fourier space; unfilled voxels stay 0 and the
#   map gets streaky, noisy high-frequency texture.
# * **Pose errors**: each image is inserted on a slightly wrong plane; high frequencies (far
#   from the origin, where a small tilt moves the plane most) average out — a blur.
# * **Missing views** (e.g. no tilt beyond 50°, preferred orientation): a whole cone of Fourier
#   space is empty; the map is stretched along the missing direction.
#
# We score each map by its FSC against the truth at 0.5 (lower Å is better).


# %%
def score(volume: torch.Tensor) -> float:
    _, res = fsc_against_reference(volume, truth, pixel_size_angstrom=PIXEL)
    return float(res)


few = {
    n: reconstruct(images[:n], rotations[:n], pixel_size_angstrom=PIXEL) for n in (10, 50, count)
}
noise = {}
for sigma_deg in (0.0, 3.0, 10.0):
    axis_angle = torch.randn(count, 3, generator=generator, dtype=torch.float64)
    axis_angle = axis_angle / axis_angle.norm(dim=1, keepdim=True) * np.deg2rad(sigma_deg)
    wrong = rotations @ rotvec_to_matrix(axis_angle)
    noise[sigma_deg] = reconstruct(images, wrong, pixel_size_angstrom=PIXEL)
tilt = torch.rad2deg(torch.acos(rotations[:, 2, 2].clamp(-1, 1)))
keep = (tilt < 50) | (tilt > 130)  # only views within 50° of the z axis (either side)
cone = reconstruct(images[keep], rotations[keep], pixel_size_angstrom=PIXEL)

fig, axes = plt.subplots(2, 4, figsize=(12, 6))
panels = [(few[n], f"{n} particles") for n in (10, 50)]
panels += [(noise[s], f"pose error {s:.0f}°") for s in (3.0, 10.0)]
panels += [(cone, "no views > 50° tilt\n(top view, xy)"), (cone, "same, side view (xz)")]
panels += [(weighted, f"all {count}, exact poses"), (truth, "truth")]
for ax, (vol, title) in zip(axes.flat, panels, strict=True):
    side = "side" in title
    ax.imshow(vol[:, N // 2, :] if side else vol[N // 2], cmap="gray")
    ax.set_title(f"{title}\n{score(vol):.1f} Å" if vol is not truth else title, fontsize=9)
    ax.set_axis_off()
fig.tight_layout()
for name, vol in [("10 particles", few[10]), ("50 particles", few[50]), (f"{count}", few[count])]:
    print(f"{name:>14}: FSC-to-truth@0.5 = {score(vol):5.2f} Å")
for s, vol in noise.items():
    print(f"pose error {s:4.1f}°: FSC-to-truth@0.5 = {score(vol):5.2f} Å")
print(f"missing cone (tilt < 50° only, {int(keep.sum())} views): {score(cone):5.2f} Å")

# %% [markdown]
# ## Sharpen 1 — the algorithm, equation by equation
#
# For particle ``i`` with pose ``A_i`` (RELION matrix), origin ``o_i`` and CTF ``c_i``, the
# forward model (lesson 05) is ``X̂_i(k) = c_i(k) e^{+2πi k·o_i} V̂(A_iᵀ(k_x, k_y, 0))``.
# Direct Fourier inversion estimates ``V̂`` voxel by voxel:
#
# $$\hat V(\mathbf p) = \frac{\sum_i \sum_{\mathbf k} w(\mathbf p, \mathbf k_i)\, c_i(\mathbf k)
#   e^{-2\pi i\mathbf k\cdot\mathbf o_i} \hat X_i(\mathbf k)}
#   {\sum_i\sum_{\mathbf k} w(\mathbf p, \mathbf k_i)\, c_i(\mathbf k)^2 + 1/\tau^2(|\mathbf p|)}$$
#
# * ``k_i = pad·A_iᵀ(k_x, k_y, 0)`` lands between grid voxels: ``w`` are the **trilinear
#   weights** of the 8 surrounding voxels (*Fourier interpolation* in reverse).  The grid is
#   ``pad = 2`` times finer than the image's, so the interpolation error is small.
# * ``e^{−2πi k·o}`` undoes the origin shift; multiplying by ``c`` (not dividing!) keeps noise
#   at CTF zeros out; ``Σ c²`` in the denominator is the least-squares normalisation.
# * ``1/τ²`` is the Wiener term: RELION sets ``τ² = SSNR/⟨W⟩`` per shell with
#   ``SSNR = FSC/(1−FSC)`` (`cryoglass.reconstruct.tau2_from_fsc`); without it, voxels with tiny
#   weight amplify noise.
# * Trilinear interpolation is a convolution in Fourier space with a tent; in real space the
#   map is multiplied by the tent's transform ``sinc²(r/M)``.  **Gridding correction** divides it
#   back out.  RELION also replaces the plain division by an iterative density compensation
#   (Pipe & Menon), available as ``finalize(..., gridding_iterations=10)``.
#
# Back-projection (without the division) is the **adjoint** of projection: ``⟨P v, w⟩ =
# ⟨v, Pᵀ w⟩`` for every map ``v`` and image stack ``w``.  That is a sharp test of an
# implementation — every convention (shift sign, Hermitian half, padding) must match:

# %%
v = torch.randn(N, N, N, generator=generator, dtype=torch.float64)
w = torch.randn(20, N, N, generator=generator, dtype=torch.float64)
r20 = random_rotations(20, generator=generator, dtype=torch.float64)
shifts = torch.randn(20, 2, generator=generator, dtype=torch.float64) * 3
lhs = float((project(v, r20, shift_angstrom=shifts) * w).sum())
rhs = float((v * backproject(w, r20, shift_angstrom=shifts)).sum())
print(f"<P v, w> = {lhs:.10f}\n<v, Pᵀw> = {rhs:.10f}")
print(f"relative difference {abs(lhs - rhs) / abs(lhs):.1e}")

# %% [markdown]
# ## Sharpen 2 — what the gridding correction is worth
#
# Reconstruct the same noise-free images with and without dividing by ``sinc²``: the error
# without it grows towards the box edge, exactly as ``1 − sinc²(r/M)``.

# %%
acc = empty_accumulator(N, dtype=torch.float64)
acc = accumulate(acc, images, rotations, pixel_size_angstrom=PIXEL)
with_gridding = finalize(acc, mask=None)
without = finalize(acc, mask=None, gridding=False)
print(f"NCC with gridding correction {ncc(with_gridding, truth):.4f}")
print(f"NCC without it {ncc(without, truth):.4f}")
ratio = (without / with_gridding)[N // 2, N // 2, N // 2 :]
radius = torch.arange(ratio.shape[0], dtype=torch.float64)
plt.figure(figsize=(5, 3))
plt.plot(radius, ratio, "o", label="without / with correction")
plt.plot(radius, torch.sinc(radius / (2 * N)) ** 2, label="sinc²(r / 2N)")
plt.xlabel("distance from the centre [voxels]")
plt.legend()
plt.title("the apodisation that trilinear insertion causes")

# %% [markdown]
# ## Sharpen 3 — tracking an artefact down with synthetic data (Fourier inversion Sharpen Q2)
#
# Suppose a map looks stretched and noisy.  Suspects: pose errors, preferred orientation, low
# SNR.  Make a synthetic data set where you *know* the truth, switch on one suspect at a time,
# and compare the symptom (here: FSC-to-truth and the *anisotropy* of the weights, measured as
# the fraction of empty Fourier voxels in a shell).  Each suspect has its own fingerprint:
#
# * pose errors: weights fine, high-resolution FSC drops;
# * missing views: whole cones of zero weight (look at `Accumulator.weight`!), stretched map;
# * low SNR: weights fine, FSC drops gradually and the half-map FSC says so too.


# %%
def empty_fraction(acc_) -> float:
    m = acc_.pad * N
    shell_w = acc_.weight[1 : 1 + m, 1 : 1 + m, : m // 2 + 1]
    kc = torch.arange(m) - m // 2
    kx = torch.arange(m // 2 + 1)
    r = torch.sqrt(kc[:, None, None] ** 2 + kc[None, :, None] ** 2 + kx[None, None, :] ** 2)
    ring = (r > 0.6 * m / 2) & (r < 0.8 * m / 2)
    return float((shell_w[ring] == 0).double().mean())


suspects = {
    "clean": (images, rotations),
    "pose error 5°": (
        images,
        rotations
        @ rotvec_to_matrix(
            torch.randn(count, 3, generator=generator, dtype=torch.float64) * np.deg2rad(5 / 3**0.5)
        ),
    ),
    "no views > 50°": (images[keep], rotations[keep]),
    "noise (SNR 0.05)": (
        images
        + torch.randn(images.shape, generator=generator, dtype=torch.float64)
        * images.std()
        / 0.05**0.5,
        rotations,
    ),
}
for name, (imgs, rots) in suspects.items():
    a = accumulate(empty_accumulator(N, dtype=torch.float64), imgs, rots, pixel_size_angstrom=PIXEL)
    vol = finalize(a)
    print(
        f"{name:>18}: FSC-to-truth {score(vol):5.2f} Å, empty voxels at 0.6–0.8 Nyquist "
        f"{100 * empty_fraction(a):5.1f} %"
    )

# %% [markdown]
# ## Answers in our own words (Fourier inversion Blur Q1–Q5)
#
# 1. *Visualising one particle in the map* (Fourier inversion Blur Q1): in real space, back-project it — a smear along the
#    beam; in reciprocal space, plot its inserted weights — a tilted central plane.  Plotting all
#    planes (the weight volume, or RELION's angular distribution) shows which directions are
#    covered and which are missing.
# 2. *Why it helps* (Fourier inversion Blur Q2): it tells you what `--pad`, the gridding correction, the Wiener
#    regularisation (`tau2_fudge`) and symmetry do, why few particles or missing views give
#    streaks, and why pose accuracy limits resolution.
# 3. *Will it stay?* (Fourier inversion Blur Q3)  It is the exact linear least-squares solution for known poses and is
#    fast (one pass over the data).  Iterative/regularised methods (conjugate gradients, neural
#    fields like cryoDRGN) replace it where poses are uncertain or the structure is
#    heterogeneous, but most of them still use the Fourier-slice theorem inside.
# 4. *Other fields* (Fourier inversion Blur Q4): X-ray CT and MRI (non-Cartesian k-space gridding — Pipe & Menon's density
#    compensation comes from MRI), radio astronomy (Bracewell's strip integration), electron
#    tomography, materials science (atom-probe, X-ray tomography).
# 5. *How much to know* (Fourier inversion Blur Q5): enough to predict the artefact from the cause, which the synthetic
#    experiments above train — change one thing at a time and watch the weights and the FSC.
