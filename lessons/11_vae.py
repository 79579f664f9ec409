# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 11 · Variational autoencoders
#
# **Syllabus:** 8 Apr 2021 (Sharpen): variational autoencoders.
#
# **Questions answered here** (search for the tag):
#
# * **VAE Q1** — the latent space in our own words; related ideas in structural biology
#   → *Blur 1*
# * **VAE Q2** — the reparameterisation trick: what is reparameterised, and why → *Blur 3*
# * **VAE Q3** — the take-home of each figure of the Jeremy Jordan post → *Blur 2*, answer 3
# * **VAE Q4** — why *variational* autoencoders interpolate smoothly between observations
#   → *Blur 2*, *Sharpen 1*
# * **VAE Q5** — from reconstructing images to 3D structures: the reconstruction loss
#   → *Sharpen 2*
# * **VAE Q6** — a VAE on toy data in PyTorch → *Blur 2*
#
# cryoDRGN (lesson 12) is a variational autoencoder (VAE) whose decoder happens to output
# 3D maps. Before we meet it, we build the idea from scratch on data small enough to see
# everything: one-dimensional "molecules" made of two bumps whose distance is the hidden
# variable.
#
# **Blur** — what a latent space is; what the reparameterisation trick is for; why a *variational*
# autoencoder fills its latent space so that points between observations decode to something
# sensible, while a plain autoencoder leaves holes.
# **Sharpen** — the evidence lower bound (ELBO) and its two terms, the Gaussian KL in closed
# form, an exact check of the bound on a model where log p(x) is known, and how the
# reconstruction term becomes a cryo-EM image comparison.

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cryoglass.geometry import euler_to_matrix
from cryoglass.hetero import fourier_points, kl_divergence, reparameterize, slice_coordinates

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
if FAST:
    torch.set_num_threads(1)  # one thread is faster than two on a busy 2-core machine
STEPS = 700 if FAST else 4000
T0 = time.perf_counter()

# %% [markdown]
# ## Blur 1 — a latent space, in our own words (VAE Q1)
#
# Every image in a dataset is a long list of numbers (4096 for a 64² particle), but the things
# that *made* the images are few: which conformation, which view, how much defocus. A latent
# space is a small coordinate system for those causes. An **encoder** reads an observation and
# says where in that space it came from; a **decoder** takes a point of the space and draws the
# observation it would produce. Training asks the round trip to give back what went in.
#
# Structural biologists use such coordinates all the time without the name: a reaction
# coordinate or an order parameter (distance between two domains), the principal components of
# an MD trajectory, the amplitudes along normal modes (lesson 13), even the class label of a 2D
# class average (a latent space with K discrete points).
#
# Our toy "molecule" is a 1D signal of 32 samples with two Gaussian bumps separated by a
# distance *s* (a hinge opening). The only hidden cause is *s*, plus a little noise.

# %%
L, N_TOY = 32, 2000
grid_x = torch.arange(L, dtype=torch.float32)


def two_bumps(separation: torch.Tensor) -> torch.Tensor:
    """Signals (..., L): bumps of width 1.5 at L/2 ± s/2."""
    s = separation[..., None]
    left = torch.exp(-((grid_x - (L / 2 - s / 2)) ** 2) / (2 * 1.5**2))
    right = torch.exp(-((grid_x - (L / 2 + s / 2)) ** 2) / (2 * 1.5**2))
    return left + right


gen = torch.Generator().manual_seed(0)
true_s = 4 + 16 * torch.rand(N_TOY, generator=gen)
data = two_bumps(true_s) + 0.05 * torch.randn(N_TOY, L, generator=gen)

fig, ax = plt.subplots(figsize=(6, 2.5))
for i in range(4):
    ax.plot(data[i], label=f"s = {true_s[i]:.1f}")
ax.set_xlabel("sample")
ax.legend(fontsize=7)
ax.set_title("Toy observations: 32 numbers, one hidden cause")

# %% [markdown]
# ## Blur 2 — a toy VAE and a plain autoencoder, side by side (PyTorch; VAE Q3, Q4, Q6)
#
# Both have the same encoder and decoder (small MLPs) and a 2D latent space. The plain
# autoencoder (AE) maps each signal to one point and is trained only to reconstruct. The VAE's
# encoder outputs a *distribution*, a Gaussian with mean μ and standard deviation σ; the decoder
# must reconstruct from a random sample z of it, and a KL term pulls every such Gaussian towards
# the standard normal prior 𝒩(0, I).


# %%
class Toy(nn.Module):
    """Encoder → (μ, log σ²) and decoder z → signal; ``variational`` switches the sampling."""

    def __init__(self, zdim: int = 2, hidden: int = 64, variational: bool = True) -> None:
        super().__init__()
        self.variational, self.zdim = variational, zdim
        self.enc = nn.Sequential(nn.Linear(L, hidden), nn.ReLU(), nn.Linear(hidden, 2 * zdim))
        self.dec = nn.Sequential(
            nn.Linear(zdim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, L),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.enc(x)
        return out[:, : self.zdim], out[:, self.zdim :]

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mu, logvar = self.encode(x)
        if not self.variational:
            return ((self.dec(mu) - x) ** 2).sum(-1).mean()
        z = reparameterize(mu, logvar, generator=generator)
        # Gaussian likelihood with noise σ_x = 0.1: −log p(x|z) = |x − x̂|² / (2 σ_x²) + const
        reconstruction = ((self.dec(z) - x) ** 2).sum(-1) / (2 * 0.1**2)
        return (reconstruction + kl_divergence(mu, logvar)).mean()


def train(model: Toy, seed: int) -> list[float]:
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(STEPS):
        batch = data[torch.randint(N_TOY, (128,), generator=g)]
        loss = model.loss(batch, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append(float(loss.detach()))
    return curve


torch.manual_seed(1)
ae, vae = Toy(variational=False), Toy(variational=True)
curve_ae, curve_vae = train(ae, 1), train(vae, 1)
with torch.no_grad():
    z_ae, z_vae = ae.encode(data)[0], vae.encode(data)[0]
print(f"trained both in {time.perf_counter() - T0:.1f} s")

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, z, name in ((axes[0], z_ae, "plain autoencoder"), (axes[1], z_vae, "VAE")):
    points = ax.scatter(z[:, 0], z[:, 1], c=true_s, s=3, cmap="viridis")
    ax.set_title(f"{name}: latent codes coloured by true s")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
fig.colorbar(points, ax=axes, label="true separation s")

# %% [markdown]
# Both encoders discover that one number matters: the codes lie along a curve ordered by *s*.
# The difference is what happens **between and around** the codes. The AE places the curve
# anywhere, at any scale, and never sees the rest of the plane during training. The VAE's
# codes are smeared by σ during training (the decoder has to cope with every z in a blob around
# each μ) and the KL term keeps the blobs packed around the origin, so the region the data
# occupy is filled without holes.
#
# We test it: decode a regular grid of z covering the codes' range and ask how far each decoded
# signal is from the nearest *real* two-bump molecule (any s between 0 and 24).

# %%
dictionary = two_bumps(torch.linspace(0, 24, 481))  # every possible clean molecule


def realism_error(signals: torch.Tensor) -> torch.Tensor:
    """Relative distance of each signal to the closest clean two-bump signal."""
    return torch.cdist(signals, dictionary).min(dim=1).values / dictionary.norm(dim=1).mean()


def decoded_grid(model: Toy, z: torch.Tensor, n: int = 40):
    low, high = torch.quantile(z, 0.01, dim=0), torch.quantile(z, 0.99, dim=0)
    axes = [torch.linspace(float(low[i]), float(high[i]), n) for i in range(2)]
    zz = torch.stack(torch.meshgrid(*axes, indexing="xy"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        return realism_error(model.dec(zz)).reshape(n, n), (low, high)


fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, model, z, name in ((axes[0], ae, z_ae, "AE"), (axes[1], vae, z_vae, "VAE")):
    err, (low, high) = decoded_grid(model, z)
    extent = (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
    image = ax.imshow(err, origin="lower", extent=extent, aspect="auto", vmin=0, vmax=0.6)
    ax.scatter(z[::10, 0], z[::10, 1], s=1, c="w")
    good = float((err < 0.2).float().mean())
    ax.set_title(f"{name}: grid decodes to a real molecule in {100 * good:.0f} %")
    print(f"{name}: fraction of the latent box that decodes to a realistic molecule {good:.2f}")
fig.colorbar(image, ax=axes, label="distance to nearest real molecule")

# %% [markdown]
# **Interpolation.** Take two observations, walk on the straight line between their codes, and
# decode. The AE's straight line leaves its curve of codes, where the decoder was never asked to
# produce anything, and the middle of the path decodes to signals that are no molecule at all.
# The VAE's path stays (mostly) among real molecules with intermediate separations. (Printed
# numbers: the realism error at each of the 9 steps.)

# %%
i, j = int(torch.argmin(true_s)), int(torch.argmax(true_s))
t = torch.linspace(0, 1, 9)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
for ax, model, z, name in ((axes[0], ae, z_ae, "AE"), (axes[1], vae, z_vae, "VAE")):
    with torch.no_grad():
        path = model.dec((1 - t) * z[i] + t * z[j])
    for k, signal in enumerate(path):
        ax.plot(signal + 0.6 * k, "k", lw=1)
    err = realism_error(path)
    ax.set_title(f"{name}: mean error along the path {float(err.mean()):.2f}")
    print(f"{name} interpolation: realism error along the path {np.round(err.numpy(), 2)}, "
          f"mean {float(err.mean()):.2f}")  # fmt: skip

# %% [markdown]
# ## Blur 3 — the reparameterisation trick (VAE Q2)
#
# Training needs the gradient of the loss with respect to the encoder's weights, i.e. with
# respect to μ and σ. But the loss depends on them through a **random draw** z ~ 𝒩(μ, σ²), and
# "draw a random number" has no derivative: the sample that comes out of `torch.normal` is a
# constant as far as autograd is concerned. The trick *reparameterises the random variable*:
# draw parameter-free noise ε ~ 𝒩(0, 1) first and write z = μ + σ ε. The randomness now sits
# in ε, off the path from the weights to the loss, and z is an ordinary differentiable function
# of μ and σ. (The same distribution, a different recipe for sampling it.)
#
# Check: for f(z) = z², E[f] = μ² + σ², so ∂E/∂μ = 2μ and ∂E/∂σ = 2σ. A Monte-Carlo estimate
# through `reparameterize` recovers both; the naive sample carries no gradient at all.

# %%
mu = torch.tensor([[0.7]], requires_grad=True)
log_sigma = torch.tensor([[math.log(0.5)]], requires_grad=True)
M = 200_000
z = reparameterize(
    mu.expand(M, 1), 2 * log_sigma.expand(M, 1), generator=torch.Generator().manual_seed(0)
)
(z**2).mean().backward()
sigma = math.exp(float(log_sigma.detach()))
print(f"dE/dmu    = {float(mu.grad):.3f}   (exact {2 * 0.7:.3f})")
print(f"dE/dsigma = {float(log_sigma.grad) / sigma:.3f}   (exact {2 * sigma:.3f})")
naive = torch.normal(mu.detach(), sigma)
print("a direct torch.normal sample requires_grad:", naive.requires_grad)

# %% [markdown]
# ## Sharpen 1 — the evidence lower bound (VAE Q4)
#
# A generative model $p(x) = \int p(x \mid z)\,p(z)\,dz$ with a neural decoder $p(x \mid z)$ has
# an intractable integral. For any distribution q(z|x), Jensen's inequality gives
#
# $$\log p(x) \;\ge\; \underbrace{\mathbb E_{q(z|x)}[\log p(x|z)]}_{\text{reconstruction}}
#   \;-\; \underbrace{\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big)}_{\text{stay near the prior}}
#   \;=\; \mathrm{ELBO},$$
#
# and the gap is exactly KL(q(z|x) ‖ p(z|x)): the bound is tight when the encoder returns the
# true posterior. Maximising the ELBO over decoder and encoder together both fits the data and
# makes the encoder an approximate posterior. For q = 𝒩(μ, diag σ²), p = 𝒩(0, I):
#
# $$\mathrm{KL} = -\tfrac12 \sum_i \big(1 + \log\sigma_i^2 - \mu_i^2 - \sigma_i^2\big).$$
#
# Check the closed form against a Monte-Carlo average of log q − log p:

# %%
mu_q, logvar_q = torch.tensor([[0.5, -1.2, 0.0]]), torch.tensor([[-1.0, 0.3, 0.0]])
zs = reparameterize(
    mu_q.expand(400_000, 3), logvar_q.expand(400_000, 3), generator=torch.Generator().manual_seed(1)
)
log_q = (-0.5 * ((zs - mu_q) ** 2 / logvar_q.exp() + logvar_q + math.log(2 * math.pi))).sum(-1)
log_p = (-0.5 * (zs**2 + math.log(2 * math.pi))).sum(-1)
print(f"KL closed form {float(kl_divergence(mu_q, logvar_q)):.4f}, "
      f"Monte Carlo {float((log_q - log_p).mean()):.4f}")  # fmt: skip

# %% [markdown]
# **The bound, exactly.** In the linear model x = w z + n (z ~ 𝒩(0,1), n ~ 𝒩(0, s²)) everything
# is Gaussian: p(x) = 𝒩(0, w² + s²) and the posterior is 𝒩(w x/(w² + s²), s²/(w² + s²)).
# The ELBO computed by Monte Carlo equals log p(x) for the exact posterior and falls below it,
# by KL(q ‖ posterior), for any other q.

# %%
w, s_noise, x_obs = 2.0, 0.5, 1.3
log_px = -0.5 * (x_obs**2 / (w**2 + s_noise**2) + math.log(2 * math.pi * (w**2 + s_noise**2)))
post_mu, post_var = w * x_obs / (w**2 + s_noise**2), s_noise**2 / (w**2 + s_noise**2)


def elbo(q_mu: float, q_var: float) -> float:
    m, lv = torch.tensor([[q_mu]]), torch.tensor([[math.log(q_var)]])
    zq = reparameterize(m.expand(400_000, 1), lv.expand(400_000, 1),
                        generator=torch.Generator().manual_seed(2))  # fmt: skip
    log_lik = -0.5 * ((x_obs - w * zq) ** 2 / s_noise**2 + math.log(2 * math.pi * s_noise**2))
    return float(log_lik.mean() - kl_divergence(m, lv).sum())


print(f"log p(x)                    {log_px:.4f}")
print(f"ELBO, q = exact posterior   {elbo(post_mu, post_var):.4f}")
print(f"ELBO, q mean off by 0.3     {elbo(post_mu + 0.3, post_var):.4f}  "
      f"(gap should be 0.3²/(2·{post_var:.3f}) = {0.09 / (2 * post_var):.4f})")  # fmt: skip

# %% [markdown]
# **Why the VAE interpolates.** The reconstruction term is averaged over z ~ q(z|x), so the
# decoder must map a whole ball around every μ to x; balls of similar observations overlap and
# the decoder learns to blend them. The KL term stops the cheat of shrinking σ to zero (which
# would give back a plain AE) and of pushing codes far apart (μ² costs). Between them they make
# the decoded family continuous over the region the prior covers, which is why we may sample z
# from 𝒩(0, I) or walk between codes. In numbers, from our toy run:

# %%
with torch.no_grad():
    sig = (0.5 * vae.encode(data)[1]).exp()
print("VAE posterior σ per latent dim (median):", np.round(sig.median(dim=0).values.numpy(), 3))
print("spread of the codes μ per dim (std):    ", np.round(z_vae.std(dim=0).numpy(), 3))
print("AE code spread per dim (std, arbitrary scale):", np.round(z_ae.std(dim=0).numpy(), 3))

# %% [markdown]
# A latent dimension whose σ stays ≈ 1 and whose μ stays ≈ 0 carries no information (the KL
# term switched it off: "posterior collapse" of an unneeded dimension). The used dimension has
# σ much smaller than the spread of μ: the ratio is how many distinguishable states along it
# the data support.
#
# ## Sharpen 2 — from reconstructing images to reconstructing 3D (cryoDRGN's move; VAE Q5)
#
# A VAE on particle images that decoded *images* would learn views, defocus and conformation
# all mixed together. cryoDRGN instead makes the decoder output a **3D** object, V̂_z(k) (the
# Fourier transform of the map for latent z, as a coordinate network), and builds the model
# image from physics that is known for every particle:
#
# $$\hat x_{\text{model}}(k_x, k_y) = \mathrm{CTF}(k)\,\hat V_z\big(A^{\mathsf T}(k_x, k_y, 0)\big),
# \qquad -\log p(x|z) = \frac{1}{2\sigma^2}\sum_{k}\big|\hat x(k) - \hat x_{\text{model}}(k)\big|^2
# + \text{const}.$$
#
# The pose A and the CTF come from a consensus refinement; only the central slice at that pose
# is evaluated (Fourier-slice theorem), so the latent is left with what poses and CTF cannot
# explain: the conformation. Below: the 3D Fourier coordinates that three particles' images
# probe (cryoglass.hetero.slice_coordinates). Each image constrains one plane through the
# origin; many views together cover the whole 3D transform.

# %%
points = fourier_points(16)
poses = euler_to_matrix(torch.tensor([[0.0, 0.0, 0.0], [30.0, 60.0, 0.0], [90.0, 90.0, 45.0]]))
coords = slice_coordinates(poses.float(), points.frequency_px)
fig = plt.figure(figsize=(4.5, 4.5))
ax3 = fig.add_subplot(projection="3d")
for c, colour in zip(coords, ("tab:blue", "tab:orange", "tab:green"), strict=True):
    ax3.scatter(c[:, 0], c[:, 1], c[:, 2], s=2, c=colour)
ax3.set_title("Central slices of three particles\n(units of Nyquist)")
through_origin = bool((coords.norm(dim=-1).min(dim=1).values == 0).all())
print(f"{len(points)} Fourier points per 16² image (half-plane inside Nyquist); "
      f"every slice passes through k = 0: {through_origin}")  # fmt: skip

# %% [markdown]
# ## Questions, answered (VAE Q1–Q6)
#
# 1. *Latent space:* a low-dimensional coordinate system for the causes of the observations
#    (Blur 1). Relatives: reaction coordinates, MD principal components, normal-mode
#    amplitudes, 2D/3D class labels.
# 2. *Reparameterisation:* the sampling step z ~ 𝒩(μ, σ²) is rewritten as z = μ + σ ε with
#    ε ~ 𝒩(0, I), so that gradients reach μ and σ (Blur 3).
# 3. *The blog's figures* (autoencoder bottleneck, latent attributes as distributions, the
#    sampling step, the KL-only and reconstruction-only latent spaces, interpolation): our own
#    versions are the AE/VAE scatter (reconstruction-only gives separated, arbitrary codes), the
#    grid of decoded z (holes vs a filled region) and the interpolation plot.
# 4. *Why variational interpolates:* the decoder is trained on balls, not points, and the KL
#    term keeps the balls overlapping around the prior (Sharpen 1, last cell).
# 5. *3D from 2D:* decode a 3D transform, take the central slice at the particle's pose,
#    multiply by its CTF, compare with the image by a Gaussian likelihood (Sharpen 2).
# 6. *A toy VAE in PyTorch:* the `Toy` class above (about 30 lines).

# %%
print(f"lesson ran in {time.perf_counter() - T0:.1f} s")
