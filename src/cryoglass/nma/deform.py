r"""Structures, maps and particle images deformed along normal modes.

A mode ``v_k`` (unit vector over all ``3N`` coordinates) moves the nodes by ``a_k v_k``; the
amplitude ``a`` [Å] is the length of the whole displacement, so the RMSD from the start is

.. math:: \mathrm{RMSD} = \frac{|a|}{\sqrt N}, \qquad a = \mathrm{RMSD}\,\sqrt N .

Modes computed on Cα (or pseudo-atoms) move all atoms with :func:`extend_modes` (every atom
follows its node).  A heterogeneous dataset draws amplitudes from a distribution (for example
two Gaussians along mode 1: two populations of a breathing motion), builds the potential of each
deformed model, and projects it at each particle's pose with its CTF, plus noise.

The true amplitudes go into the particle STAR file in the custom columns
``_cryoglassModeAmplitude1``, ``_cryoglassModeAmplitude2``, … (Å along each unit mode;
:data:`MODE_AMPLITUDE_COLUMN`).  RELION 3.1 keeps unknown labels ("will ignore (but maintain)").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cryoglass.projection import project
from cryoglass.simulate import (
    ParticleDistributions,
    ParticleParameters,
    add_gaussian_noise,
    dataset_parameters,
    model_center_angstrom,
    noise_std_for_snr,
    potential_map,
)
from cryoglass.simulate.noise import threshold_mask

__all__ = [
    "MODE_AMPLITUDE_COLUMN",
    "deform_coordinates",
    "amplitude_for_rmsd",
    "mode_trajectory",
    "extend_modes",
    "gaussian_mixture_amplitudes",
    "deformed_maps",
    "HeterogeneousDataset",
    "heterogeneous_dataset",
]

#: STAR column (without the leading underscore) for the true amplitude of mode ``k`` [Å].
MODE_AMPLITUDE_COLUMN = "cryoglassModeAmplitude{}"


def _vectors(eigenvectors, dtype, device) -> torch.Tensor:
    v = torch.as_tensor(eigenvectors, dtype=dtype, device=device)
    return v[:, None] if v.ndim == 1 else v


def deform_coordinates(
    coordinates_angstrom: torch.Tensor, eigenvectors, amplitudes_angstrom: torch.Tensor
) -> torch.Tensor:
    """Move nodes along modes: ``x + Σ_k a_k v_k``.

    Parameters
    ----------
    coordinates_angstrom : Tensor (N, 3)
        Positions [Å].
    eigenvectors : Tensor or ndarray (3N, k) or (3N,)
        Unit modes, rows ``(x_1, y_1, z_1, …)``.
    amplitudes_angstrom : Tensor (..., k)
        Amplitudes [Å] (leading dimensions: a batch of deformations).

    Returns
    -------
    Tensor (..., N, 3)
        Deformed positions, dtype/device of ``coordinates_angstrom``.
    """
    x = coordinates_angstrom
    v = _vectors(eigenvectors, x.dtype, x.device)
    a = torch.as_tensor(amplitudes_angstrom, dtype=x.dtype, device=x.device)
    if a.ndim == 0:
        a = a[None]
    if v.shape[0] != 3 * x.shape[0] or a.shape[-1] != v.shape[1]:
        raise ValueError(
            f"shapes do not match: coordinates {tuple(x.shape)}, eigenvectors "
            f"{tuple(v.shape)}, amplitudes {tuple(a.shape)}"
        )
    return x + (a @ v.T).reshape(*a.shape[:-1], x.shape[0], 3)


def amplitude_for_rmsd(rmsd_angstrom: float, n_nodes: int) -> float:
    """Amplitude [Å] along a unit mode that gives this RMSD over ``n_nodes``: ``RMSD √N``."""
    return float(rmsd_angstrom) * math.sqrt(n_nodes)


def mode_trajectory(
    coordinates_angstrom: torch.Tensor,
    eigenvector,
    *,
    rmsd_angstrom: float,
    n_frames: int = 20,
) -> torch.Tensor:
    """Frames of an oscillation along one mode (for a multi-model animation).

    Parameters
    ----------
    coordinates_angstrom : Tensor (N, 3)
    eigenvector : Tensor or ndarray (3N,)
    rmsd_angstrom : float
        RMSD of the extreme frames from the start [Å].
    n_frames : int

    Returns
    -------
    Tensor (n_frames, N, 3)
        ``x + A sin(2π t / n_frames) v``, ``A = RMSD √N``.
    """
    amplitude = amplitude_for_rmsd(rmsd_angstrom, coordinates_angstrom.shape[0])
    t = torch.arange(n_frames, dtype=coordinates_angstrom.dtype)
    a = amplitude * torch.sin(2 * math.pi * t / n_frames)
    return deform_coordinates(coordinates_angstrom, eigenvector, a[:, None])


def extend_modes(eigenvectors, node_of_atom: torch.Tensor) -> torch.Tensor:
    """Modes of nodes (e.g. Cα) applied to all atoms: every atom moves with its node.

    Parameters
    ----------
    eigenvectors : Tensor or ndarray (3M, k)
        Node modes.
    node_of_atom : Tensor (N,), int64
        Node index of every atom.

    Returns
    -------
    Tensor (3N, k), float64
        Not re-normalised: amplitudes keep their meaning for the nodes.
    """
    v = _vectors(eigenvectors, torch.float64, "cpu")
    m = v.shape[0] // 3
    return v.reshape(m, 3, -1)[node_of_atom.long()].reshape(-1, v.shape[1])


def gaussian_mixture_amplitudes(
    n: int,
    *,
    means: Sequence[float],
    stds: Sequence[float],
    weights: Sequence[float] | None = None,
    generator: torch.Generator,
) -> torch.Tensor:
    """``n`` draws from a 1D Gaussian mixture (e.g. two populations along mode 1).

    Parameters
    ----------
    n : int
    means, stds : sequence of float
        Component means and standard deviations [Å].
    weights : sequence of float, optional
        Component probabilities (default equal).
    generator : torch.Generator

    Returns
    -------
    Tensor (n,), float64
    """
    means_t = torch.as_tensor(means, dtype=torch.float64)
    stds_t = torch.as_tensor(stds, dtype=torch.float64)
    if means_t.shape != stds_t.shape or means_t.ndim != 1:
        raise ValueError("means and stds must be 1D sequences of the same length")
    w = torch.ones_like(means_t) if weights is None else torch.as_tensor(weights).double()
    component = torch.multinomial(w / w.sum(), n, replacement=True, generator=generator)
    noise = torch.randn(n, generator=generator, dtype=torch.float64)
    return means_t[component] + stds_t[component] * noise


def deformed_maps(
    coordinates_angstrom: torch.Tensor,
    elements: Sequence[str],
    eigenvectors,
    amplitudes_angstrom: torch.Tensor,
    *,
    shape: tuple[int, int, int],
    pixel_size_angstrom: float,
    origin_angstrom: torch.Tensor | None = None,
    bfactors_a2: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Potential maps [V] of the model deformed by each row of amplitudes.

    Parameters
    ----------
    coordinates_angstrom : Tensor (N, 3)
    elements : sequence of str (N,)
    eigenvectors : (3N, k)
        Atom-level modes (:func:`extend_modes` for node modes).
    amplitudes_angstrom : Tensor (B, k)
    shape : (d, h, w)
    pixel_size_angstrom : float
    origin_angstrom : Tensor (3,), optional
        Model point at the map centre, the same for every map (default: the undeformed
        model's centre of mass, so maps differ only by the motion).
    bfactors_a2 : float or Tensor (N,), optional

    Returns
    -------
    Tensor (B, d, h, w)
    """
    x = coordinates_angstrom
    if origin_angstrom is None:
        origin_angstrom = model_center_angstrom(x, elements, unknown="carbon")
    amplitudes = torch.as_tensor(amplitudes_angstrom, dtype=x.dtype)
    moved = deform_coordinates(
        x, eigenvectors, amplitudes[:, None] if amplitudes.ndim == 1 else amplitudes
    )
    return torch.stack(
        [
            potential_map(
                m,
                elements,
                shape=shape,
                pixel_size_angstrom=pixel_size_angstrom,
                origin_angstrom=origin_angstrom,
                bfactors_a2=bfactors_a2,
                unknown="carbon",
            )
            for m in moved
        ]
    )


@dataclass(frozen=True, eq=False)
class HeterogeneousDataset:
    """Particles of a model deformed along modes.

    Attributes
    ----------
    images : Tensor (n, box, box), float32
        Noisy CTF-modulated projections (noise-free when ``snr`` is None).
    parameters : ParticleParameters
        Poses, origins, CTFs and half sets (as :func:`cryoglass.simulate.dataset_parameters`).
    amplitudes_angstrom : Tensor (n, k), float64
        The amplitudes each image was made with (the bin values when binned).
    noise_std : float
        σ of the added noise (0 without noise).
    """

    images: torch.Tensor
    parameters: ParticleParameters
    amplitudes_angstrom: torch.Tensor
    noise_std: float


def _bin(amplitudes: torch.Tensor, n_bins: int | None) -> torch.Tensor:
    """Round every column to the nearest of ``n_bins`` levels spanning its range."""
    if n_bins is None:
        return amplitudes
    low, high = amplitudes.min(0).values, amplitudes.max(0).values
    step = torch.where(high > low, (high - low) / max(1, n_bins - 1), torch.ones_like(low))
    return low + torch.round((amplitudes - low) / step) * step


def heterogeneous_dataset(
    coordinates_angstrom: torch.Tensor,
    elements: Sequence[str],
    eigenvectors,
    amplitudes_angstrom: torch.Tensor,
    *,
    box: int,
    pixel_size_angstrom: float,
    distributions: ParticleDistributions | None = None,
    snr: float | None = None,
    n_bins: int | None = 32,
    bfactors_a2: float | torch.Tensor | None = None,
    seed: int = 0,
) -> HeterogeneousDataset:
    """Simulate particles whose conformations follow given mode amplitudes.

    Parameters
    ----------
    coordinates_angstrom : Tensor (N, 3)
        Atoms [Å].
    elements : sequence of str (N,)
    eigenvectors : (3N, k)
        Atom-level unit modes (:func:`extend_modes` for Cα modes).
    amplitudes_angstrom : Tensor (n, k)
        Amplitude of every particle along every mode [Å].
    box : int
        Image and map size [pixels].
    pixel_size_angstrom : float
    distributions : ParticleDistributions, optional
        Poses, defocus, shifts (default: uniform views, 1–2.5 µm).
    snr : float, optional
        Gaussian noise at this SNR (measured on the clean images inside their 5 % mask).
    n_bins : int or None
        Amplitudes are rounded to this many levels per mode so that particles share maps (one
        potential map per distinct row); the rounded values are returned and are exactly what
        the images show.  None: one map per particle.
    bfactors_a2 : float or Tensor (N,), optional
        Atomic B-factors of the maps.
    seed : int
        Seed of poses/CTFs (:func:`cryoglass.simulate.dataset_parameters`) and noise.

    Returns
    -------
    HeterogeneousDataset
    """
    amplitudes = torch.as_tensor(amplitudes_angstrom, dtype=torch.float64)
    if amplitudes.ndim == 1:
        amplitudes = amplitudes[:, None]
    n = amplitudes.shape[0]
    distributions = distributions or ParticleDistributions()
    parameters = dataset_parameters(distributions, n=n, seed=seed)
    used = _bin(amplitudes, n_bins)
    levels, which = torch.unique(used, dim=0, return_inverse=True)
    origin = model_center_angstrom(coordinates_angstrom, elements, unknown="carbon")
    images = torch.zeros(n, box, box, dtype=torch.float32)
    for level in range(levels.shape[0]):  # one map per amplitude level, not per particle
        members = torch.nonzero(which == level).reshape(-1)
        volume = deformed_maps(
            coordinates_angstrom,
            elements,
            eigenvectors,
            levels[level][None],
            shape=(box, box, box),
            pixel_size_angstrom=pixel_size_angstrom,
            origin_angstrom=origin,
            bfactors_a2=bfactors_a2,
        )[0].float()
        group = parameters[members]
        images[members] = project(
            volume,
            euler_deg=group.euler_deg.float(),
            shift_angstrom=group.shift_angstrom.float(),
            pixel_size_angstrom=pixel_size_angstrom,
            ctf=group.ctf.as_tensors(dtype=torch.float32),
        )
    noise_std = 0.0
    if snr is not None:
        noise_std = noise_std_for_snr(images, snr=snr, mask=threshold_mask(images.abs()))
        generator = torch.Generator().manual_seed(seed + 1)
        images = add_gaussian_noise(images, noise_std=noise_std, generator=generator)
    return HeterogeneousDataset(images, parameters, used, float(noise_std))
