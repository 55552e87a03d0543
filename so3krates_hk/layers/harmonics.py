"""Real spherical harmonics in the SO3LR basis, and the degree-wise invariant contraction (docs/model.md,
"Edge geometry").

SO3LR uses orthonormal real harmonics without Condon–Shortley phase, polar axis z, components m = −l … l. That is
exactly e3nn-jax's ``spherical_harmonics`` with ``normalize=True``, ``normalization="integral"``, irreps
"1o + 2e + 3o + 4e" and the input permuted to (y, z, x) (docs/model.md, "Edge geometry"). A vector of several degrees
is stored flat, degree after degree: for degrees (1, 2, 3, 4) the 24 components start at offsets 0, 3, 8, 15.
"""

from __future__ import annotations

from typing import Sequence

import e3nn_jax as e3nn
import jax.numpy as jnp
import numpy as np

Degrees = Sequence[int]


def harmonics_dim(degrees: Degrees) -> int:
    """Length of the flat vector holding all degrees: Σ (2l + 1)."""
    return sum(2 * l + 1 for l in degrees)


def degree_repeats(degrees: Degrees) -> np.ndarray:
    """How many components each degree has, (2l + 1) per degree."""
    return np.array([2 * l + 1 for l in degrees])


def spherical_harmonics(vectors: jnp.ndarray, degrees: Degrees = (1, 2, 3, 4)) -> jnp.ndarray:
    """Y_lm(r̂) for each degree in ``degrees`` (docs/model.md, "Edge geometry").

    Args:
        vectors: edge vectors r_ij, shape (P, 3); they are normalised here. Zero vectors must be masked out
            upstream (docs/model.md, "Graphs").
        degrees: the degrees l ≥ 1 to evaluate, in order.

    Returns:
        Y, shape (P, Σ(2l+1)), in the mlff basis and layout.
    """
    irreps = e3nn.Irreps([(1, (l, (-1) ** l)) for l in degrees])
    yzx = vectors[..., jnp.array([1, 2, 0])]
    return e3nn.spherical_harmonics(irreps, yzx, normalize=True, normalization="integral").array


def degree_contraction(v: jnp.ndarray, degrees: Degrees = (1, 2, 3, 4)) -> jnp.ndarray:
    """c_l(v) = (2l+1)^(-1/2) Σ_m v_lm² for each degree (docs/model.md, "Edge geometry").

    The prefactor is the Clebsch–Gordan coefficient ⟨l m; l m | 0 0⟩ in this basis; dropping it moves SO3LR's
    energy by ~18 eV (docs/model.md, "Edge geometry").

    Args:
        v: equivariant vectors, shape (..., Σ(2l+1)).

    Returns:
        Invariants, shape (..., len(degrees)), ordered like ``degrees``.
    """
    out = []
    start = 0
    for l in degrees:
        stop = start + 2 * l + 1
        out.append(jnp.sum(v[..., start:stop] ** 2, axis=-1) / float(np.sqrt(2 * l + 1)))
        start = stop
    return jnp.stack(out, axis=-1)


def expand_degrees(per_degree: jnp.ndarray, degrees: Degrees = (1, 2, 3, 4)) -> jnp.ndarray:
    """Broadcast one value per degree to the 2l+1 components of that degree: (..., n_deg) → (..., Σ(2l+1))."""
    return jnp.repeat(per_degree, degree_repeats(degrees), axis=-1, total_repeat_length=harmonics_dim(degrees))
