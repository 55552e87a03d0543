"""One benchmark configuration, run in its own process: ``python -m benchmarks.worker CONFIG.json OUT.json``.

A configuration is a dict (see ``plan.Config``): model, system, dtype, task ("ef": energy+forces, neighbour update,
MD; "memory": compile the energy+forces program only and read XLA's buffer sizes; or "train": one chemtrain
ForceMatching step), repeats and time budgets. The worker writes its result to
OUT.json after every phase, so a configuration that runs out of time still reports what it measured.

What is measured (JAX models; the torch baselines are in ``torch_models``):

* ``compile_s``: ``jit(value_and_grad(energy)).lower(...)`` plus ``.compile()``, wall clock (``lower_s`` and
  ``compile_only_s`` separately, and the process CPU time in ``compile_cpu_s``); ``first_call_s`` is the first
  call of the compiled function, ``jit_first_call_minus_warm_s`` an alternative definition.
* ``ef_median_s``: median of ``repeats`` warm energy+forces calls (``block_until_ready``); all times in ``ef_times_s``.
* ``nbr_update_median_s``: median of warm, jitted ``nbrs.update(R')`` of every list the model needs, where R' has
  one atom moved by 0.75 × skin so that jax-md rebuilds the lists; ``nbr_check_median_s`` the same update at the
  allocation positions (nothing moved: only the displacement check runs, as in most MD steps).
* ``atom_steps_per_s``: atoms / ``ef_median_s``.
* ``md_step_median_s``: NVE velocity Verlet with every list updated each step, a jitted loop of ``md_steps`` steps;
  the median loop time over ``md_loops`` loops, divided by ``md_steps``.
* ``peak_memory_bytes``: CPU: the peak RSS during the warm energy+forces calls (the process, JAX runtime included;
  ``rss_before_bytes`` is the RSS just before); ``peak_memory_compile_bytes`` the peak during compilation.
  GPU: the device's ``peak_bytes_in_use`` after the energy+forces phase.
* ``xla_memory_bytes``: the compiled energy+forces program's own buffers from XLA's buffer assignment
  (``compiled.memory_analysis()``: arguments + outputs + temporaries − aliased), ``xla_temp_bytes`` the temporaries
  alone. Independent of the allocator (on CPU the tuned malloc keeps freed memory in the RSS) and of the runtime's
  own footprint, so it is the figure to read memory scaling in N from.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

from benchmarks import memory

RESULT_FIELDS = (
    "model", "system", "num_atoms", "dtype", "task", "status", "reason", "backend", "device", "settings",
    "num_edges", "num_pairs_lr", "compile_s", "lower_s", "compile_only_s", "compile_cpu_s", "first_call_s",
    "jit_first_call_minus_warm_s", "ef_median_s", "ef_times_s", "repeats", "nbr_allocate_s", "nbr_update_median_s",
    "nbr_check_median_s",    "atom_steps_per_s", "md_step_median_s", "md_steps", "md_loops", "md_compile_s", "md_overflow",
    "peak_memory_bytes", "peak_memory_compile_bytes", "peak_memory_md_bytes", "rss_before_bytes", "memory_kind",
    "xla_memory_bytes", "xla_temp_bytes",
    "energy", "max_abs_force", "finite", "train_structures_per_s", "train_batch_median_s", "train_batch_size",
    "train_first_epoch_s", "train_batches_timed", "loadavg_start", "loadavg_end", "wall_s",
)  # fmt: skip
"""Every result record has every one of these keys (None where a quantity does not apply; see ``na``)."""


def empty_result(cfg: dict) -> dict:
    r = {k: None for k in RESULT_FIELDS}
    r.update(model=cfg["model"], system=cfg["system"], dtype=cfg.get("dtype", "float32"), task=cfg.get("task", "ef"))
    r["num_atoms"] = cfg.get("num_atoms")
    r["status"] = "running"
    r["na"] = {}
    return r


def _load() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class Recorder:
    """Holds the result and writes it to ``path`` after each phase."""

    def __init__(self, cfg: dict, path: str):
        self.path = path
        self.result = empty_result(cfg)
        self.result["loadavg_start"] = _load()
        self.t0 = time.perf_counter()

    def update(self, **kw):
        self.result.update(kw)
        self.flush()

    def flush(self):
        self.result["loadavg_end"] = _load()
        self.result["wall_s"] = round(time.perf_counter() - self.t0, 3)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.result, f, default=_json_default)
        os.replace(tmp, self.path)


def _json_default(x):
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def time_calls(fn: Callable, repeats: int, budget_s: float, min_repeats: int = 3) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn`` (which blocks), fewer if they would exceed ``budget_s``."""
    times = []
    start = time.perf_counter()
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if i + 1 >= min_repeats and time.perf_counter() - start + statistics.median(times) > budget_s:
            break
    return times


def _device_info() -> tuple[str, str]:
    import jax

    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    return dev.platform, f"{dev.platform}:{kind}"


# ------------------------------------------------------------------------------------------------ energy+forces, MD
def run_ef(cfg: dict, rec: Recorder) -> None:
    import jax
    import jax.numpy as jnp

    from benchmarks import jax_models
    from benchmarks.systems import build_system

    backend, device = _device_info()
    rec.update(backend=backend, device=device, memory_kind="device_peak_bytes_in_use" if backend != "cpu" else "peak_rss")
    system = build_system(cfg["system"], cfg.get("seed", 0))
    rec.update(num_atoms=system.num_atoms)
    m = jax_models.build(cfg["model"], system, cfg.get("dtype", "float32"), cfg.get("seed", 0))
    nbr_allocate_s = m.allocate_s  # first allocation of every list, jax-md's compilation included
    nbrs = m.neighbors
    num_edges = None
    if m.count_edges is not None:
        num_edges = int(m.count_edges(m.position, **nbrs))
    num_pairs_lr = None
    if "neighbor_lr" in nbrs:
        from so3krates_hk.graph import count_edges as _count

        num_pairs_lr = _count(m.displacement, m.position, nbrs["neighbor_lr"], m.settings.get("lr_cutoff"))
    rec.update(settings=m.settings, nbr_allocate_s=nbr_allocate_s, num_edges=num_edges, num_pairs_lr=num_pairs_lr)

    params, R = m.params, m.position

    def energy(params, position, nbrs):
        return m.energy(params, position, **nbrs)

    ef = jax.jit(jax.value_and_grad(energy, argnums=1))

    # compile
    memory.reset_peak_rss()
    cpu0, t0 = time.process_time(), time.perf_counter()
    lowered = ef.lower(params, R, nbrs)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    cpu1 = time.process_time()
    peak_compile = memory.peak_rss_bytes()
    rec.update(lower_s=t1 - t0, compile_only_s=t2 - t1, compile_s=t2 - t0, compile_cpu_s=cpu1 - cpu0,
               peak_memory_compile_bytes=peak_compile, **memory.xla_program_bytes(compiled))  # fmt: skip
    if rec.result["xla_memory_bytes"] is None:
        rec.result["na"]["xla_memory_bytes"] = rec.result["na"]["xla_temp_bytes"] = "memory_analysis() unavailable"
    if cfg.get("task") == "memory":  # compile only: XLA's buffer sizes, nothing executed
        for k in RESULT_FIELDS:
            if rec.result.get(k) is None and k not in rec.result["na"]:
                rec.result["na"][k] = "task 'memory': compiled, not run"
        return

    # first call and warm calls
    rss_before = memory.rss_bytes()
    memory.reset_peak_rss()
    t = time.perf_counter()
    e, g = jax.block_until_ready(compiled(params, R, nbrs))
    first = time.perf_counter() - t
    times = time_calls(lambda: jax.block_until_ready(compiled(params, R, nbrs)), cfg["repeats"], cfg["ef_budget_s"])
    peak = memory.device_peak_bytes() if backend != "cpu" else memory.peak_rss_bytes()
    med = statistics.median(times)
    e_val, fmax = float(e), float(jnp.max(jnp.abs(g)))
    finite = bool(jnp.isfinite(e)) and bool(jnp.all(jnp.isfinite(g)))
    rec.update(
        first_call_s=first, ef_times_s=times, repeats=len(times), ef_median_s=med,
        atom_steps_per_s=system.num_atoms / med, peak_memory_bytes=peak, rss_before_bytes=rss_before,
        energy=e_val, max_abs_force=fmax, finite=finite,
    )  # fmt: skip

    # an alternative compile measure: first call of a fresh jit minus a warm call
    if cfg.get("first_call_compile", True):
        ef2 = jax.jit(jax.value_and_grad(energy, argnums=1))
        t = time.perf_counter()
        jax.block_until_ready(ef2(params, R, nbrs))
        rec.update(jit_first_call_minus_warm_s=time.perf_counter() - t - med)
    else:
        rec.result["na"]["jit_first_call_minus_warm_s"] = "skipped (--quick)"

    # neighbour-list update, separately: a rebuild (one atom moved by 0.75 skin, so jax-md must rebuild every list),
    # and the cheap check that finds no atom moved more than half the skin (what most MD steps do)
    upd = jax.jit(lambda R, nbrs: {k: v.update(R) for k, v in nbrs.items()})
    skins = [m.settings.get(f"{p}_skin") or 0.0 for p in ("sr", "lr") if m.settings.get(f"{p}_skin") is not None]
    R_moved = R.at[0, 0].add(0.75 * max(skins + [0.1]))
    jax.block_until_ready(upd(R_moved, nbrs))
    ut = time_calls(lambda: jax.block_until_ready(upd(R_moved, nbrs)), cfg["repeats"], cfg["ef_budget_s"] / 3)
    ct = time_calls(lambda: jax.block_until_ready(upd(R, nbrs)), cfg["repeats"], cfg["ef_budget_s"] / 6)
    rec.update(nbr_update_median_s=statistics.median(ut), nbr_check_median_s=statistics.median(ct))

    if cfg.get("md_steps", 0) > 0:
        run_md(cfg, rec, m)
    else:
        rec.result["na"]["md_step_median_s"] = "MD not requested"


def run_md(cfg: dict, rec: Recorder, m) -> None:
    """NVE velocity Verlet; every list updated each step, as in production MD."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md

    params = m.params

    def energy_fn(position, **nbrs):
        return m.energy(params, position, **nbrs)

    dt = 0.5 / jax_md_time_unit_fs()
    init, apply = jax_md.simulate.nve(energy_fn, m.shift, dt)
    # blocked: else the MD program's compile below is timed while init's forces still run
    state = jax.block_until_ready(init(jax.random.PRNGKey(0), m.position, kT=0.0, mass=m.masses, **m.neighbors))
    # steps per jitted loop: up to md_steps, fewer for slow systems so a loop takes about md_loop_target_s
    ef_med = rec.result.get("ef_median_s") or 0.0
    steps = int(max(2, min(cfg["md_steps"], cfg.get("md_loop_target_s", 3.0) // max(ef_med, 1e-9))))

    loop = md_loop(apply, steps)

    loop = jax.jit(loop)
    memory.reset_peak_rss()
    t = time.perf_counter()
    compiled = loop.lower(state, m.neighbors).compile()
    md_compile = time.perf_counter() - t
    out = jax.block_until_ready(compiled(state, m.neighbors))
    overflow = bool(out[2])
    times = time_calls(lambda: jax.block_until_ready(compiled(state, m.neighbors)), cfg["md_loops"], cfg["md_budget_s"], 2)
    finite = bool(jnp.all(jnp.isfinite(out[0].position)))
    rec.update(
        md_step_median_s=statistics.median(times) / steps, md_steps=steps, md_loops=len(times),
        md_compile_s=md_compile, md_overflow=overflow or not finite, peak_memory_md_bytes=memory.peak_rss_bytes(),
    )  # fmt: skip


def md_loop(apply, steps: int):
    """``loop(state, nbrs) -> (state, nbrs, overflow)``: ``steps`` MD steps in one ``fori_loop``, the neighbour
    lists updated before each step and their overflow flags OR-ed (the caller re-allocates and re-runs)."""
    import jax
    import jax.numpy as jnp

    def loop(state, nbrs):
        def body(_, carry):
            state, nbrs, overflow = carry
            nbrs = {k: v.update(state.position) for k, v in nbrs.items()}
            for v in nbrs.values():
                overflow = overflow | jnp.asarray(v.did_buffer_overflow, bool)
            return apply(state, **nbrs), nbrs, overflow

        return jax.lax.fori_loop(0, steps, body, (state, nbrs, jnp.zeros((), bool)))

    return loop


def jax_md_time_unit_fs() -> float:
    from benchmarks.jax_models import TIME_UNIT_FS

    return TIME_UNIT_FS


# ----------------------------------------------------------------------------------------------------- training
def _chemtrain_jax_aliases() -> list[str]:
    """chemtrain 0.2.0 (pinned to JAX ≤ 0.4.37) imports ``jax.tree_map`` and its siblings, which JAX 0.6 removed.
    On newer JAX (the GPU device image) the benchmark adds them back from ``jax.tree_util`` so that the training step
    can be timed there too, and records the names in the settings. Benchmark only: the package never does this."""
    import jax
    import jax.tree_util as tu

    added = []
    for name in ("tree_map", "tree_leaves", "tree_flatten", "tree_unflatten", "tree_structure", "tree_reduce",
                 "tree_transpose"):  # fmt: skip
        if not hasattr(jax, name) and hasattr(tu, name):
            setattr(jax, name, getattr(tu, name))
            added.append(f"jax.{name}")
    return added


def run_train(cfg: dict, rec: Recorder) -> None:
    """One chemtrain ForceMatching epoch to compile, then per-batch times of a later epoch."""
    aliases = _chemtrain_jax_aliases()
    try:
        import optax
        from chemtrain.trainers import ForceMatching
    except Exception as err:  # noqa: BLE001
        rec.update(status="skipped", reason=f"chemtrain is not importable ({type(err).__name__}: {err})")
        return
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import jax_models
    from benchmarks.systems import build_system

    backend, device = _device_info()
    rec.update(backend=backend, device=device, memory_kind="device_peak_bytes_in_use" if backend != "cpu" else "peak_rss")
    system = build_system(cfg["system"], cfg.get("seed", 0))
    rec.update(num_atoms=system.num_atoms)
    m = jax_models.build(cfg["model"], system, cfg.get("dtype", "float32"), cfg.get("seed", 0))
    dtype = m.position.dtype
    batch = cfg.get("train_batch", 8)
    n_samples = cfg.get("train_samples", 5 * batch)
    rng = np.random.default_rng(0)
    sigma = 0.05 if system.atomistic else 0.2  # Å: well inside the list skin, so the lists never overflow
    R0 = np.asarray(m.position)
    R_batch = (R0[None] + sigma * rng.normal(size=(n_samples,) + R0.shape)).astype(dtype)
    F_batch = rng.normal(size=(n_samples,) + R0.shape).astype(dtype)  # random targets: only the cost matters
    if system.box is not None:
        R_batch = np.mod(R_batch, system.box)

    sr = m.neighbors["neighbor"]
    extra = {k: v for k, v in m.neighbors.items() if k != "neighbor"}

    def template(p):
        def energy_fn(pos, neighbor, **kw):
            lists = {k: v.update(pos) for k, v in extra.items()}  # SO3LR's long-range list follows the positions
            return m.energy(p, pos, neighbor, **lists)

        return energy_fn

    with tempfile.TemporaryDirectory() as tmp:
        tr = ForceMatching(
            m.params, optax.adam(1e-4), template, sr, gammas={"F": 1.0}, batch_per_device=batch,
            log_file=os.path.join(tmp, "fm.log"), checkpoint_path=os.path.join(tmp, "ckpt"),
        )  # fmt: skip
        tr.set_datasets({"R": R_batch, "F": F_batch}, train_ratio=0.8, val_ratio=0.1)
        stamps: list[float] = []
        tr.add_task("post_batch", lambda *a, **k: stamps.append(time.perf_counter()))
        tr.add_task("pre_epoch", lambda *a, **k: stamps.append(-time.perf_counter()))
        memory.reset_peak_rss()
        t = time.perf_counter()
        tr.train(1)
        first_epoch = time.perf_counter() - t
        rec.update(train_first_epoch_s=first_epoch, settings=dict(m.settings, train_samples=n_samples, train_batch=batch,
                   optimizer="adam(1e-4)", loss="force MSE", displacement_sigma=sigma,
                   chemtrain_jax_aliases=aliases or None))  # fmt: skip
        stamps.clear()
        t_end = time.perf_counter() + cfg.get("train_budget_s", 60)
        while True:
            tr.train(1)
            if time.perf_counter() > t_end or sum(1 for s in stamps if s > 0) >= cfg.get("train_batches", 8):
                break
        peak = memory.device_peak_bytes() if backend != "cpu" else memory.peak_rss_bytes()
    # per-batch intervals: post_batch to post_batch within an epoch (pre_epoch stamps are negative)
    intervals, last = [], None
    for s in stamps:
        if s < 0:
            last = -s
            continue
        if last is not None:
            intervals.append(s - last)
        last = s
    med = statistics.median(intervals)
    bs = tr.batch_size
    losses = [float(x) for x in tr.train_batch_losses[-len(intervals):]]
    rec.update(
        train_batch_median_s=med, train_structures_per_s=bs / med, train_batch_size=bs,
        train_batches_timed=len(intervals), peak_memory_bytes=peak, finite=bool(np.all(np.isfinite(losses))),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- main
def run(cfg: dict, out_path: str) -> dict:
    rec = Recorder(cfg, out_path)
    rec.flush()
    try:
        if cfg.get("dtype") == "float64":
            import jax

            jax.config.update("jax_enable_x64", True)
        if cfg.get("framework", "jax") == "torch":
            from benchmarks import torch_models

            torch_models.run_ef(cfg, rec)
        elif cfg.get("task", "ef") == "train":
            run_train(cfg, rec)
        else:
            run_ef(cfg, rec)
        if rec.result["status"] == "running":
            rec.result["status"] = "ok"
    except Exception as err:  # noqa: BLE001 — record every failure, never crash the driver
        from benchmarks.jax_models import Unavailable

        if isinstance(err, Unavailable) or type(err).__name__ == "Unavailable":
            rec.result.update(status="skipped", reason=str(err))
        else:
            rec.result.update(status="error", reason=f"{type(err).__name__}: {err}",
                              traceback=traceback.format_exc(limit=8))  # fmt: skip
    rec.result["python"] = platform.python_version()
    rec.flush()
    return rec.result


def run_batch(items: list[dict]) -> None:
    """Several configurations in this process, one after the other (``--quick``: saves a JAX start-up each).

    Peak RSS is still per phase (reset before each, see ``memory``), but the process baseline grows with what the
    earlier configurations left behind; records say ``memory_isolation: "shared process"``.
    """
    import gc

    for item in items:
        cfg = dict(item["config"])
        result = run(cfg, item["out"])
        result["memory_isolation"] = "shared process"
        with open(item["out"], "w") as f:
            json.dump(result, f, default=_json_default)
        try:
            import jax

            jax.clear_caches()
        except Exception:  # noqa: BLE001
            pass
        gc.collect()


def main(argv=None) -> int:
    """``worker CONFIG.json OUT.json`` (one configuration) or ``worker --batch ITEMS.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[0] == "--batch":
        with open(argv[1]) as f:
            run_batch(json.load(f))
        return 0
    with open(argv[0]) as f:
        cfg = json.load(f)
    result = run(cfg, argv[1])
    result["memory_isolation"] = "own process"
    with open(argv[1], "w") as f:
        json.dump(result, f, default=_json_default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
