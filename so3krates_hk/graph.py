"""From a jax-md neighbour list to fixed-capacity edge arrays (docs/model.md, "Graphs").

Conventions:
* Edge (i, j): i is the *centre*, the atom that receives and aggregates; j is its neighbour.
  For jax-md lists, i is the owner of the list entry: the row of a ``Dense`` list, ``idx[1]`` of a ``Sparse`` or
  ``OrderedSparse`` list (jax-md stores ``(neighbour, owner)``), so an ``OrderedSparse`` pair has j < i.
* The edge vector is r_ij = R_j − R_i = ``displacement(R_j, R_i)``, minimum image under periodic boundaries
  (fractional coordinates included, through the displacement function and its keyword arguments such as ``box``).
* An edge is *real* when both indices are < N, both atoms are unmasked, i ≠ j, and 0 < d < cutoff. Every other
  entry (padding with index N, skin pairs beyond the cutoff, masked atoms, zero distances) is *masked*: it carries a
  safe stand-in vector of length 2·cutoff, so every 1/d, log and sqrt downstream stays finite and its gradient is
  exactly zero (docs/model.md, "Graphs").

Pairs: jax-md's ``Dense`` and ``Sparse`` lists hold both directions of every pair. With ``pairs=True`` only the
entries with j < i are kept, so each unordered pair {i, j} appears once (i the larger index); a consumer that needs
both directions computes them from the pair. SO3krates does, because its filters are symmetric in (i, j), which
halves the work of the per-edge networks (see ``layers.attention``). The list must then be symmetric, as jax-md's
are.

Capacity: with ``capacity=None`` every entry of the list is kept (masked where not real); with ``pairs=True`` the
default capacity is half the list, which a symmetric list can never exceed. With an integer capacity the real edges
(or pairs) are compacted, in their original order, into that many slots, dropping padding and skin pairs before the
expensive per-edge network runs. If more real edges exist than slots, ``Graph.overflow`` is True; the models turn
that into a NaN energy, never into a silently truncated one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from so3krates_hk._compat import partition

DisplacementFn = Callable[..., jnp.ndarray]


class Graph(NamedTuple):
    """Edges of one structure, padded to a fixed size P."""

    centers: jnp.ndarray  # (P,) int32, i; N on padding after compaction
    neighbors: jnp.ndarray  # (P,) int32, j
    vectors: jnp.ndarray  # (P, 3) r_ij = R_j − R_i; safe stand-in on masked edges
    distances: jnp.ndarray  # (P,) |r_ij| (> 0 everywhere)
    mask: jnp.ndarray  # (P,) bool, True on real edges
    overflow: jnp.ndarray  # () bool, True if real edges were dropped for lack of capacity
    num_nodes: int
    sorted: bool  # centres ascending (Dense lists)
    pairs: bool = False  # each entry stands for both directions of an unordered pair (j < i)

    @property
    def num_edges(self) -> jnp.ndarray:
        """Real directed edges (a pair counts twice)."""
        return jnp.sum(self.mask) * (2 if self.pairs else 1)


@jax.custom_batching.custom_vmap
def not_folded(x: jnp.ndarray) -> jnp.ndarray:
    """``x`` behind an optimisation barrier, so XLA cannot treat it as a constant of the program.

    Under ``jax.jit`` of an energy with inputs bound in a closure (jax-md's ``energy_fn`` with its species, a list
    built once and captured), those inputs are constants of the program, and XLA folds the work that depends on them
    alone at compile time. For the species (applied in ``factory``) that meant the embedding and the first layer's
    queries, keys and values evaluated at compile time, in XLA's slow reference evaluator, once per atom: seconds of
    a large MD program's compile. For neighbour-list indices (applied in :func:`candidate_pairs`) it meant calls 26-45×
    slower on JAX 0.4.37: SO3LR energy+forces on 1536 water atoms took 10-17 s against 0.37-0.44 s with the lists
    passed as arguments (``benchmarks/NOTES.md``). Numbers are unchanged. Under ``vmap`` the barrier takes the whole
    batch (JAX 0.4.x has no batching rule for it).
    """
    return jax.lax.optimization_barrier(x)


@not_folded.def_vmap
def _not_folded_batched(axis_size: int, in_batched: list, x: jnp.ndarray):
    return jax.lax.optimization_barrier(x), in_batched[0]


def static_cell_size(nbrs):
    """The jax-md neighbour list ``nbrs`` with its cell size as a Python float.

    jax-md keeps the cell size in the list's static pytree data, and with fractional coordinates in a general cell
    (``space.periodic_general``) computes it as a JAX scalar. JAX compares static data when it looks up a compiled
    function, so each lookup with such a list runs a JAX operation inside JAX's own cache lookup, which deadlocks on
    JAX 0.4.37: the MD block never finished tracing on a periodic cell. A second model's jitted call on such a
    list failed with a ``TracerBoolConversionError`` there. Updated lists carry the float over. The factories'
    ``apply_fn``/``init_fn`` and the MD driver pass every list through this.
    """
    size = getattr(nbrs, "cell_size", None)
    if size is None or isinstance(size, float):
        return nbrs
    return dataclasses.replace(nbrs, cell_size=float(size))


def neighbor_format(neighbor) -> "partition.NeighborListFormat":
    """The jax-md format of a neighbour list (``Dense``, ``Sparse`` or ``OrderedSparse``)."""
    fmt = getattr(neighbor, "format", None)
    if fmt is None:
        raise TypeError(f"Expected a jax_md.partition.NeighborList, got {type(neighbor).__name__}.")
    return fmt


def candidate_pairs(neighbor, num_nodes: int) -> tuple[jnp.ndarray, jnp.ndarray, bool]:
    """All (centre, neighbour) entries of a jax-md list, flat, padding included: (centers, neighbors, sorted). The
    indices pass :func:`not_folded`, so a list bound into a jitted function is not a constant to XLA."""
    idx = not_folded(jnp.asarray(neighbor.idx))
    fmt = neighbor_format(neighbor)
    if fmt == partition.NeighborListFormat.Dense:
        if idx.ndim != 2 or idx.shape[0] != num_nodes:
            raise ValueError(f"Dense neighbour list idx must have shape (N={num_nodes}, M); got {idx.shape}.")
        centers = jnp.repeat(jnp.arange(num_nodes, dtype=jnp.int32), idx.shape[1])
        return centers, idx.reshape(-1).astype(jnp.int32), True
    if idx.ndim != 2 or idx.shape[0] != 2:
        raise ValueError(f"Sparse neighbour list idx must have shape (2, capacity); got {idx.shape}.")
    return idx[1].astype(jnp.int32), idx[0].astype(jnp.int32), False


def _compact(keep: jnp.ndarray, capacity: int):
    """Slots of the kept entries, in order: (selection (capacity,), slot mask (capacity,), overflow)."""
    count = jnp.sum(keep)
    target = jnp.where(keep, jnp.cumsum(keep) - 1, capacity)  # capacity = out of range → dropped
    selection = jnp.zeros(capacity, jnp.int32).at[target].set(jnp.arange(keep.shape[0], dtype=jnp.int32), mode="drop")
    slot_mask = jnp.arange(capacity) < count
    return selection, slot_mask, count > capacity


def _list_entries(displacement_fn: DisplacementFn, position, neighbor, node_mask=None, **displacement_kwargs):
    """Every list entry with its vector r_ij: (centers, neighbors, sorted, valid, vectors). ``valid``: both indices
    < N, distinct and unmasked (distances are not looked at); the vectors of invalid entries are meaningless."""
    N = position.shape[0]
    centers, neighbors, is_sorted = candidate_pairs(neighbor, N)
    ci, nj = jnp.minimum(centers, N - 1), jnp.minimum(neighbors, N - 1)
    valid = (centers < N) & (neighbors < N) & (centers != neighbors)
    if node_mask is not None:
        valid = valid & node_mask[ci] & node_mask[nj]
    disp = functools.partial(displacement_fn, **displacement_kwargs)
    return centers, neighbors, is_sorted, valid, jax.vmap(disp)(gather_rows(position, nj), gather_rows(position, ci))


def gather_rows(x: jnp.ndarray, index: jnp.ndarray) -> jnp.ndarray:
    """x[index] for an array x of shape (M, w), with rows padded to a power of two on the way.

    The gradient of a gather is a scatter-add over the index, which XLA:CPU runs as a serial loop, one row per
    iteration. Rows of 3 or 5 elements take about twice as long per row as rows of 2, 4 or 8
    (``benchmarks/NOTES.md``), so positions and edge vectors are gathered as rows of 4 and the padding sliced off.
    """
    w = x.shape[-1]
    padded = 1 << max(0, (w - 1).bit_length())
    if x.ndim != 2 or padded == w or padded > 16:
        return x[index]
    return jnp.pad(x, ((0, 0), (0, padded - w)))[index][:, :w]


def build_graph(
    displacement_fn: DisplacementFn,
    position: jnp.ndarray,
    neighbor,
    cutoff: Optional[float],
    node_mask: Optional[jnp.ndarray] = None,
    capacity: Optional[int] = None,
    pairs: bool = False,
    **displacement_kwargs,
) -> Graph:
    """Edges within ``cutoff`` (None: no cutoff) of a jax-md neighbour list; see the module docstring.

    With ``pairs=True``, ``capacity`` counts pairs (default: half the list's entries).
    """
    N = position.shape[0]
    centers, neighbors, is_sorted, valid, vectors = _list_entries(
        displacement_fn, position, neighbor, node_mask, **displacement_kwargs
    )
    if pairs and capacity is None:
        capacity = max(1, (centers.shape[0] + 1) // 2)
    d2 = jnp.sum(vectors**2, axis=-1)
    keep = valid & (d2 > 0)
    if pairs:
        keep = keep & (neighbors < centers)
    if cutoff is not None:
        keep = keep & (d2 < cutoff**2)

    overflow = jnp.zeros((), bool)
    if capacity is not None:
        selection, slot_mask, overflow = _compact(keep, capacity)
        centers = jnp.where(slot_mask, centers[selection], N)
        neighbors = jnp.where(slot_mask, neighbors[selection], N)
        vectors = gather_rows(vectors, selection)
        keep = slot_mask  # compaction keeps the order, so `is_sorted` still holds

    vectors, distances = safe_geometry(vectors, keep, cutoff)
    return Graph(centers, neighbors, vectors, distances, keep, overflow, N, is_sorted, pairs)


def safe_geometry(vectors: jnp.ndarray, keep: jnp.ndarray, cutoff: Optional[float]) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Edge vectors with every entry not kept replaced by the safe stand-in (length 2·cutoff, or 2 without a cutoff),
    and their lengths d_ij (see the module docstring)."""
    stand_in = 2.0 * (cutoff if cutoff is not None else 1.0)
    safe = jnp.zeros(3, vectors.dtype).at[-1].set(stand_in)
    vectors = jnp.where(keep[:, None], vectors, safe[: vectors.shape[-1]])
    return vectors, jnp.sqrt(jnp.sum(vectors**2, axis=-1))


def closest_pair(
    displacement_fn: DisplacementFn, position, neighbor, node_mask=None, **displacement_kwargs
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(d, i, j): the shortest distance between two distinct, unmasked atoms that share a list entry, and the pair.

    Coincident atoms (d = 0) count: ``build_graph`` has to drop such entries (no direction), so the host-side check
    of the factories uses this to refuse them, and any pair closer than ``validation.MIN_DISTANCE``, by name.
    Jittable; d = inf when the list has no real entry.
    """
    centers, neighbors, _, valid, vectors = _list_entries(
        displacement_fn, position, neighbor, node_mask, **displacement_kwargs
    )
    d = jnp.where(valid, jnp.sqrt(jnp.sum(vectors**2, axis=-1)), jnp.inf)
    k = jnp.argmin(d)
    return d[k], jnp.minimum(centers[k], neighbors[k]), jnp.maximum(centers[k], neighbors[k])


def count_edges(
    displacement_fn: DisplacementFn, position, neighbor, cutoff: Optional[float], node_mask=None, **kwargs
) -> int:
    """Number of real edges (host integer), e.g. to size ``max_edges`` from a test structure."""
    graph = build_graph(displacement_fn, jnp.asarray(position), neighbor, cutoff, node_mask, None, **kwargs)
    return int(graph.num_edges)


def capacity_from_test(num_edges: int, multiplier: float) -> int:
    """Edge capacity from a test graph, as chemutils sizes ``max_edges``: ceil(edges × multiplier)."""
    return max(1, int(math.ceil(num_edges * multiplier)))


def pair_multiplicity(neighbor) -> float:
    """The multiplicity c of long-range pair sums: 1 for ``OrderedSparse`` (each pair once), ½ otherwise
    (docs/model.md, "Graphs")."""
    return 1.0 if neighbor_format(neighbor) == partition.NeighborListFormat.OrderedSparse else 0.5


def graph_slice(graph: Graph, start: int, stop: int) -> Graph:
    """The entries [start, stop) of ``graph`` as a graph of their own (same atoms)."""
    part = slice(start, stop)
    return graph._replace(centers=graph.centers[part], neighbors=graph.neighbors[part], vectors=graph.vectors[part],
                          distances=graph.distances[part], mask=graph.mask[part])  # fmt: skip


def segment_sum(data: jnp.ndarray, graph: Graph, reverse_data: Optional[jnp.ndarray] = None) -> jnp.ndarray:
    """Σ of per-edge ``data`` onto the centres; entries with centre N (padding) are dropped.

    For a pair graph, ``reverse_data`` (the value for the direction j → i… i.e. centred on j) is summed onto the
    neighbours; without it the same ``data`` is used for both directions (a symmetric quantity).
    """
    out = jax.ops.segment_sum(data, graph.centers, graph.num_nodes, indices_are_sorted=graph.sorted)
    if graph.pairs:
        rev = data if reverse_data is None else reverse_data
        out = out + jax.ops.segment_sum(rev, graph.neighbors, graph.num_nodes)
    return out


__all__ = [
    "Graph",
    "build_graph",
    "candidate_pairs",
    "count_edges",
    "capacity_from_test",
    "closest_pair",
    "graph_slice",
    "pair_multiplicity",
    "segment_sum",
]
