"""CTF agreement with RELION 3.1: ``relion_project --ctf`` of a centred delta.

The 3D Fourier transform of a single voxel at the centre N//2 is flat, so a projection of it
has a flat 2D transform inside RELION's projection radius; with ``--ctf`` that transform is the
CTF itself.  Dividing the transform with ``--ctf`` by the one without removes interpolation and
padding effects exactly, leaving RELION's CTF on the image's rfft grid.

relion_project reads, per particle: rlnDefocusU, rlnDefocusV, rlnDefocusAngle, rlnCtfBfactor,
rlnCtfScalefactor, rlnPhaseShift; from the particle's optics group: rlnVoltage,
rlnSphericalAberration, rlnAmplitudeContrast.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from conftest import run_relion

from cryoglass.ctf import CTFParams, ctf_2d, multiply_ctf
from cryoglass.fourier import rfft2_centered

N = 64
PIXEL = 1.5

# defocus U, V, angle, B, scale, phase shift, optics group
PARTICLES = [
    (10000.0, 8000.0, 30.0, 0.0, 1.0, 0.0, 1),
    (20000.0, 25000.0, -60.0, 50.0, 0.8, 0.0, 1),
    (5000.0, 5500.0, 100.0, 0.0, 1.0, 60.0, 2),
    (15000.0, 12000.0, 150.0, 20.0, 1.0, 0.0, 2),
]
# voltage, Cs, Q0 per optics group
OPTICS = {1: (300.0, 2.7, 0.1), 2: (200.0, 1.4, 0.07)}


def _write_inputs(folder: Path) -> None:
    volume = np.zeros((N, N, N), dtype=np.float32)
    volume[N // 2, N // 2, N // 2] = 1.0
    with mrcfile.new(folder / "delta.mrc", overwrite=True) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = PIXEL
    optics_rows = "\n".join(
        f"opticsGroup{g} {g} {kv} {cs} {q0} {PIXEL} {N} 2" for g, (kv, cs, q0) in OPTICS.items()
    )
    particle_rows = "\n".join(
        f"0 0 0 0 0 {u} {v} {a} {b} {s} {ps} {g}" for (u, v, a, b, s, ps, g) in PARTICLES
    )
    optics_labels = [
        "OpticsGroupName", "OpticsGroup", "Voltage", "SphericalAberration",
        "AmplitudeContrast", "ImagePixelSize", "ImageSize", "ImageDimensionality",
    ]  # fmt: skip
    particle_labels = [
        "AngleRot", "AngleTilt", "AnglePsi", "OriginXAngst", "OriginYAngst", "DefocusU",
        "DefocusV", "DefocusAngle", "CtfBfactor", "CtfScalefactor", "PhaseShift", "OpticsGroup",
    ]  # fmt: skip

    def loop(name: str, labels: list[str], rows: str) -> str:
        header = "\n".join(f"_rln{label} #{i + 1}" for i, label in enumerate(labels))
        return f"\n# version 30001\n\ndata_{name}\n\nloop_\n{header}\n{rows}\n\n"

    text = loop("optics", optics_labels, optics_rows) + loop(
        "particles", particle_labels, particle_rows
    )
    (folder / "in.star").write_text(text)


def _our_params() -> CTFParams:
    columns = list(zip(*PARTICLES, strict=True))
    optics = [OPTICS[g] for g in columns[6]]
    kv, cs, q0 = (torch.tensor(c, dtype=torch.float64) for c in zip(*optics, strict=True))
    u, v, angle, b, scale, shift = (torch.tensor(c, dtype=torch.float64) for c in columns[:6])
    return CTFParams(u, v, angle, kv, cs, q0, shift, b, scale)


@pytest.fixture(scope="module")
def relion_projections(tmp_path_factory) -> tuple[torch.Tensor, torch.Tensor]:
    """relion_project images of the centred delta (N, N, N), with and without --ctf."""
    folder = tmp_path_factory.mktemp("relion_ctf")
    _write_inputs(folder)
    common = ["--i", "delta.mrc", "--ang", "in.star", "--angpix", str(PIXEL)]
    run_relion(["relion_project", *common, "--ctf", "--o", "with_ctf"], cwd=folder)
    run_relion(["relion_project", *common, "--o", "without_ctf"], cwd=folder)
    with_ctf = torch.from_numpy(mrcfile.read(folder / "with_ctf.mrcs").astype(np.float64))
    without = torch.from_numpy(mrcfile.read(folder / "without_ctf.mrcs").astype(np.float64))
    return with_ctf, without


@pytest.fixture(scope="module")
def relion_ctf(relion_projections) -> tuple[torch.Tensor, torch.Tensor]:
    """RELION's CTFs on the centred rfft grid, and the mask where they are defined."""
    with_ctf, without = relion_projections
    f_with, f_without = rfft2_centered(with_ctf), rfft2_centered(without)
    defined = f_without.abs() > 0.5  # inside RELION's projection radius the delta's FT is 1
    assert defined.sum() > 1000
    ratio = torch.where(defined, f_with / torch.where(defined, f_without, 1.0), 0.0)
    assert ratio.imag.abs().max() < 1e-5  # the CTF is real
    return ratio.real, defined


def _agreement(
    ours: torch.Tensor, relion: torch.Tensor, defined: torch.Tensor
) -> tuple[float, float]:
    """(worst correlation over particles, worst absolute difference) inside the mask."""
    correlations, errors = [], []
    for i in range(relion.shape[0]):
        a, b = ours[i][defined[i]], relion[i][defined[i]]
        correlations.append(float(torch.corrcoef(torch.stack([a, b]))[0, 1]))
        errors.append(float((a - b).abs().max()))
    return min(correlations), max(errors)


@pytest.mark.relion
def test_ctf_2d_matches_relion_project(relion_ctf) -> None:
    relion, defined = relion_ctf
    ours = ctf_2d(_our_params(), image_size=N, pixel_size_angstrom=PIXEL, dtype=torch.float64)
    correlation, error = _agreement(ours, relion, defined)
    assert correlation > 0.99999
    # residual: RELION's rounded wavelength constants (6e-6 relative) and 6-digit STAR values
    assert error < 2e-3


@pytest.mark.relion
@pytest.mark.parametrize(
    "wrong",
    ["negated", "swapped_uv", "angle_negated", "no_bfactor_scale_shift", "cs_ignored"],
)
def test_wrong_conventions_do_not_match_relion(relion_ctf, wrong: str) -> None:
    relion, defined = relion_ctf
    p = _our_params()
    sign = 1.0
    if wrong == "negated":
        sign = -1.0
    elif wrong == "swapped_uv":
        p = replace(
            p, defocus_u_angstrom=p.defocus_v_angstrom, defocus_v_angstrom=p.defocus_u_angstrom
        )
    elif wrong == "angle_negated":
        p = replace(p, astigmatism_angle_deg=-p.astigmatism_angle_deg)
    elif wrong == "no_bfactor_scale_shift":
        p = replace(p, bfactor_a2=0.0, scale=1.0, phase_shift_deg=0.0)
    elif wrong == "cs_ignored":
        p = replace(p, cs_mm=0.0)
    ours = sign * ctf_2d(p, image_size=N, pixel_size_angstrom=PIXEL, dtype=torch.float64)
    _, error = _agreement(ours, relion, defined)
    assert error > 0.05


@pytest.mark.relion
def test_multiply_ctf_matches_relion_project_images(relion_projections) -> None:
    with_ctf, without = relion_projections
    ours = multiply_ctf(without, _our_params(), pixel_size_angstrom=PIXEL)
    peak = with_ctf.abs().max()
    assert (ours - with_ctf).abs().max() < 1e-3 * peak
    flipped = multiply_ctf(
        without, replace(_our_params(), astigmatism_angle_deg=0.0), pixel_size_angstrom=PIXEL
    )
    assert (flipped - with_ctf).abs().max() > 1e-2 * peak
