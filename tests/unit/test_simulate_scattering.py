"""Peng et al. (1996) electron scattering factors."""

import math

import pytest
import torch

from cryoglass.simulate.scattering import (
    SUPPORTED_ELEMENTS,
    atomic_masses_dalton,
    electron_scattering_factor_angstrom,
    scattering_parameters,
)

# Published values (Peng et al. 1996 Table 1 = ITC Vol. C Table 4.3.2.2): (a1, a5, b1, b5)
PUBLISHED = {
    "H": (0.0349, 0.1195, 0.5347, 38.6269),
    "C": (0.0893, 0.3575, 0.2465, 50.2523),
    "N": (0.1022, 0.1715, 0.2451, 48.1431),
    "O": (0.0974, 0.2039, 0.2067, 32.4726),
    "P": (0.2548, 0.8477, 0.2908, 63.2996),
    "S": (0.2497, 0.7715, 0.2681, 50.3888),
    "Fe": (0.3946, 1.4795, 0.2717, 86.2265),
    "Zn": (0.4288, 1.0934, 0.2593, 73.5284),
}


def test_published_coefficients():
    a, b = scattering_parameters(list(PUBLISHED))
    expected = torch.tensor(list(PUBLISHED.values()), dtype=torch.float64)
    got = torch.stack([a[:, 0], a[:, 4], b[:, 0], b[:, 4]], dim=1)
    torch.testing.assert_close(got, expected)


def test_forward_scattering_values():
    # f_e(0) = sum a_i; within a period it falls as the cloud contracts (C > N > O),
    # and heavy atoms scatter more (H < C < Fe < Au < U).
    f0 = electron_scattering_factor_angstrom(["H", "C", "N", "O", "Fe", "Au", "U"], torch.zeros(1))
    h, c, n, o, fe, au, u = f0[:, 0].tolist()
    assert c > n > o
    assert h < c < fe < au < u
    assert c == pytest.approx(2.5088, abs=1e-4)


def test_bfactor_is_a_gaussian_damping():
    s = torch.linspace(0, 2, 21, dtype=torch.float64)
    bare = electron_scattering_factor_angstrom(["C", "O"], s)
    blurred = electron_scattering_factor_angstrom(
        ["C", "O"], s, bfactor_a2=torch.tensor([20.0, 50.0])
    )
    expected = bare * torch.exp(-torch.tensor([[20.0], [50.0]], dtype=torch.float64) * s**2)
    torch.testing.assert_close(blurred, expected)
    assert bool((bare[:, 1:] < bare[:, :-1]).all())


def test_case_and_deuterium():
    a1, _ = scattering_parameters(["FE", " fe", "Fe"])
    assert bool((a1 == a1[0]).all())
    ad, _ = scattering_parameters(["D"])
    ah, _ = scattering_parameters(["H"])
    torch.testing.assert_close(ad, ah)
    masses = atomic_masses_dalton(["H", "D", "C"])
    torch.testing.assert_close(masses, torch.tensor([1.008, 2.014, 12.011], dtype=torch.float64))


def test_unknown_element_error_and_fallback():
    with pytest.raises(ValueError, match="Xx.*supported: H"):
        scattering_parameters(["C", "Xx"])
    a, b = scattering_parameters(["Xx"], unknown="carbon")
    ac, bc = scattering_parameters(["C"])
    torch.testing.assert_close(a, ac)
    with pytest.raises(ValueError, match="unknown must be"):
        scattering_parameters(["C"], unknown="ignore")


def test_common_biological_elements_supported():
    for element in [
        "H",
        "C",
        "N",
        "O",
        "P",
        "S",
        "Na",
        "Mg",
        "Cl",
        "K",
        "Ca",
        "Mn",
        "Fe",
        "Zn",
        "Se",
    ]:
        assert element in SUPPORTED_ELEMENTS
    a, b = scattering_parameters(list(SUPPORTED_ELEMENTS))
    assert bool((b > 0).all()) and bool((a > 0).all())
    assert not math.isnan(float(a.sum()))
