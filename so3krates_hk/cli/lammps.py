"""Run a LAMMPS input with SO3LR or an SO3krates model on N MPI ranks (fix external, domain decomposition).

    mpirun -np 4 so3krates-hk lammps in.water --model so3lr --elements O H
    mpirun -np 2 so3krates-hk lammps in.cg --model params.npz --float64

The input declares 'fix ml all external pf/callback 1 1' (any id, see --fix-id) before its first run; the command
attaches the model to that fix on every rank, sets the ghost cutoff the model needs (comm_modify cutoff) and says
what it set. Units: metal (eV, Å) for SO3LR, real (kcal/mol, Å) for CG SO3krates models.
"""

from __future__ import annotations

import argparse

NAME = "lammps"
HELP = "run a LAMMPS input with SO3LR or an SO3krates model under MPI (fix external)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN.lmp", help="LAMMPS input script declaring the fix external")
    p.add_argument("--model", default="so3lr", help="'so3lr' (shipped weights) or a params.npz: fine-tuned SO3LR "
                   "or a CG SO3krates model")  # fmt: skip
    p.add_argument("--fix-id", default="ml", help="id of the 'fix ID all external pf/callback 1 1' in the input")
    p.add_argument("--float64", action="store_true", help="evaluate the model in double precision")
    p.add_argument("--elements", nargs="+", metavar="SYMBOL", help="SO3LR: element of LAMMPS type 1, 2, …")
    p.add_argument("--species", nargs="+", type=int, metavar="S",
                   help="SO3krates: species of LAMMPS type 1, 2, … (default: type t is species t−1)")  # fmt: skip
    p.add_argument("--charge", type=float, default=0.0, help="total charge Q of the system, e")
    p.add_argument("--spin", type=float, default=0.0, help="number of unpaired electrons S of the system")
    p.add_argument("--lr-cutoff", type=float, help="SO3LR: long-range cutoff in Å (default: the model's, 12 Å)")
    p.add_argument("--log", default="log.lammps", help="LAMMPS log file")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="set a LAMMPS index variable (like lmp -var NAME VALUE); repeatable")  # fmt: skip
    p.add_argument("--no-screen", action="store_true", help="no LAMMPS screen output")


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import UserError
    from so3krates_hk.lammps.driver import LammpsJob, run as run_lammps

    for v in args.var:
        if "=" not in v:
            raise UserError(f"--var {v!r}: expected NAME=VALUE")
    job = LammpsJob(
        input=args.input, model=args.model, fix_id=args.fix_id, float64=args.float64, elements=args.elements,
        species=args.species, total_charge=args.charge, num_unpaired_electrons=args.spin, lr_cutoff=args.lr_cutoff,
        log=args.log, screen=not args.no_screen, variables=args.var,
    )  # fmt: skip
    run_lammps(job)
    return 0
