"""Half sets for gold-standard FSC: RELION's ``rlnRandomSubset`` or a seeded random split."""

from __future__ import annotations

import torch

__all__ = ["half_set_indices", "split_halves"]


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
