"""Start-up of the MD driver: the initial state (jax-md's ``init``, which computes the first forces), jitted whole
against called op by op as jax-md does it, each in a fresh process, alternating.

    python -m benchmarks.md_startup [--structure water] [--rounds 2] [--out DIR]

Per round and variant: a fresh persistent compilation cache, then two processes with it: ``cold`` (nothing cached:
what a first run pays) and ``warm`` (everything cached: a second run with ``--compile-cache``). Each process builds
the MD run of ``so3krates-hk md`` (``md.run.build``, float32, NVT Langevin), then times ``init`` on the starting
positions to a finished state (``block_until_ready``): ``eager`` calls jax-md's ``init`` outside ``jit``, as
``Simulation.init_state`` does; ``jit`` wraps it whole in ``jax.jit``. Each line prints the norm of the initial forces,
to compare the variants.
Run with the tuned malloc settings (``python -m so3krates_hk.cpu_tuning``); both variants share them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time

from benchmarks.procs import json_worker, write_rows


def worker(variant: str, structure: str) -> dict:
    t_start = time.perf_counter()
    import jax
    import jax.numpy as jnp

    from so3krates_hk.md.run import MDRunConfig, build, load_structure, load_weights, resolve_skin

    t_import = time.perf_counter()
    cfg = MDRunConfig(structure=structure, output=tempfile.mkdtemp())
    s = load_structure(cfg.structure)
    weights = load_weights(cfg)
    cutoff = max(weights[1]["r_cutoff"], weights[1]["lr_cutoff"])
    cfg = dataclasses.replace(cfg, skin=resolve_skin(s.cell, cutoff, cfg.skin))
    sim, R0, _, _ = build(cfg, s, weights)
    t_build = time.perf_counter()
    nbrs = sim.allocate(R0)
    key = jax.random.PRNGKey(sim.settings.seed)
    if variant == "jit":
        init = jax.jit(lambda key, position, kT, mass, nbrs: sim._init(key, position, kT=kT, mass=mass, **nbrs))
        state = jax.block_until_ready(init(key, R0, sim.settings.kT, sim.mass, nbrs))
    else:
        state = jax.block_until_ready(sim._init(key, R0, kT=sim.settings.kT, mass=sim.mass, **nbrs))
    t_init = time.perf_counter()
    return {"variant": variant, "jax": jax.__version__, "import_s": t_import - t_start, "build_s": t_build - t_import,
            "init_s": t_init - t_build, "force_norm": float(jnp.linalg.norm(state.force)),
            "load": os.getloadavg()[0]}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structure", default="water")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--worker", choices=["eager", "jit"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, a.structure)), flush=True)
        return 0
    rows = []
    for r in range(a.rounds):
        caches = {v: tempfile.mkdtemp(prefix=f"md-startup-{v}-") for v in ("eager", "jit")}
        for phase in ("cold", "warm"):
            for v in ("eager", "jit"):
                env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=caches[v],
                           JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip
                t = time.perf_counter()
                _, row = json_worker("benchmarks.md_startup", ["--structure", a.structure, "--worker", v], env)
                row.update(round=r + 1, phase=phase, process_wall_s=time.perf_counter() - t)
                rows.append(row)
                print(f"round {r + 1} {phase} {v:5s} JAX {row['jax']}: init {row['init_s']:6.2f} s  build "
                      f"{row['build_s']:5.2f} s  import {row['import_s']:4.2f} s  process {row['process_wall_s']:6.2f} s"
                      f"  |F| {row['force_norm']:.6f}  load {row['load']:.2f}", flush=True)  # fmt: skip
    for phase in ("cold", "warm"):
        med = {v: statistics.median(r["init_s"] for r in rows if r["phase"] == phase and r["variant"] == v)
               for v in ("eager", "jit")}  # fmt: skip
        print(f"{phase}: init median eager {med['eager']:.2f} s, jit {med['jit']:.2f} s, "
              f"ratio {med['eager'] / med['jit']:.2f}x")
    write_rows(a.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
