"""Simple CG priors fitted from the reference data, as CG practice does (Boltzmann inversion).

    U_prior = Σ_bonds ½ k_b (d − d₀)² + Σ_angles ½ k_θ (θ − θ₀)² + Σ_{non-bonded} ε (σ / r)^n

* Bonds: bead pairs whose mean distance in the data is below ``bond_cutoff`` (for Cα beads 4.3 Å catches
  consecutive residues, cis-proline included; for heavy atoms 1.7 Å). d₀ = ⟨d⟩ and k_b = kT / Var(d): the
  harmonic potential whose Boltzmann distribution has the data's mean and variance.
* Angles: triplets (i, j, k) with bonds i–j and j–k; θ₀ = ⟨θ⟩, k_θ = kT / Var(θ).
* Repulsion: bead pairs at least ``repulsion_min_bonds`` bonds apart (default 2: the 1–3 pairs of every angle
  included). ε = kT and σ = the 1st percentile of the distances in the data, taken separately for the 1–3 pairs
  and for the pairs further apart, so each wall costs kT where the data barely goes; n = 12 by default. The 1–3
  wall keeps an angle from closing: the harmonic angle term alone is weak where the data never went (θ → 0), and
  a learned attraction there can fold two beads onto each other.
* Angles are computed as θ = atan2(|u × v|, u · v), whose gradient stays finite and non-zero up to θ = 0 and π
  (arccos of a clipped cosine has a zero gradient past the clip).

The priors keep MD stable where the data has no samples (overlapping beads, stretched bonds) and leave the
network to learn the rest of the potential of mean force. Energies in the units of kT.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class CGPriors:
    bonds: np.ndarray  # (B, 2) int
    bond_length: np.ndarray  # (B,)
    bond_k: np.ndarray  # (B,)
    angles: np.ndarray  # (A, 3) int, j the vertex
    angle: np.ndarray  # (A,) rad
    angle_k: np.ndarray  # (A,)
    repulsion_pairs: np.ndarray  # (P, 2) int
    repulsion_sigma: np.ndarray  # (P,) Å, or a scalar for every pair
    repulsion_epsilon: float
    repulsion_exponent: int = 12

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> "CGPriors":
        kw = {f.name: np.asarray(arrays[f.name]) for f in dataclasses.fields(cls)}
        kw["repulsion_epsilon"] = float(kw["repulsion_epsilon"])
        kw["repulsion_exponent"] = int(kw["repulsion_exponent"])
        return cls(**kw)

    def energy_fn(self, displacement):
        """``energy(position, **kwargs) -> scalar``: the prior energy (keyword arguments go to the displacement)."""
        bonds, angles, pairs = (jnp.asarray(a, jnp.int32) for a in (self.bonds, self.angles, self.repulsion_pairs))
        b0, kb = jnp.asarray(self.bond_length), jnp.asarray(self.bond_k)
        t0, kt = jnp.asarray(self.angle), jnp.asarray(self.angle_k)
        sigma, eps, n = jnp.asarray(self.repulsion_sigma), self.repulsion_epsilon, self.repulsion_exponent

        def energy(position, **kwargs):
            disp = jax.vmap(lambda a, b: displacement(a, b, **kwargs))
            e = jnp.zeros((), position.dtype)
            if len(self.bonds):
                d = _safe_norm(disp(position[bonds[:, 1]], position[bonds[:, 0]]))
                e = e + 0.5 * jnp.sum(kb * (d - b0) ** 2)
            if len(self.angles):
                u = disp(position[angles[:, 0]], position[angles[:, 1]])
                v = disp(position[angles[:, 2]], position[angles[:, 1]])
                e = e + 0.5 * jnp.sum(kt * (_angle(u, v) - t0) ** 2)
            if len(self.repulsion_pairs):
                r = _safe_norm(disp(position[pairs[:, 1]], position[pairs[:, 0]]))
                e = e + eps * jnp.sum((sigma / r) ** n)
            return e

        return energy


def _safe_norm(v):
    return jnp.sqrt(jnp.maximum(jnp.sum(v * v, axis=-1), 1e-12))


def _angle(u, v):
    """θ = atan2(|u × v|, u · v): finite, non-zero gradients up to θ = 0 and π."""
    return jnp.arctan2(_safe_norm(jnp.cross(u, v)), jnp.sum(u * v, -1))


def _np_angle(u, v):
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def fit_priors(
    positions: np.ndarray,
    kT: float,
    bond_cutoff: float,
    repulsion_percentile: float = 1.0,
    repulsion_exponent: int = 12,
    repulsion_min_bonds: int = 2,
    mask: Optional[np.ndarray] = None,
) -> CGPriors:
    """Fit bonds, angles and a repulsion to frames ``positions`` (T, N, 3), free space (see the module docstring)."""
    positions = np.asarray(positions, np.float64)
    T, N, _ = positions.shape
    d = np.linalg.norm(positions[:, :, None] - positions[:, None], axis=-1)  # (T, N, N)
    mean = d.mean(0)
    bonded = (mean < bond_cutoff) & ~np.eye(N, dtype=bool)
    bonds = np.array([(i, j) for i, j in zip(*np.nonzero(np.triu(bonded)))], dtype=np.int64).reshape(-1, 2)
    if len(bonds) == 0:
        raise ValueError(f"No bonds found with bond_cutoff={bond_cutoff}: check the units of the data.")
    bd = d[:, bonds[:, 0], bonds[:, 1]]
    bond_length, bond_k = bd.mean(0), kT / bd.var(0)

    neighbours = [set(np.nonzero(bonded[j])[0]) for j in range(N)]
    angles = np.array(
        [(i, j, k) for j in range(N) for i, k in itertools.combinations(sorted(neighbours[j]), 2)], dtype=np.int64
    ).reshape(-1, 3)
    if len(angles):
        th = _np_angle(positions[:, angles[:, 0]] - positions[:, angles[:, 1]],
                       positions[:, angles[:, 2]] - positions[:, angles[:, 1]])  # fmt: skip
        angle, angle_k = th.mean(0), kT / th.var(0)
    else:
        angle = angle_k = np.zeros(0)

    hops = _graph_distance(bonded)
    if repulsion_min_bonds < 2:
        raise ValueError(f"repulsion_min_bonds must be ≥ 2 (bonded pairs have the bond term); "
                         f"got {repulsion_min_bonds}.")
    pairs = np.array([(i, j) for i in range(N) for j in range(i + 1, N) if hops[i, j] >= repulsion_min_bonds],
                     dtype=np.int64).reshape(-1, 2)  # fmt: skip
    sigma = np.ones(len(pairs))
    if len(pairs):
        dist, sep = d[:, pairs[:, 0], pairs[:, 1]], hops[pairs[:, 0], pairs[:, 1]]
        for cls in (sep == 2, sep > 2):  # 1–3 pairs, and the pairs further apart
            if cls.any():
                sigma[cls] = np.percentile(dist[:, cls], repulsion_percentile)
    return CGPriors(bonds, bond_length, bond_k, angles, angle, angle_k, pairs, sigma, float(kT), repulsion_exponent)


def _graph_distance(adjacency: np.ndarray) -> np.ndarray:
    """All-pairs hop counts of a small graph (breadth-first from every node); unreachable pairs get N."""
    N = len(adjacency)
    hops = np.full((N, N), N, dtype=np.int64)
    for s in range(N):
        hops[s, s] = 0
        frontier = [s]
        while frontier:
            nxt = []
            for u in frontier:
                for v in np.nonzero(adjacency[u])[0]:
                    if hops[s, v] > hops[s, u] + 1:
                        hops[s, v] = hops[s, u] + 1
                        nxt.append(v)
            frontier = nxt
    return hops
