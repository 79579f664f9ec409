"""PDB/mmCIF reading and writing on a tiny model written in tmp_path."""

from __future__ import annotations

import pytest
import torch

from cryoglass.io import read_structure, write_structure

PDB = """\
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 20.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00 21.00           C
ATOM      3  C   ALA A   1      13.140   5.852  -5.187  0.50 22.00           C
ATOM      4  H   ALA A   1      10.500   6.000  -6.900  1.00 20.00           H
ATOM      5  N   GLY A   2      13.760   6.400  -4.120  1.00 23.00           N
ATOM      6  CA  GLY A   2      15.200   6.300  -4.000  1.00 24.00           C
HETATM    7 CA    CA B 101      20.000  20.000  20.000  1.00 30.00          CA
HETATM    8  O   HOH B 201      25.000  25.000  25.000  1.00 40.00           O
END
"""


@pytest.fixture
def pdb(tmp_path):
    path = tmp_path / "tiny.pdb"
    path.write_text(PDB)
    return path


def test_read_all_atoms(pdb):
    model = read_structure(pdb)
    assert len(model) == 8
    torch.testing.assert_close(
        model.coordinates_angstrom[1], torch.tensor([11.639, 6.071, -5.147], dtype=torch.float64)
    )
    assert model.elements[:4] == ("N", "C", "C", "H") and model.elements[6] == "Ca"
    assert model.chain_ids == ("A",) * 6 + ("B", "B")
    assert model.residue_numbers.tolist() == [1, 1, 1, 1, 2, 2, 101, 201]
    torch.testing.assert_close(model.occupancies[2], torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(model.bfactors_a2[5], torch.tensor(24.0, dtype=torch.float64))


def test_selections(pdb):
    ca = read_structure(pdb, ca_only=True)  # protein Cα, not the calcium ion
    assert len(ca) == 2 and ca.residue_names == ("ALA", "GLY")
    assert len(read_structure(pdb, hydrogens=False, waters=False)) == 6


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_write_new_coordinates(pdb, tmp_path, suffix):
    model = read_structure(pdb, ca_only=True)
    moved = model.coordinates_angstrom + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    out = write_structure(tmp_path / f"moved{suffix}", model, coordinates_angstrom=moved)
    back = read_structure(out)
    torch.testing.assert_close(back.coordinates_angstrom, moved, atol=1e-3, rtol=0)
    assert back.residue_names == model.residue_names
    with pytest.raises(FileExistsError):
        write_structure(out, model)


def test_errors(tmp_path, pdb):
    with pytest.raises(FileNotFoundError, match=r"missing\.pdb"):
        read_structure(tmp_path / "missing.pdb")
    (tmp_path / "empty.pdb").write_text("END\n")
    with pytest.raises(ValueError, match=r"empty\.pdb"):
        read_structure(tmp_path / "empty.pdb")
    with pytest.raises(ValueError, match=r"tiny\.pdb: has 1 model\(s\), no model 3"):
        read_structure(pdb, model_index=3)
