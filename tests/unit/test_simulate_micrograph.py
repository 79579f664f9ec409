"""Simulated micrographs and movies: layout, ice, motion, CTF and counts against their truth."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.ctf import ctf_2d
from cryoglass.fourier.radial import radial_average
from cryoglass.simulate.micrograph import (
    AMORPHOUS_CARBON,
    VITREOUS_ICE,
    Exposure,
    Microscope,
    Specimen,
    amorphous_projected_potential,
    beam_motion,
    mean_inner_potential_volt,
    place_particles,
    simulate_micrograph,
)
from cryoglass.simulate.phantom import gaussian_map

PIXEL = 2.0


@pytest.fixture(scope="module")
def volume() -> torch.Tensor:
    """A small asymmetric particle, about 10 V at its peak, in a 24³ box at 2 Å."""
    g = torch.Generator().manual_seed(3)
    centres = (torch.rand(12, 3, generator=g) - 0.5) * 16
    v = gaussian_map(centres, shape=(24, 24, 24), pixel_size_angstrom=PIXEL, sigma_angstrom=2.5)
    return 10 * v / v.max()


def _micrograph(volume, **kwargs):
    specimen = kwargs.pop("specimen", Specimen(shape_px=(128, 128), crowding=0.25))
    microscope = kwargs.pop(
        "microscope",
        Microscope(
            pixel_size_angstrom=PIXEL, defocus_min_angstrom=12000, defocus_max_angstrom=15000
        ),
    )
    exposure = kwargs.pop("exposure", Exposure(n_frames=4, dose_per_frame=5.0))
    return simulate_micrograph(
        volume, microscope=microscope, specimen=specimen, exposure=exposure, **kwargs
    )


def test_particles_do_not_overlap_and_respect_the_allowed_region():
    g = torch.Generator().manual_seed(0)
    p = place_particles(
        200,
        shape_px=(300, 300),
        min_distance_px=20.0,
        generator=g,
        allowed=lambda q: q[:, 0] < 150,
    )
    assert 50 < len(p) <= 200
    assert float(torch.pdist(p).min()) >= 20.0
    assert bool((p[:, 0] < 150).all())
    # a jammed area returns fewer than asked
    jammed = place_particles(1000, shape_px=(100, 100), min_distance_px=20.0, generator=g)
    assert len(jammed) < 40


def test_ice_fluctuations_grow_with_thickness_and_ring_at_3_7_angstrom():
    def ice(t):
        g = torch.Generator().manual_seed(1)
        return amorphous_projected_potential(
            (256, 256),
            pixel_size_angstrom=1.0,
            thickness_angstrom=t,
            material=VITREOUS_ICE,
            generator=g,
        )

    thin, thick = ice(100.0), ice(400.0)
    assert float(thick.std() / thin.std()) == pytest.approx(2.0, rel=1e-4)  # ∝ √t
    spectrum = torch.fft.fftshift(torch.fft.fft2(thick).abs() ** 2)
    profile = radial_average(spectrum, ndim=2)
    shells = torch.arange(len(profile)) / 256.0  # 1/Å
    peak = float(shells[20:][profile[20:].argmax()])  # beyond the low-frequency rise
    assert peak == pytest.approx(1 / 3.7, abs=0.02)


def test_carbon_mean_inner_potential_is_about_ten_volts():
    assert 9.0 < mean_inner_potential_volt(AMORPHOUS_CARBON) < 13.0
    assert 3.0 < mean_inner_potential_volt(VITREOUS_ICE) < 6.0  # ~4.5 V measured for ice


def test_beam_motion_starts_at_rest_and_has_the_asked_path_and_local_rms():
    exposure = Exposure(n_frames=12, drift_angstrom=30.0, local_motion_angstrom=3.0)
    m = beam_motion(
        exposure,
        shape_px=(200, 300),
        pixel_size_angstrom=1.5,
        generator=torch.Generator().manual_seed(2),
    )
    assert m.global_px[0].tolist() == [0.0, 0.0]
    path = float(m.global_px.diff(dim=0).norm(dim=1).sum())
    assert path == pytest.approx(30.0 / 1.5)
    # speeds decay (beam-induced motion is fastest at the start)
    speed = m.global_px.diff(dim=0).norm(dim=1)
    assert float(speed[0]) > float(speed[-1])
    assert m.local_scale[0] == 0 and float(m.local_scale[-1]) == pytest.approx(1.0)
    ys, xs = torch.meshgrid(torch.linspace(0, 199, 40), torch.linspace(0, 299, 40), indexing="ij")
    points = torch.stack([xs, ys], dim=-1).reshape(-1, 2).double()
    field = m.local_field_px(points)
    assert float(field.mean(0).norm()) < 0.05
    rms = float(field.pow(2).sum(-1).mean().sqrt())
    assert rms == pytest.approx(3.0 / 1.5, rel=0.05)
    shifts = m.relion_shifts_px(points)
    assert torch.allclose(shifts[-1], -(m.global_px[-1] + field))
    assert torch.equal(m.relion_shifts_px(), -m.global_px)


def test_same_seed_same_micrograph_other_index_other_micrograph(volume):
    a = _micrograph(volume, index=3, seed=5)
    b = _micrograph(volume, index=3, seed=5)
    c = _micrograph(volume, index=4, seed=5)
    assert torch.equal(a.frames, b.frames)
    assert torch.equal(a.truth.coordinates_px, b.truth.coordinates_px)
    assert not torch.equal(a.frames, c.frames)


def test_counts_dose_contrast_and_layout(volume):
    exposure = Exposure(n_frames=3, dose_per_frame=10.0)
    out = _micrograph(3 * volume, index=0, seed=1, exposure=exposure)  # a 30 V particle
    frames, truth = out.frames, out.truth
    assert frames.shape == (3, 128, 128)
    assert bool((frames == frames.round()).all()) and bool((frames >= 0).all())
    # mean counts per pixel per frame: dose × pixel area (contrast averages out to a few %)
    assert float(frames.mean()) == pytest.approx(10.0 * PIXEL**2, rel=0.05)
    xy = truth.coordinates_px
    assert len(xy) >= 3
    diameter = truth.diameter_angstrom / PIXEL
    assert float(torch.pdist(xy).min()) >= diameter - 1e-6
    # no particle crosses the edge of the field of view
    assert bool((xy >= diameter / 2).all()) and bool((xy <= 127 - diameter / 2).all())
    # raw-data contrast: protein dark (fewer counts inside the particles' discs than outside)
    total = frames.sum(0)
    ys, xs = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    grid = torch.stack([xs, ys], dim=-1).double().reshape(-1, 1, 2)
    distance = (grid - xy[None]).norm(dim=-1).min(dim=1).values.reshape(128, 128)
    inside, outside = total[distance < diameter / 3], total[distance > diameter]
    assert (
        float(inside.mean()) < float(outside.mean()) - 3 * float(outside.std()) / len(inside) ** 0.5
    )


def test_thon_rings_follow_the_truth_ctf(volume):
    specimen = Specimen(shape_px=(256, 256), crowding=0.3, ice_thickness_angstrom=200.0)
    out = _micrograph(volume, index=1, seed=2, specimen=specimen, movie=False)
    image = out.micrograph - out.micrograph.mean()
    power = torch.fft.fftshift(torch.fft.fft2(image).abs() ** 2)
    power = power[:, 128:]  # the kx >= 0 half, as the centred rfft grid

    def fit(ctf):
        c2 = ctf_2d(ctf, image_size=256, pixel_size_angstrom=PIXEL)[:, :128] ** 2
        k = torch.fft.fftshift(torch.fft.fftfreq(256, d=PIXEL))
        band = (k[:, None] ** 2 + (torch.arange(128) / (256 * PIXEL))[None, :] ** 2).sqrt()
        sel = (band > 1 / 60) & (band < 1 / 8)
        a, b = power[sel] - power[sel].mean(), c2[sel] - c2[sel].mean()
        return float((a * b).sum() / (a.norm() * b.norm()))

    truth = out.truth.ctf
    right = fit(truth)
    for wrong in (0.9, 1.1):
        import dataclasses

        other = dataclasses.replace(
            truth,
            defocus_u_angstrom=truth.defocus_u_angstrom * wrong,
            defocus_v_angstrom=truth.defocus_v_angstrom * wrong,
        )
        assert right > fit(other) + 0.02


def test_gain_and_carbon(volume):
    specimen = Specimen(shape_px=(128, 128), crowding=0.2, carbon_edge=True)
    exposure = Exposure(n_frames=3, dose_per_frame=10.0, gain_spread=0.1)
    out = _micrograph(volume, index=0, seed=4, specimen=specimen, exposure=exposure)
    assert 0.1 < out.truth.carbon_fraction < 0.4
    corrected = out.frames * out.gain
    assert float(corrected.mean()) == pytest.approx(10.0 * PIXEL**2, rel=0.06)
    # raw counts follow 1/gain pixel by pixel
    raw = out.frames.mean(0)
    assert float(torch.corrcoef(torch.stack([raw.flatten(), 1 / out.gain.flatten()]))[0, 1]) > 0.3


def test_frames_move_by_the_true_drift(volume):
    """Frame n, moved back by the true shift, matches frame 1 better than unmoved."""
    exposure = Exposure(
        n_frames=3, dose_per_frame=200.0, drift_angstrom=16.0, local_motion_angstrom=0.0
    )
    specimen = Specimen(shape_px=(128, 128), crowding=0.35, ice_thickness_angstrom=50.0)
    out = _micrograph(volume, index=2, seed=3, specimen=specimen, exposure=exposure)
    first, last = out.frames[0], out.frames[-1]
    shift = out.truth.motion.relion_shifts_px()[-1]  # aligned(r) = frame(r - shift)
    spectrum = torch.fft.fft2(last - last.mean())
    ky = torch.fft.fftfreq(128)[:, None]
    kx = torch.fft.fftfreq(128)[None, :]
    moved = torch.fft.ifft2(
        spectrum * torch.exp(-2j * math.pi * (kx * float(shift[0]) + ky * float(shift[1])))
    ).real
    a = first - first.mean()
    inner = slice(20, 108)

    def cc(x):
        return float(
            torch.corrcoef(torch.stack([a[inner, inner].flatten(), x[inner, inner].flatten()]))[
                0, 1
            ]
        )

    assert cc(moved) > cc(last - last.mean()) + 0.05
