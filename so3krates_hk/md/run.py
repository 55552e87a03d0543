"""``so3krates-hk md``: MD with pretrained or fine-tuned SO3LR on a structure file, restartable.

    so3krates-hk md --structure dha --ensemble nve --dt-fs 0.25 --steps 4000 --output runs/md_dha
    so3krates-hk md --structure water.xyz --ensemble nvt_langevin --temperature 300 --steps 20000 --output runs/w
    so3krates-hk md --output runs/w --restart            # continue from runs/w/checkpoint.npz

Input: an XYZ/extended-XYZ file read with ASE (its cell is used when ``pbc`` is set), or a bundled reference
structure (``atat``, ``dha``, ``bb``, ``water`` = water_64 ×(2,2,2)). Units: Å, eV, fs, K.

Output directory: ``trajectory.xyz`` (extended XYZ: positions, velocities, energies), ``log.csv`` (step, time,
potential, kinetic and conserved energy, temperature), ``checkpoint.npz`` and ``run.json``. At each checkpoint the
new frames are appended to the trajectory and the log and flushed to disk; then the checkpoint (with both files'
sizes) and ``run.json`` are written to temporary names and renamed. ``--restart`` continues the checkpoint's run
(same settings, same trajectory files): it cuts both files back to the checkpoint's sizes, so whatever a crash
left behind the checkpoint (half a frame) goes, and nothing written before it is lost or rewritten.

Every host-side check runs before the first step: elements, overlapping atoms (< 0.1 Å), NaN positions, the
minimum-image condition of a periodic cell for both cutoffs, charge and spin.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk import pretrained, validation
from so3krates_hk._compat import jax_md, partition
from so3krates_hk.data import REFERENCE_NAMES, Structure, reference_structure
from so3krates_hk.factory import so3lr_neighborlist_pp
from so3krates_hk.io import atomic_path, load_params
from so3krates_hk.md.simulation import MDSettings, Potential, Simulation, checkpoint_extra, time_unit_fs

BOLTZMANN_EV_PER_K = 8.617333262e-05
ATOMIC_MASSES = {1: 1.008, 5: 10.81, 6: 12.011, 7: 14.007, 8: 15.999, 9: 18.998, 11: 22.99, 12: 24.305, 14: 28.085,
                 15: 30.974, 16: 32.06, 17: 35.45, 19: 39.098, 20: 40.078, 35: 79.904, 53: 126.9}  # fmt: skip


@dataclasses.dataclass
class MDRunConfig:
    structure: str
    output: str
    ensemble: str = "nvt_langevin"
    dt_fs: float = 0.5
    temperature: float = 300.0
    friction_per_ps: float = 1.0  # Langevin; Nosé–Hoover uses tau = 100 dt
    steps: int = 1000
    record_every: int = 10
    block: int = 100
    checkpoint_every: int = 1000
    total_charge: float = 0.0
    num_unpaired_electrons: float = 0.0
    params: Optional[str] = None  # a .npz of SO3LR weights (e.g. from finetune); default: the shipped SO3LR
    float64: bool = False
    seed: int = 0
    skin: Optional[float] = None  # neighbour-list skin, Å; None: DEFAULT_SKIN, less where a periodic cell is narrow


DEFAULT_SKIN = 0.5


def resolve_skin(cell, cutoff: float, requested: Optional[float] = None) -> float:
    """The neighbour-list skin (Å): ``requested`` if given, else :data:`DEFAULT_SKIN`, or, in a periodic cell
    narrower than 2 × (``cutoff`` + that), the largest skin (to 0.01 Å) that keeps the minimum image, i.e. a cell
    width of at least 2 × (cutoff + skin) along every lattice vector. The lists are updated every step and rebuilt
    whenever an atom has moved half the skin, so a smaller skin only means more rebuilds. A cell too narrow for the
    cutoff alone keeps the default, and the minimum-image check then says so."""
    if requested is not None:
        if not requested >= 0:
            raise validation.InputError(f"the neighbour-list skin must be ≥ 0 Å, got {requested}")
        return float(requested)
    if cell is None:
        return DEFAULT_SKIN
    room = float(np.min(validation.perpendicular_widths(np.asarray(cell)))) / 2.0 - cutoff
    return DEFAULT_SKIN if room < 0 else min(DEFAULT_SKIN, math.floor(room * 100.0) / 100.0)


def load_structure(name_or_path: str) -> Structure:
    """A bundled reference structure (atat, dha, bb, water) or any file ASE reads (first frame).

    A name that is neither a bundled structure nor a file, and a file with an unknown element, raise
    :class:`~so3krates_hk.validation.InputError` naming it (and, for the element, the line).
    """
    if name_or_path in REFERENCE_NAMES:
        return reference_structure(name_or_path)
    if not os.path.exists(name_or_path):
        raise validation.InputError(f"structure {name_or_path!r} is neither a file nor a bundled structure "
                                    f"({', '.join(REFERENCE_NAMES)})")  # fmt: skip
    import ase.io

    try:
        atoms = ase.io.read(name_or_path, index=0)
    except KeyError as e:  # ASE's symbol lookup: name the element and where it is
        symbol = str(e.args[0]) if e.args else "?"
        raise validation.InputError(f"{name_or_path}: unknown element {symbol!r}{_line_of(name_or_path, symbol)}")
    except Exception as e:  # noqa: BLE001 - any parse failure is the file's fault
        raise validation.InputError(f"{name_or_path}: cannot read it as a structure ({type(e).__name__}: {e})")
    cell = np.asarray(atoms.cell) if atoms.pbc.any() else None
    if atoms.pbc.any() and not atoms.pbc.all():
        raise validation.InputError(f"{name_or_path}: mixed periodicity {atoms.pbc.tolist()} is not supported")
    return Structure(atoms.get_positions(), atoms.get_atomic_numbers().astype(np.int32), cell, dict(atoms.info))


def _line_of(path: str, token: str) -> str:
    """' on line N' for the first line of ``path`` whose first field is ``token``, else ''."""
    with open(path, errors="replace") as f:
        for i, line in enumerate(f, 1):
            if line.split()[:1] == [token]:
                return f" on line {i}"
    return ""


def masses_for(Z: np.ndarray) -> np.ndarray:
    missing = sorted({int(z) for z in Z} - set(ATOMIC_MASSES))
    if missing:
        try:
            from ase.data import atomic_masses

            return np.asarray([atomic_masses[int(z)] for z in Z])
        except ImportError:
            raise validation.InputError(f"No atomic mass for Z = {missing}; install ase.") from None
    return np.asarray([ATOMIC_MASSES[int(z)] for z in Z])


def load_weights(cfg: MDRunConfig) -> tuple[dict, dict]:
    """(params, factory keyword arguments): the shipped SO3LR, or ``cfg.params``."""
    params, kwargs = pretrained.so3lr()
    if cfg.params:
        params, meta = load_params(cfg.params)
        if meta.get("model") != "so3lr":
            raise validation.InputError(f"{cfg.params} holds a {meta.get('model')!r} model; `md` runs SO3LR weights")
        kwargs = meta.get("factory_kwargs", kwargs)
    return params, kwargs


def build(cfg: MDRunConfig, s: Structure, weights: Optional[tuple[dict, dict]] = None):
    """(simulation, initial positions in the simulation's coordinates, to_cartesian function, settings)."""
    params, kwargs = load_weights(cfg) if weights is None else weights
    r_cut, lr_cut = kwargs["r_cutoff"], kwargs["lr_cutoff"]
    skin = resolve_skin(s.cell, max(r_cut, lr_cut), cfg.skin)
    dtype = jnp.float64 if cfg.float64 else jnp.float32
    params = jax.tree_util.tree_map(jnp.asarray, params)

    Z = np.asarray(s.atomic_numbers)
    validation.check_species(Z, len(Z), 100, what="atomic number", low=1)
    validation.check_position(s.positions)
    validation.check_charge_spin(Z, cfg.total_charge, cfg.num_unpaired_electrons)
    if s.cell is not None:
        validation.check_minimum_image(s.cell, max(r_cut, lr_cut) + skin, what="long-range cutoff + skin")
    validation.check_min_distance(s.positions, cell=s.cell, pbc=None if s.cell is None else (True, True, True))

    if s.cell is None:
        displacement, shift = jax_md.space.free()
        R0 = jnp.asarray(s.positions, dtype)
        box, lists = 1.0, dict(disable_cell_list=True)
        to_cart = lambda r: np.asarray(r)  # noqa: E731
    else:
        box = jnp.asarray(s.cell.T, dtype)  # jax-md: columns are lattice vectors
        displacement, shift = jax_md.space.periodic_general(box, fractional_coordinates=True)
        inv = np.linalg.inv(np.asarray(s.cell))
        R0 = jnp.asarray(np.mod(np.asarray(s.positions) @ inv, 1.0), dtype)
        lists = dict(fractional_coordinates=True)
        to_cart = lambda r: np.asarray(r) @ np.asarray(s.cell)  # noqa: E731
    lists.update(dr_threshold=skin, capacity_multiplier=1.25)
    neighbor_fns = {
        "neighbor": partition.neighbor_list(displacement, box, r_cut, format=partition.Sparse, **lists),
        "neighbor_lr": partition.neighbor_list(displacement, box, lr_cut, format=partition.OrderedSparse, **lists),
    }
    factory = {k: v for k, v in kwargs.items() if k not in ("r_cutoff", "lr_cutoff")}
    Zj = jnp.asarray(Z, jnp.int32)
    Q, S = cfg.total_charge, cfg.num_unpaired_electrons

    def build_energy(max_edges):
        _, apply_fn = so3lr_neighborlist_pp(displacement, r_cutoff=r_cut, lr_cutoff=lr_cut, max_edges=max_edges,
                                            **factory)  # fmt: skip

        def energy(r, neighbor, neighbor_lr):
            return apply_fn(params, r, neighbor, neighbor_lr, Zj, Q, S)

        return energy, lambda r, neighbor, neighbor_lr: apply_fn.count_edges(r, neighbor)

    nb = neighbor_fns["neighbor"].allocate(R0)
    _, probe = so3lr_neighborlist_pp(displacement, r_cutoff=r_cut, lr_cutoff=lr_cut, **factory)
    max_edges = int(np.ceil(1.25 * int(probe.count_edges(R0, nb)))) + 1

    unit = time_unit_fs("eV")
    kT = BOLTZMANN_EV_PER_K * cfg.temperature
    settings = MDSettings(
        ensemble=cfg.ensemble, dt=cfg.dt_fs / unit, kT=kT,  # NVE: the initial Maxwell–Boltzmann velocities
        gamma=cfg.friction_per_ps * unit / 1000.0, block=cfg.block, record_every=cfg.record_every, seed=cfg.seed,
    )  # fmt: skip
    mass = jnp.asarray(masses_for(Z), dtype)[:, None]
    sim = Simulation(Potential(build_energy, max_edges=max_edges), neighbor_fns, shift, mass, settings)
    return sim, R0, to_cart, kT


def run_md(cfg: MDRunConfig, restart: bool = False, progress: bool = True) -> dict:
    """Run (or continue) an MD simulation of exactly ``cfg.steps`` steps in all; returns the summary in ``run.json``.

    Every ``checkpoint_every`` steps the new frames are appended to ``trajectory.xyz`` and ``log.csv`` (flushed to
    disk), then the checkpoint is written atomically with the two files' sizes at that step. A restart truncates
    both files to those sizes (dropping anything a kill left after the checkpoint, e.g. half a frame) and continues,
    so the files equal those of an uninterrupted run and I/O is linear in the run length.
    """
    if cfg.float64:
        jax.config.update("jax_enable_x64", True)
    os.makedirs(cfg.output, exist_ok=True)
    ckpt = os.path.join(cfg.output, "checkpoint.npz")
    meta_path = os.path.join(cfg.output, "run.json")
    traj_path = os.path.join(cfg.output, "trajectory.xyz")
    log_path = os.path.join(cfg.output, "log.csv")
    if restart:
        if not os.path.exists(ckpt) or not os.path.exists(meta_path):
            raise validation.InputError(f"nothing to restart in {cfg.output}: no checkpoint.npz/run.json")
        with open(meta_path) as f:
            saved = json.load(f)
        cfg = dataclasses.replace(MDRunConfig(**saved["config"]), steps=cfg.steps, output=cfg.output)
    _check_run_config(cfg)
    s = load_structure(cfg.structure)
    weights = load_weights(cfg)
    if not restart:  # recorded in run.json; a restart keeps the skin its run chose
        cutoff = max(weights[1]["r_cutoff"], weights[1]["lr_cutoff"])
        cfg = dataclasses.replace(cfg, skin=resolve_skin(s.cell, cutoff, cfg.skin))
    sim, R0, to_cart, kT = build(cfg, s, weights)
    n_atoms = len(s.atomic_numbers)

    if restart:
        state, done = sim.load_checkpoint(ckpt)
        extra = checkpoint_extra(ckpt)
        for path, key in ((traj_path, "trajectory_bytes"), (log_path, "log_bytes")):
            size = int(extra[key])
            if not os.path.exists(path) or os.path.getsize(path) < size:
                raise validation.InputError(f"{path} is shorter than its checkpoint says ({size} bytes); "
                                            "it was changed after the run wrote it")  # fmt: skip
            os.truncate(path, size)
        fit = _DriftFit(*extra["drift_fit"])
        reallocations = int(extra["reallocations"])
    else:
        state, done = sim.init_state(R0), 0
        if os.path.exists(ckpt):  # an earlier run's checkpoint does not belong to the files started here
            os.remove(ckpt)
        with open(traj_path, "w"), open(log_path, "w") as f:
            f.write(LOG_HEADER + "\n")
        fit, reallocations = _DriftFit(), 0
        _write_summary(meta_path, cfg, done, fit, reallocations)

    t0 = time.perf_counter()
    while done < cfg.steps:
        n = min(cfg.checkpoint_every, cfg.steps - done)
        realloc_before = sim.reallocations
        state, traj = sim.run(state, steps=n, progress=progress, start_step=done)
        reallocations += sim.reallocations - realloc_before
        _append_frames(traj_path, log_path, cfg, s, traj, to_cart, n_atoms, fit)
        done += n
        extra = dict(trajectory_bytes=os.path.getsize(traj_path), log_bytes=os.path.getsize(log_path),
                     drift_fit=fit.as_array(), reallocations=reallocations)  # fmt: skip
        sim.save_checkpoint(ckpt, state, done, extra=extra)
        _write_summary(meta_path, cfg, done, fit, reallocations)
    summary = _write_summary(meta_path, cfg, done, fit, reallocations)
    summary["wall_seconds_this_run"] = time.perf_counter() - t0
    return summary


LOG_HEADER = "step,time_fs,potential_eV,kinetic_eV,conserved_eV,temperature_K"


def _check_run_config(cfg: MDRunConfig) -> None:
    if cfg.steps < 0:
        raise validation.InputError(f"steps must be ≥ 0, got {cfg.steps}")
    if cfg.block < 1 or cfg.record_every < 1 or cfg.block % cfg.record_every:
        raise validation.InputError(f"record_every ({cfg.record_every}) must divide block ({cfg.block}), both ≥ 1")
    if cfg.checkpoint_every < 1 or cfg.checkpoint_every % cfg.block:
        raise validation.InputError(f"checkpoint_every ({cfg.checkpoint_every}) must be a positive multiple of "
                                    f"block ({cfg.block})")  # fmt: skip


@dataclasses.dataclass
class _DriftFit:
    """Running sums of the least-squares line through (t in ps, conserved energy per atom − its first value)."""

    n: float = 0.0
    t: float = 0.0
    tt: float = 0.0
    y: float = 0.0
    ty: float = 0.0
    y0: float = float("nan")

    def add(self, t_ps: np.ndarray, e_per_atom: np.ndarray) -> None:
        if len(e_per_atom) and self.n == 0:
            self.y0 = float(e_per_atom[0])
        y = np.asarray(e_per_atom, np.float64) - self.y0
        t = np.asarray(t_ps, np.float64)
        self.n += len(t)
        self.t += t.sum()
        self.tt += (t * t).sum()
        self.y += y.sum()
        self.ty += (t * y).sum()

    def slope(self) -> Optional[float]:
        """d(conserved energy per atom)/dt in eV/atom/ps; None with fewer than 3 frames (no fit to speak of)."""
        denominator = self.n * self.tt - self.t**2
        if self.n < 3 or denominator <= 0:
            return None
        return float((self.n * self.ty - self.t * self.y) / denominator)

    def as_array(self) -> np.ndarray:
        return np.array([self.n, self.t, self.tt, self.y, self.ty, self.y0])


def _append_frames(traj_path, log_path, cfg, s, traj, to_cart, n_atoms, fit: _DriftFit) -> None:
    """Append a chunk's frames to the extended-XYZ trajectory and the CSV log, and flush both to disk."""
    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    kB = BOLTZMANN_EV_PER_K
    atoms_list, rows = [], []
    for k in range(len(traj.steps)):
        st, pe, ke, cons = int(traj.steps[k]), *(float(x[k]) for x in (traj.potential_energy, traj.kinetic_energy,
                                                                          traj.conserved))  # fmt: skip
        temperature = 2 * ke / (3 * n_atoms * kB)
        rows.append(f"{st},{st * cfg.dt_fs:.6f},{pe:.10f},{ke:.10f},{cons:.10f},{temperature:.4f}\n")
        atoms = ase.Atoms(numbers=s.atomic_numbers, positions=to_cart(traj.positions[k]), cell=s.cell,
                          pbc=s.cell is not None)  # fmt: skip
        atoms.set_velocities(np.asarray(traj.velocities[k]))  # jax-md's time unit for amu, Å, eV is ASE's
        atoms.info.update(step=st, time_fs=st * cfg.dt_fs, conserved_energy=cons, kinetic_energy=ke,
                          temperature_K=temperature)  # fmt: skip
        atoms.calc = SinglePointCalculator(atoms, energy=pe)
        atoms_list.append(atoms)
    fit.add(np.asarray(traj.steps) * cfg.dt_fs / 1000.0, np.asarray(traj.conserved, np.float64) / n_atoms)
    with open(traj_path, "a") as f:
        ase.io.write(f, atoms_list, format="extxyz")
        f.flush()
        os.fsync(f.fileno())
    with open(log_path, "a") as f:
        f.write("".join(rows))
        f.flush()
        os.fsync(f.fileno())


def _write_summary(path, cfg, step, fit: _DriftFit, reallocations) -> dict:
    summary = dict(config=dataclasses.asdict(cfg), steps_done=step, frames=int(fit.n), reallocations=reallocations,
                   conserved_drift_eV_per_atom_per_ps=fit.slope())  # fmt: skip
    with atomic_path(path, suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
    return summary
