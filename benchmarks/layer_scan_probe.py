"""Probe (rejected formulation): SO3krates's interaction layers as one ``lax.scan`` body instead of unrolled.

    python -m benchmarks.layer_scan_probe SYSTEM default,scan        (REPS=10: timed calls per variant)

XLA compiles each unrolled layer anew, so a scan over the layers (the body compiled once) should shorten the compile
of large programs. Here, at apply time only and with the same parameter tree, each layer's parameters are read
through a Haiku getter (on a one-atom call whose output is dropped), stacked, and fed to a scan over a separately
transformed layer. Prints compile time, |ΔE|, max |ΔF| against the unrolled model, and interleaved run times.
Measured 2026-12-06 (``benchmarks/NOTES.md``): compile 9.1 → 5.4 s on water-1536 with JAX 0.4.37 but run time +22 %
there and +57 % on JAX 0.10.2 (the scan's stacked residuals and lost fusion across layers); not adopted.
"""
import os
import statistics
import sys
import time

import haiku as hk
import jax
import jax.numpy as jnp

import so3krates_hk.models as models
from so3krates_hk.layers.attention import EdgeFeatures

Orig = models.SO3krates
orig_call = Orig.__call__


def scanned_call(self, species, graph, node_mask, total_charge=0.0, num_unpaired_electrons=0.0):
    cfg = self.config
    if hk.running_init() or cfg.num_layers < 2:
        return orig_call(self, species, graph, node_mask, total_charge, num_unpaired_electrons)
    dtype = graph.vectors.dtype
    edges = models.edge_features(graph, cfg, self.r_cutoff)
    x, ev, inter = models.initial_features(cfg, self.num_species, species, node_mask, total_charge,
                                           num_unpaired_electrons, dtype, self.global_sum)
    T = cfg.num_layers
    # capture every layer's parameters through a getter, on a one-atom, one-pair call (its output is dropped)
    tiny = EdgeFeatures(*(a[:1] for a in edges[:5]), num_nodes=1, sorted=edges.sorted, extent=None)
    captured = []
    for t in range(T):
        vals = {}
        def getter(next_getter, value, context, vals=vals, t=t):
            mod = context.module_name.split(f"layers_{t}", 1)[1]
            vals[(mod, context.name)] = value
            return next_getter(value)
        with hk.custom_getter(getter):
            models.interaction_layer(cfg, self.avg_num_neighbors, t)(x[:1], ev[:1], tiny)
        captured.append(vals)
    keys = sorted(captured[0])
    stacked = {k: jnp.stack([c[k] for c in captured]) for k in keys}
    layer_tf = hk.transform(lambda x, ev, e: models.interaction_layer(cfg, self.avg_num_neighbors, 0)(x, ev, e))

    def inner_params(p):
        out = {}
        for (mod, name), v in p.items():
            out.setdefault("layers_0" + mod, {})[name] = v
        return out

    def body(carry, p):
        x, ev = carry
        x, ev = layer_tf.apply(inner_params(p), None, x, ev, edges)
        return (x, ev), (x, ev)
    (x, ev), (xs, evs) = jax.lax.scan(body, (x, ev), stacked)
    for t in range(T):
        inter[f"x_layer{t}"] = xs[t]
        inter[f"ev_layer{t}"] = evs[t]
    return models.SO3kratesOutput(x, ev, edges, inter)


class Scanned(Orig):  # a subclass, so that Haiku scopes the modules it creates under ``so3krates``
    __call__ = scanned_call


def main() -> None:
    from benchmarks import jax_models
    from benchmarks.systems import build_system

    name = sys.argv[1]
    variants = sys.argv[2].split(",")
    s = build_system(name)
    res = {}
    for v in variants:
        models.SO3krates = Scanned if v == "scan" else Orig
        m = jax_models.build("so3lr", s, "float32")
        ef = jax.jit(jax.value_and_grad(lambda p, r, nb, m=m: m.energy(p, r, **nb), argnums=1))
        args = (m.params, m.position, m.neighbors)
        t = time.perf_counter(); low = ef.lower(*args); tl = time.perf_counter() - t
        t = time.perf_counter(); c = low.compile(); tc = time.perf_counter() - t
        out = jax.block_until_ready(c(*args))
        res[v] = (c, out, tl, tc, args)
    e0, f0 = res[variants[0]][1]
    for v in variants:
        e, f = res[v][1]
        d_e, d_f = abs(float(e - e0)), float(jnp.abs(f - f0).max())
        print(v, f"lower {res[v][2]:.1f} s compile {res[v][3]:.1f} s  dE {d_e:.2e} dF {d_f:.2e}")
    times = {v: [] for v in variants}
    for _ in range(int(os.environ.get("REPS", 10))):
        for v in variants:
            c, args = res[v][0], res[v][4]
            t = time.perf_counter()
            jax.block_until_ready(c(*args))
            times[v].append(time.perf_counter() - t)
    for v in variants:
        med, low = 1e3 * statistics.median(times[v]), 1e3 * min(times[v])
        print(v, name, jax.__version__, f"run median {med:.1f} ms (min {low:.1f})")


if __name__ == "__main__":
    main()
