import time, statistics, jax, jax.numpy as jnp, numpy as np
rng = np.random.default_rng(0)
def bench(cs, args, rounds=30):
    ts = {n: [] for n in cs}
    for n, c in cs.items(): c(*args)
    for r in range(rounds):
        for n, c in cs.items():
            s = time.perf_counter(); jax.block_until_ready(c(*args)); ts[n].append(time.perf_counter() - s)
    return ' '.join('%s %.3f' % (n, 1e3 * statistics.median(v)) for n, v in ts.items())
for N, P in ((148, 2255), (1536, 30384)):
    i = jnp.asarray(np.sort(rng.integers(0, N, P)).astype(np.int32)); j = jnp.asarray(rng.integers(0, N, P).astype(np.int32))
    tabs = [jnp.asarray(rng.normal(size=(N, 128)), jnp.float32) for _ in range(5)] + [jnp.asarray(rng.normal(size=(N, 24)), jnp.float32)]
    w = jnp.asarray(rng.normal(size=(P, 128)), jnp.float32)
    def sep(tabs, i, j):  # gather each at i and j, combine, sum: value and grad wrt tables
        def f(tabs):
            a = [t[i] for t in tabs]; b = [t[j] for t in tabs]
            s = sum(jnp.sum(x * y * w) for x, y in zip(a[:5], b[:5])) + jnp.sum(a[5] * b[5])
            return s
        return jax.value_and_grad(f)(tabs)
    def merged(tabs, i, j):
        def f(tabs):
            T = jnp.concatenate(tabs, -1); A = T[i]; B = T[j]
            s = sum(jnp.sum(A[:, 128*k:128*(k+1)] * B[:, 128*k:128*(k+1)] * w) for k in range(5)) + jnp.sum(A[:, 640:] * B[:, 640:])
            return s
        return jax.value_and_grad(f)(tabs)
    cs = {n: jax.jit(f).lower(tabs, i, j).compile() for n, f in (('separate', sep), ('merged', merged))}
    print(jax.__version__, N, P, bench(cs, (tabs, i, j)))
