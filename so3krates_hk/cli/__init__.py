"""The command line, ``so3krates-hk <command>``: one module per command, one entry point, one error handler.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, and imports JAX
and the library only inside ``run``, so ``--help`` answers at once. :func:`main` parses, re-executes once with the
CPU malloc settings when a command actually runs (see :mod:`so3krates_hk.cpu_tuning`), and turns a
:class:`~so3krates_hk.errors.UserError` into one line on stderr and exit status 2 (``--debug`` shows the traceback).
The library never imports this package.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

PROG = "so3krates-hk"
COMMANDS = ("train", "finetune", "data", "md", "lammps", "export", "eval", "vib", "convert", "example", "bench")  # modules of this package, in --help order


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless its help already says it, or there is none: None, False), keeps the
    descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == argparse.SUPPRESS \
                or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="SO3krates and SO3LR in JAX: training, MD, conversion.",
                                     formatter_class=_Formatter)  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--compile-cache", metavar="DIR", help=COMPILE_CACHE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__, formatter_class=_Formatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback")
        p.add_argument("--compile-cache", metavar="DIR", default=argparse.SUPPRESS, help=COMPILE_CACHE_HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


COMPILE_CACHE_HELP = (
    "keep compiled programs in DIR (JAX's persistent compilation cache), so a later run of the same model on the same "
    "system size skips compilation; also read from JAX_COMPILATION_CACHE_DIR"
)


def use_compile_cache(directory: str) -> str:
    """Turn on JAX's persistent compilation cache in ``directory`` (created if missing) for this process and the
    processes it starts (``JAX_COMPILATION_CACHE_DIR``, e.g. the MPI ranks of ``lammps``). Returns the absolute path."""
    from so3krates_hk.errors import UserError

    path = os.path.abspath(os.path.expanduser(directory))
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"--compile-cache: {path} is not a directory.") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"--compile-cache: cannot write to {path}.")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    # every program, also the many small ones of the start-up (JAX keeps only those that took ≥ 1 s by default)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    if "jax" in sys.modules:  # JAX reads the variables when it is imported
        config = sys.modules["jax"].config
        config.update("jax_compilation_cache_dir", path)
        config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))  # fmt: skip
    return path


def error(message: str) -> int:
    """Print ``so3krates-hk: error: message`` (one line) to stderr; returns exit status 2."""
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)  # argparse's own errors: usage + one line, exit 2
    if unknown and args.command != "bench":  # bench only says where the benchmarks are, whatever it is given
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if from_shell:  # a command runs: restart once with the CPU malloc settings
        from so3krates_hk.cpu_tuning import reexec_tuned

        reexec_tuned(["-m", "so3krates_hk.cli", *argv])
    from so3krates_hk.errors import UserError

    try:
        if getattr(args, "compile_cache", None):
            use_compile_cache(args.compile_cache)
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        if args.debug or os.environ.get("SO3KRATES_HK_DEBUG"):
            raise
        if isinstance(e, OSError) and e.filename is not None:
            return error(f"{e.strerror}: {e.filename}")
        return error(str(e))
    except KeyboardInterrupt:
        return error("interrupted")


if __name__ == "__main__":
    sys.exit(main())
