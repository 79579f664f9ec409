# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 05 — Image formation: the forward model
#
# Syllabus sessions **28 Jan 2021 (Blur)** and **11 Feb 2021 (Sharpen)**: from atoms to a
# potential, from a potential to an exit wave, through the lens to an image, onto a detector.
# Modules taught: `cryoglass.simulate` (`potential_map`, `projected_potential`,
# `interaction_constant_rad_per_volt_angstrom`, `weak_phase_contrast`, `weak_phase_image`,
# `phase_object_image`, the coherence envelopes, `counting_detector_mtf/dqe`, `apply_dqe`,
# `multislice_image`).
#
# Questions to answer at the end:
#
# * How is real noise different from Gaussian additive noise?  What breaks pixel independence?
# * What is the difference between applying the DQE/MTF in 2D and using its 1D curve?
# * The "complex CTF" (Vulović eq. 5) versus the sine CTF: when does it matter?
# * The weak-phase approximation versus the projection assumption: where is each made?

# %%
import os

import matplotlib.pyplot as plt
import torch

from cryoglass.ctf import CTFParams
from cryoglass.data import trpv1_model_path
from cryoglass.io import read_structure
from cryoglass.simulate import (
    POTENTIAL_CONSTANT_VOLT_ANGSTROM2,
    apply_dqe,
    compare_to_projection,
    counting_detector_dqe,
    counting_detector_mtf,
    interaction_constant_rad_per_volt_angstrom,
    model_center_angstrom,
    phase_object_image,
    potential_map,
    projected_potential,
    weak_phase_contrast,
    weak_phase_image,
)

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
torch.manual_seed(0)
generator = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Blur: from atoms to an image
#
# Every atom is a small cloud of positive potential (the nucleus, screened by its electrons).
# Peng et al. (1996) fitted each element's electron scattering factor with five Gaussians;
# the B-factor blurs each one further.  Summing the clouds gives the potential map in volts.

# %%
model = read_structure(trpv1_model_path())
xyz = model.coordinates_angstrom.float()
center = model_center_angstrom(xyz, model.elements)
pixel = 2.0 if FAST else 1.0
box = 64 if FAST else 128
volume = potential_map(xyz, model.elements, shape=(box, box, box), pixel_size_angstrom=pixel,
                       bfactors_a2=30.0, origin_angstrom=center, outside="ignore")
vp = projected_potential(xyz, model.elements, image_size=box, pixel_size_angstrom=pixel,
                         bfactors_a2=30.0, origin_angstrom=center)[0]
print(f"potential: max {float(volume.max()):.1f} V, projected potential max {float(vp.max()):.0f} V·Å")
print(f"h²/(2π m0 e) = {POTENTIAL_CONSTANT_VOLT_ANGSTROM2:.3f} V·Å²")
sigma = interaction_constant_rad_per_volt_angstrom(300.0)
print(f"σ_e(300 kV) = {sigma:.6f} rad/(V·Å): largest phase {sigma * float(vp.max()):.2f} rad")

# %%
ctf = CTFParams(15000.0, 15000.0, amplitude_contrast=0.07)
image = phase_object_image(vp, ctf, pixel_size_angstrom=pixel)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
axes[0].imshow(volume.sum(0), cmap="gray")
axes[0].set_title("projected potential")
axes[1].imshow(image, cmap="gray")
axes[1].set_title("image, 1.5 µm underfocus\n(protein dark)")
axes[2].imshow(weak_phase_contrast(vp, ctf, pixel_size_angstrom=pixel), cmap="gray")
axes[2].set_title("RELION convention\n(CTF × projection, protein white)")
for ax in axes:
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## Sharpen: the two approximations, and where each one is made
#
# 1. **Projection assumption** (thin specimen): the exit wave depends only on
#    $\int V\,dz$, i.e. the electron does not spread (Fresnel propagate) while crossing the
#    specimen.  Koeck & Karshikoff make it when they replace the 3D wave equation's solution
#    by $\psi = e^{i\sigma_e V_p}$.  It fails when the specimen is thicker than the depth of
#    field $\sim 1/(\lambda k^2)$ at the resolution $k$.
# 2. **Weak-phase approximation**: $e^{i\sigma_e V_p} \approx 1 + i\sigma_e V_p$, so the image is
#    *linear* in the potential and the CTF is a real filter $\sin\chi$.  It fails when the
#    phase $\sigma_e V_p$ is not $\ll 1$.  Keeping the exponential and the complex lens
#    transfer $e^{i\chi}$ is the "complex CTF" picture: needed when the phase is large (thick
#    ice, heavy atoms, high defocus spread) or for the non-linear $|\text{scattered}|^2$ term.
#
# Below: how far each approximation is from the better model, on this particle.

# %%
for scale in (1.0, 3.0):
    full = phase_object_image(vp * scale, ctf, pixel_size_angstrom=pixel) - 1
    weak = weak_phase_image(vp * scale, ctf, pixel_size_angstrom=pixel) - 1
    err = float((full - weak).norm() / weak.norm())
    print(f"projected potential ×{scale:.0f}: weak-phase relative error {err:.3f}")
slab = volume[box // 2 - 25 : box // 2 + 25]
numbers = compare_to_projection(slab, ctf, pixel_size_angstrom=pixel, slice_thickness_angstrom=2 * pixel)
print("50-voxel slab, multislice vs projection:", {k: round(v, 4) for k, v in numbers.items()})

# %% [markdown]
# ## Detector: DQE in 2D versus a 1D curve
#
# A counting detector's MTF is the square pixel's transfer function
# $\mathrm{sinc}(\pi\omega_x/2)\,\mathrm{sinc}(\pi\omega_y/2)$ — separable, not radial.
# Papers plot it in 1D (along an axis).  Applying that 1D curve radially, $f(|\omega|)$, is a
# different 2D filter: equal on the axes, wrong along the diagonals (lower in the corners for
# the sinc), and the noise it predicts there is wrong too.  Measured 2D NPS/MTF maps avoid it.

# %%
mtf_2d = counting_detector_mtf(64, rfft=False)
mtf_radial = counting_detector_mtf(64, separable=False, rfft=False)
print(f"at the corner (ω = Nyquist on both axes): separable {float(mtf_2d[0, 0]):.3f}, "
      f"1D curve applied radially {float(mtf_radial[0, 0]):.3f}")
print(f"at Nyquist along x both give {float(mtf_2d[32, 0]):.3f} (2/π)")

# %% [markdown]
# ## Real noise versus additive Gaussian noise
#
# Shot noise is Poisson: its variance equals the mean *in each pixel*, so it depends on the
# signal (a dark protein pixel is less noisy than a bright vacuum one) and is not Gaussian at
# ~1 e⁻/pixel.  The DQE multiplies the signal's spectral SNR by $\mathrm{DQE}(\omega)$; a
# detector whose point-spread covers several pixels makes the noise *correlated* between
# neighbours — pixel independence breaks (so does any interpolation, motion correction, or
# Fourier cropping applied before the noise model).  Below, the same expected image with
# Poisson noise at 1 e⁻/pixel: the variance follows the mean.

# %%
dose = 1.0
expected = dose * image.clamp(min=0)
expected = apply_dqe(expected, counting_detector_dqe(box, dqe_zero=0.8, dtype=expected.dtype))
counts = torch.poisson(expected.clamp(min=0).expand(200, -1, -1), generator=generator)
mean, var = counts.mean(0), counts.var(0)
print(f"Poisson: mean {float(mean.mean()):.3f}, variance {float(var.mean()):.3f} (equal), "
      f"variance/mean correlation across pixels "
      f"{float(torch.corrcoef(torch.stack([mean.flatten(), var.flatten()]))[0, 1]):.2f}")

# %% [markdown]
# ## Take-aways
#
# * The potential is in volts, the projected potential in V·Å, the phase $\sigma_e V_p$ in rad;
#   TRPV1 reaches 0.4 rad at 300 kV, and the weak-phase image is already ~10 % off the full
#   phase-object image (the error grows linearly with the phase); worse in thick ice and at
#   low voltage.
# * The projection assumption holds to within ~2 % of the image for 50 Å slabs at 300 kV, but
#   at high resolution it degrades fast with thickness (table in lesson 15).
# * Combining data from different grids/sessions works if the forward model (CTF, dose, MTF,
#   B-factors, scale) is right for each image; pooling EMPIAR sets needs consistent pixel size,
#   magnification and detector models, which is exactly what is usually *not* recorded.
