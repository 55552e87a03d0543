"""An ASE calculator for SO3LR: energy, forces and (periodic cells) stress, on jax-md neighbour lists.

    from so3krates_hk.ase import SO3LRCalculator
    atoms.calc = SO3LRCalculator()                 # shipped pretrained weights, float64
    atoms.info.update(charge=1, multiplicity=2)    # optional: total charge Q and spin multiplicity (S = mult − 1)
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Units are ASE's: Å, eV, eV/Å, eV/Å³.

**float64 and ``jax_enable_x64``.** ``dtype="float64"`` (the default, as in the original SO3LR ASE calculator) turns
on ``jax_enable_x64`` when the calculator is created. That flag is *process-wide*: afterwards every new JAX array
defaults to 64 bits. Arrays created before it keep their dtype, which is harmless here (the calculator converts its
own inputs), but if your code relies on float32 defaults, enable x64 yourself at start-up, or use
``dtype="float32"``. If x64 is switched off again later, the float64 calculator refuses to run (RuntimeError) rather
than silently computing in float32.

**Charge and spin** come from ``atoms.info``, as in the original SO3LR's ASE calculator:

* ``atoms.info["charge"]``: total charge Q in elementary charges (an integer; default 0);
* ``atoms.info["multiplicity"]``: spin multiplicity 2S_z + 1; the model takes the number of unpaired electrons
  S = multiplicity − 1 (default S = 0);
* ``atoms.info["spin"]``: S, the number of unpaired electrons, directly (not the multiplicity!). If both
  ``multiplicity`` and ``spin`` are given they must agree.

By default S must have the parity of the electron count ΣZ − Q (``check_spin_parity=False`` lifts that; the
original does not check).

**Geometry.** Free space (``pbc`` all False; any cell is ignored) uses ``jax_md.space.free()``. Fully periodic cells
use fractional coordinates with ``space.periodic_general(box, fractional_coordinates=True)`` (made safe from an
XLA:CPU bug of JAX 0.10.2 by ``so3krates_hk._compat``), so any triclinic cell works; internally the cell is rotated to jax-md's upper-triangular box convention (forces and stress
are rotated back). Every perpendicular width
of the cell must be at least 2 × the long-range cutoff (minimum image). Mixed ``pbc`` raises NotImplementedError.

**Neighbour lists** (short range: jax-md ``Sparse`` at ``r_cutoff``; long range: ``OrderedSparse`` at
``lr_cutoff``, both with a ``skin``) are kept between calls and updated; jax-md rebuilds them only after some atom
moved more than skin/2. They are re-allocated when the number of atoms, the atomic numbers, the cell or pbc change,
or when a list overflows. Array capacities only grow for a given number of atoms, so re-allocations usually reuse the
compiled energy function. The counters ``num_allocations``, ``num_rebuilds`` and ``num_compilations`` show what
happened. Gas-phase systems use no cell list (O(N²) list construction), which is fine up to a few thousand atoms.

**Dipole moment** (``get_dipole_moment()``, e·Å): μ = Σ q_i (r_i − R_com) from SO3LR's partial charges, about the
centre of mass, so it is translation-invariant for charged molecules too (for neutral ones the origin does not
matter). Free space only: for a periodic cell the dipole depends on how atoms are wrapped into the cell and is not
defined; asking for it raises ``PropertyNotImplementedError``.

**Hessian and vibrations.** ``calc.get_hessian(atoms)`` is the exact Hessian (3N, 3N) in eV/Å² by automatic
differentiation (``so3krates_hk.hessian``), and ``calc.get_vibrations(atoms)`` the matching
``ase.vibrations.VibrationsData`` (frequencies, normal modes, Jmol output), with no finite differences.

**Committees.** ``params`` may be a list of parameter trees (or parameter files) of one architecture: all members
are evaluated in one batched call (``jax.vmap`` over the stacked parameters). ``energy``, ``forces`` and the other
properties are then the member mean, and ``energy_std`` (eV) and ``forces_std`` ((N, 3), eV/Å) the population
standard deviation over members (``so3krates_hk.committee``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, Parameters, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from so3krates_hk import validation
from so3krates_hk._compat import jax_md, partition
from so3krates_hk._cpu_runtime import serial_loops
from so3krates_hk.factory import so3lr_neighborlist_pp
from so3krates_hk.graph import capacity_from_test, count_edges
from so3krates_hk.models import SO3LR_HEAD_SPECIES
from so3krates_hk.validation import InputError

DTYPES = {"float64": jnp.float64, "float32": jnp.float32}
# Factory arguments the calculator manages itself.
_MANAGED = ("mode", "per_particle", "positions_test", "neighbor_test", "max_edges", "max_edge_multiplier",
            "lr_neighbor_format")  # fmt: skip


def enable_x64() -> None:
    """Turn on ``jax_enable_x64`` (process-wide) and check that float64 arrays are really created."""
    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    if jnp.zeros((), jnp.float64).dtype != jnp.float64:  # pragma: no cover
        raise RuntimeError("Could not enable jax_enable_x64; set JAX_ENABLE_X64=1 before starting Python.")


def charge_and_spin(info: dict) -> tuple[float, float]:
    """(total charge Q, number of unpaired electrons S) from ``atoms.info``; see the module docstring."""

    def number(key, default):
        value = info.get(key, default)
        try:
            value = float(np.asarray(value, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            raise InputError(f"atoms.info[{key!r}] must be a single number; got {value!r}.") from None
        if not math.isfinite(value) or value != round(value):
            raise InputError(f"atoms.info[{key!r}] must be an integer; got {value!r}.")
        return value

    charge = number("charge", 0)
    spin = None
    if "multiplicity" in info:
        multiplicity = number("multiplicity", 1)
        if multiplicity < 1:
            raise InputError(f"atoms.info['multiplicity'] must be ≥ 1 (2S + 1); got {multiplicity:g}.")
        spin = multiplicity - 1.0
    if "spin" in info:
        s = number("spin", 0)
        if spin is not None and s != spin:
            raise InputError(
                f"atoms.info['spin'] = {s:g} (unpaired electrons) contradicts atoms.info['multiplicity'] = "
                f"{spin + 1:g} (which means {spin:g} unpaired electrons)."
            )
        spin = s
    return charge, (0.0 if spin is None else spin)


@dataclasses.dataclass
class _Geometry:
    """A structure in the frame the model sees."""

    periodic: bool
    position: np.ndarray  # (N, 3): Cartesian (free) or fractional in [0, 1) (periodic)
    box: Optional[np.ndarray]  # (3, 3) jax-md box, columns are lattice vectors, upper triangular
    rotation: Optional[np.ndarray]  # Q: model frame = ASE frame rotated, r_model = r_ase @ Q (None: identity)
    cell: Optional[np.ndarray]  # ASE cell (rows), periodic only
    key: tuple  # what forces a re-allocation of the neighbour lists when it changes


def _standard_box(cell: np.ndarray) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """jax-md box (upper triangular, positive diagonal) of an ASE cell, and the rotation Q with box = Qᵀ cellᵀ.

    jax-md's cell list needs an upper-triangular box; the energy is invariant under the (possibly improper)
    orthogonal Q, so the model runs in the rotated frame.
    """
    box = cell.T
    if np.all(np.tril(box, -1) == 0) and np.all(np.diag(box) > 0):
        return box.copy(), None
    q, r = np.linalg.qr(box)
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    q, r = q * signs[None, :], r * signs[:, None]
    return np.triu(r), q


def _occupancy(nbrs) -> int:
    """Number of real entries of a sparse list (jax-md packs them first)."""
    return int(jnp.sum(nbrs.idx[0] < nbrs.reference_position.shape[0]))


def _fit(nbrs, capacity: int):
    """The same neighbour list with exactly ``capacity`` slots: padding entries (index N) are added or dropped.

    Dropping is safe when the real entries fit (jax-md packs them first); the list then reports overflow, as any
    jax-md list does, once a rebuild finds more pairs than ``capacity``.
    """
    idx = nbrs.idx
    extra = capacity - idx.shape[-1]
    if extra == 0:
        return nbrs
    if extra < 0:
        idx = idx[..., :capacity]
    else:
        N = nbrs.reference_position.shape[0]
        idx = jnp.concatenate([idx, jnp.full(idx.shape[:-1] + (extra,), N, idx.dtype)], axis=-1)
    return dataclasses.replace(nbrs, idx=idx, max_occupancy=capacity)


def _capacity_limit(nbrs) -> int:
    """Largest capacity a list without cell list can be given and still be rebuilt in place (jax-md's own cap)."""
    N = nbrs.reference_position.shape[0]
    if nbrs.format == partition.OrderedSparse:
        return N * (N - 1) // 2
    return N * (N - 1)


def _for_energy(nbrs, capacity: int):
    """A view of a list for the energy function: padded to ``capacity``, without the static cell-list fields that
    change on every allocation (so a re-allocated list of the same capacity does not trigger a recompilation)."""
    if nbrs is None:
        return None
    nbrs = _fit(nbrs, capacity)
    return dataclasses.replace(nbrs, cell_list_fn=None, update_fn=None, cell_size=None, cell_list_capacity=None)


class SO3LRCalculator(Calculator):
    """SO3LR (SO3krates + ZBL + damped Coulomb + dispersion) as an ASE calculator.

    Args:
        params: SO3LR parameters; None uses the shipped pretrained weights (``so3krates_hk.pretrained.so3lr()``)
            and the factory arguments they were trained with.
        dtype: "float64" (default; enables ``jax_enable_x64`` process-wide, see the module docstring) or
            "float32".
        r_cutoff: short-range cutoff of the transformer and ZBL, Å (4.5 for the pretrained weights).
        lr_cutoff: long-range cutoff of Coulomb and dispersion, Å (12). A periodic cell must be ≥ 2·lr_cutoff wide.
            With a smaller value, also lower ``dispersion_damping`` (the dispersion switch runs over
            [lr_cutoff − dispersion_damping, lr_cutoff]).
        skin: neighbour-list skin, Å; lists are rebuilt after an atom moved more than skin/2.
        capacity_multiplier: head room of the neighbour lists and of the short-range edge capacity.
        **so3lr_kwargs: further ``so3lr_neighborlist_pp`` arguments (``dispersion_damping``, ``zbl``,
            ``electrostatics``, ``dispersion``, ``check_spin_parity``, ``avg_num_neighbors``, …); they override
            the pretrained ones.

    Properties: ``energy``, ``free_energy`` (the same), ``forces``, ``stress`` (periodic cells; Voigt order xx, yy,
    zz, yz, xz, xy; σ = (1/V) ∂E/∂ε by automatic differentiation), ``energies`` (per atom; the split of the
    Coulomb and dispersion pair energies between the two atoms is a convention of the list format, docs/model.md
    "Graphs") and ``charges`` (SO3LR's partial charges, e).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies", "charges", "dipole",
                              "energy_std", "forces_std"]  # fmt: skip
    nolabel = True

    def __init__(
        self,
        params: Optional[dict] = None,
        dtype: str = "float64",
        r_cutoff: float = 4.5,
        lr_cutoff: float = 12.0,
        skin: float = 0.5,
        capacity_multiplier: float = 1.25,
        **so3lr_kwargs: Any,
    ):
        super().__init__()
        name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
        if name not in DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32'; got {dtype!r}.")
        for key in _MANAGED:
            if key in so3lr_kwargs:
                raise TypeError(f"SO3LRCalculator manages {key!r} itself; do not pass it.")
        if lr_cutoff is None:
            raise ValueError("lr_cutoff must be a number: the untruncated long-range variant is not supported here.")
        if skin < 0 or capacity_multiplier < 1:
            raise ValueError("skin must be ≥ 0 and capacity_multiplier ≥ 1.")
        if name == "float64":
            enable_x64()
        self.dtype = DTYPES[name]
        self.members = None
        if isinstance(params, (list, tuple)):  # a committee
            from so3krates_hk.committee import load_model

            params, committee_kwargs, self.members = load_model(list(params))
            so3lr_kwargs = {**{k: v for k, v in committee_kwargs.items() if k not in ("r_cutoff", "lr_cutoff")},
                            **so3lr_kwargs}  # fmt: skip
        if params is None:
            from so3krates_hk import pretrained

            params, pretrained_kwargs = pretrained.so3lr()
            pretrained_kwargs.pop("r_cutoff", None)
            pretrained_kwargs.pop("lr_cutoff", None)
            so3lr_kwargs = {**pretrained_kwargs, **so3lr_kwargs}
        if name == "float32":
            self.params = jax.tree_util.tree_map(
                lambda x: jnp.asarray(x, jnp.float32 if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else None),
                params,
            )
        else:
            self.params = jax.tree_util.tree_map(jnp.asarray, params)
        self.r_cutoff = float(r_cutoff)
        self.lr_cutoff = float(lr_cutoff)
        self.skin = float(skin)
        self.capacity_multiplier = float(capacity_multiplier)
        self.check_spin_parity = bool(so3lr_kwargs.get("check_spin_parity", True))
        self.needs_lr = bool(so3lr_kwargs.get("electrostatics", True) or so3lr_kwargs.get("dispersion", True))
        self.so3lr_kwargs = dict(so3lr_kwargs)
        self.parameters = Parameters(dtype=name, r_cutoff=self.r_cutoff, lr_cutoff=self.lr_cutoff, skin=self.skin,
                               capacity_multiplier=self.capacity_multiplier, **self.so3lr_kwargs)  # fmt: skip
        # Counters, for users and tests.
        self.num_allocations = 0  # neighbour-list allocations
        self.num_rebuilds = 0  # rebuilds inside an update (an atom moved more than skin/2)
        self.num_compilations = 0  # traces of the energy function (one per input shape / edge capacity)
        self._spaces: dict[bool, dict] = {}
        self._evaluators: dict[tuple[bool, int], Any] = {}
        self._capacity: dict[str, int] = {}  # slots of each list, for the current number of atoms
        self._max_edges: Optional[int] = None  # short-range edge capacity of the transformer
        self._num_atoms: Optional[int] = None
        self.reset_neighbor_lists()

    # ----------------------------------------------------------------------------------------------------------
    # ASE interface

    def check_state(self, atoms, tol=1e-15):
        """ASE's checks plus the charge and spin in ``atoms.info`` (which ASE does not compare)."""
        changes = super().check_state(atoms, tol=tol)
        if self.atoms is not None and _info_key(atoms.info) != _info_key(self.atoms.info):
            changes = list(changes) + ["info"]
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if self.dtype == jnp.float64 and not jax.config.jax_enable_x64:
            raise RuntimeError(
                "This SO3LRCalculator computes in float64, but jax_enable_x64 was switched off after it was created; "
                "re-enable it, or use dtype='float32'."
            )
        geometry = self._geometry(atoms)
        numbers = np.asarray(atoms.numbers)
        charge, spin = charge_and_spin(atoms.info)
        validation.check_charge_spin(numbers, charge, spin, None, self.check_spin_parity)

        position = jnp.asarray(geometry.position, self.dtype)
        box = None if geometry.box is None else jnp.asarray(geometry.box, self.dtype)
        self._neighbor_lists(geometry, position, box)
        idx = np.asarray(self._sr.idx)
        validation.check_min_distance(
            atoms.positions, cell=geometry.cell, pbc=atoms.pbc if geometry.periodic else None, pairs=(idx[1], idx[0])
        )
        out = self._evaluate(geometry, position, box, numbers, charge, spin)

        energy = float(out["energy"])
        if not math.isfinite(energy):
            raise RuntimeError(f"SO3LR returned a non-finite energy ({energy}) for a structure that passed validation.")
        forces = np.asarray(out["forces"], np.float64)
        if geometry.rotation is not None:
            forces = forces @ geometry.rotation.T
        self.results = dict(
            energy=energy,
            free_energy=energy,
            forces=forces,
            energies=np.asarray(out["energies"], np.float64),
            charges=np.asarray(out["charges"], np.float64),
        )
        if self.members:
            self.results["energy_std"] = float(out["energy_std"])
            forces_std = np.asarray(out["forces_std"], np.float64)
            if geometry.rotation is not None:  # the spread of rotated vectors: rotate the member forces instead
                forces_std = np.asarray(out["member_forces"], np.float64) @ geometry.rotation.T
                forces_std = forces_std.std(axis=0)
            self.results["forces_std"] = forces_std
        if geometry.periodic:
            stress = np.asarray(out["stress"], np.float64)
            if geometry.rotation is not None:
                stress = geometry.rotation @ stress @ geometry.rotation.T
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        else:
            self.results["dipole"] = np.asarray(out["dipole"], np.float64)
        for name in properties:
            if name not in self.results:
                raise PropertyNotImplementedError(_UNDEFINED.get(name, f"{name!r} is not available here."))

    # ----------------------------------------------------------------------------------------------------------
    # Hessian and vibrations

    def get_hessian(self, atoms=None) -> np.ndarray:
        """The exact Hessian ∂²E/∂r∂r of ``atoms`` (default: the last structure), (3N, 3N) in eV/Å²."""
        from so3krates_hk.hessian import hessian

        atoms = self.atoms if atoms is None else atoms
        if atoms is None:
            raise ValueError("get_hessian needs atoms (no structure has been calculated yet).")
        if self.members:
            raise PropertyNotImplementedError("The Hessian is defined for one model, not a committee.")
        if not hasattr(self, "_hessian_evaluator"):
            from so3krates_hk.evaluate import Evaluator

            self._hessian_evaluator = Evaluator(
                jax.device_get(self.params), "float64" if self.dtype == jnp.float64 else "float32",
                r_cutoff=self.r_cutoff, lr_cutoff=self.lr_cutoff, **self.so3lr_kwargs,
            )  # fmt: skip
        return hessian(atoms, evaluator=self._hessian_evaluator)

    def get_vibrations(self, atoms=None):
        """``ase.vibrations.VibrationsData`` from the exact Hessian: ``get_frequencies()`` (cm⁻¹),
        ``get_modes()``, ``write_jmol()``."""
        from ase.vibrations import VibrationsData

        atoms = self.atoms if atoms is None else atoms
        return VibrationsData.from_2d(atoms, self.get_hessian(atoms))

    # ----------------------------------------------------------------------------------------------------------
    # Geometry and validation

    def _geometry(self, atoms) -> _Geometry:
        N = len(atoms)
        if N == 0:
            raise InputError("The structure has no atoms.")
        positions = np.asarray(atoms.positions, np.float64)
        numbers = np.asarray(atoms.numbers)
        validation.check_position(positions)
        validation.check_species(numbers, N, SO3LR_HEAD_SPECIES, what="atomic number", low=1)
        pbc = np.asarray(atoms.pbc, bool)
        key = (N, numbers.tobytes(), tuple(pbc))
        if not pbc.any():
            return _Geometry(False, positions, None, None, None, key)
        if not pbc.all():
            raise NotImplementedError(
                f"SO3LRCalculator supports free space (pbc all False) or fully periodic cells; got pbc={pbc.tolist()}."
            )
        cutoff = max(self.r_cutoff, self.lr_cutoff if self.needs_lr else 0.0)
        what = "long-range cutoff (lr_cutoff)" if cutoff == self.lr_cutoff else "cutoff (r_cutoff)"
        cell = np.asarray(atoms.cell.array, np.float64)
        validation.check_minimum_image(cell, cutoff, pbc, what=what)
        box, rotation = _standard_box(cell)
        frac = np.linalg.solve(cell.T, positions.T).T
        frac = frac - np.floor(frac)
        frac = np.where(frac >= 1.0, 0.0, frac)  # x − floor(x) can round up to 1 for tiny negative x
        return _Geometry(True, frac, box, rotation, cell, key + (cell.tobytes(),))

    # ----------------------------------------------------------------------------------------------------------
    # Neighbour lists

    def reset_neighbor_lists(self) -> None:
        """Drop the neighbour lists: the next calculation allocates new ones. The capacities are kept (they only
        grow, per number of atoms), so the compiled energy function is reused when the pairs fit."""
        self._sr = self._lr = None
        self._key = None

    def _space(self, periodic: bool) -> dict:
        """Displacement, neighbour-list functions and the jitted update, one set per kind of space."""
        if periodic not in self._spaces:
            if periodic:
                displacement, _ = jax_md.space.periodic_general(jnp.eye(3, dtype=self.dtype),
                                                                fractional_coordinates=True)
                lists = dict(fractional_coordinates=True)
                box = jnp.eye(3, dtype=self.dtype)  # placeholder; the real box is passed as box=
            else:
                displacement, _ = jax_md.space.free()
                lists = dict(disable_cell_list=True)
                box = 1.0
            common = dict(dr_threshold=self.skin, capacity_multiplier=self.capacity_multiplier, **lists)
            sr_fn = partition.neighbor_list(displacement, box, self.r_cutoff, format=partition.Sparse, **common)
            lr_fn = None
            if self.needs_lr:
                lr_fn = partition.neighbor_list(
                    displacement, box, self.lr_cutoff, format=partition.OrderedSparse, **common
                )

            def update(sr, lr, position, box):
                kw = {} if box is None else dict(box=box)
                new_sr = sr.update(position, **kw)
                new_lr = None if lr is None else lr.update(position, **kw)
                rebuilt = jnp.any(new_sr.reference_position != sr.reference_position)
                if lr is not None:
                    rebuilt = rebuilt | jnp.any(new_lr.reference_position != lr.reference_position)
                return new_sr, new_lr, rebuilt

            self._spaces[periodic] = dict(displacement=displacement, sr=sr_fn, lr=lr_fn, update=jax.jit(update))
        return self._spaces[periodic]

    def _neighbor_lists(self, geometry: _Geometry, position, box) -> None:
        space = self._space(geometry.periodic)
        if self._sr is not None and self._key == geometry.key:
            sr, lr, rebuilt = space["update"](self._sr, self._lr, position, box)
            if not (_overflow(sr) or _overflow(lr)):
                self._sr, self._lr = sr, lr
                self.num_rebuilds += int(bool(rebuilt))
                return
        self._allocate(geometry, position, box, space)

    def _allocate(self, geometry: _Geometry, position, box, space: dict) -> None:
        kw = {} if box is None else dict(box=box)
        N = position.shape[0]
        if self._num_atoms != N:
            self._capacity, self._max_edges, self._num_atoms = {}, None, N
        lists = {"sr": space["sr"].allocate(position, **kw)}
        if space["lr"] is not None:
            lists["lr"] = space["lr"].allocate(position, **kw)
        self.num_allocations += 1
        for name, nbrs in lists.items():
            if _overflow(nbrs):  # only a malformed box or a failed cell list can do this right after allocation
                raise RuntimeError(f"jax-md could not allocate the {name} neighbour list: {nbrs.error}.")
            # Keep the previous capacity while the pairs fit: same shapes, so the compiled functions are reused.
            previous = self._capacity.get(name)
            if previous is not None and _occupancy(nbrs) <= previous:
                if previous <= nbrs.idx.shape[-1] or (nbrs.cell_list_fn is None and previous <= _capacity_limit(nbrs)):
                    nbrs = _fit(nbrs, previous)
                capacity = previous
            else:
                capacity = max(nbrs.idx.shape[-1], 1)
            self._capacity[name] = capacity
            lists[name] = nbrs
        self._sr, self._lr = lists["sr"], lists.get("lr")
        self._key = geometry.key
        edges = count_edges(space["displacement"], position, self._sr, self.r_cutoff, None, **kw)
        if self._max_edges is None or edges > self._max_edges:
            self._max_edges = capacity_from_test(edges, self.capacity_multiplier)

    # ----------------------------------------------------------------------------------------------------------
    # Energy, forces, stress

    def _evaluator(self, periodic: bool, max_edges: int):
        key = (periodic, max_edges)
        if key not in self._evaluators:
            displacement = self._space(periodic)["displacement"]
            _, apply_fn = so3lr_neighborlist_pp(
                displacement, r_cutoff=self.r_cutoff, lr_cutoff=self.lr_cutoff, mode="all",
                lr_neighbor_format="ordered", max_edges=max_edges, **self.so3lr_kwargs,
            )  # fmt: skip

            def evaluate(params, position, box, sr, lr, Z, charge, spin):
                self.num_compilations += 1  # runs once per trace

                def energy(position, strain):
                    kw = {}
                    if periodic:
                        kw["box"] = box + strain @ box  # (1 + ε)·box: affine strain at fixed fractional positions
                    out = apply_fn(params, position, sr, lr, Z, charge, spin, **kw)
                    return out["energy"], out

                strain = jnp.zeros((3, 3), position.dtype)
                (e, out), (grad, grad_strain) = jax.value_and_grad(energy, argnums=(0, 1), has_aux=True)(
                    position, strain
                )
                # With fractional coordinates, the gradient with respect to the fractional input is the
                # Cartesian gradient (the custom JVP of jax-md's space.transform).
                result = dict(energy=e, forces=-grad, energies=out["per_atom_energy"], charges=out["partial_charges"],
                              edge_overflow=out["edge_overflow"], num_edges=out["num_edges"], dipole=out["dipole"])  # fmt: skip
                if periodic:
                    volume = jnp.abs(jnp.linalg.det(box))
                    result["stress"] = 0.5 * (grad_strain + grad_strain.T) / volume
                return result

            if self.members:  # a committee: every member in one call, then mean and spread
                batched = jax.vmap(evaluate, in_axes=(0,) + (None,) * 7)

                def committee(params, *args):
                    out = batched(params, *args)
                    reduced = {k: jnp.mean(v, axis=0) for k, v in out.items() if k not in ("edge_overflow", "num_edges")}
                    reduced.update(edge_overflow=jnp.any(out["edge_overflow"]), num_edges=jnp.max(out["num_edges"]),
                                   energy_std=jnp.std(out["energy"]), forces_std=jnp.std(out["forces"], axis=0),
                                   member_forces=out["forces"])  # fmt: skip
                    return reduced

                self._evaluators[key] = jax.jit(committee)
            else:
                self._evaluators[key] = jax.jit(evaluate)
        return self._evaluators[key]

    def _evaluate(self, geometry, position, box, numbers, charge, spin) -> dict:
        Z = jnp.asarray(numbers, jnp.int32)
        q, s = jnp.asarray(charge, self.dtype), jnp.asarray(spin, self.dtype)
        sr = _for_energy(self._sr, self._capacity["sr"])
        lr = _for_energy(self._lr, self._capacity.get("lr", 1))
        for _ in range(8):
            fn = self._evaluator(geometry.periodic, self._max_edges)
            with serial_loops(len(position) * (self.members or 1)):  # small structures: see cpu_tuning
                out = fn(self.params, position, box, sr, lr, Z, q, s)
            if not bool(out["edge_overflow"]):
                return out
            self._max_edges = capacity_from_test(int(out["num_edges"]), self.capacity_multiplier)
        raise RuntimeError("The short-range edge capacity kept overflowing.")  # pragma: no cover


def _overflow(nbrs) -> bool:
    return nbrs is not None and bool(nbrs.did_buffer_overflow)


_UNDEFINED = {
    "dipole": "The dipole moment of a periodic cell is not defined (it depends on how atoms are wrapped into the "
    "cell); SO3LRCalculator gives it for free-space structures only.",
    "stress": "Stress is defined for periodic cells only.",
    "energy_std": "energy_std needs a committee: pass params as a list of parameter sets.",
    "forces_std": "forces_std needs a committee: pass params as a list of parameter sets.",
}


def _info_key(info: dict) -> tuple:
    return tuple(repr(info.get(k)) for k in ("charge", "multiplicity", "spin"))


__all__ = ["SO3LRCalculator", "charge_and_spin", "enable_x64"]
