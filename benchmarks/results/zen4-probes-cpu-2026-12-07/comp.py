import os, time, sys
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '../../..')))
import jax
from benchmarks import jax_models
from benchmarks.systems import build_system
from benchmarks.compile_probe import program
fn,args=program(jax_models.build("so3lr", build_system("water-1536"), "float32"), "ef")
low=jax.jit(fn).lower(*args)
open(os.environ.get('READY_FILE', os.devnull), 'w').write('x')
t=time.perf_counter(); c=low.compile(); print('compile', time.perf_counter()-t, flush=True)
