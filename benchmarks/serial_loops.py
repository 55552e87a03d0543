"""Same-process, interleaved A/B of one energy+forces program compiled with and without serial loops.

    python -m benchmarks.serial_loops [--systems dha,bb,cg-chain-100,cg-chain-300,cg-chain-1000,water-1536]
                                      [--repeats 30] [--out DIR]

``so3krates_hk.cpu_tuning.serial_loops`` (XLA:CPU's classic runtime, i.e. the chemtrain environment's JAX 0.4.x):
a program compiled while the calling thread may use one CPU runs its element-wise loops on that thread instead of
splitting them over the thread pool. This harness compiles each system's program twice in one process, once inside
the block (forced on whatever the size, so the sizes where it loses show too) and once outside, checks that both
give the same energy and forces, then calls the two in alternation (``--repeats`` each), so a change of machine load
hits both alike. Pretrained SO3LR (``so3krates-cg`` for ``cg-*`` systems), float32, neighbour lists outside the
timing. Writes ``results.json`` and ``results.md`` to ``--out``. Run it with the tuned malloc settings
(``eval "$(python -m so3krates_hk.cpu_tuning)"``); elsewhere than on the classic runtime both programs are the same
and the harness says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(name: str, repeats: int) -> dict:
    import jax
    import numpy as np

    from benchmarks import jax_models
    from benchmarks.systems import build_system
    from so3krates_hk.cpu_tuning import serial_loops

    model = "so3krates-cg" if name.startswith("cg-") else "so3lr"
    m = jax_models.build(model, build_system(name), "float32")
    args = (m.params, m.position, m.neighbors)
    compiled, compile_s, applied = {}, {}, None
    for label in ("pool", "serial"):
        # a new function per variant: JAX would otherwise hand back the first variant's cached executable
        ef = jax.jit(jax.value_and_grad(lambda p, r, nb, m=m: m.energy(p, r, **nb), argnums=1))
        t = time.perf_counter()
        if label == "serial":
            with serial_loops() as applied:
                compiled[label] = ef.lower(*args).compile()
        else:
            compiled[label] = ef.lower(*args).compile()
        compile_s[label] = time.perf_counter() - t
    out = {k: jax.block_until_ready(c(*args)) for k, c in compiled.items()}
    d_e = abs(float(out["serial"][0]) - float(out["pool"][0]))
    d_f = float(np.max(np.abs(np.asarray(out["serial"][1]) - np.asarray(out["pool"][1]))))
    times: dict[str, list[float]] = {k: [] for k in compiled}
    for _ in range(repeats):
        for k, c in compiled.items():
            t = time.perf_counter()
            jax.block_until_ready(c(*args))
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(system=name, model=model, atoms=int(m.position.shape[0]), jax=jax.__version__, applied=applied,
                median_ms={k: 1e3 * v for k, v in med.items()}, min_ms={k: 1e3 * min(v) for k, v in times.items()},
                speedup=med["pool"] / med["serial"], compile_s=compile_s, delta_energy_eV=d_e,
                max_delta_force=d_f, repeats=repeats, loadavg=os.getloadavg(),
                xla_flags=os.environ.get("XLA_FLAGS"), malloc_arena_max=os.environ.get("MALLOC_ARENA_MAX"))  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", default="dha,bb,cg-chain-100,cg-chain-300,cg-chain-1000,water-1536")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    from benchmarks.hostinfo import cpu_name, uptime

    import jax

    out = args.out or os.path.join(ROOT, "benchmarks", "results",
                                   f"serial-loops-cpu-{time.strftime('%Y-%m-%d')}-jax{jax.__version__}")  # fmt: skip
    os.makedirs(out, exist_ok=True)
    rows = []
    for name in args.systems.split(","):
        r = measure(name, args.repeats)
        rows.append(r)
        print(f"{name:15s} pool {r['median_ms']['pool']:8.2f} ms  serial {r['median_ms']['serial']:8.2f} ms  "
              f"{r['speedup']:.3f}×  applied={r['applied']}  |ΔE| {r['delta_energy_eV']:.1e}  load "
              f"{r['loadavg'][0]:.2f}", flush=True)  # fmt: skip
    meta = dict(cpu=cpu_name(), uptime=uptime(), jax=jax.__version__, cpus=len(os.sched_getaffinity(0)))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    lines = [f"# Serial loops against the thread pool, one process, JAX {jax.__version__}", "",
             f"{meta['cpu']}, {meta['cpus']} CPUs, float32, SO3LR (so3krates-cg for CG chains) energy+forces, lists "
             f"outside the timing, median of {args.repeats} interleaved calls each. `XLA_FLAGS={rows[0]['xla_flags']}`, "
             f"`MALLOC_ARENA_MAX={rows[0]['malloc_arena_max']}`. Start: {meta['uptime']}", "",
             "| system | atoms | thread pool, ms | serial loops, ms | speed-up | \\|ΔE\\| eV | max \\|ΔF\\| eV/Å | compile pool / serial, s | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['system']} | {r['atoms']} | {r['median_ms']['pool']:.2f} | {r['median_ms']['serial']:.2f} | "
                     f"{r['speedup']:.3f}× | {r['delta_energy_eV']:.1e} | {r['max_delta_force']:.1e} | "
                     f"{r['compile_s']['pool']:.1f} / {r['compile_s']['serial']:.1f} | {r['loadavg'][0]:.2f} |")  # fmt: skip
    if not any(r["applied"] for r in rows):
        lines += ["", "Serial loops do not apply here (not XLA:CPU's classic runtime, or one CPU): both programs are "
                  "the same, so the ratios measure the noise."]  # fmt: skip
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
