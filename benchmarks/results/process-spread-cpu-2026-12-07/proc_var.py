"""One process: SO3LR e+f of a benchmark system compiled as the ASE calculator compiles it (serial loops), 3 warm-up
and 30 timed calls; prints the median. Run it several times to see the spread between processes:
    for k in 1 2 3 4 5 6; do PYTHONPATH=. python proc_var.py dha; done            (and under setarch $(uname -m) -R)"""
import sys, time, statistics, jax
from benchmarks.systems import build_system
from benchmarks import jax_models
from so3krates_hk.cpu_tuning import serial_loops
s = build_system(sys.argv[1])
b = jax_models.build('so3lr', s, 'float32')
f = jax.jit(jax.value_and_grad(b.energy, argnums=1))
with serial_loops(s.num_atoms if hasattr(s, 'num_atoms') else len(b.position)):
    c = f.lower(b.params, b.position, **b.neighbors).compile()
for _ in range(3): jax.block_until_ready(c(b.params, b.position, **b.neighbors))
ts = []
for _ in range(30):
    t = time.perf_counter(); jax.block_until_ready(c(b.params, b.position, **b.neighbors)); ts.append(time.perf_counter() - t)
print('%s %s median %.2f min %.2f' % (jax.__version__, s.name, 1e3 * statistics.median(ts), 1e3 * min(ts)), flush=True)
