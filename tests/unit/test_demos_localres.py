"""Demo section for local resolution: the blurred periphery shows up in the map."""

from cryoglass.demos.localres import run
from cryoglass.demos.pipeline import TOPIC_SECTIONS
from cryoglass.io import read_mrc


def test_demo_localres(tmp_path):
    assert "localres" in TOPIC_SECTIONS
    sections = run(tmp_path, seed=0)
    assert len(sections) == 1
    section = sections[0]
    for name, _ in section.figures:
        assert (tmp_path / name).stat().st_size > 1000
    table = dict(section.table)
    core, rim = (
        float(x.split()[0]) for x in table["core (< 25 Å) / periphery (> 45 Å)"].split("/")
    )
    assert 2 * 2.5 <= core < 0.75 * rim  # the periphery (B + 800 Å²) is worse resolved
    res, info = read_mrc(tmp_path / "localres_demo.mrc")
    assert res.shape == (64, 64, 64) and info.pixel_size_angstrom == 2.5
    assert float(res.max()) <= 50.0 and float(res[res > 0].min()) >= 5.0
