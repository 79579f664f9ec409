r"""Electron scattering factors of neutral atoms (Peng et al. 1996, five Gaussians).

The elastic electron scattering factor of a neutral atom is fitted by five Gaussians in
``s = sin θ / λ = q / 2`` [1/Å] (``q = |k|`` the spatial frequency):

.. math:: f_e(s) = \sum_{i=1}^{5} a_i \, e^{-b_i s^2}

with ``a_i`` in Å and ``b_i`` in Å².

The numbers below are the fit over ``0 ≤ s ≤ 2 Å⁻¹`` (resolution down to 0.25 Å, ample for
cryo-EM) from Peng, Ren, Dudarev & Whelan (1996), Table 1, reprinted as International Tables
for Crystallography Vol. C, Table 4.3.2.2.  (Their second fit, over ``0 ≤ s ≤ 6 Å⁻¹``, trades
low-``s`` accuracy for the tail and is not used here.)  ``f_e(0) = Σ a_i`` is the forward
scattering amplitude, e.g. 2.509 Å for carbon.

An isotropic B-factor (Debye–Waller) multiplies ``f_e`` by ``exp(−B s²)``, i.e. replaces every
``b_i`` by ``b_i + B``; :mod:`cryoglass.simulate.potential` uses that.

References
----------
Peng, L.-M., Ren, G., Dudarev, S. L. & Whelan, M. J. (1996). Robust parameterization of elastic
and absorptive electron atomic scattering factors. Acta Cryst. A52, 257-276.
https://doi.org/10.1107/S0108767395014371
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "SUPPORTED_ELEMENTS",
    "normalize_element",
    "scattering_parameters",
    "electron_scattering_factor_angstrom",
    "atomic_masses_dalton",
]

# Peng et al. (1996) Table 1 (ITC Vol. C Table 4.3.2.2, fit 0 <= s <= 2 1/Å):
# symbol, a1..a5 [Å], b1..b5 [Å²], standard atomic weight [Da].
_TABLE_TEXT = """
H  0.0349 0.1201 0.1970 0.0573 0.1195    0.5347   3.5867  12.3471  18.9525  38.6269   1.008
Li 0.0750 0.2249 0.5548 1.4954 0.9354    0.3864   2.9383  15.3829  53.5545 138.7337    6.94
B  0.0909 0.2551 0.7738 1.2136 0.4606    0.2995   2.1155   8.3816  24.1292  63.1314   10.81
C  0.0893 0.2563 0.7570 1.0487 0.3575    0.2465   1.7100   6.4094  18.6113  50.2523  12.011
N  0.1022 0.3219 0.7982 0.8197 0.1715    0.2451   1.7481   6.1925  17.3894  48.1431  14.007
O  0.0974 0.2921 0.6910 0.6990 0.2039    0.2067   1.3815   4.6943  12.7105  32.4726  15.999
F  0.1083 0.3175 0.6487 0.5846 0.1421    0.2057   1.3439   4.2788  11.3932  28.7881  18.998
Na 0.2142 0.6853 0.7692 1.6589 1.4482    0.3334   2.3446  10.0830  48.3037 138.2700  22.990
Mg 0.2314 0.6866 0.9677 2.1882 1.1339    0.3278   2.2720  10.9241  39.2898 101.9748  24.305
Al 0.2390 0.6573 1.2011 2.5586 1.2312    0.3138   2.1063  10.4163  34.4552  98.5344  26.982
Si 0.2519 0.6372 1.3795 2.5082 1.0500    0.3075   2.0174   9.6746  29.3744  80.4732  28.085
P  0.2548 0.6106 1.4541 2.3204 0.8477    0.2908   1.8740   8.5176  24.3434  63.2996  30.974
S  0.2497 0.5628 1.3899 2.1865 0.7715    0.2681   1.6711   7.0267  19.5377  50.3888   32.06
Cl 0.2443 0.5397 1.3919 2.0197 0.6621    0.2468   1.5242   6.1537  16.6687  42.3086   35.45
K  0.4115 1.4031 2.2784 2.6742 2.2162    0.3703   3.3874  13.1029  68.9592 194.4329  39.098
Ca 0.4054 1.3880 2.1602 3.7532 2.2063    0.3499   3.0991  11.9608  53.9353 142.3892  40.078
V  0.3876 1.2750 1.9109 2.8314 1.8979    0.2967   2.3780   8.7981  35.9528 101.7201  50.942
Mn 0.3796 1.2094 1.7815 2.5420 1.5937    0.2699   2.0455   7.4726  31.0604  91.5622  54.938
Fe 0.3946 1.2725 1.7031 2.3140 1.4795    0.2717   2.0443   7.6007  29.9714  86.2265  55.845
Co 0.4118 1.3161 1.6493 2.1930 1.2830    0.2742   2.0372   7.7205  29.9680  84.9383  58.933
Ni 0.3860 1.1765 1.5451 2.0730 1.3814    0.2478   1.7660   6.3107  25.2204  74.3146  58.693
Cu 0.4314 1.3208 1.5236 1.4671 0.8562    0.2694   1.9223   7.3474  28.9892  90.6246  63.546
Zn 0.4288 1.2646 1.4472 1.8294 1.0934    0.2593   1.7998   6.7500  25.5860  73.5284   65.38
Se 0.4477 1.1678 1.5843 2.8087 1.1956    0.2405   1.5442   6.3231  19.4610  52.0233  78.971
Br 0.4798 1.1948 1.8695 2.6953 0.8203    0.2504   1.5963   6.9653  19.8492  50.3233  79.904
Mo 0.6773 1.4798 3.1788 3.0824 1.8384    0.2920   2.0606   8.1129  30.5336 100.0658   95.95
Cd 0.6364 1.4247 2.7802 2.5973 1.7886    0.2407   1.6823   5.6588  20.7219  69.1109  112.41
I  0.7047 1.9484 2.5940 4.1526 1.5057    0.2455   1.8638   6.7639  21.8007  56.4395  126.90
W  0.9853 2.1167 3.3570 3.7981 2.2798    0.2569   1.6745   7.0098  26.9234  81.3910  183.84
Pt 0.9148 1.8096 3.2134 3.2953 1.5754    0.2263   1.3813   5.3243  17.5987  60.0171  195.08
Au 0.9674 1.8916 3.3993 3.0524 1.2607    0.2358   1.4712   5.6758  18.7119  61.5286  196.97
Hg 1.0033 1.9469 3.4396 3.1548 1.4180    0.2413   1.5298   5.8009  19.4520  60.5753  200.59
U  1.3382 3.2043 5.4558 5.4839 3.6342    0.2838   2.2452  10.2519  41.7251 124.9023  238.03
"""


def _parse_table(text: str) -> dict[str, tuple[tuple[float, ...], tuple[float, ...], float]]:
    """symbol -> (a, b, mass) from the whitespace table above."""
    table = {}
    for line in text.strip().splitlines():
        symbol, *numbers = line.split()
        values = [float(v) for v in numbers]
        table[symbol] = (tuple(values[:5]), tuple(values[5:10]), values[10])
    return table


_TABLE = _parse_table(_TABLE_TEXT)
# Deuterium scatters as hydrogen (same electron cloud); only its mass differs.
_ALIASES = {"D": "H"}
_MASS_OVERRIDES = {"D": 2.014}

#: Element symbols with scattering parameters (plus ``"D"``, treated as hydrogen).
SUPPORTED_ELEMENTS: tuple[str, ...] = tuple(_TABLE)


def normalize_element(symbol: str) -> str:
    """Element symbol in standard case (``"FE"``, ``" fe"`` → ``"Fe"``)."""
    s = symbol.strip()
    return s[:1].upper() + s[1:].lower()


def _lookup(elements: Sequence[str], unknown: str) -> list[str]:
    """Table keys for ``elements`` (aliases resolved); unknown ones per ``unknown``."""
    if unknown not in ("error", "carbon"):
        raise ValueError(f"unknown must be 'error' or 'carbon', got {unknown!r}")
    keys = []
    missing = set()
    for symbol in elements:
        key = normalize_element(symbol)
        key = _ALIASES.get(key, key)
        if key not in _TABLE:
            missing.add(symbol)
            key = "C"
        keys.append(key)
    if missing and unknown == "error":
        raise ValueError(
            f"no electron scattering factors for element(s) {sorted(missing)}; supported: "
            f"{', '.join(SUPPORTED_ELEMENTS)} (and D). "
            "Pass unknown='carbon' to treat them as carbon."
        )
    return keys


def scattering_parameters(
    elements: Sequence[str],
    *,
    unknown: str = "error",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Peng et al. (1996) five-Gaussian parameters of each atom.

    Parameters
    ----------
    elements : sequence of str, length N
        Element symbols, any case (``"C"``, ``"FE"``, ``"Zn"``...).
    unknown : {"error", "carbon"}
        What to do with an element that has no parameters: raise a ``ValueError`` listing the
        supported ones (default), or use carbon's parameters.
    device, dtype : optional
        Of the returned tensors (default CPU, float64).

    Returns
    -------
    a : Tensor, shape (N, 5)
        Amplitudes ``a_i`` [Å].
    b : Tensor, shape (N, 5)
        Widths ``b_i`` [Å²].

    Notes
    -----
    :math:`f_e(s) = \\sum_i a_i e^{-b_i s^2}` with ``s = sin θ / λ`` [1/Å].

    Examples
    --------
    >>> a, b = scattering_parameters(["C", "O"])
    >>> [round(v, 4) for v in a.sum(dim=1).tolist()]
    [2.5088, 1.9834]
    """
    keys = _lookup(elements, unknown)
    a = torch.tensor([_TABLE[k][0] for k in keys], dtype=dtype, device=device).reshape(-1, 5)
    b = torch.tensor([_TABLE[k][1] for k in keys], dtype=dtype, device=device).reshape(-1, 5)
    return a, b


def electron_scattering_factor_angstrom(
    elements: Sequence[str],
    s_inv_angstrom: torch.Tensor,
    *,
    bfactor_a2: float | torch.Tensor = 0.0,
    unknown: str = "error",
) -> torch.Tensor:
    """Electron scattering factor ``f_e(s)`` [Å] of each element.

    Parameters
    ----------
    elements : sequence of str, length N
    s_inv_angstrom : Tensor, shape (*S,)
        ``s = sin θ / λ = k / 2`` [1/Å] (half the spatial frequency).
    bfactor_a2 : float or Tensor of shape (N,)
        Isotropic B-factor [Å²]; multiplies ``f_e`` by ``exp(−B s²)``.
    unknown : {"error", "carbon"}
        As :func:`scattering_parameters`.

    Returns
    -------
    Tensor, shape (N, *S)
        ``Σ_i a_i exp(−(b_i + B) s²)`` [Å], dtype and device of ``s_inv_angstrom``.

    References
    ----------
    Peng et al. (1996), https://doi.org/10.1107/S0108767395014371
    """
    s = torch.as_tensor(s_inv_angstrom)
    dtype = s.dtype if s.is_floating_point() else torch.float64
    s = s.to(dtype)
    a, b = scattering_parameters(elements, unknown=unknown, device=s.device, dtype=dtype)
    bfac = torch.as_tensor(bfactor_a2, dtype=dtype, device=s.device).expand(a.shape[0])
    widths = (b + bfac[:, None]).reshape(*b.shape, *([1] * s.ndim))
    amplitudes = a.reshape(*a.shape, *([1] * s.ndim))
    return (amplitudes * torch.exp(-widths * s**2)).sum(dim=1)


def atomic_masses_dalton(
    elements: Sequence[str],
    *,
    unknown: str = "error",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Standard atomic weights [Da] of ``elements`` (shape (N,)); unknown ones as carbon when
    ``unknown="carbon"``.  Deuterium weighs 2.014 Da."""
    keys = _lookup(elements, unknown)
    masses = [
        _MASS_OVERRIDES.get(normalize_element(symbol), _TABLE[key][2])
        for symbol, key in zip(elements, keys, strict=True)
    ]
    return torch.tensor(masses, dtype=dtype, device=device)
