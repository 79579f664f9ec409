"""Maps from elsewhere (issue 19): low-resolution postprocess, headers kept by filter, and an
FSC that never crosses 0.143 said so in text and JSON."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import starfile
import torch
from conftest import run_relion
from typer.testing import CliRunner

from cryoglass.cli.main import app
from cryoglass.fourier import lowpass
from cryoglass.io import read_mrc, write_mrc
from cryoglass.simulate import gaussian_map
from cryoglass.validate import fourier_shell_correlation, fsc_summary

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _half_maps(folder, *, box, pixel, lowpass_angstrom, noise, seed=0):
    """Two half maps: one blob model low-passed at ``lowpass_angstrom``, independent noise."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(60, 3, generator=g, dtype=torch.float64) * box * pixel / 8
    truth = gaussian_map(centers, shape=(box,) * 3, pixel_size_angstrom=pixel, sigma_angstrom=pixel)
    truth = lowpass(truth, resolution_angstrom=lowpass_angstrom, pixel_size_angstrom=pixel, ndim=3)
    sigma = noise * float(truth.std())
    paths = []
    for name in ("half1", "half2"):
        noisy = truth + sigma * torch.randn(truth.shape, generator=g, dtype=torch.float64)
        paths.append(write_mrc(folder / f"{name}.mrc", noisy.float(), pixel_size_angstrom=pixel))
    return paths


@pytest.mark.parametrize("lowpass_angstrom", [14.0, 20.0, 30.0])
def test_postprocess_of_a_low_resolution_map_writes_everything_without_a_b_fit(
    tmp_path, lowpass_angstrom
):
    half1, half2 = _half_maps(
        tmp_path, box=40, pixel=4.0, lowpass_angstrom=lowpass_angstrom, noise=1.0
    )
    out = tmp_path / "post"
    result = _invoke("postprocess", half1, half2, "--auto-mask", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["resolution_angstrom"] > 10.0  # worse than the fit's 10 Å end
    assert payload["bfactor"] == 0.0 and payload["bfactor_fit"] is None
    assert len(payload["warnings"]) == 1 and "B-factor" in payload["warnings"][0]
    assert "warning:" in result.output  # said on stderr too
    for name in ("postprocess.mrc", "postprocess_unsharpened.mrc", "postprocess_mask.mrc",
                 "postprocess_fsc.png", "postprocess_guinier.png", "postprocess.json"):  # fmt: skip
        assert (out / name).is_file(), name
    # B = 0: the "sharpened" map is the FSC-weighted, low-passed one
    np.testing.assert_allclose(
        mrcfile.read(out / "postprocess.mrc"), mrcfile.read(out / "postprocess_unsharpened.mrc")
    )
    # a B-factor given by hand still sharpens
    result = _invoke("postprocess", half1, half2, "--out", tmp_path / "b", "--bfactor", "-200")
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_postprocess_at_high_resolution_still_fits_b(tmp_path):
    half1, half2 = _half_maps(tmp_path, box=40, pixel=1.5, lowpass_angstrom=3.2, noise=1.0)
    result = _invoke("postprocess", half1, half2, "--out", tmp_path / "post", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["resolution_angstrom"] < 10.0 and payload["bfactor_fit"] is not None
    assert payload["warnings"] == []


@pytest.mark.relion
def test_relion_postprocess_also_leaves_a_low_resolution_map_unsharpened(tmp_path):
    half1, half2 = _half_maps(tmp_path, box=40, pixel=4.0, lowpass_angstrom=18.0, noise=1.0)
    (tmp_path / "rel").mkdir()
    try:  # RELION 3.1.3 writes its maps and STAR file, then fails drawing the unmasked plot
        run_relion(
            ["relion_postprocess", "--i", "half1.mrc", "--i2", "half2.mrc", "--o", "rel/post",
             "--angpix", "4", "--auto_bfac"],
            cwd=tmp_path,
        )  # fmt: skip
    except RuntimeError as error:
        assert "addToCPlot2D" in str(error), str(error)
    general = starfile.read(tmp_path / "rel/post.star", always_dict=True)["general"]
    assert float(general["rlnFinalResolution"]) > 10.0
    assert float(general["rlnBfactorUsedForSharpening"]) == 0.0
    result = _invoke("postprocess", half1, half2, "--out", tmp_path / "ours", "--json")
    assert json.loads(result.stdout)["bfactor"] == 0.0


def _map_with_header(path, *, shape=(12, 16, 20), voxel=(1.1, 1.3, 1.7)):
    """A non-cubic box, anisotropic voxels, permuted axes, an origin, P1 and a label."""
    g = torch.Generator().manual_seed(3)
    stored = torch.randn(shape, generator=g).numpy()
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_extended_header(np.zeros(2, dtype=[("x", "<f4", (20,))]))
        mrc.set_data(stored)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 2, 3, 1
        mrc.header.mx, mrc.header.my, mrc.header.mz = 40, 32, 24  # cell larger than the box
        mrc.header.cella = (40 * voxel[0], 32 * voxel[1], 24 * voxel[2])
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = -5, 3, 7
        mrc.header.origin = (1.5, -2.5, 4.0)
        mrc.header.ispg = 1
        mrc.header.exttyp = b"MRCO"
        mrc.header.label[0] = b"made by a test of cryoglass filter"
        mrc.header.nlabl = 1
        mrc.update_header_stats()


def test_filter_keeps_the_input_header(shared_data, tmp_path):
    source = tmp_path / "in.mrc"
    _map_with_header(source)
    out = tmp_path / "out.mrc"
    result = _invoke("filter", source, "--lowpass-angstrom", 8, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["voxel_size_angstrom"] == pytest.approx([1.1, 1.3, 1.7])
    with mrcfile.open(source) as a, mrcfile.open(out) as b:
        for name in ("nx", "ny", "nz", "mx", "my", "mz", "cella", "cellb", "mapc", "mapr", "maps",
                     "ispg", "nxstart", "nystart", "nzstart", "origin", "exttyp", "nlabl",
                     "label", "nsymbt"):  # fmt: skip
            assert np.array_equal(a.header[name], b.header[name]), name
        np.testing.assert_array_equal(a.extended_header, b.extended_header)
        assert float(b.header.dmax) == pytest.approx(float(b.data.max()))
        assert not np.allclose(a.data, b.data)  # the values did change
    # the filtered values equal the library's, with each axis's own voxel size
    volume, info = read_mrc(source)
    assert info.voxel_size_angstrom == pytest.approx((1.1, 1.3, 1.7))
    expected = lowpass(
        volume.double(), resolution_angstrom=8.0, pixel_size_angstrom=(1.1, 1.3, 1.7), ndim=3
    )
    torch.testing.assert_close(read_mrc(out)[0], expected.float(), atol=1e-5, rtol=1e-5)
    # a real EMDB map: origin (-2, 0, 0), space group 1, labels kept
    emd = shared_data / "maps/EMD-3197.map"
    assert _invoke("filter", emd, "--bfactor", 500, "--out", tmp_path / "e.mrc").exit_code == 0
    with mrcfile.open(emd) as a, mrcfile.open(tmp_path / "e.mrc") as b:
        for name in ("nxstart", "nystart", "nzstart", "ispg", "cella", "label", "nlabl"):
            assert np.array_equal(a.header[name], b.header[name]), name


def test_filter_refuses_a_non_orthogonal_cell(shared_data, tmp_path):
    result = _invoke(
        "filter", shared_data / "maps/EMD-3001.map", "--lowpass-angstrom", 3, "--out",
        tmp_path / "x.mrc",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "not orthogonal" in result.output and "94.326" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.mrc").exists()


def test_anisotropic_lowpass_is_isotropic_in_physical_frequency():
    """A cosine of 1/6 Å⁻¹ along each axis is halved by an 6 Å low-pass, whatever the voxel."""
    shape, voxel = (24, 30, 36), (0.9, 1.2, 1.5)  # (x, y, z) voxel sizes
    z, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in shape), indexing="ij")
    for axis, (coords, n, p) in enumerate(zip((x, y, z), shape[::-1], voxel, strict=True)):
        cycles = round(n * p / 6.0)  # an exact Fourier pixel near 1/6 Å⁻¹
        k = cycles / (n * p)
        wave = torch.cos(2 * torch.pi * cycles * coords / n)
        out = lowpass(wave, resolution_angstrom=1 / k, pixel_size_angstrom=voxel, ndim=3)
        torch.testing.assert_close(out, 0.5 * wave, atol=1e-9, rtol=0, msg=f"axis {axis}")


def test_fsc_that_never_crosses_says_nyquist_limited(tmp_path):
    half1, half2 = _half_maps(tmp_path, box=32, pixel=2.0, lowpass_angstrom=4.1, noise=0.02)
    result = _invoke("fsc", half1, half2)
    assert result.exit_code == 0, result.output
    assert "Nyquist-limited" in result.output and "4.000 Å or better" in result.output
    payload = json.loads(_invoke("fsc", half1, half2, "--json").stdout)
    assert payload["crossed_0143"] is False
    assert payload["resolution_0143_angstrom"] == pytest.approx(payload["nyquist_angstrom"])
    # the same maps with more noise cross, and say nothing of Nyquist
    (tmp_path / "noisy").mkdir()
    noisy = _half_maps(
        tmp_path / "noisy", box=32, pixel=2.0, lowpass_angstrom=8.0, noise=2.0, seed=1
    )
    crossed = _invoke("fsc", *noisy, "--json")
    assert json.loads(crossed.stdout)["crossed_0143"] is True
    assert "Nyquist" not in _invoke("fsc", *noisy).output
    h1, _ = read_mrc(half1)
    h2, _ = read_mrc(half2)
    summary = fsc_summary(
        fourier_shell_correlation(h1.double(), h2.double()), box_size=32, pixel_size_angstrom=2.0
    )
    assert not summary.crossed_0143
