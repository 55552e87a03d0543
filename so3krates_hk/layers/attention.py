"""Euclidean attention: filters, queries/keys/values, attention coefficients without softmax, aggregation
(SPEC §6.1–§6.4).

For an edge (i, j), i the centre that receives and j its neighbour:

    g_ij   = c(ε_j − ε_i)                                            (§6.1, one invariant per degree)
    w¹_ij  = act(β_ij R1a + r1a) R1b + r1b + act(g_ij S1a + s1a) S1b + s1b,   w² likewise
    α¹_ij^(h) = φ(d_ij) / n̄ · Σ_a q1_i^(h)[a] w¹_ij^(h)[a] k1_j^(h)[a]       (one per head h)
    α²_ij^(l) = φ(d_ij) / n̄ · Σ_a q2_i^(l)[a] w²_ij^(l)[a] k2_j^(l)[a]       (one per degree l)
    Δx_i^(h)  = Σ_j α¹_ij^(h) v_j^(h)          Δε_i,lm = Σ_j α²_ij^(l) Y_lm(r̂_ij)

There is no softmax and no √d scaling, only the constant message normaliser n̄ (trap T8). The query/key/value maps
are block-diagonal: x is split into contiguous blocks (one per head for family 1, one per degree for family 2),
each with its own square matrix, stored here as ``[block, in, out]`` (SO3LR stores ``[block, out, in]``; the
converter transposes, trap T6).

Both filters are symmetric in (i, j): β and φ depend on d_ij, and c(ε_j − ε_i) is quadratic. Edges therefore come as
unordered pairs {i, j} (``graph.build_graph(pairs=True)``): the filter networks, which carry ~90 % of the FLOPs, run
once per pair, and the coefficients and messages are formed for both directions, with Y(r̂_ji) = (−1)^l Y(r̂_ij).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk.layers.dense import Activation, two_layer_filter
from so3krates_hk.layers.harmonics import degree_contraction, expand_degrees


class EdgeFeatures(NamedTuple):
    """Geometry of the short-range pairs {i, j}, shared by every layer.

    ``centers`` (i) and ``neighbors`` (j) index atoms, r_ij = R_j − R_i; padded pairs hold index N and ``cut == 0``.
    """

    centers: jnp.ndarray  # (H,) int32
    neighbors: jnp.ndarray  # (H,) int32
    rbf: jnp.ndarray  # (H, K) Bernstein basis β_ij
    cut: jnp.ndarray  # (H,) cutoff φ(d_ij), 0 on padded/masked pairs
    ylm: jnp.ndarray  # (H, Σ(2l+1)) spherical harmonics Y(r̂_ij)
    num_nodes: int
    sorted: bool  # centres ascending: lets segment sums use the sorted kernel


def pair_segment_sum(to_center: jnp.ndarray, to_neighbor: jnp.ndarray, edges: EdgeFeatures) -> jnp.ndarray:
    """Σ of the messages of every pair onto both its atoms: ``to_center`` onto i, ``to_neighbor`` onto j."""
    n = edges.num_nodes
    out = jax.ops.segment_sum(to_center, edges.centers, n, indices_are_sorted=edges.sorted)
    return out + jax.ops.segment_sum(to_neighbor, edges.neighbors, n)


def degree_parity(degrees: Sequence[int]) -> np.ndarray:
    """(−1)^l per component: Y(−r̂) = (−1)^l Y(r̂)."""
    return np.repeat([(-1.0) ** l for l in degrees], [2 * l + 1 for l in degrees])


def _block_matrix(name: str, blocks: int, width: int, dtype) -> jnp.ndarray:
    return hk.get_parameter(
        name, [blocks, width, width], dtype, init=hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")
    )


class EuclideanAttention(hk.Module):
    """One Euclidean attention update (Δx, Δε) of an SO3krates layer (SPEC §6.1–§6.4)."""

    def __init__(
        self,
        num_features: int,
        num_heads: int,
        degrees: Sequence[int],
        avg_num_neighbors: float,
        activation: Activation,
        name: Optional[str] = "attention_block",
    ):
        super().__init__(name=name)
        if num_features % num_heads or num_features % len(degrees):
            raise ValueError(
                f"num_features={num_features} must be divisible by num_heads={num_heads} "
                f"and by the number of degrees ({len(degrees)})."
            )
        if num_features % 4:
            raise ValueError(f"num_features={num_features} must be divisible by 4 (spherical filter width F/4).")
        self.num_features = num_features
        self.num_heads = num_heads
        self.degrees = tuple(degrees)
        self.avg_num_neighbors = avg_num_neighbors
        self.activation = activation

    def __call__(self, x: jnp.ndarray, ev: jnp.ndarray, edges: EdgeFeatures):
        F, H, G = self.num_features, self.num_heads, len(self.degrees)
        dh, dg = F // H, F // G
        N, P = x.shape[0], edges.centers.shape[0]
        i, j = edges.centers, edges.neighbors
        act = self.activation

        # §6.2 block-diagonal queries, keys, values per atom: [q1 | k1 | v1 | q2 | k2], gathered once per pair end.
        dtype = x.dtype
        xh = x.reshape(N, H, dh)
        xg = x.reshape(N, G, dg)
        blocks = [jnp.einsum("nhi,hio->nho", xh, _block_matrix(w, H, dh, dtype)) for w in ("Wq1", "Wk1", "Wv1")]
        blocks += [jnp.einsum("ngi,gio->ngo", xg, _block_matrix(w, G, dg, dtype)) for w in ("Wq2", "Wk2")]
        nodes = jnp.concatenate([b.reshape(N, F) for b in blocks] + [ev], axis=-1)
        at_i, at_j = nodes[i], nodes[j]

        def split(a):
            q1, k1, v1, q2, k2 = (a[:, n * F : (n + 1) * F] for n in range(5))
            return q1.reshape(P, H, dh), k1.reshape(P, H, dh), v1.reshape(P, H, dh), q2.reshape(P, G, dg), \
                k2.reshape(P, G, dg), a[:, 5 * F :]  # fmt: skip

        q1_i, k1_i, v1_i, q2_i, k2_i, ev_i = split(at_i)
        q1_j, k1_j, v1_j, q2_j, k2_j, ev_j = split(at_j)

        # §6.1 filters, once per pair: radial (from β) + spherical (from the invariants of ε_j − ε_i).
        g = degree_contraction(ev_j - ev_i, self.degrees)
        w1 = two_layer_filter(edges.rbf, F, F, act, ("radial_filter1_layer_1", "radial_filter1_layer_2"))
        w1 = w1 + two_layer_filter(g, F // 4, F, act, ("spherical_filter1_layer_1", "spherical_filter1_layer_2"))
        w2 = two_layer_filter(edges.rbf, F, F, act, ("radial_filter2_layer_1", "radial_filter2_layer_2"))
        w2 = w2 + two_layer_filter(g, F // 4, F, act, ("spherical_filter2_layer_1", "spherical_filter2_layer_2"))
        w1, w2 = w1.reshape(P, H, dh), w2.reshape(P, G, dg)

        # §6.3 attention coefficients for both directions: φ/n̄ · Σ_a q_i w_ij k_j (no softmax) and i ↔ j.
        scale = (edges.cut / self.avg_num_neighbors)[:, None]
        a1_ij = jnp.sum(q1_i * w1 * k1_j, axis=-1) * scale
        a1_ji = jnp.sum(q1_j * w1 * k1_i, axis=-1) * scale
        a2_ij = jnp.sum(q2_i * w2 * k2_j, axis=-1) * scale
        a2_ji = jnp.sum(q2_j * w2 * k2_i, axis=-1) * scale

        # §6.4 aggregation: atom i receives from j along r_ij, atom j from i along r_ji = −r_ij.
        dx = pair_segment_sum((a1_ij[..., None] * v1_j).reshape(P, F), (a1_ji[..., None] * v1_i).reshape(P, F), edges)
        y_ij = edges.ylm
        y_ji = y_ij * jnp.asarray(degree_parity(self.degrees), y_ij.dtype)
        dev = pair_segment_sum(expand_degrees(a2_ij, self.degrees) * y_ij,
                               expand_degrees(a2_ji, self.degrees) * y_ji, edges)  # fmt: skip
        return dx, dev
