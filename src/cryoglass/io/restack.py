"""A particle set moved onto a new image stack (``resample``): RELION names, new pixel size.

A command that writes every particle image again, in the particles' order, into one stack
``out.mrcs`` describes the result with :func:`restacked`: image ``i`` of the set becomes
``"{i+1:06d}@out.mrcs"`` (RELION's 1-based name, relative to the stack's folder), and the
pixel size and box follow the new images.  Everything else (poses, origins in Å, CTF, the
columns cryoglass does not read) is kept, so :func:`cryoglass.io.write_relion_star` writes a
STAR file that RELION reads for the new stack.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from cryoglass.io.particles import ParticleSet

__all__ = ["restacked"]


def restacked(
    particles: ParticleSet,
    stack_path: str | os.PathLike,
    *,
    pixel_size_angstrom: float,
    image_size: int,
) -> ParticleSet:
    """The particles as images ``1 … n`` of a new stack, with its pixel size and box.

    Parameters
    ----------
    particles : ParticleSet
    stack_path : path-like
        The new ``.mrcs`` (image ``i`` of it is particle ``i``).
    pixel_size_angstrom : float
        Pixel size of the new images [Å] (written as rlnImagePixelSize).
    image_size : int
        Box of the new images [px] (rlnImageSize).

    Returns
    -------
    ParticleSet
        Image names ``"000001@<stack name>"`` resolved against the stack's folder; origins
        stay in Å (rlnOriginX/YAngst keep their values: the same shift on a new grid).

    Examples
    --------
    >>> import torch
    >>> from cryoglass.io import make_particle_set
    >>> ps = make_particle_set(["1@a.mrcs", "2@a.mrcs"], pixel_size_angstrom=1.0, image_size=8)
    >>> new = restacked(ps, "/tmp/b.mrcs", pixel_size_angstrom=2.0, image_size=4)
    >>> new.image_names, new.image_size, new.pixel_size_angstrom.tolist()
    (['000001@/tmp/b.mrcs', '000002@/tmp/b.mrcs'], 4, [2.0, 2.0])
    """
    if not pixel_size_angstrom > 0 or image_size < 1:
        raise ValueError(
            f"restacked: need a positive pixel size and box, got {pixel_size_angstrom}, "
            f"{image_size}"
        )
    stack_path = Path(os.path.abspath(stack_path))
    names = [f"{i + 1:06d}@{stack_path.name}" for i in range(len(particles))]
    moved = particles.with_image_names(names, image_root=stack_path.parent)
    return dataclasses.replace(
        moved,
        pixel_size_angstrom=torch.full_like(particles.pixel_size_angstrom, pixel_size_angstrom),
        image_size=int(image_size),
    )
