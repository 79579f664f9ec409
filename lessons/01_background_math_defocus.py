# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 01 — Background math and defocus phase contrast
#
# Syllabus session **19 Nov 2020 (Blur and Sharpen)**: complex numbers, the complex
# exponential, and how defocus turns an invisible phase object into image contrast.
# Modules taught: `cryoglass.ctf` (`aberration_phase`, `ctf_1d`, `ctf_zeros_inv_angstrom`,
# `electron_wavelength_angstrom`) and `cryoglass.fourier` (centred FFTs, frequency grids).
#
# What you should be able to answer at the end:
#
# * What happens to the electron (and the sample) when it is scattered to small or to large
#   angles?  What else can happen to it?
# * Where does Sigworth's derivation of $|\Psi|^2$ assume small angles and a weak phase
#   ($\varepsilon \ll 1$)?  When do these assumptions break — in cryo-EM and elsewhere?
# * The CTF oscillates through zeros.  Do we see true zeros in real data?  Why (not)?
# * Where does the atomic number of the sample enter the equations?

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass import constants
from cryoglass.ctf import (
    CTFParams,
    aberration_phase,
    ctf_1d,
    ctf_zeros_inv_angstrom,
    electron_wavelength_angstrom,
)
from cryoglass.fourier import fft2_centered, frequency_grid, ifft2_centered

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
N = 96 if FAST else 192
F64 = torch.float64

# %% [markdown]
# ## Blur part
#
# ### Complex numbers are arrows
#
# A complex number $z = a + ib$ is an arrow in the plane; $e^{i\varphi} = \cos\varphi +
# i\sin\varphi$ is the arrow of length 1 at angle $\varphi$.  Multiplying by $e^{i\varphi}$
# turns an arrow by $\varphi$ without changing its length.  That is exactly what a thin
# specimen does to the electron wave: it delays it (shifts its phase) but barely absorbs it.
# A detector only measures the *length squared* $|z|^2$, so a pure phase change is invisible:
# $|e^{i\varphi}|^2 = 1$ whatever $\varphi$ is.

# %%
phi = torch.linspace(0, 2 * math.pi, 9, dtype=F64)
arrows = torch.exp(1j * phi)
print("|exp(i φ)|² for φ in 0..2π:", (arrows.abs() ** 2).numpy().round(12))
small = 0.1
print(f"exp(i·{small}) = {complex(np.exp(1j * small)):.5f}  vs  1 + i·{small} = {1 + 1j * small}")

# %% [markdown]
# ### Small and large scattering angles
#
# An electron scattered by the angle $\theta$ carries information about a spacing
# $d = \lambda / \theta$ in the sample (Bragg's law for small angles): **small angles = large
# features (low spatial frequency), large angles = fine detail (high frequency)**.  At 300 kV
# $\lambda \approx 0.02$ Å, so even 2 Å detail is scattered by only ~10 mrad (0.6°).
#
# What can happen to an electron passing a ~500 Å thick film of ice with protein:
#
# * nothing (most electrons: the unscattered wave, the "1" below);
# * **elastic scattering** — deflected by the electrostatic potential of the nuclei and their
#   electron clouds, no energy lost.  This is the signal: it interferes with the unscattered
#   wave to form the image;
# * **inelastic scattering** — it loses energy (typically 10–50 eV) to the sample's electrons.
#   This breaks bonds (radiation damage) and, because the lost energy changes the wavelength,
#   the electron is focused differently and adds blurred background (removed by an energy
#   filter);
# * scattering to very large angles (mostly by heavy atoms) — stopped by the objective
#   aperture, which removes these electrons from the image: a little *amplitude* contrast.

# %%
lam = electron_wavelength_angstrom(300.0)
for d in (20.0, 5.0, 2.0, 1.0):
    print(f"detail d = {d:4.1f} Å  ->  scattering angle θ = λ/d = {1e3 * lam / d:5.2f} mrad")

# %% [markdown]
# ### Defocus makes phase visible
#
# Out of focus, the scattered wave travels a slightly different path than the unscattered
# one.  The extra phase $\chi(k)$ depends on the scattering angle (on the frequency $k$), and
# the contrast of each frequency in the image is $\sin\chi(k)$ — the contrast transfer
# function.  Below: a phase-only "particle" (invisible in focus) imaged at increasing
# underfocus.

# %%
pixel = 2.0
k_vectors = frequency_grid((N, N), pixel_size_angstrom=pixel).to(F64)
yx = torch.arange(N, dtype=F64) - N // 2
r2 = yx[:, None] ** 2 + yx[None, :] ** 2
blob = torch.exp(-((yx[None, :] - 12) ** 2 + (yx[:, None] + 6) ** 2) / 8)
phase_object = 0.05 * (torch.exp(-r2 / (2 * 4.0**2)) + 0.6 * blob)  # radians


def image_of(phase: torch.Tensor, params: CTFParams) -> torch.Tensor:
    """Exact |ψ|² of a phase object after the objective lens (no linearisation)."""
    psi = torch.exp(1j * phase)
    chi = aberration_phase(params, k_vectors)
    return ifft2_centered(fft2_centered(psi) * torch.exp(-1j * chi)).abs() ** 2


defoci = [0.0, 5000.0, 15000.0, 30000.0]
fig, axes = plt.subplots(1, len(defoci), figsize=(12, 3))
for ax, df in zip(axes, defoci, strict=True):
    p = CTFParams(df, df, cs_mm=0.0, amplitude_contrast=0.0)
    img = image_of(phase_object, p)
    ax.imshow(img.numpy(), cmap="gray")
    ax.set_title(f"Δf = {df / 1e4:.1f} µm, contrast {float(img.max() - img.min()):.3f}")
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# In focus the contrast is zero (to rounding): a pure phase object is invisible.  With
# defocus the particle appears, with fringes; more defocus gives more low-resolution contrast
# but also more fringes (information spread further out — lesson 04).

# %% [markdown]
# ## Sharpen part
#
# ### The derivation, step by step, and checked numerically
#
# 1. **Weak phase object.**  The specimen multiplies the incoming plane wave by
#    $e^{i\sigma V_p(\mathbf r)}$, with $V_p$ the projected potential and $\sigma$ the
#    interaction constant.  If $\varepsilon = \sigma V_p \ll 1$:
#    $\psi \approx 1 + i\varepsilon(\mathbf r)$ (first-order Taylor expansion).
# 2. **Fourier transform**: $\hat\psi(\mathbf k) = \delta(\mathbf k) + i\hat\varepsilon(\mathbf k)$.
#    Each $\mathbf k$ is a beam scattered by the angle $\theta = \lambda k$.
# 3. **The lens** multiplies each beam by $e^{-i\chi(k)}$, with
#    $\chi = \pi\lambda\Delta f k^2 - \tfrac{\pi}{2}C_s\lambda^3k^4$: the path difference of the
#    beam at angle $\theta$ relative to the axis, from defocus ($\propto\theta^2$, using
#    $\cos\theta \approx 1-\theta^2/2$: the **small-angle** assumption) and from spherical
#    aberration ($\propto\theta^4$).  $\chi(0)=0$, so the unscattered beam is unchanged.
# 4. **Intensity**: $|1 + i\,\mathcal F^{-1}[\hat\varepsilon e^{-i\chi}]|^2 = 1 + 2\,\mathcal
#    F^{-1}[\hat\varepsilon \sin\chi] + O(\varepsilon^2)$, using that $\varepsilon$ is real so
#    $\hat\varepsilon(-\mathbf k) = \hat\varepsilon(\mathbf k)^*$ and $\chi$ is even.  The
#    $O(\varepsilon^2)$ term is dropped: the **weak-phase** assumption again.
#
# So $\hat I(\mathbf k) = \delta(\mathbf k) + 2\sin\chi(k)\,\hat\varepsilon(\mathbf k)$: the
# CTF is $\sin\chi$.  Let us test step 4 against the exact $|\psi|^2$ for phase objects of
# increasing strength.

# %%
p = CTFParams(15000.0, 15000.0, cs_mm=2.7, amplitude_contrast=0.0)
sin_chi = torch.sin(aberration_phase(p, k_vectors))
shape = phase_object / phase_object.max()
print(" peak phase ε [rad] | rel. error of the linear (CTF) image")
for eps in (0.01, 0.1, 0.5, 1.0, 2.0):
    exact = image_of(eps * shape, p)
    linear = 1 + 2 * ifft2_centered(fft2_centered(eps * shape) * sin_chi).real
    error = float((exact - linear).norm() / (exact - 1).norm())
    print(f"{eps:19.2f} | {error:.4f}")

# %% [markdown]
# The error of the linear theory grows in proportion to $\varepsilon$ (the dropped term is
# $O(\varepsilon^2)$ against a signal $O(\varepsilon)$): ~0.3 % at $\varepsilon = 0.01$, ~3 % at
# 0.1, and more than 10 % from $\varepsilon \approx 0.5$.  How big is $\varepsilon$ in practice?  The interaction constant is
# $\sigma = \frac{2\pi}{\lambda V}\,\frac{m_0c^2 + eV}{2m_0c^2 + eV}$ (relativistic).

# %%
def interaction_constant(voltage_kv: float) -> float:
    """σ [rad / (V·Å)]."""
    ev = voltage_kv * 1e3
    rest = constants.ELECTRON_REST_ENERGY_EV
    return 2 * math.pi / (electron_wavelength_angstrom(voltage_kv) * ev) * (rest + ev) / (2 * rest + ev)


sigma = interaction_constant(300.0)
print(f"σ(300 kV) = {sigma:.3e} rad/(V·Å)")
# contrast comes from the potential *difference* to the surrounding ice (~1-2 V for protein)
for what, delta_v, thickness in [
    ("protein vs ice, 50 Å thick", 1.5, 50.0),
    ("protein vs vacuum, 50 Å", 7.0, 50.0),
    ("gold particle vs vacuum, 50 Å", 30.0, 50.0),
    ("ice film, 1000 Å", 4.5, 1000.0),
]:
    print(f"{what:32s}: ε = σ·ΔV·t = {sigma * delta_v * thickness:.3f} rad")

# %% [markdown]
# **When do the assumptions break?**  A protein particle in ice gives $\varepsilon \approx
# 0.05$ — weak.  Heavy-atom clusters, gold nanoparticles, thick ice (total phase ~ 3 rad, though
# a *uniform* phase only changes the DC term), crystals in materials science and thick cells
# in tomography are not weak: there multiple scattering matters and one needs multislice
# simulation (syllabus 11 Feb).  The small-angle assumption holds extremely well in TEM:
# $\theta = \lambda k \le 0.02$ rad even at 1 Å.  It fails for low-energy electrons (LEED,
# ~100 eV, $\lambda \approx 1$ Å) and for X-ray crystallography at high resolution, where the
# Ewald sphere is strongly curved.  Thick specimens also break the projection assumption:
# different heights see different defocus (lesson 04).
#
# ### Do we see true zeros?
#
# For one exactly known defocus, $\sin\chi$ has exact zeros.  But a measured power spectrum
# averages many things: particles at different heights in the ice (defocus spread), a
# detector that adds noise, astigmatism when averaging around rings, drift and partial
# coherence (an envelope that lowers the maxima), and inelastic background.  The minima
# fill in.

# %%
k = torch.linspace(0.0, 0.25, 2000, dtype=F64)
single = ctf_1d(CTFParams(15000.0, 15000.0), k) ** 2
heights = torch.linspace(-400.0, 400.0, 41, dtype=F64)  # 800 Å thick ice
spread = ctf_1d(CTFParams(15000.0 + heights, 15000.0 + heights), k) ** 2
astig = torch.linspace(0, 180, 90, dtype=F64)
rings = torch.stack([ctf_1d(CTFParams(16000.0, 14000.0), k, azimuth_deg=float(a)) for a in astig]) ** 2
noise_floor = 0.05
fig, ax = plt.subplots(figsize=(9, 3.5))
kk = k.numpy()
ax.plot(kk, single.numpy(), lw=0.8, label="one defocus: true zeros")
ax.plot(kk, spread.mean(0).numpy(), lw=0.8, label="±400 Å defocus spread (ice thickness)")
ax.plot(kk, rings.mean(0).numpy(), lw=0.8, label="astigmatism, averaged around rings")
ax.plot(kk, (single + noise_floor).numpy(), lw=0.8, label="+ noise / inelastic background")
ax.set(xlabel="k [1/Å]", ylabel="CTF² (power)", ylim=(0, 1.1))
ax.legend(fontsize=8)
fig.tight_layout()
zeros = ctf_zeros_inv_angstrom(CTFParams(15000.0, 15000.0), 6)
print("first zeros [Å]:", (1 / zeros).numpy().round(2))
print("smallest averaged power near the 6th zero:", float(spread.mean(0)[(k - zeros[5]).abs().argmin()]))

# %% [markdown]
# So the zeros are real in each particle image (information at those frequencies is lost for
# that particle, which is why data are collected at several defoci), but the spectrum of a
# whole micrograph rarely reaches zero, and less so at high frequency where the rings are
# dense.
#
# ### Where does the atomic number enter?
#
# Only through the potential $V(\mathbf r)$.  Each atom contributes its electrostatic potential
# (nucleus of charge $+Ze$ screened by $Z$ electrons); its Fourier transform is the electron
# scattering factor $f_e(k)$, which grows roughly like $Z^{2/3}$ to $Z$ at low angles (Mott–Bethe
# formula $f_e \propto (Z - f_x(k))/k^2$).  C, N, O (Z = 6–8) in water-rich ice differ little
# from their surroundings, hence the weak contrast; heavy atoms (Au, Z = 79; U, Z = 92) scatter
# far more, including to large angles where the aperture stops them (amplitude contrast).
# $\sigma$ itself depends only on the voltage: lower voltage gives larger $\sigma$ (more
# contrast) but also more inelastic scattering (more damage per useful event).

# %%
for kv in (100.0, 200.0, 300.0):
    print(f"{kv:5.0f} kV: λ = {electron_wavelength_angstrom(kv):.5f} Å, σ = {interaction_constant(kv):.3e} rad/(V·Å)")
