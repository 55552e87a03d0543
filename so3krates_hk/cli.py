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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="so3krates-hk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert SO3LR's params.pkl to the safe .npz format; --check reports parity")
    p.add_argument("pickle", nargs="?", help="SO3LR params.pkl (or a converted .npz with --check)")
    p.add_argument("-o", "--output", help="output .npz (safe format, see so3krates_hk.io)")
    p.add_argument("--check", action="store_true", help="report parity on the bundled reference structures")
    p.add_argument("--float32", action="store_true", help="with --check: also report float32 errors")
    p.set_defaults(func=_convert)

    p = sub.add_parser("example", help="evaluate pretrained SO3LR on a bundled molecule and a random CG model")
    p.add_argument("--molecule", default="dha", choices=["atat", "dha", "bb"])
    p.set_defaults(func=_example)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
