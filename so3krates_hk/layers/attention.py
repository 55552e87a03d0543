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
    """Geometry of the short-range edges, shared by every layer.

    ``centers`` (i, receives) and ``neighbors`` (j) index atoms; padded edges hold a valid index and ``cut == 0``.
    """

    centers: jnp.ndarray  # (P,) int32
    neighbors: jnp.ndarray  # (P,) int32
    rbf: jnp.ndarray  # (P, K) Bernstein basis β_ij
    cut: jnp.ndarray  # (P,) cutoff φ(d_ij), 0 on padded/masked edges
    ylm: jnp.ndarray  # (P, Σ(2l+1)) spherical harmonics Y(r̂_ij)
    num_nodes: int
    sorted: bool  # centres ascending: lets segment sums use the sorted kernel


def segment_sum(data: jnp.ndarray, edges: EdgeFeatures) -> jnp.ndarray:
    """Σ over the edges of each centre atom."""
    return jax.ops.segment_sum(data, edges.centers, edges.num_nodes, indices_are_sorted=edges.sorted)


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
        ctr, nbr = edges.centers, edges.neighbors
        act = self.activation

        # §6.1 filters: radial (from β) + spherical (from the invariants of ε_j − ε_i).
        g = degree_contraction(ev[nbr] - ev[ctr], self.degrees)
        w1 = two_layer_filter(edges.rbf, F, F, act, ("radial_filter1_layer_1", "radial_filter1_layer_2"))
        w1 = w1 + two_layer_filter(g, F // 4, F, act, ("spherical_filter1_layer_1", "spherical_filter1_layer_2"))
        w2 = two_layer_filter(edges.rbf, F, F, act, ("radial_filter2_layer_1", "radial_filter2_layer_2"))
        w2 = w2 + two_layer_filter(g, F // 4, F, act, ("spherical_filter2_layer_1", "spherical_filter2_layer_2"))

        # §6.2 block-diagonal queries, keys, values (per node, then gathered to the edges).
        dtype = x.dtype
        xh = x.reshape(N, H, dh)
        xg = x.reshape(N, G, dg)
        q1 = jnp.einsum("nhi,hio->nho", xh, _block_matrix("Wq1", H, dh, dtype))
        k1 = jnp.einsum("nhi,hio->nho", xh, _block_matrix("Wk1", H, dh, dtype))
        v1 = jnp.einsum("nhi,hio->nho", xh, _block_matrix("Wv1", H, dh, dtype))
        q2 = jnp.einsum("ngi,gio->ngo", xg, _block_matrix("Wq2", G, dg, dtype))
        k2 = jnp.einsum("ngi,gio->ngo", xg, _block_matrix("Wk2", G, dg, dtype))

        # §6.3 attention coefficients: φ/n̄ · Σ_a q_i w_ij k_j, no softmax.
        scale = edges.cut / self.avg_num_neighbors
        alpha1 = jnp.sum(q1[ctr] * w1.reshape(P, H, dh) * k1[nbr], axis=-1) * scale[:, None]
        alpha2 = jnp.sum(q2[ctr] * w2.reshape(P, G, dg) * k2[nbr], axis=-1) * scale[:, None]

        # §6.4 aggregation onto the centres.
        dx = segment_sum((alpha1[:, :, None] * v1[nbr]).reshape(P, F), edges)
        dev = segment_sum(expand_degrees(alpha2, self.degrees) * edges.ylm, edges)
        return dx, dev
