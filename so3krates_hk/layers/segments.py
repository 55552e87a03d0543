"""Trailing padding at no cost: per-pair sums evaluated over static segments of the pair axis, skipping segments
that hold only padding.

Pair arrays have a fixed capacity P larger than the number of real pairs, so that the structure can change (in MD,
or from one structure to the next) without a new program. The factories size it at 1.25 × the pairs of a test
structure (jax-md's neighbour lists the same way), so about a fifth of every pair array is padding, which costs as
much as real pairs: masked, but computed. Both kinds of list keep their real entries at the front (the compaction in
``graph.build_graph``; jax-md's sparse lists), so the padding is a tail.

A per-pair sum Σ_p f_p is therefore split at static bounds 0 = b₀ < b₁ < … < b_K = P into K segments, and segment k
runs only if the *extent* (one past the last real pair, computed on the device) exceeds b_k; a skipped segment would
have added exactly zero, since f vanishes on padding. The result does not depend on where the real pairs are, only
the time does: for any layout the segments that hold a real pair run. Under ``vmap`` (batched training) the
condition becomes a select and every segment runs, as without segments. Called eagerly (outside ``jit``), Python
makes the choice, so no branch is compiled on its own.

Bounds: one cut, at 0.82 P, covers the 80 % that a capacity of 1.25 × the test structure's pairs leaves, with room
for the count to drift up in MD. Every segment is a copy of the per-pair program, so each cut adds compile time; a
second cut (at 0.9 P) was measured to add ~2.5 s of compilation for little gain (``benchmarks/NOTES.md``). Below
:data:`MIN_SEGMENTED_PAIRS` slots the array is one segment: extra kernels would cost more than the padding.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

T = TypeVar("T")

SEGMENT_FRACTIONS = (0.82,)
MIN_SEGMENTED_PAIRS = 8192


def segment_bounds(num_slots: int, fractions: Optional[Sequence[float]] = None,
                   min_slots: Optional[int] = None) -> tuple[int, ...]:  # fmt: skip
    """Static bounds (0, b₁, …, P) of the segments of a pair axis with ``num_slots`` slots; (0, P) below
    ``min_slots``. Inner bounds are rounded up to multiples of 8. Defaults: :data:`SEGMENT_FRACTIONS`,
    :data:`MIN_SEGMENTED_PAIRS` (read at call time)."""
    fractions = SEGMENT_FRACTIONS if fractions is None else fractions
    min_slots = MIN_SEGMENTED_PAIRS if min_slots is None else min_slots
    if not isinstance(num_slots, (int, np.integer)):  # a symbolic size (shape-polymorphic export): one segment
        return (0, num_slots)
    if num_slots < min_slots:
        return (0, num_slots)
    cuts = sorted({-(-int(f * num_slots) // 8) * 8 for f in fractions})
    return (0, *(c for c in cuts if 0 < c < num_slots), num_slots)


def extent(mask: jnp.ndarray) -> jnp.ndarray:
    """One past the index of the last True entry of ``mask`` (0 when there is none); int32 scalar."""
    # an iota, not ``jnp.arange(1, n + 1)``: that one is a numpy constant of n entries baked into the program
    index = jax.lax.iota(jnp.int32, mask.shape[0]) + 1
    return jnp.max(jnp.where(mask, index, 0), initial=0)


def sum_over_segments(fn: Callable[[int, int], T], bounds: Sequence[int], end: Optional[jnp.ndarray]) -> T:
    """Σ_k fn(b_k, b_{k+1}) over the segments, skipping those with b_k ≥ ``end`` (under ``lax.cond`` when traced).

    ``fn(start, stop)`` evaluates the sum over the slots [start, stop) and must return exactly zero when they are
    all padding; its outputs must have the same shapes for every segment (e.g. sums onto atoms). With ``end=None``
    (extent unknown) or a single segment, ``fn(0, P)``.
    """
    if end is None or len(bounds) <= 2:
        return fn(bounds[0], bounds[-1])
    total = fn(bounds[0], bounds[1])
    shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), total)
    zeros = lambda: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)  # noqa: E731
    for start, stop in zip(bounds[1:-1], bounds[2:]):
        try:  # called eagerly: ``end`` has a value, and Python decides (no program per branch)
            run = bool(end > start)
        except jax.errors.ConcretizationTypeError:  # traced (jit): the device decides
            run = None
        if run is None:
            part = jax.lax.cond(end > start, functools.partial(fn, start, stop), zeros)
        elif run:
            part = fn(start, stop)
        else:
            continue
        total = jax.tree_util.tree_map(jnp.add, total, part)
    return total


__all__ = ["MIN_SEGMENTED_PAIRS", "SEGMENT_FRACTIONS", "extent", "segment_bounds", "sum_over_segments"]
