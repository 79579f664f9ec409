"""Half sets for gold-standard FSC: the split (RELION's ``rlnRandomSubset`` or a seeded random
split) and the one routine that back-projects a stream of particle batches into one accumulator
per half set (used by ``cryoglass reconstruct`` in one process and by its Dask tasks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.reconstruct.fourier_inversion import (
    Accumulator,
    _shell_index,
    accumulate,
    empty_accumulator,
)

__all__ = ["accumulate_subsets", "half_set_indices", "join_below", "split_halves"]


def split_halves(
    count: int,
    *,
    random_subset: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Assign each of ``count`` particles to half set 1 or 2.

    Parameters
    ----------
    count : int
        Number of particles.
    random_subset : Tensor, shape (count,), int, optional
        RELION's ``rlnRandomSubset`` (values 1 and 2); used as given when present.
    generator : torch.Generator, optional
        Seeds the random split when ``random_subset`` is None (default: seed 0, so the
        split is reproducible).

    Returns
    -------
    Tensor, shape (count,), int64, values in {1, 2}
        A random permutation puts ``ceil(count/2)`` particles in half 1 and the rest in half 2.

    Examples
    --------
    >>> halves = split_halves(5, generator=torch.Generator().manual_seed(1))
    >>> sorted(halves.tolist())
    [1, 1, 1, 2, 2]
    """
    if count < 2:
        raise ValueError(f"need at least 2 particles for two half sets, got {count}")
    if random_subset is not None:
        subset = torch.as_tensor(random_subset).reshape(-1).long()
        if subset.shape[0] != count:
            raise ValueError(f"rlnRandomSubset has {subset.shape[0]} values for {count} particles")
        bad = ~((subset == 1) | (subset == 2))
        if bool(bad.any()):
            values = sorted(set(subset[bad].tolist()))[:5]
            raise ValueError(f"rlnRandomSubset must be 1 or 2, found {values}")
        if not bool((subset == 1).any() and (subset == 2).any()):
            raise ValueError("rlnRandomSubset puts every particle in the same half set")
        return subset
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    order = torch.randperm(count, generator=generator)
    halves = torch.full((count,), 2, dtype=torch.int64)
    halves[order[: (count + 1) // 2]] = 1
    return halves


def half_set_indices(halves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Particle indices of half 1 and half 2 (sorted), from :func:`split_halves`' labels."""
    return torch.nonzero(halves == 1).reshape(-1), torch.nonzero(halves == 2).reshape(-1)


def accumulate_subsets(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    labels: torch.Tensor,
    euler_deg: torch.Tensor,
    shift_angstrom: torch.Tensor | None,
    ctf: CTFParams | None,
    box: int,
    pixel_size_angstrom: float,
    groups: tuple[int, ...] = (1,),
    pad: int = 2,
    symmetry: str = "C1",
    interpolation: str = "linear",
    device: torch.device | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[int, Accumulator]:
    """Back-project particle batches into one accumulator per subset (half set).

    Parameters
    ----------
    batches : iterable of (indices, images)
        ``indices`` (b,) int64: consecutive 0-based particle numbers of the batch (rows of
        ``labels``, ``euler_deg`` …); ``images`` (b, N, N) real, origin at ``N//2``.
    labels : Tensor, int, (n,)
        Subset of every particle (e.g. :func:`split_halves`); particles whose label is not in
        ``groups`` are skipped.
    euler_deg : Tensor, (n, 3)
        RELION angles rot, tilt, psi [°].
    shift_angstrom : Tensor, (n, 2), optional
        RELION origins [Å].
    ctf : CTFParams, optional
        Per-particle CTFs (broadcast to ``(n,)``); None inserts without CTF.
    box : int
        Image size ``N`` [px].
    pixel_size_angstrom : float
    groups : tuple of int
        Labels that get an accumulator: ``(1,)``, or ``(1, 2)`` for half sets.
    pad, symmetry, interpolation, device
        As :func:`cryoglass.reconstruct.empty_accumulator` and
        :func:`cryoglass.reconstruct.accumulate`.
    progress : callable, optional
        Called with the number of images of each batch when it is done.

    Returns
    -------
    dict of int → Accumulator
        One per group (with zero count where no particle has that label).

    Notes
    -----
    Poses, origins and CTFs are converted to float32 once (the accumulators' precision):
    ``A = euler_to_matrix(float32(euler))``.  Partial sums of disjoint particle sets add
    (:func:`cryoglass.reconstruct.merge`), so chunks on Dask workers give the same map.
    """
    count = int(labels.shape[0])
    rotations = euler_to_matrix(torch.as_tensor(euler_deg).to(torch.float32))
    shifts = None if shift_angstrom is None else torch.as_tensor(shift_angstrom).to(torch.float32)
    ctf = None if ctf is None else ctf.expand(count, dtype=torch.float32)
    labels = torch.as_tensor(labels)
    accs = {
        g: empty_accumulator(box, pad=pad, interpolation=interpolation, device=device)
        for g in groups
    }
    for indices, images in batches:
        for g, acc in accs.items():
            rows = indices[labels[indices] == g]
            if rows.numel() == 0:
                continue
            accs[g] = accumulate(
                acc,
                images[rows - indices[0]],
                rotations[rows],
                shift_angstrom=None if shifts is None else shifts[rows],
                ctf=None if ctf is None else ctf[rows],
                pixel_size_angstrom=pixel_size_angstrom,
                symmetry=symmetry,
                inplace=True,
            )
        if progress is not None:
            progress(int(indices.numel()))
    return accs


def join_below(
    first: Accumulator, second: Accumulator, *, max_shell: int
) -> tuple[Accumulator, Accumulator]:
    """Both half sets' sums at low resolution: RELION's ``--low_resol_join_halves``.

    Parameters
    ----------
    first, second : Accumulator
        The sums of the two half sets (same box and padding).
    max_shell : int
        Shells ``round(|k|) ≤ max_shell`` (map pixels; ``box · pixel / resolution``) are
        replaced in both by the sum of the two; finer shells stay independent.

    Returns
    -------
    (Accumulator, Accumulator)
        New accumulators (the inputs are not modified).

    Notes
    -----
    Joining the halves below ~40 Å (RELION's default) keeps their low-resolution features
    (hand, overall shape, orientation) alike, so the two refinements do not drift apart, while
    the FSC at the resolutions that matter still compares independent data.
    """
    if (first.size, first.pad) != (second.size, second.pad):
        raise ValueError("join_below: the two accumulators have different boxes or padding")
    m = first.padded_size
    shells = _shell_index(first.size, first.pad, device=first.data.device)
    low = shells <= int(max_shell)
    region = (slice(1, 1 + m), slice(1, 1 + m), slice(0, m // 2 + 1))  # inside the guards
    data1, data2 = first.data.clone(), second.data.clone()
    weight1, weight2 = first.weight.clone(), second.weight.clone()
    for a, b in ((data1, data2), (weight1, weight2)):
        total = a[region][low] + b[region][low]
        a[region] = a[region].masked_scatter(low, total)
        b[region] = b[region].masked_scatter(low, total)
    return (
        replace(first, data=data1, weight=weight1),
        replace(second, data=data2, weight=weight2),
    )
