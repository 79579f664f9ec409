# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 07 — Coordinate systems and rotations
#
# **Syllabus:** 25 Feb 2021 (Blur) and 4 Mar 2021 (Sharpen): coordinate systems & rotations.
#
# Modules taught: `cryoglass.geometry` (`euler`, `rotations`, `so3_grid`, `symmetry`).
#
# **Questions answered here** (search for the tag):
#
# * **Rotations Blur Q1** — Quine's problems (4.5): rotation matrices, orthogonality, axis and
#   angle, composition → *A rotation in 2D, then 3D*; *Orthogonal matrices*
# * **Rotations Blur Q2** — Slabaugh's pseudo-code: Euler angles from a rotation matrix
#   → *Euler angles from a matrix*
# * **Rotations Sharpen Q1** — all of Quine's problems → *Orthogonal matrices*, *Euler angles
#   and gimbal lock*, *Active or passive?*
# * **Rotations Sharpen Q2** — the quaternion of a 90° clockwise turn about z → *Quaternions*
# * **Rotations Sharpen Q3** — pencil and paper: $(1, 0, 0)$ turned 180° about z with
#   $q\,p\,q^{-1}$ → *Quaternions*
# * **Rotations Sharpen Q4** — how to store rotations and how to apply them to many points
#   efficiently → *Store, apply, search*
# * **Rotations Sharpen Q5** — the derivative $\partial p'/\partial q$, unpacked; when cryo-EM
#   needs it → *Searching over rotations*
#
# And: what "active" and "passive" mean and which one is RELION's; why cryoSPARC, ASPIRE and
# cryojax disagree with RELION and how to convert; how to sample SO(3) uniformly.

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import torch

import cryoglass.geometry as geo

FAST = os.environ.get("CRYOGLASS_FAST") == "1"
gen = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Blur part
#
# ### A rotation in 2D, then 3D
#
# Turning the plane by an angle θ counter-clockwise sends the x axis to (cos θ, sin θ) and the
# y axis to (−sin θ, cos θ).  Those two images are the columns of the matrix
#
# $$R(\theta) = \begin{pmatrix}\cos\theta & -\sin\theta\\ \sin\theta & \cos\theta\end{pmatrix}.$$
#
# (With complex numbers the same thing is multiplication by $e^{i\theta}$.)  In 3D a rotation
# is the same idea about an axis: the axis stays put, the plane perpendicular to it turns.
# `rotation_about_axis(axis, angle_deg)` builds it with the right-hand rule: thumb along the
# axis, fingers curl in the positive direction.

# %%
z_axis = torch.tensor([0.0, 0.0, 1.0])
R = geo.rotation_about_axis(z_axis, 90.0)
print("R_z(+90°) x =", (R @ torch.tensor([1.0, 0.0, 0.0])).round(decimals=12) + 0.0)
print("columns of R are the images of x, y, z:\n", R.round(decimals=12) + 0.0)

# %% [markdown]
# ### Active or passive?
#
# *Active*: the object turns, the axes stay.  A point `v` goes to `R v`.
# *Passive*: the object stays, the axes turn.  The *coordinates* of the same point in the new
# axes are `Rᵀ v` — the inverse.  The two pictures use transposed matrices for the "same"
# angle, which is the most common source of sign errors between programs.
#
# RELION's Euler matrix is built from the passive turn
# $R_z(a) = \begin{pmatrix}\cos a & \sin a & 0\\ -\sin a & \cos a & 0\\ 0&0&1\end{pmatrix}$:

# %%
a = 25.0
A_rot_only = geo.euler_to_matrix(torch.tensor([a, 0.0, 0.0]))
print(
    "RELION Rz(25) equals the ACTIVE rotation by -25°:",
    torch.allclose(A_rot_only, geo.rotation_about_axis(z_axis, -a)),
)

# %% [markdown]
# The matrix ``A = euler_to_matrix(rot, tilt, psi)`` takes coordinates of the **map** to
# coordinates of the **image**: a detector pixel (x, y) at depth z looks at the map point
# ``Aᵀ (x, y, z)``, so the projection is $P(x,y) = \int V(A^{T}(x,y,z))\,dz$.  Read actively,
# ``A`` turns the map into the microscope frame, and we look down z.
#
# A blob map viewed at three poses (projection by summing a rotated volume — a real-space
# projector in five lines, the same one the RELION agreement test uses):

# %%
n = 32 if FAST else 48
c = torch.arange(n) - n // 2
zz, yy, xx = torch.meshgrid(c, c, c, indexing="ij")
volume = torch.zeros(n, n, n)
for (bx, by, bz), s in [((6, -4, 3), 3.0), ((-7, 5, 0), 2.0), ((0, 8, -6), 2.5)]:
    volume += torch.exp(-((xx - bx) ** 2 + (yy - by) ** 2 + (zz - bz) ** 2) / (2 * s * s))


def project(vol: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """P[y, x] = sum_z V(A^T r) with trilinear sampling; origin at N//2."""
    m = vol.shape[-1]
    r = torch.stack([xx, yy, zz], dim=-1).to(vol.dtype)  # (z, y, x, 3) as (x, y, z)
    grid = ((r @ A) + m // 2) * (2.0 / (m - 1)) - 1.0  # r @ A = (A^T r) for row vectors
    out = torch.nn.functional.grid_sample(vol[None, None], grid[None], align_corners=True)
    return out[0, 0].sum(0)


poses = torch.tensor([[0.0, 0.0, 0.0], [0.0, 90.0, 0.0], [30.0, 60.0, 45.0]])
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, pose in zip(axes, poses, strict=True):
    ax.imshow(project(volume, geo.euler_to_matrix(pose)).numpy(), origin="lower", cmap="gray")
    ax.set_title(f"(rot, tilt, psi) = {tuple(pose.tolist())}")
    ax.axis("off")

# %% [markdown]
# ### Euler angles and gimbal lock
#
# RELION (like SPIDER, Heymann et al. 2005) uses three turns about **z, then y, then z**:
# ``A = Rz(psi) Ry(tilt) Rz(rot)``.  rot and tilt place the viewing direction on the sphere
# (longitude and colatitude), psi spins the image in the plane.
#
# When tilt = 0 the first and the last turn are about the same axis: only rot + psi matters.
# One degree of freedom is lost — **gimbal lock**.  Near it, tiny changes of the matrix need
# huge changes of rot and psi, and averaging or interpolating Euler angles goes wrong.

# %%
A1 = geo.euler_to_matrix(torch.tensor([10.0, 0.0, 50.0]))
A2 = geo.euler_to_matrix(torch.tensor([40.0, 0.0, 20.0]))
print("(10, 0, 50) and (40, 0, 20) are the same rotation:", torch.allclose(A1, A2))
print("matrix_to_euler puts everything in psi:", geo.matrix_to_euler(A1))
# The volume element of SO(3) in Euler angles is sin(tilt) d rot d tilt d psi: it vanishes at
# tilt = 0 — the coordinate chart, not the rotation group, is singular there.

# %% [markdown]
# ### Other programs' conventions
#
# | program | stores | relation to RELION's ``A`` |
# |---|---|---|
# | RELION, cryoglass | ZYZ Euler (rot, tilt, psi), degrees | ``A`` itself |
# | cryoSPARC | rotation vector (axis × angle, **radians**) | a matrix from `rotvec_to_matrix`; whether it is ``A`` or ``Aᵀ`` is pinned in `cryoglass.io` |
# | ASPIRE | ZYZ Euler and matrices | its matrix is the **transpose** of RELION's for the same angles |
# | cryojax | ZYZ Euler | angles with opposite signs |
# | deep learning (Zhou et al. 2019) | 6D: two columns of the matrix | `sixd_to_matrix` by Gram–Schmidt |
#
# Rule of thumb: compare *matrices*, never raw angles, and check the conversion with an image
# (project at a pose, compare the picture), as `tests/reference/test_relion_geometry.py` does.
# A transposed matrix gives an image that looks plausible but is wrong:

# %%
pose = torch.tensor([30.0, 40.0, 50.0])
A = geo.euler_to_matrix(pose)
p_right, p_transposed = project(volume, A), project(volume, A.T)
corr = torch.corrcoef(torch.stack([p_right.flatten(), p_transposed.flatten()]))[0, 1]
print(f"correlation of the projections at A and at A^T: {corr:.3f}")

# %% [markdown]
# ## Sharpen part
#
# ### Orthogonal matrices (Quine ch. 4 problems; Rotations Blur Q1, Sharpen Q1)
#
# * A rotation keeps lengths and angles: $R^TR = I$.  Hence $\det R = \pm 1$; rotations have
#   $+1$, reflections $-1$ (a mirror turns a left hand into a right hand — proteins are chiral,
#   so symmetry groups of particles contain only $\det = +1$ elements).
# * The eigenvalues of a 3D rotation are $1, e^{\pm i\theta}$: the eigenvector of 1 is the
#   axis, and $\operatorname{tr} R = 1 + 2\cos\theta$ gives the angle.
# * Rotations do not commute: $R_xR_y \ne R_yR_x$.
# * The product of two rotations is a rotation; the inverse is the transpose.

# %%
Rx = geo.rotation_about_axis(torch.tensor([1.0, 0.0, 0.0]), 90.0)
Ry = geo.rotation_about_axis(torch.tensor([0.0, 1.0, 0.0]), 90.0)
print("Rx Ry == Ry Rx ?", torch.allclose(Rx @ Ry, Ry @ Rx))
R = geo.random_rotations(1, generator=gen)[0]
eigenvalues, eigenvectors = torch.linalg.eig(R)
axis = eigenvectors[:, (eigenvalues - 1).abs().argmin()].real
angle = math.degrees(math.acos((R.trace().item() - 1) / 2))
print("det R =", torch.linalg.det(R).item(), "| |eigenvalues| =", eigenvalues.abs())
print("axis from eigenvector:", axis, " R axis = axis:", torch.allclose(R @ axis, axis))
print(
    f"angle from trace: {angle:.4f}°, from rotvec: "
    f"{math.degrees(geo.matrix_to_rotvec(R).norm().item()):.4f}°"
)

# %% [markdown]
# ### Euler angles from a matrix (Slabaugh's exercise; Rotations Blur Q2)
#
# Slabaugh writes $R = R_z(\phi) R_y(\theta) R_x(\psi)$ (active, x–y–z) and reads the angles
# off the entries: $R_{31} = -\sin\theta$, then $\psi$ from $(R_{32}, R_{33})$ and $\phi$ from
# $(R_{21}, R_{11})$ with `atan2`, plus a special case when $\cos\theta = 0$ (gimbal lock).
# Our own version of that pseudo-code, for that convention:


# %%
def slabaugh_angles(R: torch.Tensor) -> tuple[float, float, float]:
    """(psi, theta, phi) in degrees with R = Rz(phi) Ry(theta) Rx(psi) (active)."""
    if abs(R[2, 0]) < 1 - 1e-12:
        theta = -math.asin(R[2, 0])
        cos_t = math.cos(theta)
        psi = math.atan2(R[2, 1] / cos_t, R[2, 2] / cos_t)
        phi = math.atan2(R[1, 0] / cos_t, R[0, 0] / cos_t)
    else:  # gimbal lock: phi is arbitrary, set it to 0
        phi = 0.0
        if R[2, 0] < 0:
            theta = math.pi / 2
            psi = math.atan2(R[0, 1], R[0, 2])
        else:
            theta = -math.pi / 2
            psi = math.atan2(-R[0, 1], -R[0, 2])
    return math.degrees(psi), math.degrees(theta), math.degrees(phi)


ex, ey, ez = torch.eye(3)
psi, theta, phi = 20.0, -35.0, 110.0
R = (
    geo.rotation_about_axis(ez, phi)
    @ geo.rotation_about_axis(ey, theta)
    @ geo.rotation_about_axis(ex, psi)
)
print("recovered (psi, theta, phi):", [round(v, 3) for v in slabaugh_angles(R)])

# %% [markdown]
# RELION's ZYZ version is `matrix_to_euler`: tilt from $A_{33} = \cos(\text{tilt})$, rot from
# the third row, psi from the third column, and at the poles everything goes into psi.

# %%
euler = torch.tensor([[30.0, 40.0, 50.0], [-120.0, 100.0, 10.0]])
print(geo.matrix_to_euler(geo.euler_to_matrix(euler)))

# %% [markdown]
# ### Quaternions (Rotations Sharpen Q2, Q3)
#
# A unit quaternion $q = (\cos\frac\theta2, \sin\frac\theta2\,\mathbf n)$ stands for the
# rotation by θ about $\mathbf n$; it acts on a point $p = (0, \mathbf r)$ by
# $p' = q\,p\,q^{-1}$ (with $ij = k$, $jk = i$, $ki = j$, $i^2 = j^2 = k^2 = -1$).  $q$ and
# $-q$ give the same rotation (the "double cover"); we choose $w \ge 0$.
#
# **Question (180° about z, pencil and paper).** $q = (0, 0, 0, 1) = k$, $p = i$.
# $q p = k i = j$; $q^{-1} = -k$; $j(-k) = -i$.  So $p' = -i$, i.e. $\mathbf r' = (-1, 0, 0)$. ✓

# %%
q = torch.tensor([0.0, 0.0, 0.0, 1.0])
q_inv = q * torch.tensor([1.0, -1.0, -1.0, -1.0])
p = torch.tensor([0.0, 1.0, 0.0, 0.0])
print("q p q^-1 =", geo.quaternion_multiply(geo.quaternion_multiply(q, p), q_inv))

# %% [markdown]
# **Question (90° clockwise about z).**  Clockwise, seen from +z looking at the origin, is
# −90° by the right-hand rule: $q = (\cos(-45°), 0, 0, \sin(-45°)) = (0.7071, 0, 0, -0.7071)$
# (or its negative).  Checking with the library:

# %%
R_cw = geo.rotation_about_axis(z_axis, -90.0)
print("quaternion:", geo.matrix_to_quaternion(R_cw))
print(
    "x goes to",
    (R_cw @ torch.tensor([1.0, 0.0, 0.0])).round(decimals=12) + 0.0,
    "(clockwise: +x → −y)",
)

# %% [markdown]
# ### Store, apply, search (Rotations Sharpen Q4)
#
# * **Store** compactly and without singularities: a unit quaternion (4 numbers, renormalise
#   to fix drift) or a rotation vector (3 numbers, cryoSPARC).  Euler angles are for humans and
#   for RELION files; a matrix (9 numbers) is redundant.
# * **Apply** to many points: convert *once* to a 3×3 matrix (one matrix product, 9
#   multiply-adds per point) rather than $q p q^{-1}$ per point (two quaternion products, ~30
#   operations); the conversion costs a few dozen operations, paid once.
# * **Compose** many rotations: quaternion products (16 multiplies) beat matrix products (27)
#   and stay easy to renormalise.

# %%
n_points = 200_000 if FAST else 2_000_000
points = torch.randn(n_points, 3, generator=gen)
q = geo.random_quaternions(1, generator=gen)[0]
t0 = time.perf_counter()
rotated_matrix = points @ geo.quaternion_to_matrix(q).T
t_matrix = time.perf_counter() - t0
t0 = time.perf_counter()
p4 = torch.cat([torch.zeros(n_points, 1), points], dim=-1)
conj = q * torch.tensor([1.0, -1.0, -1.0, -1.0])
rotated_quat = geo.quaternion_multiply(geo.quaternion_multiply(q, p4), conj)[:, 1:]
t_quat = time.perf_counter() - t0
print(
    f"{n_points} points: matrix {1e3 * t_matrix:.1f} ms, q p q^-1 {1e3 * t_quat:.1f} ms, "
    f"same result: {torch.allclose(rotated_matrix, rotated_quat, atol=1e-5)}"
)

# %% [markdown]
# ### Searching over rotations: the derivative with respect to q (Rotations Sharpen Q5)
#
# For a unit quaternion $q = (w, \mathbf v)$ the rotated point is
# $$\mathbf p' = q\,\mathbf p\,q^{-1} = (w^2 - \mathbf v\cdot\mathbf v)\,\mathbf p
#   + 2(\mathbf v\cdot\mathbf p)\,\mathbf v + 2w\,\mathbf v\times\mathbf p ,$$
# and differentiating term by term (with $\mathbf v\times\mathbf p = -[\mathbf p]_\times\mathbf v$,
# $[\mathbf p]_\times$ the cross-product matrix) gives the 3 × 4 Jacobian of Wikipedia's formula:
# $$\frac{\partial\mathbf p'}{\partial w} = 2\,(w\,\mathbf p + \mathbf v\times\mathbf p),\qquad
#   \frac{\partial\mathbf p'}{\partial\mathbf v} = 2\,\big((\mathbf v\cdot\mathbf p)\,I
#   + \mathbf v\,\mathbf p^T - \mathbf p\,\mathbf v^T - w\,[\mathbf p]_\times\big).$$
# It tells how a rotated point moves when the quaternion changes.  (The library normalises $q$
# inside `quaternion_to_matrix`, which removes the component along $q$ itself: its Jacobian is
# the one above times $I - qq^T$.)  Checked against autograd:

# %%
q_unit = geo.random_quaternions(1, generator=gen, dtype=torch.float64)[0]
point = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
w, v = q_unit[0], q_unit[1:]
cross = torch.tensor([[0, -point[2], point[1]], [point[2], 0, -point[0]],
                      [-point[1], point[0], 0]], dtype=torch.float64)  # [p]_×
d_w = 2 * (w * point + torch.linalg.cross(v, point))
d_v = 2 * ((v @ point) * torch.eye(3, dtype=torch.float64) + torch.outer(v, point)
           - torch.outer(point, v) - w * cross)
formula = torch.cat([d_w[:, None], d_v], dim=1) @ (torch.eye(4, dtype=torch.float64)
                                                    - torch.outer(q_unit, q_unit))
autograd = torch.autograd.functional.jacobian(lambda q: geo.quaternion_to_matrix(q) @ point, q_unit)
print(f"max |formula − autograd| = {(formula - autograd).abs().max():.1e}")

# %% [markdown]
# In cryo-EM that is what **local pose refinement** by gradient descent needs: minimise an
# image error over the pose of a particle (cryoDRGN's pose refinement, or fitting a model into
# a map), instead of scanning a grid.  With autograd we do not write the formula; we optimise
# an unconstrained 4-vector and normalise it inside the loss:

# %%
target = geo.random_rotations(1, generator=gen)[0]
cloud = torch.randn(50, 3, generator=gen)
observed = cloud @ target.T
q_param = torch.tensor([1.0, 0.0, 0.0, 0.0], requires_grad=True)
optimizer = torch.optim.Adam([q_param], lr=0.05)
for _ in range(150 if FAST else 400):
    optimizer.zero_grad()
    loss = ((cloud @ geo.quaternion_to_matrix(q_param).T - observed) ** 2).mean()
    loss.backward()
    optimizer.step()
fitted = geo.quaternion_to_matrix(q_param.detach())
print(f"error after gradient descent: {geo.geodesic_distance_deg(fitted, target).item():.4f}°")

# %% [markdown]
# Gradient descent finds the *nearest* minimum; for a global search cryo-EM programs first
# scan a grid of orientations (below), then refine locally.
#
# ### Sampling SO(3) uniformly
#
# "Uniform" means the Haar measure: invariant under turning everything by a fixed rotation.
# Picking rot, tilt, psi uniformly is **not** uniform — it over-samples the poles, because the
# volume element is $\sin(\text{tilt})$.  A normalised 4D Gaussian quaternion is uniform
# (Shoemake 1992).  Test: the rotation angle θ of a uniform rotation has density
# $(1-\cos\theta)/\pi$ — small rotations are rare.

# %%
n_samples = 20_000 if FAST else 200_000
eye = torch.eye(3)
uniform = geo.random_rotations(n_samples, generator=gen)
naive = geo.euler_to_matrix(
    torch.rand(n_samples, 3, generator=gen) * torch.tensor([360.0, 180.0, 360.0])
)
theta = torch.linspace(0, 180, 181)
fig, ax = plt.subplots(figsize=(5, 3))
for name, Rs in [("normalised Gaussian quaternion", uniform), ("uniform Euler angles", naive)]:
    ax.hist(
        geo.geodesic_distance_deg(eye, Rs).numpy(), bins=60, density=True, alpha=0.5, label=name
    )
ax.plot(
    theta.numpy(), ((1 - torch.cos(torch.deg2rad(theta))) / 180).numpy(), "k", label="(1 - cos θ)/π"
)
ax.set_xlabel("rotation angle [deg]")
ax.legend(fontsize=7)
print("mean of uniform R (should be ~0):", uniform.mean(0).abs().max().item())

# %% [markdown]
# **Grids.** RELION samples viewing directions with HEALPix (Górski et al. 2005): 12 × 4ᵒʳᵈᵉʳ
# equal-area pixels on the sphere, angular step ≈ 60°/2ᵒʳᵈᵉʳ, and psi in the same step.
# `so3_grid(order)` returns those (rot, tilt, psi) triples.  The number of orientations grows
# like $8\pi^2/\text{step}^3$ — halving the step costs 8×.

# %%
for order in range(5):
    step = geo.angular_step_for_order(order)
    n_grid = geo.so3_grid(order).shape[0] if order <= 3 else 12 * 4**order * math.ceil(360 / step)
    print(
        f"order {order}: step {step:6.3f}°, directions {12 * 4**order:6d}, "
        f"orientations {n_grid:9d}, 8π²/step³ ≈ {8 * math.pi**2 / math.radians(step) ** 3:9.0f}"
    )

directions = geo.healpix_directions(2)
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.scatter(directions[:, 0].numpy(), directions[:, 1].numpy(), s=6)
ax.invert_yaxis()
ax.set_xlabel("rot [deg]")
ax.set_ylabel("tilt [deg]")
ax.set_title("HEALPix order 2: 192 directions (equal area, not equal spacing in angles)")

# %% [markdown]
# ### Symmetry and its Euler angles
#
# A map with point-group symmetry $G$ satisfies $V(Lx) = V(x)$ for all $L \in G$.  Then the
# poses $A$ and $AL$ give the same projection, because
# $V((AL)^Tx) = V(L^TA^Tx) = V(A^Tx)$.  `expand_poses` lists the $|G|$ equivalent poses per
# particle exactly as `relion_particle_symmetry_expand` (checked against RELION), and
# `symmetry_matrices` uses RELION's axes (Cn about z, Dn's 2-fold along x, I2 as default I).

# %%
for group in ["C4", "D7", "T", "O", "I"]:
    G = geo.symmetry_matrices(group)
    closed = (G[:, None] @ G[None]).reshape(-1, 1, 3, 3).sub(G).abs().amax((-1, -2)).amin(-1)
    print(f"{group}: {len(G)} elements, closed under products: {bool(closed.max() < 1e-9)}")
print(
    "C3-equivalent poses of (30, 40, 50):\n",
    geo.expand_poses(torch.tensor([30.0, 40.0, 50.0]), "C3"),
)

# %% [markdown]
# ### Averaging rotations
#
# Averaging Euler angles is meaningless (think of psi = 179° and −179°).  The chordal mean
# minimises $\sum_i \|R - R_i\|_F^2$; with quaternions it is the top eigenvector of
# $\sum_i q_iq_i^T$ (Markley et al. 2007), sign-free.

# %%
center = geo.random_rotations(1, generator=gen)[0]
noisy = center @ geo.rotvec_to_matrix(0.1 * torch.randn(100, 3, generator=gen))
mean = geo.average_rotations(noisy)
print(
    f"mean is {geo.geodesic_distance_deg(mean, center).item():.3f}° from the truth; "
    f"single samples {geo.geodesic_distance_deg(noisy, center).mean().item():.3f}° on average"
)
