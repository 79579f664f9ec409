"""Particle picking (preprocess.pick): binning, LoG, templates, peaks, thresholds, scoring."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.ctf import CTFParams
from cryoglass.ctf.correct import multiply_ctf
from cryoglass.preprocess.pick import (
    bin_micrograph,
    find_peaks,
    log_figure_of_merit,
    match_picks,
    otsu_threshold,
    prepare_templates,
    template_figure_of_merit,
    working_pixel_size,
)


def _asymmetric_particle(size: int) -> torch.Tensor:
    """An L-shaped blob (bright), centred at size//2: its in-plane angle is well defined."""
    y, x = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    c = size // 2
    arm1 = torch.exp(-(((x - c - 4) / 7) ** 2 + ((y - c) / 2.5) ** 2))
    arm2 = torch.exp(-(((x - c + 2) / 2.5) ** 2 + ((y - c - 5) / 6) ** 2))
    return arm1 + arm2


def _field(particle: torch.Tensor, positions, angles, size: int, generator) -> torch.Tensor:
    """Particles (rotated copies) added at integer positions of an empty (size, size) field."""
    from cryoglass.classify.geometry2d import rotate_images

    field = torch.zeros(size, size)
    b = particle.shape[-1]
    for (x, y), psi in zip(positions, angles, strict=True):
        rotated = rotate_images(particle[None], torch.tensor([float(psi)]))[0]
        field[y - b // 2 : y - b // 2 + b, x - b // 2 : x - b // 2 + b] += rotated
    return field


def _grid_positions(count: int, size: int, spacing: int, generator) -> list[tuple[int, int]]:
    """Non-overlapping random positions on a jittered grid."""
    cells = [(i, j) for i in range(1, size // spacing - 1) for j in range(1, size // spacing - 1)]
    chosen = torch.randperm(len(cells), generator=generator)[:count]
    jitter = torch.randint(-spacing // 6, spacing // 6 + 1, (count, 2), generator=generator)
    return [
        (cells[c][0] * spacing + int(jx), cells[c][1] * spacing + int(jy))
        for c, (jx, jy) in zip(chosen.tolist(), jitter.tolist(), strict=True)
    ]


def test_working_pixel_and_binning_scale_coordinates():
    assert working_pixel_size(1.0, 240.0) == 10.0
    assert working_pixel_size(12.0, 100.0) == 12.0  # never finer than the data
    image = torch.zeros(600, 800)
    y, x = torch.meshgrid(torch.arange(600.0), torch.arange(800.0), indexing="ij")
    image += torch.exp(-((x - 400) ** 2 + (y - 240) ** 2) / (2 * 20.0**2))
    binned, binning = bin_micrograph(
        image, pixel_size_angstrom=1.0, working_pixel_size_angstrom=4.0
    )
    assert binned.shape == (150, 200) and binning.scale == (4.0, 4.0)
    row, col = divmod(int(binned.argmax()), 200)
    assert binning.to_original(torch.tensor([col, row])).tolist() == [400.0, 240.0]
    assert float(binned.mean()) == pytest.approx(float(image.mean()), rel=1e-4)


@pytest.mark.parametrize(("size", "binned"), [((600, 800), 4.0), ((599, 801), 3.3)])
def test_binned_positions_map_back_to_the_original(size, binned):
    """A blob at a known position is found at the same original position after binning
    (odd and even sizes: Fourier cropping keeps the pixel at N//2 in place)."""
    h, w = size
    y, x = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    for cx, cy in ((133.0, 91.0), (517.0, 402.0)):
        image = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 25.0**2))
        small, binning = bin_micrograph(
            image, pixel_size_angstrom=1.0, working_pixel_size_angstrom=binned
        )
        yy, xx = torch.meshgrid(torch.arange(float(small.shape[0])),
                                torch.arange(float(small.shape[1])), indexing="ij")  # fmt: skip
        weights = small.clamp_min(0) ** 4
        centre = torch.stack([(weights * xx).sum(), (weights * yy).sum()]) / weights.sum()
        found = binning.to_original(centre)
        assert torch.allclose(found, torch.tensor([cx, cy], dtype=torch.float64), atol=0.3)
        assert torch.allclose(binning.to_binned(found), centre.double(), atol=1e-9)


def test_peaks_respect_distance_border_and_threshold(generator):
    fom = torch.rand(100, 120, generator=generator)
    coords, values = find_peaks(fom, min_distance_px=10.0, border_px=6.0, threshold=0.5)
    assert bool((values >= 0.5).all()) and bool((values[:-1] >= values[1:]).all())
    assert bool((coords[:, 0] >= 6).all() and (coords[:, 0] <= 113).all())
    assert bool((coords[:, 1] >= 6).all() and (coords[:, 1] <= 93).all())
    distances = torch.cdist(coords, coords) + 1e9 * torch.eye(len(coords))
    assert float(distances.min()) >= 10.0
    for (x, y), v in zip(coords.long().tolist(), values.tolist(), strict=True):
        assert fom[y, x] == v


def test_otsu_separates_two_populations(generator):
    for gap in (4.0, 8.0):
        values = torch.cat(
            [
                torch.randn(2000, generator=generator),
                gap + 0.5 * torch.randn(200, generator=generator),
            ]
        )
        threshold = otsu_threshold(values)
        assert 1.0 < threshold < gap - 1.0
    assert otsu_threshold(torch.tensor([3.0])) == 3.0


def test_match_picks_counts_each_truth_once():
    truth = torch.tensor([[0.0, 0.0], [100.0, 0.0], [200.0, 0.0]])
    picks = torch.tensor([[1.0, 1.0], [2.0, 0.0], [103.0, 0.0], [500.0, 500.0]])
    m = match_picks(picks, truth, tolerance_px=5.0)
    assert (m.true_positives, m.false_positives, m.false_negatives) == (2, 2, 1)
    assert m.precision == 0.5 and m.recall == pytest.approx(2 / 3)
    perfect = match_picks(truth, truth, tolerance_px=1.0)
    assert perfect.f1 == 1.0
    assert match_picks(torch.zeros(0, 2), truth, tolerance_px=1.0).f1 == 0.0


@pytest.mark.parametrize(("noise", "min_f1"), [(0.5, 0.98), (1.5, 0.9)])
def test_log_finds_dark_discs_in_noise(noise, min_f1, generator):
    size, diameter = 512, 24
    positions = _grid_positions(40, size, 40, generator)
    y, x = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    field = torch.zeros(size, size)
    for px, py in positions:
        r2 = (x - px) ** 2 + (y - py) ** 2
        field += torch.clamp(1 - r2 / (diameter / 2) ** 2, min=0).sqrt()  # a sphere's projection
    micrograph = -field + noise * torch.randn(size, size, generator=generator)
    fom, _ = log_figure_of_merit(micrograph, diameters_px=[20.0, 24.0, 28.0])
    coords, values = find_peaks(fom, min_distance_px=diameter * 0.8, border_px=diameter / 2)
    picks = coords[values >= otsu_threshold(values)]
    truth = torch.tensor(positions, dtype=torch.float64)
    assert match_picks(picks, truth, tolerance_px=diameter / 4).f1 >= min_f1


def test_log_ignores_bright_blobs_unless_asked(generator):
    y, x = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    blob = torch.exp(-((x - 64) ** 2 + (y - 64) ** 2) / 50)
    dark, _ = log_figure_of_merit(blob, diameters_px=[14.0])
    bright, _ = log_figure_of_merit(blob, diameters_px=[14.0], invert=False)
    assert float(bright[64, 64]) > 10 and float(dark[64, 64]) < 0


def test_template_matching_finds_rotated_ctf_filtered_particles(generator):
    size, box, pixel = 384, 32, 4.0
    particle = _asymmetric_particle(box)
    positions = _grid_positions(25, size, 48, generator)
    angles = (torch.rand(25, generator=generator) * 360).tolist()
    ctf = CTFParams(15000.0, 14000.0, astigmatism_angle_deg=20.0)
    field = _field(particle, positions, angles, size, generator)
    clean = -multiply_ctf(field, ctf, pixel_size_angstrom=pixel)  # protein dark, CTF applied
    micrograph = clean + 0.8 * float(clean.std()) * torch.randn(size, size, generator=generator)
    templates, mask, index, psi = prepare_templates(
        particle[None],
        pixel_size_angstrom=pixel,
        working_pixel_size_angstrom=pixel,
        psi_deg=torch.arange(0.0, 360.0, 10.0),
        ctf=ctf,
        mask_diameter_angstrom=box * pixel,
    )
    assert templates.shape == (36, box, box) and bool((index == 0).all())
    fom, best = template_figure_of_merit(micrograph, templates, mask)
    coords, values = find_peaks(fom, min_distance_px=box * 0.7, border_px=box / 2)
    keep = values >= otsu_threshold(values)
    picks = coords[keep]
    truth = torch.tensor(positions, dtype=torch.float64)
    assert match_picks(picks, truth, tolerance_px=4.0).f1 >= 0.95
    # the best template's angle is the particle's (to the 10° sampling)
    chosen = best[picks[:, 1].long(), picks[:, 0].long()]
    for (px, py), angle in zip(picks.tolist(), psi[chosen].tolist(), strict=True):
        nearest = int(torch.cdist(torch.tensor([[px, py]], dtype=torch.float64), truth).argmin())
        error = (angle - angles[nearest] + 180.0) % 360.0 - 180.0
        assert abs(error) <= 10.0


def test_template_mask_and_normalisation():
    templates, mask, _, _ = prepare_templates(
        torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1)),
        pixel_size_angstrom=2.0,
        working_pixel_size_angstrom=4.0,
        psi_deg=None,
        ctf=None,
        mask_diameter_angstrom=60.0,
    )
    assert templates.shape == (3, 20, 20) and mask.shape == (20, 20)
    assert float(mask.max()) == 1.0 and float(mask[0, 0]) == 0.0
    assert math.isclose(float(mask[10, 10]), 1.0)
