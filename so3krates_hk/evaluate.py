"""SO3LR over a whole data set: several structures per model call, as one disjoint graph, so one program compiles.

    from so3krates_hk.evaluate import evaluate
    result = evaluate("data.extxyz")                  # shipped SO3LR; or model="finetuned.npz", or a list: committee
    result.metrics["forces"]["mae"], result.num_compilations, result.structures_per_second

Input: any file ASE reads (all frames), or a list of ``ase.Atoms``. Total charge and spin come from ``atoms.info``
as in the ASE calculator (``charge``; ``multiplicity`` = 2S + 1 or ``spin`` = S). Free space (``pbc`` all False) and
fully periodic cells are supported; each cell must be at least 2 × the long-range cutoff wide.

Batching (:mod:`so3krates_hk.packed`). The pair lists are built exactly on the host (every pair within the cutoff,
with its lattice translation; no skin). Consecutive structures are packed into batches of at most ``batch_atoms``
atoms; each batch is one graph whose atoms are the structures' atoms side by side and whose edges stay within each
structure, so one model call evaluates all of them. The sums over a structure (charge and spin embeddings, charge
neutralisation, energy, dipole) become sums over each structure's atoms; forces are the gradient of the summed
energies and the stress of a periodic cell comes from a per-structure affine strain. Free space and periodic cells
share the program. Every batch is padded (masked atoms and pairs, contributing exactly zero) to one capacity of
atoms, structures, pairs and long-range pairs, rounded up on the ladder 8, 12, 16, 24, 32, 48, … (2^k and
3·2^(k−1)): one compilation per data set, and a later call whose batches fit an already compiled capacity reuses it.
The results equal per-structure calls of the ASE calculator to rounding (``tests/test_eval.py``).

Outputs per structure: energy (eV), forces (eV/Å), partial charges (e), Hirshfeld ratios, the dipole moment
(e·Å, about the centre of mass, free space only; NaN for periodic cells, where it is not defined: see
:mod:`so3krates_hk.physics.dipole`) and, for periodic cells, the stress (eV/Å³, Voigt order xx yy zz yz xz xy).
A committee (several parameter files) gives the member mean and, as ``energy_std`` and ``forces_std``, the spread.

Metrics (where the file carries the reference): MAE and RMSE of the energy per atom (eV/atom), of the force
components (eV/Å), of the partial charges (e), of the dipole components (e·Å) and of the Hirshfeld ratios. References
are read as ASE stores them: ``atoms.get_potential_energy()``/``get_forces()`` (extxyz ``energy``, ``forces``),
``arrays["charges"]``, ``info["dipole"]``, ``arrays["hirshfeld_ratios"]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk import validation
from so3krates_hk._compat import jax_md, partition
from so3krates_hk._cpu_runtime import serial_loops
from so3krates_hk.committee import ModelSpec, load_model
from so3krates_hk.errors import UserError
from so3krates_hk.packed import Capacity, Structure, pack, plan, predictions_fn
from so3krates_hk.validation import InputError

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
PER_ATOM = ("forces", "charges", "hirshfeld_ratios", "forces_std")
PER_STRUCTURE = ("energy", "dipole", "stress", "energy_std")
TARGETS = ("energy", "forces", "charges", "dipole", "hirshfeld_ratios")


# ------------------------------------------------------------------------------------------------- input


def read_structures(path: str, index: str = ":") -> list:
    """All frames of an ASE-readable file; a missing or unreadable file raises UserError naming it."""
    import ase.io

    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    try:
        frames = ase.io.read(path, index=index)
    except KeyError as e:
        symbol = str(e.args[0]) if e.args else "?"
        raise InputError(f"{path}: unknown element {symbol!r}") from None
    except Exception as e:  # noqa: BLE001 - any parse failure is the file's fault
        raise InputError(f"{path}: cannot read it as structures ({type(e).__name__}: {e})") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise InputError(f"{path}: no structures in the file (index {index!r})")
    return frames


@dataclasses.dataclass
class Prepared:
    """A structure as the programs see it (Cartesian positions; exact neighbour lists)."""

    numbers: np.ndarray  # (N,)
    positions: np.ndarray  # (N, 3) Å
    cell: Optional[np.ndarray]  # (3, 3) rows = lattice vectors (periodic), else None
    charge: float
    spin: float
    pairs: np.ndarray  # (2, H) short-range pairs, each once: row 0 centre i, row 1 neighbour j < i
    shifts: np.ndarray  # (H, 3) lattice translation t_ij of the pair (r_ij = R_j − R_i + t_ij), Å
    lr_pairs: np.ndarray  # (2, P) long-range pairs, same layout
    lr_shifts: np.ndarray  # (P, 3)

    @property
    def periodic(self) -> bool:
        return self.cell is not None

    @property
    def sr(self) -> np.ndarray:
        """The short-range list in jax-md's Sparse layout: both directions, row 0 neighbour j, row 1 owner i."""
        i, j = self.pairs
        return np.stack([np.concatenate([j, i]), np.concatenate([i, j])])

    @property
    def lr(self) -> np.ndarray:
        """The long-range list in jax-md's OrderedSparse layout: each pair once, row 0 j, row 1 i (j < i)."""
        return self.lr_pairs[::-1]

    def structure(self) -> Structure:
        return Structure(self.numbers, self.positions, self.charge, self.spin, self.pairs, self.shifts,
                         self.lr_pairs, self.lr_shifts)  # fmt: skip


# Free space up to this many atoms: all pairs by numpy broadcasting (N² distances), faster than ASE's cell list.
_DENSE_PAIRS_MAX_ATOMS = 1024


def pairs_within(positions: np.ndarray, cell: Optional[np.ndarray], cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair closer than ``cutoff`` once, as ((2, H) [i; j] with j < i, (H, 3) lattice translations t_ij) with
    d_ij = |R_j − R_i + t_ij|. Periodic cells must be at least 2·cutoff wide (one image per pair)."""
    N = len(positions)
    if cell is None and N <= _DENSE_PAIRS_MAX_ATOMS:
        d = positions[None, :, :] - positions[:, None, :]  # d[i, j] = R_j − R_i
        i, j = np.nonzero(np.tril(np.einsum("ijk,ijk->ij", d, d) < cutoff * cutoff, k=-1))
        return np.stack([i, j]).astype(np.int32), np.zeros((len(i), 3))
    from ase.neighborlist import primitive_neighbor_list

    pbc = np.full(3, cell is not None)
    box = cell if cell is not None else np.eye(3)
    i, j, S = primitive_neighbor_list("ijS", pbc, box, positions, cutoff, self_interaction=False)
    keep = j < i
    shifts = S[keep] @ box if cell is not None else np.zeros((int(keep.sum()), 3))
    return np.stack([i[keep], j[keep]]).astype(np.int32), shifts


def prepare(atoms, r_cutoff: float, lr_cutoff: Optional[float], check_spin_parity: bool = True) -> Prepared:
    """Validate one ``ase.Atoms`` (elements, positions, charge and spin, minimum image, overlaps) and build its
    exact pair lists. ``lr_cutoff`` None: no long-range list.

    The lists hold every pair within the cutoff plus a margin of 10⁻⁴ Å; the model then keeps d < cutoff, computed
    in its own precision, the rule of ``graph.build_graph`` (so the selection is the one of a per-structure call)."""
    from so3krates_hk.ase import charge_and_spin
    from so3krates_hk.models import SO3LR_HEAD_SPECIES

    N = len(atoms)
    if N == 0:
        raise InputError("the structure has no atoms")
    positions = np.asarray(atoms.positions, np.float64)
    numbers = np.asarray(atoms.numbers, np.int32)
    validation.check_position(positions)
    validation.check_species(numbers, N, SO3LR_HEAD_SPECIES, what="atomic number", low=1)
    pbc = np.asarray(atoms.pbc, bool)
    if pbc.any() and not pbc.all():
        raise InputError(f"mixed periodicity {pbc.tolist()} is not supported (free space or fully periodic only)")
    cell = None
    if pbc.all():
        cell = np.asarray(atoms.cell.array, np.float64)
        cutoff = max(r_cutoff, lr_cutoff or 0.0)
        validation.check_minimum_image(cell, cutoff, pbc, what="long-range cutoff" if lr_cutoff else "cutoff")
    charge, spin = charge_and_spin(atoms.info)
    validation.check_charge_spin(numbers, charge, spin, None, check_spin_parity)

    margin = 1e-4
    pairs, shifts = pairs_within(positions, cell, r_cutoff + margin)
    validation.check_min_distance(positions, cell=cell, pbc=pbc if cell is not None else None,
                                  pairs=(pairs[0], pairs[1]))  # fmt: skip
    lr_pairs, lr_shifts = np.zeros((2, 0), np.int32), np.zeros((0, 3))
    if lr_cutoff is not None:
        lr_pairs, lr_shifts = pairs_within(positions, cell, lr_cutoff + margin)
    return Prepared(numbers, positions, cell, charge, spin, pairs, shifts, lr_pairs, lr_shifts)


def references(atoms) -> dict[str, np.ndarray]:
    """The reference values a structure carries (see the module docstring), as float64 arrays."""
    found: dict[str, Any] = {}
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    for key in ("energy", "forces", "charges", "dipole"):
        if key in results:
            found[key] = results[key]
    for key in ("energy", "dipole"):
        if key not in found and key in atoms.info:
            found[key] = atoms.info[key]
    for key in ("forces", "charges", "hirshfeld_ratios"):
        if key not in found and key in atoms.arrays:
            found[key] = atoms.arrays[key]
    return {k: np.asarray(v, np.float64) for k, v in found.items()}


# ------------------------------------------------------------------------------------------------- the program


def _template(fmt):
    """A jax-md neighbour list of format ``fmt`` whose arrays are replaced per structure (its static fields carry
    the format; nothing of its content is used)."""
    displacement, _ = jax_md.space.free()
    nbrs = partition.neighbor_list(displacement, 1.0, 1.0, format=fmt, disable_cell_list=True).allocate(
        jnp.zeros((2, 3), jnp.float32)
    )
    return dataclasses.replace(nbrs, cell_list_fn=None, update_fn=None, cell_size=None, cell_list_capacity=None)


class Evaluator:
    """Jitted, batched SO3LR (one model or a committee) over padded structures; counts its compilations.

    Args:
        model: see :func:`so3krates_hk.committee.load_model` (None: the shipped SO3LR).
        dtype: "float32" (default) or "float64" (enables ``jax_enable_x64`` process-wide).
        batching: how a committee's members share a call: "vmap" (one vectorised program), "map"
            (``jax.lax.map``: one member after another inside one compiled program) or "auto" (default: "map" on
            CPU, "vmap" on accelerators). Same results.
        **so3lr_kwargs: factory arguments overriding those of the weights (e.g. ``lr_cutoff``).
    """

    def __init__(self, model: ModelSpec = None, dtype: str = "float32", batching: str = "auto", **so3lr_kwargs: Any):
        from so3krates_hk.ase import enable_x64
        from so3krates_hk.factory import so3lr_neighborlist_pp

        if dtype not in DTYPES:
            raise UserError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        if batching not in ("auto", "vmap", "map"):
            raise UserError(f"batching must be 'auto', 'vmap' or 'map'; got {batching!r}")
        if batching == "auto":
            batching = "map" if jax.default_backend() == "cpu" else "vmap"
        self.batching = batching
        if dtype == "float64":
            enable_x64()
        self.dtype = DTYPES[dtype]
        params, kwargs, self.members = load_model(model)
        kwargs = {**kwargs, **so3lr_kwargs}
        self.r_cutoff = float(kwargs.pop("r_cutoff", 4.5))
        self.lr_cutoff = kwargs.pop("lr_cutoff", 12.0)
        self.needs_lr = bool(kwargs.get("electrostatics", True) or kwargs.get("dispersion", True))
        if not self.needs_lr:
            self.lr_cutoff = None
        self.check_spin_parity = bool(kwargs.get("check_spin_parity", True))
        self.kwargs = kwargs

        def cast(x):
            x = jnp.asarray(x)
            return x.astype(self.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

        self.params = jax.tree_util.tree_map(cast, params)
        self.num_compilations = 0
        self._sr_template = _template(partition.Sparse)
        self._lr_template = _template(partition.OrderedSparse)
        self._apply = {}
        self._programs: dict[int, Callable] = {}
        self.capacities: list[Capacity] = []  # the capacities compiled so far
        self.last_plan: Optional[tuple[int, Capacity]] = None  # (batches, capacity) of the last ``predict``
        # free space; periodic in Cartesian coordinates (Hessians); periodic in fractional coordinates (forces and
        # stress: jax-md's custom JVP of space.transform makes the gradient with respect to fractional positions
        # the Cartesian one, and the derivative with respect to the box at fixed fractional positions the affine
        # strain derivative, which it does not give for Cartesian positions)
        for kind in (False, True, "fractional"):
            if kind == "fractional":
                displacement, _ = jax_md.space.periodic_general(jnp.eye(3), fractional_coordinates=True)
            elif kind:
                displacement, _ = jax_md.space.periodic_general(jnp.eye(3), fractional_coordinates=False)
            else:
                displacement, _ = jax_md.space.free()
            self._apply[kind] = so3lr_neighborlist_pp(
                displacement, r_cutoff=self.r_cutoff, lr_cutoff=self.lr_cutoff, mode="all",
                lr_neighbor_format="ordered", **kwargs,
            )[1]  # fmt: skip

    # -- one structure, traceable

    def _lists(self, R, sr_idx, lr_idx):
        sr = dataclasses.replace(self._sr_template, idx=sr_idx, reference_position=R, max_occupancy=sr_idx.shape[-1])
        lr = dataclasses.replace(self._lr_template, idx=lr_idx, reference_position=R, max_occupancy=lr_idx.shape[-1])
        return sr, lr

    def energy_function(self, periodic) -> Callable:
        """``energy(params, R, strain, sr_idx, lr_idx, Z, mask, Q, S, box) -> (E, aux)``.

        ``periodic``: False (free space, R Cartesian), True (periodic, R Cartesian; ``strain`` unused) or
        "fractional" (periodic, R fractional; the box is strained affinely, (1 + ε)·box)."""
        apply_fn = self._apply[periodic]

        def energy(params, R, strain, sr_idx, lr_idx, Z, mask, Q, S, box):
            kw = {}
            if periodic == "fractional":
                kw["box"] = box + strain @ box
            elif periodic:
                kw["box"] = box
            sr, lr = self._lists(R, sr_idx, lr_idx)
            out = apply_fn(params, R, sr, lr, Z, Q, S, mask=mask, **kw)
            return out["energy"], out

        return energy

    def program(self, width: int) -> Callable:
        """The jitted batch program (:func:`so3krates_hk.packed.predictions_fn`) for structures of up to ``width``
        atoms, members on axis 0 of every output for a committee; one trace, counted, per capacity."""
        if width not in self._programs:
            one_by_one = jax.default_backend() == "cpu"
            predict = predictions_fn(self._apply[False].so3lr_config, width, one_by_one)
            if self.members and self.batching == "map":  # members one after another
                batched = lambda params, *arrays: jax.lax.map(lambda p: predict(p, *arrays), params)  # noqa: E731
            elif self.members:
                batched = jax.vmap(predict, in_axes=(0,) + (None,) * 11)
            else:
                batched = predict

            def run(params, *arrays):
                self.num_compilations += 1  # runs once per trace
                return batched(params, *arrays)

            self._programs[width] = jax.jit(run)
        return self._programs[width]

    # -- many structures

    def prepare(self, atoms) -> Prepared:
        return prepare(atoms, self.r_cutoff, self.lr_cutoff, self.check_spin_parity)

    def _capacity(self, planned: Capacity) -> Capacity:
        """The smallest capacity already compiled that holds ``planned`` (so later calls reuse the program), else
        ``planned``."""
        fits = [c for c in self.capacities
                if all(getattr(c, f.name) >= getattr(planned, f.name) for f in dataclasses.fields(Capacity))]
        if fits:
            return min(fits, key=lambda c: (c.atoms, c.pairs, c.lr_pairs, c.structures))
        self.capacities.append(planned)
        return planned

    def predict(self, prepared: Sequence[Prepared], batch_atoms: int = 1536, progress: bool = False) -> list[dict]:
        """Predictions for each prepared structure (numpy, float64), in input order: batches of up to
        ``batch_atoms`` atoms, each one disjoint graph (:mod:`so3krates_hk.packed`)."""
        from tqdm.auto import tqdm

        structures = [p.structure() for p in prepared]
        batches, planned = plan(structures, batch_atoms)
        capacity = self._capacity(planned)
        self.last_plan = (len(batches), capacity)
        fn = self.program(capacity.width)
        d = self.dtype
        results: list[Optional[dict]] = [None] * len(prepared)
        with tqdm(total=len(prepared), desc="evaluating", unit="structure", disable=not progress) as bar:
            pending = None  # dispatch the next batch before reading back the previous one
            for batch in batches + [None]:
                launched = None
                if batch is not None:
                    arrays = pack([structures[k] for k in batch], capacity)
                    args = [jnp.asarray(arrays[k], d if arrays[k].dtype == np.float64 else None)
                            for k in ("R", "Z", "mask", "segment", "local", "Q", "S", "pairs", "shifts", "lr_pairs",
                                      "lr_shifts")]  # fmt: skip
                    vectorised = self.members if self.batching != "map" else None  # members in one program
                    with serial_loops(capacity.width * (vectorised or 1)):
                        launched = (batch, fn(self.params, *args))
                if pending is not None:
                    self._unpack(pending[0], jax.device_get(pending[1]), prepared, results)
                    bar.update(len(pending[0]))
                pending = launched
        return results  # type: ignore[return-value]

    def _unpack(self, batch: list[int], out: dict, prepared: Sequence[Prepared], results: list) -> None:
        offset = 0
        for s, k in enumerate(batch):
            p = prepared[k]
            n = len(p.numbers)

            def take(key):
                v = np.asarray(out[key], np.float64)
                v = v[:, s] if self.members else v[s]  # noqa: B023
                return v

            def atoms(key):
                v = np.asarray(out[key], np.float64)
                return v[:, offset : offset + n] if self.members else v[offset : offset + n]  # noqa: B023

            row = dict(energy=take("energy"), forces=atoms("forces"), charges=atoms("charges"),
                       hirshfeld_ratios=atoms("hirshfeld_ratios"), dipole=take("dipole"))  # fmt: skip
            if p.periodic:  # σ = ½ (W + Wᵀ) / V
                virial = take("virial")
                row["stress"] = 0.5 * (virial + np.swapaxes(virial, -1, -2)) / abs(np.linalg.det(p.cell))
            if self.members:
                spread = {f"{key}_std": row[key].std(axis=0) for key in ("energy", "forces")}
                row = {key: v.mean(axis=0) for key, v in row.items()}
                row.update(spread)
            if p.periodic:  # the dipole of a periodic cell is not defined (physics.dipole)
                row["dipole"] = np.full(3, np.nan)
            results[k] = row
            offset += n


# ------------------------------------------------------------------------------------------------- results


@dataclasses.dataclass
class EvalResult:
    predictions: list[dict]  # per structure: energy, forces, charges, hirshfeld_ratios, dipole[, stress, *_std]
    references: list[dict]  # per structure: what the input carried
    num_atoms: np.ndarray
    metrics: dict  # {target: {"mae", "rmse", "count", "unit"}}
    num_compilations: int
    seconds: float  # wall time: validation, neighbour lists and the batched evaluation (compilations included)
    batches: int  # model calls (each one disjoint graph of several structures)
    capacity: dict  # the padded size of every batch: atoms, structures, pairs, lr_pairs

    @property
    def structures_per_second(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else math.inf

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for ``np.savez``: per-structure values (S, …), per-atom ones concatenated (ΣN, …) in input
        order (``num_atoms`` splits them); references as ``ref_<name>`` (NaN where a structure has none)."""
        out: dict[str, np.ndarray] = {"num_atoms": self.num_atoms}
        keys = sorted({k for p in self.predictions for k in p})
        for key in keys:
            out[key] = _gather([p.get(key) for p in self.predictions], key in PER_ATOM, self.predictions, key)
        for key in TARGETS:
            if any(key in r for r in self.references):
                out[f"ref_{key}"] = _gather([r.get(key) for r in self.references], key in PER_ATOM,
                                            self.predictions, key)  # fmt: skip
        out["metrics_json"] = np.array(json.dumps(self.metrics))
        return out


_SHAPES = {"forces": (3,), "forces_std": (3,), "dipole": (3,), "stress": (6,)}


def _gather(values, per_atom: bool, predictions, key):
    shape = _SHAPES.get(key, ())
    rows = []
    for v, p in zip(values, predictions):
        n = len(p["charges"])
        if v is None:
            v = np.full(((n,) if per_atom else ()) + shape, np.nan)
        rows.append(np.asarray(v, np.float64))
    return np.concatenate(rows) if per_atom else np.stack(rows)


UNITS = {"energy": "eV/atom", "forces": "eV/Å", "charges": "e", "dipole": "e·Å", "hirshfeld_ratios": "1"}


def compute_metrics(predictions: Sequence[dict], refs: Sequence[dict], num_atoms: np.ndarray) -> dict:
    """MAE and RMSE per target over the structures that carry it (energy per atom; force and dipole components)."""
    metrics = {}
    for key in TARGETS:
        pred, ref = [], []
        for p, r, n in zip(predictions, refs, num_atoms):
            if key not in r or (key == "dipole" and not np.all(np.isfinite(p["dipole"]))):
                continue
            a, b = np.asarray(p[key], np.float64), np.asarray(r[key], np.float64)
            if a.shape != b.shape and a.size == b.size:
                b = b.reshape(a.shape)
            if a.shape != b.shape:
                raise InputError(f"reference {key!r} has shape {b.shape}, expected {a.shape}")
            if key == "energy":
                a, b = a / n, b / n
            pred.append(a.reshape(-1))
            ref.append(b.reshape(-1))
        if pred:
            d = np.concatenate(pred) - np.concatenate(ref)
            metrics[key] = dict(mae=float(np.mean(np.abs(d))), rmse=float(np.sqrt(np.mean(d * d))),
                                count=len(pred), unit=UNITS[key])  # fmt: skip
    return metrics


def parity_plot(result: EvalResult, path: str) -> list[str]:
    """One PNG with a predicted-vs-reference panel per target the data carry; returns the targets drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in TARGETS if k in result.metrics]
    if not keys:
        return []
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pred, ref = [], []
        for p, r, n in zip(result.predictions, result.references, result.num_atoms):
            if key in r and np.all(np.isfinite(p[key])):
                scale = 1.0 / n if key == "energy" else 1.0
                pred.append(np.ravel(p[key]) * scale)
                ref.append(np.ravel(r[key]) * scale)
        x, y = np.concatenate(ref), np.concatenate(pred)
        ax.scatter(x, y, s=4, alpha=0.5)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        m = result.metrics[key]
        label = "energy per atom" if key == "energy" else key.replace("_", " ")
        ax.set_title(f"{label}\nMAE {m['mae']:.3g}, RMSE {m['rmse']:.3g} {m['unit']}", fontsize=9)
        ax.set_xlabel(f"reference ({m['unit']})")
        ax.set_ylabel(f"SO3LR ({m['unit']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return keys


def evaluate(
    data,
    model: ModelSpec = None,
    dtype: str = "float32",
    batch_atoms: int = 1536,
    progress: bool = False,
    evaluator: Optional[Evaluator] = None,
    index: str = ":",
    **so3lr_kwargs: Any,
) -> EvalResult:
    """Evaluate SO3LR (or a committee) on every structure of ``data`` (a path ASE reads, or a list of Atoms).

    ``evaluator`` reuses the compiled programs of an earlier call (then ``model``, ``dtype`` and ``so3lr_kwargs``
    are its own). A structure that fails validation raises InputError naming its index.
    """
    frames = read_structures(os.fspath(data), index) if isinstance(data, (str, os.PathLike)) else list(data)
    if not frames:
        raise InputError("no structures to evaluate")
    evaluator = evaluator or Evaluator(model, dtype, **so3lr_kwargs)
    t0 = time.perf_counter()
    prepared = []
    for k, atoms in enumerate(frames):
        try:
            prepared.append(evaluator.prepare(atoms))
        except InputError as e:
            raise InputError(f"structure {k}: {e}") from None
    compiles = evaluator.num_compilations
    predictions = evaluator.predict(prepared, batch_atoms=batch_atoms, progress=progress)
    seconds = time.perf_counter() - t0
    refs = [references(a) for a in frames]
    num_atoms = np.array([len(a) for a in frames])
    batches, capacity = evaluator.last_plan
    return EvalResult(predictions, refs, num_atoms, compute_metrics(predictions, refs, num_atoms),
                      evaluator.num_compilations - compiles, seconds, batches,
                      dataclasses.asdict(capacity))  # fmt: skip


__all__ = ["EvalResult", "Evaluator", "compute_metrics", "evaluate", "parity_plot", "pairs_within",
           "prepare", "read_structures", "references"]  # fmt: skip
