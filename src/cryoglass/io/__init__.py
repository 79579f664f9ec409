"""File formats and other programs' conventions: the only part of cryoglass that knows them.

* :mod:`~cryoglass.io.mrc` — MRC maps and stacks (``read_mrc``, ``write_mrc``, ``open_mrc_stack``).
* :mod:`~cryoglass.io.star` — RELION STAR 3.0/3.1/5 (``read_particles``, ``write_relion_star``).
* :mod:`~cryoglass.io.particles` — ``ParticleSet`` and the lazy ``ParticleStack``.
* :mod:`~cryoglass.io.cryosparc` — cryoSPARC ``.cs`` files.
* :mod:`~cryoglass.io.cryodrgn` — cryoDRGN pose/CTF pickles.
* :mod:`~cryoglass.io.structure` — PDB/mmCIF atomic models.
"""

from cryoglass.io.cryodrgn import (
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    write_cryodrgn_ctf,
    write_cryodrgn_poses,
)
from cryoglass.io.cryosparc import cryosparc_pose_to_euler, read_cryosparc
from cryoglass.io.mrc import (
    MRCHeaderInfo,
    MRCStack,
    check_pixel_size,
    open_mrc_stack,
    read_mrc,
    read_mrc_header,
    write_mrc,
)
from cryoglass.io.particles import (
    ParticleSet,
    ParticleStack,
    make_particle_set,
    parse_image_names,
    read_images,
)
from cryoglass.io.star import read_particles, read_relion_star, write_relion_star
from cryoglass.io.structure import AtomicModel, read_structure, with_coordinates, write_structure

__all__ = [
    "AtomicModel",
    "MRCHeaderInfo",
    "MRCStack",
    "ParticleSet",
    "ParticleStack",
    "check_pixel_size",
    "cryosparc_pose_to_euler",
    "make_particle_set",
    "open_mrc_stack",
    "parse_image_names",
    "read_cryodrgn_ctf",
    "read_cryodrgn_poses",
    "read_cryosparc",
    "read_images",
    "read_mrc",
    "read_mrc_header",
    "read_particles",
    "read_relion_star",
    "read_structure",
    "with_coordinates",
    "write_cryodrgn_ctf",
    "write_cryodrgn_poses",
    "write_mrc",
    "write_relion_star",
    "write_structure",
]
