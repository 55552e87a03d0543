"""Probe: SO3LR's long-range pair sums as a lax.scan over K equal chunks of the list (one body, compiled once; a
chunk past the extent skipped under lax.cond) against the two static segments of the package. Water-1536 e+f,
float32, one process: lowering and compile time per variant, then run time in alternation.

    python lrscan.py default,scan8,scan8r [SYSTEM]     (AB=rounds; SERIAL=1: compiled under serial_loops)

scanK: K chunks; scanKr: the same with the chunk body under jax.checkpoint (recomputed in the backward pass)."""
import os, sys, time
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
import jax
import jax.numpy as jnp
import numpy as np
from benchmarks import jax_models
from benchmarks.alternate import alternate, summary
from benchmarks.systems import build_system
from benchmarks.compile_probe import program
import so3krates_hk.models as models
from so3krates_hk.physics.dispersion import dispersion_pair_energy
from so3krates_hk.physics.electrostatics import coulomb_pair_energy
from so3krates_hk.layers.segments import extent

orig_pair_terms = models.so3lr_pair_terms


def scan_pair_terms(K, remat):
    def pair_terms(config, Z, graph, lr, q, h):
        e_zbl, _, _ = orig_pair_terms(config, Z, graph, None, q, h)
        g = lr.graph
        N, P = Z.shape[0], g.centers.shape[0]
        C = -(-(-(-P // K)) // 8) * 8
        qh = jnp.stack([q, h], -1)
        end = extent(g.mask)
        c = lr.multiplicity
        assert not np.ndim(c)

        def chunk(k):
            start = jnp.minimum(k * C, P - C)
            sl = lambda a: jax.lax.dynamic_slice_in_dim(a, start, C)  # noqa: E731
            ctr, nbr, d, m = sl(g.centers), sl(g.neighbors), sl(g.distances), sl(g.mask)
            m = m & (start + jax.lax.iota(jnp.int32, C) >= k * C)  # the last chunk overlaps the one before
            i, j = jnp.minimum(ctr, N - 1), jnp.minimum(nbr, N - 1)
            (q_i, h_i), (q_j, h_j) = qh[i].T, qh[j].T
            el = coulomb_pair_energy(d, q_i, q_j, config.lr_cutoff, config.electrostatic_energy_scale, c)
            el = jnp.where(m, el, 0.0)
            disp = dispersion_pair_energy(d, Z[i], Z[j], h_i, h_j, m, config.lr_cutoff, config.dispersion_damping,
                                          config.dispersion_energy_scale, c)
            ctr = jnp.where(m, ctr, N)
            return jax.ops.segment_sum(jnp.stack([el, disp], -1), ctr, N, indices_are_sorted=g.sorted)

        body = jax.checkpoint(chunk) if remat else chunk

        def step(acc, k):
            part = jax.lax.cond(k * C < end, body, lambda k: jnp.zeros((N, 2), acc.dtype), k)
            return acc + part, None

        acc, _ = jax.lax.scan(step, jnp.zeros((N, 2), q.dtype), jnp.arange(K))
        return e_zbl, acc[:, 0], acc[:, 1]
    return pair_terms


variants = sys.argv[1].split(",")
system = build_system(sys.argv[2] if len(sys.argv) > 2 else "water-1536")
comp = {}
for v in variants:
    if v == "default":
        models.so3lr_pair_terms = orig_pair_terms
    else:
        models.so3lr_pair_terms = scan_pair_terms(int(v[4:].rstrip("r")), v.endswith("r"))
    m = jax_models.build("so3lr", system, "float32")
    fn, args = program(m, "ef")
    t = time.perf_counter(); low = jax.jit(fn).lower(*args); tl = time.perf_counter() - t
    t = time.perf_counter()
    if os.environ.get("SERIAL"):  # compiled as the ASE calculator compiles small structures (serial loops)
        from so3krates_hk._cpu_runtime import serial_loops
        with serial_loops():
            cfn = low.compile()
    else:
        cfn = low.compile()
    tc = time.perf_counter() - t
    e, f = cfn(*args)
    print(f"{v:10s} lower {tl:.1f} s compile {tc:.1f} s  E {float(e):.6f}", flush=True)
    comp[v] = (cfn, args, np.asarray(f))
ref = comp[variants[0]][2]
for v, (_, _, f) in comp.items():
    print(f"{v:10s} max|dF| vs {variants[0]}: {np.abs(f - ref).max():.2e}")
times = alternate({v: (lambda c=c, a=a: c(*a)) for v, (c, a, _) in comp.items()}, int(os.environ.get("AB", 10)))
for v, ts in times.items():
    s = summary(ts)
    print(f"{v:10s} run median {s['median_ms']:.1f} ms ({s['min_ms']:.1f}-{s['max_ms']:.1f})")
print("jax", jax.__version__, "load", os.getloadavg()[0])
