import os
import time, sys
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '../../..')))
import jax, os
import so3krates_hk.factory as factory
if os.environ.get('INLINE'):
    orig_jit = jax.jit
    import haiku as hk
    _b = factory._build
    def patched(model, *a, **k):
        init_fn, apply_fn = _b(model, *a, **k)
        transformed = hk.without_apply_rng(hk.transform(model))
        import inspect
        sig = inspect.signature(model)
        def apply2(params, *args, **kwargs):
            leaves = jax.tree_util.tree_leaves((params, args, kwargs))
            if any(isinstance(x, jax.core.Tracer) for x in leaves):
                bound = sig.bind(*args, **kwargs); bound.apply_defaults()
                return transformed.apply(params, *bound.args, **bound.kwargs)
            return apply_fn(params, *args, **kwargs)
        for k_ in ('config','max_edges','count_edges'): setattr(apply2, k_, getattr(apply_fn, k_, None))
        apply2.__signature__ = apply_fn.__signature__
        return init_fn, apply2
    factory._build = patched
from benchmarks import jax_models
from benchmarks.systems import build_system
from benchmarks.compile_probe import program
fn,args=program(jax_models.build("so3lr", build_system(sys.argv[1]), "float32"), "ef")
t=time.perf_counter(); tr=jax.jit(fn).trace(*args); t1=time.perf_counter(); low=tr.lower(); t2=time.perf_counter()
c=low.compile(); t3=time.perf_counter()
e,g=c(*args)
print(jax.__version__, os.environ.get('INLINE','jit'), 'trace %.2f lower %.2f compile %.2f'%(t1-t,t2-t1,t3-t2), float(e), float(abs(g).sum()))
