"""Command line: ``so3krates-hk <command>``. Each command lives in its own module; this file only parses."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _convert(args) -> int:
    from so3krates_hk import convert_cli

    return convert_cli.run(args.pickle, args.output, args.check, args.float32)


def _example(args) -> int:
    from so3krates_hk import example

    return example.run(args.molecule)


def _train(args) -> int:
    from so3krates_hk.training import train
    from so3krates_hk.training.config import load_config

    cfg = load_config(args.config)
    metrics = train.run(cfg, resume=args.resume, progress=not args.no_progress, output=args.output)
    md = metrics.get("md")
    return 0 if md is None or md["stable"] else 1


def _finetune(args) -> int:
    from so3krates_hk.training import finetune

    cfg = finetune.load_finetune_config(args.config)
    metrics = finetune.run(cfg, progress=not args.no_progress, output=args.output)
    return 0 if metrics["frozen_bit_identical"] and metrics["export_reload_matches"] else 1


def _md(args) -> int:
    from so3krates_hk.md_driver import MDRunConfig, run_md

    if args.restart:
        cfg = MDRunConfig(structure="", output=args.output, steps=args.steps)
    else:
        if not args.structure:
            print("so3krates-hk md: --structure is required (a file, or one of atat, dha, bb, water).")
            return 2
        cfg = MDRunConfig(
            structure=args.structure, output=args.output, ensemble=args.ensemble, dt_fs=args.dt_fs,
            temperature=args.temperature, friction_per_ps=args.friction, steps=args.steps,
            record_every=args.record_every, block=args.block, checkpoint_every=args.checkpoint_every,
            total_charge=args.charge, num_unpaired_electrons=args.spin, params=args.params, float64=args.float64,
            seed=args.seed,
        )  # fmt: skip
    summary = run_md(cfg, restart=args.restart, progress=not args.no_progress)
    print(f"{summary['steps_done']} steps, {summary['frames']} frames in {args.output}; "
          f"conserved-energy drift {summary['conserved_drift_eV_per_atom_per_ps']:.3g} eV/atom/ps")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="so3krates-hk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert SO3LR's params.pkl to the safe .npz format; --check reports parity")
    p.add_argument("pickle", nargs="?", help="SO3LR params.pkl (or a converted .npz with --check)")
    p.add_argument("-o", "--output", help="output .npz (safe format, see so3krates_hk.io)")
    p.add_argument("--check", action="store_true", help="report parity on the bundled reference structures")
    p.add_argument("--float32", action="store_true", help="with --check: also report float32 errors")
    p.set_defaults(func=_convert)

    p = sub.add_parser("train", help="CG force matching with chemtrain, then CG MD (see configs/cg_chignolin.yaml)")
    p.add_argument("--config", required=True, help="YAML config")
    p.add_argument("--output", help="output directory (overrides output.directory)")
    p.add_argument("--resume", action="store_true", help="continue from the output directory's checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = sub.add_parser("finetune", help="fine-tune pretrained SO3LR on an extended-XYZ set (chemtrain)")
    p.add_argument("--config", required=True, help="YAML config (see configs/finetune_aspirin.yaml)")
    p.add_argument("--output", help="output directory (overrides output.directory)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_finetune)

    p = sub.add_parser("md", help="MD with (pretrained or fine-tuned) SO3LR; restartable, overflow-safe")
    p.add_argument("--structure", help="XYZ/extended-XYZ file, or atat, dha, bb, water")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--ensemble", default="nvt_langevin", choices=["nve", "nvt_langevin", "nvt_nose_hoover"])
    p.add_argument("--dt-fs", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=300.0, help="K (thermostats and initial velocities)")
    p.add_argument("--friction", type=float, default=1.0, help="Langevin friction, 1/ps")
    p.add_argument("--steps", type=int, default=1000, help="total steps (with --restart: total incl. done)")
    p.add_argument("--record-every", type=int, default=10)
    p.add_argument("--block", type=int, default=100, help="steps per jitted block (overflow checks after each)")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--charge", type=float, default=0.0, help="total charge Q")
    p.add_argument("--spin", type=float, default=0.0, help="number of unpaired electrons S")
    p.add_argument("--params", help="SO3LR weights .npz (default: the shipped pretrained SO3LR)")
    p.add_argument("--float64", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", action="store_true", help="continue the run in --output from its checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_md)

    p = sub.add_parser("bench", help="benchmarks: compile, energy+forces, MD and training steps, memory vs N "
                       "(options: so3krates-hk bench --help)", add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: _bench(args.bench_args))

    p = sub.add_parser("example", help="evaluate pretrained SO3LR on a bundled molecule and a random CG model")
    p.add_argument("--molecule", default="dha", choices=["atat", "dha", "bb"])
    p.set_defaults(func=_example)
    return parser


def _bench(argv: Sequence[str]) -> int:
    from so3krates_hk.bench import main as bench_main

    return bench_main(list(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    if argv is None:  # the command line: restart once with the CPU malloc settings (see so3krates_hk.cpu_tuning)
        from so3krates_hk.cpu_tuning import reexec_tuned

        reexec_tuned(["-m", "so3krates_hk.cli", *sys.argv[1:]])
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark has its own options (and --help)
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
