r"""Random particle parameters for simulated datasets: orientations, defocus, shifts, B, ice.

Every sampler takes a ``torch.Generator`` (``generator=``) and nothing else random, so a
dataset is reproducible from one seed.  Parameters are drawn on the CPU in float64 (the
generator's device decides where numbers are drawn); the same seed gives the same poses on any
machine, whatever device the images are computed on.

Viewing direction
-----------------
For a RELION pose ``A = Rz(psi) Ry(tilt) Rz(rot)`` the microscope looks along the image ``z``
axis; in the map's frame that axis is

.. math:: \mathbf d = A^{\mathsf T} \mathbf e_z = \text{the third row of } A
          = (\sin\theta\cos\varphi,\ \sin\theta\sin\varphi,\ \cos\theta),

with ``θ`` = tilt and ``φ`` = rot.  So rot and tilt are the azimuth and polar angle of the
*projection direction* ``d`` (the map direction that is integrated over), and psi is the
in-plane rotation of the image.  A "top view" of a particle whose symmetry axis is the map's
``z`` axis has ``d = ±e_z`` (tilt 0 or 180°); a "side view" has ``d`` on the equator (tilt 90°).
The orientation samplers below draw ``d`` on the sphere and psi uniformly in [−180°, 180°).

References
----------
Wood, A. T. A. (1994). Simulation of the von Mises Fisher distribution. Commun. Stat. Simul.
Comput. 23, 157-164. https://doi.org/10.1080/03610919408813161

Fisher, R. A. (1953). Dispersion on a sphere. Proc. R. Soc. Lond. A 217, 295-305.
https://doi.org/10.1098/rspa.1953.0064
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from cryoglass.geometry.euler import matrix_to_euler
from cryoglass.geometry.rotations import random_rotations

__all__ = [
    "ResampledViews",
    "TopSideViews",
    "TopUniformViews",
    "UniformViews",
    "VonMisesFisherViews",
    "direction_to_euler",
    "gaussian_random_field",
    "random_bfactors",
    "random_defocus",
    "random_shifts",
    "resample_orientations",
    "top_side_orientations",
    "top_uniform_orientations",
    "uniform_orientations",
    "viewing_direction",
    "vmf_directions",
    "vmf_orientations",
]

_F64 = torch.float64


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` float64 numbers uniform in [low, high)."""
    return low + (high - low) * torch.rand(n, generator=generator, dtype=_F64)


# ----------------------------------------------------------------------------- directions


def viewing_direction(euler_deg: torch.Tensor) -> torch.Tensor:
    """The projection direction ``d = Aᵀ e_z`` (the third row of ``A``) of RELION poses.

    Parameters
    ----------
    euler_deg : Tensor, shape (..., 3)
        RELION (rot, tilt, psi) [degrees].

    Returns
    -------
    Tensor, shape (..., 3)
        Unit vectors (x, y, z) in the map's frame: ``(sin θ cos φ, sin θ sin φ, cos θ)``.
    """
    rot = torch.deg2rad(euler_deg[..., 0])
    tilt = torch.deg2rad(euler_deg[..., 1])
    return torch.stack(
        (torch.sin(tilt) * torch.cos(rot), torch.sin(tilt) * torch.sin(rot), torch.cos(tilt)),
        dim=-1,
    )


def direction_to_euler(direction: torch.Tensor, psi_deg: torch.Tensor) -> torch.Tensor:
    """RELION Euler angles whose projection direction is ``direction`` (inverse of the above).

    Parameters
    ----------
    direction : Tensor, shape (..., 3)
        Projection directions (x, y, z) in the map's frame; normalised here.
    psi_deg : Tensor, shape (...)
        In-plane angle [degrees].

    Returns
    -------
    Tensor, shape (..., 3)
        (rot, tilt, psi) [degrees] with rot = atan2(y, x), tilt = acos(z).
    """
    d = direction / direction.norm(dim=-1, keepdim=True)
    rot = torch.rad2deg(torch.atan2(d[..., 1], d[..., 0]))
    tilt = torch.rad2deg(torch.acos(d[..., 2].clamp(-1.0, 1.0)))
    return torch.stack((rot, tilt, psi_deg.to(rot.dtype)), dim=-1)


def _orthonormal_basis(mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors orthogonal to the unit vector ``mean`` and to each other."""
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=mean.dtype)
    if abs(float(mean[0])) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=mean.dtype)
    e1 = helper - (helper @ mean) * mean
    e1 = e1 / e1.norm()
    return e1, torch.linalg.cross(mean, e1)


def vmf_directions(
    n: int,
    *,
    mean_direction: torch.Tensor | tuple[float, float, float],
    kappa: float,
    generator: torch.Generator,
) -> torch.Tensor:
    r"""Unit vectors from the von Mises–Fisher distribution on the sphere S².

    Parameters
    ----------
    n : int
        Number of samples.
    mean_direction : Tensor or tuple, shape (3,)
        Mean direction μ (x, y, z); normalised here.
    kappa : float
        Concentration κ ≥ 0 (0: uniform on the sphere; large: tightly around μ, angular spread
        ≈ 1/√κ radians).
    generator : torch.Generator
        Source of randomness (CPU).

    Returns
    -------
    Tensor, float64, shape (n, 3)

    Notes
    -----
    Density ``f(d) ∝ exp(κ μ·d)``.  Wood's (1994) construction: draw ``w = μ·d`` from its
    marginal, then a uniform direction in the plane orthogonal to μ.  On S² the marginal of
    ``w`` has density ``∝ exp(κw)`` on [−1, 1], whose inverse CDF is closed-form,

    .. math:: w = 1 + \frac{1}{\kappa}\log\!\big(u + (1 - u)\,e^{-2\kappa}\big),
              \quad u \sim U(0, 1],

    so Wood's rejection step is not needed in three dimensions.  Then
    ``d = w μ + √(1 − w²)(cos β e₁ + sin β e₂)``, β uniform.  The mean resultant length is
    ``E[μ·d] = coth κ − 1/κ``.

    References
    ----------
    Wood (1994), https://doi.org/10.1080/03610919408813161
    """
    if kappa < 0 or not math.isfinite(kappa):
        raise ValueError(f"kappa must be a finite number >= 0, got {kappa}")
    mean = torch.as_tensor(mean_direction, dtype=_F64).reshape(3)
    norm = float(mean.norm())
    if norm == 0:
        raise ValueError("mean_direction must be a non-zero vector (x, y, z)")
    mean = mean / norm
    u = 1.0 - torch.rand(n, generator=generator, dtype=_F64)  # (0, 1]
    beta = _uniform(n, 0.0, 2 * math.pi, generator)
    if kappa == 0:
        w = 2 * u - 1
    else:
        w = 1 + torch.log(u + (1 - u) * math.exp(-2 * kappa)) / kappa
    w = w.clamp(-1.0, 1.0)
    e1, e2 = _orthonormal_basis(mean)
    radial = torch.sqrt((1 - w * w).clamp_min(0.0))
    return (
        w[:, None] * mean
        + (radial * torch.cos(beta))[:, None] * e1
        + (radial * torch.sin(beta))[:, None] * e2
    )


# ----------------------------------------------------------------------------- orientations


def uniform_orientations(n: int, *, generator: torch.Generator) -> torch.Tensor:
    """``n`` poses uniform on SO(3), as RELION Euler angles.

    Parameters
    ----------
    n : int
    generator : torch.Generator

    Returns
    -------
    Tensor, float64, shape (n, 3)
        (rot, tilt, psi) [degrees] of ``matrix_to_euler(random_rotations(n))`` (Haar measure:
        projection directions uniform on the sphere, psi uniform).
    """
    rotations = random_rotations(n, generator=generator, dtype=_F64)
    return matrix_to_euler(rotations)


def vmf_orientations(
    n: int,
    *,
    kappa: float,
    generator: torch.Generator,
    mean_direction: torch.Tensor | tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> torch.Tensor:
    """Poses whose projection directions follow a von Mises–Fisher law; psi uniform.

    Parameters
    ----------
    n : int
    kappa : float
        Concentration (see :func:`vmf_directions`).
    generator : torch.Generator
    mean_direction : (3,)
        Mean projection direction ``Aᵀ e_z`` in the map frame (default +z: top views).

    Returns
    -------
    Tensor, float64, shape (n, 3)
        RELION (rot, tilt, psi) [degrees].
    """
    directions = vmf_directions(n, mean_direction=mean_direction, kappa=kappa, generator=generator)
    psi = _uniform(n, -180.0, 180.0, generator)
    return direction_to_euler(directions, psi)


def top_side_orientations(
    n: int, *, top_fraction: float, generator: torch.Generator, jitter_deg: float = 5.0
) -> torch.Tensor:
    """A mixture of top views (along the map's z axis) and side views (around the equator).

    Parameters
    ----------
    n : int
    top_fraction : float
        Probability in [0, 1] that a particle is a top view.
    generator : torch.Generator
    jitter_deg : float
        Spread [degrees] of the tilt around its nominal value.

    Returns
    -------
    Tensor, float64, shape (n, 3)
        RELION (rot, tilt, psi) [degrees].

    Notes
    -----
    Top view: tilt = |𝒩(0, jitter)| (projection direction near +z).  Side view:
    tilt = 90° + 𝒩(0, jitter) (direction near the equator).  rot (the azimuth of the direction)
    and psi are uniform in [−180°, 180°) for both.
    """
    if not 0.0 <= top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in [0, 1], got {top_fraction}")
    if jitter_deg < 0:
        raise ValueError(f"jitter_deg must be >= 0, got {jitter_deg}")
    is_top = torch.rand(n, generator=generator, dtype=_F64) < top_fraction
    jitter = jitter_deg * torch.randn(n, generator=generator, dtype=_F64)
    tilt = torch.where(is_top, jitter.abs(), 90.0 + jitter).clamp(0.0, 180.0)
    rot = _uniform(n, -180.0, 180.0, generator)
    psi = _uniform(n, -180.0, 180.0, generator)
    return torch.stack((rot, tilt, psi), dim=-1)


def top_uniform_orientations(
    n: int, *, top_fraction: float, generator: torch.Generator, jitter_deg: float = 5.0
) -> torch.Tensor:
    """Top-view-dominated data: top views (near the map's z axis), the rest uniform on SO(3).

    The usual shape of a preferred-orientation problem (a particle lying flat on the air-water
    interface, plus a minority of random views): with ``top_fraction = 0.85`` and the default
    jitter, 85 % of the particles lie within ~12° of tilt 0.

    Parameters
    ----------
    n : int
    top_fraction : float
        Probability in [0, 1] that a particle is a top view.
    generator : torch.Generator
    jitter_deg : float
        Top views: tilt = |𝒩(0, jitter_deg)| (98 % within 12° for 5°).

    Returns
    -------
    Tensor, float64, shape (n, 3)
        RELION (rot, tilt, psi) [degrees]; rot and psi uniform for the top views.
    """
    if not 0.0 <= top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in [0, 1], got {top_fraction}")
    if jitter_deg < 0:
        raise ValueError(f"jitter_deg must be >= 0, got {jitter_deg}")
    is_top = torch.rand(n, generator=generator, dtype=_F64) < top_fraction
    tilt = (jitter_deg * torch.randn(n, generator=generator, dtype=_F64)).abs().clamp(max=180.0)
    rot = _uniform(n, -180.0, 180.0, generator)
    psi = _uniform(n, -180.0, 180.0, generator)
    top = torch.stack((rot, tilt, psi), dim=-1)
    return torch.where(is_top[:, None], top, uniform_orientations(n, generator=generator))


def resample_orientations(
    euler_deg: torch.Tensor, n: int, *, generator: torch.Generator
) -> torch.Tensor:
    """``n`` poses drawn with replacement from given ones (e.g. a STAR file's angles).

    Parameters
    ----------
    euler_deg : Tensor, shape (M, 3)
        RELION (rot, tilt, psi) [degrees], M ≥ 1.
    n : int
    generator : torch.Generator

    Returns
    -------
    Tensor, float64, shape (n, 3)
    """
    euler = torch.as_tensor(euler_deg, dtype=_F64)
    if euler.ndim != 2 or euler.shape[1] != 3 or euler.shape[0] == 0:
        raise ValueError(f"euler_deg must have shape (M >= 1, 3), got {tuple(euler.shape)}")
    index = torch.randint(euler.shape[0], (n,), generator=generator)
    return euler[index]


@dataclass(frozen=True)
class UniformViews:
    """Orientations uniform on SO(3) (see :func:`uniform_orientations`)."""

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """(n, 3) RELION Euler angles [degrees]."""
        return uniform_orientations(n, generator=generator)


@dataclass(frozen=True)
class VonMisesFisherViews:
    """Directions ~ vMF(mean_direction, kappa), psi uniform (:func:`vmf_orientations`)."""

    kappa: float
    mean_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """(n, 3) RELION Euler angles [degrees]."""
        return vmf_orientations(
            n, kappa=self.kappa, mean_direction=self.mean_direction, generator=generator
        )


@dataclass(frozen=True)
class TopSideViews:
    """Top/side mixture (:func:`top_side_orientations`)."""

    top_fraction: float
    jitter_deg: float = 5.0

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """(n, 3) RELION Euler angles [degrees]."""
        return top_side_orientations(
            n, top_fraction=self.top_fraction, jitter_deg=self.jitter_deg, generator=generator
        )


@dataclass(frozen=True)
class TopUniformViews:
    """Top views plus uniform views (:func:`top_uniform_orientations`)."""

    top_fraction: float
    jitter_deg: float = 5.0

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """(n, 3) RELION Euler angles [degrees]."""
        return top_uniform_orientations(
            n, top_fraction=self.top_fraction, jitter_deg=self.jitter_deg, generator=generator
        )


@dataclass(frozen=True, eq=False)
class ResampledViews:
    """Poses resampled with replacement from a table (:func:`resample_orientations`)."""

    euler_deg: torch.Tensor = field(repr=False)

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        """(n, 3) RELION Euler angles [degrees]."""
        return resample_orientations(self.euler_deg, n, generator=generator)


# ----------------------------------------------------------------------------- CTF, shifts, B


def random_defocus(
    n: int,
    *,
    defocus_min_um: float,
    defocus_max_um: float,
    generator: torch.Generator,
    astigmatism_angstrom: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Defocus uniform in a range, with random astigmatism.

    Parameters
    ----------
    n : int
    defocus_min_um, defocus_max_um : float
        Range of the mean defocus [µm] (positive = underfocus), ``0 ≤ min ≤ max``.
    generator : torch.Generator
    astigmatism_angstrom : float
        Maximum ``ΔU − ΔV`` [Å]; each particle gets ``ΔU − ΔV`` uniform in [0, this].

    Returns
    -------
    defocus_u_angstrom, defocus_v_angstrom, astigmatism_angle_deg : Tensor, float64, (n,)
        ``ΔU = Δ + a/2``, ``ΔV = Δ − a/2`` with Δ uniform in [min, max]·10⁴ Å; the angle is
        uniform in [0°, 180°).
    """
    if not 0.0 <= defocus_min_um <= defocus_max_um:
        raise ValueError(
            f"need 0 <= defocus_min_um <= defocus_max_um, got {defocus_min_um}, {defocus_max_um}"
        )
    if astigmatism_angstrom < 0:
        raise ValueError(f"astigmatism_angstrom must be >= 0, got {astigmatism_angstrom}")
    mean = _uniform(n, defocus_min_um * 1e4, defocus_max_um * 1e4, generator)
    spread = _uniform(n, 0.0, astigmatism_angstrom, generator)
    angle = _uniform(n, 0.0, 180.0, generator)
    return mean + spread / 2, mean - spread / 2, angle


def random_shifts(
    n: int, *, scale_angstrom: float, generator: torch.Generator, kind: str = "gaussian"
) -> torch.Tensor:
    """In-plane shifts (RELION origins) [Å].

    Parameters
    ----------
    n : int
    scale_angstrom : float
        ``"gaussian"``: standard deviation per axis; ``"uniform"``: half-width per axis [Å].
    generator : torch.Generator
    kind : {"gaussian", "uniform"}

    Returns
    -------
    Tensor, float64, shape (n, 2)
        ``(o_x, o_y)`` [Å] with RELION's ``rlnOriginX/YAngst`` meaning.
    """
    if scale_angstrom < 0:
        raise ValueError(f"scale_angstrom must be >= 0, got {scale_angstrom}")
    if kind == "gaussian":
        return scale_angstrom * torch.randn(n, 2, generator=generator, dtype=_F64) + 0.0
    if kind == "uniform":
        return scale_angstrom * (2 * torch.rand(n, 2, generator=generator, dtype=_F64) - 1) + 0.0
    raise ValueError(f"kind must be 'gaussian' or 'uniform', got {kind!r}")


def random_bfactors(
    n: int, *, bfactor_min_a2: float, bfactor_max_a2: float, generator: torch.Generator
) -> torch.Tensor:
    """Per-particle B-factors uniform in [min, max] [Å²] (the CTF envelope ``exp(−B k²/4)``)."""
    if bfactor_min_a2 > bfactor_max_a2:
        raise ValueError(
            f"need bfactor_min_a2 <= bfactor_max_a2, got {bfactor_min_a2}, {bfactor_max_a2}"
        )
    return _uniform(n, bfactor_min_a2, bfactor_max_a2, generator)


# ----------------------------------------------------------------------------- ice background


def gaussian_random_field(
    n: int,
    *,
    box: int,
    pixel_size_angstrom: float,
    correlation_length_angstrom: float,
    std: float,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Smooth zero-mean Gaussian random fields, an "ice-thickness"-like background.

    Parameters
    ----------
    n : int
        Number of images.
    box : int
        Image size [pixels].
    pixel_size_angstrom : float
    correlation_length_angstrom : float
        ℓ [Å]: the field is white noise blurred by a Gaussian of standard deviation ℓ.
    std : float
        Standard deviation of the field (expected, over pixels) [image units].
    generator : torch.Generator
        On ``device`` (or CPU).
    device, dtype : optional

    Returns
    -------
    Tensor, shape (n, box, box)

    Notes
    -----
    ``g = F⁻¹[H · F[w]]`` with ``w`` unit white noise and ``H(k) = exp(−2π²ℓ²|k|²)`` (the
    transform of a Gaussian kernel of width ℓ).  For a DFT of size N², Var g = mean_k |H(k)|², so
    the field is divided by ``√(mean |H|²)`` and multiplied by ``std``.  Thickness variations of
    the ice change the projected potential slowly across an image; this is a simple stand-in,
    added to the projected potential *before* the CTF (so it is modulated like the particle).
    """
    if correlation_length_angstrom <= 0 or std < 0:
        raise ValueError(
            "correlation_length_angstrom must be > 0 and std >= 0, got "
            f"{correlation_length_angstrom}, {std}"
        )
    white = torch.randn(n, box, box, generator=generator, device=device, dtype=dtype)
    ky = torch.fft.fftfreq(box, d=pixel_size_angstrom, device=white.device, dtype=dtype)
    kx = torch.fft.rfftfreq(box, d=pixel_size_angstrom, device=white.device, dtype=dtype)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    h = torch.exp(-2 * math.pi**2 * correlation_length_angstrom**2 * k2)
    full = torch.exp(-2 * math.pi**2 * correlation_length_angstrom**2 * (ky[:, None] ** 2 + ky**2))
    scale = std / float(torch.sqrt((full**2).mean()))
    field_ = torch.fft.irfft2(torch.fft.rfft2(white) * h, s=(box, box))
    return scale * field_
