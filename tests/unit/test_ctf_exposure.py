"""The exposure filter of Grant & Grigorieff (2015) and RELION's dose weights."""

from __future__ import annotations

import math

import pytest
import torch

from cryoglass.ctf.exposure import (
    critical_exposure,
    dose_weights,
    exposure_filter,
    frame_exposures,
    voltage_exposure_scale,
)


def test_critical_exposure_is_the_papers_fit():
    # eq. 3: N_e(k) = 0.245 k^-1.665 + 2.81 (e/Å², k in 1/Å)
    for k in (0.05, 0.1, 1 / 3.0, 0.5):
        expected = 0.245 * k**-1.665 + 2.81
        assert float(critical_exposure(torch.tensor(k))) == pytest.approx(expected, rel=1e-6)


def test_filter_is_one_at_dc_and_falls_with_frequency_and_exposure():
    k = torch.linspace(0, 0.5, 51, dtype=torch.float64)
    q = exposure_filter(k, torch.tensor([5.0, 20.0, 60.0]))
    assert torch.allclose(q[:, 0], torch.ones(3, dtype=torch.float64))
    assert bool((q[:, 1:].diff(dim=1) < 0).all())  # falls with k
    assert bool((q.diff(dim=0)[:, 1:] < 0).all())  # falls with exposure
    # amplitude 1/e^(1/2) at the critical exposure (eq. 5)
    ne = critical_exposure(torch.tensor(0.25, dtype=torch.float64))
    assert float(exposure_filter(torch.tensor(0.25), ne)) == pytest.approx(math.exp(-0.5))


def test_lower_voltage_damages_more():
    assert voltage_exposure_scale(300.0) == 1.0
    assert voltage_exposure_scale(200.0) == pytest.approx(1 / 0.8)
    assert voltage_exposure_scale(100.0) == pytest.approx(1 / 0.64)
    k = torch.tensor([0.3])
    assert float(exposure_filter(k, 10.0, voltage_kv=200.0)) < float(exposure_filter(k, 10.0))


def test_frame_exposures_as_relion_counts_them():
    # relion_run_motioncorr: dose AFTER each frame = pre + dose_per_frame * (frame + 1)
    assert frame_exposures(4, dose_per_frame=1.5, pre_exposure=2.0).tolist() == [
        3.5,
        5.0,
        6.5,
        8.0,
    ]
    assert frame_exposures(2, dose_per_frame=2.0, at="middle").tolist() == [1.0, 3.0]
    with pytest.raises(ValueError):
        frame_exposures(0, dose_per_frame=1.0)
    with pytest.raises(ValueError):
        frame_exposures(3, dose_per_frame=1.0, at="later")


def test_dose_weights_are_relions_normalised_weights():
    k = torch.linspace(0, 0.4, 9, dtype=torch.float64)
    exposures = frame_exposures(12, dose_per_frame=3.0)
    w = dose_weights(k, exposures)
    assert w.shape == (12, 9)
    assert torch.allclose(w.pow(2).sum(0), torch.ones(9, dtype=torch.float64))
    # RELION's formula (doseWeighting): exp(-N / (2 Ne)) / sqrt(sum_f exp(-N_f / Ne))
    ne = 0.245 * k[1:] ** -1.665 + 2.81
    raw = torch.exp(-exposures[:, None] / (2 * ne))
    assert torch.allclose(w[:, 1:], raw / raw.pow(2).sum(0).sqrt())
    # early frames carry more weight at high frequency, equal weights at DC
    assert bool((w[:, -1].diff() < 0).all())
    assert torch.allclose(w[:, 0], torch.full((12,), 12**-0.5, dtype=torch.float64))
