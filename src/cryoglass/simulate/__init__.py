"""Image formation: maps from atoms, phantoms, and (later) the full forward model."""

from cryoglass.simulate.phantom import gaussian_map, gaussian_map_projections

__all__ = ["gaussian_map", "gaussian_map_projections"]
