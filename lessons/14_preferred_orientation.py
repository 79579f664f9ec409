# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 14 · Preferred orientation: SSNR, SCF, 3DFSC and tilting
#
# **Syllabus:** 13 May 2021 (Blur/Sharpen): master class by Yong Zi Tan — understand, diagnose
# and solve preferred orientation, the 3DFSC, tilting; 20 May 2021 (Sharpen): master class by
# Philip Baldwin — how sampling sets resolution, the sampling compensation factor (SCF),
# Baldwin & Lyumkis 2020 Eqs. 2.10–2.13; and the 3DFSC practical of both sessions.
#
# **Questions answered here** (search for the tag; Tan's headings numbered in order):
#
# * **Tan Q1** — what is preferred orientation, and why do samples suffer from it?
#   → *Why do samples have preferred orientations?*
# * **Tan Q2** — how do we know we have the problem, what is its consequence, how do we
#   quantify it? → *What is missing in Fourier space?*, *Why more data does not fix it*
# * **Tan Q3** — what is the 3DFSC, how does it relate to the FSC, how does it diagnose
#   preferred orientation? → *The 3DFSC*
# * **Tan Q4** — ways to mitigate preferred orientation → *Other remedies*
# * **Tan Q5** — how tilting mitigates it; pros and cons → *How tilting helps*
# * **Baldwin Q1** — the SSNR and the FSC; the SSNR of a sigmoid FSC → *SSNR and FSC*
# * **Baldwin Q2** — why the SSNR does not grow with more data under preferred orientation,
#   and its effect on the FSC → *Why more data does not fix it*
# * **Baldwin Q3** — the assumptions from Eq. 2.10 to 2.11 → *From one voxel to a shell*
# * **Baldwin Q4** — computing $E^2(k)$, $\langle|X|^2\rangle$, $\langle|N(\vec k)|^2\rangle$ and
#   $\langle 1/S_p(\vec k)\rangle$ during refinement → *Computing the pieces of Eq. 2.13*
# * **Baldwin Q5** — the mathematical steps and physical assumptions, one by one → *From one
#   voxel to a shell*
# * **3DFSC practical** — run the 3DFSC on your own half maps → *Your own half maps:
#   `cryoglass 3dfsc`*
#
# Modules: `cryoglass.validate` (orientations, fsc3d, planner), `cryoglass.simulate`,
# `cryoglass.reconstruct`.

# %%
import os

import matplotlib.pyplot as plt
import torch

import cryoglass.validate as cv
from cryoglass.reconstruct import reconstruct
from cryoglass.report.figures import plot_direction_density
from cryoglass.simulate import (
    ParticleDistributions,
    gaussian_map,
    simulate_dataset,
    top_side_orientations,
    uniform_orientations,
    vmf_orientations,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
N_VIEWS = 20_000 if FAST else 100_000
BOX = 32 if FAST else 48
N_SIMULATED = 1500 if FAST else 3000
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Blur — why do samples have preferred orientations? (Tan Q1)
#
# *Preferred orientation* means the particles' viewing directions are not spread over the
# sphere: most particles show the same face to the beam.  The main reason is the **air–water
# interface** (AWI).  Before vitrification the sample is a film only 20–100 nm thick, and a
# protein diffuses across it in microseconds, so during the ~1 s between blotting and plunging
# every particle meets an interface $10^4$–$10^5$ times.  Noble et al. (2018) imaged grids by
# tomography and found ~90 % of particles adsorbed to an AWI.  Once there, a particle sticks
# by its most hydrophobic (or most charged) face — or, if flat or elongated, lies flat — and
# the energy of that contact is many $k_BT$, so the face is held.  Supports (carbon,
# graphene oxide) do the same by their own chemistry; some proteins partially unfold at the
# AWI.  The numbers, from Stokes–Einstein diffusion and a Boltzmann population:

# %%
kT = 1.380649e-23 * 277.0  # J, at 4 °C
viscosity = 1.6e-3  # Pa·s, water at 4 °C
for radius_nm in (3.0, 5.0, 10.0):
    diffusion = kT / (6 * torch.pi * viscosity * radius_nm * 1e-9)  # m²/s
    for film_nm in (30.0, 100.0):
        t_reach = (film_nm * 1e-9 / 2) ** 2 / (2 * diffusion)  # s, half the film, one direction
        print(f"particle radius {radius_nm:4.1f} nm (D = {diffusion * 1e12:5.1f} µm²/s), film "
              f"{film_nm:5.1f} nm: reaches an interface in {t_reach * 1e6:6.1f} µs, "
              f"~{1.0 / t_reach:,.0f} times per second")
cap = (1 - torch.cos(torch.deg2rad(torch.tensor(20.0)))) / 2  # a face: a 20° cap of directions
for gain in (1.0, 3.0, 6.0, 10.0):
    weight = cap * torch.exp(torch.tensor(gain))
    print(f"a face that binds {gain:4.1f} kT more strongly ({100 * float(cap):.0f} % of the "
          f"directions) holds {100 * float(weight / (weight + 1 - cap)):5.1f} % of the particles")

# %% [markdown]
# Even 3 $k_BT$ — the free energy of burying well under 1 nm² of hydrophobic surface
# (surface tension 72 mN/m) — puts a 3 % cap of directions at ~40 % of the particles; 10 $k_BT$
# puts nearly all of them there.

# %% [markdown]
# ## Blur — what is missing in Fourier space? (Tan Q2)
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
# Uniform views: SCF = 1.  Side views only: SCF = $8/\pi^2 \approx 0.81$ — everything is
# sampled, but unevenly: every side view's central plane contains the $k_z$ axis, so the
# sampling grows towards the poles like $1/\sin\theta$ ($\theta$ the angle from $k_z$).  In
# the continuum it diverges at the poles, integrably: $\langle S\rangle \propto
# \langle 1/\sin\theta\rangle = \pi/2$ and $\langle 1/S\rangle \propto \langle\sin\theta\rangle =
# \pi/4$ stay finite, and $\mathrm{SCF} = 1/(\langle S\rangle\langle 1/S\rangle) = 8/\pi^2$.  (How
# large the density looks *at* a pole on a map depends only on the discretisation.)  Top views:
# a cap is empty, so $\langle 1/S\rangle$ diverges and SCF = 0; SCF* (which treats the empty part
# separately) is small.

# %% [markdown]
# ## Sharpen — SSNR and FSC (Baldwin Q1)
#
# The SSNR of a shell is signal power over noise power.  For two half maps with independent
# noise (lesson 10),
# $$\mathrm{FSC} = \frac{\mathrm{SSNR}_{\text{half}}}{1 + \mathrm{SSNR}_{\text{half}}}
#   \qquad\Longleftrightarrow\qquad \mathrm{SSNR}_{\text{half}} = \frac{\mathrm{FSC}}{1 - \mathrm{FSC}} :$$
# FSC = 0.143 ↔ SSNR = 1/6, FSC = 0.5 ↔ SSNR = 1.  A sigmoid FSC is a roughly exponentially
# decaying SSNR (Guinier fall-off $e^{-Bk^2/2}$ of the signal power times $1/k$ from the
# thinning slabs, $\langle S\rangle = N/2R$), crossing 1/6 at the resolution: on a log scale a
# straight-ish falling line where the FSC is a step.
#
# ## From one voxel to a shell: Eqs. 2.10 → 2.13 (Baldwin Q3, Q5)
#
# In our notation ($R$ the shell radius in Fourier pixels, $N$ particles, $S_p(\vec k)$ the
# number of projections whose central slab of unit thickness contains $\vec k$), the steps are:
#
# 1. **One voxel** (Eq. 2.10).  Voxel $\vec k$ is the average of the $S_p(\vec k)$ images that
#    sample it.  Each contributes the signal $E(k)X(\vec k)$ ($E$ the CTF and envelopes, $X$ the
#    structure) plus noise $N_i(\vec k)$.  The signal adds coherently, the noise incoherently, so
#    $$\mathrm{SSNR}(\vec k) = S_p(\vec k)\,\frac{E^2(k)\,|X(\vec k)|^2}{\langle|N(\vec k)|^2\rangle}.$$
#    *Assumed:* the noise of different images is independent with the same power; poses and CTF
#    are exact (else the signal would not add coherently); the reconstruction is an unweighted
#    average (no Wiener/τ² regularisation).
# 2. **A shell** (Eq. 2.11).  The FSC of a shell is a ratio of *sums* over the shell — signal
#    power summed over voxels against noise power summed over voxels.  With the noise power of
#    voxel $\vec k$ equal to $\langle|N|^2\rangle/S_p(\vec k)$, the noise sum is
#    $\langle|N|^2\rangle\sum 1/S_p$.  *Assumed:* signal and noise power depend on $|\vec k|$ only,
#    not on the direction $\hat k$ (an isotropic particle, isotropic noise), so they come out of
#    the sums: $|X(\vec k)|^2 \to \langle|X|^2\rangle$, $\langle|N(\vec k)|^2\rangle \to \langle|N|^2\rangle$.
# 3. **The harmonic mean** (Eq. 2.12).  Dividing the two sums,
#    $$\mathrm{SSNR}(k) = \frac{E^2(k)\,\langle|X|^2\rangle}{\langle|N(\vec k)|^2\rangle\,
#      \langle 1/S_p(\vec k)\rangle}:$$
#    the shell is as good as the *harmonic* mean of its sampling — a few poorly sampled voxels
#    cost more than many well-sampled ones gain.
# 4. **The SCF** (Eq. 2.13).  Each slab covers a fraction $1/(2R)$ of the shell, so
#    $\langle S_p\rangle = N/(2R)$ for *any* distribution, and
#    $$\mathrm{SSNR}(k) = \mathrm{SCF}\cdot\frac{N}{2R}\cdot\frac{E^2(k)\,\langle|X|^2\rangle}
#      {\langle|N(\vec k)|^2\rangle},\qquad
#      \mathrm{SCF} = \frac{1}{\langle S_p\rangle\,\langle 1/S_p\rangle} \le 1$$
#    (harmonic ≤ arithmetic mean), with equality only for uniform sampling: $N$ particles with
#    SCF act like $N\cdot\mathrm{SCF}$ uniformly spread ones.
#
# These break down for elongated or flat particles (anisotropic signal), pose errors that
# depend on the view, and regularised (Wiener/τ²) reconstructions, which shrink rather than
# amplify poorly sampled voxels (unsampled ones then read as 0, not as infinite noise — hence
# SCF*).

# ## Why more data does not fix preferred orientation (Baldwin Q2, Tan Q2)
#
# $\langle S\rangle$ grows with $N$, but SCF does not change: $N$ effective particles = $N\cdot$SCF.
# And where $S = 0$,
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
# ## Computing the pieces of Eq. 2.13 during refinement (Baldwin Q4)
#
# * ⟨1/S(k)⟩ (and SCF): from the current poses — count each Fourier voxel's slabs (RELION's
#   back-projection weights, or `directional_sampling` on rays), average 1/S over the shell.
# * ⟨|N(k)|²⟩: the noise power spectrum of the images — from particle-free regions or the
#   residual images − CTF·projections (RELION's σ²(k) per optics group).
# * E²(k)⟨|X|²⟩: the signal power, CTF² times the map's radial power — from the reference
#   projection's power spectrum (or via the half-map FSC: SSNR = FSC/(1 − FSC)).
#
# ## The 3DFSC: diagnosing the missing cone (Tan Q3)
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
# The same measurement on *reconstructed* half maps: simulate 3000 particles (1500 in fast
# mode) of a blob phantom
# at SNR 0.05 (85 % within ~12° of tilt 0, the rest uniform: `topuniform:0.85`), reconstruct
# each random half, run the 3DFSC. The sampled voxels carry the signal, the Wiener-regularised
# empty ones are ≈ 0 in both halves; the cones around z hold only the 15 % of uniform views, so
# their FSC falls first and the 0.5-surface is flattened along z. (With top + *side* views,
# `topside:F`, it is not: every side view's central plane contains the k_z axis.)

# %%
blob_centres = (torch.rand(600, 3, generator=g, dtype=torch.float64) - 0.5) * (0.6 * 48 * 3.0)
phantom = gaussian_map(
    blob_centres, shape=(48, 48, 48), pixel_size_angstrom=3.0, sigma_angstrom=2.0
).float()
for spec in ("uniform", "topuniform:0.85"):
    (data,) = simulate_dataset(
        phantom,
        n=N_SIMULATED,
        pixel_size_angstrom=3.0,
        snr=0.05,
        seed=3,
        chunk_size=N_SIMULATED,
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
# ## How tilting helps — pros and cons, measured in silico (Tan Q5)
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
# ## Other remedies (Tan Q4)
#
# Change the air–water interface: detergents or surfactants that occupy it, supports that
# bind the particle in other ways (graphene oxide, streptavidin or functionalised graphene),
# faster plunging so that fewer particles reach it (spray/jet vitrification); change the
# particle: a binding partner (Fab, nanobody) that changes its shape and surfaces; collect at
# a tilt (above); and in processing, find the rare views by classification and re-balance —
# down-weighting over-represented views raises SCF but throws data away.
#
# ## Your own half maps: `cryoglass 3dfsc` (3DFSC practical)
#
# The practical of both sessions asks you to run the 3DFSC on your own data.  The command does
# what the cells above do with `three_d_fsc`, on two unfiltered half maps from any refinement
# (RELION's `run_half1_class001_unfil.mrc`, cryoSPARC's `map_half_A.mrc`):
#
# ```
# cryoglass 3dfsc half1.mrc half2.mrc --full map.mrc --mask mask.mrc --apix 1.06 --out 3dfsc_run
# ```
#
# It writes `3dfsc_run/3dfsc.mrc` (each Fourier voxel holds the FSC of its cone), the histogram
# of directional resolutions with the global FSC (`histogram.png`), the cone FSCs (`fsc.png`),
# `result.json` (sphericity, global resolution, best and worst directions) and
# `chimerax.cxc`, which opens the full map and the 3DFSC coloured by spatial frequency in
# ChimeraX (the webserver's `.cmd` was for Chimera).  `--json` prints the same summary as
# `three_d_fsc(...).summary()` above: a sphericity well below ~0.9 and a worst direction near
# the axis your particles prefer are the signature of preferred orientation.
