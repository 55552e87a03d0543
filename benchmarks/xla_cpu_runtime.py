"""Why jaxlib 0.4.32-0.4.x runs SO3LR slower on CPU: scatters become loops that its default runtime interprets.

    python -m benchmarks.xla_cpu_runtime [--system dha] [--out DIR]

1. Compiles SO3LR's energy+forces on ``--system`` and counts, in XLA's optimised HLO, the ``while`` loops that XLA
   made of scatters (segment sums and gradients of gathers) and their trip counts.
2. Times the primitives SO3LR is made of at water-1536 sizes (segment sums of (37 050, 128) and of 759 440 scalars,
   gathers, a (37 050, 128) × (128, 128) product, an element-wise kernel), each compiled once per runtime in this
   process and timed interleaved. On jaxlib 0.4.32-0.4.x the runtimes are the thunk runtime (that jaxlib's default)
   and the classic one (``xla_cpu_use_thunk_runtime=False`` as a compiler option); on later jaxlib only the default.

Appends one JSON line per run to ``DIR/xla_cpu_runtime.jsonl`` (default ``benchmarks/results/samerun-cpu-<date>``).
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import json
import os
import re
import statistics
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def hlo_loops(system_name: str) -> dict:
    import jax

    from benchmarks import jax_models
    from benchmarks.systems import build_system

    b = jax_models.build("so3lr", build_system(system_name), "float32")
    low = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors)
    text = low.compile().as_text()
    trips = [int(n) for n in re.findall(r'"known_trip_count":\{"n":"(\d+)"\}', text)]
    ops = collections.Counter(re.findall(r"\s([a-z][a-z\-]*)\(", text))
    return dict(system=system_name, while_loops=ops.get("while", 0), scatter_ops=ops.get("scatter", 0),
                gather_ops=ops.get("gather", 0), trip_counts=dict(collections.Counter(trips)))  # fmt: skip


def primitives(rounds: int = 15) -> list:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    N, P, F, PL = 1536, 37050, 128, 759440
    idx = jnp.asarray(rng.integers(0, N, P).astype(np.int32))
    d = jnp.asarray(rng.normal(size=(P, F)).astype(np.float32))
    x = jnp.asarray(rng.normal(size=(N, F)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(F, F)).astype(np.float32))
    idx_lr = jnp.asarray(rng.integers(0, N, PL).astype(np.int32))
    d_lr = jnp.asarray(rng.normal(size=(PL,)).astype(np.float32))
    cases = {
        "segment_sum (37050,128)->1536": (lambda d, i: jax.ops.segment_sum(d, i, N), (d, idx)),
        "segment_sum (37050,24)->1536": (lambda d, i: jax.ops.segment_sum(d[:, :24], i, N), (d, idx)),
        "segment_sum 759440 scalars->1536": (lambda d, i: jax.ops.segment_sum(d, i, N), (d_lr, idx_lr)),
        "gather (1536,128)[37050]": (lambda x, i: x[i], (x, idx)),
        "dot (37050,128)x(128,128)": (lambda d, w: d @ w, (d, w)),
        "silu(x)*x (37050,128)": (lambda d: jax.nn.silu(d) * d, (d,)),
    }
    from so3krates_hk._cpu_runtime import wants_classic_runtime

    import jaxlib

    runtimes = {"default": None}
    if wants_classic_runtime(jaxlib.__version__):
        runtimes = {"thunk (default)": {"xla_cpu_use_thunk_runtime": True},
                    "classic": {"xla_cpu_use_thunk_runtime": False}}  # fmt: skip
    rows = []
    for name, (fn, args) in cases.items():
        low = jax.jit(fn).lower(*args)
        comp = {rt: (low.compile(compiler_options=o) if o else low.compile()) for rt, o in runtimes.items()}
        times = {rt: [] for rt in runtimes}
        for c in comp.values():
            jax.block_until_ready(c(*args))
        for _ in range(rounds):
            for rt, c in comp.items():
                t = time.perf_counter()
                jax.block_until_ready(c(*args))
                times[rt].append(time.perf_counter() - t)
        for rt, ts in times.items():
            rows.append(dict(case=name, runtime=rt, median_ms=1e3 * statistics.median(ts), min_ms=1e3 * min(ts),
                             max_ms=1e3 * max(ts)))  # fmt: skip
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", default="dha", help="system whose SO3LR e+f HLO is inspected")
    p.add_argument("--rounds", type=int, default=15, help="timed calls per primitive and runtime")
    p.add_argument("--out", help="output folder")
    args = p.parse_args(argv)
    import jax
    import jaxlib

    out_dir = args.out or os.path.join(HERE, "results", f"samerun-cpu-{_dt.date.today().isoformat()}")
    os.makedirs(out_dir, exist_ok=True)
    rec = dict(date=_dt.datetime.now().isoformat(timespec="seconds"), jax=jax.__version__, jaxlib=jaxlib.__version__,
               xla_flags=os.environ.get("XLA_FLAGS"), malloc_arena_max=os.environ.get("MALLOC_ARENA_MAX"),
               load_start=os.getloadavg())  # fmt: skip
    rec["hlo"] = hlo_loops(args.system)
    rec["primitives"] = primitives(args.rounds)
    rec["load_end"] = os.getloadavg()
    with open(os.path.join(out_dir, "xla_cpu_runtime.jsonl"), "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(json.dumps(rec["hlo"]))
    for r in rec["primitives"]:
        print(f"{jax.__version__:7s} {r['case']:36s} {r['runtime']:16s} median {r['median_ms']:8.2f} ms  "
              f"min {r['min_ms']:8.2f}  max {r['max_ms']:8.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
