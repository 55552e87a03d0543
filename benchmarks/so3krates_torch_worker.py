"""so3krates-torch (the PyTorch SO3LR, PyPI ``so3krates-torch``, pretrained SO3LR shipped) timed as ours is.

Run by :mod:`benchmarks.samerun` with the python of a venv that holds torch and so3krates-torch (no JAX needed):

    python benchmarks/so3krates_torch_worker.py SYSTEM.npz OUT.json --repeats 10 [--mode eager|compiled]

The structure comes from the driver as an ``.npz`` (positions, species, box). The neighbour lists (short and long
range) are built once by so3krates-torch's own data pipeline, outside the timed region, as ours are; each timed call
is ``model(batch)`` with forces from autograd (a fresh clone of the batch is made before the timer starts). Modes:
``eager``, and ``compiled`` (``torch.compile`` of the model, default inductor backend, ``dynamic=False``; its first
calls compile and are excluded). In compiled mode the eager model runs first on the same batch and the compiled one
must reproduce its energy and forces to float32 rounding (``PARITY_ENERGY_REL``, ``PARITY_FORCE_ABS``) before any
call is timed. Should ``torch.compile`` fail, ``torch.jit.script`` and then ``torch.jit.trace`` are tried; the
exact error of every failed attempt is recorded (``compile_errors``) and ``compile_backend`` names what ran.

With ``--md-steps N``: NVT Langevin MD through so3krates-torch's ASE calculator, which rebuilds its lists every step.
In compiled mode the calculator's model is replaced by ``torch.compile(model, dynamic=True)``, because the pair
counts change from step to step. Before that replacement, the compiled model must reproduce eager on the first
structure, under the same parity bounds. Its first call, the compile, is reported as ``compile_s``. Three warm-up
steps, against one in eager mode, absorb the recompiles of the first shape changes. Only torch.compile is tried
here.
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


# compiled against eager, same batch: |ΔE| ≤ 1e-6 |E| (a few float32 ulps of the total energy) and
# max |ΔF| ≤ 1e-4 eV/Å (float32 rounding of a reordered sum over ~10^2-10^3 edge terms of O(1-10) eV/Å)
PARITY_ENERGY_REL = 1e-6
PARITY_FORCE_ABS = 1e-4


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
    extra: dict = {}

    def call():
        b = batch.clone().to_dict()
        t, tc = time.perf_counter(), time.process_time()
        out = fn(b, compute_stress=False)
        f = out["forces"].detach()
        cpu.append(time.process_time() - tc)
        return time.perf_counter() - t, out["energy"].detach(), f

    cpu: list = []

    if args.mode == "compiled":
        _, e_ref, f_ref = call()  # the eager model, the parity reference
        e_ref, f_ref = float(e_ref.sum()), np.asarray(f_ref, dtype=np.float64).reshape(-1, 3)
        errors, parity = {}, {}
        for backend in ("torch.compile (inductor)", "torch.jit.script", "torch.jit.trace"):
            try:
                if backend.startswith("torch.compile"):
                    fn = torch.compile(model, dynamic=False)
                elif backend == "torch.jit.script":
                    fn = torch.jit.script(model)
                else:
                    traced = torch.jit.trace(_NoStress(model), (batch.clone().to_dict(),), strict=False,
                                             check_trace=False)  # fmt: skip
                    fn = _traced_call(traced)
                t, tc = time.perf_counter(), time.process_time()
                _, e_c, f_c = call()
                compile_s, compile_cpu_s = time.perf_counter() - t, time.process_time() - tc
            except Exception as exc:  # noqa: BLE001 - every failure is recorded with its exact message
                errors[backend] = f"{type(exc).__name__}: {exc}"[-2000:]
                print(f"{backend} failed: {errors[backend]}", file=sys.stderr)
                fn = model
                continue
            de = abs(float(e_c.sum()) - e_ref)
            df = float(np.abs(np.asarray(f_c, dtype=np.float64).reshape(-1, 3) - f_ref).max())
            ok = de <= PARITY_ENERGY_REL * abs(e_ref) and df <= PARITY_FORCE_ABS
            parity[backend] = dict(energy_eager=e_ref, energy_compiled=float(e_c.sum()), energy_abs_diff=de,
                                   max_force_diff_ev_a=df, energy_rel_tol=PARITY_ENERGY_REL,
                                   force_abs_tol=PARITY_FORCE_ABS, ok=ok, compile_s=compile_s)  # fmt: skip
            print(f"{backend}: compiled vs eager |dE| {de:.3g} eV (E {e_ref:.6g}), max |dF| {df:.3g} eV/A",
                  file=sys.stderr)  # fmt: skip
            if ok:
                break
            errors[backend] = (f"parity against eager failed: abs dE {de:.4g} eV (tolerance "
                               f"{PARITY_ENERGY_REL * abs(e_ref):.3g}), max abs dF {df:.4g} eV/A (tolerance "
                               f"{PARITY_FORCE_ABS:g})")  # fmt: skip
            fn = model
        else:
            with open(args.out + ".failed.json", "w") as fh:
                json.dump(dict(compile_errors=errors, parity_vs_eager=parity), fh, indent=1)
            raise SystemExit("no compiled mode reproduces eager: " + json.dumps(errors))
        extra = dict(compile_backend=backend, compile_errors=errors, compile_s=compile_s, compile_cpu_s=compile_cpu_s,
                     parity_vs_eager=parity)

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
        lr_damping=args.lr_damping, dtype=str(next(model.parameters()).dtype), **extra,
    )  # fmt: skip
    with open(args.out, "w") as fh:
        json.dump(res, fh)
    return 0


def _NoStress(model):
    """The model with ``compute_stress=False`` bound: a traced function takes tensors (and dicts of them) only."""
    import torch

    class NoStress(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, data):
            return self.m(data, compute_stress=False)

    return NoStress(model)


def _traced_call(traced):
    def fn(data, compute_stress=False):
        return traced(data)

    return fn


def _md(args, atoms, calc) -> int:
    """ASE's Langevin through so3krates-torch's calculator: each step rebuilds the batch (lists included)."""
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    extra: dict = {}
    if args.mode == "compiled":  # the calculator's model under torch.compile; pair counts change from step to step
        import torch

        model = calc.models[0]
        model.eval()
        batch = calc._atoms_to_batch(atoms)
        ref = model(batch.clone().to_dict(), compute_stress=False)
        compiled = torch.compile(model, dynamic=True)
        t = time.perf_counter()
        out = compiled(batch.clone().to_dict(), compute_stress=False)
        compile_s = time.perf_counter() - t
        de = abs(float(out["energy"].detach().sum()) - float(ref["energy"].detach().sum()))
        df = float((out["forces"].detach() - ref["forces"].detach()).abs().max())
        e_ref = float(ref["energy"].detach().sum())
        if not (de <= PARITY_ENERGY_REL * abs(e_ref) and df <= PARITY_FORCE_ABS):
            raise SystemExit(f"torch.compile(dynamic=True) does not reproduce eager: |dE| {de:.3g} eV, max |dF| {df:.3g}")
        calc.models[0] = compiled
        extra = dict(compile_s=compile_s, parity_vs_eager=dict(energy_abs_diff=de, force_max_abs_diff=df))
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(atoms, timestep=0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs,
                   rng=np.random.default_rng(1))  # fmt: skip
    dyn.run(3 if args.mode == "compiled" else 1)  # warm (compiled: shapes change in the first steps, which may recompile)
    t = time.perf_counter()
    dyn.run(args.md_steps)
    wall = time.perf_counter() - t
    import torch

    mode = "torch.compile, dynamic shapes" if args.mode == "compiled" else "eager"
    res = dict(side=f"so3krates-torch ({mode}, ASE calculator)", md_steps=args.md_steps, md_wall_s=wall, **extra,
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
