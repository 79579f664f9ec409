"""Map-tool I/O: FSC as EMDB XML and RELION postprocess.star; particles moved to a new stack."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import starfile
import torch

from cryoglass.io import make_particle_set, read_particles, write_relion_star
from cryoglass.io.fsc_tables import write_fsc_star, write_fsc_xml
from cryoglass.io.restack import restacked
from cryoglass.validate import fsc_summary


def _summary(masked: bool):
    shells = torch.arange(11, dtype=torch.float64)
    fsc = torch.exp(-shells / 4.0)
    curves = {}
    if masked:
        curves = {
            "fsc_unmasked": fsc * 0.9,
            "fsc_masked": fsc + 0.01,
            "fsc_phase_randomized": fsc / 10,
        }
    return fsc_summary(fsc, box_size=20, pixel_size_angstrom=1.5, curves=curves)


def test_fsc_xml_has_the_emdb_layout(tmp_path):
    summary = _summary(masked=True)
    path = write_fsc_xml(tmp_path / "fsc.xml", summary, title='half maps "A" & <B>')
    root = ET.parse(path).getroot()
    assert root.tag == "fsc"
    assert root.attrib == {
        "title": 'half maps "A" & <B>',
        "xaxis": "Resolution (A-1)",
        "yaxis": "Correlation Coefficient",
    }
    points = root.findall("coordinate")
    x = np.array([float(p.find("x").text) for p in points])
    y = np.array([float(p.find("y").text) for p in points])
    np.testing.assert_allclose(x, np.arange(11) / 30.0, atol=5e-7)
    np.testing.assert_allclose(y, summary.fsc.numpy(), atol=5e-7)
    with pytest.raises(FileExistsError):
        write_fsc_xml(path, summary)


@pytest.mark.parametrize("masked", [True, False])
def test_fsc_star_has_relions_postprocess_tables(tmp_path, masked):
    summary = _summary(masked)
    path = write_fsc_star(
        tmp_path / "fsc.star",
        summary,
        half_maps=("h1.mrc", "h2.mrc"),
        mask="m.mrc" if masked else None,
    )
    blocks = starfile.read(path)
    fsc = blocks["fsc"]
    np.testing.assert_array_equal(fsc["rlnSpectralIndex"], np.arange(11))
    np.testing.assert_allclose(fsc["rlnAngstromResolution"][1:], 30.0 / np.arange(1, 11), rtol=1e-6)
    assert fsc["rlnAngstromResolution"][0] == 999.0  # as RELION writes shell 0
    np.testing.assert_allclose(fsc["rlnResolution"], 1.0 / fsc["rlnAngstromResolution"], rtol=1e-5)
    main = (
        "rlnFourierShellCorrelationCorrected"
        if masked
        else "rlnFourierShellCorrelationUnmaskedMaps"
    )
    np.testing.assert_allclose(fsc[main], summary.fsc.numpy(), atol=1e-6)
    if masked:
        np.testing.assert_allclose(
            fsc["rlnFourierShellCorrelationUnmaskedMaps"], summary.curves["fsc_unmasked"], atol=1e-6
        )
        assert "rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps" in fsc
    else:
        assert list(fsc.columns)[3:] == ["rlnFourierShellCorrelationUnmaskedMaps"]
    general = blocks["general"]
    # RELION's rlnFinalResolution: the last shell still >= 0.143 (exp(-i/4) >= 0.143 up to i = 7)
    assert general["rlnFinalResolution"] == pytest.approx(30.0 / 7)
    assert general["rlnUnfilteredMapHalf1"] == "h1.mrc"
    assert ("rlnMaskName" in general) == masked


def test_restacked_particles_point_at_the_new_stack(tmp_path):
    names = [f"{i:06d}@Extract/job1/mic{i % 2}.mrcs" for i in range(1, 6)]
    particles = make_particle_set(
        names,
        pixel_size_angstrom=1.2,
        image_size=64,
        shift_angstrom=torch.tensor([[1.5, -2.0]] * 5, dtype=torch.float64),
        image_root=tmp_path,
    )
    moved = restacked(
        particles, tmp_path / "out" / "p.mrcs", pixel_size_angstrom=2.4, image_size=32
    )
    (tmp_path / "out").mkdir()
    star = write_relion_star(tmp_path / "out" / "p.star", moved)
    table = starfile.read(star)
    assert table["particles"]["rlnImageName"].tolist() == [f"{i:06d}@p.mrcs" for i in range(1, 6)]
    assert float(table["optics"]["rlnImagePixelSize"].iloc[0]) == 2.4
    assert int(table["optics"]["rlnImageSize"].iloc[0]) == 32
    np.testing.assert_allclose(table["particles"]["rlnOriginXAngst"], 1.5)  # origins stay in Å
    back = read_particles(star)
    assert back.image_files == (tmp_path / "out" / "p.mrcs",)
    assert back.image_index.tolist() == list(range(5))
    with pytest.raises(ValueError, match="positive"):
        restacked(particles, tmp_path / "x.mrcs", pixel_size_angstrom=0.0, image_size=32)
