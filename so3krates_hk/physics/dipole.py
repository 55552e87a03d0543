"""The dipole moment of SO3LR's partial charges.

    μ = Σ_i q_i (r_i − R_c),   R_c = Σ_i m_i r_i / Σ_i m_i   (centre of mass)

in e·Å (ASE's unit for ``get_dipole_moment``). For a neutral molecule (Σ q_i = 0, which SO3LR's charge head enforces
for Q = 0) μ = Σ q_i r_i does not depend on the origin. For a charged molecule (Σ q_i = Q ≠ 0) it does: translating
the molecule by t changes Σ q_i r_i by Q·t. We therefore define μ **about the centre of mass**, which moves with the
molecule, so μ is translation-invariant for every charge; this is the usual choice for charged molecules.

Periodic cells: the dipole of a cell depends on how atoms are wrapped into it (moving one atom by a lattice
vector L changes Σ q_i r_i by q_i·L), so it is not a property of the crystal. Only its change along a continuous
trajectory (unwrapped positions) is defined. The functions here compute the formula above for the positions they
are given; the ASE calculator and ``so3krates-hk eval`` report the dipole for free-space structures only.

Masses are the standard atomic weights (u) used by ASE (``ase.data.atomic_masses``), indexed by Z.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Standard atomic weights, u, Z = 0 … 99 (index 0 is a placeholder); the values of ase.data.atomic_masses.
ATOMIC_MASSES = (
    1.0, 1.008, 4.002602, 6.94, 9.0121831, 10.81, 12.011, 14.007, 15.999, 18.998403163, 20.1797, 22.98976928, 24.305,
    26.9815385, 28.085, 30.973761998, 32.06, 35.45, 39.948, 39.0983, 40.078, 44.955908, 47.867, 50.9415, 51.9961,
    54.938044, 55.845, 58.933194, 58.6934, 63.546, 65.38, 69.723, 72.63, 74.921595, 78.971, 79.904, 83.798, 85.4678,
    87.62, 88.90584, 91.224, 92.90637, 95.95, 97.90721, 101.07, 102.9055, 106.42, 107.8682, 112.414, 114.818, 118.71,
    121.76, 127.6, 126.90447, 131.293, 132.90545196, 137.327, 138.90547, 140.116, 140.90766, 144.242, 144.91276, 150.36,
    151.964, 157.25, 158.92535, 162.5, 164.93033, 167.259, 168.93422, 173.054, 174.9668, 178.49, 180.94788, 183.84,
    186.207, 190.23, 192.217, 195.084, 196.966569, 200.592, 204.38, 207.2, 208.9804, 208.98243, 209.98715, 222.01758,
    223.01974, 226.02541, 227.02775, 232.0377, 231.03588, 238.02891, 237.04817, 244.06421, 243.06138, 247.07035,
    247.07031, 251.07959, 252.083,
)  # fmt: skip


def atomic_masses(atomic_numbers: jnp.ndarray, dtype=jnp.float32) -> jnp.ndarray:
    """m_i, u, of atomic numbers Z (1 … 99)."""
    return jnp.asarray(ATOMIC_MASSES, dtype)[jnp.asarray(atomic_numbers, jnp.int32)]


def center_of_mass(position: jnp.ndarray, masses: jnp.ndarray, node_mask=None) -> jnp.ndarray:
    """R_c = Σ m_i r_i / Σ m_i over the unmasked atoms; (3,)."""
    m = masses if node_mask is None else jnp.where(node_mask, masses, 0.0)
    return jnp.sum(m[:, None] * position, axis=0) / jnp.sum(m)


def dipole_moment(charges: jnp.ndarray, position: jnp.ndarray, atomic_numbers: jnp.ndarray,
                  node_mask=None) -> jnp.ndarray:  # fmt: skip
    """μ = Σ_i q_i (r_i − R_c) about the centre of mass, e·Å; masked atoms contribute exactly zero. (3,)."""
    masses = atomic_masses(atomic_numbers, position.dtype)
    center = center_of_mass(position, masses, node_mask)
    q = charges if node_mask is None else jnp.where(node_mask, charges, 0.0)
    r = position - center if node_mask is None else jnp.where(node_mask[:, None], position - center, 0.0)
    return jnp.sum(q[:, None] * r, axis=0)


def dipole_moments(charges: jnp.ndarray, position: jnp.ndarray, atomic_numbers: jnp.ndarray, segment: jnp.ndarray,
                   num_segments: int, node_mask=None) -> jnp.ndarray:  # fmt: skip
    """μ_s = Σ_{i∈s} q_i (r_i − R_c,s) of several structures in one array (atom i in structure ``segment[i]``), each
    about its own centre of mass; masked atoms contribute exactly zero. (num_segments, 3)."""
    masses = atomic_masses(atomic_numbers, position.dtype)
    m = masses if node_mask is None else jnp.where(node_mask, masses, 0.0)
    total = jax.ops.segment_sum(m, segment, num_segments)
    center = jax.ops.segment_sum(m[:, None] * position, segment, num_segments) / jnp.maximum(total, 1e-30)[:, None]
    r = position - center[segment]
    q = charges
    if node_mask is not None:
        r, q = jnp.where(node_mask[:, None], r, 0.0), jnp.where(node_mask, charges, 0.0)
    return jax.ops.segment_sum(q[:, None] * r, segment, num_segments)


__all__ = ["ATOMIC_MASSES", "atomic_masses", "center_of_mass", "dipole_moment", "dipole_moments"]
