"""Host-side input validation, shared by every public entry point.

Shape checks always run: shapes are static, also under ``jit``, ``vmap`` and ``grad``. Value checks (finite
positions, species range, atomic numbers, charge and spin) need concrete arrays, so they run only when the caller
passes concrete arrays, i.e. outside ``jit``/``vmap``/``grad``. Inside a transformation they are skipped; a bad value
then shows up as NaN rather than as an error, so validate data once before a jitted loop
(``validate_structure``).
"""

from __future__ import annotations

from typing import Optional

import jax
import numpy as np

from so3krates_hk._compat import is_tracer, partition
from so3krates_hk.errors import UserError


class InputError(UserError):
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

    SO3LR defines S as the number of unpaired electrons, spin multiplicity − 1 (docs/model.md, "Notation and
    hyperparameters"). The original itself does not enforce the parity (its reference components include Q = ±1 with S =
    0 for even-electron molecules), hence the switch.
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


MIN_DISTANCE = 0.1  # Å; closer pairs are treated as overlapping atoms (a broken structure, not physics)


def perpendicular_widths(cell) -> np.ndarray:
    """Perpendicular widths of the cell whose rows are the lattice vectors a, b, c (ASE's ``atoms.cell``): the
    distance between the two faces spanned by the other two vectors, w_a = V / |b × c| (and cyclically)."""
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(float(np.linalg.det(cell)))
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return volume / np.maximum(areas, np.finfo(np.float64).tiny)


def check_cell(cell) -> np.ndarray:
    """cell must be a finite, non-singular (3, 3) matrix (rows: lattice vectors, Å); returns it as float64."""
    if np.shape(cell) != (3, 3):
        raise InputError(f"cell must have shape (3, 3) (rows are the lattice vectors); got {np.shape(cell)}.")
    cell = np.asarray(cell, dtype=np.float64)
    if not np.isfinite(cell).all():
        raise InputError(f"cell has non-finite entries: {cell.tolist()}.")
    if abs(float(np.linalg.det(cell))) < 1e-6:
        raise InputError(f"cell is singular (volume {float(np.linalg.det(cell)):.3g} Å³): {cell.tolist()}.")
    return cell


def check_minimum_image(cell, cutoff: float, pbc=(True, True, True), what: str = "cutoff") -> np.ndarray:
    """A periodic cell must be at least 2·cutoff wide (perpendicular width) along every periodic lattice vector.

    Only then does every pair within the cutoff have exactly one periodic image within it, and the fractional
    minimum-image displacement of jax-md (``space.periodic``/``periodic_general``) finds it; a narrower cell makes
    pair sums miss images or count them once instead of several times, silently. Returns the widths.
    """
    cell = check_cell(cell)
    widths = perpendicular_widths(cell)
    pbc = np.broadcast_to(np.asarray(pbc, bool), (3,))
    for axis in range(3):
        if pbc[axis] and widths[axis] < 2.0 * cutoff:
            raise InputError(
                f"The periodic cell is too small for the {what} of {cutoff:g} Å: its perpendicular width along "
                f"lattice vector {'abc'[axis]} is {widths[axis]:.4g} Å < 2 × {cutoff:g} Å, so the minimum-image "
                f"convention would be wrong. Use a supercell (e.g. atoms.repeat), or a smaller {what}."
            )
    return widths


def check_min_distance(position, min_distance: float = MIN_DISTANCE, cell=None, pbc=None, pairs=None) -> None:
    """No two atoms may be closer than ``min_distance`` (Å); the error names the closest pair and its distance.

    Args:
        position: (N, 3) Cartesian positions, Å (concrete).
        cell, pbc: for periodic directions, the minimum-image distance is used (rows of ``cell`` are the lattice
            vectors; valid when ``check_minimum_image`` holds for ``min_distance``, which any real cell satisfies).
        pairs: optional (i, j) index arrays restricting the check to these pairs, e.g. the entries of a neighbour
            list whose cutoff exceeds ``min_distance`` (O(edges)); entries ≥ N (padding) and i = j are ignored.
            Without it every pair is checked, O(N²) time in O(N) memory chunks.
    """
    R = np.asarray(position, dtype=np.float64)
    N = check_position(R)
    periodic = None
    if cell is not None and pbc is not None and np.any(pbc):
        cell = check_cell(cell)
        periodic = (cell, np.linalg.inv(cell), np.broadcast_to(np.asarray(pbc, bool), (3,)))

    def distances(d):
        if periodic is not None:
            c, inv, p = periodic
            f = d @ inv
            f = np.where(p, f - np.round(f), f)
            d = f @ c
        return np.sqrt(np.sum(d * d, axis=-1))

    best = (np.inf, -1, -1)
    if pairs is not None:
        i, j = (np.asarray(a, dtype=np.int64).reshape(-1) for a in pairs)
        keep = (i < N) & (j < N) & (i != j)
        i, j = i[keep], j[keep]
        if i.size:
            d = distances(R[j] - R[i])
            k = int(np.argmin(d))
            best = (float(d[k]), int(min(i[k], j[k])), int(max(i[k], j[k])))
    else:
        chunk = max(1, (1 << 21) // max(N, 1))
        for a in range(0, N - 1, chunk):
            rows = np.arange(a, min(a + chunk, N - 1))
            d = distances(R[None, :, :] - R[rows, None, :])
            d[np.arange(N)[None, :] <= rows[:, None]] = np.inf  # each pair once, no self pairs
            k = np.unravel_index(int(np.argmin(d)), d.shape)
            if d[k] < best[0]:
                best = (float(d[k]), int(rows[k[0]]), int(k[1]))
    if best[0] < min_distance:
        raise InputError(
            f"atoms {best[1]} and {best[2]} are {best[0]:.4g} Å apart, closer than {min_distance:g} Å: "
            "overlapping atoms (a duplicated atom, or wrong units?)."
        )


def check_closest_pair(closest_pair_fn, position, neighbor, mask=None, min_distance: float = MIN_DISTANCE,
                       **displacement_kwargs) -> None:
    """The factories' overlap check, O(list entries): ``closest_pair_fn`` is a jitted ``graph.closest_pair`` bound to
    the displacement function, so periodic and fractional spaces are measured as the model measures them.
    Runs only on concrete inputs (it needs values)."""
    if not _concrete(position, neighbor.idx) or (mask is not None and not _concrete(mask)):
        return
    node_mask = None if mask is None else np.asarray(mask).astype(bool)
    # concrete inputs inside someone's jit (e.g. positions closed over while parameters are traced): evaluate now
    with jax.ensure_compile_time_eval():
        d, i, j = (np.asarray(a) for a in closest_pair_fn(position, neighbor, node_mask, **displacement_kwargs))
    if float(d) < min_distance:
        raise InputError(
            f"atoms {int(i)} and {int(j)} are {float(d):.4g} Å apart, closer than {min_distance:g} Å: "
            "overlapping atoms (a duplicated atom, or wrong units?)."
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
