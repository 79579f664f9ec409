"""Rotations and coordinate systems (RELION ZYZ Euler angles at the boundary)."""

from cryoglass.geometry.euler import euler_to_matrix, matrix_to_euler

__all__ = ["euler_to_matrix", "matrix_to_euler"]
