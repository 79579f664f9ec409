"""ANM/GNM networks, solvers, analysis and their errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cryoglass.io import read_structure
from cryoglass.nma import (
    anm,
    anm_hessian,
    collectivity,
    cross_correlations,
    cumulative_overlap,
    fit_bfactors,
    gnm,
    kirchhoff_matrix,
    match_residues,
    overlaps,
    square_fluctuations,
    superpose,
)


def _blob(n=60, seed=0):
    return np.random.default_rng(seed).normal(scale=5.0, size=(n, 3))


def test_hessian_rows_sum_to_zero_and_rigid_motions_are_zero_modes():
    xyz = _blob()
    h = anm_hessian(xyz)
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    translation = np.tile([1.0, 0.0, 0.0], xyz.shape[0])
    rotation = np.cross([0.0, 0.0, 1.0], xyz).reshape(-1)
    np.testing.assert_allclose(h @ translation, 0, atol=1e-10)
    np.testing.assert_allclose(h @ rotation, 0, atol=1e-9)
    modes = anm(xyz, n_modes=10, zeros=True)
    assert np.sum(np.abs(modes.eigenvalues) < 1e-8) == 6


def test_sparse_hessian_equals_dense_and_solvers_agree():
    xyz = _blob(150, seed=1)
    np.testing.assert_allclose(
        anm_hessian(xyz, sparse=True).toarray(), anm_hessian(xyz), atol=1e-12
    )
    dense = anm(xyz, n_modes=12, method="dense")
    sparse = anm(xyz, n_modes=12, method="sparse")
    np.testing.assert_allclose(sparse.eigenvalues, dense.eigenvalues, rtol=1e-9)
    np.testing.assert_allclose(sparse.eigenvectors, dense.eigenvectors, atol=1e-6)
    torch_modes = anm(xyz, n_modes=12, method="torch")
    np.testing.assert_allclose(torch_modes.eigenvalues, dense.eigenvalues, rtol=1e-9)


def test_distance_dependent_springs_change_the_spectrum():
    xyz = _blob()
    plain = anm(xyz, n_modes=5)
    soft = anm(xyz, n_modes=5, distance_exponent=2.0)
    h = anm_hessian(xyz, distance_exponent=2.0)
    i, j = 0, int(np.argsort(((xyz - xyz[0]) ** 2).sum(1))[1])
    d = np.linalg.norm(xyz[j] - xyz[i])
    r = xyz[j] - xyz[i]
    np.testing.assert_allclose(h[0:3, 3 * j : 3 * j + 3], -((3.8 / d) ** 2) * np.outer(r, r) / d**2)
    assert not np.allclose(plain.eigenvalues, soft.eigenvalues)


def test_kirchhoff_is_graph_laplacian_with_one_zero_mode():
    xyz = _blob()
    k = kirchhoff_matrix(xyz, gamma=2.0)
    np.testing.assert_allclose(k.sum(1), 0, atol=1e-12)
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    np.testing.assert_array_equal(k[0, 1:] != 0, d[0, 1:] <= 10.0)
    modes = gnm(xyz, n_modes=5, zeros=True)
    assert abs(modes.eigenvalues[0]) < 1e-9 and modes.eigenvalues[1] > 1e-6


def test_errors_few_atoms_and_disconnected_network_names_the_gap():
    with pytest.raises(ValueError, match="at least 3 atoms"):
        anm(np.zeros((2, 3)))
    xyz = np.concatenate([_blob(30), _blob(30, seed=2) + [80.0, 0, 0]])
    gap = np.linalg.norm(xyz[:30, None] - xyz[None, 30:], axis=-1).min()
    with pytest.raises(ValueError, match=f"disconnected.*{gap:.2f} Å") as info:
        anm(xyz)
    assert "2 pieces" in str(info.value)
    with pytest.raises(ValueError, match="disconnected"):
        gnm(xyz, cutoff_angstrom=gap - 0.1)
    assert gnm(xyz, cutoff_angstrom=gap + 0.1).n_modes == 20


def test_analysis_on_ubiquitin(shared_data):
    model = read_structure(shared_data / "models" / "pdb1ubi_ca.pdb", ca_only=True)
    modes = gnm(model.coordinates_angstrom, n_modes=None)
    msf = square_fluctuations(modes)
    k_inverse = np.linalg.pinv(kirchhoff_matrix(model.coordinates_angstrom))
    np.testing.assert_allclose(msf, np.diag(k_inverse), rtol=1e-8)
    fit = fit_bfactors(msf, model.bfactors_a2)
    assert fit.correlation > 0.6  # GNM predicts ubiquitin's B-factors well
    np.testing.assert_allclose(fit.predicted_a2, fit.scale * 8 * np.pi**2 / 3 * msf)
    c = cross_correlations(anm(model.coordinates_angstrom))
    np.testing.assert_allclose(np.diag(c), 1.0)
    assert c.min() < -0.3 and np.allclose(c, c.T)
    kappa = collectivity(anm(model.coordinates_angstrom))
    assert np.all((kappa > 1 / 76 - 1e-12) & (kappa <= 1))


def test_collectivity_limits():
    from cryoglass.nma import NormalModes

    n = 10
    uniform = np.full((3 * n, 1), 1 / np.sqrt(3 * n))
    single = np.zeros((3 * n, 1))
    single[0] = 1.0
    make = lambda v: NormalModes(np.ones(1), v, np.zeros((n, 3)), "anm", 15.0, 1.0, 6)  # noqa
    np.testing.assert_allclose(collectivity(make(uniform)), [1.0])
    np.testing.assert_allclose(collectivity(make(single)), [1 / n])


def test_overlap_with_adenylate_kinase_closing(shared_data):
    closed = read_structure(shared_data / "models" / "pdb1ake.pdb", ca_only=True)
    opened = read_structure(shared_data / "models" / "4akeA_alg_fixed.pdb", ca_only=True)
    keys = lambda m: list(zip(m.chain_ids, m.residue_numbers.tolist(), strict=True))  # noqa
    ia, ib = match_residues(keys(closed), keys(opened))
    x_closed = closed.coordinates_angstrom.numpy()[ia]
    moved, rmsd = superpose(opened.coordinates_angstrom.numpy()[ib], x_closed)
    assert 6.0 < rmsd < 8.0  # the 1AKE/4AKE Cα RMSD is ~7 Å
    modes = anm(x_closed)
    o = overlaps(modes, moved - x_closed)
    co = cumulative_overlap(o)
    assert abs(o[0]) > 0.5  # the slowest mode is the lid closing
    assert co[-1] > 0.8 and np.all(np.diff(co) >= 0)
    full = anm(x_closed, n_modes=None)
    np.testing.assert_allclose(cumulative_overlap(overlaps(full, moved - x_closed))[-1], 1.0)


def test_superpose_recovers_rotation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved, rmsd = superpose(x @ q.T + 5.0, x)
    np.testing.assert_allclose(moved, x, atol=1e-10)
    assert rmsd < 1e-10


def test_network_code_does_not_import_torch():
    import subprocess

    code = (
        "import sys, cryoglass.nma as n; n.anm([[0,0,0],[3,0,0],[0,3,0],[0,0,3]]); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
