# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 01 — Background math and defocus phase contrast
#
# **Syllabus:** 19 Nov 2020 (Blur and Sharpen): background math & defocus phase contrast.
#
# Complex numbers, the complex exponential, and how defocus turns an invisible phase object
# into image contrast.  Modules taught: `cryoglass.simulate` (`phase_object_image`,
# `weak_phase_image`, `weak_phase_contrast`, `interaction_constant_rad_per_volt_angstrom`,
# `electron_scattering_factor_angstrom`) and `cryoglass.ctf` (`aberration_phase`, `ctf_1d`,
# `ctf_zeros_inv_angstrom`, `electron_wavelength_angstrom`).
#
# **Questions answered here** (search for the tag; the syllabus's bullets are numbered in order):
#
# * **Defocus Blur Q1** — what happens to the electron (and the sample) when it is scattered to
#   small or to large angles?  What else can happen to it?  → *Small and large scattering angles*
# * **Defocus Sharpen Q1** — where does Sigworth's derivation of $|\Psi|^2$ assume small angles
#   and a weak phase ($\varepsilon \ll 1$)?  When do they break, in cryo-EM and elsewhere?
#   → *The derivation* and *When do the assumptions break?*
# * **Defocus Sharpen Q2** — the CTF oscillates through zeros: do we see true zeros in real
#   data?  → *Do we see true zeros?*
# * **Defocus Sharpen Q3** — the derivation with pencil and eraser, each step justified, and
#   checked numerically.  → *The derivation, step by step*
# * **Defocus Sharpen Q4** — where does the atomic number enter the equations?
#   → *Where does the atomic number enter?*
#
# The sign convention is cryoglass's (RELION 3.1's, `docs/conventions.md` item 7): defocus
# $\Delta f > 0$ is underfocus, and **protein is dark in underfocus in the raw image**.

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from cryoglass.ctf import (
    CTFParams,
    aberration_phase,
    ctf_1d,
    ctf_zeros_inv_angstrom,
    electron_wavelength_angstrom,
)
from cryoglass.fourier import frequency_grid
from cryoglass.simulate import (
    electron_scattering_factor_angstrom,
    interaction_constant_rad_per_volt_angstrom,
    phase_object_image,
    weak_phase_contrast,
    weak_phase_image,
)

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
# specimen does to the electron wave: it shifts its phase but barely absorbs it.
# A detector only measures the *length squared* $|z|^2$, so a pure phase change is invisible:
# $|e^{i\varphi}|^2 = 1$ whatever $\varphi$ is.

# %%
phi = torch.linspace(0, 2 * math.pi, 9, dtype=F64)
arrows = torch.exp(1j * phi)
print("|exp(i φ)|² for φ in 0..2π:", (arrows.abs() ** 2).numpy().round(12))
small = 0.1
print(f"exp(i·{small}) = {complex(np.exp(1j * small)):.5f}  vs  1 + i·{small} = {1 + 1j * small}")

# %% [markdown]
# ### Small and large scattering angles (Defocus Blur Q1)
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
# each frequency of the phase reaches the raw image multiplied by $-2\sin\chi(k)$ (derived
# below; $\sin\chi$ is the CTF, and the minus sign is why protein is dark).  Below: a
# phase-only "particle" (invisible in focus) imaged by the library's exact phase-object model,
# `phase_object_image` (no linearisation), at increasing underfocus and at one overfocus.  The
# library takes the *projected potential* $V_p$ in V·Å; the phase it imposes is
# $\varepsilon = \sigma_e V_p$ with the interaction constant $\sigma_e$ (Sharpen part).

# %%
pixel = 2.0
sigma_e = interaction_constant_rad_per_volt_angstrom(300.0)  # rad / (V·Å)
yx = torch.arange(N, dtype=F64) - N // 2
r2 = yx[:, None] ** 2 + yx[None, :] ** 2
blob = torch.exp(-((yx[None, :] - 12) ** 2 + (yx[:, None] + 6) ** 2) / 8)
phase_object = 0.05 * (torch.exp(-r2 / (2 * 4.0**2)) + 0.6 * blob)  # ε(r) in radians
potential = phase_object / sigma_e  # V_p(r) in V·Å


def raw_image(vp: torch.Tensor, defocus_angstrom: float, **lens) -> torch.Tensor:
    """The exact image |ψ|² (vacuum = 1) of a pure phase object, cryoglass's lens sign."""
    params = CTFParams(defocus_angstrom, defocus_angstrom, **{"amplitude_contrast": 0.0, **lens})
    return phase_object_image(vp, params, pixel_size_angstrom=pixel)


defoci = [0.0, 5000.0, 15000.0, 30000.0, -15000.0]
fig, axes = plt.subplots(1, len(defoci), figsize=(14, 3))
for ax, df in zip(axes, defoci, strict=True):
    img = raw_image(potential, df, cs_mm=0.0)
    ax.imshow(img.numpy(), cmap="gray", vmin=0.9, vmax=1.1)
    kind = "in focus" if df == 0 else ("underfocus" if df > 0 else "overfocus")
    ax.set_title(f"Δf = {df / 1e4:+.1f} µm ({kind})\ncentre {float(img[N // 2, N // 2]):.3f}",
                 fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# In focus the contrast is zero (to rounding): a pure phase object is invisible.  In
# **underfocus the particle is dark** on the bright background (centre intensity below 1, the
# vacuum level), with a bright Fresnel fringe around it; in overfocus it is bright.  More
# defocus gives more low-resolution contrast but also more fringes (information spread further
# out — lesson 04).  The check below is the one the tests hold the library to:

# %%
centre = {df: float(raw_image(potential, df)[N // 2, N // 2]) for df in (15000.0, -15000.0)}
print(f"centre intensity at 1.5 µm underfocus {centre[15000.0]:.3f}, "
      f"at 1.5 µm overfocus {centre[-15000.0]:.3f} (vacuum = 1)")
assert centre[15000.0] < 1 < centre[-15000.0], "protein must be dark in underfocus"

# %% [markdown]
# ## Sharpen part
#
# ### The derivation, step by step, and checked numerically (Defocus Sharpen Q1, Q3)
#
# 1. **Phase object.**  The specimen multiplies the incoming plane wave by
#    $e^{i\sigma_e V_p(\mathbf r)}$, with $V_p = \int V\,dz$ the projected potential and $\sigma_e$
#    the interaction constant (a fast electron *gains* phase in a positive potential).  If
#    $\varepsilon = \sigma_e V_p \ll 1$ (the **weak-phase** assumption), the first-order Taylor
#    expansion gives
#    $$\psi(\mathbf r) \approx 1 + i\varepsilon(\mathbf r).$$
# 2. **Fourier transform**: $\hat\psi(\mathbf k) = \delta(\mathbf k) + i\hat\varepsilon(\mathbf k)$.
#    Each $\mathbf k$ is a beam scattered by the angle $\theta = \lambda k$.
# 3. **The lens** multiplies each beam by $e^{+i\chi(k)}$ with
#    $$\chi(k) = \pi\lambda\Delta f\,k^2 - \tfrac{\pi}{2}C_s\lambda^3k^4 ,$$
#    cryoglass's (RELION's) $\chi$ with $\Delta f > 0$ for underfocus.  Why this sign: in
#    underfocus the image plane is conjugate to a plane a distance $\Delta f$ *upstream* of the
#    exit surface, so the image is the exit wave propagated back by $\Delta f$, and Fresnel
#    propagation over $\Delta z$ multiplies each beam by $e^{-i\pi\lambda\Delta z k^2}$; with
#    $\Delta z = -\Delta f$ that is $e^{+i\pi\lambda\Delta f k^2}$.  The $k^2$ comes from the path
#    difference of a beam at angle $\theta$, $\Delta f(1 - \cos\theta) \approx \Delta f\theta^2/2$
#    — the **small-angle** assumption; spherical aberration adds the $\theta^4$ term.
#    $\chi(0) = 0$, so the unscattered beam is unchanged.
# 4. **Intensity**: write $s = \mathcal F^{-1}[\hat\varepsilon\cos\chi]$ and
#    $c = \mathcal F^{-1}[\hat\varepsilon\sin\chi]$; both are *real*, because $\varepsilon$ is real
#    ($\hat\varepsilon(-\mathbf k) = \hat\varepsilon(\mathbf k)^*$) and $\chi$ is even.  Then
#    $$\psi_{\text{image}} = 1 + i\,\mathcal F^{-1}[\hat\varepsilon e^{i\chi}] = 1 + i s - c,
#      \qquad |\psi_{\text{image}}|^2 = (1 - c)^2 + s^2 = 1 - 2c + O(\varepsilon^2).$$
#    The $O(\varepsilon^2)$ terms are dropped: the weak-phase assumption again.  So
#    $$\hat I(\mathbf k) = \delta(\mathbf k) - 2\sin\chi(k)\,\hat\varepsilon(\mathbf k).$$
#    In underfocus $\sin\chi > 0$ at low $k$, so where the potential is positive (protein) the
#    intensity drops below the vacuum level: **protein is dark in underfocus**.
# 5. **Amplitude contrast.**  Electrons lost outside the aperture act like an absorbing
#    (imaginary) potential, $\psi = e^{(i - \eta)\varepsilon}$ with $\eta = Q_0/\sqrt{1 - Q_0^2}$.
#    The same steps give $\sin\chi + \eta\cos\chi = \sin(\chi + \arcsin Q_0)/\sqrt{1-Q_0^2}$, so
#    $$I = 1 - \frac{2}{\sqrt{1-Q_0^2}}\,\mathcal F^{-1}\big[\mathrm{CTF}\,\hat\varepsilon\big],
#      \qquad \mathrm{CTF}(k) = \sin\big(\chi(k) + \arcsin Q_0\big),$$
#    exactly RELION's CTF (positive, $\approx Q_0$, at $k \to 0$ in underfocus).
#
# RELION's particle images are **contrast-inverted** (protein white) and modelled as
# CTF × projection: that is `weak_phase_contrast` $= \mathcal F^{-1}[\mathrm{CTF}\,
# \hat\varepsilon] = (1 - I)\sqrt{1-Q_0^2}/2$ — the quantity lessons 03–05 multiply by the CTF.
# The raw image on the detector is $I$: dark protein in underfocus.
#
# Let us check step 4 (`weak_phase_image`, the linear theory) against the exact $|\psi|^2$
# (`phase_object_image`) for phase objects of increasing strength, and steps 4–5 against the
# library's CTF.

# %%
k_vectors = frequency_grid((N, N), pixel_size_angstrom=pixel).to(F64)
p = CTFParams(15000.0, 15000.0, cs_mm=2.7, amplitude_contrast=0.0)
shape = potential / potential.max()
print(" peak phase ε [rad] | rel. error of the linear (CTF) image")
for eps in (0.01, 0.1, 0.5, 1.0, 2.0):
    vp = eps / sigma_e * shape
    exact = phase_object_image(vp, p, pixel_size_angstrom=pixel)
    linear = weak_phase_image(vp, p, pixel_size_angstrom=pixel)
    error = float((exact - linear).norm() / (exact - 1).norm())
    print(f"{eps:19.2f} | {error:.4f}")

# Step 4 by hand, on the centred grid: 1 − 2 F⁻¹[sin χ · ε̂] equals the library's weak-phase image.
chi = aberration_phase(p, k_vectors)
eps_hat = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(phase_object)))
by_hand = 1 - 2 * torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(torch.sin(chi) * eps_hat))).real
library = weak_phase_image(potential, p, pixel_size_angstrom=pixel)
print(f"max |by hand − weak_phase_image| = {float((by_hand - library).abs().max()):.1e}")
# Step 5: RELION's particle image is CTF × projection = (1 − I)·√(1−Q0²)/2
p_q0 = CTFParams(15000.0, 15000.0, amplitude_contrast=0.1)
relion = weak_phase_contrast(potential, p_q0, pixel_size_angstrom=pixel)
raw = weak_phase_image(potential, p_q0, pixel_size_angstrom=pixel)
print(f"max |CTF·projection − (1 − I)·√(1−Q0²)/2| = "
      f"{float((relion - (1 - raw) * math.sqrt(1 - 0.01) / 2).abs().max()):.1e}; "
      f"centre: raw image {float(raw[N // 2, N // 2]):.3f} (dark), RELION's particle "
      f"{float(relion[N // 2, N // 2]):+.4f} (white)")

# %% [markdown]
# The error of the linear theory grows in proportion to $\varepsilon$ (the dropped term is
# $O(\varepsilon^2)$ against a signal $O(\varepsilon)$): well under 1 % at $\varepsilon = 0.01$,
# a few % at 0.1, and tens of % from $\varepsilon \approx 0.5$ on.  How big is $\varepsilon$ in
# practice?  The interaction constant (relativistic) is
# $$\sigma_e = \frac{2\pi}{\lambda V}\,\frac{m_0c^2 + eV}{2m_0c^2 + eV}.$$

# %%
sigma = interaction_constant_rad_per_volt_angstrom(300.0)
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
# **When do the assumptions break?** (Defocus Sharpen Q1)  A protein particle in ice gives $\varepsilon \approx
# 0.05$ — weak.  Heavy-atom clusters, gold nanoparticles, thick ice (total phase ~ 3 rad, though
# a *uniform* phase only changes the DC term), crystals in materials science and thick cells
# in tomography are not weak: there multiple scattering matters and one needs multislice
# simulation (syllabus 11 Feb).  The small-angle assumption holds extremely well in TEM:
# $\theta = \lambda k \le 0.02$ rad even at 1 Å.  It fails for low-energy electrons (LEED,
# ~100 eV, $\lambda \approx 1$ Å) and for X-ray crystallography at high resolution, where the
# Ewald sphere is strongly curved.  Thick specimens also break the projection assumption:
# different heights see different defocus (lesson 04).
#
# ### Do we see true zeros? (Defocus Sharpen Q2)
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
# ### Where does the atomic number enter? (Defocus Sharpen Q4)
#
# Only through the potential $V(\mathbf r)$.  Each atom contributes its electrostatic potential
# (a nucleus of charge $+Ze$ screened by $Z$ electrons); its Fourier transform is the electron
# scattering factor, given by the Mott–Bethe formula
# $$f_e(s) = \frac{m e^2}{8\pi\varepsilon_0 h^2}\;\frac{Z - f_x(s)}{s^2},
#   \qquad s = \frac{\sin\theta}{\lambda} = \frac{k}{2},$$
# with $f_x$ the X-ray scattering factor (the electron cloud).  At **high angles** the cloud no
# longer screens ($f_x \to 0$): $f_e \propto Z/s^2$, Rutherford scattering by the bare nucleus.
# At **low angles** the cloud screens the nucleus and $f_e(0)$ grows much more slowly than $Z$:
# the Thomas–Fermi atom gives $f_e(0) \propto Z^{1/3}$, and the tabulated values (Peng et al.
# 1996, used by `cryoglass.simulate`) even fall from C to O because of shell structure.  The
# table below fits the growth with Z at each angle:

# %%
elements = ["C", "N", "O", "P", "S", "Fe", "Zn", "Au", "U"]
z_numbers = np.array([6, 7, 8, 15, 16, 26, 30, 79, 92])
s_values = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0], dtype=F64)
fe = electron_scattering_factor_angstrom(elements, s_values).numpy()
print("element  Z   f_e [Å] at s = " + "  ".join(f"{v:4.2f}" for v in s_values.tolist()) + " 1/Å")
for name, z, row in zip(elements, z_numbers, fe, strict=True):
    print(f"{name:7s} {z:2d}   " + "  ".join(f"{v:7.3f}" for v in row))
slopes = [np.polyfit(np.log(z_numbers), np.log(fe[:, j]), 1)[0] for j in range(len(s_values))]
print("f_e ∝ Z^n with n = " + ", ".join(f"{n:.2f} (s = {v:.2f})"
                                       for n, v in zip(slopes, s_values.tolist(), strict=True)))

# %% [markdown]
# So at the low angles that carry most of the contrast, a heavy atom scatters only a few
# times more than carbon (gold: ~4×, for 13× the charge); the exponent climbs towards 1 at
# high angles.  C, N, O (Z = 6–8) in water-rich ice differ little from their surroundings,
# hence the weak contrast; heavy atoms (Au, Z = 79; U, Z = 92) scatter far more, including to
# large angles where the aperture stops them (amplitude contrast).  $\sigma_e$ itself depends
# only on the voltage: lower voltage gives larger $\sigma_e$ (more contrast) but also more
# inelastic scattering (more damage per useful event).

# %%
for kv in (100.0, 200.0, 300.0):
    print(f"{kv:5.0f} kV: λ = {electron_wavelength_angstrom(kv):.5f} Å, "
          f"σ = {interaction_constant_rad_per_volt_angstrom(kv):.3e} rad/(V·Å)")
