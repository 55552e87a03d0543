"""Allegro (cg-chain-100, the cg_md settings) eager against nequip's AOTInductor package, one process, 5 calls each,
twice in alternation. Run once with OMP_WAIT_POLICY=PASSIVE and once without it:
    PYTHONPATH=. [OMP_WAIT_POLICY=PASSIVE] V/bin/python aoti_omp_probe.py
"""
import time, os, tempfile, numpy as np, torch, sys
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
from benchmarks.systems import build_system
from benchmarks.torch_models import _build_allegro, _neighbors
from benchmarks.jax_models import WIDTHS
from nequip.data import AtomicDataDict as K
from nequip.nn.compile import DictInputOutputWrapper
from nequip.scripts._compile_utils import COMPILE_TARGET_DICT
from nequip.utils.aot import aot_export_model
s = build_system("cg-chain-100")
atoms, i, j, S = _neighbors(s, WIDTHS["cg"]["r_cutoff"])
types = sorted(set(int(z) for z in s.species)); type_idx = np.searchsorted(types, s.species)
torch.manual_seed(0)
settings, make_data, ef, model = _build_allegro(s, "cg", "float32", types, type_idx, len(i) / len(s.species))
d = make_data(atoms, i, j, S)
target = COMPILE_TARGET_DICT["ase"]
Dim = torch.export.dynamic_shapes.Dim
bm = target["batch_map_settings"]({"graph": Dim("num_frames", min=2, max=torch.inf), "node": Dim("num_nodes", min=2, max=torch.inf), "edge": Dim("num_edges", min=2, max=torch.inf)})
dd = target["data_settings"](dict(d))
path = os.path.join(tempfile.mkdtemp(), "m.nequip.pt2")
t = time.perf_counter(); aot_export_model(model, "cpu", target["input"], target["output"], dd, bm, path); print("export", time.perf_counter() - t)
aoti = DictInputOutputWrapper(torch._inductor.aoti_load_package(path), target["input"], target["output"])
for name, f in (("eager", model), ("aoti", aoti), ("eager", model), ("aoti", aoti)):
    f(dict(d))
    ts = []
    for _ in range(5):
