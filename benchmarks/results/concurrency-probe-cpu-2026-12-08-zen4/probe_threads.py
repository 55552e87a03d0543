"""Two copies of the SO3LR e+f program, one per host CPU device, dispatched together: does the second core have
slack that data parallelism over pairs could use?"""
import os, sys, time, statistics
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
import jax
from concurrent.futures import ThreadPoolExecutor
from benchmarks.systems import build_system
from benchmarks import jax_models
sysname = sys.argv[1]; rounds = int(sys.argv[2])
devs = jax.devices()
assert len(devs) >= 2, devs
s = build_system(sysname)
b = jax_models.build("so3lr", s, "float32")
f = jax.jit(jax.value_and_grad(b.energy, argnums=1))
args = [jax.device_put((b.params, b.position, b.neighbors), d) for d in devs[:2]]
def call(a): p, x, nb = a; return f(p, x, **nb)
for a in args: jax.block_until_ready(call(a)); jax.block_until_ready(call(a))
one, two = [], []
for r in range(rounds):
    t = time.perf_counter(); jax.block_until_ready(call(args[0])); one.append(time.perf_counter() - t)
    t = time.perf_counter()
    with ThreadPoolExecutor(2) as ex:
        o = list(ex.map(lambda a: jax.block_until_ready(call(a)), args))
    two.append(time.perf_counter() - t)
m1, m2 = statistics.median(one), statistics.median(two)
print(jax.__version__, sysname, f"one call {1e3*m1:.1f} ms, two concurrent {1e3*m2:.1f} ms, throughput gain {2*m1/m2:.2f}x", flush=True)
