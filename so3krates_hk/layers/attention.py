"""Euclidean attention: filters, queries/keys/values, attention coefficients without softmax, aggregation
(docs/model.md, "Interaction layer").

For an edge (i, j), i the centre that receives and j its neighbour:

    g_ij   = c(ε_j − ε_i)                                            (one invariant per degree)
    w¹_ij  = act(β_ij R1a + r1a) R1b + r1b + act(g_ij S1a + s1a) S1b + s1b,   w² likewise
    α¹_ij^(h) = φ(d_ij) / n̄ · Σ_a q1_i^(h)[a] w¹_ij^(h)[a] k1_j^(h)[a]       (one per head h)
    α²_ij^(l) = φ(d_ij) / n̄ · Σ_a q2_i^(l)[a] w²_ij^(l)[a] k2_j^(l)[a]       (one per degree l)
    Δx_i^(h)  = Σ_j α¹_ij^(h) v_j^(h)          Δε_i,lm = Σ_j α²_ij^(l) Y_lm(r̂_ij)

There is no softmax and no √d scaling, only the constant message normaliser n̄ (docs/model.md, "Interaction layer"). The
query/key/value maps are block-diagonal: x is split into contiguous blocks (one per head for family 1, one per degree
for family 2), each with its own square matrix, stored here as ``[block, in, out]`` (SO3LR stores ``[block, out, in]``;
the converter transposes them; docs/model.md, "Interaction layer").

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


def _degree_indicator(degrees: Sequence[int]) -> np.ndarray:
    """(len(degrees), Σ(2l+1)) 0/1 matrix: row g is 1 on the components of degree ``degrees[g]``."""
    out = np.zeros((len(degrees), sum(2 * l + 1 for l in degrees)))
    start = 0
    for g, l in enumerate(degrees):
        out[g, start : start + 2 * l + 1] = 1.0
        start += 2 * l + 1
    return out


def _block_diagonal(blocks: jnp.ndarray) -> jnp.ndarray:
    """[block, in, out] → the (block·in, block·out) block-diagonal matrix. One dense (N, F) @ (F, F) product per atom
    keeps the result in row-major (N, F) layout, which the per-pair gathers read fastest (the batched einsum's
    block-major output made XLA gather through a transpose, ~20× slower on CPU)."""
    b, n_in, n_out = blocks.shape
    eye = jnp.eye(b, dtype=blocks.dtype)
    return jnp.einsum("bio,bc->bico", blocks, eye).reshape(b * n_in, b * n_out)


def _block_matrix(name: str, blocks: int, width: int, dtype) -> jnp.ndarray:
    return hk.get_parameter(
        name, [blocks, width, width], dtype, init=hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")
    )


class EuclideanAttention(hk.Module):
    """One Euclidean attention update (Δx, Δε) of an SO3krates layer (docs/model.md, "Interaction layer")."""

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

        # block-diagonal queries, keys, values per atom, each gathered at both pair ends (separate contiguous
        # gathers: slicing one concatenated gather is several times slower on CPU).
        dtype = x.dtype
        q1, k1, v1 = (x @ _block_diagonal(_block_matrix(w, H, dh, dtype)) for w in ("Wq1", "Wk1", "Wv1"))
        q2, k2 = (x @ _block_diagonal(_block_matrix(w, G, dg, dtype)) for w in ("Wq2", "Wk2"))
        q1_i, k1_i, v1_i, q2_i, k2_i = (a[i] for a in (q1, k1, v1, q2, k2))
        q1_j, k1_j, v1_j, q2_j, k2_j = (a[j] for a in (q1, k1, v1, q2, k2))
        ev_i, ev_j = ev[i], ev[j]

        # filters, once per pair: radial (from β) + spherical (from the invariants of ε_j − ε_i).
        g = degree_contraction(ev_j - ev_i, self.degrees)
        w1 = two_layer_filter(edges.rbf, F, F, act, ("radial_filter1_layer_1", "radial_filter1_layer_2"))
        w1 = w1 + two_layer_filter(g, F // 4, F, act, ("spherical_filter1_layer_1", "spherical_filter1_layer_2"))
        w2 = two_layer_filter(edges.rbf, F, F, act, ("radial_filter2_layer_1", "radial_filter2_layer_2"))
        w2 = w2 + two_layer_filter(g, F // 4, F, act, ("spherical_filter2_layer_1", "spherical_filter2_layer_2"))

        # attention coefficients for both directions: φ/n̄ · Σ_a q_i w_ij k_j (no softmax) and i ↔ j. The sums over
        # a block and the broadcasts back are products with 0/1 block-indicator matrices (dots vectorise on CPU).
        scale = (edges.cut / self.avg_num_neighbors)[:, None]
        hp = jax.lax.Precision.HIGHEST
        head_sum = jnp.asarray(np.kron(np.eye(H), np.ones((dh, 1))), dtype)  # (F, H)
        deg_sum = jnp.asarray(np.kron(np.eye(G), np.ones((dg, 1))), dtype)  # (F, G)
        a1_ij = jnp.dot(q1_i * w1 * k1_j, head_sum, precision=hp) * scale
        a1_ji = jnp.dot(q1_j * w1 * k1_i, head_sum, precision=hp) * scale
        a2_ij = jnp.dot(q2_i * w2 * k2_j, deg_sum, precision=hp) * scale
        a2_ji = jnp.dot(q2_j * w2 * k2_i, deg_sum, precision=hp) * scale

        # aggregation: atom i receives from j along r_ij, atom j from i along r_ji = −r_ij.
        head_expand = head_sum.T  # (H, F)
        deg_expand = jnp.asarray(_degree_indicator(self.degrees), dtype)  # (G, Σ(2l+1))
        dx = pair_segment_sum(jnp.dot(a1_ij, head_expand, precision=hp) * v1_j,
                              jnp.dot(a1_ji, head_expand, precision=hp) * v1_i, edges)  # fmt: skip
        y_ij = edges.ylm
        y_ji = y_ij * jnp.asarray(degree_parity(self.degrees), y_ij.dtype)
        dev = pair_segment_sum(jnp.dot(a2_ij, deg_expand, precision=hp) * y_ij,
                               jnp.dot(a2_ji, deg_expand, precision=hp) * y_ji, edges)  # fmt: skip
        return dx, dev
