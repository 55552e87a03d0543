"""Molecular dynamics with jax-md that never computes a step with missing neighbours, and can be restarted.

The runner advances the system in jitted blocks (``lax.fori_loop`` of ``block`` steps, neighbour lists updated
inside). After each block it checks, on the host:

* every jax-md neighbour list's overflow flag (``did_buffer_overflow``), and
* the model's own edge capacity (``count_edges`` of the factory against its ``max_edges``),

and if either overflowed it re-allocates (neighbour lists from the block's start positions; the model with a
larger ``max_edges``) and re-runs the block from its saved start state, RNG key included. A trajectory therefore
equals one run with enough capacity from the start. A NaN appearing in the state stops the run with an error that
names the block's step range; the last checkpoint holds the last good state.

``run(steps=n)`` runs exactly ``n`` steps: whole blocks, then one shorter block for the remainder.

Checkpoints (every ``checkpoint_every`` steps, written atomically) hold the whole integrator state as arrays
(positions, momenta, forces, masses, thermostat chain, RNG key) plus the step; ``Simulation.run(restart=path)``
continues from one, so 2N steps equal N steps, a restart, and N more.

Units are the caller's: jax-md's time unit is √(mass · length² / energy), e.g. 10.18 fs for amu, Å, eV
(``time_unit_fs``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
import warnings
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._compat import jax_md
from so3krates_hk._cpu_runtime import serial_loops
from so3krates_hk.graph import static_cell_size
from so3krates_hk.io import atomic_path


def _quiet_jax_md_float64(fn):
    """jax-md's ``high_precision_sum`` asks for float64 sums, and JAX warns on every trace when x64 is off (the sum is
    then float32, which is what a float32 run wants). Silence exactly that warning while ``fn`` traces."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Explicitly requested dtype .*float64.* requested in sum",
                                    category=UserWarning)  # fmt: skip
            return fn(*args, **kwargs)

    return wrapper

ENSEMBLES = ("nve", "nvt_langevin", "nvt_nose_hoover")
AMU_ANGSTROM2_PER_EV_FS = 10.180505710774743  # √(amu Å²/eV) in fs
AMU_ANGSTROM2_PER_KCALMOL_FS = 48.88821290839617  # √(amu Å²/(kcal/mol)) in fs


def time_unit_fs(energy_unit: str = "eV") -> float:
    """jax-md's time unit in fs for masses in amu, lengths in Å and energies in ``energy_unit``."""
    units = {"eV": AMU_ANGSTROM2_PER_EV_FS, "kcal/mol": AMU_ANGSTROM2_PER_KCALMOL_FS}
    if energy_unit not in units:
        raise ValueError(f"energy_unit must be one of {sorted(units)}; got {energy_unit!r}.")
    return units[energy_unit]


MAX_REALLOCATIONS_PER_BLOCK = 8


class SimulationError(RuntimeError):
    """MD stopped: NaN in the state, or capacity that cannot be grown."""


@dataclasses.dataclass(frozen=True)
class MDSettings:
    """Integrator settings, in the caller's units (see the module docstring)."""

    ensemble: str = "nvt_langevin"
    dt: float = 1e-3
    kT: Optional[float] = None  # required for the thermostats
    gamma: float = 0.1  # Langevin friction (1 / time unit)
    tau: Optional[float] = None  # Nosé–Hoover time constant (default 100 dt, jax-md's)
    block: int = 100  # steps per jitted block; overflow checks after each
    record_every: int = 10  # steps between recorded frames (must divide block)
    seed: int = 0

    def __post_init__(self):
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}; got {self.ensemble!r}.")
        if self.ensemble != "nve" and (self.kT is None or self.kT <= 0):
            raise ValueError(f"ensemble {self.ensemble!r} needs a temperature kT > 0.")
        if self.dt <= 0 or self.block < 1 or self.record_every < 1 or self.block % self.record_every:
            raise ValueError("dt must be > 0, and record_every must divide block (both ≥ 1).")


@dataclasses.dataclass
class Potential:
    """The energy the runner integrates, and how to grow its edge capacity.

    ``build(max_edges)`` returns ``(energy_fn, count_edges)``: ``energy_fn(position, **neighbor_lists)`` and
    ``count_edges(position, **neighbor_lists)``, the number of real edges the model needs (or None when the model has
    no capacity of its own). ``max_edges=None`` means unbounded.
    """

    build: Callable[[Optional[int]], tuple[Callable, Optional[Callable]]]
    max_edges: Optional[int] = None
    growth: float = 1.5


@dataclasses.dataclass
class Trajectory:
    positions: np.ndarray  # (frames, N, 3)
    velocities: np.ndarray  # (frames, N, 3)
    potential_energy: np.ndarray  # (frames,)
    kinetic_energy: np.ndarray  # (frames,)
    conserved: np.ndarray  # (frames,) total (NVE), invariant (Nosé–Hoover), or total energy (Langevin)
    steps: np.ndarray  # (frames,) step index of each frame
    reallocations: int = 0

    @property
    def temperature_kT(self) -> np.ndarray:
        n_dof = self.velocities.shape[1] * self.velocities.shape[2]
        return 2 * self.kinetic_energy / n_dof


class Simulation:
    """Block-wise jax-md MD with overflow recovery, NaN detection and checkpoints (see the module docstring)."""

    def __init__(
        self,
        potential: Potential,
        neighbor_fns: Mapping[str, Any],
        shift_fn: Callable,
        mass,
        settings: MDSettings,
        energy_kwargs: Optional[Mapping[str, Any]] = None,
    ):
        self.potential = potential
        self.neighbor_fns = dict(neighbor_fns)
        self.shift_fn = shift_fn
        self.mass = mass
        self.settings = settings
        self.energy_kwargs = dict(energy_kwargs or {})
        self.reallocations = 0
        self._extra: dict[str, int] = {}
        self._compile()

    # ------------------------------------------------------------------------------------------------- building
    def _compile(self) -> None:
        s = self.settings
        energy_fn, count_fn = self.potential.build(self.potential.max_edges)
        kw = self.energy_kwargs

        names = tuple(self.neighbor_fns)

        def energy(position, **kwargs):  # integrators also pass their own keywords (e.g. kT): keep the lists only
            return energy_fn(position, **{k: kwargs[k] for k in names}, **kw)

        if s.ensemble == "nve":
            init, step = jax_md.simulate.nve(energy, self.shift_fn, s.dt)
        elif s.ensemble == "nvt_langevin":
            init, step = jax_md.simulate.nvt_langevin(energy, self.shift_fn, s.dt, s.kT, gamma=s.gamma)
        else:
            init, step = jax_md.simulate.nvt_nose_hoover(energy, self.shift_fn, s.dt, s.kT, tau=s.tau)
        self._energy, self._init = energy, init
        self._count = None
        if count_fn is not None:
            self._count = lambda position, **nbrs: jnp.asarray(count_fn(position, **nbrs, **kw), jnp.int32)

        def observe(state, nbrs):
            pe = energy(state.position, **nbrs)
            ke = jax_md.quantity.kinetic_energy(momentum=state.momentum, mass=state.mass)
            if s.ensemble == "nvt_nose_hoover":
                conserved = jax_md.simulate.nvt_nose_hoover_invariant(energy, state, s.kT, **nbrs)
            else:
                conserved = pe + ke
            return pe, ke, conserved

        def one_step(state, nbrs, edges):
            nbrs = {k: v.update(state.position) for k, v in nbrs.items()}
            state = step(state, **nbrs)
            if self._count is not None:
                edges = jnp.maximum(edges, self._count(state.position, **nbrs))
            return state, nbrs, edges

        def body(_, c):
            return one_step(*c)

        def block(state, nbrs, n_records: int, tail: int):
            """``n_records`` × (``record_every`` steps, then a frame), then ``tail`` steps without a frame."""

            def record(carry, _):
                state, nbrs, edges = jax.lax.fori_loop(0, s.record_every, body, carry)
                pe, ke, cons = observe(state, nbrs)
                frame = (state.position, state.momentum / state.mass, pe, ke, cons)
                return (state, nbrs, edges), frame

            edges0 = jnp.zeros((), jnp.int32)
            (state, nbrs, edges), frames = jax.lax.scan(record, (state, nbrs, edges0), None, n_records)
            if tail:
                state, nbrs, edges = jax.lax.fori_loop(0, tail, body, (state, nbrs, edges))
            overflow = jnp.zeros((), bool)
            for v in nbrs.values():
                overflow = overflow | v.did_buffer_overflow
            finite = jnp.all(jnp.isfinite(state.position)) & jnp.all(jnp.isfinite(state.momentum))
            return state, nbrs, frames, overflow, edges, finite

        self._block = jax.jit(block, static_argnums=(2, 3))

    def allocate(self, position, **kwargs) -> dict:
        """Fresh neighbour lists for ``position`` (with the displacement's keyword arguments, e.g. ``box``), with the
        extra capacity earlier overflows asked for."""
        return {
            k: static_cell_size(fn.allocate(position, extra_capacity=self._extra.get(k, 0), **kwargs))
            for k, fn in self.neighbor_fns.items()
        }

    def _lists_for(self, position) -> dict:
        """Neighbour lists for ``position``: the last run's lists updated in place when they still fit, so the
        compiled block (whose shapes include the lists' capacities) is reused across ``run`` calls; fresh ones
        otherwise."""
        last = getattr(self, "_last_lists", None)
        if last is not None:
            updated = {k: v.update(position) for k, v in last.items()}
            if not any(bool(v.did_buffer_overflow) for v in updated.values()):
                return updated
        return self.allocate(position)

    def _grow_lists(self, nbrs: dict) -> None:
        """Double the extra capacity of every list that overflowed (re-allocating at the same positions would
        otherwise reproduce the same capacity)."""
        for k, v in nbrs.items():
            if bool(v.did_buffer_overflow):
                self._extra[k] = max(2, 2 * self._extra.get(k, 0))

    def init_state(self, position, velocities=None, seed: Optional[int] = None):
        """An integrator state at ``position``: Maxwell–Boltzmann velocities at kT (zero momentum for NVE without
        kT), or the given ``velocities``. ``seed`` overrides the settings' seed (e.g. per replica)."""
        nbrs = self.allocate(position)
        key = jax.random.PRNGKey(self.settings.seed if seed is None else seed)
        kT = self.settings.kT if self.settings.kT is not None else 0.0
        state = self._init(key, position, kT=kT, mass=self.mass, **nbrs)
        if velocities is not None:
            state = dataclasses.replace(state, momentum=jnp.asarray(velocities) * state.mass)
        return state

    # ------------------------------------------------------------------------------------------------- running
    @_quiet_jax_md_float64
    def run(
        self,
        state=None,
        steps: int = 1000,
        position=None,
        checkpoint: Optional[str] = None,
        checkpoint_every: Optional[int] = None,
        restart: Optional[str] = None,
        progress: bool = False,
        start_step: int = 0,
    ) -> tuple[Any, Trajectory]:
        """Run exactly ``steps`` steps from ``state``, ``position``, or the checkpoint ``restart``.

        The steps run in jitted blocks of ``block`` steps; a last, shorter block (compiled once more) runs the
        remainder. Frames are recorded every ``record_every`` steps, counted from the start of this call. Returns the
        final state and the recorded trajectory. With ``checkpoint``, the state is written there every
        ``checkpoint_every`` steps (a multiple of ``block``) and at the end.
        """
        s = self.settings
        if steps < 0:
            raise ValueError(f"steps must be ≥ 0, got {steps}.")
        if checkpoint_every is not None and checkpoint_every % s.block:
            raise ValueError(f"checkpoint_every ({checkpoint_every}) must be a multiple of block ({s.block}).")
        if restart is not None:
            state, start_step = self.load_checkpoint(restart)
        elif state is None:
            if position is None:
                raise ValueError("Give a state, a position, or a checkpoint to restart from.")
            state = self.init_state(jnp.asarray(position))
        nbrs = self._lists_for(state.position)

        frames, step_ids = [], []
        lengths = [s.block] * (steps // s.block) + ([steps % s.block] if steps % s.block else [])
        bar = _progress(len(lengths), progress)
        step = start_step
        for i, length in enumerate(lengths):
            n_records, tail = divmod(length, s.record_every)
            start_state = state
            if progress and i == 0:  # the first block compiles the jitted steps: say so, with its time
                t0 = time.perf_counter()
                bar.write(f"compiling the MD block ({length} steps) …", file=sys.stderr)
            for _attempt in range(MAX_REALLOCATIONS_PER_BLOCK):
                with serial_loops(math.prod(start_state.position.shape[:-1])):  # small systems: see cpu_tuning
                    state_new, nbrs_new, fr, overflow, edges, finite = self._block(start_state, nbrs, n_records, tail)
                if self._model_overflow(int(edges)):
                    continue  # the model was rebuilt with a larger capacity; re-run the block
                if bool(overflow):
                    self.reallocations += 1
                    self._grow_lists(nbrs_new)
                    nbrs = self.allocate(start_state.position)
                    continue
                break
            else:
                raise SimulationError(
                    f"Neighbour lists still overflow after {MAX_REALLOCATIONS_PER_BLOCK} re-allocations at step {step}."
                )
            if not bool(finite):
                raise SimulationError(
                    f"NaN in the MD state between steps {step} and {step + length}; "
                    + (f"the last good state is in {checkpoint}." if checkpoint else "no checkpoint was written.")
                )
            state, nbrs = state_new, nbrs_new
            if progress and i == 0:
                bar.write(f"compiled and ran the first block in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            frames.append(jax.device_get(fr))
            step_ids.append(step + s.record_every * (1 + np.arange(n_records)))
            step += length
            if checkpoint and checkpoint_every and (step - start_step) % checkpoint_every == 0:
                self.save_checkpoint(checkpoint, state, step)
            bar.update(1)
        bar.close()
        self._last_lists = nbrs
        if checkpoint:
            self.save_checkpoint(checkpoint, state, step)
        traj = _stack(frames, step_ids, self.reallocations)
        return state, traj

    def _model_overflow(self, edges: int) -> bool:
        cap = self.potential.max_edges
        if self._count is None or cap is None or edges <= cap:
            return False
        new = int(math.ceil(edges * self.potential.growth))
        self.potential = dataclasses.replace(self.potential, max_edges=new)
        self.reallocations += 1
        self._compile()
        return True

    # ------------------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: str, state, step: int, extra: Optional[Mapping[str, Any]] = None) -> None:
        """The whole integrator state (every array leaf) and the step, atomically, in a pickle-free .npz.

        ``extra`` (name → array) is stored beside it, e.g. the caller's output-file sizes at this step; read it back
        with :func:`checkpoint_extra`."""
        leaves = jax.tree_util.tree_leaves(state)
        arrays = {f"leaf_{i:03d}": np.asarray(jax.device_get(x)) for i, x in enumerate(leaves)}
        arrays.update({f"extra_{k}": np.asarray(v) for k, v in (extra or {}).items()})
        arrays["step"] = np.asarray(step)
        arrays["settings"] = np.asarray(json.dumps(dataclasses.asdict(self.settings)))
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    def load_checkpoint(self, path: str):
        """(state, step) from ``save_checkpoint``; the state's structure comes from this simulation's integrator."""
        with np.load(path, allow_pickle=False) as data:
            saved = json.loads(str(data["settings"]))
            if saved["ensemble"] != self.settings.ensemble:
                raise ValueError(f"{path} was written by a {saved['ensemble']} run, not {self.settings.ensemble}.")
            n = len([k for k in data.files if k.startswith("leaf_")])
            leaves = [data[f"leaf_{i:03d}"] for i in range(n)]
            step = int(data["step"])
        template = self.init_state(jnp.asarray(leaves[0]))  # jax-md states start with the positions
        treedef = jax.tree_util.tree_structure(template)
        if treedef.num_leaves != n:
            raise ValueError(f"{path}: checkpoint has {n} state arrays; this integrator needs {treedef.num_leaves}.")
        ref = jax.tree_util.tree_leaves(template)
        state = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(x, dtype=getattr(r, "dtype", None)) for x, r in zip(leaves, ref)]
        )
        return state, step


def checkpoint_extra(path: str) -> dict[str, np.ndarray]:
    """The ``extra`` arrays a checkpoint was saved with (see :meth:`Simulation.save_checkpoint`)."""
    with np.load(path, allow_pickle=False) as data:
        return {k[len("extra_"):]: data[k] for k in data.files if k.startswith("extra_")}


def _stack(frames, step_ids, reallocations) -> Trajectory:
    if not frames:
        empty = np.zeros((0,))
        return Trajectory(empty, empty, empty, empty, empty, empty.astype(int), reallocations)
    cols = [np.concatenate([f[k] for f in frames]) for k in range(5)]
    return Trajectory(*cols, steps=np.concatenate(step_ids), reallocations=reallocations)


def _progress(total: int, enabled: bool):
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="block", desc="MD")

    class _Null:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Null()
