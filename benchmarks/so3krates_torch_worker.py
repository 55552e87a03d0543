"""so3krates-torch (the PyTorch SO3LR, PyPI ``so3krates-torch``, pretrained SO3LR shipped) timed as ours is.

Run by :mod:`benchmarks.samerun` with the python of a venv that holds torch and so3krates-torch (no JAX needed):

    python benchmarks/so3krates_torch_worker.py SYSTEM.npz OUT.json --repeats 10 [--mode eager|compiled]

The structure comes from the driver as an ``.npz`` (positions, species, box). The neighbour lists (short and long
range) are built once by so3krates-torch's own data pipeline, outside the timed region, as ours are; each timed call
is ``model(batch)`` with forces from autograd (a fresh clone of the batch is made before the timer starts). Modes:
``eager``, and ``compiled`` (``torch.compile`` of the model, default inductor backend, ``dynamic=False``; its first
calls compile and are excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

# run as a script, this folder comes first on sys.path, and its profile.py would shadow the standard library's
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("system", help="structure .npz (positions, species, box; box < 0 for free space)")
    p.add_argument("out", help="result .json")
    p.add_argument("--repeats", type=int, default=10, help="timed energy+forces calls")
    p.add_argument("--mode", choices=("eager", "compiled"), default="eager", help="eager, or torch.compile")
    p.add_argument("--md-steps", type=int, default=0,
                   help="instead of timing calls: ASE Langevin NVT (300 K, 0.5 fs) through the calculator, this many steps")
    p.add_argument("--r-max-lr", type=float, default=12.0, help="long-range cutoff (Å), SO3LR's 12")
    p.add_argument("--lr-damping", type=float, default=2.0, help="dispersion damping width (Å), SO3LR's 2")
    args = p.parse_args(argv)

    import ase
    import numpy as np
    import torch
    from importlib import resources

    import so3krates_torch
    from so3krates_torch.calculator.so3 import TorchkratesCalculator

    s = np.load(args.system)
    box = float(s["box"])
    if box > 0:
        atoms = ase.Atoms(numbers=s["species"], positions=s["positions"], cell=np.eye(3) * box, pbc=True)
    else:
        atoms = ase.Atoms(numbers=s["species"], positions=s["positions"], pbc=False)
    atoms.info["charge"] = 0.0
    atoms.info["total_spin"] = 0.0
    path = str(resources.files("so3krates_torch") / "pretrained" / "so3lr" / "so3lr.model")
    calc = TorchkratesCalculator(model_paths=path, r_max_lr=args.r_max_lr, default_dtype="float32",
                                 dispersion_energy_cutoff_lr_damping=args.lr_damping, device="cpu")  # fmt: skip
    if args.md_steps:
        return _md(args, atoms, calc)
    model = calc.models[0]
    model.eval()
    t = time.perf_counter()
    batch = calc._atoms_to_batch(atoms)  # neighbour lists (short and long range), outside the timed region
    nbr_s = time.perf_counter() - t
    fn = model
    if args.mode == "compiled":
        fn = torch.compile(model, dynamic=False)

    def call():
        b = batch.clone().to_dict()
        t, tc = time.perf_counter(), time.process_time()
        out = fn(b, compute_stress=False)
        f = out["forces"].detach()
        cpu.append(time.process_time() - tc)
        return time.perf_counter() - t, out["energy"].detach(), f

    cpu: list = []

    t = time.perf_counter()
    first, e, f = call()
    first_wall = time.perf_counter() - t
    warm = call()[0]  # a second warm-up (compiled mode may recompile once)
    times = [call()[0] for _ in range(args.repeats)]
    cpu = cpu[-args.repeats :]
    res = dict(
        side=f"so3krates-torch ({args.mode})", mode=args.mode, times_s=times, median_s=statistics.median(times),
        min_s=min(times), max_s=max(times), cpu_times_s=cpu, first_call_s=first_wall, second_call_s=warm, nbr_build_s=nbr_s,
        energy=float(e.sum()), forces=np.asarray(f, dtype=np.float64).reshape(-1, 3).tolist(),
        num_atoms=len(atoms), versions=dict(torch=torch.__version__, so3krates_torch=getattr(
            so3krates_torch, "__version__", None) or _dist_version("so3krates-torch")),
        torch_threads=torch.get_num_threads(), r_max=float(calc.r_max), r_max_lr=args.r_max_lr,
        lr_damping=args.lr_damping, dtype=str(next(model.parameters()).dtype),
    )  # fmt: skip
    with open(args.out, "w") as fh:
        json.dump(res, fh)
    return 0


def _md(args, atoms, calc) -> int:
    """ASE's Langevin through so3krates-torch's calculator: each step rebuilds the batch (lists included)."""
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(atoms, timestep=0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs,
                   rng=np.random.default_rng(1))  # fmt: skip
    dyn.run(1)  # warm
    t = time.perf_counter()
    dyn.run(args.md_steps)
    wall = time.perf_counter() - t
    import torch

    res = dict(side="so3krates-torch (eager, ASE calculator)", md_steps=args.md_steps, md_wall_s=wall,
               md_step_s=wall / args.md_steps, atom_steps_per_s=len(atoms) * args.md_steps / wall,
               finite=bool(np.isfinite(atoms.positions).all()), num_atoms=len(atoms),
               versions=dict(torch=torch.__version__, so3krates_torch=_dist_version("so3krates-torch")),
               integrator="ASE Langevin 300 K, 0.5 fs, friction 0.01/fs; the calculator rebuilds its lists every step")
    with open(args.out, "w") as fh:
        json.dump(res, fh)
    return 0


def _dist_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
