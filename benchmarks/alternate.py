"""Variants called in alternation in one process: the timing loop behind every same-process A/B in ``benchmarks/``.

A change of machine load (other jobs, a busy core, the heap growing) then hits every variant alike, so their ratio
is meaningful even when their absolute times drift: each variant is called ``warmup`` times first, then ``rounds``
rounds of one timed call per variant, in the order given. Results are waited for (``jax.block_until_ready`` unless
``block`` says otherwise) before the clock stops.

``compile_variants`` and ``compare_variants`` are the whole probe of a formulation: each variant's program is
traced, lowered and compiled in turn (timed), its outputs compared with the first variant's, and all are then
called in alternation::

    def variant(use_new):
        def build():
            patch(use_new)                  # select the formulation; runs just before this variant is traced
            return fn, args                 # the program and its arguments
        return build

    compiled = compile_variants({"package": variant(False), "probe": variant(True)})
    compare_variants(compiled, rounds=10)   # prints compile times, max |Δ output|, median (min–max), ratios
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
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


@dataclass
class CompiledVariant:
    """One variant's compiled program, with its arguments, its first outputs and what compiling it took."""

    compiled: Callable
    args: tuple
    outputs: Any
    lower_s: float
    compile_s: float

    def __call__(self):
        return self.compiled(*self.args)


def compile_variant(fn: Callable, args: tuple, compiler_options: Optional[dict] = None,
                    call: bool = True) -> CompiledVariant:  # fmt: skip
    """Lower and compile ``fn`` under ``jax.jit`` for ``args`` (with ``compiler_options`` if given), each step timed,
    then call it once unless ``call`` is false (``outputs`` is then None)."""
    import jax

    t = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    lower_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile(compiler_options=compiler_options) if compiler_options else lowered.compile()
    compile_s = time.perf_counter() - t
    outputs = jax.block_until_ready(compiled(*args)) if call else None
    return CompiledVariant(compiled, tuple(args), outputs, lower_s, compile_s)


def compile_variants(builders: Mapping[str, Callable[[], tuple]],
                     compiler_options: Optional[Mapping[str, Optional[dict]]] = None) -> dict[str, CompiledVariant]:  # fmt: skip
    """Compile each variant in turn (``compile_variant``): ``builders[name]()`` returns ``(function, args)``, and may
    patch the code under test first, since the function is traced right after. A new function per variant: JAX would
    hand back a cached executable for the same function compiled twice."""
    return {name: compile_variant(*build(), (compiler_options or {}).get(name)) for name, build in builders.items()}


def max_abs_difference(a: Any, b: Any) -> float:
    """Largest |a − b| over every leaf of two output trees of the same structure."""
    import jax
    import numpy as np

    diffs = jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(np.subtract(x, y, dtype=np.float64)), initial=0.0)),
                                   a, b)  # fmt: skip
    return max(jax.tree_util.tree_leaves(diffs), default=0.0)


def compare_variants(variants: Mapping[str, CompiledVariant], rounds: int, warmup: int = 1,
                     out: Callable[[str], Any] = print) -> dict[str, dict[str, float]]:  # fmt: skip
    """Time compiled variants in alternation; report each against the first: lowering and compile time, max |Δ| of
    the outputs, median (min–max) ms, and the first's median over this one's (above 1: this one is faster)."""
    names = list(variants)
    ref = names[0]
    times = alternate({n: variants[n] for n in names}, rounds, warmup=warmup)
    rows = {}
    for n in names:
        v = variants[n]
        row = dict(summary(times[n]), lower_s=v.lower_s, compile_s=v.compile_s,
                   max_abs_diff=max_abs_difference(v.outputs, variants[ref].outputs),
                   speedup_vs_first=ratio(times, ref, n))  # fmt: skip
        rows[n] = row
        out(f"{n:16s} lower {row['lower_s']:5.1f} s  compile {row['compile_s']:5.1f} s  max|Δ| vs {ref} "
            f"{row['max_abs_diff']:.2e}  run {row['median_ms']:.1f} ms ({row['min_ms']:.1f}–{row['max_ms']:.1f}, "
            f"{rounds} calls)  {ref}/this {row['speedup_vs_first']:.3f}")
    return rows


__all__ = ["CompiledVariant", "alternate", "compare_variants", "compile_variant", "compile_variants",
           "max_abs_difference", "ratio", "summary"]
