"""Per-atom heads on the final invariant features x (docs/model.md, "Heads").

* ``EnergyHead``:      E^nn_i = (act(x_i We1 + be1) We2 + be2) · s_{Z_i} + o_{Z_i}   (scale, then shift)
* ``PartialChargeHead``: q̃_i = act(x_i Wq1 + bq1) Wq2 + bq2 + t_{Z_i};  q_i = q̃_i + (Q − Σ_j q̃_j) / N
* ``HirshfeldHead``:   h_i = | v0_{Z_i} + Σ_a U_{Z_i}[a] k_i[a] / √A |,  k_i = act(x_i Wh1 + bh1) Wh2 + bh2

Sums over "the structure" run over the real atoms (``node_mask``); padded atoms get exactly zero.
"""

from __future__ import annotations

from typing import Optional

import haiku as hk
import jax.numpy as jnp
import numpy as np

from so3krates_hk.layers.dense import Activation, two_layer_filter
from so3krates_hk.layers.embedding import GlobalSum


class EnergyHead(hk.Module):
    """Per-atom energy with per-species scale and shift (docs/model.md, "Heads")."""

    def __init__(
        self,
        num_species: int,
        regression_dim: int,
        activation: Activation,
        learn_atomic_scales: bool = True,
        learn_atomic_shifts: bool = True,
        name: Optional[str] = "energy_head",
    ):
        super().__init__(name=name)
        self.num_species = num_species
        self.regression_dim = regression_dim
        self.activation = activation
        self.learn_atomic_scales = learn_atomic_scales
        self.learn_atomic_shifts = learn_atomic_shifts

    def __call__(self, x: jnp.ndarray, species: jnp.ndarray) -> jnp.ndarray:
        e = two_layer_filter(
            x, self.regression_dim, 1, self.activation, ("energy_dense_regression", "energy_dense_final")
        )[:, 0]
        if self.learn_atomic_scales:
            scales = hk.get_parameter("atomic_scales", [self.num_species], x.dtype, init=jnp.ones)
            e = e * scales[species]
        if self.learn_atomic_shifts:
            shifts = hk.get_parameter("energy_offset", [self.num_species], x.dtype, init=jnp.zeros)
            e = e + shifts[species]
        return e


class PartialChargeHead(hk.Module):
    """Partial charges with total-charge conservation (docs/model.md, "Heads"). SO3LR's bias table has 100 rows
    (Z ≤ 99)."""

    def __init__(self, num_species: int, activation: Activation, name: Optional[str] = "partial_charges"):
        super().__init__(name=name)
        self.num_species = num_species
        self.activation = activation

    def __call__(self, x, species, total_charge, node_mask, global_sum: Optional[GlobalSum] = None) -> jnp.ndarray:
        """``global_sum``: how N and Σ_j q̃_j are taken over the structure (default ``jnp.sum``), as in
        ``ChargeSpinEmbedding``."""
        F = x.shape[-1]
        q = two_layer_filter(x, F, 1, self.activation, ("charge_dense_regression_vec", "charge_dense_final_vec"))[:, 0]
        bias = hk.get_parameter("charge_bias", [self.num_species, 1], x.dtype, init=jnp.zeros)
        q = jnp.where(node_mask, q + bias[species, 0], 0.0)
        if global_sum is None:
            num_atoms = jnp.maximum(jnp.sum(node_mask), 1).astype(x.dtype)
            correction = (total_charge - jnp.sum(q)) / num_atoms
        else:
            num_atoms = jnp.maximum(global_sum(f"{self.module_name}/num_atoms", node_mask.astype(x.dtype)), 1)
            correction = (total_charge - global_sum(f"{self.module_name}/charge", q)) / num_atoms
        return jnp.where(node_mask, q + correction, 0.0)


class HirshfeldHead(hk.Module):
    """Hirshfeld volume ratios (docs/model.md, "Heads"), used to rescale the free-atom dispersion data."""

    def __init__(
        self, num_species: int, activation: Activation, width: int = 64, name: Optional[str] = "hirshfeld_ratios"
    ):
        super().__init__(name=name)
        self.num_species = num_species
        self.activation = activation
        self.width = width

    def __call__(self, x, species, node_mask) -> jnp.ndarray:
        A = self.width
        k = two_layer_filter(
            x, A, A, self.activation, ("hirshfeld_ratios_dense_regression", "hirshfeld_ratios_dense_final")
        )
        init = hk.initializers.TruncatedNormal(1.0)
        shift = hk.get_parameter("ratio_shift", [self.num_species, 1], x.dtype, init=jnp.ones)
        query = hk.get_parameter("ratio_query", [self.num_species, A], x.dtype, init=init)
        h = jnp.abs(shift[species, 0] + jnp.sum(query[species] * k, axis=-1) / float(np.sqrt(A)))
        return jnp.where(node_mask, h, 0.0)
