"""Where the compile time of one program goes: XLA's own trace events (passes, codegen, fusion compiles), and any
program execution that overlaps the compile, from ``jax.profiler``.

    python -m benchmarks.compile_trace SYSTEM {ef,md} {wait,nowait,shape} [TOP]

``ef``: SO3LR energy+forces. ``md``: the MD loop program of ``compile_probe`` (jax-md NVT Langevin, 10 steps), whose
state comes from a jitted ``init``: ``wait`` blocks on it before the compile, ``nowait`` does not (JAX dispatches it
asynchronously, so it runs while the MD program compiles, as a script that does not wait would have it), ``shape``
only traces it for shapes (nothing executes). Prints lowering and compile wall time and the TOP (default 30) trace
events by summed duration (events nest, so the sums overlap); ``ThunkExecutor::Execute`` (JAX 0.10.x) is program
execution. Float32; run with the tuned malloc settings.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name, what, mode = argv[0], argv[1], argv[2]
    top = int(argv[3]) if len(argv) > 3 else 30
    import jax

    from benchmarks import jax_models
    from benchmarks.compile_probe import program
    from benchmarks.systems import build_system

    fn, args = program(jax_models.build("so3lr", build_system(name), "float32"), what, mode)
    t = time.perf_counter()
    low = jax.jit(fn).lower(*args)
    lower_s = time.perf_counter() - t
    d = tempfile.mkdtemp()
    with jax.profiler.trace(d, create_perfetto_trace=True):
        t = time.perf_counter()
        low.compile()
        compile_s = time.perf_counter() - t
    print(f"{name} {what} {mode}  JAX {jax.__version__}  lower {lower_s:.1f} s  compile {compile_s:.2f} s  "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    trace = json.load(gzip.open(glob.glob(os.path.join(d, "**", "perfetto_trace.json.gz"), recursive=True)[0]))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X":
            total[e["name"]] += e.get("dur", 0) / 1e6
            count[e["name"]] += 1
    for k, v in total.most_common(top):
        print(f"  {v:8.2f} s  {count[k]:6d}  {k[:110]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
