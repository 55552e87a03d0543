"""The benchmarks live in the repository, not in the installed package. From a checkout:

    python -m benchmarks.run --quick
    python -m benchmarks.run --help

See benchmarks/README.md there: speed and memory against Allegro, MACE and so3krates-torch, same run.
"""

from __future__ import annotations

import argparse

NAME = "bench"
HELP = "how to run the benchmarks (they live in the repository's benchmarks/, not in the package)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import UserError

    raise UserError("the benchmarks are not part of the installed package; from a checkout of the repository run "
                    "'python -m benchmarks.run --quick' (see benchmarks/README.md)")  # fmt: skip
