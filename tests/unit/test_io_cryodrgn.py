"""cryoDRGN pickles: round trips, the restricted unpickler, and errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cryoglass.ctf.params import CTFParams
from cryoglass.geometry.euler import euler_to_matrix
from cryoglass.io import (
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    write_cryodrgn_ctf,
    write_cryodrgn_poses,
)


def test_pose_round_trip(tmp_path, generator):
    euler = torch.rand(5, 3, generator=generator, dtype=torch.float64) * torch.tensor(
        [360, 180, 360]
    )
    euler[:, 0] -= 180
    euler[:, 2] -= 180
    shift = torch.randn(5, 2, generator=generator, dtype=torch.float64) * 3
    path = write_cryodrgn_poses(
        tmp_path / "p.pkl", euler, shift, image_size=64, pixel_size_angstrom=2.0
    )
    with open(path, "rb") as handle:
        rotations, t = pickle.load(handle)
    np.testing.assert_allclose(rotations, euler_to_matrix(euler).numpy())
    np.testing.assert_allclose(t, (shift / 128).numpy())  # t = origin[px] / D
    back_euler, back_shift = read_cryodrgn_poses(path, image_size=64, pixel_size_angstrom=2.0)
    torch.testing.assert_close(euler_to_matrix(back_euler), euler_to_matrix(euler))
    torch.testing.assert_close(back_shift, shift)


def test_ctf_round_trip(tmp_path, generator):
    n = 4
    ctf = CTFParams(
        defocus_u_angstrom=torch.rand(n, generator=generator, dtype=torch.float64) * 1e4 + 5e3,
        defocus_v_angstrom=torch.full((n,), 9000.0, dtype=torch.float64),
        astigmatism_angle_deg=torch.tensor([-10.0, 0.0, 45.0, 170.0], dtype=torch.float64),
        voltage_kv=200.0,
        cs_mm=2.0,
        amplitude_contrast=0.07,
        phase_shift_deg=torch.tensor([0.0, 10.0, 20.0, 90.0], dtype=torch.float64),
    )
    path = write_cryodrgn_ctf(tmp_path / "c.pkl", ctf, image_size=128, pixel_size_angstrom=1.5)
    back, size, pixel = read_cryodrgn_ctf(path)
    assert size == 128
    torch.testing.assert_close(pixel, torch.full((n,), 1.5, dtype=torch.float64))
    for name in ("defocus_u_angstrom", "astigmatism_angle_deg", "phase_shift_deg", "voltage_kv"):
        expected = torch.as_tensor(getattr(ctf, name), dtype=torch.float64).expand(n)
        torch.testing.assert_close(getattr(back, name), expected, rtol=1e-6, atol=1e-4)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps((np.eye(3)[None], _Evil())))
    with pytest.raises(ValueError, match=r"evil\.pkl.*refusing to load builtins\.print"):
        read_cryodrgn_poses(path, image_size=8, pixel_size_angstrom=1.0)


def test_wrong_shapes(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(np.zeros((3, 8), np.float32)))
    with pytest.raises(
        ValueError, match=r"bad\.pkl: expected a cryoDRGN CTF array of shape \(N, 9\)"
    ):
        read_cryodrgn_ctf(path)
    path.write_bytes(pickle.dumps((np.zeros((3, 3, 3)), np.zeros((3, 3)))))
    with pytest.raises(ValueError, match=r"bad\.pkl: t must have shape \(3, 2\)"):
        read_cryodrgn_poses(path, image_size=8, pixel_size_angstrom=1.0)
