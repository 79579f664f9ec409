"""File formats and other programs' conventions: the only part of cryoglass that knows them.

* :mod:`~cryoglass.io.mrc` — MRC maps and stacks (``read_mrc``, ``write_mrc``, ``open_mrc_stack``).
* :mod:`~cryoglass.io.star` — RELION STAR 3.0/3.1/5 (``read_particles``, ``write_relion_star``).
* :mod:`~cryoglass.io.model_star` — RELION's Class3D ``_model.star``.
* :mod:`~cryoglass.io.particles` — ``ParticleSet`` and the lazy ``ParticleStack``.
* :mod:`~cryoglass.io.cryosparc` — cryoSPARC ``.cs`` files.
* :mod:`~cryoglass.io.cryodrgn` — cryoDRGN pose/CTF pickles.
* :mod:`~cryoglass.io.structure` — PDB/mmCIF atomic models.
* :mod:`~cryoglass.io.micrographs` — movies, micrographs, motion and coordinate STAR files.
* :mod:`~cryoglass.io.maps` — half-map pairs and masks as the analysis commands read them.
* :mod:`~cryoglass.io.chimerax` — ChimeraX ``.cxc`` scripts.
* :mod:`~cryoglass.io.fsc_tables` — FSC curves as EMDB XML and RELION postprocess.star.
* :mod:`~cryoglass.io.restack` — a particle set moved onto a new stack (``resample``).
* :mod:`~cryoglass.io.checkpoint`, :mod:`~cryoglass.io.arrays` — tensor checkpoints, ``.npy``.
* :mod:`~cryoglass.io.zarr_stack` — Zarr particle stacks.
* :mod:`~cryoglass.io.outputs` — the output policy (``check_outputs``: never over an input,
  existing outputs need ``overwrite``; inputs recorded while a command runs).
* ``atomic_write``/``atomic_path``/``atomic_folder``/``write_text_atomic`` — every file
  cryoglass writes goes through a temporary name and a rename (``cryoglass.io._atomic``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Public name -> submodule.  The submodules are imported on first use (module __getattr__,
# PEP 562), so ``from cryoglass.io import read_mrc`` doesn't pay for gemmi, cryoSPARC or
# cryoDRGN support, which keeps command start-up short.
_SUBMODULE = {
    "cryodrgn_pickle_kind": "cryodrgn",
    "read_cryodrgn_ctf": "cryodrgn",
    "read_cryodrgn_particles": "cryodrgn",
    "read_cryodrgn_poses": "cryodrgn",
    "write_cryodrgn_ctf": "cryodrgn",
    "write_cryodrgn_poses": "cryodrgn",
    "cryosparc_pose_to_euler": "cryosparc",
    "read_cryosparc": "cryosparc",
    "MRCHeaderInfo": "mrc",
    "MRCStack": "mrc",
    "MRCStackWriter": "mrc",
    "StackStatistics": "mrc",
    "write_stack_images": "mrc",
    "atomic_folder": "_atomic",
    "atomic_path": "_atomic",
    "atomic_write": "_atomic",
    "write_bytes_atomic": "_atomic",
    "write_text_atomic": "_atomic",
    "OutputIsInputError": "outputs",
    "check_outputs": "outputs",
    "command_scope": "outputs",
    "register_input": "outputs",
    "write_index_list": "arrays",
    "write_npy": "arrays",
    "write_fsc_star": "fsc_tables",
    "write_fsc_xml": "fsc_tables",
    "load_tensors": "checkpoint",
    "save_tensors": "checkpoint",
    "check_pixel_size": "mrc",
    "open_mrc_stack": "mrc",
    "read_mrc": "mrc",
    "read_mrc_header": "mrc",
    "write_mrc": "mrc",
    "ParticleSet": "particles",
    "ParticleStack": "particles",
    "check_3d_poses": "particles",
    "check_particle_set": "particles",
    "image_search_paths": "particles",
    "locate_images": "particles",
    "missing_images_message": "particles",
    "make_particle_set": "particles",
    "parse_image_names": "particles",
    "read_images": "particles",
    "restacked": "restack",
    "read_particles": "star",
    "read_relion_star": "star",
    "class_numbers": "star",
    "write_class2d_star": "star",
    "write_refine3d_star": "star",
    "write_latent_star": "star",
    "write_class3d_model_star": "model_star",
    "write_relion_star": "star",
    "AtomicModel": "structure",
    "read_structure": "structure",
    "with_coordinates": "structure",
    "write_structure": "structure",
    "COORDINATE_SUFFIXES": "micrographs",
    "MicrographOptics": "micrographs",
    "MicrographTable": "micrographs",
    "MotionTrack": "micrographs",
    "find_coordinate_files": "micrographs",
    "read_coordinates": "micrographs",
    "read_micrograph_table": "micrographs",
    "read_motion_star": "micrographs",
    "write_coordinates_star": "micrographs",
    "write_micrograph_table": "micrographs",
    "write_motion_star": "micrographs",
    "write_movie": "micrographs",
    "read_movie": "micrographs",
    "write_motion_truth": "micrographs",
    "read_motion_truth": "micrographs",
}


_SUBMODULES = ("cryodrgn", "cryosparc", "mrc", "particles", "star", "structure", "micrographs")


def __getattr__(name: str):
    if name in _SUBMODULES:  # ``cryoglass.io.mrc`` etc. as attributes, as before
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from cryoglass.io._atomic import (
        atomic_folder,
        atomic_path,
        atomic_write,
        write_bytes_atomic,
        write_text_atomic,
    )
    from cryoglass.io.arrays import write_index_list, write_npy
    from cryoglass.io.checkpoint import load_tensors, save_tensors
    from cryoglass.io.cryodrgn import (
        cryodrgn_pickle_kind,
        read_cryodrgn_ctf,
        read_cryodrgn_particles,
        read_cryodrgn_poses,
        write_cryodrgn_ctf,
        write_cryodrgn_poses,
    )
    from cryoglass.io.cryosparc import cryosparc_pose_to_euler, read_cryosparc
    from cryoglass.io.fsc_tables import write_fsc_star, write_fsc_xml
    from cryoglass.io.micrographs import (
        COORDINATE_SUFFIXES,
        MicrographOptics,
        MicrographTable,
        MotionTrack,
        find_coordinate_files,
        read_coordinates,
        read_micrograph_table,
        read_motion_star,
        write_coordinates_star,
        write_micrograph_table,
        write_motion_star,
        write_movie,
    )
    from cryoglass.io.model_star import write_class3d_model_star
    from cryoglass.io.mrc import (
        MRCHeaderInfo,
        MRCStack,
        MRCStackWriter,
        StackStatistics,
        check_pixel_size,
        open_mrc_stack,
        read_mrc,
        read_mrc_header,
        write_mrc,
        write_stack_images,
    )
    from cryoglass.io.outputs import (
        OutputIsInputError,
        check_outputs,
        command_scope,
        register_input,
    )
    from cryoglass.io.particles import (
        ParticleSet,
        ParticleStack,
        check_3d_poses,
        check_particle_set,
        image_search_paths,
        locate_images,
        make_particle_set,
        missing_images_message,
        parse_image_names,
        read_images,
    )
    from cryoglass.io.restack import restacked
    from cryoglass.io.star import (
        class_numbers,
        read_particles,
        read_relion_star,
        write_class2d_star,
        write_latent_star,
        write_refine3d_star,
        write_relion_star,
    )
    from cryoglass.io.structure import (
        AtomicModel,
        read_structure,
        with_coordinates,
        write_structure,
    )

__all__ = [
    "AtomicModel",
    "MRCHeaderInfo",
    "MRCStack",
    "MRCStackWriter",
    "OutputIsInputError",
    "ParticleSet",
    "ParticleStack",
    "StackStatistics",
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "check_3d_poses",
    "check_outputs",
    "command_scope",
    "check_particle_set",
    "check_pixel_size",
    "class_numbers",
    "cryodrgn_pickle_kind",
    "cryosparc_pose_to_euler",
    "image_search_paths",
    "load_tensors",
    "locate_images",
    "make_particle_set",
    "missing_images_message",
    "open_mrc_stack",
    "parse_image_names",
    "read_cryodrgn_ctf",
    "read_cryodrgn_particles",
    "read_cryodrgn_poses",
    "read_cryosparc",
    "read_images",
    "read_mrc",
    "read_mrc_header",
    "read_particles",
    "read_relion_star",
    "read_structure",
    "register_input",
    "restacked",
    "save_tensors",
    "with_coordinates",
    "write_bytes_atomic",
    "write_class2d_star",
    "write_class3d_model_star",
    "write_refine3d_star",
    "write_cryodrgn_ctf",
    "write_cryodrgn_poses",
    "write_fsc_star",
    "write_fsc_xml",
    "write_index_list",
    "write_latent_star",
    "write_mrc",
    "write_npy",
    "write_relion_star",
    "write_stack_images",
    "write_structure",
    "write_text_atomic",
    "COORDINATE_SUFFIXES",
    "MicrographOptics",
    "MicrographTable",
    "MotionTrack",
    "find_coordinate_files",
    "read_coordinates",
    "read_micrograph_table",
    "read_motion_star",
    "write_coordinates_star",
    "write_micrograph_table",
    "write_motion_star",
    "write_movie",
]
