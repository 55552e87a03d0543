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

    p = sub.add_parser("example", help="evaluate pretrained SO3LR on a bundled molecule and a random CG model")
    p.add_argument("--molecule", default="dha", choices=["atat", "dha", "bb"])
    p.set_defaults(func=_example)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
