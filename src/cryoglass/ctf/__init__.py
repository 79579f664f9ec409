"""Contrast transfer function (RELION's formula and sign)."""

from cryoglass.ctf.params import CTFParams

__all__ = ["CTFParams"]
