# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 12 · cryoDRGN: heterogeneity with a VAE
#
# **Syllabus:** 15 Apr 2021 (Sharpen): guest lecture by Ellen Zhong, cryoDRGN & variational
# autoencoders.
#
# Lesson 11 built a VAE on toy signals. cryoDRGN's version encodes particle images into a
# latent z and decodes z into a 3D map (its Fourier transform, as a coordinate network); the
# model image is the central slice at the particle's known pose times its CTF. cryoglass has
# the same model (`cryoglass.hetero`, command `cryoglass vae`). Here we train it on a small
# simulated dataset where we know the truth, and use the truth to read the outputs critically.
#
# **Questions answered here** (search for the tag; numbered as in the syllabus):
#
# * **cryoDRGN Q1** — the training log line by line; the architecture → *Blur 1*
# * **cryoDRGN Q2**, **cryoDRGN Q12** — epochs and the learning curve → *Blur 2*
# * **cryoDRGN Q3** — reading the k-means volumes; next steps → *Blur 3*
# * **cryoDRGN Q4** — the k-means maps in PCA vs UMAP space → *Blur 5*
# * **cryoDRGN Q5** — discrete vs continuous variability; domain knowledge → *Blur 6*
# * **cryoDRGN Q6**, **cryoDRGN Q8** — junk as latent outliers; how many to remove; checks
#   → *Blur 4*
# * **cryoDRGN Q7** — the GMM "trick question": scattered cluster members on UMAP → *Blur 5*
# * **cryoDRGN Q9** — run times: what is long and short → *Notes*
# * **cryoDRGN Q10**, **cryoDRGN Q14** — maps with/without junk, at 128 vs 256, from subsets
#   → *Notes*
# * **cryoDRGN Q11** — reading PC trajectories: biological or not → *Blur 6*
# * **cryoDRGN Q13** — a workflow for discrete vs continuous conformations → *Notes*
# * **cryoDRGN Q15** — graph traversal: meaning of a path, extensions → *Blur 7*
# * **cryoDRGN Q16** — two Gaussian states along one coordinate, as they spread → *Sharpen 1*
# * **cryoDRGN Q17** — time order from a time average → *Sharpen 2*
#
# **Blur** — reading a training log and a learning curve, k-means volumes, PCA vs UMAP,
# discrete vs continuous variability, junk as outliers, graph traversal. **Sharpen** — the
# two-Gaussian question in numbers, populations and free energies, and what a time average
# can and cannot tell about temporal order.

# %%
import math
import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.geometry import euler_to_matrix
from cryoglass.hetero import (
    ParticleData,
    TrainConfig,
    VAEConfig,
    adjusted_rand_index,
    arm_model,
    blob_particles,
    build_model,
    fit,
    gaussian_mixture,
    generate_volumes,
    graph_traversal,
    kmeans,
    knn_graph,
    nearest_points,
    pc_trajectory,
    pca,
    two_state_amplitudes,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
if FAST:
    torch.set_num_threads(1)  # one thread is faster than two on a busy 2-core machine
N, EPOCHS = (160, 20) if FAST else (600, 40)
umap = None
if not FAST:  # umap-learn (the [umap] extra) compiles with numba on first use: ~15 s of CPU
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)  # "Tensorflow not installed"
            import umap
    except ImportError:
        umap = None
D, PX = 16, 3.0
T0 = time.perf_counter()

# %% [markdown]
# ## The dataset: two conformations, some spread, and junk
#
# A small blob "protein" with an arm that either touches its core (closed) or sits 19 Å further
# out (open). Along the opening coordinate the particles follow **two Gaussians** (σ = 2 Å),
# the situation of question 16. Poses and CTFs are known, as after a consensus refinement.
# 8 % of the particles are **junk**: picks of empty ice (noise only).

# %%
g = torch.Generator().manual_seed(0)
SEPARATION = 0.4 * D * PX
structure = arm_model(separation_angstrom=SEPARATION, sigma_angstrom=1.5 * PX)
amplitude, state = two_state_amplitudes(
    N, separation_angstrom=SEPARATION, spread_angstrom=2.0, generator=g
)
sim = blob_particles(
    structure, amplitude, image_size=D, pixel_size_angstrom=PX, snr=10.0,
    defocus_range_angstrom=(15000.0, 16000.0), generator=g,
)  # fmt: skip
n_junk = int(0.08 * N)
junk = torch.zeros(N, dtype=torch.bool)
junk[torch.randperm(N, generator=g)[:n_junk]] = True
images = sim.images.clone()
images[junk] = sim.images.std() * torch.randn(n_junk, D, D, generator=g)
data = ParticleData(
    read_images=lambda i: images[i],
    rotations=euler_to_matrix(sim.euler_deg).float(),
    shift_angstrom=sim.shift_angstrom,
    ctf=sim.ctf,
    pixel_size_angstrom=PX,
    image_size=D,
)
fig, axes = plt.subplots(1, 4, figsize=(9, 2.4))
for ax, k in zip(axes, [int(torch.nonzero(state == 0)[0]), int(torch.nonzero(state == 1)[0]),
                        int(torch.nonzero(junk)[0]), 3], strict=True):  # fmt: skip
    ax.imshow(images[k], cmap="gray")
    ax.set_title("junk" if junk[k] else f"state {int(state[k])}", fontsize=8)
    ax.axis("off")

# %% [markdown]
# ## Blur 1 — the training log, line by line (cryoDRGN Q1)
#
# The network first. The encoder is an MLP from the image's Fourier coefficients inside the
# Nyquist disc (real and imaginary parts, the same numbers cryoDRGN's encoder reads as Hartley
# values), each multiplied by the sign of the particle's CTF there (*phase flipping*: the CTF's
# rings change sign at defocus-dependent radii, and flipping gives the same structure the same
# features at any defocus), to 2 × zdim numbers (μ and log σ²); the decoder an MLP from
# [positional encoding of a 3D Fourier coordinate, z] to the real and imaginary parts of the
# map's transform there. The positional encoding is cryoDRGN's default: sines and cosines of
# random projections Ω·k of the coordinate, with Ω drawn once from a Gaussian (Tancik et al.
# 2020). Small |Ω| means smooth functions of k, i.e. compact objects in real space; the layers
# build the finer ones. Printing the modules *is* the schematic:

# %%
config = VAEConfig(image_size=D, zdim=2, enc_dim=64, dec_dim=64, enc_layers=1, dec_layers=1)
model = build_model(config, seed=0)
print(model)
for name, part in (("encoder", model.encoder), ("decoder", model.decoder)):
    print(f"{name}: {sum(p.numel() for p in part.parameters()):,} parameters")

# %% [markdown]
# Each epoch is one pass over all particles in random minibatches of 8. Per epoch we log the
# total loss (negative ELBO per Fourier pixel, in units of the data's variance), its two parts
# (reconstruction error; KL of q(z|x) to the prior, in nats per particle) and the time. cryoDRGN's
# log has the same items: its "gen loss" is our reconstruction, "kld" our KL, "loss" the sum.
# We also record something cryoDRGN cannot know: the agreement (ARI) of k-means on that epoch's
# latents with the true states.

# %%
latents, good = [], ~junk
history = fit(
    model, data, config=TrainConfig(epochs=EPOCHS, learning_rate=5e-3, seed=0),
    on_epoch_end=lambda stats, z: latents.append(z),
)  # fmt: skip
ari = [adjusted_rand_index(kmeans(z[good], 2)[0], state[good]) for z in latents]
for h, a in zip(history, ari, strict=True):
    if h["epoch"] in (1, 2, 5) or h["epoch"] % 5 == 0:
        print(f"epoch {h['epoch']:3d}  loss {h['loss']:.4f}  reconstruction "
              f"{h['reconstruction']:.4f}  KL {h['kl']:.2f} nats  {h['seconds']:.2f} s  "
              f"(ARI vs truth {a:.2f})")  # fmt: skip
z = latents[-1]

# %% [markdown]
# ## Blur 2 — epochs and the learning curve (cryoDRGN Q2, Q12)
#
# The loss falls fast while the decoder learns the average structure, then slowly while the
# latent learns to explain what differs between particles. The KL **rises** early in training:
# the encoder spends information (nats) once encoding z pays off in reconstruction. A flat
# curve at the end says more epochs will not improve the fit (but check the latents: they can
# keep changing while the loss barely moves — here the ARI curve). A curve that is still
# falling says: train longer. A curve that goes up, or a validation loss (held-out particles)
# that rises while the training loss falls, says: overfitting (too many epochs, too large a
# network for the data); one that oscillates or jumps says: too large a learning rate.

# %%
epochs = [h["epoch"] for h in history]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epochs, [h["loss"] for h in history], "k.-", label="loss")
ax.set_xlabel("epoch")
ax.set_ylabel("loss per Fourier pixel")
twin = ax.twinx()
twin.plot(epochs, [h["kl"] for h in history], "tab:blue", label="KL [nats]")
twin.plot(epochs, [10 * a for a in ari], "tab:red", label="10 × ARI vs truth")
twin.legend(loc="center right", fontsize=8)
ax.set_title("Learning curve")
print(f"loss drop, first half {history[0]['loss'] - history[len(history) // 2]['loss']:.4f}; "
      f"second half {history[len(history) // 2]['loss'] - history[-1]['loss']:.4f}")  # fmt: skip

# %% [markdown]
# ## Blur 3 — k-means volumes (cryoDRGN Q3)
#
# cryoDRGN's `analyze` clusters the latents with k-means (K = 20 by default) and decodes the
# map at the particle nearest to each centre. With two true states, K = 4 must split states:
# neighbouring centres give near-identical maps. Reading such a panel: count the *distinct*
# maps; look for maps that are broken or noisy (centres among junk); then refine or re-train
# on subsets, or go to a continuous analysis along the directions that change.

# %%
labels, centres = kmeans(z, 4, seed=0)
anchors = nearest_points(z, centres)
maps = generate_volumes(model, z[anchors])
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
for k, (ax, vol) in enumerate(zip(axes, maps, strict=True)):
    members = labels == k
    ax.imshow(vol.sum(dim=0), cmap="gray")  # projection along z: the arm moves along x
    ax.set_title(f"centre {k}: {int(members.sum())} ptcls\n"
                 f"{int((state[members & good] == 1).sum())} open, "
                 f"{int(junk[members].sum())} junk", fontsize=8)  # fmt: skip
    ax.axis("off")
truth_closed = structure.volume(-SEPARATION / 2, image_size=D, pixel_size_angstrom=PX)
truth_open = structure.volume(SEPARATION / 2, image_size=D, pixel_size_angstrom=PX)
change = (truth_open - truth_closed).flatten()
for k, vol in enumerate(maps):
    # which way does the map differ from the mid-point of the two true maps?
    offset = vol.flatten() - 0.5 * (truth_open + truth_closed).flatten()
    cc = float(torch.corrcoef(torch.stack([offset, change]))[0, 1])
    print(f"k-means map {k}: correlation of (map − mid-point) with (open − closed) {cc:+.2f}")

# %% [markdown]
# ## Blur 4 — junk as latent outliers (cryoDRGN Q6, Q8)
#
# An empty-ice image carries none of the structure's signal, so no z explains it better than
# any other, and the encoder maps it to wherever a featureless image lands — usually away from
# the populated manifold of real particles. Ranking particles by distance from the latent
# median (robust to the populated clusters) is one filter; 2D classification, thresholds on the
# per-particle likelihood, or a heterogeneous refinement with a "junk" class are others. Set
# aside as few as the distribution's tail justifies, and check what you removed: decode or
# average the outliers (are they real but rare conformations?) and compare maps with and
# without them.

# %%
distance = (z - z.median(dim=0).values).norm(dim=1)
top = torch.argsort(distance, descending=True)[: 2 * n_junk]
print(f"{n_junk} junk particles; among the {2 * n_junk} most distant latents: "
      f"{int(junk[top].sum())} junk ({100 * float(junk[top].float().mean()):.0f} %)")  # fmt: skip
print(f"median distance: junk {float(distance[junk].median()):.2f}, "
      f"real {float(distance[good].median()):.2f}")  # fmt: skip
# keep particles within median + 6 MAD of the distance (a rule of thumb; check what goes)
mad = float((distance - distance.median()).abs().median())
keep = distance < distance.median() + 6 * mad
print(
    f"kept {int(keep.sum())} of {N}: removed {int((~keep & junk).sum())} junk and "
    f"{int((~keep & good).sum())} real particles; {int((keep & junk).sum())} junk remain"
)

# %% [markdown]
# ## Blur 5 — PCA vs UMAP (cryoDRGN Q4, Q7)
#
# PCA is a rotation of the latent space: distances and straight lines survive, so a point on a
# PC axis is a valid z to decode, and the spread along PC1 means something.  UMAP (McInnes et
# al. 2018) instead builds a k-nearest-neighbour graph, turns it into fuzzy memberships
# $w_{ij} = \exp\!\big(-(d_{ij} - \rho_i)/\sigma_i\big)$ ($\rho_i$ the distance to $i$'s nearest
# neighbour, $\sigma_i$ set so that each point has about $\log_2 k$ worth of neighbours), and lays
# the graph out in 2D by minimising a cross-entropy between those memberships and
# $1/(1 + a\,\lVert y_i - y_j\rVert^{2b})$ in the plane, starting from the graph's spectral
# layout (Laplacian eigenmaps).  Neighbours stay neighbours; sizes of clusters and distances
# between them are not preserved, and its coordinates cannot be decoded.  The same k-means
# centres sit in the same *neighbourhoods* in both plots but at different relative distances.
#
# UMAP is the `umap` extra of cryoglass (`pip install cryoglass[umap]`, umap-learn).  It
# compiles its code with numba on first use (~15 s of CPU), so the fast mode of this notebook
# shows only the spectral layout that UMAP starts from; the full notebook adds UMAP itself.
#
# The same distortion answers the GMM "trick question" (cryoDRGN Q7): in the tutorial the
# mixture is fitted in the 8D latent space and only *displayed* on UMAP; a cluster that is
# compact in 8D can be torn into scattered pieces by the 2D layout, and a cluster drawn on
# UMAP need not be compact in z.  Fit and select in z; use UMAP only to look.
# From here on we analyse the particles kept by the junk filter (junk dominates PCA otherwise:
# its spread in latent space is larger than the conformational change).

# %%
zk, amp_k, state_k, junk_k = z[keep], amplitude[keep], state[keep], junk[keep]
nk = int(keep.sum())
proj = pca(zk)
edges, _ = knn_graph(zk, k=10)
adjacency = torch.zeros(nk, nk, dtype=torch.float64)
adjacency[edges[:, 0], edges[:, 1]] = 1.0
adjacency = torch.maximum(adjacency, adjacency.T)
degree = adjacency.sum(1)
laplacian = torch.eye(nk, dtype=torch.float64) - adjacency / torch.sqrt(degree[:, None] * degree)
spectral = torch.linalg.eigh(laplacian).eigenvectors[:, 1:3]
colour = torch.where(junk_k, 2, state_k)
anchors_k = nearest_points(zk, centres)
layouts = [(proj.projections, "PCA"), (spectral, "kNN-graph spectral layout")]
if umap is not None:
    embedding = umap.UMAP(n_neighbors=10, random_state=0, n_jobs=1).fit_transform(zk.numpy())
    layouts.append((torch.from_numpy(embedding), "UMAP (umap-learn)"))
fig, axes = plt.subplots(1, len(layouts), figsize=(4.5 * len(layouts), 4))
for ax, (xy, name) in zip(axes, layouts, strict=True):
    ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="viridis", s=6)
    ax.scatter(xy[anchors_k, 0], xy[anchors_k, 1], marker="x", c="r", s=60)
    ax.set_title(f"{name}\n(yellow = junk; red x: k-means maps)", fontsize=9)
print("PCA explained variance ratio (kept particles):",
      np.round((proj.explained_variance / proj.explained_variance.sum()).numpy(), 3))  # fmt: skip

# %% [markdown]
# ## Blur 6 — discrete or continuous? (cryoDRGN Q5, Q11)
#
# A PC trajectory decodes maps at evenly spaced points along PC1, whether or not particles are
# there: between two discrete states it shows a smooth "motion" that no particle supports. The
# evidence is the *density* of particles along the path: a continuum keeps the path populated,
# discrete states leave a gap. Domain knowledge then decides whether intermediates are
# plausible (is there a hinge? is it a ligand that is either bound or not?).
#
# Reading a PC trajectory (cryoDRGN Q11): describe what moves (a domain swinging, density
# fading in or out), then ask what else could move it.  Non-biological causes: junk or a
# second particle in the box, pose or CTF errors that vary along the data set, a preferred
# view that correlates with a state, the box edge.  Untangling them takes work outside the
# latent space: reconstruct subsets along the path independently (do their half maps agree?),
# check that the path is populated (below), compare with known states (ligand bound or not,
# mutants), and test whether the motion is physically plausible (a hinge, normal modes, lesson
# 13).

# %%
path = pc_trajectory(proj, 1, n_points=9)
radius = 0.1 * float(proj.projections[:, 0].std()) * 3
support = (torch.cdist(path, zk.double()) < radius).sum(dim=1)
print("particles near each PC1-trajectory point:", support.tolist())
fig, ax = plt.subplots(figsize=(6, 3))
bins = np.linspace(float(proj.projections[:, 0].min()), float(proj.projections[:, 0].max()), 40)
for label, mask in (("closed", ~junk_k & (state_k == 0)), ("open", ~junk_k & (state_k == 1)),
                    ("junk left", junk_k)):  # fmt: skip
    ax.hist(proj.projections[mask, 0].numpy(), bins=bins, alpha=0.7, label=label)
ax.set_xlabel("latent PC1")
ax.legend()
ax.set_title("Two populations along PC1; the middle thins out")

# %% [markdown]
# ## Blur 7 — graph traversal (cryoDRGN Q15)
#
# cryoDRGN's traversal joins each particle to its nearest neighbours in latent space and runs
# Dijkstra's algorithm between two anchors. The path hops through occupied latent space, so
# every map on it is supported by particles: it is a path through states that the sample
# visits, which, at equilibrium, favours low free energy (high density). What it is *not*: a
# measured trajectory of one molecule. Other physically meaningful features: the density along
# the path (a free-energy profile, −kT ln ρ), its bottleneck (a barrier), its length in latent
# units.  If no chain of k nearest neighbours joins the two states, there is no path at all —
# itself evidence for discrete states; a larger k bridges the gap (below), at the price of
# edges through empty latent space. Extensions: weight edges by −log density (minimum-free-energy paths), find the k
# shortest paths, or many paths that avoid each other (alternative routes).

# %%
pc1 = proj.projections[:, 0]
_, neighbour_edges = knn_graph(zk, k=10)
local_density = 1 / neighbour_edges.reshape(nk, 10).mean(dim=1)
# anchors: the ends of PC1 among particles in populated latent space (not leftover outliers)
dense = local_density >= local_density.median()
closed_anchor = int(torch.where(dense, pc1, torch.inf).argmin())
open_anchor = int(torch.where(dense, pc1, -torch.inf).argmax())
for k_graph in (10, 20, 40):
    try:
        route, length = graph_traversal(zk, [closed_anchor, open_anchor], k=k_graph)
        break
    except ValueError as error:  # the states are not joined by any chain of k-neighbours
        print(f"k = {k_graph}: {error}")
print(f"path of {len(route)} particles (k = {k_graph}), latent length {length:.2f}")
print("true amplitude along the path [Å]:", np.round(amp_k[route].numpy(), 1))
print("relative density along the path:  ",
      np.round((local_density[route] / local_density.median()).numpy(), 2))  # fmt: skip

# %% [markdown]
# ## Sharpen 1 — the two-Gaussian question (cryoDRGN Q16)
#
# Suppose the encoder is a noisy but monotone readout of the opening $a$: $z \approx f(a)$ +
# noise with standard deviation $\sigma_z$ (in units of $a$).  The latent histogram is then the
# true two-Gaussian distribution convolved with that noise:
# $$p(a) = \tfrac12\,\mathcal N\!\big(a;\,-\tfrac{\Delta}{2},\,\sigma_{\text{eff}}^2\big)
#   + \tfrac12\,\mathcal N\!\big(a;\,+\tfrac{\Delta}{2},\,\sigma_{\text{eff}}^2\big),
#   \qquad \sigma_{\text{eff}} = \sqrt{\sigma^2 + \sigma_z^2}.$$
# An equal-weight mixture of two Gaussians is bimodal exactly when $\Delta > 2\sigma_{\text{eff}}$.
# So: widely separated, narrow states give two clusters; as $\sigma$ grows the clusters bleed
# together and, past $\Delta = 2\sigma_{\text{eff}}$, one broad peak remains — indistinguishable
# from a single, broad continuum.
# We estimate σ_z from our run (regress PC1 on the true amplitude within each state):

# %%
real = ~junk_k
slope = float(torch.linalg.lstsq(
    torch.stack([amp_k[real], torch.ones(int(real.sum()), dtype=torch.float64)], 1),
    pc1[real, None]).solution[0])  # fmt: skip
residual = []
for s in (0, 1):
    mask = real & (state_k == s)
    fit_line = slope * amp_k[mask]
    residual.append((pc1[mask] - fit_line - (pc1[mask] - fit_line).mean()) / slope)
sigma_z = float(torch.cat(residual).std())
sigma_eff = math.hypot(2.0, sigma_z)
print(f"Δ = {SEPARATION:.1f} Å, σ = 2.0 Å, encoder noise σ_z ≈ {sigma_z:.1f} Å "
      f"→ σ_eff = {sigma_eff:.1f} Å; bimodal if Δ > {2 * sigma_eff:.1f} Å")  # fmt: skip

a_axis = np.linspace(-25, 25, 400)
fig, ax = plt.subplots(figsize=(6, 3))
for spread in (2.0, 5.0, 8.0, 11.0):
    s_eff = math.hypot(spread, sigma_z)
    density = sum(np.exp(-((a_axis - m) ** 2) / (2 * s_eff**2)) for m in (-SEPARATION / 2,
                                                                      SEPARATION / 2))  # fmt: skip
    ax.plot(a_axis, density / density.max(), label=f"σ = {spread:g} Å")
ax.set_xlabel("opening a [Å] (what the latent sees)")
ax.legend(fontsize=8)
ax.set_title("Two Gaussian states as their spread grows")

# %% [markdown]
# ## Sharpen 2 — populations, free energy, and time (cryoDRGN Q17)
#
# A Gaussian mixture on the latents gives the state populations $p_0, p_1$.  At equilibrium the
# Boltzmann relation turns them into a free-energy difference, $\Delta G = -k_BT\ln(p_1/p_0)$.
# That is all
# a time-averaged ensemble gives: *thermodynamics* (which states, how populated, which
# intermediates are visited). It contains no rates and no direction: equilibrium is symmetric
# under time reversal (detailed balance), so closed → open and open → closed occur equally
# often, and the graph path above can be read either way.
#
# A temporal order can sometimes be argued from outside the ensemble: an irreversible step
# (ATP hydrolysis, cleavage: a state with ADP + Pi must come after one with ATP); time-resolved
# cryo-EM (mix, wait t, freeze: populations versus t give kinetics); structural logic (a state
# that is structurally between two others is a candidate intermediate, but need not be on
# the path). It is hard when states interconvert freely in several ways (a kinesin head can
# reach the same conformation by different routes) or when a short-lived intermediate is too
# rare to be captured at all.

# %%
mixture = gaussian_mixture(zk, 2, seed=0)
p = mixture.weights.sort().values
kT = 0.593  # kcal/mol at 298 K
gmm_ari = adjusted_rand_index(mixture.labels[real], state_k[real])
true_p = np.sort(np.bincount(state[good].numpy()) / int(good.sum()))
print(f"GMM populations {np.round(p.numpy(), 2)} (true {np.round(true_p, 2)}); "
      f"ARI vs truth {gmm_ari:.2f}; ΔG = {-kT * math.log(p[0] / p[1]):.2f} kcal/mol")  # fmt: skip

# %% [markdown]
# ## Notes on the other questions (cryoDRGN Q9, Q10, Q13, Q14)
#
# - *Run times (cryoDRGN Q9):* this run took the time printed below for N particles of 16²; the cost of an
#   epoch grows like N × D² (images × Fourier pixels per slice), so 100 000 particles of 128²
#   cost (100000/N)·(128/16)² times more per epoch. Minutes per epoch is interactive; hours
#   per epoch needs a good reason. Most of that time is the decoder, evaluated at every Fourier
#   point of every slice. `TrainConfig(point_fraction=0.2)` (`--point-fraction 0.2`) decodes,
#   at each step, every point below 0.3 × Nyquist (where a conformational change shows most)
#   and a random fifth of the others, as a minibatch does for the particles. On average the
#   high frequencies then count a fifth as much in the loss: they are mostly noise, and the
#   latent space trains with less of it. Weighting them back up 5× (an unbiased loss) trained
#   the latent space more slowly and less steadily. At 64² with a 256×3 network,
#   `--point-fraction 0.05` made epochs ~7× faster than cryoDRGN's; each learned a little less,
#   and 24 of them (under a third of cryoDRGN's time for 12) gave as good a latent space
#   (benchmarks/RESULTS.md).
# - *Resolution vs junk (cryoDRGN Q10) and subsets (cryoDRGN Q14):* maps from fewer or cleaner particles trade
#   noise for homogeneity; select subsets with `cryoglass vae select` and reconstruct each
#   (`cryoglass reconstruct`) to compare at equal particle numbers.
# - *A workflow for discrete vs continuous (cryoDRGN Q13):* consensus refinement (poses, CTF) → VAE with
#   zdim 8 at a small box (fast, hours) → junk removal and re-training → latent density along
#   the principal directions and graph paths (Blur 5, 7) → high-resolution training on the
#   clean subset → validation of each claimed state by independent reconstruction (half-map FSC).

# %%
per_epoch = float(np.mean([h["seconds"] for h in history]))
scale = (100_000 / N) * (128 / D) ** 2
print(f"{per_epoch:.2f} s per epoch here → roughly {per_epoch * scale / 3600:.1f} h per epoch "
      "for 100 000 particles of 128² at this network size, on this machine")  # fmt: skip
print(f"lesson ran in {time.perf_counter() - T0:.1f} s")
