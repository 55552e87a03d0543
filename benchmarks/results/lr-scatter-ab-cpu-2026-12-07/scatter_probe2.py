import time, statistics, jax, jax.numpy as jnp, numpy as np
N = 1536
rng = np.random.default_rng(0)
def t(f, *a):
    c = jax.jit(f).lower(*a).compile(); c(*a); ts = []
    for _ in range(15):
        s = time.perf_counter(); jax.block_until_ready(c(*a)); ts.append(time.perf_counter() - s)
    return 1e3 * statistics.median(ts)
for P, k in ((30384, 128), (30384, 24), (30384, 32), (37050, 1), (101160, 3), (101160, 4)):
    idx = jnp.asarray(np.sort(rng.integers(0, N, P)).astype(np.int32))
    x = jnp.ones((P, k), jnp.float32)
    print(jax.__version__, P, k, 'scatter %.3f ms' % t(lambda x, i: jnp.zeros((N, k), x.dtype).at[i].add(x), x, idx),
          'gather %.3f ms' % t(lambda y, i: y[i], jnp.ones((N, k)), idx), 'elementwise %.3f' % t(lambda x: jnp.exp(x) * 2 + x, x))
