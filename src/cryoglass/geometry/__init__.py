"""Rotations and coordinate systems (RELION ZYZ Euler angles at the boundary).

* :mod:`~cryoglass.geometry.euler` — RELION's Euler angles and matrix ``A``.
* :mod:`~cryoglass.geometry.rotations` — quaternions, rotation vectors, 6D, random rotations,
  geodesic distance, rotation averaging.
* :mod:`~cryoglass.geometry.so3_grid` — HEALPix directions and RELION's SO(3) grid.
* :mod:`~cryoglass.geometry.symmetry` — point groups in RELION's orientation, pose expansion.
"""

from cryoglass.geometry.euler import euler_to_matrix, matrix_to_euler
from cryoglass.geometry.rotations import (
    average_rotations,
    euler_to_quaternion,
    geodesic_distance_deg,
    matrix_to_quaternion,
    matrix_to_rotvec,
    matrix_to_sixd,
    quaternion_multiply,
    quaternion_to_euler,
    quaternion_to_matrix,
    random_quaternions,
    random_rotations,
    rotation_about_axis,
    rotvec_to_matrix,
    sixd_to_matrix,
)
from cryoglass.geometry.so3_grid import (
    angular_step_for_order,
    healpix_directions,
    healpix_pix2ang_nest,
    order_for_angular_step,
    so3_grid,
)
from cryoglass.geometry.symmetry import expand_poses, group_order, symmetry_matrices

__all__ = [
    "angular_step_for_order",
    "average_rotations",
    "euler_to_matrix",
    "euler_to_quaternion",
    "expand_poses",
    "geodesic_distance_deg",
    "group_order",
    "healpix_directions",
    "healpix_pix2ang_nest",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "matrix_to_rotvec",
    "matrix_to_sixd",
    "order_for_angular_step",
    "quaternion_multiply",
    "quaternion_to_euler",
    "quaternion_to_matrix",
    "random_quaternions",
    "random_rotations",
    "rotation_about_axis",
    "rotvec_to_matrix",
    "sixd_to_matrix",
    "so3_grid",
    "symmetry_matrices",
]
