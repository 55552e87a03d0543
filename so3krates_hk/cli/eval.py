"""Evaluate SO3LR (or a committee) on every structure of a data set: predictions, error metrics, parity plots.

    so3krates-hk eval data.extxyz                               # shipped SO3LR, float32
    so3krates-hk eval data.extxyz --model finetuned.npz -o results.npz --float64
    so3krates-hk eval data.extxyz --model m0.npz --model m1.npz --model m2.npz --model m3.npz   # committee

DATA is any file ASE reads (extxyz with energies, forces, charges and charge/multiplicity in the info line).
Structures are evaluated in batches, several structures per model call (one graph holding them side by side),
padded to one size, so one program compiles. Written: the predictions (``-o``, .npz: per-structure energy, dipole, stress, committee spread;
per-atom forces, charges, Hirshfeld ratios concatenated, split by ``num_atoms``; the references as ``ref_*``), the
metrics (MAE and RMSE of energy per atom, forces, charges, dipoles, Hirshfeld ratios where the file has them;
printed, and saved as JSON beside the predictions) and a parity plot (PNG).
"""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = "evaluate SO3LR on a data set: predictions, MAE/RMSE, parity plots"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA", help="structure file ASE reads (all frames are evaluated)")
    p.add_argument("--model", action="append", default=None, metavar="so3lr|PARAMS.npz",
                   help="'so3lr' (the shipped weights) or a parameter file; repeat for a committee (default: so3lr)")  # fmt: skip
    p.add_argument("-o", "--output", default="eval_results.npz", help="predictions (.npz); metrics and plot beside it")
    p.add_argument("--plot", default=None, help="parity plot PNG (default: <output stem>_parity.png)")
    p.add_argument("--float64", action="store_true", help="double precision (default float32)")
    p.add_argument("--batch-atoms", type=int, default=1536,
                   help="atoms per model call: consecutive structures are evaluated together up to this many atoms")  # fmt: skip
    p.add_argument("--index", default=":", help="frames to read, ASE index syntax (e.g. ':100', '::10')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import json
    import os

    import numpy as np

    from so3krates_hk.errors import UserError, require

    require("ase", "ase", "so3krates-hk eval")
    if args.batch_atoms < 1:
        raise UserError(f"--batch-atoms must be positive, got {args.batch_atoms}")
    if not args.output.endswith(".npz"):
        raise UserError(f"--output must end in .npz, got {args.output!r}")
    from so3krates_hk.evaluate import evaluate, parity_plot
    from so3krates_hk.io import atomic_path

    models = args.model or ["so3lr"]
    result = evaluate(args.data, model=models if len(models) > 1 else models[0],
                      dtype="float64" if args.float64 else "float32", batch_atoms=args.batch_atoms,
                      progress=not args.no_progress, index=args.index)  # fmt: skip
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with atomic_path(args.output, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **result.arrays())
    stem = args.output[: -len(".npz")]
    summary = dict(structures=len(result.predictions), compilations=result.num_compilations,
                   seconds=result.seconds, structures_per_second=result.structures_per_second,
                   batches=result.batches, capacity=result.capacity, committee=len(models) if len(models) > 1 else None,
                   metrics=result.metrics)  # fmt: skip
    with atomic_path(stem + "_metrics.json", suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
    plot = args.plot or stem + "_parity.png"
    drawn = parity_plot(result, plot)
    print(f"{len(result.predictions)} structures, {result.batches} batch(es), {result.num_compilations} "
          f"compilation(s), {result.structures_per_second:.1f} structures/s ({result.seconds:.2f} s, compilation "
          "included)")  # fmt: skip
    for key, m in result.metrics.items():
        label = "energy/atom" if key == "energy" else key
        print(f"  {label:<17} MAE {m['mae']:.5g}  RMSE {m['rmse']:.5g} {m['unit']}  ({m['count']} structures)")
    if not result.metrics:
        print("  (the file carries no reference energies, forces, charges, dipoles or Hirshfeld ratios)")
    print(f"wrote {args.output}, {stem}_metrics.json" + (f", {plot}" if drawn else ""))
    return 0
