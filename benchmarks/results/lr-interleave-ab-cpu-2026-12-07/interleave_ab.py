"""A/B in one process, SO3LR energy+forces (float32, lists outside the timing): the long-range list in jax-md's order
(sorted by owner atom; 'sorted') against the order dealt across atoms (`graph.interleaved_order`; 'interleaved').
Both programs are compiled in this process, then called in alternation.
Usage: python interleave_ab.py SYSTEM ROUNDS   (from this folder, tuned malloc)"""
import os, statistics, sys, time
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '../../..')))
import jax, numpy as np
import so3krates_hk.graph as G
from benchmarks.systems import build_system
from benchmarks import jax_models

s = build_system(sys.argv[1]); rounds = int(sys.argv[2])
interleaved = G.interleaved_order
identity = lambda num_slots, stop, ways=8: np.arange(num_slots)  # noqa: E731


def compiled(order):
    G.interleaved_order = order  # read when the program is traced
    b = jax_models.build('so3lr', s, 'float32')
    c = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors).compile()
    G.interleaved_order = interleaved
    return b, c


variants = {'sorted': compiled(identity), 'interleaved': compiled(interleaved)}
ref = None; ts = {k: [] for k in variants}
for k, (b, c) in variants.items():
    e, g = c(b.params, b.position, **b.neighbors); jax.block_until_ready(g)
    if ref is None: ref = (float(e), np.asarray(g))
    print(k, 'E', float(e), 'dE', float(e) - ref[0], 'max dF', float(np.abs(np.asarray(g) - ref[1]).max()), flush=True)
for k, (b, c) in variants.items():
    for _ in range(2): jax.block_until_ready(c(b.params, b.position, **b.neighbors))
for r in range(rounds):
    for k, (b, c) in variants.items():
        t = time.perf_counter(); jax.block_until_ready(c(b.params, b.position, **b.neighbors)); ts[k].append(time.perf_counter() - t)
for k, v in ts.items():
    print(jax.__version__, s.name, k, 'median %.1f min %.1f max %.1f ms' % (1e3 * statistics.median(v), 1e3 * min(v), 1e3 * max(v)), flush=True)
print(jax.__version__, s.name, 'sorted/interleaved %.3f' % (statistics.median(ts['sorted']) / statistics.median(ts['interleaved'])), 'load', os.getloadavg()[0], flush=True)
