import time, sys, resource, collections
import jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, "tests")
import numpy as np
import lammps_cases as cases
from so3krates_hk.lammps.model import LocalModel, load_model
from so3krates_hk.lammps.decomposition import Decomposition
from test_lammps import _images
reps = int(sys.argv[1]); lrc = float(sys.argv[2])
R, Z, L = cases.water(reps)
spec = load_model("so3lr", lrc)
d = Decomposition(None)
model = LocalModel(spec, float64=True, decomposition=d)
T = collections.defaultdict(float)
def timed(name, fn):
    def f(*a, **k):
        t = time.time(); out = fn(*a, **k); jax.block_until_ready(out); T[name] += time.time() - t; return out
    return f
for n in ["_embed", "_layer", "_layer_vjp", "_heads", "_heads_vjp", "_pairs_vjp", "_backward", "_inputs"]:
    setattr(model, n, timed(n, getattr(model, n)))
images, owner = _images(R, L, spec.stage_cutoff + 0.1)
X = np.concatenate([R, images]); tags = np.concatenate([np.arange(len(R)), owner])
print("atoms", len(X), "owned", len(R), flush=True)
for k in range(2):
    T.clear()
    t = time.time(); e, f = model(X, Z[tags], len(R), tags); print("call", k, time.time()-t, e, "maxrss GB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1e6, flush=True)
    print({k: round(v, 2) for k, v in T.items()}, flush=True)
