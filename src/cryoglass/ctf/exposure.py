r"""Radiation damage as a frequency-dependent envelope: the exposure filter of Grant & Grigorieff.

Each electron that passes the specimen destroys a little of its high-resolution structure.  Grant
& Grigorieff (2015) measured, on rotavirus VP6 at 300 kV, the *critical exposure* ``N_e(k)``: the
accumulated exposure [e⁻/Å²] at which the amplitude at spatial frequency ``k`` [1/Å] has fallen
to ``1/e`` of its undamaged value (their eq. 3),

.. math:: N_e(k) = a\,k^{b} + c, \qquad a = 0.245,\; b = -1.665,\; c = 2.81,

so the amplitude after an accumulated exposure ``N`` is multiplied by

.. math:: q(k, N) = \exp\!\Big(-\frac{N}{2 N_e(k)}\Big)

(eq. 5: the 2 turns the intensity decay into an amplitude decay).  Lower voltages damage more
per electron: RELION divides the exposure by 0.8 at 200 kV and by 0.64 at 100 kV (as does
MotionCor2), which :func:`voltage_exposure_scale` returns.

*Dose weighting* (eq. 9) sums the frames ``F_f(k)`` of a movie with the weights ``q_f(k)``,

.. math:: S(k) = \frac{\sum_f q_f(k)\, F_f(k)}{\sqrt{\sum_f q_f(k)^2}},

which maximises the SNR of the sum at every frequency when frame ``f`` carries signal
``q_f(k)`` and white noise of equal variance.  RELION 3.1 (``relion_run_motioncorr --use_own``)
evaluates ``q_f`` at the exposure **at the end** of frame ``f``, ``N_f = N_0 + f·D`` with
``f = 1 … n`` and ``D`` the dose per frame; :func:`frame_exposures` gives these.

References
----------
Grant, T. & Grigorieff, N. (2015). Measuring the optimal exposure for single particle cryo-EM
using a 2.6 Å reconstruction of rotavirus VP6. eLife 4, e06980.
https://doi.org/10.7554/eLife.06980
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "critical_exposure",
    "dose_weights",
    "exposure_filter",
    "frame_exposures",
    "voltage_exposure_scale",
]

#: Grant & Grigorieff (2015), eq. 3 (300 kV): ``N_e(k) = a k^b + c`` with k in 1/Å.
CRITICAL_EXPOSURE_A = 0.245
CRITICAL_EXPOSURE_B = -1.665
CRITICAL_EXPOSURE_C = 2.81


def critical_exposure(frequency_inv_angstrom: torch.Tensor) -> torch.Tensor:
    r"""Critical exposure ``N_e(k) = 0.245 k^{−1.665} + 2.81`` [e⁻/Å²] at 300 kV.

    Parameters
    ----------
    frequency_inv_angstrom : Tensor, shape (...)
        Spatial frequency ``|k|`` [1/Å] (≥ 0; ``k = 0`` gives ``+inf``: no damage at DC).

    Returns
    -------
    Tensor, shape (...)

    References
    ----------
    Grant & Grigorieff (2015), eq. 3, https://doi.org/10.7554/eLife.06980

    Examples
    --------
    >>> round(float(critical_exposure(torch.tensor(1 / 3.0))), 2)  # at 3 Å [e⁻/Å²]
    4.34
    """
    k = torch.as_tensor(frequency_inv_angstrom)
    return CRITICAL_EXPOSURE_A * k.pow(CRITICAL_EXPOSURE_B) + CRITICAL_EXPOSURE_C


def voltage_exposure_scale(voltage_kv: float) -> float:
    """Factor that converts an exposure at ``voltage_kv`` into the equivalent one at 300 kV.

    1 at 300 kV, 1/0.8 at 200 kV, 1/0.64 at 100 kV (as RELION and MotionCor2); other voltages
    are interpolated linearly in these three points (and held constant outside them).

    Examples
    --------
    >>> voltage_exposure_scale(200.0)
    1.25
    """
    points = ((100.0, 1 / 0.64), (200.0, 1 / 0.8), (300.0, 1.0))
    if voltage_kv <= points[0][0]:
        return points[0][1]
    if voltage_kv >= points[-1][0]:
        return points[-1][1]
    for (v0, s0), (v1, s1) in zip(points[:-1], points[1:], strict=True):
        if v0 <= voltage_kv <= v1:
            return s0 + (s1 - s0) * (voltage_kv - v0) / (v1 - v0)
    raise AssertionError("unreachable")


def frame_exposures(
    n_frames: int, *, dose_per_frame: float, pre_exposure: float = 0.0, at: str = "end"
) -> torch.Tensor:
    """Accumulated exposure [e⁻/Å²] of each frame of a movie.

    Parameters
    ----------
    n_frames : int
    dose_per_frame : float
        Exposure per frame [e⁻/Å²] (> 0).
    pre_exposure : float
        Exposure before the first frame [e⁻/Å²].
    at : {"end", "middle", "start"}
        Where in each frame: ``"end"`` (RELION's dose weighting) gives ``N_0 + f D``,
        ``"middle"`` ``N_0 + (f − ½) D``, ``"start"`` ``N_0 + (f − 1) D`` for ``f = 1 … n``.

    Returns
    -------
    Tensor, float64, shape (n_frames,)

    Examples
    --------
    >>> frame_exposures(3, dose_per_frame=2.0).tolist()
    [2.0, 4.0, 6.0]
    """
    if n_frames < 1 or not dose_per_frame > 0:
        raise ValueError(
            f"need n_frames >= 1 and dose_per_frame > 0, got {n_frames}, {dose_per_frame}"
        )
    offset = {"end": 0.0, "middle": 0.5, "start": 1.0}
    if at not in offset:
        raise ValueError(f"at must be 'end', 'middle' or 'start', got {at!r}")
    frames = torch.arange(1, n_frames + 1, dtype=torch.float64)
    return pre_exposure + (frames - offset[at]) * dose_per_frame


def exposure_filter(
    frequency_inv_angstrom: torch.Tensor,
    exposure_e_per_a2: torch.Tensor | float,
    *,
    voltage_kv: float = 300.0,
) -> torch.Tensor:
    r"""Amplitude that survives an accumulated exposure: ``exp(−N / (2 N_e(k)))``.

    Parameters
    ----------
    frequency_inv_angstrom : Tensor, shape (*grid)
        ``|k|`` [1/Å].
    exposure_e_per_a2 : float or Tensor, shape (*batch)
        Accumulated exposure ``N`` [e⁻/Å²] at ``voltage_kv``.
    voltage_kv : float
        Converted to the 300 kV equivalent with :func:`voltage_exposure_scale`.

    Returns
    -------
    Tensor, shape (*batch, *grid)
        In (0, 1]; 1 at ``k = 0``.

    References
    ----------
    Grant & Grigorieff (2015), eq. 5, https://doi.org/10.7554/eLife.06980

    Examples
    --------
    >>> k = torch.tensor([0.0, 0.1, 0.25])
    >>> exposure_filter(k, torch.tensor([10.0])).round(decimals=3)
    tensor([[1.0000, 0.7020, 0.3870]])
    """
    k = torch.as_tensor(frequency_inv_angstrom)
    dtype = k.dtype if k.is_floating_point() else torch.float64
    k = k.to(dtype)
    exposure = torch.as_tensor(exposure_e_per_a2, dtype=dtype, device=k.device)
    exposure = exposure * voltage_exposure_scale(voltage_kv)
    if bool((exposure < 0).any()):
        raise ValueError("exposures must be >= 0")
    ne = critical_exposure(k)  # inf at k = 0 -> weight 1
    return torch.exp(-exposure.reshape(tuple(exposure.shape) + (1,) * k.ndim) / (2 * ne))


def dose_weights(
    frequency_inv_angstrom: torch.Tensor,
    exposures_e_per_a2: torch.Tensor,
    *,
    voltage_kv: float = 300.0,
) -> torch.Tensor:
    r"""Per-frame dose-weighting filters ``q_f(k) / √(Σ_f q_f(k)²)`` (Grant & Grigorieff eq. 9).

    Parameters
    ----------
    frequency_inv_angstrom : Tensor, shape (*grid)
        ``|k|`` [1/Å] of the frames' Fourier grid.
    exposures_e_per_a2 : Tensor, shape (n_frames,)
        Accumulated exposure of each frame (:func:`frame_exposures`).
    voltage_kv : float

    Returns
    -------
    Tensor, shape (n_frames, *grid)
        Multiply frame ``f``'s transform by row ``f`` and add the frames.  The squares of a
        column add to 1, so white noise keeps its variance in the weighted sum.

    Examples
    --------
    >>> w = dose_weights(torch.tensor([0.0, 0.3]), frame_exposures(4, dose_per_frame=5.0))
    >>> w.pow(2).sum(0).tolist()  # doctest: +ELLIPSIS
    [1.0..., 1.0...]
    """
    exposures = torch.as_tensor(exposures_e_per_a2)
    if exposures.ndim != 1:
        raise ValueError(f"exposures must be 1-D (one per frame), got {tuple(exposures.shape)}")
    q = exposure_filter(frequency_inv_angstrom, exposures, voltage_kv=voltage_kv)
    norm = q.pow(2).sum(dim=0, keepdim=True).sqrt().clamp_min(math.ulp(1.0))
    return q / norm
