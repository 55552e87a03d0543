"""Train a coarse-grained SO3krates model with chemtrain force matching, then run CG MD and compare with the reference.

    so3krates-hk train --config cg_chignolin            # a bundled config, by name
    so3krates-hk train --config my.yaml --output runs/x
"""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "CG force matching with chemtrain, then CG MD against the reference (bundled: --config cg_chignolin)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML file, or the name of a bundled config (cg_chignolin, "
                   "cg_alanine_dipeptide)")  # fmt: skip
    p.add_argument("--output", help="output directory (default: the config's output.directory)")
    p.add_argument("--resume", action="store_true", help="continue from the output directory's checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import require
    from so3krates_hk.training.config import load_config

    cfg = load_config(args.config)  # config errors first, before anything heavy
    require("chemtrain", "chemtrain", "so3krates-hk train")
    from so3krates_hk.training import train

    metrics = train.run(cfg, resume=args.resume, progress=not args.no_progress, output=args.output)
    md = metrics.get("md")
    return 0 if md is None or md["stable"] else 1
