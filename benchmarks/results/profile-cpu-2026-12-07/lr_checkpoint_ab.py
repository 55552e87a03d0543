import sys, time, statistics, jax, numpy as np
sys.path.insert(0, '/work/main')
import so3krates_hk.models as M
from benchmarks.systems import build_system
from benchmarks import jax_models
s = build_system(sys.argv[1]); rounds = int(sys.argv[2])
orig_c, orig_d = M.coulomb_pair_energy, M.dispersion_pair_energy
def lower():
    b = jax_models.build('so3lr', s, 'float32')
    return b, jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors).compile()
variants = {}
M.coulomb_pair_energy, M.dispersion_pair_energy = orig_c, orig_d
variants['base'] = lower()
pol = jax.checkpoint_policies.nothing_saveable
def ck_c(d, qi, qj, *rest):
    return jax.checkpoint(lambda d, qi, qj: orig_c(d, qi, qj, *rest), policy=pol)(d, qi, qj)
def ck_d(d, zi, zj, hi, hj, mask, *rest):
    return jax.checkpoint(lambda d, hi, hj: orig_d(d, zi, zj, hi, hj, mask, *rest), policy=pol)(d, hi, hj)
M.coulomb_pair_energy, M.dispersion_pair_energy = ck_c, ck_d
variants['ckpt'] = lower()
M.coulomb_pair_energy, M.dispersion_pair_energy = orig_c, orig_d
ref = None; ts = {k: [] for k in variants}
for k, (b, c) in variants.items():
    e, g = c(b.params, b.position, **b.neighbors); jax.block_until_ready(g)
    if ref is None: ref = (float(e), np.asarray(g))
    print(k, 'dE', float(e) - ref[0], 'dF', float(np.abs(np.asarray(g) - ref[1]).max()))
for r in range(rounds):
    for k, (b, c) in variants.items():
        t = time.perf_counter(); jax.block_until_ready(c(b.params, b.position, **b.neighbors)); ts[k].append(time.perf_counter() - t)
for k, v in ts.items(): print(jax.__version__, s.name, k, 'median %.1f min %.1f ms' % (1e3 * statistics.median(v), 1e3 * min(v)))
