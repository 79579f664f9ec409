"""Atomic models (PDB, mmCIF) via ``gemmi``: coordinates and per-atom attributes as tensors.

Only the first model is read (``model_index``), alternative conformations are reduced to the
first one, and the atoms kept (all, or protein Cα only) come back in file order.  Writing puts
new coordinates into a copy of the structure that was read (same atoms, same order), so
deformed models keep their residue names, chains and B-factors.

References
----------
Wojdyr (2022) GEMMI: A library for structural biology. J. Open Source Softw. 7:4200.
https://doi.org/10.21105/joss.04200
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import torch

from cryoglass.io._atomic import atomic_write
from cryoglass.io.outputs import register_input

__all__ = ["AtomicModel", "read_structure", "with_coordinates", "write_structure"]


@dataclass(frozen=True, eq=False)
class AtomicModel:
    """Atoms of one model, in file order.

    Attributes
    ----------
    coordinates_angstrom : Tensor, float64, shape (N, 3)
        (x, y, z) positions [Å].
    elements : tuple of str
        Element symbols (``"C"``, ``"N"``, ``"Fe"``...).
    atom_names : tuple of str
        PDB atom names (``"CA"``...).
    residue_names : tuple of str
    residue_numbers : Tensor, int64, shape (N,)
        Sequence numbers (insertion codes are not kept).
    chain_ids : tuple of str
    bfactors_a2 : Tensor, float64, shape (N,)
        Isotropic B-factors [Å²].
    occupancies : Tensor, float64, shape (N,)
    source_path : Path
    """

    coordinates_angstrom: torch.Tensor
    elements: tuple[str, ...]
    atom_names: tuple[str, ...]
    residue_names: tuple[str, ...]
    residue_numbers: torch.Tensor
    chain_ids: tuple[str, ...]
    bfactors_a2: torch.Tensor
    occupancies: torch.Tensor
    source_path: Path
    _structure: gemmi.Structure = field(repr=False)

    def __len__(self) -> int:
        return int(self.coordinates_angstrom.shape[0])


def _is_amino_acid(residue: gemmi.Residue) -> bool:
    info = gemmi.find_tabulated_residue(residue.name)
    return info is not None and info.is_amino_acid()


def _select(structure: gemmi.Structure, *, ca_only: bool, hydrogens: bool, waters: bool) -> None:
    """Remove, in place, the atoms that are not kept."""
    if not hydrogens:
        structure.remove_hydrogens()
    if not waters:
        structure.remove_waters()
    if ca_only:
        for chain in structure[0]:
            for r in reversed(range(len(chain))):
                residue = chain[r]
                if not _is_amino_acid(residue) or residue.find_atom("CA", "*") is None:
                    del chain[r]
                    continue
                for a in reversed(range(len(residue))):
                    if residue[a].name != "CA":
                        del residue[a]
    structure.remove_empty_chains()


def read_structure(
    path: str | os.PathLike,
    *,
    ca_only: bool = False,
    hydrogens: bool = True,
    waters: bool = True,
    model_index: int = 0,
) -> AtomicModel:
    """Read a PDB or mmCIF file.

    Parameters
    ----------
    path : path-like
        ``.pdb``, ``.ent``, ``.cif``, ``.mmcif`` (optionally ``.gz``).
    ca_only : bool
        Keep only the Cα atoms of amino-acid residues (not calcium ions).
    hydrogens : bool
        Keep hydrogen atoms.
    waters : bool
        Keep water molecules.
    model_index : int
        Which model of a multi-model file (0-based).

    Returns
    -------
    AtomicModel

    Raises
    ------
    ValueError
        Unreadable file, missing model, or no atoms left; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: structure file not found")
    register_input(path)
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: cannot read structure: {error}") from error
    if not 0 <= model_index < len(structure):
        raise ValueError(f"{path}: has {len(structure)} model(s), no model {model_index}")
    for m in reversed(range(len(structure))):
        if m != model_index:
            del structure[m]
    structure.remove_alternative_conformations()
    _select(structure, ca_only=ca_only, hydrogens=hydrogens, waters=waters)
    atoms = [
        (chain.name, residue, atom)
        for chain in structure[0]
        for residue in chain
        for atom in residue
    ]
    if not atoms:
        raise ValueError(f"{path}: no atoms (after selection ca_only={ca_only})")
    f64 = torch.float64
    return AtomicModel(
        coordinates_angstrom=torch.tensor(
            [[a.pos.x, a.pos.y, a.pos.z] for _, _, a in atoms], dtype=f64
        ),
        elements=tuple(a.element.name for _, _, a in atoms),
        atom_names=tuple(a.name for _, _, a in atoms),
        residue_names=tuple(r.name for _, r, _ in atoms),
        residue_numbers=torch.tensor([r.seqid.num for _, r, _ in atoms], dtype=torch.int64),
        chain_ids=tuple(c for c, _, _ in atoms),
        bfactors_a2=torch.tensor([a.b_iso for _, _, a in atoms], dtype=f64),
        occupancies=torch.tensor([a.occ for _, _, a in atoms], dtype=f64),
        source_path=path,
        _structure=structure,
    )


def with_coordinates(model: AtomicModel, coordinates_angstrom: torch.Tensor) -> AtomicModel:
    """A copy of ``model`` with new coordinates (N, 3) [Å] (same atoms)."""
    coordinates = torch.as_tensor(coordinates_angstrom, dtype=torch.float64)
    if tuple(coordinates.shape) != (len(model), 3):
        raise ValueError(
            f"coordinates must have shape ({len(model)}, 3), got {tuple(coordinates.shape)}"
        )
    return dataclasses.replace(model, coordinates_angstrom=coordinates.detach().cpu().clone())


def write_structure(
    path: str | os.PathLike,
    model: AtomicModel,
    *,
    coordinates_angstrom: torch.Tensor | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (optionally with new coordinates) as PDB or mmCIF, atomically.

    Parameters
    ----------
    path : path-like
        ``.cif``/``.mmcif`` writes mmCIF; anything else writes PDB.
    model : AtomicModel
    coordinates_angstrom : Tensor (N, 3), optional
        New positions [Å] in the model's atom order (default: ``model.coordinates_angstrom``).
    overwrite : bool
    """
    if coordinates_angstrom is not None:
        model = with_coordinates(model, coordinates_angstrom)
    structure = model._structure.clone()
    positions = model.coordinates_angstrom.tolist()
    atoms = [atom for chain in structure[0] for residue in chain for atom in residue]
    if len(atoms) != len(positions):
        raise ValueError(f"model has {len(atoms)} atoms but {len(positions)} coordinates")
    for atom, (x, y, z) in zip(atoms, positions, strict=True):
        atom.pos = gemmi.Position(x, y, z)
    mmcif = Path(path).suffix.lower() in (".cif", ".mmcif")

    def _write(tmp: Path) -> None:
        if mmcif:
            structure.setup_entities()
            structure.make_mmcif_document().write_file(str(tmp))
        else:
            structure.write_pdb(str(tmp))

    return atomic_write(path, _write, overwrite=overwrite)
