"""Map tools against the RELION 3.1 binaries: relion_mask_create, relion_image_handler
--rescale_angpix/--new_box, relion_postprocess --locres and postprocess.star/_fsc.xml.

Criteria (issue 20): masks equal to float precision; resampled maps and particles equal away
from the new Nyquist frequency (RELION keeps one of the two bins that fold onto it, cryoglass
their sum); the median local resolution inside the mask within 5 % of RELION's; the FSC files
with RELION's layout.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import starfile
import torch
from conftest import run_relion

from cryoglass.fourier import apply_bfactor, lowpass
from cryoglass.fourier.rescale import center_window, rescaled_box_size, resize_fourier
from cryoglass.io import read_mrc, read_particles, write_mrc
from cryoglass.io.fsc_tables import fsc_star_tables, write_fsc_xml
from cryoglass.simulate import gaussian_map
from cryoglass.validate import auto_mask, fsc_summary, masked_fsc
from cryoglass.validate.localres import LocalResolutionParams, local_resolution
from cryoglass.validate.masks import mask_from_map


def _atoms(box: int, pixel: float, *, seed: int, fill: float = 0.36) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(3000 * (box / 96) ** 3)
    directions = torch.randn(n, 3, generator=g, dtype=torch.float64)
    radii = fill * box * pixel * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    centers = directions / directions.norm(dim=1, keepdim=True) * radii
    return gaussian_map(centers, shape=(box,) * 3, pixel_size_angstrom=pixel, sigma_angstrom=1.0)


# ------------------------------------------------------------------------ relion_mask_create
@pytest.mark.relion
@pytest.mark.parametrize(
    ("threshold", "extend", "edge", "lowpass_a"),
    [(0.2, 2.0, 4.0, 7.0), (0.2, -2.0, 3.5, None), (0.1, -1.5, 6.0, 10.0), (0.05, 3.0, 0.0, 15.0)],
)
def test_mask_matches_relion_mask_create(tmp_path, threshold, extend, edge, lowpass_a):
    volume = lowpass(
        _atoms(48, 1.0, seed=2, fill=0.3), ndim=3, resolution_angstrom=4.0, pixel_size_angstrom=1.0
    )
    g = torch.Generator().manual_seed(3)
    volume = volume / volume.max() + 0.05 * torch.randn(
        volume.shape, generator=g, dtype=torch.float64
    )
    write_mrc(tmp_path / "map.mrc", volume.float(), pixel_size_angstrom=1.0)
    volume = read_mrc(tmp_path / "map.mrc")[0].double()
    args = ["relion_mask_create", "--i", "map.mrc", "--o", "rel.mrc"]
    args += ["--ini_threshold", str(threshold), "--extend_inimask", str(extend)]
    args += ["--width_soft_edge", str(edge)] + (["--lowpass", str(lowpass_a)] if lowpass_a else [])
    run_relion(args, cwd=tmp_path)
    relion, _ = read_mrc(tmp_path / "rel.mrc")
    ours, _ = mask_from_map(
        volume, threshold=threshold, extend_px=extend, soft_edge_px=edge,
        lowpass_angstrom=lowpass_a, pixel_size_angstrom=1.0,
    )  # fmt: skip
    assert 0.01 < float((relion > 0.5).double().mean()) < 0.9  # a mask, not all or nothing
    np.testing.assert_allclose(ours.numpy(), relion.double().numpy(), atol=1e-5)


# ------------------------------------------------------------------------ relion_image_handler
def _away_from_nyquist(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Drop the outermost Fourier bins (where the two Nyquist conventions differ)."""
    n = x.shape[-1]
    return resize_fourier(x.double(), (n - 2,) * ndim)


@pytest.mark.relion
@pytest.mark.parametrize(
    ("box", "pixel", "new_pixel", "new_box"), [(64, 1.5, 2.3, None), (60, 2.0, 1.3, 100)]
)
def test_map_rescale_and_window_match_relion_image_handler(
    tmp_path, box, pixel, new_pixel, new_box
):
    volume = _atoms(box, pixel, seed=4)
    if new_pixel < pixel:  # RELION's padding drops the corners beyond the input's Nyquist sphere
        volume = lowpass(volume, ndim=3, resolution_angstrom=2.2 * pixel, pixel_size_angstrom=pixel)
    write_mrc(tmp_path / "map.mrc", volume.float(), pixel_size_angstrom=pixel)
    volume = read_mrc(tmp_path / "map.mrc")[0].double()
    args = ["relion_image_handler", "--i", "map.mrc", "--o", "rel.mrc", "--angpix", str(pixel)]
    args += ["--rescale_angpix", str(new_pixel)] + (["--new_box", str(new_box)] if new_box else [])
    run_relion(args, cwd=tmp_path)
    relion, info = read_mrc(tmp_path / "rel.mrc")
    fourier_box, actual = rescaled_box_size(
        box, pixel_size_angstrom=pixel, new_pixel_size_angstrom=new_pixel
    )
    assert info.voxel_size_angstrom[0] == pytest.approx(actual, rel=1e-5)
    ours = center_window(resize_fourier(volume, (fourier_box,) * 3), (new_box or fourier_box,) * 3)
    assert ours.shape == relion.shape
    scale = float(relion.double().std())
    if new_box is None:  # down-sampling: the conventions differ only at the new Nyquist
        diff = _away_from_nyquist(ours, 3) - _away_from_nyquist(relion, 3)
    else:  # up-sampling a map whose spectrum lies inside the input's Nyquist sphere
        diff = ours - relion.double()
    assert float(diff.abs().max()) < 2e-3 * scale


@pytest.mark.relion
def test_particles_rescale_matches_relion_image_handler(tmp_path, shared_data):
    folder = shared_data / "particles" / "relion31_5ptcl"
    for name in ("relion31.star", "relion31.mrcs"):
        shutil.copy(folder / name, tmp_path / name)
    # RELION takes the pixel size from the stack's header (1.0, unset) unless told: tell it
    args = ["relion_image_handler", "--i", "relion31.star", "--o", "r5", "--rescale_angpix", "5.0"]
    run_relion([*args, "--angpix", "2.806"], cwd=tmp_path)
    from typer.testing import CliRunner

    from cryoglass.cli.main import app

    result = CliRunner().invoke(
        app,
        [
            "resample",
            str(tmp_path / "relion31.star"),
            "--apix",
            "5.0",
            "--out",
            str(tmp_path / "ours.star"),
        ],
    )
    assert result.exit_code == 0, result.output
    relion_star, ours_star = (
        starfile.read(tmp_path / "relion31_r5.star"),
        starfile.read(tmp_path / "ours.star"),
    )
    for column in ("rlnImagePixelSize", "rlnImageSize"):
        assert float(ours_star["optics"][column].iloc[0]) == pytest.approx(
            float(relion_star["optics"][column].iloc[0]), rel=1e-6
        )
    for column in ("rlnOriginXAngst", "rlnOriginYAngst", "rlnAngleRot", "rlnDefocusU"):
        np.testing.assert_allclose(
            ours_star["particles"][column], relion_star["particles"][column], atol=1e-5
        )
    ours = read_particles(tmp_path / "ours.star")
    relion_images, _ = read_mrc(tmp_path / "relion31_r5.mrcs")
    ours_images, _ = read_mrc(ours.image_files[0])
    scale = float(relion_images.double().std())
    diff = _away_from_nyquist(ours_images, 2) - _away_from_nyquist(relion_images, 2)
    assert float(diff.abs().max()) < 1e-5 * scale


# --------------------------------------------------------------- relion_postprocess --locres
def _local_maps(folder: Path, *, box: int, pixel: float, noise: float, seed: int):
    truth = _atoms(box, pixel, seed=seed)
    right = torch.arange(box) >= box // 2
    truth = torch.where(
        right, apply_bfactor(truth, ndim=3, bfactor_a2=500.0, pixel_size_angstrom=pixel), truth
    )
    truth = apply_bfactor(truth, ndim=3, bfactor_a2=30.0, pixel_size_angstrom=pixel)
    g = torch.Generator().manual_seed(seed + 100)
    sigma = noise * float(truth.std())
    maps = {
        "half1": truth + sigma * torch.randn(truth.shape, generator=g, dtype=torch.float64),
        "half2": truth + sigma * torch.randn(truth.shape, generator=g, dtype=torch.float64),
        "mask": auto_mask(truth, pixel_size_angstrom=pixel),
    }
    for name, volume in maps.items():
        write_mrc(folder / f"{name}.mrc", volume.float(), pixel_size_angstrom=pixel)
    return {name: read_mrc(folder / f"{name}.mrc")[0] for name in maps}


@pytest.mark.relion
@pytest.mark.parametrize(
    ("box", "pixel", "noise", "sampling", "seed"),
    [
        (64, 2.0, 3.0, 25.0, 1),
        (64, 1.6, 6.0, 16.0, 2),
        pytest.param(96, 1.5, 4.0, 25.0, 3, marks=pytest.mark.slow),
        pytest.param(80, 1.5, 2.0, 12.0, 4, marks=pytest.mark.slow),
    ],
)
def test_local_resolution_median_within_5_percent_of_relion(
    tmp_path, box, pixel, noise, sampling, seed
):
    maps = _local_maps(tmp_path, box=box, pixel=pixel, noise=noise, seed=seed)
    (tmp_path / "rel").mkdir()
    args = ["relion_postprocess", "--i", "half1.mrc", "--i2", "half2.mrc", "--mask", "mask.mrc"]
    args += ["--locres", "--locres_sampling", str(sampling), "--angpix", str(pixel)]
    run_relion([*args, "--o", "rel/postprocess"], cwd=tmp_path)
    relion, _ = read_mrc(tmp_path / "rel" / "postprocess_locres.mrc")
    relion_filtered, _ = read_mrc(tmp_path / "rel" / "postprocess_locres_filtered.mrc")
    ours = local_resolution(
        maps["half1"], maps["half2"], pixel_size_angstrom=pixel,
        params=LocalResolutionParams(sampling_angstrom=sampling),
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    inside = maps["mask"] > 0.5
    relion_median = float(relion[inside].double().median())
    ours_median = float(ours.resolution_angstrom[inside].double().median())
    # the resolution varies inside the mask (sharp left half, blurred right half)
    assert float(relion[inside].double().quantile(0.9)) > 1.2 * float(
        relion[inside].double().quantile(0.1)
    )
    assert abs(ours_median / relion_median - 1.0) < 0.05, (ours_median, relion_median)
    # voxel by voxel: the same map up to the two programs' independent random phases
    ratio = ours.resolution_angstrom[inside].double() / relion[inside].double()
    assert float((ratio - 1).abs().median()) < 0.15
    # RELION's filtered map is the *sum* of the halves low-passed per window; ours the average
    a, b = ours.filtered[inside].double(), relion_filtered[inside].double()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.97
    assert float((a * b).sum() / (a * a).sum()) == pytest.approx(2.0, rel=0.05)


# --------------------------------------------------------------- postprocess.star, _fsc.xml
@pytest.mark.relion
def test_fsc_files_have_relions_layout(tmp_path):
    maps = _local_maps(tmp_path, box=64, pixel=2.0, noise=3.0, seed=5)
    (tmp_path / "rel").mkdir()
    args = ["relion_postprocess", "--i", "half1.mrc", "--i2", "half2.mrc", "--mask", "mask.mrc"]
    run_relion([*args, "--angpix", "2.0", "--o", "rel/postprocess"], cwd=tmp_path)
    relion = starfile.read(tmp_path / "rel" / "postprocess.star")
    result = masked_fsc(
        maps["half1"].double(), maps["half2"].double(), maps["mask"].double(),
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    curves = {
        "fsc_unmasked": result.unmasked,
        "fsc_masked": result.masked,
        "fsc_phase_randomized": result.randomized,
    }
    summary = fsc_summary(result.corrected, box_size=64, pixel_size_angstrom=2.0, curves=curves)
    ours = fsc_star_tables(summary, half_maps=("half1.mrc", "half2.mrc"), mask="mask.mrc")
    rel_fsc = relion["fsc"]
    expected_columns = [
        c for c in rel_fsc.columns if c != "rlnFourierShellCorrelationParticleMaskFraction"
    ]
    assert list(ours["fsc"].columns) == expected_columns
    for column in ("rlnSpectralIndex", "rlnResolution", "rlnAngstromResolution"):
        np.testing.assert_allclose(ours["fsc"][column], rel_fsc[column], rtol=1e-5, atol=1e-6)
    for column in (
        "rlnFourierShellCorrelationUnmaskedMaps",
        "rlnFourierShellCorrelationMaskedMaps",
    ):
        assert np.abs(ours["fsc"][column] - rel_fsc[column]).max() < 0.03
    final = float(relion["general"]["rlnFinalResolution"])
    assert ours["general"]["rlnFinalResolution"] == pytest.approx(final, rel=0.08)
    assert set(ours["general"]) <= set(relion["general"])
    # the XML: same element layout and frequencies as RELION's postprocess_fsc.xml
    rel_root = ET.parse(tmp_path / "rel" / "postprocess_fsc.xml").getroot()
    root = ET.parse(write_fsc_xml(tmp_path / "ours.xml", summary)).getroot()
    assert root.tag == rel_root.tag == "fsc"
    for key in ("xaxis", "yaxis"):
        assert root.attrib[key] == rel_root.attrib[key]
    x_rel = [float(c.find("x").text) for c in rel_root.findall("coordinate")]
    x_ours = [float(c.find("x").text) for c in root.findall("coordinate")]
    assert len(x_ours) == len(x_rel)
    np.testing.assert_allclose(x_ours[1:], x_rel[1:], rtol=1e-4)  # shell 0: RELION writes 1/999
