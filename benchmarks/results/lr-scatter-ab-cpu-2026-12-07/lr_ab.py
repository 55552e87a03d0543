"""A/B in one process, SO3LR energy+forces (float32): the long-range pair terms and the position gathers as at
commit 0b6736b ('before') against the working tree: q and h gathered together, Coulomb and dispersion summed in one
scatter, positions gathered as rows of 4 ('after').
Usage: python lr_ab.py SYSTEM ROUNDS   (with /tmp/lr/old holding old_models.py, old_graph.py from 0b6736b)"""
import statistics, sys, time
sys.path.insert(0, '/tmp/lr/old')
import jax, jax.numpy as jnp, numpy as np
import so3krates_hk.models as M
import so3krates_hk.graph as G
import old_models, old_graph
from so3krates_hk.physics.dispersion import dispersion_pair_energy
from so3krates_hk.physics.electrostatics import coulomb_pair_energy
from benchmarks.systems import build_system
from benchmarks import jax_models

s = build_system(sys.argv[1]); rounds = int(sys.argv[2])
new = dict(pair_terms=M.so3lr_pair_terms, entries=G._list_entries)

def lower(pair_terms, entries):
    M.so3lr_pair_terms, G._list_entries = pair_terms, entries
    b = jax_models.build('so3lr', s, 'float32')
    c = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors).compile()
    M.so3lr_pair_terms, G._list_entries = new['pair_terms'], new['entries']
    return b, c

variants = {
    'before': lower(old_models.so3lr_pair_terms, old_graph._list_entries),
    'after': lower(new['pair_terms'], new['entries']),
}
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
b0 = statistics.median(ts['before'])
print(' '.join('before/%s %.3f' % (k, b0 / statistics.median(v)) for k, v in ts.items() if k != 'before'))
