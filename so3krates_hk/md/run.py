"""``so3krates-hk md``: MD with pretrained or fine-tuned SO3LR on a structure file, restartable.

    so3krates-hk md --structure dha --ensemble nve --dt-fs 0.25 --steps 4000 --output runs/md_dha
    so3krates-hk md --structure water.xyz --ensemble nvt_langevin --temperature 300 --steps 20000 --output runs/w
    so3krates-hk md --output runs/w --restart            # continue from runs/w/checkpoint.npz

Input: an XYZ/extended-XYZ file read with ASE (its cell is used when ``pbc`` is set), or a bundled reference
structure (``atat``, ``dha``, ``bb``, ``water`` = water_64 ×(2,2,2)). Units: Å, eV, fs, K.

Output directory: ``trajectory.xyz`` (extended XYZ: positions, velocities, energies), ``log.csv`` (step, time,
potential, kinetic and conserved energy, temperature), ``checkpoint.npz`` and ``run.json``. Every file is written
to a temporary name and renamed, at each checkpoint and at the end, so a crash never leaves a truncated file that
looks complete. ``--restart`` continues the checkpoint's run (same settings, same trajectory files).

Every host-side check runs before the first step: elements, overlapping atoms (< 0.1 Å), NaN positions, the
minimum-image condition of a periodic cell for both cutoffs, charge and spin.
"""

from __future__ import annotations

import dataclasses
import json
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
from so3krates_hk.md.simulation import MDSettings, Potential, Simulation, time_unit_fs

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
    skin: float = 0.5


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


def build(cfg: MDRunConfig, s: Structure):
    """(simulation, initial positions in the simulation's coordinates, to_cartesian function, settings)."""
    params, kwargs = pretrained.so3lr()
    if cfg.params:
        params, meta = load_params(cfg.params)
        if meta.get("model") != "so3lr":
            raise ValueError(f"{cfg.params} holds a {meta.get('model')!r} model; `md` runs SO3LR weights.")
        kwargs = meta.get("factory_kwargs", kwargs)
    r_cut, lr_cut = kwargs["r_cutoff"], kwargs["lr_cutoff"]
    dtype = jnp.float64 if cfg.float64 else jnp.float32
    params = jax.tree_util.tree_map(jnp.asarray, params)

    Z = np.asarray(s.atomic_numbers)
    validation.check_species(Z, len(Z), 100, what="atomic number", low=1)
    validation.check_position(s.positions)
    validation.check_charge_spin(Z, cfg.total_charge, cfg.num_unpaired_electrons)
    if s.cell is not None:
        validation.check_minimum_image(s.cell, max(r_cut, lr_cut + cfg.skin), what="long-range cutoff + skin")
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
    lists.update(dr_threshold=cfg.skin, capacity_multiplier=1.25)
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
    """Run (or continue) an MD simulation; returns the summary written to ``run.json``."""
    if cfg.float64:
        jax.config.update("jax_enable_x64", True)
    os.makedirs(cfg.output, exist_ok=True)
    ckpt = os.path.join(cfg.output, "checkpoint.npz")
    meta_path = os.path.join(cfg.output, "run.json")
    if restart:
        if not os.path.exists(ckpt) or not os.path.exists(meta_path):
            raise FileNotFoundError(f"Nothing to restart in {cfg.output}: no checkpoint.npz/run.json.")
        with open(meta_path) as f:
            saved = json.load(f)
        cfg = dataclasses.replace(MDRunConfig(**saved["config"]), steps=cfg.steps, output=cfg.output)
    s = load_structure(cfg.structure)
    sim, R0, to_cart, kT = build(cfg, s)
    unit = time_unit_fs("eV")

    frames = []  # (step, cartesian positions, velocities, pe, ke, conserved)
    start_step = 0
    if restart:
        state, start_step = sim.load_checkpoint(ckpt)
        frames = _read_frames(cfg.output, start_step)
    else:
        state = sim.init_state(R0)
    n_atoms = len(s.atomic_numbers)
    t0 = time.perf_counter()
    done = start_step
    remaining = cfg.steps - start_step if restart else cfg.steps
    remaining = max(0, remaining)
    chunk = cfg.checkpoint_every or remaining
    while remaining > 0:
        n = min(chunk, remaining)
        n -= n % cfg.block
        if n == 0:
            break
        state, traj = sim.run(state, steps=n, progress=progress, start_step=done)
        for k in range(len(traj.steps)):
            frames.append((int(traj.steps[k]), to_cart(traj.positions[k]), np.asarray(traj.velocities[k]),
                           float(traj.potential_energy[k]), float(traj.kinetic_energy[k]),
                           float(traj.conserved[k])))  # fmt: skip
        done += n
        remaining -= n
        sim.save_checkpoint(ckpt, state, done)
        _write_outputs(cfg, s, frames, unit, n_atoms, done, sim.reallocations)
    summary = _write_outputs(cfg, s, frames, unit, n_atoms, done, sim.reallocations)
    summary["wall_seconds_this_run"] = time.perf_counter() - t0
    return summary


def _write_outputs(cfg, s, frames, unit, n_atoms, step, reallocations) -> dict:
    import ase
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    kB = BOLTZMANN_EV_PER_K
    atoms_list = []
    rows = ["step,time_fs,potential_eV,kinetic_eV,conserved_eV,temperature_K"]
    for st, pos, vel, pe, ke, cons in frames:
        temperature = 2 * ke / (3 * n_atoms * kB)
        rows.append(f"{st},{st * cfg.dt_fs:.6f},{pe:.10f},{ke:.10f},{cons:.10f},{temperature:.4f}")
        atoms = ase.Atoms(numbers=s.atomic_numbers, positions=pos, cell=s.cell, pbc=s.cell is not None)
        atoms.set_velocities(vel)  # jax-md's time unit for amu, Å, eV is ASE's: √(amu Å²/eV) = 10.18 fs
        atoms.info.update(step=st, time_fs=st * cfg.dt_fs, conserved_energy=cons, kinetic_energy=ke,
                          temperature_K=temperature)
        atoms.calc = SinglePointCalculator(atoms, energy=pe)
        atoms_list.append(atoms)
    with atomic_path(os.path.join(cfg.output, "trajectory.xyz"), suffix=".xyz") as tmp:
        ase.io.write(tmp, atoms_list, format="extxyz")
    with atomic_path(os.path.join(cfg.output, "log.csv"), suffix=".csv") as tmp:
        with open(tmp, "w") as f:
            f.write("\n".join(rows) + "\n")
    cons = np.array([f[5] for f in frames])
    times = np.array([f[0] * cfg.dt_fs for f in frames])
    drift = float(np.polyfit(times / 1000.0, cons / n_atoms, 1)[0]) if len(frames) > 2 else float("nan")
    summary = dict(config=dataclasses.asdict(cfg), steps_done=step, frames=len(frames), reallocations=reallocations,
                   conserved_drift_eV_per_atom_per_ps=drift)  # fmt: skip
    with atomic_path(os.path.join(cfg.output, "run.json"), suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


def _read_frames(output: str, upto_step: int) -> list:
    """The frames written up to a checkpoint, to continue the trajectory files on restart."""
    import ase.io

    path = os.path.join(output, "trajectory.xyz")
    if not os.path.exists(path):
        return []
    frames = []
    for atoms in ase.io.read(path, index=":"):
        st = int(atoms.info["step"])
        if st > upto_step:
            break
        pe = float(atoms.get_potential_energy())
        frames.append((st, atoms.get_positions(), atoms.get_velocities(), pe, float(atoms.info["kinetic_energy"]),
                       float(atoms.info["conserved_energy"])))  # fmt: skip
    return frames
