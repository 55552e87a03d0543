"""XLA:CPU compiler options A/B on SO3LR e+f, one process: the same lowered program compiled once per option set, timed
interleaved.

    python benchmarks/xla_flags_sweep.py water-1536 so3lr 5 '{"base": null, "vw512": {"xla_cpu_prefer_vector_width": 512}}'

Prints median/min/max per variant, the ratio to the first, and the energy/force change against the first.
"""
import sys, time, os, statistics, json
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jax
from benchmarks.systems import build_system
from benchmarks import jax_models
from benchmarks.alternate import alternate
sysname = sys.argv[1]; model = sys.argv[2]; rounds = int(sys.argv[3]); variants = json.loads(sys.argv[4])
s = build_system(sysname)
b = jax_models.build(model, s, "float32")
low = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors)
cs = {}
ref = None
for name, opts in variants.items():
    t = time.perf_counter()
    try:
        c = low.compile(compiler_options=opts) if opts else low.compile()
    except Exception as e:
        print(name, "FAILED", str(e)[:200]); continue
    ct = time.perf_counter() - t
    e, g = c(b.params, b.position, **b.neighbors); jax.block_until_ready(g)
    if ref is None: ref = (float(e), g)
    cs[name] = (c, [], ct, float(e) - ref[0], float(abs(g - ref[1]).max()))
times = alternate({name: (lambda c=c: c(b.params, b.position, **b.neighbors)) for name, (c, *_) in cs.items()}, rounds,
                  warmup=0)  # each was called once above, for its energy and forces
for name, (c, ts, *_) in cs.items():
    ts.extend(times[name])
base = statistics.median(next(iter(cs.values()))[1])
for name, (c, ts, ct, de, df) in cs.items():
    print(jax.__version__, sysname, model, "%-12s" % name, "compile %.1f s" % ct, "median %.1f min %.1f max %.1f ms  ratio %.2f  dE %.1e dF %.1e" % (1e3*statistics.median(ts), 1e3*min(ts), 1e3*max(ts), base/statistics.median(ts), de, df), flush=True)
