# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 14 · Preferred orientation: SSNR, SCF, 3DFSC and tilting
#
# Master classes of 13 May 2021 (Yong Zi Tan: diagnose and solve preferred orientation, the
# 3DFSC, tilting) and 20 May 2021 (Philip Baldwin: how sampling sets resolution, the
# sampling compensation factor, Baldwin & Lyumkis 2020 Eq. 2.10–2.13).
#
# Modules: `cryoglass.validate` (orientations, fsc3d, planner), `cryoglass.simulate`.

# %%
import os

import matplotlib.pyplot as plt
import torch

import cryoglass.validate as cv
from cryoglass.report.figures import plot_direction_density
from cryoglass.simulate import top_side_orientations, uniform_orientations, vmf_orientations

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
N_VIEWS = 20_000 if FAST else 100_000
BOX = 32 if FAST else 48
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Blur — what is missing in Fourier space?
#
# A particle imaged along the projection direction *d* gives, by the Fourier-slice theorem,
# the central *plane* of the 3D transform perpendicular to *d*. Top views (d ≈ z) all give the
# (kx, ky) plane: the kz axis — a whole cone around it — is never measured. Side views
# (d on the equator) give planes through kz: together they cover everything, just unevenly.

# %%
views = {
    "uniform": uniform_orientations(N_VIEWS, generator=g),
    "side views": top_side_orientations(N_VIEWS, top_fraction=0.0, generator=g),
    "top views (vMF κ=20)": vmf_orientations(N_VIEWS, kappa=20.0, generator=g),
}
fig = plt.figure(figsize=(12, 3.4))
stats = {}
for i, (name, euler) in enumerate(views.items()):
    d = cv.projection_directions(euler)
    stats[name] = cv.orientation_statistics(d)
    ax = fig.add_subplot(1, 3, i + 1, projection="mollweide")
    plot_direction_density(
        d, ax=ax, title=f"{name}\nSCF {stats[name].scf:.2f}, SCF* {stats[name].scf_star:.2f}"
    )
for name, s in stats.items():
    print(f"{name:>22}: SCF {s.scf:.3f}  SCF* {s.scf_star:.3f}  empty {s.empty_fraction:.3f}")

# %% [markdown]
# Uniform views: SCF = 1. Side views only: SCF = 8/π² ≈ 0.81 — everything is sampled, the
# poles of the kz axis just ten times more than the equator. Top views: a cap is empty, so
# ⟨1/S⟩ diverges and SCF = 0; SCF* (which treats the empty part separately) is small.

# %% [markdown]
# ## Sharpen — SSNR and FSC (question 1)
#
# The SSNR of a shell is signal power over noise power. For two half maps with independent
# noise, FSC = SSNR_half/(1 + SSNR_half), so SSNR_half = FSC/(1 − FSC): FSC = 0.143 ↔ SSNR
# = 1/6, FSC = 0.5 ↔ SSNR = 1. A sigmoid FSC is a roughly exponentially decaying SSNR
# (Guinier fall-off e^(−Bk²/2) times 1/k from the thinning slabs), crossing 1/6 at the
# resolution.
#
# ## Eq. 2.10 → 2.11 (question 3)
#
# A voxel k is the average of the S(k) images whose central slab contains it. Its SSNR is
# S(k)·σ(k), σ = E²⟨|X|²⟩/⟨|N|²⟩ the SNR of one image, **if** (i) the noise of different
# images is independent with the same power and adds incoherently, (ii) the signal adds
# coherently — poses and CTF are exact, (iii) signal and noise power depend on |k| only, not
# on the direction k̂ (isotropic particle, isotropic noise), and (iv) the reconstruction is an
# unweighted average (no regularisation). The FSC of a shell is then a ratio of *sums*, so
# the shell SSNR is σ/⟨1/S⟩ — a harmonic mean (Eq. 2.12–2.13): SSNR = SCF·⟨S⟩·σ with
# SCF = 1/(⟨S⟩⟨1/S⟩) ≤ 1 and ⟨S⟩ = N/(2R) for any distribution. These break down for
# elongated or flat particles (anisotropic signal), pose errors that depend on the view, and
# regularised (Wiener/τ²) reconstructions, which shrink rather than amplify poorly sampled
# voxels (unsampled ones then read as 0, not as infinite noise — hence SCF*).
#
# ## Why more data does not fix preferred orientation (question 2)
#
# ⟨S⟩ grows with N, but SCF does not change: N effective particles = N·SCF. And where S = 0,
# more particles of the same views add nothing — that cone stays empty. The planner makes it
# explicit: 10× the particles of top views.

# %%
d_top = cv.projection_directions(views["top views (vMF κ=20)"])
for n in (100_000, 1_000_000):
    p = cv.plan_orientations(d_top, n_particles=n, box_size=128, pixel_size_angstrom=1.0)
    res = p.directional_resolution_angstrom
    print(
        f"N = {n:>9,}: uniform views would give {p.uniform_resolution_angstrom:.2f} Å; "
        f"best cone {res.min():.2f} Å, worst cone {res.max():.2f} Å, "
        f"sphericity {p.sphericity:.2f}, SCF* {p.orientation.scf_star:.3f}"
    )

# %% [markdown]
# The best direction improves with N like uniform data; the worst direction (along z)
# barely moves: it is limited by the empty cone, not by N.
#
# ## Computing the pieces of Eq. 2.13 during refinement (question 4)
#
# * ⟨1/S(k)⟩ (and SCF): from the current poses — count each Fourier voxel's slabs (RELION's
#   back-projection weights, or `directional_sampling` on rays), average 1/S over the shell.
# * ⟨|N(k)|²⟩: the noise power spectrum of the images — from particle-free regions or the
#   residual images − CTF·projections (RELION's σ²(k) per optics group).
# * E²(k)⟨|X|²⟩: the signal power, CTF² times the map's radial power — from the reference
#   projection's power spectrum (or via the half-map FSC: SSNR = FSC/(1 − FSC)).
#
# ## The 3DFSC: diagnosing the missing cone (13 May)
#
# FSC in 20° cones around many axes; the sphericity of the 0.5-surface (1 = isotropic) and
# its principal axes give the worst direction. Half maps with each voxel's SSNR following the
# views (`anisotropic_half_maps`), then `three_d_fsc`:

# %%
truth = torch.randn(BOX, BOX, BOX, generator=g, dtype=torch.float64)
ssnr_uniform = 60.0 * torch.exp(-torch.arange(BOX // 2 + 1, dtype=torch.float64) / (BOX / 8))
results = {}
for name in ("uniform", "top views (vMF κ=20)"):
    d = cv.projection_directions(views[name][:3000])
    h1, h2 = cv.anisotropic_half_maps(truth, d, uniform_ssnr=ssnr_uniform, generator=g)
    results[name] = cv.three_d_fsc(h1, h2, pixel_size_angstrom=1.0, subdivisions=2)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, (name, r) in zip(axes, results.items(), strict=True):
    ax.plot(r.frequency_inv_angstrom, r.cone_fsc.T, color="#4878cf", lw=0.3, alpha=0.3)
    ax.plot(r.frequency_inv_angstrom, r.global_fsc, "r", lw=2)
    ax.set(title=f"{name}: sphericity {r.sphericity:.2f}", xlabel="1/Å")
    print(name, {k: v for k, v in r.summary().items() if "direction" in k or k == "sphericity"})

# %% [markdown]
# The same measurement on *reconstructed* half maps: simulate 3000 particles of a blob phantom
# at SNR 0.05 (85 % within ~12° of tilt 0, the rest uniform: `topuniform:0.85`), reconstruct
# each random half, run the 3DFSC. The sampled voxels carry the signal, the Wiener-regularised
# empty ones are ≈ 0 in both halves; the cones around z hold only the 15 % of uniform views, so
# their FSC falls first and the 0.5-surface is flattened along z. (With top + *side* views,
# `topside:F`, it is not: every side view's central plane contains the k_z axis.)

# %%
from cryoglass.reconstruct import reconstruct  # noqa: E402
from cryoglass.simulate import ParticleDistributions, simulate_dataset  # noqa: E402
from cryoglass.simulate.phantom import gaussian_map  # noqa: E402

blob_centres = (torch.rand(600, 3, generator=g, dtype=torch.float64) - 0.5) * (0.6 * 48 * 3.0)
phantom = gaussian_map(
    blob_centres, shape=(48, 48, 48), pixel_size_angstrom=3.0, sigma_angstrom=2.0
).float()
for spec in ("uniform", "topuniform:0.85"):
    (data,) = simulate_dataset(
        phantom,
        n=3000,
        pixel_size_angstrom=3.0,
        snr=0.05,
        seed=3,
        chunk_size=3000,
        distributions=ParticleDistributions(views=cv.orientation_model(spec)),
    )
    p = data.parameters
    halves = [
        reconstruct(
            data.images[p.random_subset == h],
            euler_deg=p.euler_deg[p.random_subset == h],
            ctf=p.ctf[p.random_subset == h],
            pixel_size_angstrom=3.0,
        )
        for h in (1, 2)
    ]
    r = cv.three_d_fsc(*halves, pixel_size_angstrom=3.0, subdivisions=2)
    print(
        f"{spec:16s} sphericity {r.sphericity:.2f}, global {r.global_resolution_angstrom:.2f} Å,"
        f" worst direction {[round(float(x), 2) for x in r.worst_direction]}"
    )

# %% [markdown]
# ## How tilting helps — pros and cons (measured in silico)
#
# At stage tilt α, each top view's direction moves α off z (about a random in-plane axis):
# the central planes now tilt through kz and the empty cone shrinks to half-angle 90° − α.
# Pros: fills Fourier space without changing the sample; one data collection. Cons: thicker
# apparent ice (1/cos α), a defocus gradient across each image (needs per-particle CTF),
# more beam-induced motion, lower per-image SNR — the planner models it as cos α. The scan
# picks the tilt that minimises the worst directional resolution.

# %%
scan = cv.plan_tilt_scan(
    d_top,
    n_particles=200_000,
    box_size=64 if FAST else 128,
    tilts_deg=(0, 10, 20, 30, 40, 50),
    max_directions=5000,
)
for row in scan.table():
    print(
        f"tilt {row['tilt_deg']:4.0f}°: worst {row['resolution_max_angstrom']:6.2f} Å, "
        f"global {row['global_resolution_angstrom']:5.2f} Å, sphericity "
        f"{row['sphericity']:.2f}, SCF* {row['scf_star']:.3f}"
    )
print("best tilt:", scan.best_tilt_deg)
tilted = cv.tilt_directions(d_top, 40.0, generator=g)
print(
    "SCF* untilted / 40°:",
    cv.orientation_statistics(d_top).scf_star,
    cv.orientation_statistics(tilted).scf_star,
)

# %% [markdown]
# Other remedies (13 May): change the air–water interface (detergents, graphene oxide or
# streptavidin supports, faster plunging), collect more of the rare views by classification
# and re-balancing — down-weighting over-represented views raises SCF but throws data away.
