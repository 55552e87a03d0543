"""SO3LR energy+forces with the neighbour lists passed as arguments against bound in a closure (compile-time
constants of the program), with and without the optimisation barrier on the list indices (``graph.not_folded``).

    python bound_lists.py SYSTEM ROUNDS

One process: the three programs are built (the model anew for the variant without the barrier), compiled, then
called in alternation, ROUNDS calls each after one warm-up. Prints median (min) ms per call and compile seconds."""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
import jax  # noqa: E402

import so3krates_hk.graph as graph  # noqa: E402
from benchmarks import jax_models  # noqa: E402
from benchmarks.systems import build_system  # noqa: E402

name, rounds = sys.argv[1], int(sys.argv[2])
s = build_system(name)
calls, compile_s, outs = {}, {}, {}
barrier = graph.not_folded
for label in ("lists as arguments", "lists bound, barrier", "lists bound, no barrier"):
    graph.not_folded = barrier if "no barrier" not in label else (lambda x: x)
    b = jax_models.build("so3lr", s, "float32")  # traced anew: the factory's inner jit caches per model
    nb = b.neighbors
    t = time.perf_counter()
    if label == "lists as arguments":
        c = jax.jit(jax.value_and_grad(lambda R, nb, b=b: b.energy(b.params, R, **nb))).lower(b.position, nb).compile()
        calls[label] = lambda c=c, b=b, nb=nb: c(b.position, nb)
    else:
        c = jax.jit(jax.value_and_grad(lambda R, b=b, nb=nb: b.energy(b.params, R, **nb))).lower(b.position).compile()
        calls[label] = lambda c=c, b=b: c(b.position)
    compile_s[label] = time.perf_counter() - t
    outs[label] = jax.block_until_ready(calls[label]())
graph.not_folded = barrier
times = {k: [] for k in calls}
for _ in range(rounds):
    for k, f in calls.items():
        t = time.perf_counter()
        jax.block_until_ready(f())
        times[k].append(time.perf_counter() - t)
ref = outs["lists as arguments"]
for k in calls:
    de = abs(float(outs[k][0] - ref[0]))
    df = float(abs(outs[k][1] - ref[1]).max())
    print(f"JAX {jax.__version__} {name} {k:24s} compile {compile_s[k]:5.1f} s  median {1e3 * statistics.median(times[k]):8.1f} ms"
          f" (min {1e3 * min(times[k]):8.1f})  |dE| {de:.1e} max|dF| {df:.1e}  load {os.getloadavg()[0]:.2f}", flush=True)
