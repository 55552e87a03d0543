"""Probe: the long-range pairs' positions gathered together with q and h, in one table of rows of 8
[R_x, R_y, R_z, q, h, 0, 0, 0], inside the long-range segments. The package instead builds the long-range graph's
vectors in the factory (two gathers of positions over the whole list, rows of 4) and gathers [q, h] in the segments
(two more, rows of 2); in the gradient each gather is a scatter. Here there are two gathers and two scatters, and
the distances, the cutoff mask and the stand-in vectors of masked entries are formed per segment, so the list's
trailing padding skips them too. SO3LR e+f, float32, one process: compile per variant, then run in alternation.

    python lrtable.py default,table [SYSTEM]     (AB=rounds)
"""
import os, sys, time
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
import functools
import jax
import jax.numpy as jnp
import numpy as np
from benchmarks import jax_models
from benchmarks.alternate import alternate, summary
from benchmarks.systems import build_system
from benchmarks.compile_probe import program
import so3krates_hk.factory as factory
import so3krates_hk.models as models
from so3krates_hk.graph import safe_geometry
from so3krates_hk.layers.segments import extent, segment_bounds, sum_over_segments
from so3krates_hk.physics.dispersion import dispersion_pair_energy
from so3krates_hk.physics.electrostatics import coulomb_pair_energy

orig_pair_terms = models.so3lr_pair_terms
orig_build_graph = factory.build_graph
STASH = {}


def stashing_build_graph(displacement_fn, position, neighbor, cutoff, node_mask=None, capacity=None, pairs=False,
                         **kw):
    g = orig_build_graph(displacement_fn, position, neighbor, cutoff, node_mask, capacity, pairs, **kw)
    if not pairs:  # the long-range list: keep what the pair terms need to form its geometry themselves
        STASH.update(disp=functools.partial(displacement_fn, **kw), position=position, node_mask=node_mask)
    return g


def table_pair_terms(config, Z, graph, lr, q, h):
    e_zbl, _, _ = orig_pair_terms(config, Z, graph, None, q, h)
    g = lr.graph
    N = Z.shape[0]
    R, node_mask, disp = STASH["position"], STASH["node_mask"], STASH["disp"]
    c = lr.multiplicity
    assert not np.ndim(c)
    table = jnp.concatenate([R, q[:, None], h[:, None], jnp.zeros((N, 3), R.dtype)], axis=1)  # rows of 8
    cut2 = config.lr_cutoff ** 2

    def lr_segment(start, stop):
        ctr, nbr = g.centers[start:stop], g.neighbors[start:stop]
        i, j = jnp.minimum(ctr, N - 1), jnp.minimum(nbr, N - 1)
        ti, tj = table[i], table[j]
        vec = jax.vmap(disp)(tj[:, :3], ti[:, :3])
        valid = (ctr < N) & (nbr < N) & (ctr != nbr) & node_mask[i] & node_mask[j]
        d2 = jnp.sum(vec**2, -1)
        m = valid & (d2 > 0) & (d2 < cut2)
        _, d = safe_geometry(vec, m, config.lr_cutoff)
        q_i, h_i, q_j, h_j = ti[:, 3], ti[:, 4], tj[:, 3], tj[:, 4]
        el = jnp.where(m, coulomb_pair_energy(d, q_i, q_j, config.lr_cutoff, config.electrostatic_energy_scale, c), 0.0)
        dsp = dispersion_pair_energy(d, Z[i], Z[j], h_i, h_j, m, config.lr_cutoff, config.dispersion_damping,
                                     config.dispersion_energy_scale, c)
        ctr = jnp.where(m, ctr, N)
        return tuple(jax.ops.segment_sum(jnp.stack([el, dsp], -1), ctr, N, indices_are_sorted=g.sorted).T)

    end = extent(g.centers < N)  # the list's own padding (index N) is a tail
    e_el, e_disp = sum_over_segments(lr_segment, segment_bounds(g.centers.shape[0]), end)
    return e_zbl, e_el, e_disp


variants = sys.argv[1].split(",")
system = build_system(sys.argv[2] if len(sys.argv) > 2 else "water-1536")
comp = {}
for v in variants:
    base = v.startswith("default")  # "default2" etc.: a second copy of the same variant
    models.so3lr_pair_terms = orig_pair_terms if base else table_pair_terms
    factory.build_graph = orig_build_graph if base else stashing_build_graph
    m = jax_models.build("so3lr", system, "float32")
    fn, args = program(m, "ef")
    t = time.perf_counter(); low = jax.jit(fn).lower(*args); tl = time.perf_counter() - t
    t = time.perf_counter(); cfn = low.compile(); tc = time.perf_counter() - t
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
