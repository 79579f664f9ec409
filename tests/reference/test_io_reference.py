"""Our readers against the real files in shared data and cryoDRGN's reference conversions."""

from __future__ import annotations

import pickle
import warnings

import mrcfile
import numpy as np
import pytest
import torch

from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.io import (
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    read_images,
    read_mrc,
    read_mrc_header,
    read_particles,
    read_structure,
)

F64 = torch.float64


def _pickle(path):
    with open(path, "rb") as handle:
        return pickle.load(handle)


def test_emd3197_header_and_values(shared_data):
    data, info = read_mrc(shared_data / "maps/EMD-3197.map")
    assert data.shape == (20, 20, 20)
    assert info.voxel_size_angstrom == pytest.approx((11.4, 11.4, 11.4), abs=1e-5)
    assert info.origin_start == (-2, 0, 0) and info.space_group == 1
    assert info.extended_header_bytes == 0 and info.axis_order == (1, 2, 3)
    # mrcfile's own test values (tests/test_mrcfile.py)
    assert float(data[0, 0, 0]) == pytest.approx(-1.8013091)
    assert float(data[9, 6, 13]) == pytest.approx(4.6207790)
    assert float(data[-1, -1, -1]) == pytest.approx(1.3078574)
    assert float(data.double().sum()) == pytest.approx(6268.896, abs=1e-3)
    # header statistics = data statistics (README: dmin -4.134, dmax 5.577, dmean 0.7836, rms 2.400)
    assert (info.dmin, info.dmax) == pytest.approx((float(data.min()), float(data.max())))
    assert info.dmean == pytest.approx(float(data.mean()), abs=1e-5)
    assert info.rms == pytest.approx(float(data.std(unbiased=False)), rel=1e-5)
    assert (info.dmin, info.dmax, info.dmean, info.rms) == pytest.approx(
        (-4.134, 5.577, 0.7836, 2.400), abs=1e-3
    )


def test_emd3001_axis_order(shared_data):
    """mapc/mapr/maps = 3,1,2: mrcfile's block (25, 43, 73) is (Y, X, Z); ours is (Z, Y, X)."""
    path = shared_data / "maps/EMD-3001.map"
    data, info = read_mrc(path)
    assert info.axis_order == (3, 1, 2) and info.space_group == 4
    assert info.extended_header_bytes == 160
    assert data.shape == (73, 25, 43)
    assert read_mrc_header(path).shape == (73, 25, 43)
    with mrcfile.open(path) as mrc:
        raw = np.array(mrc.data)  # [section=Y, row=X, column=Z]
        assert raw.shape == (25, 43, 73)
        # the unit cell: mx, my, mz = 40, 12, 72 intervals along X, Y, Z
        assert (int(mrc.header.mx), int(mrc.header.my), int(mrc.header.mz)) == (40, 12, 72)
    z, y, x = 50, 7, 30
    assert float(data[z, y, x]) == float(raw[y, x, z])
    torch.testing.assert_close(data, torch.from_numpy(raw).permute(2, 0, 1))
    # anisotropic voxels (17.93/40, 4.71/12, 33.03/72): not a trustworthy single pixel size
    assert info.voxel_size_angstrom == pytest.approx((17.93 / 40, 4.71 / 12, 33.03 / 72), rel=1e-5)
    assert info.pixel_size_angstrom is None


def test_relion31_block_order_and_images(shared_data):
    folder = shared_data / "particles/relion31_5ptcl"
    a = read_particles(folder / "relion31.star")
    b = read_particles(folder / "relion31.v2.star")
    assert len(a) == 5 and a.image_size == 256
    torch.testing.assert_close(a.pixel_size_angstrom, torch.full((5,), 2.806, dtype=F64))
    for name in (
        "euler_deg",
        "shift_angstrom",
        "pixel_size_angstrom",
        "image_index",
        "optics_group",
    ):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    for name in ("defocus_u_angstrom", "defocus_v_angstrom", "voltage_kv", "cs_mm"):
        torch.testing.assert_close(getattr(a.ctf, name), getattr(b.ctf, name), rtol=0, atol=0)
    assert a.image_files == b.image_files == (folder / "relion31.mrcs",)
    torch.testing.assert_close(a.ctf.cs_mm, torch.full((5,), 0.01, dtype=F64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the stack lacks the 'MAP ' ID string
        mrc = mrcfile.open(folder / "relion31.mrcs", permissive=True)
    with mrc:
        expected = torch.from_numpy(np.array(mrc.data[[3, 0, 4]]))
    torch.testing.assert_close(read_images(a, [3, 0, 4]), expected, rtol=0, atol=0)


def test_empiar10076_star_and_cs_agree(shared_data):
    folder = shared_data / "particles/empiar10076_7ptcl"
    star = read_particles(folder / "empiar_10076_7.star")
    cs = read_particles(folder / "empiar_10076_7.cs")
    assert star.image_size == cs.image_size == 320
    # 5 µm / 38168 → 1.31 Å (the .cs says 1.3099979)
    torch.testing.assert_close(star.pixel_size_angstrom, torch.full((7,), 5e4 / 38168, dtype=F64))
    torch.testing.assert_close(cs.pixel_size_angstrom, star.pixel_size_angstrom, atol=1e-5, rtol=0)
    for name in ("defocus_u_angstrom", "defocus_v_angstrom", "astigmatism_angle_deg"):
        torch.testing.assert_close(
            getattr(cs.ctf, name), getattr(star.ctf, name), atol=1e-3, rtol=0
        )
    torch.testing.assert_close(star.ctf.astigmatism_angle_deg, torch.full((7,), 5.28, dtype=F64))
    for name in ("voltage_kv", "cs_mm", "amplitude_contrast"):
        torch.testing.assert_close(
            getattr(cs.ctf, name), getattr(star.ctf, name), atol=1e-6, rtol=0
        )
    assert star.euler_deg is None and star.shift_angstrom is None
    assert cs.image_files == star.image_files
    torch.testing.assert_close(cs.image_index, star.image_index)
    torch.testing.assert_close(read_images(cs, [6]), read_images(star, [6]))


def test_pfcrt_star_matches_cryodrgn(shared_data):
    """cryoDRGN parse_pose_star -D 300 (pose.star.pkl); parse_ctf_star -w 0.1 --Apix 1.035."""
    meta = shared_data / "metadata"
    particles = read_particles(
        meta / "FinalRefinement-OriginalParticles-PfCRT.star",
        image_size=300,
        amplitude_contrast=0.1,
        pixel_size_angstrom=1.035,
    )
    rotations, t = _pickle(meta / "pose.star.pkl")
    matrices = euler_to_matrix(particles.euler_deg).numpy()
    np.testing.assert_allclose(matrices, rotations, atol=1e-6)
    # t = rlnOrigin[px] / D, same sign: shift_angstrom / (pixel * D) = t
    ours_t = (particles.shift_angstrom / (1.035 * 300)).numpy()
    np.testing.assert_allclose(ours_t, t, atol=1e-9)
    euler, shift = read_cryodrgn_poses(
        meta / "pose.star.pkl", image_size=300, pixel_size_angstrom=1.035
    )
    torch.testing.assert_close(euler_to_matrix(euler), euler_to_matrix(particles.euler_deg))
    torch.testing.assert_close(shift, particles.shift_angstrom)

    reference = _pickle(meta / "ctf1.pkl")
    ours = torch.stack(
        [
            torch.full((5,), 300.0, dtype=F64),
            particles.pixel_size_angstrom,
            particles.ctf.defocus_u_angstrom,
            particles.ctf.defocus_v_angstrom,
            particles.ctf.astigmatism_angle_deg,
            particles.ctf.voltage_kv,
            particles.ctf.cs_mm,
            particles.ctf.amplitude_contrast,
            particles.ctf.phase_shift_deg,
        ],
        dim=-1,
    ).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-6)
    ctf, size, pixel = read_cryodrgn_ctf(meta / "ctf1.pkl")
    assert size == 300
    torch.testing.assert_close(
        ctf.defocus_u_angstrom, particles.ctf.defocus_u_angstrom, rtol=1e-6, atol=0
    )


def test_cryosparc_matches_cryodrgn(shared_data):
    """cryoDRGN: parse_pose_csparc -D 180 → pose.cs.pkl; parse_ctf_csparc → ctf2.pkl."""
    meta = shared_data / "metadata"
    particles = read_particles(meta / "cryosparc_P12_J24_001_particles.cs")
    assert len(particles) == 2019 and particles.image_size == 180
    rotations, t = _pickle(meta / "pose.cs.pkl")
    np.testing.assert_allclose(euler_to_matrix(particles.euler_deg).numpy(), rotations, atol=1e-5)
    pixel = particles.pixel_size_angstrom[:, None]
    np.testing.assert_allclose((particles.shift_angstrom / (pixel * 180)).numpy(), t, atol=1e-6)

    reference = _pickle(meta / "ctf2.pkl")
    ctf = particles.ctf
    ours = torch.stack(
        [
            torch.full((2019,), 180.0, dtype=F64),
            particles.pixel_size_angstrom,
            ctf.defocus_u_angstrom,
            ctf.defocus_v_angstrom,
            ctf.astigmatism_angle_deg,
            ctf.voltage_kv,
            ctf.cs_mm,
            ctf.amplitude_contrast,
            ctf.phase_shift_deg,
        ],
        dim=-1,
    ).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-4)
    assert float(ctf.astigmatism_angle_deg[0]) == pytest.approx(-78.131, abs=1e-3)


def test_cryosparc_2d_export(shared_data):
    particles = read_particles(shared_data / "metadata/cryosparc_J2_particles_exported.cs")
    records = np.load(shared_data / "metadata/cryosparc_J2_particles_exported.cs")
    assert len(particles) == 22 and particles.image_size == 300
    theta = torch.as_tensor(records["alignments2D/pose"].astype(np.float64))
    # an in-plane rotation: rot = tilt = 0, psi = theta (mod 360)
    torch.testing.assert_close(
        particles.euler_deg[:, :2], torch.zeros(22, 2, dtype=F64), atol=1e-9, rtol=0
    )
    diff = torch.remainder(particles.euler_deg[:, 2] - torch.rad2deg(theta) + 180, 360) - 180
    torch.testing.assert_close(diff, torch.zeros(22, dtype=F64), atol=1e-6, rtol=0)
    shift = torch.as_tensor(records["alignments2D/shift"].astype(np.float64)) * 1.3450001
    torch.testing.assert_close(particles.shift_angstrom, shift, atol=1e-5, rtol=0)


def test_optics_groups_relion31_and_relion5(shared_data):
    meta = shared_data / "metadata"
    six = read_particles(meta / "relion31.6opticsgroups.star")
    assert len(six) == 139 and six.image_size == 196
    table = six.particles_table
    optics = six.optics_table.set_index("rlnOpticsGroup")
    groups = table["rlnOpticsGroup"].to_numpy()
    expected_voltage = optics.loc[groups, "rlnVoltage"].to_numpy()
    expected_pixel = optics.loc[groups, "rlnImagePixelSize"].to_numpy()
    np.testing.assert_array_equal(six.ctf.voltage_kv.numpy(), expected_voltage)
    np.testing.assert_array_equal(six.pixel_size_angstrom.numpy(), expected_pixel)
    np.testing.assert_array_equal(six.optics_group.numpy(), groups)
    assert sorted(six.optics_group.unique().tolist()) == [1, 2, 3, 4, 5, 6]

    five = read_particles(meta / "relion5.star")
    assert len(five) == 17 and five.image_size == 448
    torch.testing.assert_close(five.pixel_size_angstrom, torch.full((17,), 0.89, dtype=F64))
    torch.testing.assert_close(five.ctf.voltage_kv, torch.full((17,), 100.0, dtype=F64))
    np.testing.assert_allclose(five.shift_angstrom[0].numpy(), [-3.12578, -1.41031])


def test_other_real_star_files(shared_data):
    aspire = read_particles(shared_data / "particles/aspire_sample_17ptcl/sample_relion_data.star")
    assert aspire.image_size == 200
    torch.testing.assert_close(
        aspire.pixel_size_angstrom, torch.full((17,), 5e4 / 37369.2, dtype=F64), rtol=1e-6, atol=0
    )
    origin_px = torch.as_tensor(
        aspire.particles_table[["rlnOriginX", "rlnOriginY"]].to_numpy(dtype=np.float64)
    )
    torch.testing.assert_close(
        aspire.shift_angstrom, origin_px * aspire.pixel_size_angstrom[:, None]
    )
    sta = read_particles(shared_data / "particles/sta_ribosome_220tilts/sta_testing_bin8.star")
    assert len(sta) == 219 and sta.image_size == 64
    assert float(sta.ctf.bfactor_a2.min()) < 0  # dose weighting read from rlnCtfBfactor
    sta_ctf, size, _ = read_cryodrgn_ctf(
        shared_data / "particles/sta_ribosome_220tilts/sta_ctf.pkl"
    )
    assert size == 512
    torch.testing.assert_close(
        sta_ctf.defocus_u_angstrom, sta.ctf.defocus_u_angstrom, rtol=1e-6, atol=1e-2
    )


def test_structures(shared_data):
    models = shared_data / "models"
    assert len(read_structure(models / "pdb1ubi_ca.pdb")) == 76
    assert len(read_structure(models / "pdb1ubi.pdb", ca_only=True)) == 76
    assert len(read_structure(models / "pdb2nwl-opm.pdb", ca_only=True)) == 1206
    full = read_structure(models / "4akeA_alg_fixed.pdb")
    no_h = read_structure(models / "4akeA_alg_fixed.pdb", hydrogens=False)
    assert len(full) == 3341 and len(full) - len(no_h) == 1685
    cif = read_structure(models / "8zpm.cif", ca_only=True)
    assert set(cif.atom_names) == {"CA"} and set(cif.elements) == {"C"}
