"""The float32 islands of SO3LR's float64 path (docs/model.md, "Precision"), named in one place.

SO3LR computes in float64 when given float64 inputs, except where the original does float32 arithmetic on float32
parameters; sub-µeV parity requires doing the same:

* P1: the Bernstein γ is a float32-rounded constant (``layers.radial.BERNSTEIN_GAMMA``);
* P2 (ZBL): softplus of the ten raw parameters, the c-renormalisation, Z^p and Z_i^p + Z_j^p;
* P3 (charge/spin embeddings): q_i·k, the division by √F, softplus, and Σ_j α_j.

Float32 results of ``exp``/``log1p``/``pow`` depend on the math library. The original's platform evaluated log1p
like glibc's ``log1pf``; XLA's CPU kernels differ from it by one ulp for two of the ten ZBL parameters (a2, c2). We
keep XLA's float32 kernels, as the original ran them, and accept that: measured, it moves E_zbl by 1.7e-8 relative
(8.6e-8 eV on the 56-atom dha, whose E_zbl is 4.95 eV), inside the float32 floor of that computation
(≲ 2e-7 · |E_zbl|). Emulating one particular libm inside XLA would not be portable across CPU and GPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

f32 = jnp.float32


def softplus32(x: jnp.ndarray) -> jnp.ndarray:
    """softplus(x) = log-add-exp(x, 0), in float32 whatever the input dtype."""
    return jax.nn.softplus(jnp.asarray(x, f32))


def power32(base: jnp.ndarray, exponent: jnp.ndarray) -> jnp.ndarray:
    """base ** exponent in float32 (Z^p of the ZBL screening)."""
    return jnp.power(jnp.asarray(base, f32), jnp.asarray(exponent, f32))
