"""CG MD throughput, bead-steps per second: our SO3krates CG model (JAX, jax-md) against the official Allegro
(PyTorch, ``nequip-allegro``) at matched settings, timed in one run, interleaved.

    python -m benchmarks.cg_md --jax-python /venvs/ct/bin/python --torch-python /venvs/allegro/bin/python \\
        --systems cg-chain-100,cg-box-1000 --rounds 2 --loops 10 --loop-steps 10 --dt-fs 2

Both sides integrate the same NVE velocity-Verlet equations with the same time step, the same masses (110 amu per
bead) and the same initial velocities (Maxwell-Boltzmann at ``--temperature``, drawn with numpy from a fixed seed,
centre-of-mass motion removed), float32 model arithmetic, from the same starting structure
(``benchmarks.systems``). One step is

    p ← p + ½ Δt F;   R ← R + Δt p / m (wrapped into the box);   neighbour list at R;   F ← −∂E/∂R;   p ← p + ½ Δt F

and the neighbour list is inside the timed region on both sides:

* ours (``so3krates-cg``: 2 layers, 32 features, 4 heads, degrees 1–2, γ = 0.4, 10 Å, random init): jax-md's
  ``simulate.nve`` and its Sparse neighbour list (1 Å skin, capacity × 1.25), the list updated before every step
  (jax-md rebuilds it when a bead has moved more than half the skin), ``--loop-steps`` steps in one jitted
  ``fori_loop``; when a list overflows, it is re-allocated from the last good state and the loop recompiled, and that
  time is counted in the wall time (``wall_bead_steps_per_s``);
* Allegro (``allegro.model.AllegroModel`` with ``benchmarks.torch_models.allegro_matching("cg")``: 10 Å, 2 layers,
  32 scalar features, l_max 2, 2 tensor channels, random init): a plain Python velocity-Verlet loop around
  ``model(data)`` (forces from autograd), the list rebuilt every step with matscipy at the cutoff (no skin, as in
  ``benchmarks.torch_models``). Modes: ``eager``, ``compiled`` (``torch.compile(model, dynamic=True)``, then the
  fallbacks of ``_compiled_allegro``) and, with ``--aotinductor``, ``aotinductor`` (nequip's ahead-of-time package,
  its deployment path for ASE and LAMMPS), each timed only if it reproduces eager's energy (|ΔE| ≤ 1e-5 |E|) and
  forces (max |ΔF| ≤ 1e-4 eV/Å) on the first structure; a failure is recorded with its exact error.

Each side runs in its own worker process per system and round, with the same environment: the malloc settings
(``so3krates_hk.cpu_tuning.tuned_env``), and ``OMP_WAIT_POLICY`` as ``--omp-wait-policy`` sets it: unset by default,
as torch runs for its users (XLA:CPU does not use OpenMP). ``PASSIVE`` keeps torch's OpenMP threads from spinning,
which a machine shared with other jobs needs (there an eager Allegro call of cg-chain-100 took 0.5–1.8 s instead of
~15 ms with them spinning), but it makes compiled torch code far slower (nequip's AOTInductor package 635 against
20 ms per cg-chain-100 call, ``results/cg-md-torch214-cpu-2026-12-07-zen4/``). Rounds alternate the sides. Every worker
compiles/warms up first (``--warmup-loops`` loops, not timed), then times ``--loops`` loops of ``--loop-steps``
steps; a loop's throughput is N × steps / wall seconds. Rows pool every timed loop of every round: median (min–max).

A worker (``--worker``) prints nothing; it writes its result as JSON.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.hostinfo import cpu_name, dist_version, uptime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CG_MASS = 110.0  # amu, as benchmarks.jax_models.CG_MASS
TIME_UNIT_FS = 10.180505710774743  # jax-md's time unit for amu, Å, eV (as benchmarks.jax_models.TIME_UNIT_FS)
KB_EV = 8.617333262e-5
# torch.compile against eager on the same structure
PARITY_ENERGY_REL = 1e-5
PARITY_FORCE_ABS = 1e-4
DEFAULT_SYSTEMS = "cg-chain-100,cg-box-1000"


def initial_velocities(n: int, temperature_k: float, seed: int = 0, mass: float = CG_MASS) -> np.ndarray:
    """Maxwell-Boltzmann velocities (Å per jax-md time unit), centre-of-mass motion removed: v ~ N(0, kT/m)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3)) * np.sqrt(KB_EV * temperature_k / mass)
    return v - v.mean(axis=0)


def _load() -> tuple:
    return os.getloadavg()


# ------------------------------------------------------------------------------------------------------- ours
def jax_worker(a) -> dict:
    import jax
    import jax.numpy as jnp
    import jaxlib

    from benchmarks import jax_models
    from benchmarks.systems import build_system
    from benchmarks.worker import md_loop
    from so3krates_hk._compat import jax_md

    s = build_system(a.system)
    m = jax_models.build("so3krates-cg", s, "float32")
    params = m.params
    dt = a.dt_fs / TIME_UNIT_FS
    init, apply = jax_md.simulate.nve(lambda R, **nb: m.energy(params, R, **nb), m.shift, dt)
    nbrs = dict(m.neighbors)
    state = init(jax.random.PRNGKey(0), m.position, kT=0.0, mass=m.masses, **nbrs)
    v0 = initial_velocities(s.num_atoms, a.temperature, a.seed)
    mass = jnp.reshape(m.masses, (-1, 1))
    state = state.set(momentum=jnp.asarray(v0, jnp.float32) * mass)
    e0 = float(m.energy(params, state.position, **nbrs))
    ekin0 = float(0.5 * jnp.sum(state.momentum**2 / mass))
    edges0 = int(m.count_edges(state.position, **nbrs))
    loop = md_loop(apply, a.loop_steps)

    t0 = time.perf_counter()
    compiled = jax.jit(loop).lower(state, nbrs).compile()
    compile_s = time.perf_counter() - t0
    reallocations = 0

    def run_loop(state, nbrs, compiled):
        nonlocal reallocations
        while True:
            new_state, new_nbrs, overflow = compiled(state, nbrs)
            if not bool(overflow):
                return new_state, new_nbrs, compiled
            nbrs = {k: m.neighbor_fns[k].allocate(state.position) for k in nbrs}  # from the last good state
            compiled = jax.jit(loop).lower(state, nbrs).compile()
            reallocations += 1

    for _ in range(a.warmup_loops):
        state, nbrs, compiled = run_loop(state, nbrs, compiled)
        jax.block_until_ready(state.position)
    realloc_warm = reallocations
    times, tc = [], time.process_time()
    t_all = time.perf_counter()
    for _ in range(a.loops):
        t = time.perf_counter()
        state, nbrs, compiled = run_loop(state, nbrs, compiled)
        jax.block_until_ready(state.position)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - t_all
    cpu = time.process_time() - tc
    e1 = float(m.energy(params, state.position, **nbrs))
    ekin1 = float(0.5 * jnp.sum(state.momentum**2 / mass))
    settings = dict(m.settings)
    settings.update(
        edges_per_bead=edges0 / s.num_atoms, num_edges=edges0, list_capacity=settings.get("sr_capacity"),
        list_pairs_note="jax-md Sparse list holds pairs within cutoff + skin; the model masks pairs beyond the cutoff",
    )  # fmt: skip
    return dict(
        side="ours", mode="jit (XLA)", num_atoms=s.num_atoms, loop_steps=a.loop_steps, loop_times_s=times,
        wall_s=wall, cpu_s=cpu, steps=a.loops * a.loop_steps, reallocations=reallocations - realloc_warm,
        reallocations_warmup=realloc_warm, compile_s=compile_s, settings=settings,
        energy_start=e0, energy_end=e1, ekin_start=ekin0, ekin_end=ekin1,
        finite=bool(jnp.all(jnp.isfinite(state.position))),
        versions=dict(jax=jax.__version__, jaxlib=jaxlib.__version__, jax_md=dist_version("jax-md")),
        xla_flags=os.environ.get("XLA_FLAGS"),
        integrator=f"jax_md.simulate.nve (velocity Verlet), dt {a.dt_fs} fs, list updated before every step",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------- Allegro
def torch_worker(a) -> dict:
    import torch
    from matscipy.neighbours import neighbour_list
    from nequip.data import AtomicDataDict as K

    from benchmarks.jax_models import WIDTHS
    from benchmarks.systems import build_system
    from benchmarks.torch_models import _build_allegro, _neighbors

    s = build_system(a.system)
    N = s.num_atoms
    cutoff = WIDTHS["cg"]["r_cutoff"]
    atoms, i, j, S = _neighbors(s, cutoff)
    types = sorted(set(int(z) for z in s.species))
    type_idx = np.searchsorted(types, s.species)
    avg_nbrs = len(i) / N
    torch.manual_seed(0)
    settings, make_data, ef, model = _build_allegro(s, "cg", "float32", types, type_idx, avg_nbrs)
    base = make_data(atoms, i, j, S)
    pos_dtype = base[K.POSITIONS_KEY].dtype
    box = s.box
    cell = np.eye(3) * (box if box is not None else 1.0)
    pbc = np.array([box is not None] * 3)

    def neighbours(R):
        if box is not None:
            return neighbour_list("ijS", positions=R, cell=cell, pbc=pbc, cutoff=cutoff)
        P = R - R.min(axis=0) + cutoff  # free space: a cell that encloses the chain (no images)
        return neighbour_list("ijS", positions=P, cell=np.eye(3) * (P.max() + cutoff), pbc=pbc, cutoff=cutoff)

    fn = model
    tm = dict(nbr=0.0, model=0.0)

    def forces(R, use=None):
        t = time.perf_counter()
        ii, jj, SS = neighbours(R)
        t1 = time.perf_counter()
        d = dict(base)
        d[K.POSITIONS_KEY] = torch.as_tensor(R, dtype=pos_dtype)
        d[K.EDGE_INDEX_KEY] = torch.as_tensor(np.stack([ii, jj]), dtype=torch.long)
        d[K.EDGE_CELL_SHIFT_KEY] = torch.as_tensor(SS, dtype=pos_dtype)
        out = (fn if use is None else use)(d)
        e = float(out[K.TOTAL_ENERGY_KEY].detach().sum())
        f = out[K.FORCE_KEY].detach().numpy().astype(np.float64)
        t2 = time.perf_counter()
        tm["nbr"] += t1 - t
        tm["model"] += t2 - t1
        return e, f, len(ii)

    R = np.array(atoms.positions if box is not None else s.positions, dtype=np.float64)
    if box is not None:
        R = np.mod(R, box)
    dt = a.dt_fs / TIME_UNIT_FS
    v = initial_velocities(N, a.temperature, a.seed)
    e0, F, n_edges = forces(R)
    extra: dict = {}
    if a.mode in ("compiled", "aotinductor"):
        fn, extra = _compiled_allegro(s, types, type_idx, avg_nbrs, model, forces, R, e0, F, a.mode, base)
    ekin0 = float(0.5 * CG_MASS * np.sum(v**2))

    def step(R, v, F):
        v = v + 0.5 * dt * F / CG_MASS
        R = R + dt * v
        if box is not None:
            R = np.mod(R, box)
        e, F, ne = forces(R)
        v = v + 0.5 * dt * F / CG_MASS
        return R, v, F, e

    for _ in range(a.warmup_loops * a.loop_steps):
        R, v, F, e = step(R, v, F)
    tm.update(nbr=0.0, model=0.0)
    times, tc = [], time.process_time()
    t_all = time.perf_counter()
    for _ in range(a.loops):
        t = time.perf_counter()
        for _ in range(a.loop_steps):
            R, v, F, e = step(R, v, F)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - t_all
    cpu = time.process_time() - tc
    n_params = sum(p.numel() for p in model.parameters())
    import nequip

    settings = dict(settings, model="allegro-torch", model_dtype="float32",
                    position_dtype=str(pos_dtype).replace("torch.", ""), num_parameters=int(n_params),
                    edges_per_bead=n_edges / N, num_edges=int(n_edges), avg_num_neighbors=avg_nbrs,
                    neighbor_list="matscipy ijS at the cutoff, both directions, no skin, rebuilt every step",
                    torch_threads=torch.get_num_threads(), periodic=box is not None)  # fmt: skip
    steps = a.loops * a.loop_steps
    return dict(
        side="Allegro", mode=a.mode, num_atoms=N, loop_steps=a.loop_steps, loop_times_s=times, wall_s=wall,
        cpu_s=cpu, steps=steps, reallocations=0, settings=settings, energy_start=e0, energy_end=e,
        ekin_start=ekin0, ekin_end=float(0.5 * CG_MASS * np.sum(v**2)), finite=bool(np.isfinite(R).all()),
        nbr_s_per_step=tm["nbr"] / steps, model_s_per_step=tm["model"] / steps,
        versions=dict(torch=torch.__version__, nequip=nequip.__version__ if hasattr(nequip, "__version__") else
                      dist_version("nequip"), nequip_allegro=dist_version("nequip-allegro"),
                      matscipy=dist_version("matscipy"), numpy=np.__version__),
        integrator=f"velocity Verlet (plain Python loop, float64 positions/velocities), dt {a.dt_fs} fs, "
                   "matscipy list rebuilt every step", **extra,
    )  # fmt: skip


def _compiled_allegro(s, types, type_idx, avg_nbrs, model, forces, R, e0, F0, mode="compiled", data=None):
    """A compiled Allegro that reproduces eager's energy and forces on ``R``, and what was tried.

    ``mode="compiled"``, tried in order: ``torch.compile`` of the eager model with ``dynamic=True`` and with the
    default, then nequip's own train-time compile (the model built with ``compile_mode="compile"``: ``make_fx`` of the
    model with its autograd forces, then ``torch.compile(dynamic=True)``; nequip's wrapper runs single-frame inputs
    eagerly, so its compiled variant is called directly).

    ``mode="aotinductor"``: nequip's deployment path (what ``nequip-compile --mode aotinductor --target ase`` does; its
    TorchScript mode is refused for torch ≥ 2.10): ``make_fx`` of the model with its forces, ``torch.export`` with
    dynamic atom and edge counts, AOTInductor's ahead-of-time C++ package, loaded back as nequip's ASE calculator
    loads it. The export traces ``data`` (the first structure, one frame).

    Each must match eager (|ΔE| ≤ 1e-5 |E|, max |ΔF| ≤ 1e-4 eV/Å)."""
    import torch

    from benchmarks.torch_models import _build_allegro

    errors, parity = {}, {}
    nonlocal_fn = {}

    def nequip_compile():
        torch.manual_seed(0)
        _, _, _, cm = _build_allegro(s, "cg", "float32", types, type_idx, avg_nbrs, compile_mode="compile")
        cache = cm._compiled_cache[0]

        def call(d):
            sig = cm._get_input_signature(d)
            if sig not in cache:
                cm._compile_variant(d, sig, cache)
            compiled, out_fields = cache[sig]
            out = d.copy()
            out.update(cm._compiled_forward(d, compiled, sig, out_fields))
            return out

        return call

    def nequip_aotinductor():
        from nequip.nn.compile import DictInputOutputWrapper
        from nequip.scripts._compile_utils import COMPILE_TARGET_DICT
        from nequip.utils.aot import aot_export_model

        target = COMPILE_TARGET_DICT["ase"]
        Dim = torch.export.dynamic_shapes.Dim
        batch_map = target["batch_map_settings"](
            {"graph": Dim("num_frames", min=2, max=torch.inf), "node": Dim("num_nodes", min=2, max=torch.inf),
             "edge": Dim("num_edges", min=2, max=torch.inf)})  # nequip-compile's default bounds  # fmt: skip
        d = target["data_settings"](dict(data))
        path = os.path.join(tempfile.mkdtemp(prefix="allegro-aoti-"), "model.nequip.pt2")
        aot_export_model(model, "cpu", target["input"], target["output"], d, batch_map, path)
        return DictInputOutputWrapper(torch._inductor.aoti_load_package(path), target["input"], target["output"])

    attempts = {
        "torch.compile(model, dynamic=True)": lambda: torch.compile(model, dynamic=True),
        "torch.compile(model) (dynamic=None: static first, dynamic on a shape change)": lambda: torch.compile(model),
        'nequip compile_mode="compile" (make_fx + torch.compile, dynamic=True)': nequip_compile,
    } if mode == "compiled" else {
        "nequip AOTInductor (make_fx + torch.export + aoti_compile_and_package, target ase)": nequip_aotinductor,
    }
    for name, make in attempts.items():
        try:
            t = time.perf_counter()  # the compile: at the first call (torch.compile) or in make() (AOTInductor)
            nonlocal_fn["fn"] = make()
            e_c, f_c, _ = forces(R, nonlocal_fn["fn"])
            compile_s = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 — every failure is recorded with its exact message
            errors[name] = f"{type(exc).__name__}: {exc}"[-2000:]
            print(f"{name} failed: {errors[name]}", file=sys.stderr)
            continue
        de, df = abs(e_c - e0), float(np.abs(f_c - F0).max())
        ok = de <= PARITY_ENERGY_REL * abs(e0) and df <= PARITY_FORCE_ABS
        parity[name] = dict(energy_eager=e0, energy_compiled=e_c, energy_abs_diff=de, max_force_diff_ev_a=df,
                            energy_rel_tol=PARITY_ENERGY_REL, force_abs_tol=PARITY_FORCE_ABS, ok=ok,
                            compile_s=compile_s)  # fmt: skip
        if ok:
            return nonlocal_fn["fn"], dict(compile_backend=name, compile_s=compile_s, parity_vs_eager=parity,
                                           compile_errors=errors)  # fmt: skip
        errors[name] = (f"parity against eager failed: abs dE {de:.4g} eV (tolerance "
                        f"{PARITY_ENERGY_REL * abs(e0):.3g}), max abs dF {df:.4g} eV/A "
                        f"(tolerance {PARITY_FORCE_ABS:g})")  # fmt: skip
    raise CompileFailed(dict(compile_errors=errors, parity_vs_eager=parity))


class CompileFailed(RuntimeError):
    def __init__(self, info: dict):
        super().__init__(json.dumps(info)[:500])
        self.info = info


# ---------------------------------------------------------------------------------------------- aggregation
def summarise(records: list) -> list:
    """One row per (system, side, mode): bead-steps/s pooled over every timed loop of every round (median, min,
    max), ms per step, and for Allegro rows the same-run ratio ours/Allegro (ours' median over theirs)."""
    keys = list(dict.fromkeys((r["system"], r["side"], r["mode"]) for r in records))
    rows = []
    for system, side, mode in keys:
        rs = [r for r in records if (r["system"], r["side"], r["mode"]) == (system, side, mode)]
        ok = [r for r in rs if r.get("status") == "ok"]
        row = dict(system=system, side=side, mode=mode, runs=len(rs), ok=len(ok))
        if not ok:
            row["error"] = (rs[0].get("error") or "")[-800:]
            if rs[0].get("compile_errors"):
                row["compile_errors"] = rs[0]["compile_errors"]
            rows.append(row)
            continue
        n = ok[0]["num_atoms"]
        rates = [n * r["loop_steps"] / t for r in ok for t in r["loop_times_s"]]
        step_ms = [1e3 * t / r["loop_steps"] for r in ok for t in r["loop_times_s"]]
        wall = [n * r["steps"] / r["wall_s"] for r in ok]
        row.update(num_atoms=n, loops=len(rates), bead_steps_per_s=statistics.median(rates),
                   bead_steps_per_s_min=min(rates), bead_steps_per_s_max=max(rates),
                   ms_per_step=statistics.median(step_ms), wall_bead_steps_per_s=[round(x, 1) for x in wall],
                   reallocations=sum(r.get("reallocations", 0) for r in ok),
                   load=[round(r["load_start"][0], 2) for r in ok],
                   finite=all(r.get("finite", False) for r in ok),
                   ekin_start=ok[0].get("ekin_start"),
                   energy_drift_per_bead=[_drift(r) for r in ok])  # fmt: skip
        for k in ("compile_backend", "compile_errors", "parity_vs_eager", "nbr_s_per_step", "model_s_per_step"):
            if ok[0].get(k) is not None:
                row[k] = ok[0][k]
        rows.append(row)
    for system in dict.fromkeys(r["system"] for r in rows):
        ours = next((r for r in rows if r["system"] == system and r["side"] == "ours" and r["ok"]), None)
        for r in rows:
            if r["system"] == system and r["side"] != "ours" and r["ok"] and ours is not None:
                r["ratio_ours_over_this"] = ours["bead_steps_per_s"] / r["bead_steps_per_s"]
                # the ratio from the slowest and fastest loops of each side: the spread the load allows
                r["ratio_range"] = [ours["bead_steps_per_s_min"] / r["bead_steps_per_s_max"],
                                    ours["bead_steps_per_s_max"] / r["bead_steps_per_s_min"]]  # fmt: skip
    return rows


def _drift(r: dict):
    """(E_pot + E_kin) at the end of the timed steps minus at the start of the worker, per bead (eV)."""
    keys = ("energy_start", "energy_end", "ekin_start", "ekin_end")
    if any(r.get(k) is None for k in keys):
        return None
    return (r["energy_end"] + r["ekin_end"] - r["energy_start"] - r["ekin_start"]) / r["num_atoms"]


def _matched(records: list) -> list:
    """Per system and side: the settings that make 'matched' visible."""
    out, seen = [], set()
    for r in records:
        if r.get("status") != "ok" or (r["system"], r["side"]) in seen:
            continue
        seen.add((r["system"], r["side"]))
        s = r["settings"]
        if r["side"] == "ours":
            width = f"{s['num_features']} features, {s['num_heads']} heads, degrees {s['degrees']}"
            lmax = max(s["degrees"])
            nl = f"jax-md Sparse, skin {s['sr_skin']} Å, capacity {s['sr_capacity']}"
        else:
            width = f"{s['num_scalar_features']} scalar, {s['num_tensor_features']} tensor channels, MLP width " \
                    f"{s['allegro_mlp_hidden_layers_width']}"
            lmax = s["l_max"]
            nl = "matscipy, no skin, every step"
        out.append(dict(system=r["system"], side=r["side"], cutoff=s.get("r_cutoff") or s.get("r_max"),
                        layers=s["num_layers"], width=width, l_max=lmax, avg_num_neighbors=s.get("avg_num_neighbors"),
                        edges_per_bead=s.get("edges_per_bead"), neighbor_list=nl))  # fmt: skip
    return out


def report(meta: dict, rows: list, matched: list = ()) -> str:
    L = [f"# CG MD throughput, same run: SO3krates CG (ours, JAX) against Allegro (PyTorch) — {meta['date']}", ""]
    L.append(f"{meta.get('cpu', '?')}, {meta.get('cores', '?')} cores; float32 model arithmetic; NVE velocity Verlet, "
             f"Δt = {meta['dt_fs']} fs, {meta['temperature_k']} K initial velocities (same on both sides); "
             f"neighbour lists inside the timed region on both sides; {meta['rounds']} round(s) × {meta['loops']} "
             f"timed loops of {meta['loop_steps']} steps per side, after {meta['warmup_loops']} warm-up loop(s); "
             "sides interleaved round by round. bead-steps/s = N × steps / wall s of a loop, median (min–max) over "
             "all loops. The machine is shared: `uptime` at each worker's start is listed; compare ratios.")
    L.append("")
    L.append("Load (`uptime`) at start: " + meta.get("uptime_start", "?") + "; at end: " + meta.get("uptime_end", "?"))
    L.append("")
    L.append("| system | side | mode | bead-steps/s: median (min–max) | ms/step | loops | "
             "ours / this (median; range) | load (1 min) |")
    L.append("|---|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        if not r["ok"]:
            err = " ".join(str(r.get("compile_errors") or r.get("error", "")).replace("|", "/").split())[:300]
            L.append(f"| {r['system']} | {r['side']} | {r['mode']} | failed: {err} | | | | |")
            continue
        ratio = ""
        if "ratio_ours_over_this" in r:
            lo, hi = r["ratio_range"]
            ratio = f"{r['ratio_ours_over_this']:.2f} ({lo:.2f}–{hi:.2f})"
        L.append(f"| {r['system']} | {r['side']} | {r['mode']} | {r['bead_steps_per_s']:.0f} "
                 f"({r['bead_steps_per_s_min']:.0f}–{r['bead_steps_per_s_max']:.0f}) | {r['ms_per_step']:.2f} | "
                 f"{r['loops']} | {ratio} | {', '.join(f'{x:.2f}' for x in r['load'])} |")  # fmt: skip
    if matched:
        L += ["", "## Settings of each side", "",
              "| system | side | cutoff Å | layers | width | l_max | avg neighbours (normalisation) | edges per bead "
              "(within the cutoff, start) | neighbour list |", "|---|---|---:|---:|---|---:|---:|---:|---|"]
        for m in matched:
            avg = m["avg_num_neighbors"]
            L.append(f"| {m['system']} | {m['side']} | {m['cutoff']} | {m['layers']} | {m['width']} | {m['l_max']} | "
                     f"{'' if avg is None else format(avg, '.1f')} | {m['edges_per_bead']:.1f} | "
                     f"{m['neighbor_list']} |")  # fmt: skip
    comp = [r for r in rows if r.get("compile_errors") or r.get("parity_vs_eager")]
    if comp:
        L += ["", "## Allegro compiled: what was tried, parity against eager before any timing", "",
              f"Energy and forces of the compiled model against eager on the first structure (tolerances: |ΔE| ≤ "
              f"{PARITY_ENERGY_REL:g} |E|, max |ΔF| ≤ {PARITY_FORCE_ABS:g} eV/Å); the first attempt that passes is "
              "timed.", "", "| system | attempt | abs ΔE (eV) | max abs ΔF (eV/Å) | compile and first call, s | result |",
              "|---|---|---:|---:|---:|---|"]  # fmt: skip
        for r in comp:
            par, errs = r.get("parity_vs_eager") or {}, r.get("compile_errors") or {}
            for name in dict.fromkeys(list(errs) + list(par)):
                q = par.get(name, {})
                err = " ".join(errs.get(name, "").replace("|", "/").split())[:300]
                res = "parity ok, timed" if q.get("ok") else err
                de, df, cs = q.get("energy_abs_diff"), q.get("max_force_diff_ev_a"), q.get("compile_s")
                L.append(f"| {r['system']} | {name} | {'' if de is None else format(de, '.2g')} | "
                         f"{'' if df is None else format(df, '.2g')} | {'' if cs is None else format(cs, '.1f')} | "
                         f"{res} |")  # fmt: skip
    chk = [r for r in rows if r.get("ok")]
    if chk:
        L += ["", "## Checks: same start, NVE conservation, where Allegro's step goes", "",
              "| system | side | mode | E_kin at start (eV) | drift of E_pot + E_kin per bead over the run (eV) | "
              "Allegro: list ms/step | Allegro: model ms/step |", "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
        for r in chk:
            dr = ", ".join("" if x is None else f"{x:+.1e}" for x in r.get("energy_drift_per_bead") or [])
            nb, md = r.get("nbr_s_per_step"), r.get("model_s_per_step")
            ek = r.get("ekin_start")
            L.append(f"| {r['system']} | {r['side']} | {r['mode']} | {'' if ek is None else format(ek, '.4f')} | "
                     f"{dr} | {'' if nb is None else format(1e3 * nb, '.2f')} | "
                     f"{'' if md is None else format(1e3 * md, '.2f')} |")  # fmt: skip
    if meta.get("versions"):
        L += ["", "Versions: " + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()) + "."]
    L += ["", f"Environment of every side: malloc {meta.get('malloc_env')}, OMP_WAIT_POLICY="
          f"{meta.get('omp_wait_policy')}.", "", f"Command: `{meta.get('command')}`"]
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------------------------------- driver
def _env(omp_wait_policy: str = "") -> dict:
    from so3krates_hk.cpu_tuning import tuned_env

    env = tuned_env()
    if omp_wait_policy:
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    return env


def _write(out_dir, records, a, argv, started, env, up0) -> str:
    """results.json (meta, summary, settings, every record) and results.md; returns the markdown."""
    summary = summarise(records)
    matched = _matched(records)
    versions = {}
    for r in records:
        if r.get("status") == "ok":
            versions.update({k: v for k, v in (r.get("versions") or {}).items() if v})
    from so3krates_hk.cpu_tuning import MALLOC_ENV

    meta = dict(date=started.isoformat(timespec="seconds"), host=platform.node(), python=platform.python_version(),
                cpu=cpu_name(), cores=os.cpu_count(), command="python -m benchmarks.cg_md " + " ".join(
                    sys.argv[1:] if argv is None else argv), rounds=a.rounds, loops=a.loops, loop_steps=a.loop_steps,
                warmup_loops=a.warmup_loops, dt_fs=a.dt_fs, temperature_k=a.temperature, seed=a.seed,
                malloc_env=MALLOC_ENV, omp_wait_policy=env.get("OMP_WAIT_POLICY"), xla_flags_env=env.get("XLA_FLAGS"),
                uptime_start=up0, uptime_end=uptime(),
                versions=versions)  # fmt: skip
    with open(os.path.join(out_dir, "results.json"), "w") as fh:
        json.dump(dict(meta=meta, summary=summary, matched=matched, records=records), fh, indent=1)
    text = report(meta, summary, matched)
    with open(os.path.join(out_dir, "results.md"), "w") as fh:
        fh.write(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--system", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="eager", help=argparse.SUPPRESS)
    p.add_argument("--systems", default=DEFAULT_SYSTEMS, help=f"comma-separated CG systems (default {DEFAULT_SYSTEMS})")
    p.add_argument("--jax-python", default=sys.executable, help="python of a JAX environment with this project")
    p.add_argument("--torch-python", help="python of a venv with torch, nequip, nequip-allegro, matscipy, ase")
    p.add_argument("--no-compiled", action="store_true", help="skip the torch.compile Allegro side")
    p.add_argument("--aotinductor", action="store_true",
                   help="add an Allegro side compiled ahead of time by AOTInductor (nequip's deployment path; "
                        "needs torch ≥ 2.6)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--loops", type=int, default=10, help="timed loops per worker")
    p.add_argument("--loop-steps", type=int, default=10, help="MD steps per timed loop")
    p.add_argument("--warmup-loops", type=int, default=5,
                   help="untimed loops first (JAX compiles; torch.compile compiles and recompiles for new shapes)")
    p.add_argument("--dt-fs", type=float, default=2.0, help="time step (fs), both sides")
    p.add_argument("--temperature", type=float, default=300.0, help="initial velocities (K)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--omp-wait-policy", default="",
                   help="OMP_WAIT_POLICY of every worker (default: unset, torch's own behaviour). PASSIVE stops "
                        "torch's OpenMP threads spinning, which a machine shared with other jobs needs, but slows "
                        "compiled torch code many times over")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    p.add_argument("--out", help="output folder (default benchmarks/results/cg-md-<date>)")
    p.add_argument("--report-only", metavar="RESULTS_JSON", help="rewrite results.md from a results.json and exit")
    a = p.parse_args(argv)
    if a.worker:
        try:
            res = jax_worker(a) if a.worker == "jax" else torch_worker(a)
        except CompileFailed as err:
            with open(a.worker_out + ".failed.json", "w") as fh:
                json.dump(err.info, fh, indent=1)
            raise
        with open(a.worker_out, "w") as fh:
            json.dump(res, fh)
        return 0
    if a.report_only:
        d = json.load(open(a.report_only))
        if d.get("records"):  # re-aggregate: the summary is a pure function of the records
            d["summary"], d["matched"] = summarise(d["records"]), _matched(d["records"])
            with open(a.report_only, "w") as fh:
                json.dump(d, fh, indent=1)
        text = report(d["meta"], d["summary"], d.get("matched", []))
        with open(os.path.splitext(a.report_only)[0] + ".md", "w") as fh:
            fh.write(text)
        print(text)
        return 0
    if a.loops < 1 or a.loop_steps < 1 or a.rounds < 1 or a.dt_fs <= 0:
        p.error("--loops, --loop-steps, --rounds must be ≥ 1 and --dt-fs > 0")
    systems = a.systems.split(",")
    bad = [s for s in systems if not s.startswith(("cg-chain-", "cg-box-"))]
    if bad:
        p.error(f"CG systems only (cg-chain-N, cg-box-N); got {bad}")

    started = _dt.datetime.now(_dt.timezone.utc)
    out_dir = a.out or os.path.join(HERE, "results", f"cg-md-{started.date().isoformat()}")
    os.makedirs(out_dir, exist_ok=True)
    sides = [("ours", a.jax_python, "jax", "jit (XLA)")]
    if a.torch_python:
        sides.append(("Allegro", a.torch_python, "torch", "eager"))
        if not a.no_compiled:
            sides.append(("Allegro", a.torch_python, "torch", "compiled"))
        if a.aotinductor:
            sides.append(("Allegro", a.torch_python, "torch", "aotinductor"))
    env = _env(a.omp_wait_policy)
    common = ["--loops", str(a.loops), "--loop-steps", str(a.loop_steps), "--warmup-loops", str(a.warmup_loops),
              "--dt-fs", str(a.dt_fs), "--temperature", str(a.temperature), "--seed", str(a.seed)]
    records = []
    tmp = tempfile.mkdtemp(prefix="cg-md-")
    log = open(os.path.join(out_dir, "log.txt"), "a")
    up0 = uptime()
    compile_failed = set()
    for system in systems:
        for rnd in range(a.rounds):
            for side, py, kind, mode in sides:
                if (system, mode) in compile_failed:
                    continue  # a compile that failed (or broke parity) once fails again: recorded once
                out = os.path.join(tmp, f"{system}-{len(records)}.json")
                cmd = [py, "-m", "benchmarks.cg_md", "--worker", kind, "--mode", mode, "--system", system,
                       "--worker-out", out] + common  # fmt: skip
                load0, up = _load(), uptime()
                t = time.perf_counter()
                try:
                    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=a.timeout)
                    rc, err = proc.returncode, (proc.stderr or proc.stdout)[-3000:]
                except subprocess.TimeoutExpired:
                    rc, err = -1, f"timed out after {a.timeout} s"
                rec = dict(system=system, side=side, mode=mode, round=rnd, worker_wall_s=time.perf_counter() - t,
                           load_start=load0, load_end=_load(), uptime_start=up, python=py)  # fmt: skip
                if rc != 0 or not os.path.exists(out):
                    rec.update(status="failed", returncode=rc, error=err or f"exit status {rc}")
                    if os.path.exists(out + ".failed.json"):
                        rec.update(json.load(open(out + ".failed.json")))
                        compile_failed.add((system, mode))
                    what = "FAILED " + " ".join(err.split())[-200:]
                else:
                    rec.update(json.load(open(out)), status="ok", side=side, mode=mode)
                    n = rec["num_atoms"]
                    med = statistics.median(rec["loop_times_s"]) / rec["loop_steps"]
                    what = f"{n / med:10.0f} bead-steps/s ({1e3 * med:.2f} ms/step)"
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(f"{system:13s} r{rnd} {side:8s} {mode:10s} {what}", flush=True)
                records.append(rec)
        _write(out_dir, records, a, argv, started, env, up0)  # after each system: a partial run still reports
    text = _write(out_dir, records, a, argv, started, env, up0)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
