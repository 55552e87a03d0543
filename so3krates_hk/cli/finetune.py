"""Fine-tune pretrained SO3LR on an extended-XYZ data set with chemtrain (parameters frozen by name pattern).

    so3krates-hk finetune --config finetune_aspirin
"""

from __future__ import annotations

import argparse

NAME = "finetune"
HELP = "fine-tune pretrained SO3LR on an extended-XYZ set with chemtrain (bundled: --config finetune_aspirin)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML file, or the name of a bundled config (finetune_aspirin)")
    p.add_argument("--output", help="output directory (default: the config's output.directory)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import require

    require("chemtrain", "chemtrain", "so3krates-hk finetune")  # before importing JAX-heavy modules
    from so3krates_hk.training import finetune

    cfg = finetune.load_finetune_config(args.config)
    metrics = finetune.run(cfg, progress=not args.no_progress, output=args.output)
    return 0 if metrics["frozen_bit_identical"] and metrics["export_reload_matches"] else 1
