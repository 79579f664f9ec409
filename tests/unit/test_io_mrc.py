"""MRC reading/writing: round trips, axis order, modes, and clear errors on bad files."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import torch

from cryoglass.io import check_pixel_size, open_mrc_stack, read_mrc, read_mrc_header, write_mrc


def test_write_read_round_trip(tmp_path, generator):
    volume = torch.randn(6, 7, 8, generator=generator)
    path = write_mrc(tmp_path / "v.mrc", volume, pixel_size_angstrom=1.5)
    data, info = read_mrc(path)
    torch.testing.assert_close(data, volume)
    assert info.voxel_size_angstrom == pytest.approx((1.5, 1.5, 1.5))
    assert info.pixel_size_trusted and info.pixel_size_angstrom == pytest.approx(1.5)
    assert not info.is_stack
    assert info.rms == pytest.approx(float(volume.std(unbiased=False)), rel=1e-5)
    assert info.dmax == pytest.approx(float(volume.max()))


def test_write_stack_and_float16(tmp_path, generator):
    images = torch.randn(4, 9, 9, generator=generator)
    path = write_mrc(tmp_path / "s.mrcs", images, pixel_size_angstrom=2.0, stack=True)
    with mrcfile.open(path) as mrc:
        assert mrc.is_image_stack() and mrc.header.ispg == 0
    path16 = write_mrc(tmp_path / "h.mrc", images, pixel_size_angstrom=2.0, dtype=torch.float16)
    data, info = read_mrc(path16)
    assert info.mode == 12 and data.dtype == torch.float32
    torch.testing.assert_close(data, images.half().float())


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16])
def test_integer_modes_read_as_float(tmp_path, dtype):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
    with mrcfile.new(tmp_path / "i.mrc") as mrc:
        mrc.set_data(array)
    data, info = read_mrc(tmp_path / "i.mrc")
    assert data.dtype == torch.float32
    torch.testing.assert_close(data, torch.from_numpy(array.astype(np.float32)))


def test_axis_order_is_undone(tmp_path, generator):
    """A map stored with mapc/mapr/maps = 3,1,2 comes back as the same [z, y, x] array."""
    zyx = torch.randn(5, 6, 7, generator=generator)  # (Z, Y, X)
    stored = zyx.permute(1, 2, 0).numpy()  # sections = Y, rows = X, columns = Z
    with mrcfile.new(tmp_path / "p.map") as mrc:
        mrc.set_data(np.ascontiguousarray(stored))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 1, 2
    data, info = read_mrc(tmp_path / "p.map")
    assert info.axis_order == (3, 1, 2)
    torch.testing.assert_close(data, zyx)
    assert read_mrc_header(tmp_path / "p.map").shape == (5, 6, 7)


def test_unset_pixel_size_is_flagged(tmp_path):
    write_mrc(tmp_path / "one.mrc", torch.zeros(4, 4), pixel_size_angstrom=1.0)
    _, info = read_mrc(tmp_path / "one.mrc")
    assert not info.pixel_size_trusted and info.pixel_size_angstrom is None


def test_truncated_file_is_refused(tmp_path):
    path = write_mrc(tmp_path / "t.mrc", torch.ones(4, 5, 6), pixel_size_angstrom=1.2)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"t\.mrc.*(truncated|bytes)"):
        read_mrc(path)
    with pytest.raises(ValueError, match=r"t\.mrc"):
        open_mrc_stack(path)


def test_header_only_file_is_refused(tmp_path):
    (tmp_path / "short.mrc").write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match=r"short\.mrc.*header"):
        read_mrc(tmp_path / "short.mrc")


def test_complex_mode_is_refused(tmp_path):
    with mrcfile.new(tmp_path / "c.mrc") as mrc:
        mrc.set_data(np.ones((2, 3, 4), np.complex64))
    with pytest.raises(ValueError, match=r"c\.mrc.*mode 4.*complex"):
        read_mrc(tmp_path / "c.mrc")


def test_unknown_mode_is_refused(tmp_path):
    path = write_mrc(tmp_path / "m.mrc", torch.ones(2, 3, 4), pixel_size_angstrom=1.2)
    raw = bytearray(path.read_bytes())
    raw[12:16] = np.int32(5).tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"m\.mrc.*mode"):
        read_mrc(path)


def test_non_finite_values_are_refused(tmp_path):
    array = np.ones((3, 4, 4), np.float32)
    array[0, 1, 2] = np.nan
    array[2, 0, 0] = np.inf
    with mrcfile.new(tmp_path / "n.mrc") as mrc, pytest.warns(RuntimeWarning, match="NaN"):
        mrc.set_data(array)
    with pytest.raises(ValueError, match=r"n\.mrc: 2 non-finite"):
        read_mrc(tmp_path / "n.mrc")
    with open_mrc_stack(tmp_path / "n.mrc") as stack:
        assert stack.read([1]).shape == (1, 4, 4)  # finite image reads fine
        with pytest.raises(ValueError, match="1 non-finite"):
            stack.read([0])


def test_no_overwrite_without_permission(tmp_path):
    path = write_mrc(tmp_path / "o.mrc", torch.ones(3, 3), pixel_size_angstrom=1.2)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"o\.mrc.*exists"):
        write_mrc(path, torch.zeros(3, 3), pixel_size_angstrom=1.2)
    assert path.read_bytes() == before
    write_mrc(path, torch.zeros(3, 3), pixel_size_angstrom=1.2, overwrite=True)
    torch.testing.assert_close(read_mrc(path)[0], torch.zeros(3, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mrc"]  # no temporary left


def test_nan_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        write_mrc(tmp_path / "bad.mrc", torch.full((2, 2), float("nan")), pixel_size_angstrom=1.2)
    assert list(tmp_path.iterdir()) == []


def test_stack_reads_in_given_order(tmp_path, generator):
    images = torch.randn(6, 5, 5, generator=generator)
    write_mrc(tmp_path / "s.mrcs", images, pixel_size_angstrom=1.2, stack=True)
    with open_mrc_stack(tmp_path / "s.mrcs") as stack:
        assert len(stack) == 6 and stack.image_shape == (5, 5)
        torch.testing.assert_close(stack.read([4, 0, 4, 2]), images[[4, 0, 4, 2]])
        with pytest.raises(IndexError, match=r"s\.mrcs: image index 6 .*RELION index 7.* 6 images"):
            stack.read([1, 6])


def test_check_pixel_size():
    check_pixel_size(1.31, 1.3099979)
    check_pixel_size(2.806, 1.0)  # header 1.0 = unset
    check_pixel_size(2.806, 0.0)
    check_pixel_size(2.806, None)
    with pytest.raises(
        ValueError, match=r"a\.star vs b\.mrcs: pixel size disagreement.*2\.806.*1\.403"
    ):
        check_pixel_size(2.806, 1.403, source="a.star vs b.mrcs")


def test_relion_maps_with_ispg0_are_volumes(tmp_path, generator):
    """relion_reconstruct writes maps with ispg = 0 and mz = nz: a .mrc of that kind is a
    volume (axis order undone), the same bytes as .mrcs are a stack, mz = 1 stays a stack."""
    data = torch.randn(6, 5, 4, generator=generator).numpy()
    for name, mz in (("map.mrc", 6), ("map.mrcs", 6), ("stack.mrc", 1)):
        with mrcfile.new(tmp_path / name) as mrc:
            mrc.set_data(data.copy())
            mrc.header.ispg = 0
            mrc.header.mz = mz
            mrc.voxel_size = 1.5
    volume, info = read_mrc(tmp_path / "map.mrc")
    assert not info.is_stack and torch.equal(volume, torch.from_numpy(data))
    assert read_mrc(tmp_path / "map.mrcs")[1].is_stack
    assert read_mrc(tmp_path / "stack.mrc")[1].is_stack


def test_stack_writer_matches_write_mrc_in_any_order(tmp_path, generator):
    from cryoglass.io import MRCStackWriter, StackStatistics, write_stack_images

    images = torch.randn(7, 6, 5, generator=generator)
    write_mrc(tmp_path / "whole.mrcs", images, pixel_size_angstrom=1.5, stack=True)
    writer = MRCStackWriter(
        tmp_path / "streamed.mrcs", n_images=7, image_shape=(6, 5), pixel_size_angstrom=1.5
    )
    with writer:
        writer.write(4, images[4:])
        # rows written by another process, counted by the writer
        stats = write_stack_images(
            writer.temporary_path,
            images[:4].numpy(),
            start=0,
            data_offset=writer.data_offset,
            n_images=7,
            byte_order=writer.byte_order,
        )
        writer.add_statistics(stats)
        assert not (tmp_path / "streamed.mrcs").exists()  # nothing visible before close
    assert isinstance(stats, StackStatistics) and stats.count == 4 * 30
    data, info = read_mrc(tmp_path / "streamed.mrcs")
    assert info.is_stack and torch.equal(data, images)
    with mrcfile.open(tmp_path / "whole.mrcs") as a, mrcfile.open(tmp_path / "streamed.mrcs") as b:
        for key in ("dmin", "dmax", "dmean", "rms"):
            assert float(a.header[key]) == pytest.approx(float(b.header[key]), rel=1e-5)
        assert a.voxel_size == b.voxel_size and int(a.header.ispg) == int(b.header.ispg)


def test_stack_writer_leaves_nothing_on_error_and_refuses_bad_rows(tmp_path):
    from cryoglass.io import MRCStackWriter

    out = tmp_path / "s.mrcs"
    with pytest.raises(IndexError, match="outside the stack of 2"):
        with MRCStackWriter(out, n_images=2, image_shape=(4, 4), pixel_size_angstrom=1.0) as w:
            w.write(1, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="non-finite"):
        with MRCStackWriter(out, n_images=2, image_shape=(4, 4), pixel_size_angstrom=1.0) as w:
            w.write(0, torch.full((2, 4, 4), float("nan")))
    assert list(tmp_path.iterdir()) == []
    out.write_text("keep")
    with pytest.raises(FileExistsError):
        MRCStackWriter(out, n_images=2, image_shape=(4, 4), pixel_size_angstrom=1.0)
    assert out.read_text() == "keep" and len(list(tmp_path.iterdir())) == 1


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    from cryoglass.io import atomic_path, write_text_atomic

    target = write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(FileExistsError):
        with atomic_path(target):
            pass
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_text_atomic(tmp_path / "missing" / "b.txt", "x")
