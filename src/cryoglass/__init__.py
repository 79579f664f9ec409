"""cryoglass: single-particle cryo-EM in a glass box.

Importing the package is cheap; subpackages (``cryoglass.fourier``, ``cryoglass.ctf`` ...)
import torch when they are imported.  The conventions every function follows are written in
``docs/conventions.md`` and summarised in :mod:`cryoglass.conventions`.
"""

__version__ = "0.1.0"
