"""Bernstein radial basis (docs/model.md, "Edge geometry").

    u = exp(-γ d),   β_k(d) = C(K-1, k) · u^k · (1 - u)^(K-1-k),   k = 0 … K-1

evaluated in log space, exp(ln C + k ln u + (K-1-k) ln(1-u)), as SO3LR does. The basis is *not* multiplied by
the cutoff function (docs/model.md, "Edge geometry"). Edges with u ∈ {0, 1} (d = 0 or d = ∞, i.e. padding) get β = 0
with a finite gradient.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

# SO3LR stores γ = 1/(2 a₀) as a float32 scalar; the float64 path multiplies that rounded value into the float64
# distance (docs/model.md, "Edge geometry"). Using the unrounded 0.944863062918464 moves a 148-atom energy by 1.6e-6 eV.
BERNSTEIN_GAMMA = 0.9448630809783936


def log_binomials(num_basis: int) -> np.ndarray:
    """ln C(K-1, k) for k = 0 … K-1, in float64 on the host."""
    n = num_basis - 1
    return np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in range(num_basis)])


def bernstein_basis(d: jnp.ndarray, num_basis: int = 32, gamma: float = BERNSTEIN_GAMMA) -> jnp.ndarray:
    """Bernstein polynomials of u = exp(-γ d) (docs/model.md, "Edge geometry").

    Args:
        d: distances, shape (P,).
        num_basis: K, the number of basis functions.
        gamma: γ in inverse length units (SO3LR: 0.9448630809783936 Å⁻¹, the float32-rounded 1/(2 a₀)).

    Returns:
        β, shape (P, K), ordered k = 0 … K-1; zero where u ∉ (0, 1).
    """
    n = num_basis - 1
    k = np.arange(num_basis)
    u = jnp.exp(-gamma * d)
    valid = (u > 0) & (u < 1)
    u_safe = jnp.where(valid, u, 0.5)[..., None]
    log_u = jnp.log(u_safe)
    log_1mu = jnp.log(1 - u_safe)
    # k ln u is dropped for k = 0 and (K-1-k) ln(1-u) for k = K-1: multiplying a finite log by 0 does exactly that.
    exponent = jnp.asarray(log_binomials(num_basis), d.dtype) + k * log_u + (n - k) * log_1mu
    return jnp.where(valid[..., None], jnp.exp(exponent), 0.0)
