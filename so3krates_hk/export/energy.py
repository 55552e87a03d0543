"""The per-atom SO3krates energy over an MD engine's edge list, the function every exporter wraps.

An engine hands one rank's atoms (owned, ghost and padding rows) and a directed edge list: ``centers[e]`` is the atom
whose list row holds the edge, ``neighbors[e]`` its neighbour, ``edge_mask[e]`` marks live entries; dead entries may
hold any index. With full pairing (both directions of every pair listed) each unordered pair {i, j} is kept once, as
the entry with j < i, and

    E_i = E^nn_i(x_i after T layers),   x_i depending on the atoms within T hops of d_ij < r_cutoff,

so owned atoms get exact energies when the ghost shell spans T × r_cutoff (ghost rows at the shell's edge get wrong
energies, which the exporters never count). Entries beyond ``r_cutoff`` (the engine's skin) are dropped here.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._compat import jax_md, partition
from so3krates_hk.export.model_file import ShortRangeModel
from so3krates_hk.graph import Graph, build_graph
from so3krates_hk.models import so3krates_energy


class EdgeList(NamedTuple):
    """A directed edge list in the jax-md ``Sparse`` layout, so :func:`so3krates_hk.graph.build_graph` reads it:
    ``idx[0]`` the neighbour j, ``idx[1]`` the owner (centre) i; dead entries hold N."""

    idx: jnp.ndarray
    format: "partition.NeighborListFormat" = partition.NeighborListFormat.Sparse


def edge_list(centers, neighbors, edge_mask, num_atoms: int) -> EdgeList:
    """Dead entries (``edge_mask`` False) → index N, whatever the engine left in them."""
    c = jnp.where(edge_mask, jnp.asarray(centers, jnp.int32), num_atoms)
    n = jnp.where(edge_mask, jnp.asarray(neighbors, jnp.int32), num_atoms)
    return EdgeList(jnp.stack([n, c]))


def _uncompacted_pairs(graph: Graph, cutoff: float) -> Graph:
    """A pair graph over every list entry (no compaction, so symbolic shapes stay symbolic): the entries with j < i
    stay live, the others become padding (index N, the stand-in vector of ``build_graph``)."""
    N = graph.num_nodes
    keep = graph.mask & (graph.neighbors < graph.centers)
    safe = jnp.zeros(3, graph.vectors.dtype).at[-1].set(2.0 * cutoff)
    vectors = jnp.where(keep[:, None], graph.vectors, safe)
    return graph._replace(
        centers=jnp.where(keep, graph.centers, N), neighbors=jnp.where(keep, graph.neighbors, N), vectors=vectors,
        distances=jnp.sqrt(jnp.sum(vectors**2, axis=-1)), mask=keep, sorted=False, pairs=True,
    )  # fmt: skip


def per_atom_energy_fn(
    model: ShortRangeModel, type_table: Optional[np.ndarray] = None, dtype=jnp.float32, compact: bool = True
) -> Callable:
    """``energy(positions (N, 3), types (N,), centers (E,), neighbors (E,), edge_mask (E,)) -> (N,)`` per-atom
    energies, in ``dtype``, with the model's parameters closed over.

    ``types`` are 0-based engine types; ``type_table[t]`` is the embedding row of type t (default: the identity).
    Types outside the table are clamped, so padding rows (stale types) stay finite; engines check real types
    against the table's length. ``compact``: pack the kept pairs into ⌈E/2⌉ slots (static shapes only).
    """
    table = jnp.asarray(np.arange(model.n_species) if type_table is None else type_table, jnp.int32)
    displacement, _ = jax_md.space.free()
    config, r_cut, n_species, avg = model.config, model.r_cutoff, model.n_species, model.avg_num_neighbors

    def forward(positions, types, centers, neighbors, edge_mask):
        N = positions.shape[0]
        species = table[jnp.clip(types, 0, table.shape[0] - 1)]
        node_mask = jnp.ones(N, bool)
        nbrs = edge_list(centers, neighbors, edge_mask, N)
        if compact:
            graph = build_graph(displacement, positions, nbrs, r_cut, node_mask, None, pairs=True)
        else:
            graph = _uncompacted_pairs(build_graph(displacement, positions, nbrs, r_cut, node_mask, None), r_cut)
        return so3krates_energy(config, n_species, r_cut, avg, species, graph, node_mask)[0]

    transformed = hk.without_apply_rng(hk.transform(forward))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), model.params)

    def energy(positions, types, centers, neighbors, edge_mask):
        return transformed.apply(params, positions, types, centers, neighbors, edge_mask).astype(dtype)

    return energy
