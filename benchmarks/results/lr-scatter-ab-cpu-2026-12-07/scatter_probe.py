import time, statistics, jax, jax.numpy as jnp, numpy as np
P, N = 759440, 1536
rng = np.random.default_rng(0)
idx = jnp.asarray(np.sort(rng.integers(0, N, P)).astype(np.int32))
def t(f, *a):
    c = jax.jit(f).lower(*a).compile(); c(*a); ts = []
    for _ in range(15):
        s = time.perf_counter(); jax.block_until_ready(c(*a)); ts.append(time.perf_counter() - s)
    return 1e3 * statistics.median(ts)
for k in (1, 2, 4, 6, 8, 16):
    x = jnp.ones((P, k) if k > 1 else (P,), jnp.float32)
    print(jax.__version__, 'scatter width', k, '%.2f ms' % t(lambda x, i: jnp.zeros((N,) + x.shape[1:], x.dtype).at[i].add(x), x, idx),
          'sorted %.2f ms' % t(lambda x, i: jnp.zeros((N,) + x.shape[1:], x.dtype).at[i].add(x, indices_are_sorted=True), x, idx),
          'gather %.2f ms' % t(lambda y, i: y[i], jnp.ones((N,) + x.shape[1:]), idx))
