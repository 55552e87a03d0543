# so3krates-torch 0.2.1, pretrained SO3LR, float32: every output of the model compiled with
# torch.compile(backend=BACKEND) against the eager model on the same batch (max abs difference;
# c1/c2: first and second compiled call).
#   PYTHON inductor_vs_eager.py inductor|aot_eager|eager SYSTEM.npz [simdlen1]
# SYSTEM.npz: positions, species, box (< 0: free space), as benchmarks/samerun.py writes it (dha here).
import sys
from importlib import resources

import ase
import numpy as np
import torch

if len(sys.argv) > 3 and sys.argv[3] == "simdlen1":
    import torch._inductor.config as ic

    ic.cpp.simdlen = 1  # inductor without its vector code

from so3krates_torch.calculator.so3 import TorchkratesCalculator

s = np.load(sys.argv[2])
atoms = ase.Atoms(numbers=s["species"], positions=s["positions"], pbc=False)
atoms.info["charge"] = 0.0
atoms.info["total_spin"] = 0.0
path = str(resources.files("so3krates_torch") / "pretrained" / "so3lr" / "so3lr.model")
calc = TorchkratesCalculator(model_paths=path, r_max_lr=12.0, default_dtype="float32",
                             dispersion_energy_cutoff_lr_damping=2.0, device="cpu")
model = calc.models[0]
model.eval()
batch = calc._atoms_to_batch(atoms)


def run(fn):
    out = fn(batch.clone().to_dict(), compute_stress=False)
    return {k: (v.detach().double().numpy() if torch.is_tensor(v) else v) for k, v in out.items()}


e = run(model)
e2 = run(model)
print("eager repeat dE", float(np.abs(e["energy"] - e2["energy"]).max()))
c = torch.compile(model, dynamic=False, backend=sys.argv[1])
o1 = run(c)
o2 = run(c)
for k in e:
    if isinstance(e[k], np.ndarray) and e[k].dtype.kind == "f":
        d1 = float(np.abs(o1[k] - e[k]).max()) if getattr(o1.get(k), "shape", None) == e[k].shape else "n/a"
        d2 = float(np.abs(o2[k] - e[k]).max()) if getattr(o2.get(k), "shape", None) == e[k].shape else "n/a"
        print(k, e[k].shape, "c1", d1, "c2", d2)
