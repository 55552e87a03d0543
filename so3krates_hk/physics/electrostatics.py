"""Damped, shifted-force Coulomb energy on the long-range pairs (docs/model.md, "Physical terms").

    V(r)  = erf(r/σ_e) / r
    V′(r) = [2 r exp(−r²/σ_e²) / (√π σ_e) − erf(r/σ_e)] / r²
    E_ij  = c · k_e q_i q_j [V(d) − V(r_lr) − (1 − f) V′(r_lr)(d − r_lr)]   for d < r_lr, else 0
    f     = Sw(d; 0.45 r_lr, r_lr)

c is the pair multiplicity: 1 for a list with each pair once, ½ for a list with both directions (docs/model.md,
"Graphs"). σ_e is the erf width, not an energy scale (docs/model.md, "Physical terms"). With ``lr_cutoff=None`` the
bare damped kernel c k_e q_i q_j V(d) is used, without shift, switch or cutoff.
"""

from __future__ import annotations

import math
from typing import Optional

import jax.numpy as jnp
import jax.scipy.special as jss

from so3krates_hk.layers.cutoff import smooth_switch
from so3krates_hk.physics.constants import KE


def damped_kernel(r, sigma: float):
    """V(r) = erf(r/σ)/r."""
    return jss.erf(r / sigma) / r


def damped_kernel_derivative(r: float, sigma: float) -> float:
    """V′(r) on the host, float64."""
    return (2 * r * math.exp(-(r**2) / sigma**2) / (math.sqrt(math.pi) * sigma) - math.erf(r / sigma)) / r**2


def coulomb_pair_energy(
    d: jnp.ndarray,
    q_i: jnp.ndarray,
    q_j: jnp.ndarray,
    lr_cutoff: Optional[float] = 12.0,
    sigma: float = 4.0,
    multiplicity: float = 1.0,
    switch_on_fraction: float = 0.45,
) -> jnp.ndarray:
    """Per-pair electrostatic energy in eV (docs/model.md, "Physical terms"). ``d`` must be > 0 on every pair (mask
    upstream)."""
    v = damped_kernel(d, sigma)
    if lr_cutoff is None:
        return multiplicity * KE * q_i * q_j * v
    v_c = math.erf(lr_cutoff / sigma) / lr_cutoff
    dv_c = damped_kernel_derivative(lr_cutoff, sigma)
    f = smooth_switch(d, switch_on_fraction * lr_cutoff, lr_cutoff)
    e = multiplicity * KE * q_i * q_j * (v - v_c - (1 - f) * dv_c * (d - lr_cutoff))
    return jnp.where(d < lr_cutoff, e, 0.0)
