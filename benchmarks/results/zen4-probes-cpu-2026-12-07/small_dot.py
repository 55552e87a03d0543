import time, jax, jax.numpy as jnp, numpy as np, os
rng=np.random.default_rng(0)
def bench(fs,n=200):
    for f,a in fs.values(): jax.block_until_ready(f(*a))
    res={k:[] for k in fs}
    for _ in range(n):
        for k,(f,a) in fs.items():
            t=time.perf_counter(); jax.block_until_ready(f(*a)); res[k].append(time.perf_counter()-t)
    for k,v in res.items(): print(f"  {jax.__version__} {k:28s} {np.median(v)*1e3:.3f} ms (min {min(v)*1e3:.3f})")
fs={}
for (m,k,n) in [(759,160,128),(759,128,160),(759,32,128),(2255,160,128)]:
    a=jnp.asarray(rng.random((m,k),dtype=np.float32)); b=jnp.asarray(rng.random((k,n),dtype=np.float32))
    fs[f"{(m,k,n)}"]=(jax.jit(lambda a,b:a@b),(a,b))
fs['noop add (759,128)']=(jax.jit(lambda a:a+1.0),(jnp.asarray(rng.random((759,128),dtype=np.float32)),))
bench(fs)
