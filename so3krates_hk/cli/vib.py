"""Harmonic frequencies and normal modes of a structure from the exact SO3LR Hessian, optionally after relaxation.

    so3krates-hk vib molecule.xyz                       # Hessian at the given geometry
    so3krates-hk vib molecule.xyz --relax --fmax 1e-3   # relax with ASE's BFGS first
    so3krates-hk vib molecule.xyz --model finetuned.npz -o vib.json --jmol modes.xyz

STRUCTURE is a file ASE reads (first frame; charge and multiplicity from its info line) or a bundled structure
(atat, dha, bb, water). The Hessian comes from automatic differentiation (float64), not finite differences.
Frequencies are in cm⁻¹; imaginary ones are printed with an "i". ``-o`` writes ASE's VibrationsData (JSON, read
back with ``ase.vibrations.VibrationsData.read``), ``--jmol`` the modes for Jmol, ``--relaxed`` the geometry used.
"""

from __future__ import annotations

import argparse

NAME = "vib"
HELP = "harmonic frequencies and normal modes from the exact Hessian (optional relaxation)"
OPTIMIZERS = ("BFGS", "LBFGS", "FIRE", "BFGSLineSearch")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("structure", metavar="STRUCTURE", help="structure file ASE reads, or atat, dha, bb, water")
    p.add_argument("--model", default="so3lr", metavar="so3lr|PARAMS.npz", help="the shipped SO3LR or a parameter file")
    p.add_argument("--charge", type=float, default=None, help="total charge Q, e (default: from the file, else 0)")
    p.add_argument("--multiplicity", type=float, default=None,
                   help="spin multiplicity 2S+1 (default: from the file, else 1)")  # fmt: skip
    p.add_argument("--relax", action="store_true", help="relax the geometry first (ASE optimiser, SO3LR forces)")
    p.add_argument("--optimizer", default="BFGS", choices=OPTIMIZERS, help="ASE optimiser for --relax")
    p.add_argument("--fmax", type=float, default=1e-3, help="--relax stops when every force is below this, eV/Å")
    p.add_argument("--steps", type=int, default=1000, help="--relax gives up after this many steps")
    p.add_argument("-o", "--output", default=None, help="write the VibrationsData here (.json)")
    p.add_argument("--jmol", default=None, help="write the normal modes for Jmol here (.xyz)")
    p.add_argument("--relaxed", default=None, help="write the (relaxed) geometry here (.xyz)")


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import UserError, require

    require("ase", "ase", "so3krates-hk vib")
    if args.fmax <= 0 or args.steps < 1:
        raise UserError("--fmax must be positive and --steps at least 1")
    if args.output and not args.output.endswith(".json"):
        raise UserError(f"--output must end in .json, got {args.output!r}")
    import ase.io
    import ase.optimize
    import numpy as np
    from ase import Atoms

    from so3krates_hk.ase import SO3LRCalculator
    from so3krates_hk.committee import load_model
    from so3krates_hk.hessian import hessian, vibrations
    from so3krates_hk.md.run import load_structure

    s = load_structure(args.structure)
    atoms = Atoms(numbers=s.atomic_numbers, positions=s.positions, cell=s.cell, pbc=s.cell is not None,
                  info=dict(s.info) if hasattr(s, "info") and s.info else {})  # fmt: skip
    if args.charge is not None:
        atoms.info["charge"] = args.charge
    if args.multiplicity is not None:
        atoms.info["multiplicity"] = args.multiplicity
        atoms.info.pop("spin", None)
    params, kwargs, _ = load_model(args.model)
    calc = SO3LRCalculator(params=params, dtype="float64", **{k: v for k, v in kwargs.items()})
    atoms.calc = calc
    if args.relax:
        opt = getattr(ase.optimize, args.optimizer)(atoms, logfile=None)
        converged = opt.run(fmax=args.fmax, steps=args.steps)
        fmax = float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max())
        print(f"relaxed with {args.optimizer}: {opt.get_number_of_steps()} steps, max force {fmax:.2e} eV/Å"
              + ("" if converged else f" (NOT converged to {args.fmax:g} eV/Å)"))  # fmt: skip
    else:
        fmax = float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max())
        if fmax > 1e-2:
            print(f"note: max force {fmax:.2e} eV/Å; not a stationary point, rotations are not zero modes "
                  "(use --relax)")  # fmt: skip
    H = hessian(atoms, model=params, dtype="float64", **kwargs)
    vib = vibrations(atoms, H)
    freqs = vib.get_frequencies()
    print(f"{'mode':>4}  {'frequency / cm⁻¹':>16}")
    for k, f in enumerate(freqs):
        text = f"{abs(f.imag):.2f}i" if abs(f.imag) > abs(f.real) else f"{f.real:.2f}"
        print(f"{k:>4}  {text:>16}")
    if args.output:
        vib.write(args.output)
    if args.jmol:
        vib.write_jmol(args.jmol)
    if args.relaxed:
        ase.io.write(args.relaxed, atoms)
    written = [p for p in (args.output, args.jmol, args.relaxed) if p]
    if written:
        print("wrote " + ", ".join(written))
    return 0
