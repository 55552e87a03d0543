"""Host-side input validation, shared by every public entry point.

Shape checks always run: shapes are static, also under ``jit``, ``vmap`` and ``grad``. Value checks (finite
positions, species range, atomic numbers, charge and spin) need concrete arrays, so they run only when the caller
passes concrete arrays, i.e. outside ``jit``/``vmap``/``grad``. Inside a transformation they are skipped; a bad value
then shows up as NaN rather than as an error, so validate data once before a jitted loop
(``validate_structure``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from so3krates_hk._compat import is_tracer, partition


class InputError(ValueError):
    """Raised for invalid model inputs; the message names the offending atom or key."""


def _concrete(*arrays) -> bool:
    return all(a is not None and not is_tracer(a) for a in arrays)


def check_position(position) -> int:
    """position must be (N, 3) floating point; returns N. Values: finite (when concrete)."""
    shape = np.shape(position)
    if len(shape) != 2 or shape[1] != 3:
        raise InputError(f"position must have shape (N, 3); got {shape}.")
    dtype = np.dtype(getattr(position, "dtype", np.float64))
    if not np.issubdtype(dtype, np.floating):
        raise InputError(f"position must be floating point; got dtype {dtype}.")
    if _concrete(position):
        bad = ~np.isfinite(np.asarray(position)).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"position of atom {i} is not finite ({np.asarray(position)[i].tolist()}); "
                f"{int(bad.sum())} atom(s) have NaN or infinite coordinates."
            )
    return shape[0]


def check_mask(mask, num_atoms: int) -> None:
    if mask is None:
        return
    if np.shape(mask) != (num_atoms,):
        raise InputError(f"mask must have shape (N,) = ({num_atoms},); got {np.shape(mask)}.")


def check_species(species, num_atoms: int, num_species: int, mask=None, what: str = "species", low: int = 0) -> None:
    """species must be (N,) integers in [low, num_species) on the unmasked atoms."""
    if species is None:
        return
    if np.shape(species) != (num_atoms,):
        raise InputError(f"{what} must have shape (N,) = ({num_atoms},); got {np.shape(species)}.")
    dtype = np.dtype(getattr(species, "dtype", np.int64))
    if not np.issubdtype(dtype, np.integer):
        raise InputError(f"{what} must be integers; got dtype {dtype}.")
    if _concrete(species) and (mask is None or _concrete(mask)):
        s = np.asarray(species)
        real = np.ones(num_atoms, bool) if mask is None else np.asarray(mask).astype(bool)
        bad = real & ((s < low) | (s >= num_species))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{what}[{i}] = {int(s[i])} is outside the range the model covers, {low} … {num_species - 1}."
            )


def check_neighbor(neighbor, num_atoms: int, name: str = "neighbor", allow_ordered: bool = True) -> None:
    """A jax-md NeighborList whose shape fits N atoms."""
    if neighbor is None or not hasattr(neighbor, "idx") or not hasattr(neighbor, "format"):
        raise InputError(f"{name} must be a jax_md.partition.NeighborList; got {type(neighbor).__name__}.")
    shape = np.shape(neighbor.idx)
    fmt = neighbor.format
    if fmt == partition.NeighborListFormat.Dense:
        if len(shape) != 2 or shape[0] != num_atoms:
            raise InputError(f"{name}: a Dense list for N = {num_atoms} atoms has idx (N, M); got {shape}.")
    else:
        if len(shape) != 2 or shape[0] != 2:
            raise InputError(f"{name}: a Sparse list has idx (2, capacity); got {shape}.")
        if fmt == partition.NeighborListFormat.OrderedSparse and not allow_ordered:
            raise InputError(
                f"{name} is OrderedSparse (each pair once), but the SO3krates transformer needs both directions "
                "of every pair: build it with format=partition.Sparse or partition.Dense."
            )


def check_charge_spin(atomic_numbers, total_charge, num_unpaired_electrons, mask=None, check_parity=True) -> None:
    """Q must be an integer and S a non-negative integer. With ``check_parity``, S must also have the parity of the
    electron count ΣZ − Q and not exceed it.

    SO3LR defines S as the number of unpaired electrons (spin multiplicity − 1), SPEC §2.1. The original itself does
    not enforce the parity (SPEC §13 tabulates Q = ±1 with S = 0 for even-electron molecules), hence the switch.
    """
    for name, v in (("total_charge", total_charge), ("num_unpaired_electrons", num_unpaired_electrons)):
        if np.size(v) != 1:
            raise InputError(f"{name} must be a scalar (one value per structure); got shape {np.shape(v)}.")
    if not _concrete(total_charge, num_unpaired_electrons):
        return
    q = float(np.asarray(total_charge).reshape(()))
    s = float(np.asarray(num_unpaired_electrons).reshape(()))
    if not np.isfinite(q) or q != round(q):
        raise InputError(f"total_charge must be an integer number of elementary charges; got {q}.")
    if not np.isfinite(s) or s != round(s) or s < 0:
        raise InputError(f"num_unpaired_electrons must be a non-negative integer; got {s}.")
    if check_parity and atomic_numbers is not None and _concrete(atomic_numbers) and (mask is None or _concrete(mask)):
        z = np.asarray(atomic_numbers)
        if mask is not None:
            z = z[np.asarray(mask).astype(bool)]
        electrons = int(z.sum()) - int(round(q))
        if electrons < 0:
            raise InputError(f"total_charge {q:+g} leaves {electrons} electrons for ΣZ = {int(z.sum())}.")
        if int(round(s)) > electrons or (electrons - int(round(s))) % 2:
            raise InputError(
                f"num_unpaired_electrons = {int(round(s))} is inconsistent with {electrons} electrons "
                f"(ΣZ = {int(z.sum())}, total_charge = {q:+g}): it must have the same parity and not exceed it."
            )


def validate_structure(
    position,
    species=None,
    mask=None,
    *,
    num_species: Optional[int] = None,
    species_low: int = 0,
    neighbor=None,
    allow_ordered: bool = True,
    what: str = "species",
) -> int:
    """Run every applicable check and return N."""
    N = check_position(position)
    check_mask(mask, N)
    if num_species is not None:
        check_species(species, N, num_species, mask, what=what, low=species_low)
    if neighbor is not None:
        check_neighbor(neighbor, N, allow_ordered=allow_ordered)
    return N
