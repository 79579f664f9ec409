"""Demo section for preferred orientation."""

from cryoglass.demos.orientations import run


def test_demo_orientations(tmp_path):
    sections = run(tmp_path, seed=0)
    assert len(sections) == 1
    section = sections[0]
    for name, _ in section.figures:
        assert (tmp_path / name).stat().st_size > 1000
    uniform, top = (float(text.split("sphericity ")[1].split(",")[0]) for _, text in section.table)
    assert uniform >= 0.9 and top <= uniform - 0.1
