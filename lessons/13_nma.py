# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 13 · Normal modes, elastic networks and heterogeneity (the ProDy sessions, 29 Apr & 6 May 2021)
#
# A protein in ice is not one structure: every particle is caught somewhere along its slow,
# large "breathing" motions. Normal-mode analysis (NMA) of an *elastic network* predicts those
# motions from the shape alone: put a spring between every pair of Cα atoms closer than a cutoff
# and ask which collective displacements cost the least energy.
#
# **Blur** — what modes look like, what mixing conformations does to a map and to alignment.
# **Sharpen** — the Hessian, the eigenproblem and its cost, and counting degrees of freedom.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.data import trpv1_model_path
from cryoglass.io import read_structure
from cryoglass.nma import (
    amplitude_for_rmsd,
    anm,
    anm_hessian,
    collectivity,
    deformed_maps,
    extend_modes,
    fit_bfactors,
    square_fluctuations,
    topology_representing_network,
)
from cryoglass.validate import fourier_shell_correlation

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
BOX, PIXEL = (40, 5.0) if FAST else (64, 3.0)

# %% [markdown]
# ## Blur 1 — the slowest motions of TRPV1
#
# We take the Cα atoms of the bundled TRPV1 tetramer (~2000 nodes), build the anisotropic
# network model (ANM; cutoff 15 Å, spring constant γ = 1, ProDy's defaults), and keep the 20
# lowest non-zero modes. The six zero modes (3 translations + 3 rotations) are dropped.

# %%
atoms = read_structure(trpv1_model_path(), hydrogens=False, waters=False)
ca = [i for i, name in enumerate(atoms.atom_names) if name == "CA"]
modes = anm(atoms.coordinates_angstrom[ca], n_modes=20)
msf = square_fluctuations(modes)
fit = fit_bfactors(msf, atoms.bfactors_a2[ca])
kappa = collectivity(modes)
print(f"{len(ca)} Cα, lowest eigenvalues {np.round(modes.eigenvalues[:4], 4)}")
print(f"collectivity of modes 1-4: {np.round(kappa[:4], 2)}")
print(f"B-factor correlation (20 modes): {fit.correlation:.2f}")

fig, ax = plt.subplots(1, 2, figsize=(10, 3))
ax[0].semilogy(np.arange(1, 21), modes.eigenvalues, "o-")
ax[0].set(xlabel="mode", ylabel="λ", title="slow modes are soft (small λ)")
ax[1].plot(np.linalg.norm(modes.vectors_xyz()[0], axis=1))
ax[1].set(xlabel="Cα", ylabel="|v₁|", title="who moves in mode 1")

# %% [markdown]
# ## Blur 2 — heterogeneity along a breathing mode blurs the reconstruction
#
# Suppose every particle sits at a random amplitude along mode 1 (Gaussian, σ = 2 Å RMSD).
# With perfect alignment the reconstruction converges to the **average** of the particles'
# maps. Compare that average with the rest-state map, shell by shell (FSC): moving parts smear
# out, so the high-resolution shells lose correlation first — the reconstruction looks locally
# blurred where the protein breathes, sharp where it is rigid.

# %%
keys = list(zip(atoms.chain_ids, atoms.residue_numbers.tolist()))
node = {keys[c]: n for n, c in enumerate(ca)}
keep = [i for i, k in enumerate(keys) if k in node]
xyz, elements = atoms.coordinates_angstrom[keep], [atoms.elements[i] for i in keep]
v1 = extend_modes(modes.eigenvectors[:, :1], torch.tensor([node[keys[i]] for i in keep]))
rmsd_levels = torch.linspace(-4.0, 4.0, 5 if FAST else 9)
weights = torch.exp(-0.5 * (rmsd_levels / 2.0) ** 2)
amplitudes = rmsd_levels * amplitude_for_rmsd(1.0, len(ca))
maps = deformed_maps(
    xyz, elements, v1, amplitudes, shape=(BOX,) * 3, pixel_size_angstrom=PIXEL, bfactors_a2=30.0
).float()
rest = maps[len(maps) // 2]
average = (weights[:, None, None, None].float() * maps).sum(0) / weights.sum()
fsc = fourier_shell_correlation(average, rest)
frequency = np.arange(len(fsc)) / (BOX * PIXEL)
plt.figure(figsize=(5, 3))
plt.plot(frequency, fsc.numpy())
plt.xlabel("spatial frequency (1/Å)")
plt.ylabel("FSC(average, rest)")
plt.title("mixing conformations costs resolution")

# %% [markdown]
# **Alignment.** A particle at +4 Å along mode 1 no longer matches the rest-state reference
# perfectly: the best cross-correlation drops, and the pose that maximises it can move,
# because the search tries to explain a deformation by a rotation or a shift. Below, the
# normalised correlation of each deformed map with the reference (an upper bound of what any
# projection of it could reach).

# %%
def ncc(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


for level, volume in zip(rmsd_levels.tolist(), maps):
    print(f"mode-1 RMSD {level:+.1f} Å: correlation with the rest state {ncc(volume, rest):.4f}")

# %% [markdown]
# ## Blur 3 — how physics models enter processing
#
# * **As a prior on flexibility:** a few mode amplitudes instead of a whole new map per class
#   (flexible fitting, NMA-based refinement such as HEMNMA, or a decoder constrained to mode
#   space). Below: the amplitude of a "mystery" map is found by a 1-parameter scan.
# * **As ground truth:** simulated datasets along modes (``cryoglass nma-dataset``) whose true
#   amplitudes are known, to test heterogeneity methods (cryoDRGN-style VAEs).
# * **Downstream:** modes of the consensus model or of pseudo-atoms on a map explain the
#   variability that 3D classification or a VAE finds (overlap of modes with the observed
#   change).

# %%
target = maps[-2]  # pretend we do not know its amplitude
scores = [ncc(m, target) for m in maps]
print("best matching RMSD along mode 1:", float(rmsd_levels[int(np.argmax(scores))]), "Å")

# %% [markdown]
# ## Sharpen 1 — the Hessian and the eigenproblem
#
# For springs of stiffness γ between nodes with ``d_ij ≤ r_c``, the energy to second order is
# ``½ Δrᵀ H Δr`` with 3×3 blocks ``H_ij = −γ r_ij r_ijᵀ / d_ij²`` and ``H_ii = −Σ_j H_ij``.
# Rows of blocks sum to zero, so rigid translations and rotations have λ = 0 (6 zero modes).
# In thermal equilibrium ``⟨Δr Δrᵀ⟩ = k_B T H⁺``, so mode k contributes ∝ 1/λ_k: the lowest
# modes dominate the fluctuations, and B-factors follow as ``B_i = (8π²/3)⟨ΔR_i²⟩``.
#
# **Bottlenecks of prody.dynamics-style computations.** ``H`` has (3N)² entries: 8·(3N)² bytes
# dense. A dense symmetric eigensolver costs ≈ (4/3)(3N)³ flops whatever the number of modes
# wanted, because reducing to tridiagonal form dominates. But ``H`` is sparse (each node has
# ~50 neighbours within 15 Å), so a shift-invert Lanczos solver needs one sparse factorisation
# and a few dozen solves — cryoglass uses it above 600 degrees of freedom.

# %%
for n in (1000, 3000, 10000, 100000):
    dense_gb = 8 * (3 * n) ** 2 / 1e9
    print(f"N = {n:6d} Cα: dense Hessian {dense_gb:8.2f} GB, dense eigh ≈ {(4 / 3) * (3 * n) ** 3:.1e} flops")

xyz_ca = atoms.coordinates_angstrom[ca]
h = anm_hessian(xyz_ca, sparse=True)
print(f"TRPV1: 3N = {h.shape[0]}, non-zeros {h.nnz} ({100 * h.nnz / h.shape[0] ** 2:.2f} % of dense)")
for method in () if FAST else ("sparse", "dense"):
    t = time.perf_counter()
    anm(xyz_ca, n_modes=10, method=method)
    print(f"{method:6s} solver: {time.perf_counter() - t:.2f} s")

# %% [markdown]
# ## Sharpen 2 — pseudo-atoms and degrees of freedom
#
# Without a model, a topology representing network (neural gas + competitive Hebbian
# learning; Martinetz & Schulten 1994) places M pseudo-atoms on the density; ANM then runs on
# them. How many numbers does each representation of a map need?
#
# * M pseudo-atoms: 3M coordinates (plus M weights if their densities differ).
# * An N³ real-space grid: N³ values.
# * A Fourier-cropped map keeping |k| ≤ K pixels: a cube has (2K+1)³ complex coefficients, a
#   sphere ≈ (4/3)πK³; Friedel symmetry F(−k) = F(k)* halves the real numbers needed, so about
#   (4/3)πK³ real numbers for the sphere.

# %%
net = topology_representing_network(rest, 150 if FAST else 400, pixel_size_angstrom=PIXEL, seed=0)
m = net.nodes_angstrom.shape[0]
k = BOX // 4  # keep a quarter of the frequencies (resolution 4 × pixel)
print(f"{m} pseudo-atoms: {3 * m} DOF; ANM (20 Å) on them: "
      f"{anm(net.nodes_angstrom, n_modes=5, cutoff_angstrom=20.0).n_modes} modes")
print(f"{BOX}³ grid: {BOX ** 3} DOF; cube |k|≤{k}: {(2 * k + 1) ** 3} complex; "
      f"sphere: ≈{int(4 / 3 * np.pi * k ** 3)} real numbers")
