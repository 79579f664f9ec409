r"""Streaming generation of simulated particle datasets, reproducible for a seed.

A dataset of ``n`` particles is cut into fixed *blocks* of :data:`BLOCK_SIZE` particles.
Block ``j`` owns three random streams, each a ``torch.Generator`` seeded with a hash of
``(seed, j, stream)``: the particle parameters (pose, shift, CTF, B, half set), the
background and the noise.  A block's content therefore depends only on ``(seed, j)`` — not on
how many particles are asked for, nor on how they are grouped into the chunks the generator
yields.  Chunks of any size are cut from blocks (the last block is cached, so streaming costs
no extra work), which makes ``chunk_size=100`` and ``chunk_size=1000`` give identical images.
Parameters are drawn on the CPU in float64 (identical on every machine); noise is drawn on the
computing device (CPU and CUDA noise differ, the parameters do not).

Image formation (``--volume`` path)
-----------------------------------
For particle ``i`` with RELION pose ``A_i``, origin ``o_i`` and CTF ``C_i``:

.. math:: s_i = \mathcal F^{-1}\big[C_i \cdot e^{2\pi i k\cdot o_i}\,
          \hat V(A_i^{\mathsf T}k)\big] \;(+\; C_i \circledast b_i), \qquad
          y_i = s_i + n_i,

the projection of :func:`cryoglass.projection.project` (as ``relion_project --ctf``), an optional
smooth background ``b_i`` (:func:`~cryoglass.simulate.distributions.gaussian_random_field`,
added before the CTF) and noise ``n_i``:

* ``snr``: white Gaussian noise whose σ is fixed once per dataset from the clean images of
  block 0 with the SNR definition of :mod:`cryoglass.simulate.noise` (variance inside a centred
  disc of the particle's diameter over the noise variance);
* ``dose_e_per_a2``: the map is read as a Coulomb potential in volts (as
  :func:`cryoglass.simulate.potential.potential_map` makes), ``p · s`` is the CTF-filtered
  projected potential in V·Å (``p`` the pixel size), and the weak-phase intensity of
  :mod:`cryoglass.simulate.image` is ``1 + c`` with ``c = −2 σ_e p s / √(1 − Q0²)``
  (underfocused protein dark).  Electrons are counted
  (:func:`~cryoglass.simulate.noise.add_shot_noise`) and the measured contrast ``ĉ`` is
  rescaled back to map units, ``y = −ĉ √(1 − Q0²) / (2 σ_e p)``: protein white as in RELION,
  and ``y`` in the same units as with ``snr`` (so ``relion_reconstruct`` returns the map's
  scale).

Image formation with ``multislice_thickness_angstrom`` (multislice path)
------------------------------------------------------------------------
The map is read as a Coulomb potential in volts.  Each particle's map is rotated to its pose in
real space, ``V_i(x) = V(A_iᵀ x)`` (trilinear, as
:func:`cryoglass.projection.project_real_space`), and the wave is propagated through it along
+z by :func:`cryoglass.simulate.multislice.multislice_image` (slices of the given thickness,
2/3-Nyquist band limit, lens phase ``χ₀`` with the particle's defocus, astigmatism, Cs, phase
shift and its B-factor as the wave envelope ``exp(−Bk²/4)``).  **Defocus is measured from the
particle's centre plane** ``z = 0`` (voxel ``N//2`` of the rotated map, the rotation centre):
the plane where the projection path puts the whole particle, so both paths share one focus.
The intensity ``I_i`` (vacuum 1) is turned into the projection path's units,

.. math:: s_i = \frac{1 - I_i}{2\sigma_e p / \sqrt{1 - Q_0^2}},

the inverse of the dose path's contrast above (protein white; for a thin weak specimen
``s_i`` equals the projection path's ``CTF · projection``), then moved to its origin
(``s_i(r) ← s_i(r + o_i)``, a Fourier shift by ``−o_i``).  Background and noise follow exactly
as above (the ``snr`` σ is calibrated on block 0's multislice images).  The CTF ``scale`` field
is not applied (the dataset always draws 1).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.fourier.grids import coordinate_grid
from cryoglass.fourier.shift import shift_image
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.interpolate.grid import interpolate_grid
from cryoglass.projection.fourier_slice import VolumeFourier, prepare_volume_fourier
from cryoglass.projection.project import project_prepared
from cryoglass.simulate.distributions import (
    ResampledViews,
    TopSideViews,
    UniformViews,
    VonMisesFisherViews,
    gaussian_random_field,
    random_bfactors,
    random_defocus,
    random_shifts,
)
from cryoglass.simulate.image import (
    fft_frequencies,
    interaction_constant_rad_per_volt_angstrom,
)
from cryoglass.simulate.multislice import multislice_image
from cryoglass.simulate.noise import (
    add_gaussian_noise,
    add_shot_noise,
    circular_mask,
    noise_std_for_snr,
)

__all__ = [
    "BLOCK_SIZE",
    "IceBackground",
    "ParticleDistributions",
    "ParticleParameters",
    "SimulatedChunk",
    "block_generator",
    "calibrate_noise_std",
    "dataset_parameters",
    "multislice_particle_images",
    "rotate_map",
    "particle_diameter_angstrom",
    "sample_parameters",
    "simulate_dataset",
]

#: Particles per internal block: the unit of the seeding scheme (changing it changes datasets).
BLOCK_SIZE = 256
_PARAMETERS, _NOISE, _BACKGROUND = 0, 1, 2
_F64 = torch.float64

Views = UniformViews | VonMisesFisherViews | TopSideViews | ResampledViews


@dataclass(frozen=True)
class ParticleDistributions:
    """How particle parameters are drawn (all lengths in Å unless the name says µm).

    Attributes
    ----------
    views : UniformViews, VonMisesFisherViews, TopSideViews or ResampledViews
        Orientation distribution (:mod:`cryoglass.simulate.distributions`).
    defocus_min_um, defocus_max_um : float
        Mean defocus uniform in this range [µm] (positive = underfocus).
    astigmatism_angstrom : float
        ``ΔU − ΔV`` uniform in [0, this] [Å], at a uniform random angle.
    shift_kind : {"gaussian", "uniform"}
    shift_scale_angstrom : float
        σ (gaussian) or half-width (uniform) of the in-plane origins, per axis [Å].
    bfactor_min_a2, bfactor_max_a2 : float
        Per-particle CTF B-factor uniform in this range [Å²].
    voltage_kv, cs_mm, amplitude_contrast, phase_shift_deg : float
        Microscope constants, the same for every particle (one optics group).
    """

    views: Views = field(default_factory=UniformViews)
    defocus_min_um: float = 1.0
    defocus_max_um: float = 2.5
    astigmatism_angstrom: float = 0.0
    shift_kind: str = "gaussian"
    shift_scale_angstrom: float = 0.0
    bfactor_min_a2: float = 0.0
    bfactor_max_a2: float = 0.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    phase_shift_deg: float = 0.0


@dataclass(frozen=True, eq=False)
class ParticleParameters:
    """Drawn parameters of a batch of particles (float64, CPU).

    Attributes
    ----------
    euler_deg : Tensor (B, 3)
        RELION (rot, tilt, psi) [degrees].
    shift_angstrom : Tensor (B, 2)
        RELION origins (rlnOriginX/YAngst) [Å].
    ctf : CTFParams
        Fields of shape (B,).
    random_subset : Tensor (B,), int64
        RELION half set, 1 or 2 (rlnRandomSubset).
    """

    euler_deg: torch.Tensor
    shift_angstrom: torch.Tensor
    ctf: CTFParams
    random_subset: torch.Tensor

    def __len__(self) -> int:
        return int(self.euler_deg.shape[0])

    def __getitem__(self, index: slice) -> ParticleParameters:
        """The particles at ``index`` (a slice or index tensor)."""
        return ParticleParameters(
            self.euler_deg[index],
            self.shift_angstrom[index],
            self.ctf[index],
            self.random_subset[index],
        )

    @staticmethod
    def concatenate(parts: list[ParticleParameters]) -> ParticleParameters:
        """Join batches in order."""
        ctf_fields = {
            name: torch.cat([torch.as_tensor(getattr(p.ctf, name)) for p in parts])
            for name in parts[0].ctf.__dataclass_fields__
        }
        return ParticleParameters(
            torch.cat([p.euler_deg for p in parts]),
            torch.cat([p.shift_angstrom for p in parts]),
            replace(parts[0].ctf, **ctf_fields),
            torch.cat([p.random_subset for p in parts]),
        )


@dataclass(frozen=True, eq=False)
class SimulatedChunk:
    """One chunk of a simulated dataset: particles ``start … start + len(images) − 1``.

    Attributes
    ----------
    start : int
        Index of the first particle of the chunk in the dataset.
    images : Tensor (B, N, N), float32
        Noisy images (on the computing device).
    parameters : ParticleParameters
        Their parameters (float64, CPU).
    clean : Tensor (B, N, N) or None
        The noise-free images (with ``keep_clean=True``).
    """

    start: int
    images: torch.Tensor
    parameters: ParticleParameters
    clean: torch.Tensor | None = None


@dataclass(frozen=True)
class IceBackground:
    """Optional smooth background added to the projected potential before the CTF.

    Attributes
    ----------
    std : float
        Standard deviation [map units × voxels, as the projections].
    correlation_length_angstrom : float
        Width ℓ of the Gaussian blur of white noise [Å]
        (:func:`~cryoglass.simulate.distributions.gaussian_random_field`).
    """

    std: float
    correlation_length_angstrom: float = 50.0


def block_generator(seed: int, block: int, stream: int, *, device=None) -> torch.Generator:
    """The generator of random ``stream`` (0 parameters, 1 noise, 2 background) of a block.

    Seeded with the first 63 bits of BLAKE2b(seed, block, stream): independent streams for
    every block, the same for a given ``(seed, block, stream)`` on every run.
    """
    digest = hashlib.blake2b(f"cryoglass:{seed}:{block}:{stream}".encode(), digest_size=8)
    value = int.from_bytes(digest.digest(), "little") & ((1 << 63) - 1)
    return torch.Generator(device=device or "cpu").manual_seed(value)


def sample_parameters(
    distributions: ParticleDistributions, n: int, *, generator: torch.Generator
) -> ParticleParameters:
    """Draw ``n`` particles' pose, origin, CTF and half set (float64, CPU).

    Parameters
    ----------
    distributions : ParticleDistributions
    n : int
    generator : torch.Generator
        CPU generator; drawn in a fixed order (views, defocus, shifts, B, half set).

    Returns
    -------
    ParticleParameters
    """
    d = distributions
    euler = d.views.sample(n, generator=generator)
    defocus_u, defocus_v, angle = random_defocus(
        n,
        defocus_min_um=d.defocus_min_um,
        defocus_max_um=d.defocus_max_um,
        astigmatism_angstrom=d.astigmatism_angstrom,
        generator=generator,
    )
    shifts = random_shifts(
        n, scale_angstrom=d.shift_scale_angstrom, kind=d.shift_kind, generator=generator
    )
    bfactor = random_bfactors(
        n, bfactor_min_a2=d.bfactor_min_a2, bfactor_max_a2=d.bfactor_max_a2, generator=generator
    )
    subset = torch.randint(1, 3, (n,), generator=generator)

    def constant(value: float) -> torch.Tensor:
        return torch.full((n,), float(value), dtype=_F64)

    ctf = CTFParams(
        defocus_u_angstrom=defocus_u,
        defocus_v_angstrom=defocus_v,
        astigmatism_angle_deg=angle,
        voltage_kv=constant(d.voltage_kv),
        cs_mm=constant(d.cs_mm),
        amplitude_contrast=constant(d.amplitude_contrast),
        phase_shift_deg=constant(d.phase_shift_deg),
        bfactor_a2=bfactor,
        scale=constant(1.0),
    )
    return ParticleParameters(euler, shifts, ctf, subset)


def _block_parameters(distributions: ParticleDistributions, seed: int, block: int):
    return sample_parameters(
        distributions, BLOCK_SIZE, generator=block_generator(seed, block, _PARAMETERS)
    )


def dataset_parameters(
    distributions: ParticleDistributions, *, n: int, seed: int
) -> ParticleParameters:
    """The parameters of particles ``0 … n−1`` of the dataset ``(distributions, seed)``.

    The same numbers :func:`simulate_dataset` uses, without making images (cheap).
    """
    blocks = [_block_parameters(distributions, seed, j) for j in range(math.ceil(n / BLOCK_SIZE))]
    return ParticleParameters.concatenate(blocks)[:n]


def particle_diameter_angstrom(
    volume: torch.Tensor, *, pixel_size_angstrom: float, threshold_fraction: float = 0.05
) -> float:
    """Diameter of the smallest centred sphere holding every voxel above a threshold.

    Parameters
    ----------
    volume : Tensor (N, N, N)
        Map, origin at index N//2.
    pixel_size_angstrom : float
    threshold_fraction : float
        Voxels above ``threshold_fraction · max(volume)`` count as particle.

    Returns
    -------
    float
        ``2 · (max radius of those voxels + 1 voxel)`` [Å].
    """
    n = volume.shape[-1]
    axis = torch.arange(n, dtype=torch.float32, device=volume.device) - n // 2
    r2 = axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2
    inside = volume > threshold_fraction * volume.max()
    if not bool(inside.any()):
        raise ValueError("the map has no positive density: cannot find the particle")
    return 2 * (float(r2[inside].max().sqrt()) + 1.0) * pixel_size_angstrom


def _clean_images(
    prepared: VolumeFourier,
    parameters: ParticleParameters,
    *,
    pixel_size_angstrom: float,
    background: IceBackground | None,
    background_generator: torch.Generator | None,
) -> torch.Tensor:
    """Noise-free CTF-modulated images of a batch (+ the CTF-filtered background)."""
    device = prepared.table.device
    dtype = torch.float32
    ctf = parameters.ctf.as_tensors(device=device, dtype=dtype)
    images = project_prepared(
        prepared,
        euler_to_matrix(parameters.euler_deg).to(device=device, dtype=dtype),
        shift_angstrom=parameters.shift_angstrom.to(device=device, dtype=dtype),
        pixel_size_angstrom=pixel_size_angstrom,
        ctf=ctf,
    )
    if background is None:
        return images
    return images + _ctf_background(
        ctf, prepared.size, pixel_size_angstrom, background, background_generator
    )


def _ctf_background(ctf, box, pixel_size_angstrom, background, generator) -> torch.Tensor:
    """The CTF-filtered smooth background ``C ⊛ b`` of a batch (CTF tensors on the device)."""
    from cryoglass.ctf.correct import multiply_ctf

    device, dtype = ctf.defocus_u_angstrom.device, ctf.defocus_u_angstrom.dtype
    field_ = gaussian_random_field(
        ctf.defocus_u_angstrom.shape[0],
        box=box,
        pixel_size_angstrom=pixel_size_angstrom,
        correlation_length_angstrom=background.correlation_length_angstrom,
        std=background.std,
        generator=generator,
        device=device,
        dtype=dtype,
    )
    return multiply_ctf(field_, ctf, pixel_size_angstrom=pixel_size_angstrom)


#: Working memory [bytes] for rotated maps (≈ 24 B per voxel and particle): sets the sub-batch.
_ROTATION_MEMORY_BYTES = 2**28


def _scalar(values: torch.Tensor, name: str) -> float:
    """The one value of a per-particle field that must be the same for all (one optics group)."""
    values = torch.as_tensor(values)
    first = float(values.reshape(-1)[0])
    if not bool((values == first).all()):
        raise ValueError(f"multislice needs one {name} for all particles, got several")
    return first


def _check_slice_thickness(thickness: float, pixel: float) -> None:
    ratio = thickness / pixel
    if not (thickness > 0 and round(ratio) >= 1 and abs(ratio - round(ratio)) <= 1e-6):
        raise ValueError(
            f"multislice slice thickness {thickness} Å must be a positive whole multiple of the "
            f"pixel size {pixel} Å"
        )


def rotate_map(volume: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """A map at each pose, ``V_rot(x) = V(Aᵀx)`` (trilinear; zero outside the box).

    Parameters
    ----------
    volume : Tensor (N, N, N)
        Map indexed [z, y, x], origin at N//2.
    rotations : Tensor (B, 3, 3)
        RELION matrices ``A``.

    Returns
    -------
    Tensor (B, N, N, N)
        Summing over axis 1 gives :func:`cryoglass.projection.project_real_space`.
    """
    n = volume.shape[-1]
    image_frame = coordinate_grid((n, n, n), device=volume.device, dtype=volume.dtype)
    rotations = rotations.to(device=volume.device, dtype=volume.dtype)
    map_frame = torch.einsum("zyxj,bjk->bzyxk", image_frame, rotations)  # rows: uᵀA = (Aᵀu)ᵀ
    return interpolate_grid(volume, map_frame, method="linear")


def multislice_particle_images(
    volume_volt: torch.Tensor,
    parameters: ParticleParameters,
    *,
    pixel_size_angstrom: float,
    slice_thickness_angstrom: float,
    batch_size: int | None = None,
) -> torch.Tensor:
    r"""Noise-free multislice images of particles, in the projection path's units and sign.

    Parameters
    ----------
    volume_volt : Tensor (N, N, N)
        Coulomb potential [V], origin at N//2 (computations use its device and dtype).
    parameters : ParticleParameters
        B particles (one voltage and one amplitude contrast for all).
    pixel_size_angstrom : float
    slice_thickness_angstrom : float
        A whole multiple of the pixel size.
    batch_size : int, optional
        Particles rotated at once (memory only; default from a 256 MiB budget).

    Returns
    -------
    Tensor (B, N, N)
        ``s = (1 − I)·√(1 − Q0²) / (2σ_e p)``: protein white, and ``≈ CTF · Σ_z V`` (the
        projection path's clean image) for a thin weak specimen.

    Notes
    -----
    Per particle: ``V_i(x) = V(A_iᵀx)`` (:func:`rotate_map`); ``I_i`` =
    :func:`cryoglass.simulate.multislice.multislice_image` with the particle's lens and the
    wave envelope ``exp(−B_i k²/4)``, defocus measured from the particle's centre plane
    ``z = 0``; ``s_i`` moved by ``−o_i`` (RELION origin: ``image(r) = centred(r + o)``).
    See the module docstring.

    References
    ----------
    Kirkland, E. J. (2020). Advanced Computing in Electron Microscopy, 3rd ed., ch. 6.
    https://doi.org/10.1007/978-3-030-33260-0
    """
    _check_slice_thickness(slice_thickness_angstrom, pixel_size_angstrom)
    n = volume_volt.shape[-1]
    device, dtype = volume_volt.device, volume_volt.dtype
    voltage = _scalar(parameters.ctf.voltage_kv, "voltage_kv")
    q0 = _scalar(parameters.ctf.amplitude_contrast, "amplitude_contrast")
    per_unit = _contrast_per_unit(voltage, q0, pixel_size_angstrom)
    k = fft_frequencies(n, pixel_size_angstrom=pixel_size_angstrom, device=device, dtype=dtype)
    k2 = (k * k).sum(dim=-1)
    batch_size = batch_size or max(1, _ROTATION_MEMORY_BYTES // (24 * n**3))
    images = []
    for start in range(0, len(parameters), batch_size):
        part = parameters[start : start + batch_size]
        ctf = replace(
            part.ctf.as_tensors(device=device, dtype=dtype),
            voltage_kv=voltage,
            amplitude_contrast=q0,
        )
        rotated = rotate_map(volume_volt, euler_to_matrix(part.euler_deg).to(device, dtype))
        intensity = multislice_image(
            rotated,
            ctf,
            pixel_size_angstrom=pixel_size_angstrom,
            slice_thickness_angstrom=slice_thickness_angstrom,
            envelope=torch.exp(-0.25 * ctf.bfactor_a2[:, None, None] * k2),
        )
        images.append(
            shift_image(
                (1 - intensity) / per_unit,
                -part.shift_angstrom.to(device=device, dtype=dtype),
                pixel_size_angstrom=pixel_size_angstrom,
            )
        )
    return torch.cat(images)


def _multislice_clean_images(
    volume: torch.Tensor,
    parameters: ParticleParameters,
    *,
    pixel_size_angstrom: float,
    slice_thickness_angstrom: float,
    background: IceBackground | None,
    background_generator: torch.Generator | None,
) -> torch.Tensor:
    """:func:`multislice_particle_images` (+ the CTF-filtered background, as the projection)."""
    images = multislice_particle_images(
        volume,
        parameters,
        pixel_size_angstrom=pixel_size_angstrom,
        slice_thickness_angstrom=slice_thickness_angstrom,
    )
    if background is None:
        return images
    ctf = parameters.ctf.as_tensors(device=images.device, dtype=images.dtype)
    return images + _ctf_background(
        ctf, volume.shape[-1], pixel_size_angstrom, background, background_generator
    )


def calibrate_noise_std(
    volume: torch.Tensor,
    *,
    pixel_size_angstrom: float,
    snr: float,
    distributions: ParticleDistributions | None = None,
    seed: int = 0,
    mask_diameter_angstrom: float | None = None,
    pad: int = 2,
    device: torch.device | str | None = None,
    multislice_thickness_angstrom: float | None = None,
) -> float:
    """The Gaussian noise σ that :func:`simulate_dataset` uses for ``snr``.

    Computed from the clean images of block 0 (:data:`BLOCK_SIZE` particles) inside a centred
    disc of diameter ``mask_diameter_angstrom`` (default :func:`particle_diameter_angstrom`),
    with the SNR definition of :mod:`cryoglass.simulate.noise`; from multislice images when
    ``multislice_thickness_angstrom`` is given (as :func:`simulate_dataset` with it).
    """
    distributions = distributions or ParticleDistributions()
    if multislice_thickness_angstrom is not None:
        _check_slice_thickness(multislice_thickness_angstrom, pixel_size_angstrom)
        volume = volume.to(device=device, dtype=torch.float32)
        clean0 = _multislice_clean_images(
            volume,
            _block_parameters(distributions, seed, 0),
            pixel_size_angstrom=pixel_size_angstrom,
            slice_thickness_angstrom=multislice_thickness_angstrom,
            background=None,
            background_generator=None,
        )
        return _masked_noise_std(clean0, volume, pixel_size_angstrom, snr, mask_diameter_angstrom)
    prepared = prepare_volume_fourier(volume.to(device=device, dtype=torch.float32), pad=pad)
    return _noise_std(
        prepared, volume, distributions, pixel_size_angstrom, snr, seed, mask_diameter_angstrom
    )


def _noise_std(
    prepared, volume, distributions, pixel, snr, seed, mask_diameter_angstrom, clean=None
):
    """σ from the clean (background-free) images of block 0; computes them unless given."""
    if clean is None:
        clean = _clean_images(
            prepared,
            _block_parameters(distributions, seed, 0),
            pixel_size_angstrom=pixel,
            background=None,
            background_generator=None,
        )
    return _masked_noise_std(clean, volume, pixel, snr, mask_diameter_angstrom)


def _masked_noise_std(clean, volume, pixel, snr, mask_diameter_angstrom) -> float:
    """σ for ``snr`` measured on ``clean`` inside the particle disc."""
    diameter = mask_diameter_angstrom or particle_diameter_angstrom(
        volume, pixel_size_angstrom=pixel
    )
    mask = circular_mask(clean.shape[-1], diameter_px=diameter / pixel, device=clean.device)
    return noise_std_for_snr(clean, snr=snr, mask=mask)


def _check_inputs(volume, n, pixel, snr, dose, chunk_size):
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"volume must be a cubic (N, N, N) map, got shape {tuple(volume.shape)}")
    if n < 1:
        raise ValueError(f"n must be >= 1 particle, got {n}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not pixel > 0:
        raise ValueError(f"pixel_size_angstrom must be > 0, got {pixel}")
    if snr is not None and dose is not None:
        raise ValueError("give snr or dose_e_per_a2, not both")
    if snr is not None and not snr > 0:
        raise ValueError(f"snr must be > 0, got {snr}")
    if dose is not None and not dose > 0:
        raise ValueError(f"dose_e_per_a2 must be > 0, got {dose}")


def simulate_dataset(
    volume: torch.Tensor,
    *,
    n: int,
    pixel_size_angstrom: float,
    distributions: ParticleDistributions | None = None,
    snr: float | None = None,
    dose_e_per_a2: float | None = None,
    mask_diameter_angstrom: float | None = None,
    background: IceBackground | None = None,
    chunk_size: int = 1000,
    seed: int = 0,
    pad: int = 2,
    device: torch.device | str | None = None,
    keep_clean: bool = False,
    multislice_thickness_angstrom: float | None = None,
) -> Iterator[SimulatedChunk]:
    """Simulate particle images chunk by chunk (never all in memory), reproducibly.

    Parameters
    ----------
    volume : Tensor (N, N, N)
        The map at the output box and pixel size, origin at N//2 (a Coulomb potential in V
        when ``dose_e_per_a2`` is used).
    n : int
        Number of particles (≥ 1).
    pixel_size_angstrom : float
        Pixel size of map and images [Å].
    distributions : ParticleDistributions, optional
        Orientations, defocus, shifts, B-factors, microscope (default: uniform views,
        defocus 1–2.5 µm, no shifts, 300 kV, Cs 2.7 mm, Q0 0.1).
    snr : float, optional
        Gaussian noise at this SNR (definition in :mod:`cryoglass.simulate.noise`).
    dose_e_per_a2 : float, optional
        Poisson shot noise at this dose [e⁻/Å²] instead.  Neither: noise-free images.
    mask_diameter_angstrom : float, optional
        Diameter of the SNR mask [Å] (default: :func:`particle_diameter_angstrom`).
    background : IceBackground, optional
        Smooth background added before the CTF.
    chunk_size : int
        Images per yielded chunk (a memory knob; the data do not depend on it).
    seed : int
        Seed of the whole dataset.
    pad : int
        Padding factor of the projector (2 as RELION).
    device : str or torch.device, optional
        Where images are computed (default: the volume's device).
    keep_clean : bool
        Also return the noise-free images in each chunk (``SimulatedChunk.clean``).
    multislice_thickness_angstrom : float, optional
        Form images by multislice with slices this thick [Å] (a whole multiple of the pixel
        size; the map is then a potential in V) instead of the projection approximation.

    Yields
    ------
    SimulatedChunk
        Consecutive chunks covering particles 0 … n−1.

    Notes
    -----
    Formulas and the seeding scheme are in the module docstring.  Memory: one block of
    :data:`BLOCK_SIZE` images plus one chunk, independent of ``n``.
    """
    _check_inputs(volume, n, pixel_size_angstrom, snr, dose_e_per_a2, chunk_size)
    distributions = distributions or ParticleDistributions()
    device = torch.device(device) if device is not None else volume.device
    volume = volume.to(device=device, dtype=torch.float32)
    if multislice_thickness_angstrom is not None:
        yield from _simulate_multislice(
            volume,
            n=n,
            pixel_size_angstrom=pixel_size_angstrom,
            distributions=distributions,
            snr=snr,
            dose_e_per_a2=dose_e_per_a2,
            mask_diameter_angstrom=mask_diameter_angstrom,
            background=background,
            chunk_size=chunk_size,
            seed=seed,
            keep_clean=keep_clean,
            slice_thickness_angstrom=multislice_thickness_angstrom,
        )
        return
    prepared = prepare_volume_fourier(volume, pad=pad)
    noise_std, clean0 = None, None
    if snr is not None:
        clean0 = _clean_images(
            prepared,
            _block_parameters(distributions, seed, 0),
            pixel_size_angstrom=pixel_size_angstrom,
            background=None,
            background_generator=None,
        )
        noise_std = _noise_std(
            prepared,
            volume,
            distributions,
            pixel_size_angstrom,
            snr,
            seed,
            mask_diameter_angstrom,
            clean0,
        )
    contrast_per_unit = _contrast_per_unit(
        distributions.voltage_kv, distributions.amplitude_contrast, pixel_size_angstrom
    )

    def make_block(j: int) -> tuple[torch.Tensor, torch.Tensor, ParticleParameters]:
        """(noisy, clean, parameters) of block j (truncated at particle n)."""
        count = min(BLOCK_SIZE, n - j * BLOCK_SIZE)
        parameters = _block_parameters(distributions, seed, j)[:count]
        if j == 0 and clean0 is not None and background is None:
            clean = clean0[:count]  # already projected for the noise calibration
        else:
            clean = _clean_images(
                prepared,
                parameters,
                pixel_size_angstrom=pixel_size_angstrom,
                background=background,
                background_generator=block_generator(seed, j, _BACKGROUND, device=device),
            )
        noisy = _add_noise(
            clean,
            generator=block_generator(seed, j, _NOISE, device=device),
            noise_std=noise_std,
            dose_e_per_a2=dose_e_per_a2,
            pixel_size_angstrom=pixel_size_angstrom,
            contrast_per_unit=contrast_per_unit,
        )
        return noisy, clean, parameters

    yield from _stream_chunks(make_block, n=n, chunk_size=chunk_size, keep_clean=keep_clean)


def _contrast_per_unit(voltage_kv: float, amplitude_contrast: float, pixel: float) -> float:
    """Weak-phase contrast per unit of (CTF-filtered) projection: c = −2 σ_e p s / √(1 − Q0²)."""
    return (
        2
        * interaction_constant_rad_per_volt_angstrom(voltage_kv)
        * pixel
        / math.sqrt(1 - amplitude_contrast**2)
    )


def _add_noise(
    clean, *, generator, noise_std, dose_e_per_a2, pixel_size_angstrom, contrast_per_unit
):
    """The noisy images of a block's (possibly truncated) clean images."""
    count = clean.shape[0]
    if noise_std is not None:
        # noise for the whole block, so that a particle's noise does not depend on n
        zeros = clean.new_zeros((BLOCK_SIZE, *clean.shape[1:]))
        noise = add_gaussian_noise(zeros, noise_std=noise_std, generator=generator)
        return clean + noise[:count]
    if dose_e_per_a2 is not None:
        measured = add_shot_noise(
            -contrast_per_unit * clean,
            dose_e_per_a2=dose_e_per_a2,
            pixel_size_angstrom=pixel_size_angstrom,
            generator=generator,
        )
        return -measured / contrast_per_unit
    return clean


def _stream_chunks(make_block, *, n: int, chunk_size: int, keep_clean: bool):
    """Cut chunks from blocks ``make_block(j) -> (noisy, clean, parameters)``, one cached."""
    cache: dict[int, tuple[torch.Tensor, torch.Tensor, ParticleParameters]] = {}
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        images, cleans, params = [], [], []
        for j in range(start // BLOCK_SIZE, (stop - 1) // BLOCK_SIZE + 1):
            if j not in cache:
                cache = {j: make_block(j)}  # keep one block: memory independent of n
            block_images, block_clean, block_params = cache[j]
            offset = j * BLOCK_SIZE
            part = slice(max(start, offset) - offset, min(stop, offset + BLOCK_SIZE) - offset)
            images.append(block_images[part])
            cleans.append(block_clean[part])
            params.append(block_params[part])
        clean_out = torch.cat(cleans) if keep_clean else None
        yield SimulatedChunk(
            start, torch.cat(images), ParticleParameters.concatenate(params), clean_out
        )


def _simulate_multislice(
    volume,
    *,
    n,
    pixel_size_angstrom,
    distributions,
    snr,
    dose_e_per_a2,
    mask_diameter_angstrom,
    background,
    chunk_size,
    seed,
    keep_clean,
    slice_thickness_angstrom,
) -> Iterator[SimulatedChunk]:
    """:func:`simulate_dataset` with multislice images (same blocks, streams and noise)."""
    _check_slice_thickness(slice_thickness_angstrom, pixel_size_angstrom)
    device = volume.device

    def clean_images(j: int, parameters: ParticleParameters, with_background: bool):
        return _multislice_clean_images(
            volume,
            parameters,
            pixel_size_angstrom=pixel_size_angstrom,
            slice_thickness_angstrom=slice_thickness_angstrom,
            background=background if with_background else None,
            background_generator=block_generator(seed, j, _BACKGROUND, device=device),
        )

    noise_std, clean0 = None, None
    if snr is not None:
        clean0 = clean_images(0, _block_parameters(distributions, seed, 0), False)
        noise_std = _masked_noise_std(
            clean0, volume, pixel_size_angstrom, snr, mask_diameter_angstrom
        )
    contrast_per_unit = _contrast_per_unit(
        distributions.voltage_kv, distributions.amplitude_contrast, pixel_size_angstrom
    )

    def make_block(j: int) -> tuple[torch.Tensor, torch.Tensor, ParticleParameters]:
        count = min(BLOCK_SIZE, n - j * BLOCK_SIZE)
        parameters = _block_parameters(distributions, seed, j)[:count]
        if j == 0 and clean0 is not None and background is None:
            clean = clean0[:count]  # already simulated for the noise calibration
        else:
            clean = clean_images(j, parameters, True)
        noisy = _add_noise(
            clean,
            generator=block_generator(seed, j, _NOISE, device=device),
            noise_std=noise_std,
            dose_e_per_a2=dose_e_per_a2,
            pixel_size_angstrom=pixel_size_angstrom,
            contrast_per_unit=contrast_per_unit,
        )
        return noisy, clean, parameters

    yield from _stream_chunks(make_block, n=n, chunk_size=chunk_size, keep_clean=keep_clean)
