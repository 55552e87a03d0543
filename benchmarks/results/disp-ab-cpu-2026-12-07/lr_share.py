"""Share of the long-range terms: SO3LR water-1536 e+f with and without them (so3lr_pair_terms called without the
long-range pairs), both compiled in one process, 12 rounds interleaved. Usage: PYTHONPATH=. python lr_share.py water-1536 12"""
import statistics, sys, time, jax, numpy as np
import so3krates_hk.models as M
from benchmarks.systems import build_system
from benchmarks import jax_models
s = build_system(sys.argv[1]); rounds = int(sys.argv[2])
orig = M.so3lr_pair_terms
def no_lr(config, Z, graph, lr, q, h):
    return orig(config, Z, graph, None, q, h)
def lower(fn):
    M.so3lr_pair_terms = fn
    b = jax_models.build('so3lr', s, 'float32')
    c = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors).compile()
    M.so3lr_pair_terms = orig
    return b, c
variants = {'with_lr': lower(orig), 'without_lr': lower(no_lr)}
ts = {k: [] for k in variants}
for k, (b, c) in variants.items():
    for _ in range(2): jax.block_until_ready(c(b.params, b.position, **b.neighbors))
for r in range(rounds):
    for k, (b, c) in variants.items():
        t = time.perf_counter(); jax.block_until_ready(c(b.params, b.position, **b.neighbors)); ts[k].append(time.perf_counter() - t)
for k, v in ts.items():
    print(jax.__version__, s.name, k, 'median %.1f min %.1f ms' % (1e3 * statistics.median(v), 1e3 * min(v)), flush=True)
