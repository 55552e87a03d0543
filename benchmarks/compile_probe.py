"""Compile and run time of one program in variants, one process: SO3LR energy+forces (``ef``) or the MD loop
(``md``: jax-md NVT Langevin, both lists updated every step, 10 steps in a ``fori_loop``, weights and species bound).

    python -m benchmarks.compile_probe SYSTEM {ef,md} VARIANT[,VARIANT...]    (NORUN=1: compile only)
    AB=ROUNDS python -m benchmarks.compile_probe ...    (then time the variants interleaved, ROUNDS calls each)

Variants: ``default`` (the code as it is); ``nobar`` (species without the optimisation barrier that keeps XLA from
folding them at compile time, ``factory.not_folded``); ``oneseg`` (one segment: unused pair capacity computed);
``O2``/``O1``/``O0`` (XLA's backend optimisation level for this program); ``noslp`` (LLVM's SLP vectoriser off);
``llvmcheap`` (LLVM's expensive optimisation passes off); ``store`` (the attention's per-pair terms stored for the
backward pass instead of recomputed, ``attention.recompute_by_default``); ``split1``/``split2``/``split8`` (the LLVM module cut into
at most this many parts for parallel code generation; the classic runtime of JAX 0.4.37 ignores it); ``avx2`` (code
generated for AVX2 at most, ``xla_cpu_max_isa``); ``vec256``/``vec128`` (``xla_cpu_prefer_vector_width``).
Each variant builds and traces the model anew; prints lowering and compile wall time, and the median of a few calls
(8 for ``ef``, 3 for ``md``). With ``AB=ROUNDS`` all variants stay compiled and are then called in turn, ROUNDS
rounds of one call each, after one warm call each: the same-process comparison of their run time (median, min, max).
For ``md`` the state comes from a jitted ``init`` that is waited for before the compile starts: JAX dispatches it
asynchronously, and a compile timed while it still runs is timed against it for the two cores. Float32; run with
the tuned malloc settings.
"""

from __future__ import annotations

import os
import statistics
import sys
import time


def program(m, what: str, first_state: str = "wait") -> tuple:
    """``(function, arguments)`` of the program to compile for the bound model ``m``: ``ef`` (energy+forces) or ``md``
    (the 10-step MD loop, from a first state computed by a jitted ``init``). ``first_state``: ``wait`` blocks on that
    state (JAX dispatches it asynchronously: a compile timed while it still runs shares the cores with it),
    ``nowait`` does not, ``shape`` only traces it for its shapes."""
    import jax

    from benchmarks.worker import md_loop
    from so3krates_hk._compat import jax_md

    if what == "ef":
        return jax.value_and_grad(lambda p, r, nb: m.energy(p, r, **nb), argnums=1), (m.params, m.position, m.neighbors)
    init, apply = jax_md.simulate.nvt_langevin(lambda R, **nb: m.energy(m.params, R, **nb), m.shift, 1e-3, 0.025,
                                               gamma=0.1)  # fmt: skip
    nbrs = dict(m.neighbors)

    def init_state(k, R, nb):
        return init(k, R, mass=m.masses, **nb)

    key = jax.random.PRNGKey(0)
    if first_state == "shape":
        state = jax.eval_shape(init_state, key, m.position, nbrs)
    else:
        state = jax.jit(init_state)(key, m.position, nbrs)
        if first_state == "wait":
            jax.block_until_ready(state)
    return md_loop(apply, 10), (state, nbrs)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name, what, variants = argv[0], argv[1], argv[2].split(",")
    import jax

    import so3krates_hk.factory as factory
    from benchmarks import jax_models
    from benchmarks.alternate import alternate, compile_variant
    from benchmarks.systems import build_system
    from so3krates_hk.layers import attention, segments

    options = {"default": {}, "nobar": {}, "oneseg": {}, "store": {}, "O2": {"xla_backend_optimization_level": 2},
               "O1": {"xla_backend_optimization_level": 1}, "O0": {"xla_backend_optimization_level": 0},
               "noslp": {"xla_cpu_disable_slp_vectorizer": True},
               "llvmcheap": {"xla_llvm_disable_expensive_passes": True},
               "split1": {"xla_cpu_parallel_codegen_split_count": 1},
               "split2": {"xla_cpu_parallel_codegen_split_count": 2},
               "split8": {"xla_cpu_parallel_codegen_split_count": 8},
               "avx2": {"xla_cpu_max_isa": "AVX2"}, "vec256": {"xla_cpu_prefer_vector_width": 256},
               "vec128": {"xla_cpu_prefer_vector_width": 128}}  # fmt: skip
    barrier, min_pairs = factory.not_folded, segments.MIN_SEGMENTED_PAIRS
    recompute = attention.recompute_by_default
    system = build_system(name)
    compiled = {}
    for v in variants:
        factory.not_folded = (lambda z: z) if v == "nobar" else barrier
        segments.MIN_SEGMENTED_PAIRS = 10**9 if v == "oneseg" else min_pairs
        attention.recompute_by_default = (lambda: False) if v == "store" else recompute
        run_it = not os.environ.get("NORUN")
        c = compile_variant(*program(jax_models.build("so3lr", system, "float32"), what), options[v] or None, run_it)
        line = f"{name} {what} {v:8s} JAX {jax.__version__}  lower {c.lower_s:5.1f} s  compile {c.compile_s:5.1f} s"
        if run_it:
            run = []
            for _ in range(3 if what == "md" else 8):
                t = time.perf_counter()
                jax.block_until_ready(c())
                run.append(time.perf_counter() - t)
            line += f"  run {1e3 * statistics.median(run):8.1f} ms (median of {len(run)})"
        print(line + f"  load {os.getloadavg()[0]:.2f}", flush=True)
        if os.environ.get("AB"):
            compiled[v] = c
    if compiled:
        times = alternate(compiled, int(os.environ["AB"]))
        for v, ts in times.items():
            print(f"{name} {what} {v:8s} interleaved: {1e3 * statistics.median(ts):8.1f} ms median "
                  f"({1e3 * min(ts):.1f}-{1e3 * max(ts):.1f}, {len(ts)} calls)", flush=True)
        print(f"load {os.getloadavg()[0]:.2f}", flush=True)
    factory.not_folded, segments.MIN_SEGMENTED_PAIRS = barrier, min_pairs
    attention.recompute_by_default = recompute
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
