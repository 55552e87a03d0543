import os, time, sys, statistics
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '../../..')))
import jax
from benchmarks import jax_models
from benchmarks.systems import build_system
from benchmarks.compile_probe import program
import so3krates_hk.models as models
import so3krates_hk.layers.attention as attention
from so3krates_hk.layers import segments
orig = segments.segment_bounds
one = lambda n, *a, **k: (0, n)
variants = sys.argv[1].split(',')
system = build_system(sys.argv[2] if len(sys.argv) > 2 else "water-1536")
comp = {}
for v in variants:
    models.segment_bounds = one if v in ('lronly_off', 'none') else orig
    attention.segment_bounds = one if v in ('attnonly_off', 'none') else orig
    fn, args = program(jax_models.build("so3lr", system, "float32"), "ef")
    t = time.perf_counter(); low = jax.jit(fn).lower(*args); tl = time.perf_counter() - t
    t = time.perf_counter(); c = low.compile(); tc = time.perf_counter() - t
    print(f"{v:14s} lower {tl:.1f} s compile {tc:.1f} s", flush=True)
    comp[v] = (c, args)
times = {v: [] for v in comp}
for v, (c, a) in comp.items(): jax.block_until_ready(c(*a))
for _ in range(int(os.environ.get('AB', 10))):
    for v, (c, a) in comp.items():
        t = time.perf_counter(); jax.block_until_ready(c(*a)); times[v].append(time.perf_counter() - t)
for v, ts in times.items(): print(f"{v:14s} run median {1e3*statistics.median(ts):.1f} ms ({1e3*min(ts):.1f}-{1e3*max(ts):.1f})")
print('load', os.getloadavg()[0])
