"""ZBL nuclear repulsion on the short-range edges, with learned screening (docs/model.md, "Physical terms").

    E_ij = ½ · Sw(d; 0, 1.5 Å) · k_e · φ(d) · Z_i Z_j / d · Σ_k ĉ_k exp(−a_k · d · (Z_i^p + Z_j^p) · δ)

a_k, c_k, p and δ are softplus of ten raw learned scalars; ĉ_k = c_k / Σ c. The ½ undoes the double listing of
the short-range pairs (docs/model.md, "Physical terms"). φ is the *short-range* cutoff of the transformer
(docs/model.md, "Physical terms").

Float32 island (docs/model.md, "Precision", P2): the softplus, the c-renormalisation, Z^p and Z_i^p + Z_j^p are
computed in float32 even on the float64 path, as the original does; everything after is in the dtype of the distances.
"""

from __future__ import annotations

from typing import Optional

import haiku as hk
import jax.numpy as jnp
import numpy as np

from so3krates_hk.layers.cutoff import smooth_switch
from so3krates_hk.physics.constants import BOHR, KE
from so3krates_hk.precision import power32, softplus32

# ZBL's universal screening function, the prior the learned values started from (used only at initialisation).
ZBL_PRIOR = {
    "a1": 3.2, "a2": 0.9423, "a3": 0.4028, "a4": 0.2016,
    "c1": 0.1818, "c2": 0.5099, "c3": 0.2802, "c4": 0.02817,
    "p": 0.23, "d": 1.0 / (0.8854 * BOHR),
}  # fmt: skip
ZBL_PARAMETERS = tuple(ZBL_PRIOR)


def zbl_pair_energy(
    d: jnp.ndarray,
    z_i: jnp.ndarray,
    z_j: jnp.ndarray,
    cut: jnp.ndarray,
    raw: dict[str, jnp.ndarray],
    switch_off: float = 1.5,
) -> jnp.ndarray:
    """Per-edge ZBL energy E_ij in eV, ½ included (docs/model.md, "Physical terms").

    Args:
        d: distances (Å), shape (P,); must be > 0 on every edge (masked edges carry a safe substitute).
        z_i, z_j: atomic numbers of centre and neighbour, shape (P,).
        cut: φ(d) of the short-range cutoff, 0 on masked edges, shape (P,).
        raw: the ten raw (pre-softplus) parameters a1…a4, c1…c4, p, d.
        switch_off: end of the ZBL switching window [0, switch_off] Å.
    """
    eff = {k: softplus32(jnp.reshape(raw[k], ())) for k in ZBL_PARAMETERS}
    c_sum = eff["c1"] + eff["c2"] + eff["c3"] + eff["c4"]
    a = [eff[f"a{k}"] for k in range(1, 5)]
    c = [eff[f"c{k}"] / c_sum for k in range(1, 5)]
    zp = power32(z_i, eff["p"]) + power32(z_j, eff["p"])  # float32 sum, as the original

    dtype = d.dtype
    x = d * zp.astype(dtype) * eff["d"].astype(dtype)
    screening = sum(ck.astype(dtype) * jnp.exp(-ak.astype(dtype) * x) for ak, ck in zip(a, c))
    coulomb = KE * cut * (z_i * z_j).astype(dtype) / d
    return 0.5 * smooth_switch(d, 0.0, switch_off) * coulomb * screening


class ZBLRepulsion(hk.Module):
    """Holds the ten raw ZBL parameters (shape (1,) each, as SO3LR stores them) and evaluates the pair energies."""

    def __init__(self, name: Optional[str] = "zbl_repulsion"):
        super().__init__(name=name)

    def __call__(self, d, z_i, z_j, cut) -> jnp.ndarray:
        raw = {
            k: hk.get_parameter(k, [1], jnp.float32, init=hk.initializers.Constant(np.log(np.expm1(v))))
            for k, v in ZBL_PRIOR.items()
        }
        return zbl_pair_energy(d, z_i, z_j, cut, raw)
