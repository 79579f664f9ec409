"""cryoglass: single-particle cryo-EM in a glass box.

Importing the package is cheap; subpackages (``cryoglass.fourier``, ``cryoglass.ctf`` ...)
import torch when they are imported.  The conventions every function follows (RELION's Euler
angles, origin at N//2, units, CTF sign) are written in ``docs/conventions.md``; the physical
constants are in :mod:`cryoglass.constants`.
"""

__version__ = "0.1.0"
