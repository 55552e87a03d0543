"""Peak memory of SO3LR MD on a large box: jax-md's ``init`` called op by op (the first forces through JAX's
differentiation of the jitted energy outside ``jit``) or jitted whole, then the MD loop program (10 steps) compiled and called CALLS times, each from the last one's state.

    python -m benchmarks.md_memory SYSTEM {eager,jit} [CALLS]   (one variant per process; CALLS loop calls, default 3)

Prints the resident set size after each phase (the process's peak so far, from ``getrusage``). Float32; run with
the tuned malloc settings, which keep freed memory in the process (so the peak is what the phases leave behind).
"""

from __future__ import annotations

import resource
import sys
import time


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name, variant = argv[0], argv[1]
    calls = int(argv[2]) if len(argv) > 2 else 3
    import jax

    from benchmarks import jax_models
    from benchmarks.systems import build_system
    from benchmarks.worker import md_loop
    from so3krates_hk._compat import jax_md

    m = jax_models.build("so3lr", build_system(name), "float32")
    print(f"{name} {variant} JAX {jax.__version__}: built, peak {peak_gb():.1f} GB", flush=True)
    kT, dt = 300.0 * 8.617333262e-5, 0.5 / jax_models.TIME_UNIT_FS
    init, apply = jax_md.simulate.nvt_langevin(lambda R, **nb: m.energy(m.params, R, **nb), m.shift, dt, kT, gamma=0.1)
    nbrs = dict(m.neighbors)
    key = jax.random.PRNGKey(0)
    t = time.perf_counter()
    if variant == "jit":
        state = jax.jit(lambda k, R, nb: init(k, R, mass=m.masses, **nb))(key, m.position, nbrs)
    else:
        state = init(key, m.position, mass=m.masses, **nbrs)
    state = jax.block_until_ready(state)
    print(f"  first state in {time.perf_counter() - t:.1f} s, peak {peak_gb():.1f} GB", flush=True)
    t = time.perf_counter()
    compiled = jax.jit(md_loop(apply, 10)).lower(state, nbrs).compile()
    print(f"  MD program compiled in {time.perf_counter() - t:.1f} s, peak {peak_gb():.1f} GB", flush=True)
    for call in range(calls):
        t = time.perf_counter()
        state, nbrs, overflow = jax.block_until_ready(compiled(state, nbrs))
        print(f"  call {call + 1}: 10 steps in {time.perf_counter() - t:.1f} s, overflow {bool(overflow)}, "
              f"peak {peak_gb():.1f} GB", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
