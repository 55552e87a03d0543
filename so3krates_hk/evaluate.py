"""SO3LR over a whole data set: batched, padded into a few size buckets, so only a handful of programs compile.

    from so3krates_hk.evaluate import evaluate
    result = evaluate("data.extxyz")                  # shipped SO3LR; or model="finetuned.npz", or a list: committee
    result.metrics["forces"]["mae"], result.num_compilations, result.structures_per_second

Input: any file ASE reads (all frames), or a list of ``ase.Atoms``. Total charge and spin come from ``atoms.info``
as in the ASE calculator (``charge``; ``multiplicity`` = 2S + 1 or ``spin`` = S). Free space (``pbc`` all False) and
fully periodic cells are supported; each cell must be at least 2 × the long-range cutoff wide.

Batching. A structure of N atoms is padded to the bucket size N_b, the smallest of 8, 12, 16, 24, 32, 48, … (2^k and
3·2^(k−1)) that holds it; padded atoms are masked and contribute exactly zero. The neighbour lists are built exactly
(every pair within the cutoff, no skin) on the host, padded to the largest count in the bucket. Each bucket runs in
batches of B = max(1, ``batch_atoms`` // N_b) structures (the last batch is filled with copies, whose results are
dropped) through one compiled program of the energy, forces and charges (``jax.vmap`` over the batch on
accelerators, ``jax.lax.map`` on CPU; see ``Evaluator``): one compilation per bucket and kind of space.
List capacities (on the same ladder, from 16) and B (a power of two when the bucket holds fewer structures) are
rounded too, so a later call on similar data reuses the compiled programs.

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
from so3krates_hk.committee import ModelSpec, load_model
from so3krates_hk.errors import UserError
from so3krates_hk.validation import InputError

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
PER_ATOM = ("forces", "charges", "hirshfeld_ratios", "forces_std")
PER_STRUCTURE = ("energy", "dipole", "stress", "energy_std")
TARGETS = ("energy", "forces", "charges", "dipole", "hirshfeld_ratios")


def bucket_size(num_atoms: int, smallest: int = 8) -> int:
    """The smallest N_b ≥ num_atoms of the ladder 8, 12, 16, 24, 32, 48, … (2^k and 3·2^(k−1))."""
    size = smallest
    while size < num_atoms:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


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
    """A structure as the batched program sees it (Cartesian positions; exact neighbour lists, jax-md layout)."""

    numbers: np.ndarray  # (N,)
    positions: np.ndarray  # (N, 3) Å
    cell: Optional[np.ndarray]  # (3, 3) rows = lattice vectors (periodic), else None
    charge: float
    spin: float
    sr: np.ndarray  # (2, P) Sparse: both directions, row 0 neighbour j, row 1 owner i
    lr: np.ndarray  # (2, P_lr) OrderedSparse: each pair once, j < i

    @property
    def periodic(self) -> bool:
        return self.cell is not None


def prepare(atoms, r_cutoff: float, lr_cutoff: Optional[float], check_spin_parity: bool = True) -> Prepared:
    """Validate one ``ase.Atoms`` (elements, positions, charge and spin, minimum image, overlaps) and build its
    exact neighbour lists. ``lr_cutoff`` None: no long-range list."""
    from ase.neighborlist import neighbor_list

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

    def pairs(cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        i, j = neighbor_list("ij", atoms, cutoff, self_interaction=False)
        return i.astype(np.int32), j.astype(np.int32)

    i, j = pairs(r_cutoff)
    validation.check_min_distance(positions, cell=cell, pbc=pbc if cell is not None else None, pairs=(i, j))
    sr = np.stack([j, i])
    lr = np.zeros((2, 0), np.int32)
    if lr_cutoff is not None:
        i, j = pairs(lr_cutoff)
        keep = j < i
        lr = np.stack([j[keep], i[keep]])
    return Prepared(numbers, positions, cell, charge, spin, sr, lr)


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
        batching: "vmap" (the batch as one vectorised program), "map" (``jax.lax.map``: the structures of a
            batch one after another inside one compiled program) or "auto" (default: "map" on CPU, where the
            vectorised gathers and scatters were measured slower than one structure at a time
            (``benchmarks/eval_bench.py``), "vmap" on accelerators). Same results. A committee's members are
            batched the same way.
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
        self._programs: dict[bool, Callable] = {}
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

    def _one(self, periodic: bool) -> Callable:
        energy = self.energy_function("fractional" if periodic else False)

        def one(params, R, sr_idx, lr_idx, Z, mask, Q, S, box):
            strain = jnp.zeros((3, 3), R.dtype)
            (e, out), (grad, grad_strain) = jax.value_and_grad(energy, argnums=(1, 2), has_aux=True)(
                params, R, strain, sr_idx, lr_idx, Z, mask, Q, S, box
            )
            result = dict(energy=e, forces=-grad, charges=out["partial_charges"],
                          hirshfeld_ratios=out["hirshfeld_ratios"], dipole=out["dipole"])  # fmt: skip
            if periodic:
                result["stress"] = 0.5 * (grad_strain + grad_strain.T) / jnp.abs(jnp.linalg.det(box))
            return result

        return one

    def program(self, periodic: bool) -> Callable:
        """The jitted batch program: structures on axis 0 (and members on axis 0 before them, for a committee)."""
        if periodic not in self._programs:
            one = self._one(periodic)
            if self.batching == "map":
                batched = lambda params, *arrays: jax.lax.map(lambda a: one(params, *a), arrays)  # noqa: E731
            else:
                batched = jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, 0, 0, 0))
            if self.members and self.batching == "map":  # members one after another, as the structures
                inner = batched
                batched = lambda params, *arrays: jax.lax.map(lambda p: inner(p, *arrays), params)  # noqa: E731
            elif self.members:
                batched = jax.vmap(batched, in_axes=(0,) + (None,) * 8)

            def run(params, *arrays):
                self.num_compilations += 1  # runs once per trace
                return batched(params, *arrays)

            self._programs[periodic] = jax.jit(run)
        return self._programs[periodic]

    # -- many structures

    def prepare(self, atoms) -> Prepared:
        return prepare(atoms, self.r_cutoff, self.lr_cutoff, self.check_spin_parity)

    def _pack(self, items: Sequence[Prepared], size: int, p_sr: int, p_lr: int) -> tuple:
        B = len(items)
        R = np.zeros((B, size, 3))
        Z = np.zeros((B, size), np.int32)
        mask = np.zeros((B, size), bool)
        sr = np.full((B, 2, p_sr), size, np.int32)
        lr = np.full((B, 2, p_lr), size, np.int32)
        box = np.tile(np.eye(3), (B, 1, 1))
        for b, s in enumerate(items):
            n = len(s.numbers)
            R[b, :n], Z[b, :n], mask[b, :n] = s.positions, s.numbers, True
            if s.periodic:  # fractional coordinates (see Evaluator.__init__)
                R[b, :n] = np.linalg.solve(s.cell.T, s.positions.T).T
            sr[b, :, : s.sr.shape[1]] = s.sr
            lr[b, :, : s.lr.shape[1]] = s.lr
            if s.periodic:
                box[b] = s.cell.T  # jax-md: columns are the lattice vectors
        Q = np.array([s.charge for s in items])
        S = np.array([s.spin for s in items])
        d = self.dtype
        return (jnp.asarray(R, d), jnp.asarray(sr), jnp.asarray(lr), jnp.asarray(Z), jnp.asarray(mask),
                jnp.asarray(Q, d), jnp.asarray(S, d), jnp.asarray(box, d))  # fmt: skip

    def predict(self, prepared: Sequence[Prepared], batch_atoms: int = 384, progress: bool = False) -> list[dict]:
        """Predictions for each prepared structure (numpy, float64), in input order."""
        from tqdm.auto import tqdm

        groups: dict[tuple[bool, int], list[int]] = {}
        for k, s in enumerate(prepared):
            groups.setdefault((s.periodic, bucket_size(len(s.numbers))), []).append(k)
        results: list[Optional[dict]] = [None] * len(prepared)
        with tqdm(total=len(prepared), desc="evaluating", unit="structure", disable=not progress) as bar:
            for (periodic, size), members in sorted(groups.items()):
                # capacities and batch size on a ladder too, so later calls on similar data reuse the programs
                p_sr = bucket_size(max(prepared[k].sr.shape[1] for k in members), 16)
                p_lr = bucket_size(max(prepared[k].lr.shape[1] for k in members), 16)
                B = max(1, min(batch_atoms // size, 1 << (len(members) - 1).bit_length()))
                fn = self.program(periodic)
                for start in range(0, len(members), B):
                    chunk = members[start : start + B]
                    items = [prepared[k] for k in chunk]
                    items += [items[0]] * (B - len(items))
                    out = jax.device_get(fn(self.params, *self._pack(items, size, p_sr, p_lr)))
                    for b, k in enumerate(chunk):
                        results[k] = self._unpack(out, b, len(prepared[k].numbers), periodic)
                    bar.update(len(chunk))
        return results  # type: ignore[return-value]

    def _unpack(self, out: dict, b: int, n: int, periodic: bool) -> dict:
        def take(value, per_atom):
            v = np.asarray(value, np.float64)
            v = v[:, b] if self.members else v[b]
            return v[:, :n] if (per_atom and self.members) else (v[:n] if per_atom else v)

        row = {k: take(v, k in PER_ATOM) for k, v in out.items()}
        if self.members:
            spread = {f"{k}_std": row[k].std(axis=0) for k in ("energy", "forces")}
            row = {k: v.mean(axis=0) for k, v in row.items()}
            row.update(spread)
        if periodic:  # the dipole of a periodic cell is not defined (physics.dipole)
            row["dipole"] = np.full(3, np.nan)
        return row


# ------------------------------------------------------------------------------------------------- results


@dataclasses.dataclass
class EvalResult:
    predictions: list[dict]  # per structure: energy, forces, charges, hirshfeld_ratios, dipole[, stress, *_std]
    references: list[dict]  # per structure: what the input carried
    num_atoms: np.ndarray
    metrics: dict  # {target: {"mae", "rmse", "count", "unit"}}
    num_compilations: int
    seconds: float  # wall time: validation, neighbour lists and the batched evaluation (compilations included)
    buckets: dict  # {"free"/"periodic" N_b: structures}

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
    batch_atoms: int = 384,
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
    buckets: dict[str, int] = {}
    for s in prepared:
        name = f"{'periodic' if s.periodic else 'free'} {bucket_size(len(s.numbers))}"
        buckets[name] = buckets.get(name, 0) + 1
    return EvalResult(predictions, refs, num_atoms, compute_metrics(predictions, refs, num_atoms),
                      evaluator.num_compilations - compiles, seconds, buckets)  # fmt: skip


__all__ = ["EvalResult", "Evaluator", "bucket_size", "compute_metrics", "evaluate", "parity_plot", "prepare",
           "read_structures", "references"]  # fmt: skip
