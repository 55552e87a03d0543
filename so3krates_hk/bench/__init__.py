"""Benchmarks of so3krates_hk (and baselines): compile time, energy+forces, neighbour update, MD and training steps,
peak memory, against system size. Entry points: ``so3krates_hk.bench.main(argv)`` and ``python -m benchmarks.run``.

Modules: ``systems`` (water boxes, molecules, CG chains/boxes), ``jax_models`` and ``torch_models`` (each model bound
to a system, with its settings), ``plan`` (which configurations), ``worker`` (one configuration, in a subprocess),
``memory`` (peak RSS / device peak), ``report`` (JSON, markdown, plots), ``driver`` (the command line).
"""

from __future__ import annotations

from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark (see ``so3krates_hk.bench.driver``); returns the exit code (1 if a configuration failed)."""
    from so3krates_hk.bench.driver import main as _main

    return _main(argv)


__all__ = ["main"]
