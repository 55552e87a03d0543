import time, jax, jax.numpy as jnp, numpy as np
P=18500
A=jnp.asarray(np.random.rand(P,160).astype(np.float32)); W=jnp.asarray(np.random.rand(160,128).astype(np.float32))
AT=A.T.copy() if hasattr(A.T,'copy') else jnp.array(A.T); WT=jnp.array(W.T)
fs={'row (P,160)@(160,128)':(jax.jit(lambda a,b:a@b),(A,W)),
    'col (128,160)@(160,P)':(jax.jit(lambda a,b:b@a),(AT,WT)),
    'row chunks 8x':(jax.jit(lambda a,b:jnp.concatenate([a[i*2313:(i+1)*2313]@b for i in range(8)])),(A[:8*2313],W)),
    'bwd (P,128)@(128,160)':(jax.jit(lambda a,b:a@b.T),(A[:,:128],W)),
}
for f,a in fs.values(): f(*a).block_until_ready()
res={k:[] for k in fs}
for r in range(15):
    for k,(f,a) in fs.items():
        t=time.perf_counter(); f(*a).block_until_ready(); res[k].append(time.perf_counter()-t)
for k,v in res.items(): print(jax.__version__,k,f"median {np.median(v)*1e3:.2f} min {min(v)*1e3:.2f} ms")
