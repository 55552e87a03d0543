import time, jax, jax.numpy as jnp, numpy as np
rng=np.random.default_rng(0)
N=1536; P=622744
d=jnp.asarray(rng.random((P,2),dtype=np.float32)); i=jnp.asarray(np.sort(rng.integers(0,N,P)).astype(np.int32)); j=jnp.asarray(rng.integers(0,N,P).astype(np.int32))
fs={'sorted':(jax.jit(lambda d,i:jax.ops.segment_sum(d,i,N)),(d,i)),
    'sorted, flag':(jax.jit(lambda d,i:jax.ops.segment_sum(d,i,N,indices_are_sorted=True)),(d,i)),
    'random':(jax.jit(lambda d,i:jax.ops.segment_sum(d,i,N)),(d,j)),
    'gather-grad sorted':(jax.jit(jax.grad(lambda x,i:(x[i]*d).sum())),(jnp.ones((N,2)),i)),
    'gather-grad random':(jax.jit(jax.grad(lambda x,i:(x[i]*d).sum())),(jnp.ones((N,2)),j)),}
for f,a in fs.values(): jax.block_until_ready(f(*a))
res={k:[] for k in fs}
for _ in range(30):
    for k,(f,a) in fs.items():
        t=time.perf_counter(); jax.block_until_ready(f(*a)); res[k].append(time.perf_counter()-t)
for k,v in res.items(): print(f"  {jax.__version__} {k:22s} {np.median(v)*1e3:.3f} ms (min {min(v)*1e3:.3f})")
