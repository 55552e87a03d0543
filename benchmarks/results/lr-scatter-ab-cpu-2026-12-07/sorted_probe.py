import time, statistics, jax, jax.numpy as jnp, numpy as np
N, P, F = 1536, 30384, 128
rng = np.random.default_rng(0)
idx = jnp.asarray(np.sort(rng.integers(0, N, P)).astype(np.int32))
x = jnp.asarray(rng.normal(size=(P, F)), jnp.float32)
fs = {'unsorted': lambda x, i: jnp.zeros((N, F), x.dtype).at[i].add(x),
      'sorted': lambda x, i: jnp.zeros((N, F), x.dtype).at[i].add(x, indices_are_sorted=True),
      'segment_sum_sorted': lambda x, i: jax.ops.segment_sum(x, i, N, indices_are_sorted=True)}
cs = {n: jax.jit(f).lower(x, idx).compile() for n, f in fs.items()}
ts = {n: [] for n in cs}
for n, c in cs.items(): c(x, idx)
for r in range(40):
    for n, c in cs.items():
        s = time.perf_counter(); jax.block_until_ready(c(x, idx)); ts[n].append(time.perf_counter() - s)
print(jax.__version__, ' '.join('%s %.3f' % (n, 1e3 * statistics.median(v)) for n, v in ts.items()))
