"""Cutoff and switching functions (docs/model.md, "Edge geometry"; docs/model.md, "Physical terms").

* ``phys_cutoff``: φ(d) = 1 − 6t⁵ + 15t⁴ − 10t³ with t = d / r_c for d < r_c, else 0. φ(0) = 1, and φ, φ′, φ″
  vanish at r_c. Multiplies the attention coefficients and the ZBL Coulomb prefactor, never the radial basis.
* ``cosine_cutoff``: ½(cos(π d / r_c) + 1) for d < r_c (the SO3krates paper's default), offered for new models.
* ``smooth_switch``: Sw(x; x_on, x_off) = σ(1−t) / (σ(1−t) + σ(t)), σ(y) = exp(−1/y) for y > 0, t = (x − x_on) /
  (x_off − x_on). Sw = 1 below x_on, 0 above x_off, C^∞ in between; used by ZBL, Coulomb and dispersion.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp


def phys_cutoff(d: jnp.ndarray, r_cut: float) -> jnp.ndarray:
    """The "phys" polynomial cutoff φ(d) (docs/model.md, "Edge geometry"), written in the original's term order."""
    t = d / r_cut
    poly = 1 - 6 * t**5 + 15 * t**4 - 10 * t**3
    return jnp.where(d < r_cut, poly, 0.0)


def cosine_cutoff(d: jnp.ndarray, r_cut: float) -> jnp.ndarray:
    """½ (cos(π d / r_c) + 1) for d < r_c, else 0."""
    return jnp.where(d < r_cut, 0.5 * (jnp.cos(jnp.pi * d / r_cut) + 1), 0.0)


CUTOFF_FUNCTIONS: dict[str, Callable[[jnp.ndarray, float], jnp.ndarray]] = {
    "phys": phys_cutoff,
    "cosine": cosine_cutoff,
}


def get_cutoff_fn(name: str) -> Callable[[jnp.ndarray, float], jnp.ndarray]:
    """Look up a cutoff function by its SO3LR hyperparameter name."""
    try:
        return CUTOFF_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"Unknown cutoff_fn {name!r}; choose one of {sorted(CUTOFF_FUNCTIONS)}.") from None


def _sigma(y: jnp.ndarray) -> jnp.ndarray:
    """σ(y) = exp(−1/y) for y > 0, else 0, with a NaN-free gradient for y ≤ 0."""
    positive = y > 0
    return jnp.where(positive, jnp.exp(-1.0 / jnp.where(positive, y, 1.0)), 0.0)


def smooth_switch(x: jnp.ndarray, x_on: float, x_off: float) -> jnp.ndarray:
    """Sw(x; x_on, x_off) (docs/model.md, "Physical terms"): 1 for x ≤ x_on, 0 for x ≥ x_off."""
    t = (x - x_on) / (x_off - x_on)
    a = _sigma(1 - t)
    b = _sigma(t)
    return a / (a + b)
