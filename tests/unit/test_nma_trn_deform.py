"""TRN pseudo-atoms on a map of a known model; deformations and a dataset along mode 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoglass.io import read_structure
from cryoglass.nma import (
    amplitude_for_rmsd,
    anm,
    deform_coordinates,
    deformed_maps,
    extend_modes,
    gaussian_mixture_amplitudes,
    heterogeneous_dataset,
    mode_trajectory,
    topology_representing_network,
)
from cryoglass.simulate import model_center_angstrom, potential_map


@pytest.fixture(scope="module")
def ubiquitin(shared_data):
    return read_structure(shared_data / "models" / "pdb1ubi.pdb", hydrogens=False, waters=False)


def test_trn_nodes_lie_on_the_density_and_are_seeded(ubiquitin):
    xyz, elements = ubiquitin.coordinates_angstrom, ubiquitin.elements
    center = model_center_angstrom(xyz, elements)
    volume = potential_map(
        xyz, elements, shape=(32, 32, 32), pixel_size_angstrom=2.0, bfactors_a2=20.0
    )
    net = topology_representing_network(volume, 30, pixel_size_angstrom=2.0, seed=3)
    distance = torch.cdist(net.nodes_angstrom, xyz - center).min(dim=1).values
    assert float(distance.mean()) < 2.0  # within a bond length or so of an atom
    assert net.edges.shape[1] == 2 and bool((net.edges[:, 0] < net.edges[:, 1]).all())
    again = topology_representing_network(volume, 30, pixel_size_angstrom=2.0, seed=3)
    assert torch.equal(net.nodes_angstrom, again.nodes_angstrom)
    other = topology_representing_network(volume, 30, pixel_size_angstrom=2.0, seed=4)
    assert not torch.equal(net.nodes_angstrom, other.nodes_angstrom)
    modes = anm(net.nodes_angstrom, n_modes=5, cutoff_angstrom=15.0)
    assert modes.eigenvectors.shape == (90, 5)


def test_trn_errors():
    with pytest.raises(ValueError, match="no density above the threshold"):
        topology_representing_network(torch.zeros(8, 8, 8), 5, pixel_size_angstrom=1.0)
    with pytest.raises(ValueError, match="at least 3"):
        topology_representing_network(torch.rand(8, 8, 8), 2, pixel_size_angstrom=1.0)


def test_deform_rmsd_and_trajectory():
    xyz = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5
    modes = anm(xyz, n_modes=3)
    a = amplitude_for_rmsd(1.5, 50)
    moved = deform_coordinates(xyz, modes.eigenvectors, torch.tensor([a, 0.0, 0.0]))
    rmsd = float(((moved - xyz) ** 2).sum(-1).mean().sqrt())
    assert math.isclose(rmsd, 1.5, rel_tol=1e-8)
    frames = mode_trajectory(xyz, modes.eigenvectors[:, 0], rmsd_angstrom=2.0, n_frames=8)
    assert frames.shape == (8, 50, 3)
    torch.testing.assert_close(frames[0], xyz)
    torch.testing.assert_close(
        frames[2], deform_coordinates(xyz, modes.eigenvectors[:, 0], torch.tensor([a * 4 / 3]))
    )


def test_mixture_amplitudes_are_bimodal():
    g = torch.Generator().manual_seed(0)
    a = gaussian_mixture_amplitudes(4000, means=[-5.0, 5.0], stds=[1.0, 1.0], generator=g)
    assert abs(float((a > 0).double().mean()) - 0.5) < 0.05
    assert abs(float(a[a > 0].mean()) - 5.0) < 0.1 and abs(float(a[a > 0].std()) - 1.0) < 0.1


def test_dataset_records_amplitudes_the_maps_reflect(ubiquitin):
    ca = [i for i, name in enumerate(ubiquitin.atom_names) if name == "CA"]
    keys = list(zip(ubiquitin.chain_ids, ubiquitin.residue_numbers.tolist(), strict=True))
    node = {keys[c]: n for n, c in enumerate(ca)}
    node_of_atom = torch.tensor([node[k] for k in keys])
    modes = anm(ubiquitin.coordinates_angstrom[ca], n_modes=2)
    vectors = extend_modes(modes.eigenvectors[:, :1], node_of_atom)
    xyz, elements = ubiquitin.coordinates_angstrom, ubiquitin.elements
    amplitudes = torch.tensor([-12.0, 12.0, -12.0, 12.0])[:, None]
    data = heterogeneous_dataset(
        xyz, elements, vectors, amplitudes, box=32, pixel_size_angstrom=2.0, n_bins=None, seed=1
    )
    torch.testing.assert_close(data.amplitudes_angstrom, amplitudes.double())
    assert data.images.shape == (4, 32, 32) and data.noise_std == 0.0
    # each image equals the projection of the map at its recorded amplitude
    maps = deformed_maps(
        xyz,
        elements,
        vectors,
        torch.tensor([-12.0, 12.0]),
        shape=(32, 32, 32),
        pixel_size_angstrom=2.0,
    )
    assert float((maps[0] - maps[1]).norm() / maps[0].norm()) > 0.05
    from cryoglass.projection import project

    p = data.parameters
    for i, level in enumerate([0, 1, 0, 1]):
        expected = project(
            maps[level].float(),
            euler_deg=p.euler_deg[i : i + 1].float(),
            shift_angstrom=p.shift_angstrom[i : i + 1].float(),
            pixel_size_angstrom=2.0,
            ctf=p.ctf[i : i + 1].as_tensors(dtype=torch.float32),
        )[0]
        wrong = project(
            maps[1 - level].float(),
            euler_deg=p.euler_deg[i : i + 1].float(),
            shift_angstrom=p.shift_angstrom[i : i + 1].float(),
            pixel_size_angstrom=2.0,
            ctf=p.ctf[i : i + 1].as_tensors(dtype=torch.float32),
        )[0]
        assert float((data.images[i] - expected).norm()) < 1e-3 * float(expected.norm())
        assert float((data.images[i] - wrong).norm()) > 0.02 * float(expected.norm())


def test_dataset_binning_and_noise(ubiquitin):
    ca = [i for i, name in enumerate(ubiquitin.atom_names) if name == "CA"]
    xyz = ubiquitin.coordinates_angstrom[ca]
    modes = anm(xyz, n_modes=1)
    amplitudes = torch.linspace(-5, 5, 7)[:, None]
    data = heterogeneous_dataset(
        xyz,
        ["C"] * len(ca),
        modes.eigenvectors,
        amplitudes,
        box=24,
        pixel_size_angstrom=3.0,
        n_bins=3,
        snr=1.0,
        seed=0,
    )
    levels = torch.unique(data.amplitudes_angstrom)
    torch.testing.assert_close(levels, torch.tensor([-5.0, 0.0, 5.0], dtype=torch.float64))
    assert data.noise_std > 0 and np.isfinite(data.images.numpy()).all()
