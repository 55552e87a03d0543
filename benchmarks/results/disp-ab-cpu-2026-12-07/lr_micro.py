"""The long-range terms alone, one process: value and gradient with respect to (positions, q, h) of the sum of
per-pair energies on water's long-range list (random q, h). Variants: both terms ('both'), Coulomb ('el') or
dispersion ('disp') alone, a trivial per-pair function ('geom': list geometry, gathers and scatters only), and the
dispersion rewritten as in disp_fast.py (with the package's switch, or a one-exponential switch).
Run from the repository root with PYTHONPATH=. : python lr_micro.py water-1536 20"""
import statistics, sys, time
import os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disp_fast
import jax, jax.numpy as jnp, numpy as np
from so3krates_hk.physics.dispersion import dispersion_pair_energy
from so3krates_hk.physics.electrostatics import coulomb_pair_energy
from so3krates_hk.graph import build_graph, segment_sum
from benchmarks.systems import build_system
from benchmarks import jax_models
s = build_system(sys.argv[1]); rounds = int(sys.argv[2])
b = jax_models.build('so3lr', s, 'float32')
nl = b.neighbors['neighbor_lr']; pos = b.position; N = pos.shape[0]
Z = jnp.asarray(s.Z if hasattr(s, 'Z') else b.species)
rng = np.random.default_rng(0)
q = jnp.asarray(rng.normal(0, 0.3, N), jnp.float32); h = jnp.asarray(rng.uniform(0.6, 1.0, N), jnp.float32)
def reverse_version(d, q_i, q_j, h_i, h_j, z_i, z_j, mask, c):
    el = jnp.where(mask, coulomb_pair_energy(d, q_i, q_j, 12.0, 4.0, c), 0.0)
    return el, dispersion_pair_energy(d, z_i, z_j, h_i, h_j, mask, 12.0, 2.0, 1.2, c)
def jvp_version(*a):
    return long_range_pair_energies(*a, 12.0, 4.0, 2.0, 1.2)
def el_only(d, q_i, q_j, h_i, h_j, z_i, z_j, mask, c):
    el = jnp.where(mask, coulomb_pair_energy(d, q_i, q_j, 12.0, 4.0, c), 0.0)
    return el, jnp.zeros_like(el)
def disp_only(d, q_i, q_j, h_i, h_j, z_i, z_j, mask, c):
    e = dispersion_pair_energy(d, z_i, z_j, h_i, h_j, mask, 12.0, 2.0, 1.2, c)
    return e, jnp.zeros_like(e)
def disp_fast_only(d, q_i, q_j, h_i, h_j, z_i, z_j, mask, c):
    e = disp_fast.dispersion_fast(d, z_i, z_j, h_i, h_j, mask, 12.0, 2.0, 1.2, c)
    return e, jnp.zeros_like(e)
def disp_fast_oldswitch(d, q_i, q_j, h_i, h_j, z_i, z_j, mask, c):
    from so3krates_hk.layers.cutoff import smooth_switch
    e = disp_fast.dispersion_fast(d, z_i, z_j, h_i, h_j, mask, 12.0, 2.0, 1.2, c, switch=smooth_switch)
    return e, jnp.zeros_like(e)
def geom_only(d, q_i, q_j, h_i, h_j, z_i, z_j, mask, c):
    e = jnp.where(mask, d * q_i * q_j + h_i * h_j, 0.0)
    return e, jnp.zeros_like(e)
def make(fn):
    def energy(pos, q, h, nl):
        g = build_graph(b.displacement, pos, nl, 12.0)
        i, j = jnp.minimum(g.centers, N - 1), jnp.minimum(g.neighbors, N - 1)
        el, disp = fn(g.distances, q[i], q[j], h[i], h[j], Z[i], Z[j], g.mask, 1.0)
        return jnp.sum(segment_sum(el, g) + segment_sum(disp, g))
    return jax.jit(jax.value_and_grad(energy, argnums=(0, 1, 2))).lower(pos, q, h, nl).compile()
variants = {'both': make(reverse_version), 'el': make(el_only), 'disp': make(disp_only), 'geom': make(geom_only),
            'disp_rewritten': make(disp_fast_oldswitch), 'disp_rewritten_one_exp_switch': make(disp_fast_only)}
print('slots', nl.idx.shape)
ref = None; ts = {k: [] for k in variants}
for k, c in variants.items():
    e, g = c(pos, q, h, nl)
    if ref is None: ref = (float(e), g)
    print(k, 'E', float(e), 'max dgrad', [float(jnp.abs(a - r).max()) for a, r in zip(g, ref[1])])
for r in range(rounds):
    for k, c in variants.items():
        t = time.perf_counter(); jax.block_until_ready(c(pos, q, h, nl)); ts[k].append(time.perf_counter() - t)
for k, v in ts.items():
    print(jax.__version__, s.name, k, 'median %.1f min %.1f max %.1f ms' % (1e3 * statistics.median(v), 1e3 * min(v), 1e3 * max(v)))
if len(sys.argv) > 3:
    txt = variants[sys.argv[3]].as_text()
    open('/tmp/lr/hlo_%s_%s.txt' % (sys.argv[3], jax.__version__), 'w').write(txt)
