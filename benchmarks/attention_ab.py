"""Same-process, interleaved A/B of two implementations of the attention layer inside pretrained SO3LR, or of the
current code with and without skipping unused pair capacity.

    python -m benchmarks.attention_ab --baseline OLD_ATTENTION_PY [--systems dha,bb,water-1536] [--repeats 20]
    python -m benchmarks.attention_ab --baseline one-segment [...]

``OLD_ATTENTION_PY`` is a copy of ``so3krates_hk/layers/attention.py`` from another revision (e.g.
``git show REV:so3krates_hk/layers/attention.py > /tmp/attention_old.py``). ``one-segment``: the baseline is the
current code with every pair array evaluated as one segment (``layers.segments``: unused capacity computed). Both
programs (SO3LR energy+forces, float32, neighbour lists outside the timing) are built and compiled in this process
(under ``cpu_tuning.serial_loops``, as the calculator compiles them; it acts on JAX 0.4.x up to 512 atoms),
then called in alternation, so a change of machine load hits both alike. Prints |ΔE|, max |ΔF| between them, the
medians (min) and the ratio, and appends one JSON record per system to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="path of the other attention.py, or 'one-segment'")
    p.add_argument("--systems", default="dha,bb,water-1536")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=None, help="JSON-lines file to append to")
    args = p.parse_args(argv)

    import jax

    import so3krates_hk.layers.attention as current
    import so3krates_hk.layers.block as block
    from benchmarks import jax_models
    from benchmarks.alternate import alternate
    from benchmarks.systems import build_system

    from so3krates_hk.cpu_tuning import serial_loops
    from so3krates_hk.layers import segments

    if args.baseline == "one-segment":
        baseline_cls, baseline_min = current.EuclideanAttention, 2**62
    else:
        spec = importlib.util.spec_from_file_location("baseline_attention", args.baseline)
        baseline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(baseline)
        baseline_cls, baseline_min = baseline.EuclideanAttention, segments.MIN_SEGMENTED_PAIRS
    variants = {"baseline": (baseline_cls, baseline_min),
                "current": (current.EuclideanAttention, segments.MIN_SEGMENTED_PAIRS)}  # fmt: skip
    for name in args.systems.split(","):
        system = build_system(name)
        calls, compile_s = {}, {}
        for label, (cls, min_segmented) in variants.items():
            # the model is built (and traced) anew for each variant
            block.EuclideanAttention, segments.MIN_SEGMENTED_PAIRS = cls, min_segmented
            m = jax_models.build("so3lr", system, "float32")
            ef = jax.jit(jax.value_and_grad(lambda p, r, nb, m=m: m.energy(p, r, **nb), argnums=1))
            t = time.perf_counter()
            with serial_loops(system.num_atoms):  # as the calculator and the MD driver compile
                c = ef.lower(m.params, m.position, m.neighbors).compile()
            compile_s[label] = time.perf_counter() - t
            calls[label] = lambda c=c, m=m: c(m.params, m.position, m.neighbors)
        block.EuclideanAttention, segments.MIN_SEGMENTED_PAIRS = variants["current"]
        outs = {k: jax.block_until_ready(f()) for k, f in calls.items()}
        d_e = abs(float(outs["baseline"][0] - outs["current"][0]))
        d_f = float(abs(outs["baseline"][1] - outs["current"][1]).max())
        times = alternate(calls, args.repeats, warmup=0)
        med = {k: statistics.median(v) for k, v in times.items()}
        rec = dict(system=name, jax=jax.__version__, repeats=args.repeats, abs_dE_eV=d_e, max_abs_dF_eV_per_A=d_f,
                   median_s=med, min_s={k: min(v) for k, v in times.items()},
                   max_s={k: max(v) for k, v in times.items()}, compile_s=compile_s,
                   speedup=med["baseline"] / med["current"], loadavg=os.getloadavg(), baseline=args.baseline,
                   malloc={k: os.environ.get(k) for k in ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_",
                                                          "MALLOC_MMAP_THRESHOLD_")},
                   xla_flags=os.environ.get("XLA_FLAGS"))  # fmt: skip
        print(f"JAX {jax.__version__} {name:11s} |dE| {d_e:.1e} eV, max |dF| {d_f:.1e} eV/A; "
              + "; ".join(f"{k} {1e3 * med[k]:.2f} ms (min {1e3 * min(times[k]):.2f})" for k in calls)
              + f"; baseline/current {rec['speedup']:.3f}; load {rec['loadavg'][0]:.2f}", flush=True)  # fmt: skip
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
