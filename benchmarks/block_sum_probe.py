"""The attention's per-pair block sum Σ_{a ∈ head} q_i[a] w_ij[a] k_j[a], alone, in several formulations: how fast
XLA:CPU runs it in this process (water-1536's pair count, F = 128, 4 heads, float32).

    python benchmarks/block_sum_probe.py            # then again with XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=

Found with it (JAX 0.10.2): the reduction ran 2.5x slower through YNNPACK fusions than through XLA's own code, which
led to switching YNNPACK off on jaxlib 0.8.1-0.10.x (``so3krates_hk._cpu_runtime``).
"""
import time, statistics, numpy as np, jax, jax.numpy as jnp
N, P, F, H = 1536, 30384, 128, 4
rng = np.random.default_rng(0)
I = jnp.asarray(np.sort(rng.integers(0, N, P)).astype(np.int32)); J = jnp.asarray(rng.integers(0, N, P).astype(np.int32))
q = jnp.asarray(rng.standard_normal((N, F)), jnp.float32); k = jnp.asarray(rng.standard_normal((N, F)), jnp.float32)
w = jnp.asarray(rng.standard_normal((P, F)), jnp.float32)
ind = jnp.asarray(np.repeat(np.eye(H), F // H, axis=0), jnp.float32)
fns = {
 'reshape-sum': lambda q, k, w: (q[I] * w * k[J]).reshape(P, H, -1).sum(-1),
 'indicator dot': lambda q, k, w: (q[I] * w * k[J]) @ ind,
 'einsum 3-way': lambda q, k, w: jnp.einsum('phw,phw,phw->ph', q[I].reshape(P, H, -1), w.reshape(P, H, -1), k[J].reshape(P, H, -1)),
 'both dirs reshape-sum': lambda q, k, w: ((q[I] * w * k[J]).reshape(P, H, -1).sum(-1), (q[J] * w * k[I]).reshape(P, H, -1).sum(-1)),
 'both dirs indicator': lambda q, k, w: ((q[I] * w * k[J]) @ ind, (q[J] * w * k[I]) @ ind),
 'both dirs concat indicator': lambda q, k, w: (jnp.concatenate([q[I] * w * k[J], q[J] * w * k[I]], -1) @ jnp.kron(jnp.eye(2), ind)),
}
comp = {kk: jax.jit(f).lower(q, k, w).compile() for kk, f in fns.items()}
ref = None
for kk, c in comp.items(): jax.block_until_ready(c(q, k, w))
samples = {kk: [] for kk in comp}
for r in range(30):
    for kk, c in comp.items():
        t = time.perf_counter(); jax.block_until_ready(c(q, k, w)); samples[kk].append(time.perf_counter() - t)
print(jax.__version__)
for kk, v in samples.items():
    print(f'{kk:30s} {statistics.median(v)*1e3:7.3f} ms  min {min(v)*1e3:7.3f}')
