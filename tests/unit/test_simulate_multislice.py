"""Multislice propagation: unitarity, thin-specimen limit, slicing, comparison table."""

import matplotlib
import pytest
import torch

from cryoglass.ctf import CTFParams
from cryoglass.report.figures import plot_thickness_voltage_table
from cryoglass.simulate.image import fft_frequencies, weak_phase_image
from cryoglass.simulate.multislice import (
    bandlimit_mask,
    compare_to_projection,
    fresnel_propagator,
    multislice_exit_wave,
    multislice_image,
    slice_potential,
    stack_volume,
    thickness_voltage_table,
)
from cryoglass.simulate.potential import potential_map

matplotlib.use("Agg")


def _specimen(generator, depth=12, size=48, n=120, z_spread=2.0):
    xyz = torch.randn(n, 3, generator=generator, dtype=torch.float64) * torch.tensor(
        [9.0, 9.0, z_spread]
    )
    v = potential_map(
        xyz,
        ["C", "N", "O"] * (n // 3),
        shape=(depth, size, size),
        pixel_size_angstrom=1.0,
        bfactors_a2=20.0,
        outside="ignore",
        origin_angstrom=torch.zeros(3, dtype=torch.float64),
    )
    return v


CTF0 = CTFParams(10000.0, 10000.0, amplitude_contrast=0.0)


def test_propagation_without_bandlimit_is_unitary(generator):
    v = _specimen(generator, depth=24)
    wave = multislice_exit_wave(v, pixel_size_angstrom=1.0, voltage_kv=300.0, bandlimit=False)
    norm = float((wave.abs() ** 2).mean())
    assert norm == pytest.approx(1.0, abs=1e-6)
    limited = multislice_exit_wave(v, pixel_size_angstrom=1.0, voltage_kv=300.0, bandlimit=True)
    spectrum = torch.fft.fft2(limited).abs()
    outside = bandlimit_mask(48, dtype=torch.float64) == 0
    assert float(spectrum[outside].max()) < 1e-9 * float(spectrum.max())
    assert float((limited.abs() ** 2).mean()) < 1.0


def test_thin_weak_specimen_equals_weak_phase_projection(generator):
    """A 4 Å thin, weak (×0.05) specimen: multislice = weak-phase projection within 0.5 %."""
    v = _specimen(generator, depth=4, z_spread=0.5) * 0.05
    ms = multislice_image(v, CTF0, pixel_size_angstrom=1.0, bandlimit=False) - 1
    weak = weak_phase_image(v.sum(dim=0), CTF0, pixel_size_angstrom=1.0) - 1
    assert float((ms - weak).norm() / weak.norm()) < 5e-3


def test_thick_specimen_departs_from_projection(generator):
    thin = compare_to_projection(
        _specimen(generator, depth=4, z_spread=0.5), CTF0, pixel_size_angstrom=1.0
    )
    thick = stack_volume(
        _specimen(generator, depth=8),
        thickness_angstrom=400.0,
        pixel_size_angstrom=1.0,
        generator=generator,
    )
    far = compare_to_projection(thick, CTF0, pixel_size_angstrom=1.0, slice_thickness_angstrom=4.0)
    assert thin["ncc_projection"] > 0.999
    assert far["relative_error_projection"] > 5 * thin["relative_error_projection"]
    assert far["ncc_projection_high"] < thin["ncc_projection_high"]


def test_fresnel_propagators_compose():
    options = {
        "image_size": 32,
        "pixel_size_angstrom": 1.0,
        "voltage_kv": 200.0,
        "bandlimit": False,
        "dtype": torch.float64,
    }
    a = fresnel_propagator(distance_angstrom=30.0, **options)
    b = fresnel_propagator(distance_angstrom=-12.0, **options)
    c = fresnel_propagator(distance_angstrom=18.0, **options)
    torch.testing.assert_close(a * b, c)
    torch.testing.assert_close(
        fresnel_propagator(distance_angstrom=0.0, **options),
        torch.ones(32, 32, dtype=torch.complex128),
    )
    k2 = (fft_frequencies(32, pixel_size_angstrom=1.0) ** 2).sum(-1)
    assert torch.angle(a)[0, 3].item() == pytest.approx(
        -torch.pi * 0.025079 * 30.0 * float(k2[0, 3]), rel=1e-4
    )


def test_slicing_conserves_projection_and_rejects_bad_thickness(generator):
    v = _specimen(generator, depth=10)
    slices, centers = slice_potential(v, pixel_size_angstrom=0.5, slice_thickness_angstrom=2.0)
    assert slices.shape == (3, 48, 48)  # 4 + 4 + 2 voxels
    torch.testing.assert_close(slices.sum(dim=0), v.sum(dim=0) * 0.5)
    torch.testing.assert_close(centers, torch.tensor([-1.75, 0.25, 1.75], dtype=torch.float64))
    with pytest.raises(ValueError, match="whole"):
        slice_potential(v, pixel_size_angstrom=0.5, slice_thickness_angstrom=0.7)


def test_slice_thickness_converges_and_batch_matches(generator):
    v = _specimen(generator, depth=16)
    fine = multislice_image(v, CTF0, pixel_size_angstrom=1.0, slice_thickness_angstrom=1.0) - 1
    coarse = multislice_image(v, CTF0, pixel_size_angstrom=1.0, slice_thickness_angstrom=2.0) - 1
    assert float((fine - coarse).norm() / fine.norm()) < 0.01
    batch = multislice_image(torch.stack([v, 2 * v]), CTF0, pixel_size_angstrom=1.0) - 1
    torch.testing.assert_close(batch[0], fine, rtol=1e-5, atol=1e-6)


def test_stack_volume_and_table(generator):
    v = _specimen(generator, depth=8, size=32, n=60)
    stacked = stack_volume(v, thickness_angstrom=20.0, pixel_size_angstrom=1.0, generator=generator)
    assert stacked.shape == (20, 32, 32)
    torch.testing.assert_close(stacked.sum(), v.sum() * 2 + v[:4].sum(), rtol=1e-5, atol=0)
    rows = thickness_voltage_table(
        v,
        pixel_size_angstrom=1.0,
        thicknesses_angstrom=[8.0, 64.0],
        voltages_kv=[100.0, 300.0],
        generator=generator,
    )
    assert [(r["thickness_angstrom"], r["voltage_kv"]) for r in rows] == [
        (8.0, 100.0),
        (8.0, 300.0),
        (64.0, 100.0),
        (64.0, 300.0),
    ]
    by = {(r["thickness_angstrom"], r["voltage_kv"]): r for r in rows}
    # thicker and slower is worse; 100 kV electrons get more phase
    assert (
        by[(64.0, 100.0)]["relative_error_projection"]
        > by[(8.0, 100.0)]["relative_error_projection"]
    )
    assert by[(8.0, 100.0)]["max_phase_rad"] > by[(8.0, 300.0)]["max_phase_rad"]
    fig = plot_thickness_voltage_table(rows)
    assert len(fig.axes[0].lines) == 2
    matplotlib.pyplot.close(fig)
