# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 13 · Normal modes, elastic networks and heterogeneity (the ProDy sessions)
#
# **Syllabus:** 29 Apr 2021 (Blur) and 6 May 2021 (Sharpen): guest lectures by J. Krieger,
# normal mode analysis & ProDy.
#
# A protein in ice is not one structure: every particle is caught somewhere along its slow,
# large "breathing" motions. Normal-mode analysis (NMA) of an *elastic network* predicts those
# motions from the shape alone: put a spring between every pair of Cα atoms closer than a cutoff
# and ask which collective displacements cost the least energy.
#
# **Questions answered here** (search for the tag):
#
# * **NMA Blur Q1** — the ProDy tutorials: ANM, modes, B-factors, pseudo-atoms on a map, here
#   with cryoglass's own ANM → *Blur 1*, *Sharpen 2*
# * **NMA Blur Q2** — particles fluctuating along breathing modes: what happens to the
#   reconstruction, and to the alignment of the particles → *Blur 2* (pose estimation is
#   biased)
# * **NMA Blur Q3**, **NMA Sharpen Q1** — how physics-based models enter cryo-EM processing and
#   analysis → *Blur 3*
# * **NMA Sharpen Q2** — computational bottlenecks (runtime, memory) of prody.dynamics-style
#   calculations → *Sharpen 1*
# * **NMA Sharpen Q3** — how many pseudo-atoms for a map; degrees of freedom of M pseudo-atoms,
#   an N³ grid, a Fourier-cropped map → *Sharpen 2*
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
from cryoglass.geometry import euler_to_matrix, geodesic_distance_deg
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
from cryoglass.projection import project
from cryoglass.validate import fourier_shell_correlation

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
BOX, PIXEL = (40, 5.0) if FAST else (64, 3.0)

# %% [markdown]
# ## Blur 1 — the slowest motions of TRPV1 (NMA Blur Q1)
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
# ## Blur 2 — heterogeneity along a breathing mode blurs the reconstruction (NMA Blur Q2)
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
# **Pose estimation is biased.**  Now the experiment itself: project each deformed map at one
# known pose (rot, tilt, psi) = (30°, 60°, 20°), then estimate that pose as a refinement
# would, by comparing the image with projections of the rest-state reference over a local
# grid of orientations (±4° in 1° steps around the truth, 729 references) and keeping the
# best normalised cross-correlation.  No noise is added, so any error is bias, not scatter.

# %%
true_pose = torch.tensor([[30.0, 60.0, 20.0]])
offsets = torch.arange(-4.0, 5.0)
search = torch.stack(torch.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
search = search + true_pose
references = project(rest, euler_to_matrix(search), pixel_size_angstrom=PIXEL)
references = references - references.mean(dim=(-2, -1), keepdim=True)
references = references / references.norm(dim=(-2, -1), keepdim=True)
errors = []
for level, volume in zip(rmsd_levels.tolist(), maps):
    image = project(volume, euler_to_matrix(true_pose), pixel_size_angstrom=PIXEL)[0]
    image = image - image.mean()
    best = search[((references * image).sum(dim=(-2, -1))).argmax()]
    error = float(geodesic_distance_deg(euler_to_matrix(best[None]), euler_to_matrix(true_pose))[0])
    errors.append(error)
    print(f"mode-1 RMSD {level:+.1f} Å: estimated − true (rot, tilt, psi) = "
          f"{[round(float(d)) for d in best - true_pose[0]]}°, pose error {error:.1f}°")
plt.figure(figsize=(5, 3))
plt.plot(rmsd_levels.numpy(), errors, "o-")
plt.xlabel("displacement along mode 1 (RMSD, Å)")
plt.ylabel("pose error (°)")
plt.title("the search explains a deformation by a rotation")

# %% [markdown]
# The rest state is found exactly; deformed particles are assigned poses that are off by
# degrees, and the error grows with the displacement and changes direction with its sign: it
# is *systematic* — the pose that best matches a deformed particle is the one that turns the
# moving domains towards where they are.  Consequences when heterogeneous particles go into
# one structure: (i) the average blurs where the protein moves (above), (ii) the biased poses
# also misplace the *rigid* parts, so they blur too, and the resolution estimate suffers, and
# (iii) pose error and conformation become correlated, which a later heterogeneity analysis
# (lesson 12) sees as one mixed signal.  Noise adds random error on top of this bias.
# Remedies: classify or mask (focused refinement on a rigid part), multi-body refinement, or
# refine poses and deformation together (the NMA-based approaches below).

# %% [markdown]
# ## Blur 3 — how physics models enter processing (NMA Blur Q3, NMA Sharpen Q1)
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
# ## Sharpen 1 — the Hessian and the eigenproblem (NMA Sharpen Q2)
#
# For springs of stiffness $\gamma$ between nodes $i, j$ closer than the cutoff
# ($d_{ij} \le r_c$), the energy of a displacement $\Delta\mathbf r$ (3N numbers) is, to second
# order, $E = \tfrac12\,\Delta\mathbf r^T H\,\Delta\mathbf r$ with the ANM Hessian made of 3 × 3
# blocks
# $$H_{ij} = -\frac{\gamma}{d_{ij}^2}\,\mathbf r_{ij}\mathbf r_{ij}^T \quad (i \ne j,\ d_{ij} \le r_c),
#   \qquad H_{ii} = -\sum_{j \ne i} H_{ij},\qquad \mathbf r_{ij} = \mathbf r_j - \mathbf r_i .$$
# Rows of blocks sum to zero, so rigid translations and rotations have $\lambda = 0$ (6 zero
# modes).  The modes are the eigenvectors, $H\mathbf v_k = \lambda_k \mathbf v_k$.  In thermal
# equilibrium
# $$\langle \Delta\mathbf r\,\Delta\mathbf r^T\rangle = k_BT\,H^{+}
#   = k_BT\sum_{k} \frac{\mathbf v_k\mathbf v_k^T}{\lambda_k},$$
# so mode $k$ contributes $\propto 1/\lambda_k$: the lowest modes dominate the fluctuations, and
# B-factors follow as $B_i = \tfrac{8\pi^2}{3}\langle \Delta R_i^2\rangle$.
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
# ## Sharpen 2 — pseudo-atoms and degrees of freedom (NMA Sharpen Q3)
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
