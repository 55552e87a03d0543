"""Variants called in alternation in one process: the timing loop behind every same-process A/B in ``benchmarks/``.

A change of machine load (other jobs, a busy core, the heap growing) then hits every variant alike, so their ratio
is meaningful even when their absolute times drift: each variant is called ``warmup`` times first, then ``rounds``
rounds of one timed call per variant, in the order given. Results are waited for (``jax.block_until_ready`` unless
``block`` says otherwise) before the clock stops.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping, Optional, Sequence


def alternate(calls: Mapping[str, Callable[[], Any]], rounds: int, warmup: int = 1,
              block: Optional[Callable[[Any], Any]] = None) -> dict[str, list[float]]:  # fmt: skip
    """``{name: [seconds per timed call]}`` for the zero-argument ``calls``, timed in alternation."""
    if block is None:
        import jax

        block = jax.block_until_ready
    for f in calls.values():
        for _ in range(warmup):
            block(f())
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, f in calls.items():
            t = time.perf_counter()
            block(f())
            times[name].append(time.perf_counter() - t)
    return times


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a list of times, in ms."""
    return {"median_ms": 1e3 * statistics.median(seconds), "min_ms": 1e3 * min(seconds), "max_ms": 1e3 * max(seconds)}


def ratio(times: Mapping[str, Sequence[float]], slower: str, faster: str) -> float:
    """Median of ``slower`` over median of ``faster``: > 1 when ``faster`` is faster."""
    return statistics.median(times[slower]) / statistics.median(times[faster])


__all__ = ["alternate", "ratio", "summary"]
