"""Small dense building blocks shared by the layers: an MLP with the activation in SO3LR's places, and LayerNorm.

Dense maps are y = x W + b with W stored ``[in, out]`` (haiku's ``hk.Linear`` convention and SO3LR's), so pretrained
kernels drop in without a transpose.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

Activation = Callable[[jnp.ndarray], jnp.ndarray]

ACTIVATIONS: dict[str, Activation] = {
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
}


def get_activation(name: str | Activation) -> Activation:
    """An activation function from its name (SO3LR uses "silu")."""
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.") from None


def two_layer_filter(
    inputs: jnp.ndarray, hidden: int, out: int, activation: Activation, names: Sequence[str]
) -> jnp.ndarray:
    """act(x W₁ + b₁) W₂ + b₂: the filter networks and the hidden+final pair of every head
    (docs/model.md, "Interaction layer", "Heads")."""
    h = activation(hk.Linear(hidden, name=names[0])(inputs))
    return hk.Linear(out, name=names[1])(h)


def residual_mlp(x: jnp.ndarray, activation: Activation, name: str) -> jnp.ndarray:
    """The residual MLP branch (docs/model.md, "Interaction layer"): act(act(x) M₁ + m₁) M₂ + m₂ (activation *before*
    the first layer).

    Parameters live under ``{name}_layer_1`` and ``{name}_layer_2``; the caller adds the result to x.
    """
    width = x.shape[-1]
    h = hk.Linear(width, name=f"{name}_layer_1")(activation(x))
    return hk.Linear(width, name=f"{name}_layer_2")(activation(h))


class LayerNorm(hk.Module):
    """LayerNorm over the last axis with SO3LR's (flax's) statistics (docs/model.md, "Interaction layer").

    LN(x) = (x − μ) / sqrt(σ² + ε) · γ + β, with μ = mean(x), σ² = max(mean(x²) − μ², 0) and ε = 1e-6.
    """

    def __init__(self, eps: float = 1e-6, name: Optional[str] = None):
        super().__init__(name=name)
        self.eps = eps

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        width = x.shape[-1]
        scale = hk.get_parameter("scale", [width], x.dtype, init=jnp.ones)
        offset = hk.get_parameter("offset", [width], x.dtype, init=jnp.zeros)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.maximum(jnp.mean(x * x, axis=-1, keepdims=True) - mean * mean, 0.0)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + offset
