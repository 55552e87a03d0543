# PROBE (2026-12-07): so3krates_hk/layers/attention.py at 1e6ae82 with both first filter layers as one block product.
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

How it is evaluated (same numbers, chosen by measurement on CPU, ``benchmarks/NOTES.md``): the per-pair work is
bound by memory traffic, so the formulation keeps the number of full (pairs × F) passes low. The radial and
spherical filters of one family share their output layer as one product, [act(β R1a + r1a) | act(g S1a + s1a)]
[R1b; S1b] + (r1b + s1b); sums over a head's or a degree's block are reductions of a (pairs, blocks, width) view.
On the CPU the per-pair terms are also recomputed in the backward pass rather than stored, keeping only the
products with weight matrices (``recompute``), where that measured faster: on jaxlib 0.4.x (the chemtrain environment),
and on jaxlib 0.8.1–0.10.x with YNNPACK fusions off (``so3krates_hk._cpu_runtime``); with YNNPACK on, the stored
version ran faster.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._cpu_runtime import jaxlib_before, ynn_fusions_off
from so3krates_hk.layers.dense import Activation
from so3krates_hk.layers.harmonics import degree_contraction
from so3krates_hk.layers.segments import segment_bounds, sum_over_segments


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
    extent: Optional[jnp.ndarray] = None  # one past the last real pair (``segments.extent``); None: unknown


def pair_segment_sum(to_center: jnp.ndarray, to_neighbor: jnp.ndarray, centers: jnp.ndarray, neighbors: jnp.ndarray,
                     num_nodes: int, indices_are_sorted: bool = False) -> jnp.ndarray:  # fmt: skip
    """Σ of the messages of every pair onto both its atoms: ``to_center`` onto i, ``to_neighbor`` onto j."""
    out = jax.ops.segment_sum(to_center, centers, num_nodes, indices_are_sorted=indices_are_sorted)
    return out + jax.ops.segment_sum(to_neighbor, neighbors, num_nodes)


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


class _DenseParams(hk.Module):
    """The parameters of ``hk.Linear`` (``w`` [in, out], ``b`` [out], same names and initialisers), returned rather
    than applied, so that two filters can share one product."""

    def __init__(self, out: int, name: str):
        super().__init__(name=name)
        self.out = out

    def __call__(self, fan_in: int, dtype) -> tuple[jnp.ndarray, jnp.ndarray]:
        w_init = hk.initializers.TruncatedNormal(1.0 / np.sqrt(fan_in))
        return (hk.get_parameter("w", [fan_in, self.out], dtype, init=w_init),
                hk.get_parameter("b", [self.out], dtype, init=jnp.zeros))  # fmt: skip


def block_sum(a: jnp.ndarray, blocks: int) -> jnp.ndarray:
    """(P, blocks·w) → (P, blocks): the sum over each contiguous block of the last axis."""
    return a.reshape(a.shape[0], blocks, -1).sum(-1)


def block_scale(coeff: jnp.ndarray, a: jnp.ndarray) -> jnp.ndarray:
    """(P, blocks), (P, blocks·w) → (P, blocks·w): each block of ``a`` times its coefficient."""
    p, blocks = coeff.shape
    return (coeff[:, :, None] * a.reshape(p, blocks, -1)).reshape(a.shape)


def recompute_by_default() -> bool:
    """Recompute the per-pair terms in the backward pass, on the CPU backend where it measured faster: jaxlib 0.4.x
    (chemtrain environment; water-1536 per layer 82–89 against 92–95 ms), and jaxlib 0.8.1–0.10.x with YNNPACK
    fusions off (the package's default there; SO3LR e+f dha 1.06–1.11×, bb 1.09–1.11×, water-1536 1.01–1.03×).
    Elsewhere the stored version is faster (YNNPACK on) or unmeasured."""
    if jax.default_backend() != "cpu":
        return False
    return jaxlib_before((0, 5, 0)) or ynn_fusions_off()


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
        recompute: Optional[bool] = None,
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
        self.recompute = recompute  # None: ``recompute_by_default()``

    def __call__(self, x: jnp.ndarray, ev: jnp.ndarray, edges: EdgeFeatures):
        F, H, G = self.num_features, self.num_heads, len(self.degrees)
        dh, dg = F // H, F // G
        dtype = x.dtype
        K = edges.rbf.shape[-1]
        recompute = recompute_by_default() if self.recompute is None else self.recompute

        # block-diagonal queries, keys, values per atom (one dense product each keeps the row-major (N, F) layout
        # that the per-pair gathers read fastest).
        q1, k1, v1 = (x @ _block_diagonal(_block_matrix(w, H, dh, dtype)) for w in ("Wq1", "Wk1", "Wv1"))
        q2, k2 = (x @ _block_diagonal(_block_matrix(w, G, dg, dtype)) for w in ("Wq2", "Wk2"))
        filters = {}
        for f in (1, 2):
            ra, rb = (_DenseParams(F, f"radial_filter{f}_layer_{k}")(n, dtype) for k, n in ((1, K), (2, F)))
            sa, sb = (_DenseParams(d, f"spherical_filter{f}_layer_{k}")(n, dtype)
                      for k, (n, d) in ((1, (G, F // 4)), (2, (F // 4, F))))  # fmt: skip
            # the two output layers as one product: [h_radial | h_spherical] [R_b; S_b] + (r_b + s_b)
            # both first layers as one product of [β | g] with a block-diagonal matrix: no concatenation of hidden layers
            w_in = jnp.block([[ra[0], jnp.zeros((K, F // 4), dtype)], [jnp.zeros((G, F), dtype), sa[0]]])
            filters[f] = (w_in, jnp.concatenate([ra[1], sa[1]]), jnp.concatenate([rb[0], sb[0]], axis=0), rb[1] + sb[1])
        act = jax.checkpoint(self.activation) if recompute else self.activation
        degree_expand = jnp.asarray(_degree_indicator(self.degrees), dtype)  # (G, Σ(2l+1))
        parity = jnp.asarray(degree_parity(self.degrees), dtype)
        nbar = self.avg_num_neighbors

        def filter_fn(f, x):
            w_in, b_in, w_out, b_out = filters[f]
            return act(x @ w_in + b_in) @ w_out + b_out

        def pair_terms(i, j, rbf, cut, ylm):
            q1_i, k1_i, v1_i, q2_i, k2_i, ev_i = (a[i] for a in (q1, k1, v1, q2, k2, ev))
            q1_j, k1_j, v1_j, q2_j, k2_j, ev_j = (a[j] for a in (q1, k1, v1, q2, k2, ev))
            # filters, once per pair: radial (from β) + spherical (from the invariants of ε_j − ε_i).
            g = degree_contraction(ev_j - ev_i, self.degrees)
            x = jnp.concatenate([rbf, g], axis=-1)  # (pairs, K + G), shared by both families
            w1, w2 = filter_fn(1, x), filter_fn(2, x)
            # attention coefficients for both directions: φ/n̄ · Σ_a q_i w_ij k_j (no softmax) and i ↔ j.
            scale = (cut / nbar)[:, None]
            a1_ij = block_sum(q1_i * w1 * k1_j, H) * scale
            a1_ji = block_sum(q1_j * w1 * k1_i, H) * scale
            a2_ij = block_sum(q2_i * w2 * k2_j, G) * scale
            a2_ji = block_sum(q2_j * w2 * k2_i, G) * scale
            # aggregation: atom i receives from j along r_ij, atom j from i along r_ji = −r_ij.
            to_atoms = dict(centers=i, neighbors=j, num_nodes=edges.num_nodes, indices_are_sorted=edges.sorted)
            dx = pair_segment_sum(block_scale(a1_ij, v1_j), block_scale(a1_ji, v1_i), **to_atoms)
            dev = pair_segment_sum((a2_ij @ degree_expand) * ylm, (a2_ji @ degree_expand) * (ylm * parity), **to_atoms)
            return dx, dev

        if recompute:  # keep only the products with weight matrices for the backward pass
            pair_terms = jax.checkpoint(pair_terms, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
        pair_arrays = (edges.centers, edges.neighbors, edges.rbf, edges.cut, edges.ylm)
        # trailing padding is skipped (``layers.segments``): the sums over the pairs of each segment are added
        segment = lambda a, b: pair_terms(*(arr[a:b] for arr in pair_arrays))  # noqa: E731
        return sum_over_segments(segment, segment_bounds(edges.centers.shape[0]), edges.extent)
