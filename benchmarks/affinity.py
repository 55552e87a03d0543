"""Energy+forces with the process on all cores against one core, same run, interleaved.

    python -m benchmarks.affinity --jax-python PY [--jax-python PY2] [--systems dha,bb,water-1536,cg-chain-100]

XLA:CPU sizes its thread pool from the CPUs the process may run on, so a worker restricted to one core
(``os.sched_setaffinity`` before JAX starts, as ``taskset -c 0`` does) runs every program single-threaded. Each
worker builds one model per system (pretrained SO3LR; ``so3krates-cg`` for ``cg-*`` systems), float32, tuned malloc,
lists outside the timing, and reports the median (min, max) of ``--repeats`` warm calls. Workers alternate between
the two settings round by round. Writes ``results.json`` and ``results.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(systems: list[str], repeats: int, one_core: bool) -> list[dict]:
    if one_core:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import jax

    from benchmarks import jax_models
    from benchmarks.systems import build_system

    out = []
    for name in systems:
        model = "so3krates-cg" if name.startswith("cg-") else "so3lr"
        m = jax_models.build(model, build_system(name), "float32")
        ef = jax.jit(jax.value_and_grad(lambda p, r, nb: m.energy(p, r, **nb), argnums=1))
        c = ef.lower(m.params, m.position, m.neighbors).compile()
        jax.block_until_ready(c(m.params, m.position, m.neighbors))
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(c(m.params, m.position, m.neighbors))
            times.append(time.perf_counter() - t)
        out.append(dict(system=name, model=model, jax=jax.__version__, one_core=one_core,
                        cpus=len(os.sched_getaffinity(0)), median_s=statistics.median(times), min_s=min(times),
                        max_s=max(times), repeats=repeats, loadavg=os.getloadavg(),
                        xla_flags=os.environ.get("XLA_FLAGS")))  # fmt: skip
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jax-python", action="append", default=None)
    p.add_argument("--systems", default="dha,bb,water-1536,cg-chain-100")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", f"affinity-cpu-{time.strftime('%Y-%m-%d')}"))
    p.add_argument("--worker", choices=["all", "one"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    systems = args.systems.split(",")
    if args.worker:
        print(json.dumps(worker(systems, args.repeats, args.worker == "one")))
        return 0

    from so3krates_hk.cpu_tuning import tuned_env

    records = []
    for r in range(args.rounds):
        for py in args.jax_python or [sys.executable]:
            for mode in ("all", "one"):
                env = dict(tuned_env(), PYTHONPATH=ROOT)
                cmd = [py, "-m", "benchmarks.affinity", "--worker", mode, "--systems", args.systems,
                       "--repeats", str(args.repeats)]  # fmt: skip
                proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
                if proc.returncode:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return 1
                for rec in json.loads(proc.stdout.strip().splitlines()[-1]):
                    rec["round"] = r
                    records.append(rec)
                    print(f"r{r} JAX {rec['jax']:7s} {mode:3s} {rec['system']:12s} {1e3 * rec['median_s']:8.2f} ms "
                          f"(min {1e3 * rec['min_s']:.2f}) load {rec['loadavg'][0]:.2f}", flush=True)  # fmt: skip
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                       records=records), f, indent=1)  # fmt: skip
    lines = ["# Energy+forces on all cores against one core, same run", "",
             f"{os.cpu_count()} CPUs; float32, tuned malloc, lists outside the timing; {args.rounds} rounds, "
             f"{args.repeats} calls per worker; median over the rounds' medians (min of all calls).", "",
             "| system | JAX | all cores: ms | one core: ms | all / one |", "|---|---|---:|---:|---:|"]  # fmt: skip
    for jaxv in sorted({r["jax"] for r in records}):
        for name in systems:
            sel = {m: [r for r in records if r["jax"] == jaxv and r["system"] == name and r["one_core"] == (m == "one")]
                   for m in ("all", "one")}  # fmt: skip
            med = {m: statistics.median(r["median_s"] for r in v) for m, v in sel.items()}
            mn = {m: min(r["min_s"] for r in v) for m, v in sel.items()}
            lines.append(f"| {name} | {jaxv} | {1e3 * med['all']:.1f} ({1e3 * mn['all']:.1f}) | "
                         f"{1e3 * med['one']:.1f} ({1e3 * mn['one']:.1f}) | {med['all'] / med['one']:.2f} |")  # fmt: skip
    loads = [r["loadavg"][0] for r in records]
    lines += ["", f"Load average (1 min) at the workers' ends: {min(loads):.2f}–{max(loads):.2f}."]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
