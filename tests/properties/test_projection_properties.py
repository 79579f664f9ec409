"""Properties of the projector: Fourier-slice theorem, real-space agreement, rotation
composition, shift and CTF semantics."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoglass.ctf import CTFParams, ctf_2d
from cryoglass.fourier import irfft2_centered, rfft2_centered, rfft3_centered
from cryoglass.fourier.shift import shift_image
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.projection import (
    gaussian_blobs_volume,
    project,
    project_real_space,
)

N = 32
angles = st.tuples(st.floats(-180, 180), st.floats(0, 180), st.floats(-180, 180)).map(
    lambda a: torch.tensor(a, dtype=torch.float64)
)


def _volume(seed=0, n=N):
    g = torch.Generator().manual_seed(seed)
    centers = (torch.rand(4, 3, generator=g, dtype=torch.float64) - 0.5) * (n / 3)
    sigmas = 2.5 + torch.rand(4, generator=g, dtype=torch.float64)
    amplitudes = 0.5 + torch.rand(4, generator=g, dtype=torch.float64)
    return gaussian_blobs_volume(n, centers, sigmas, amplitudes), (centers, sigmas, amplitudes)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_fourier_slice_theorem_at_identity_pose():
    volume, _ = _volume()
    volume = volume + 0.1 * torch.randn(
        N, N, N, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    for pad in (1, 2):
        image = project(volume, euler_deg=torch.zeros(1, 3), pad=pad, gridding=False)[0]
        central_plane = rfft3_centered(volume)[N // 2]  # k_z = 0
        ky = torch.arange(N) - N // 2
        inside = ky[:, None] ** 2 + torch.arange(N // 2 + 1)[None, :] ** 2 <= (N // 2) ** 2
        spectrum = rfft2_centered(image)
        torch.testing.assert_close(spectrum[inside], central_plane[inside])
        assert spectrum[~inside].abs().max() < 1e-9


@settings(max_examples=6, deadline=None)
@given(angles)
def test_real_space_projector_agrees_with_fourier_slice(euler):
    volume, _ = _volume()
    rotation = euler_to_matrix(euler)[None]
    fourier = project(volume, rotation, pad=2)
    real = project_real_space(volume, rotation)
    # both interpolate (and the gridding correction is approximate): a few per cent apart
    assert _rel(fourier, real) < 5e-2
    if (rotation - rotation.transpose(1, 2)).abs().max() > 0.5:
        # the transposed matrix (the other convention) is clearly further away (over 218
        # random poses: at least 5.1 times the error of the right one, 0.11 at the least)
        transposed = project(volume, rotation.transpose(1, 2), pad=2)
        assert _rel(transposed, real) > 3 * _rel(fourier, real)


@settings(max_examples=6, deadline=None)
@given(angles, angles)
def test_projection_of_rotated_volume_is_projection_at_composed_pose(e1, e2):
    _, (centers, sigmas, amplitudes) = _volume()
    r1, r2 = euler_to_matrix(e1), euler_to_matrix(e2)
    # V'(x) = V(R1ᵀ x): every blob centre c moves to R1 c
    rotated = gaussian_blobs_volume(N, centers @ r1.T, sigmas, amplitudes)
    volume = gaussian_blobs_volume(N, centers, sigmas, amplitudes)
    a = project(rotated, r2[None], pad=3)
    b = project(volume, (r2 @ r1)[None], pad=3)
    assert _rel(a, b) < 2e-2
    if (r1 @ r2 - r2 @ r1).abs().max() > 0.5:  # the order matters for these two rotations
        wrong = project(volume, (r1 @ r2)[None], pad=3)
        assert _rel(wrong, b) > 0.1


@settings(max_examples=6, deadline=None)
@given(st.floats(-8, 8), st.floats(-8, 8))
def test_shift_equals_fourier_shift_of_centred_projection(ox, oy):
    n = 33  # odd box: no Nyquist ambiguity, the two must agree to rounding
    volume, _ = _volume(n=n)
    pixel = 1.7
    origin = torch.tensor([[ox, oy]], dtype=torch.float64)
    euler = torch.tensor([[30.0, 60.0, 90.0]], dtype=torch.float64)
    shifted = project(volume, euler_deg=euler, shift_angstrom=origin, pixel_size_angstrom=pixel)
    centred = project(volume, euler_deg=euler)
    # RELION origin o: shifted(r) = centred(r + o), i.e. the content moves by −o
    expected = shift_image(centred, -origin, pixel_size_angstrom=pixel)
    torch.testing.assert_close(shifted, expected, rtol=1e-9, atol=1e-9)


def test_ctf_application_equals_multiplying_the_transform_by_ctf_2d():
    volume, _ = _volume()
    g = torch.Generator().manual_seed(5)
    euler = torch.rand(3, 3, generator=g, dtype=torch.float64) * 180
    ctf = CTFParams(
        defocus_u_angstrom=torch.tensor([8000.0, 15000.0, 22000.0], dtype=torch.float64),
        defocus_v_angstrom=torch.tensor([7000.0, 14000.0, 21500.0], dtype=torch.float64),
        astigmatism_angle_deg=torch.tensor([10.0, 50.0, -30.0], dtype=torch.float64),
    )
    pixel = 2.0
    with_ctf = project(volume, euler_deg=euler, ctf=ctf, pixel_size_angstrom=pixel)
    plain = project(volume, euler_deg=euler)
    values = ctf_2d(ctf, image_size=N, pixel_size_angstrom=pixel, dtype=torch.float64)
    expected = irfft2_centered(rfft2_centered(plain) * values, width=N)
    torch.testing.assert_close(with_ctf, expected, rtol=1e-9, atol=1e-9)
    assert _rel(with_ctf, plain) > 0.3  # the CTF really changed the images
