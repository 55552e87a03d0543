import time, jax, jax.numpy as jnp, numpy as np
rng=np.random.default_rng(0)
def bench(fs,n=30):
    for f,a in fs.values(): jax.block_until_ready(f(*a))
    res={k:[] for k in fs}
    for _ in range(n):
        for k,(f,a) in fs.items():
            t=time.perf_counter(); jax.block_until_ready(f(*a)); res[k].append(time.perf_counter()-t)
    for k,v in res.items(): print(f"  {jax.__version__} {k:34s} {np.median(v)*1e3:.3f} ms (min {min(v)*1e3:.3f})")
N=1536
fs={}
for P,w in [(30384,128),(30384,24),(622744,2),(622744,4)]:
    d=jnp.asarray(rng.random((P,w),dtype=np.float32)); i=jnp.asarray(np.sort(rng.integers(0,N,P)).astype(np.int32))
    fs[f"segsum sorted {P}x{w}"]=(jax.jit(lambda d,i:jax.ops.segment_sum(d,i,N)),(d,i))
    j=jnp.asarray(rng.integers(0,N,P).astype(np.int32))
    fs[f"segsum random {P}x{w}"]=(jax.jit(lambda d,i:jax.ops.segment_sum(d,i,N)),(d,j))
bench(fs)
