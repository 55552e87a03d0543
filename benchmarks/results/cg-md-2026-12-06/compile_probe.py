"""Why the compiled Allegro is slower than eager: 40 calls of torch.compile(model) on cg-chain-100 (edges
dropped two by two, so shapes change as in MD), call times in ms, then torch._dynamo counters (graph breaks,
recompiles). Run from the repository root with the Allegro venv, PYTHONPATH=. and OMP_WAIT_POLICY=PASSIVE."""
import time, numpy as np, torch
from benchmarks.systems import build_system
from benchmarks.torch_models import _build_allegro, _neighbors
from nequip.data import AtomicDataDict as K
s = build_system("cg-chain-100")
atoms, i, j, S = _neighbors(s, 10.0)
N=s.num_atoms
types = sorted(set(int(z) for z in s.species)); ti = np.searchsorted(types, s.species)
settings, make_data, ef, model = _build_allegro(s, "cg", "float32", types, ti, len(i)/N)
cm = torch.compile(model)
from torch._dynamo.utils import counters
ts=[]
for k in range(40):
    m = len(i) - 2*k
    d = make_data(atoms, i[:m], j[:m], S[:m])
    t=time.perf_counter(); out=cm(dict(d)); ts.append(time.perf_counter()-t)
print(" ".join(f"{1e3*x:.0f}" for x in ts))
print({k: dict(v) for k, v in counters.items() if v})
