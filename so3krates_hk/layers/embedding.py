"""Initial node features: atom-type, total-charge and spin embeddings (docs/model.md, "Initial features").

x⁰_i = (e^Z_i + e^Q_i + e^S_i) / √(number of embedding modules);  ε⁰_i = 0.
"""

from __future__ import annotations

from typing import Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk.precision import softplus32

GlobalSum = Callable[[str, jnp.ndarray], jnp.ndarray]
"""``global_sum(name, per_atom) -> Σ over every atom of the structure``. ``name`` identifies the sum (a module
path and what is summed); ``per_atom`` is zero on masked atoms. The default is ``jnp.sum(per_atom)``. When one
graph holds several structures (``so3krates_hk.packed``), it returns per atom the sum over that atom's structure,
and the total charge and spin are then given per atom too (each atom its structure's)."""


class AtomTypeEmbedding(hk.Module):
    """e^Z_i = A[Z_i] (docs/model.md, "Initial features"). A has ``num_species`` rows, indexed directly by species
    (SO3LR: by Z, 119 rows)."""

    def __init__(self, num_species: int, num_features: int, name: Optional[str] = "atom_type_embedding"):
        super().__init__(name=name)
        self.num_species = num_species
        self.num_features = num_features

    def __call__(self, species: jnp.ndarray, dtype=jnp.float32) -> jnp.ndarray:
        table = hk.get_parameter(
            "embeddings", [self.num_species, self.num_features], dtype, init=hk.initializers.TruncatedNormal(1.0)
        )
        return table[species]


class ChargeSpinEmbedding(hk.Module):
    """SpookyNet-style embedding of one per-structure scalar ψ: the total charge Q or unpaired electrons S
    (docs/model.md, "Initial features").

    1. σ(ψ) = 1 if ψ < 0 else 0 (−0.0 counts as non-negative; docs/model.md, "Initial features").
    2. q_i = B[Z_i], k = Kt[σ], v = Vt[σ].
    3. α_i = softplus(q_i · k / √F), **in float32** (docs/model.md, "Precision", P3), and a_i = ψ α_i / Σ_j α_j
       over the real atoms.
    4. u_i = a_i v;  e^ψ_i = u_i + silu(silu(u_i) G₀) G₁ (no biases).

    For ψ = 0 the output is exactly 0.
    """

    def __init__(self, num_species: int, num_features: int, name: Optional[str] = None):
        super().__init__(name=name)
        self.num_species = num_species
        self.num_features = num_features

    def __call__(self, species: jnp.ndarray, psi: jnp.ndarray, node_mask: jnp.ndarray, dtype=jnp.float32,
                 global_sum: Optional[GlobalSum] = None):
        """``global_sum(name, per_atom)``: how Σ_j α_j is taken (default ``jnp.sum``; a domain-decomposed driver
        passes a sum over all ranks, see ``so3krates_hk.lammps``)."""
        F = self.num_features
        init = hk.initializers.TruncatedNormal(float(1.0 / np.sqrt(F)))
        query = hk.get_parameter("query", [self.num_species, F], dtype, init=init)
        key = hk.get_parameter("key", [2, F], dtype, init=init)
        value = hk.get_parameter("value", [2, F], dtype, init=init)

        psi = jnp.asarray(psi, dtype)
        row = jnp.where(psi < 0, 1, 0)
        # Float32 island (docs/model.md, "Precision", P3): dot product, the float32 constant √F, softplus and the sum
        # over atoms.
        f32 = jnp.float32
        if row.ndim == 0:
            logits = jnp.sum(query[species].astype(f32) * key[row].astype(f32), axis=-1) / np.float32(np.sqrt(F))
        else:  # ψ per atom (several structures in one graph): both rows of Kt, each the computation above
            both = [jnp.sum(query[species].astype(f32) * key[r].astype(f32), axis=-1) / np.float32(np.sqrt(F))
                    for r in (0, 1)]  # fmt: skip
            logits = jnp.where(row == 1, both[1], both[0])
        alpha = jnp.where(node_mask, softplus32(logits), f32(0))
        total = jnp.sum(alpha) if global_sum is None else global_sum(f"{self.module_name}/alpha", alpha)
        total = jnp.where(total > 0, total, f32(1))
        a = psi * alpha.astype(dtype) / total.astype(dtype)

        u = a[:, None] * value[row].astype(dtype)
        h = hk.Linear(F, with_bias=False, name="residual_layer_0")(jax.nn.silu(u))
        h = hk.Linear(F, with_bias=False, name="residual_layer_1")(jax.nn.silu(h))
        return u + h
