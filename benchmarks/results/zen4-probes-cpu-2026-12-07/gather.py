import time, os, jax, jax.numpy as jnp, numpy as np
rng=np.random.default_rng(0)
N,P,F=1536,30384,128
x=jnp.asarray(rng.random((N,F),dtype=np.float32))
i=jnp.asarray(np.sort(rng.integers(0,N,P)).astype(np.int32)); j=jnp.asarray(rng.integers(0,N,P).astype(np.int32))
fs={'gather sorted':(jax.jit(lambda x,i:x[i]),(x,i)),'gather random':(jax.jit(lambda x,i:x[i]),(x,j)),
    'gather*2 fused':(jax.jit(lambda x,i,j:(x[i]*x[j]).sum(-1)),(x,i,j)),
    'copy (P,F)':(jax.jit(lambda y:y*2.0),(jnp.asarray(rng.random((P,F),dtype=np.float32)),)),
    'exp (P,F)':(jax.jit(lambda y:jnp.exp(y)),(jnp.asarray(rng.random((P,F),dtype=np.float32)),)),}
for f,a in fs.values(): jax.block_until_ready(f(*a))
res={k:[] for k in fs}
for _ in range(30):
    for k,(f,a) in fs.items():
        t=time.perf_counter(); jax.block_until_ready(f(*a)); res[k].append(time.perf_counter()-t)
print(jax.__version__, os.environ.get('XLA_FLAGS',''))
for k,v in res.items(): print(f"  {k:16s} {np.median(v)*1e3:.3f} ms (min {min(v)*1e3:.3f})")
