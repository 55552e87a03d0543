"""Molecular dynamics with pretrained or fine-tuned SO3LR in jax-md: restartable, neighbour-list overflow handled.

    so3krates-hk md --structure dha --output run/ --steps 10000
    so3krates-hk md --output run/ --steps 20000 --restart      # continue to 20 000 steps in all
"""

from __future__ import annotations

import argparse

NAME = "md"
HELP = "MD with (pretrained or fine-tuned) SO3LR; restartable, overflow-safe"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--structure", help="XYZ/extended-XYZ file, or a bundled structure: atat, dha, bb, water")
    p.add_argument("--output", required=True, help="output directory (trajectory, log, checkpoint)")
    p.add_argument("--ensemble", default="nvt_langevin", choices=["nve", "nvt_langevin", "nvt_nose_hoover"],
                   help="integrator")  # fmt: skip
    p.add_argument("--dt-fs", type=float, default=0.5, help="time step, fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K (thermostats and initial velocities)")
    p.add_argument("--friction", type=float, default=1.0, help="Langevin friction, 1/ps")
    p.add_argument("--steps", type=int, default=1000, help="total steps (with --restart: in all, including done)")
    p.add_argument("--record-every", type=int, default=10, help="steps between recorded frames")
    p.add_argument("--block", type=int, default=100, help="steps per jitted block (overflow checks after each)")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--charge", type=float, default=0.0, help="total charge Q, e")
    p.add_argument("--spin", type=float, default=0.0, help="number of unpaired electrons S")
    p.add_argument("--params", help="SO3LR weights .npz (default: the shipped pretrained SO3LR)")
    p.add_argument("--float64", action="store_true", help="double precision")
    p.add_argument("--seed", type=int, default=0, help="random seed (velocities, Langevin noise)")
    p.add_argument("--skin", type=float, default=None,
                   help="neighbour-list skin, Å (default: 0.5, or less where a periodic cell is narrower than 2 × "
                        "(long-range cutoff + 0.5); the lists are updated every step, so a smaller skin only means "
                        "more rebuilds)")  # fmt: skip
    p.add_argument("--restart", action="store_true", help="continue the run in --output from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import UserError
    from so3krates_hk.md.run import MDRunConfig, run_md

    if args.steps < 1:
        raise UserError(f"--steps must be positive, got {args.steps}")
    if args.restart:
        cfg = MDRunConfig(structure="", output=args.output, steps=args.steps)
    else:
        if not args.structure:
            raise UserError("md: --structure is required (a file, or one of atat, dha, bb, water)")
        cfg = MDRunConfig(
            structure=args.structure, output=args.output, ensemble=args.ensemble, dt_fs=args.dt_fs,
            temperature=args.temperature, friction_per_ps=args.friction, steps=args.steps,
            record_every=args.record_every, block=args.block, checkpoint_every=args.checkpoint_every,
            total_charge=args.charge, num_unpaired_electrons=args.spin, params=args.params, float64=args.float64,
            seed=args.seed, skin=args.skin,
        )  # fmt: skip
    summary = run_md(cfg, restart=args.restart, progress=not args.no_progress)
    drift = summary["conserved_drift_eV_per_atom_per_ps"]
    drift = f"{drift:.3g} eV/atom/ps" if drift is not None else "not fitted (fewer than 3 frames)"
    print(f"{summary['steps_done']} steps, {summary['frames']} frames in {args.output}; neighbour-list skin "
          f"{summary['config']['skin']:g} Å; conserved-energy drift {drift}")  # fmt: skip
    return 0
