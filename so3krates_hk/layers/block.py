"""One SO3krates layer: attention → add → LN₁ → residual MLP 1 → exchange → (residual MLP 2) → LN₂ (docs/model.md,
"Interaction layer").

The exchange block (docs/model.md, "Interaction layer") couples invariant and equivariant features with one dense layer and no activation:

    [a_i | b_i] = [x_i | c_1(ε_i) … c_L(ε_i)] X + xb,    x_i ← x_i + a_i,    ε_i,lm ← ε_i,lm + b_i,l ε_i,lm
"""

from __future__ import annotations

from typing import Optional, Sequence

import haiku as hk
import jax.numpy as jnp

from so3krates_hk.layers.attention import EdgeFeatures, EuclideanAttention
from so3krates_hk.layers.dense import Activation, LayerNorm, residual_mlp
from so3krates_hk.layers.harmonics import degree_contraction, expand_degrees


class ExchangeBlock(hk.Module):
    """Feature exchange between x and ε (docs/model.md, "Interaction layer")."""

    def __init__(self, degrees: Sequence[int], name: Optional[str] = "exchange_block"):
        super().__init__(name=name)
        self.degrees = tuple(degrees)

    def __call__(self, x: jnp.ndarray, ev: jnp.ndarray):
        F = x.shape[-1]
        y = jnp.concatenate([x, degree_contraction(ev, self.degrees).astype(x.dtype)], axis=-1)
        out = hk.Linear(F + len(self.degrees), name="mlp_layer_2")(y)
        a, b = out[:, :F], out[:, F:]
        return x + a, ev + expand_degrees(b, self.degrees) * ev


class SO3kratesLayer(hk.Module):
    """An SO3krates interaction layer (docs/model.md, "Interaction layer")."""

    def __init__(
        self,
        num_features: int,
        num_heads: int,
        degrees: Sequence[int],
        avg_num_neighbors: float,
        activation: Activation,
        layer_norm_1: bool = True,
        layer_norm_2: bool = True,
        residual_mlp_1: bool = True,
        residual_mlp_2: bool = False,
        name: Optional[str] = None,
    ):
        super().__init__(name=name)
        self.num_features = num_features
        self.num_heads = num_heads
        self.degrees = tuple(degrees)
        self.avg_num_neighbors = avg_num_neighbors
        self.activation = activation
        self.layer_norm_1 = layer_norm_1
        self.layer_norm_2 = layer_norm_2
        self.residual_mlp_1 = residual_mlp_1
        self.residual_mlp_2 = residual_mlp_2

    def __call__(self, x: jnp.ndarray, ev: jnp.ndarray, edges: EdgeFeatures, num_out: Optional[int] = None):
        """(x, ε) of every node after the layer; with ``num_out``, of the first ``num_out`` nodes only (the
        attention still reads every node; the per-atom blocks after it run on those nodes alone)."""
        dx, dev = EuclideanAttention(
            self.num_features, self.num_heads, self.degrees, self.avg_num_neighbors, self.activation
        )(x, ev, edges)
        if num_out is not None:
            x, ev, dx, dev = x[:num_out], ev[:num_out], dx[:num_out], dev[:num_out]
        x = x + dx
        ev = ev + dev
        if self.layer_norm_1:
            x = LayerNorm(name="layer_normalization_1")(x)
        if self.residual_mlp_1:
            x = x + residual_mlp(x, self.activation, "res_mlp_1")
        x, ev = ExchangeBlock(self.degrees)(x, ev)
        if self.residual_mlp_2:
            x = x + residual_mlp(x, self.activation, "res_mlp_2")
        if self.layer_norm_2:
            x = LayerNorm(name="layer_normalization_2")(x)
        return x, ev
