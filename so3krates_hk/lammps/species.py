"""LAMMPS atom types → model species.

* SO3LR: ``elements[t − 1]`` is the element of type t; its atomic number Z is the species (1 ≤ Z ≤ 99).
* CG SO3krates: type t is species t − 1, unless ``species[t − 1]`` maps it.

Every type present in the box needs a mapping; a missing one is a :class:`~so3krates_hk.errors.UserError`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from so3krates_hk.errors import UserError

SO3LR_MAX_Z = 99  # SO3LR's charge and Hirshfeld tables cover Z = 1 … 99


def _atomic_number(symbol: str) -> int:
    from ase.data import atomic_numbers

    z = atomic_numbers.get(symbol)
    if z is None or z == 0:
        raise UserError(f"--elements: {symbol!r} is not an element symbol")
    return int(z)


def so3lr_type_map(elements: Optional[Sequence[str]], ntypes: int) -> np.ndarray:
    """(ntypes + 1,) atomic numbers indexed by LAMMPS type (entry 0 unused)."""
    if not elements:
        raise UserError(f"SO3LR needs the element of every atom type: pass --elements with {ntypes} symbols "
                        "(type 1 first)")  # fmt: skip
    if len(elements) < ntypes:
        raise UserError(f"the box has {ntypes} atom types but --elements maps only {len(elements)} "
                        f"({' '.join(elements)}): type {len(elements) + 1} has no element")  # fmt: skip
    table = np.zeros(ntypes + 1, np.int32)
    for t, symbol in enumerate(elements[:ntypes], start=1):
        z = _atomic_number(symbol)
        if z > SO3LR_MAX_Z:
            raise UserError(f"--elements: {symbol} (Z = {z}) is outside SO3LR's elements (Z = 1 … {SO3LR_MAX_Z})")
        table[t] = z
    return table


def cg_type_map(species: Optional[Sequence[int]], ntypes: int, n_species: int) -> np.ndarray:
    """(ntypes + 1,) model species indexed by LAMMPS type (entry 0 unused)."""
    if species is None:
        table = np.arange(-1, ntypes, dtype=np.int32)
        if ntypes > n_species:
            raise UserError(f"the box has {ntypes} atom types but the model has {n_species} species: type "
                            f"{n_species + 1} has no species (map types with --species)")  # fmt: skip
        return table
    if len(species) < ntypes:
        raise UserError(f"the box has {ntypes} atom types but --species maps only {len(species)}: type "
                        f"{len(species) + 1} has no species")  # fmt: skip
    table = np.zeros(ntypes + 1, np.int32)
    for t, s in enumerate(species[:ntypes], start=1):
        if not 0 <= int(s) < n_species:
            raise UserError(f"--species: type {t} → species {s}, outside the model's 0 … {n_species - 1}")
        table[t] = int(s)
    return table
