"""Movie, micrograph, motion and coordinate STAR files: round trips and one-line refusals."""

from __future__ import annotations

import mrcfile
import pytest
import torch

from cryoglass.ctf import CTFParams
from cryoglass.io import read_mrc
from cryoglass.io.micrographs import (
    MicrographOptics,
    MotionTrack,
    read_coordinates,
    read_micrograph_table,
    read_motion_star,
    read_motion_truth,
    write_coordinates_star,
    write_micrograph_table,
    write_motion_star,
    write_motion_truth,
    write_movie,
)

OPTICS = MicrographOptics(
    original_pixel_size_angstrom=0.8, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1
)


def test_movies_star_round_trip(tmp_path):
    gain = MicrographOptics(**{**OPTICS.__dict__, "gain_name": "gain.mrc"})
    path = write_micrograph_table(
        tmp_path / "movies.star", ["Movies/a.mrc", "Movies/b.mrc"], kind="movies", optics=gain
    )
    table = read_micrograph_table(path)
    assert table.kind == "movies" and len(table) == 2
    assert table.stems == ("a", "b")
    assert table.files[0] == tmp_path / "Movies" / "a.mrc"
    assert table.pixel_size_angstrom(1) == 0.8
    assert table.gain_file(0) == tmp_path / "gain.mrc"
    assert table.ctf is None
    with pytest.raises(ValueError, match="rlnMicrographName"):
        read_micrograph_table(path, kind="micrographs")


def test_micrographs_star_keeps_ctf_and_binned_pixel(tmp_path):
    optics = MicrographOptics(**{**OPTICS.__dict__, "pixel_size_angstrom": 1.6})
    ctf = CTFParams(
        defocus_u_angstrom=torch.tensor([15000.0, 21000.0]),
        defocus_v_angstrom=torch.tensor([14000.0, 20500.0]),
        astigmatism_angle_deg=torch.tensor([30.0, -10.0]),
    )
    path = write_micrograph_table(
        tmp_path / "mics.star",
        ["MC/a.mrc", "MC/b.mrc"],
        kind="micrographs",
        optics=optics,
        ctf=ctf,
        metadata_names=["MC/a.star", "MC/b.star"],
        motion_total_px=[3.0, 4.5],
        ctf_max_resolution_angstrom=[3.1, 4.0],
        ctf_figure_of_merit=[0.2, 0.1],
    )
    table = read_micrograph_table(path)
    assert table.kind == "micrographs" and table.pixel_size_angstrom(0) == 1.6
    assert torch.allclose(table.ctf.defocus_v_angstrom, ctf.defocus_v_angstrom.double())
    assert torch.allclose(table.ctf.astigmatism_angle_deg, ctf.astigmatism_angle_deg.double())
    assert table.column("rlnCtfAstigmatism").tolist() == [1000.0, 500.0]
    assert table.column("rlnAccumMotionTotal").tolist() == [3.0, 4.5]
    assert table.column("rlnCtfMaxResolution").tolist() == [3.1, 4.0]
    assert table.column("rlnMissing") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data_movies\nloop_\n_rlnMicrographMovieName\na.mrc\n", "no data_optics"),
        (
            "data_optics\nloop_\n_rlnOpticsGroup\n_rlnVoltage\n_rlnSphericalAberration\n"
            "_rlnAmplitudeContrast\n1 300 2.7 0.1\n\ndata_movies\nloop_\n"
            "_rlnMicrographMovieName\n_rlnOpticsGroup\na.mrc 1\n",
            "no pixel size",
        ),
        (
            "data_optics\nloop_\n_rlnOpticsGroup\n_rlnMicrographOriginalPixelSize\n_rlnVoltage\n"
            "_rlnSphericalAberration\n_rlnAmplitudeContrast\n1 1.0 300 2.7 0.1\n\ndata_movies\n"
            "loop_\n_rlnMicrographMovieName\n_rlnOpticsGroup\na.mrc 2\n",
            "optics group",
        ),
        ("data_particles\nloop_\n_rlnImageName\n1@a.mrcs\n", "rlnMicrographMovieName"),
    ],
)
def test_bad_tables_are_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.star"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_micrograph_table(path)
    assert str(path) in str(error.value)


def test_missing_star_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_micrograph_table(tmp_path / "none.star")


def test_movie_is_written_as_counts_or_floats(tmp_path):
    counts = torch.poisson(torch.full((3, 8, 10), 2.0), generator=torch.Generator().manual_seed(0))
    write_movie(tmp_path / "m.mrc", counts, pixel_size_angstrom=1.1)
    with mrcfile.open(tmp_path / "m.mrc") as mrc:
        assert mrc.header.mode == 6 and mrc.data.shape == (3, 8, 10)
        assert float(mrc.voxel_size.x) == pytest.approx(1.1)
    data, _ = read_mrc(tmp_path / "m.mrc")
    assert torch.equal(data, counts)
    write_movie(tmp_path / "f.mrc", counts * 0.5, pixel_size_angstrom=1.1)
    with mrcfile.open(tmp_path / "f.mrc") as mrc:
        assert mrc.header.mode == 2
    with pytest.raises(FileExistsError):
        write_movie(tmp_path / "m.mrc", counts, pixel_size_angstrom=1.1)


def test_motion_star_round_trip(tmp_path):
    track = MotionTrack(
        movie_name="Movies/a.mrc",
        shape_px=(64, 48, 5),
        global_shifts_px=torch.tensor(
            [[0.0, 0.0], [1.0, -0.5], [1.5, -1.0], [2.0, -1.2], [2.2, -1.3]]
        ),
        pixel_size_angstrom=0.9,
        dose_per_frame=1.5,
        gain_name="gain.mrc",
        polynomial_x=torch.arange(18.0),
        polynomial_y=-torch.arange(18.0),
        local_shifts=torch.tensor([[1.0, 10.0, 12.0, 0.1, 0.2], [2.0, 10.0, 12.0, 0.3, 0.4]]),
    )
    path = write_motion_star(tmp_path / "a.star", track)
    text = path.read_text()
    assert "data_global_shift" in text and "data_local_motion_model" in text
    back = read_motion_star(path)
    assert back.shape_px == (64, 48, 5) and back.movie_name == "Movies/a.mrc"
    assert torch.allclose(back.global_shifts_px, track.global_shifts_px.double())
    assert torch.allclose(back.polynomial_y, track.polynomial_y.double())
    assert torch.allclose(back.local_shifts, track.local_shifts.double())
    assert back.dose_per_frame == 1.5 and back.gain_name == "gain.mrc"


def test_motion_truth_round_trip(tmp_path):
    shifts = [
        torch.randn(4, 2, generator=torch.Generator().manual_seed(i)).double() for i in (0, 1)
    ]
    points = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0]], dtype=torch.float64)
    local = [
        torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(i)).double() for i in (2, 3)
    ]
    path = write_motion_truth(
        tmp_path / "motion.star",
        ["Movies/a.mrc", "Movies/b.mrc"],
        shifts,
        points_px=points,
        local_shifts_px=local,
    )
    back = read_motion_truth(path)
    assert set(back) == {"a", "b"}
    assert torch.allclose(back["b"]["global"], shifts[1], atol=1e-6)
    assert torch.allclose(back["a"]["local"], local[0], atol=1e-6)
    # points come back in the order the rows are sorted: y, then x
    order = torch.tensor([0, 1, 2])
    assert torch.allclose(back["a"]["points"], points[order])


def test_coordinates_from_a_folder_and_from_one_file(tmp_path):
    folder = tmp_path / "picks" / "Movies"
    folder.mkdir(parents=True)
    write_coordinates_star(
        folder / "a_autopick.star",
        torch.tensor([[10.0, 20.0], [30.5, 40.0]]),
        figure_of_merit=torch.tensor([0.9, 0.5]),
    )
    write_coordinates_star(folder / "b_pick.star", torch.tensor([[5.0, 6.0]]))
    write_coordinates_star(folder / "b_autopick.star", torch.tensor([[7.0, 8.0]]))  # wins
    found = read_coordinates(tmp_path / "picks", ["a", "b", "c"])
    assert set(found) == {"a", "b"}
    assert found["a"]["coordinates_px"].tolist() == [[10.0, 20.0], [30.5, 40.0]]
    assert found["a"]["figure_of_merit"].tolist() == [0.9, 0.5]
    assert found["b"]["coordinates_px"].tolist() == [[7.0, 8.0]]
    single = write_coordinates_star(
        tmp_path / "all.star",
        torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        micrograph_names=["MC/a.mrc", "MC/b.mrc", "MC/a.mrc"],
    )
    found = read_coordinates(single, ["a", "b"])
    assert found["a"]["coordinates_px"].tolist() == [[1.0, 2.0], [5.0, 6.0]]
    assert found["b"]["coordinates_px"].tolist() == [[3.0, 4.0]]
    plain = write_coordinates_star(tmp_path / "one.star", torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="rlnMicrographName"):
        read_coordinates(plain, ["a", "b"])
    (tmp_path / "dup" / "x").mkdir(parents=True)
    (tmp_path / "dup" / "y").mkdir()
    for sub in ("x", "y"):
        write_coordinates_star(tmp_path / "dup" / sub / "a_pick.star", torch.zeros(1, 2))
    with pytest.raises(ValueError, match="two coordinate files"):
        read_coordinates(tmp_path / "dup", ["a"])


def test_non_numeric_coordinates_are_refused(tmp_path):
    path = tmp_path / "a_pick.star"
    path.write_text("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 abc\n")
    with pytest.raises(ValueError, match="non-numeric") as error:
        read_coordinates(path, ["a"])
    assert str(path) in str(error.value)
