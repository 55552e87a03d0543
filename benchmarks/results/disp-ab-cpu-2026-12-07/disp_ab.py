"""A/B in one process, SO3LR energy+forces (float32): the dispersion pair energy as at commit 9ae016c ('before':
α^(1/7) as a pow, twice; C8, C10 through γ) against the working tree ('after': exp(log α / 7) once, C8 and C10 from
s² directly). Usage: python disp_ab.py SYSTEM ROUNDS (with /tmp/lr/old/old_dispersion.py from 9ae016c)."""
import statistics, sys, time
sys.path.insert(0, '/tmp/lr/old')
import jax, numpy as np
import so3krates_hk.models as M
import old_dispersion
from benchmarks.systems import build_system
from benchmarks import jax_models

s = build_system(sys.argv[1]); rounds = int(sys.argv[2])
new = M.dispersion_pair_energy

def lower(fn):
    M.dispersion_pair_energy = fn
    b = jax_models.build('so3lr', s, 'float32')
    c = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors).compile()
    M.dispersion_pair_energy = new
    return b, c

variants = {'before': lower(old_dispersion.dispersion_pair_energy), 'after': lower(new)}
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
print('before/after %.3f' % (statistics.median(ts['before']) / statistics.median(ts['after'])))
