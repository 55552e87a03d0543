"""Probe: more segments of the pair axes (smaller working sets per segment) against the package's one cut at 0.82 P.
SO3LR e+f, float32, one process: compile per variant, then run in alternation.

    python cuts.py "0.82;0.41,0.82;0.27,0.55,0.82" [SYSTEM]     (AB=rounds)

Each variant is a comma list of cut fractions (``segments.SEGMENT_FRACTIONS``), read when the program is traced."""
import os, sys, time
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
import jax
import numpy as np
from benchmarks import jax_models
from benchmarks.alternate import alternate, summary
from benchmarks.systems import build_system
from benchmarks.compile_probe import program
from so3krates_hk.layers import segments

variants = sys.argv[1].split(";")
system = build_system(sys.argv[2] if len(sys.argv) > 2 else "water-1536")
comp = {}
for v in variants:
    segments.SEGMENT_FRACTIONS = tuple(float(x) for x in v.split(",") if x)
    m = jax_models.build("so3lr", system, "float32")
    fn, args = program(m, "ef")
    t = time.perf_counter(); low = jax.jit(fn).lower(*args); tl = time.perf_counter() - t
    t = time.perf_counter(); cfn = low.compile(); tc = time.perf_counter() - t
    e, f = cfn(*args)
    print(f"{v:16s} lower {tl:.1f} s compile {tc:.1f} s  E {float(e):.6f}", flush=True)
    comp[v] = (cfn, args, np.asarray(f))
ref = comp[variants[0]][2]
for v, (_, _, f) in comp.items():
    print(f"{v:16s} max|dF| vs {variants[0]}: {np.abs(f - ref).max():.2e}")
times = alternate({v: (lambda c=c, a=a: c(*a)) for v, (c, a, _) in comp.items()}, int(os.environ.get("AB", 10)))
for v, ts in times.items():
    s = summary(ts)
    print(f"{v:16s} run median {s['median_ms']:.1f} ms ({s['min_ms']:.1f}-{s['max_ms']:.1f})")
print("jax", jax.__version__, "load", os.getloadavg()[0])
