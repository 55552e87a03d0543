"""Many structures as one disjoint graph: SO3LR over a batch of structures in a single model call.

A batch of structures s = 1 … S with N_s atoms is concatenated into one graph of A ≥ Σ_s N_s atoms. Atom a belongs
to structure σ(a) (``segment``); structure s holds the atoms o_s … o_s + N_s − 1. Edges never cross structures:
the pairs of structure s, built on the host, are shifted by o_s. Since SO3LR is a sum of per-atom terms computed
from edges, every message, filter and pair energy is the one of structure s alone; what is *not* local are the sums
over "the structure", which become segment sums over σ:

    Σ_σ(x)_a = Σ_{b: σ(b) = σ(a)} x_b          (``structure_sums``: each atom gets the sum over its structure)

* charge and spin embeddings (docs/model.md, "Initial features"): a_i = ψ_σ(i) α_i / Σ_σ(α)_i, with ψ = Q or S of
  the atom's structure;
* charge neutralisation (docs/model.md, "Heads"): q_i = q̃_i + (Q_σ(i) − Σ_σ(q̃)_i) / Σ_σ(1)_i;
* energies E_s = Σ_{a: σ(a) = s} E_a; forces F_a = −∂(Σ_s E_s)/∂r_a = −∂E_σ(a)/∂r_a (the structures do not
  interact, so the gradient of the total is each structure's own);
* dipole μ_s = Σ_{a∈s} q_a (r_a − R_c,s), R_c,s = Σ_{a∈s} m_a r_a / Σ_{a∈s} m_a (free space only);
* virial W_s = ∂E_s/∂ε_s with every edge vector of structure s strained affinely, r_ij → (1 + ε_s) r_ij; the
  stress of a periodic cell is σ_s = ½ (W_s + W_sᵀ) / V_s.

Edge vectors are r_ij = R_j − R_i + t_ij, with t_ij the lattice translation of the image (zero in free space), so
free-space and periodic structures share one program. Short-range edges come as unordered pairs (j < i, both
directions formed inside the layers, ``graph.build_graph(pairs=True)``), long-range ones once per pair (multiplicity
1, as jax-md's ``OrderedSparse``). Padding: atoms beyond Σ N_s are masked, belong to the extra structure S (whose
results are dropped) and have no edges; padded pairs hold index A and are masked. Both contribute exactly zero.

A batch is padded to a ``Capacity`` (atoms, structures, pairs, long-range pairs); one compiled program per
capacity. :func:`plan` fills batches of up to ``batch_atoms`` atoms in input order and rounds the capacities up on
the ladder of :func:`ladder` (8, 12, 16, 24, 32, 48, …), so a data set compiles once and later similar data reuse it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk.graph import Graph, safe_geometry
from so3krates_hk.models import LongRangePairs, so3lr_energy
from so3krates_hk.physics.dipole import dipole_moments


def ladder(n: int, smallest: int = 8) -> int:
    """The smallest value ≥ n of the ladder ``smallest``·{1, 1.5, 2, 3, 4, 6, …} (2^k and 3·2^(k−1) for 8)."""
    size = smallest
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


class Structure(NamedTuple):
    """One structure as :func:`pack` needs it: exact pair lists with their lattice translations (Cartesian, Å)."""

    numbers: np.ndarray  # (N,)
    positions: np.ndarray  # (N, 3) Cartesian, Å
    charge: float
    spin: float
    pairs: np.ndarray  # (2, H) short-range pairs: row 0 centre i, row 1 neighbour j < i
    shifts: np.ndarray  # (H, 3) t_ij
    lr_pairs: np.ndarray  # (2, P) long-range pairs, same layout
    lr_shifts: np.ndarray  # (P, 3)


@dataclasses.dataclass(frozen=True)
class Capacity:
    atoms: int
    structures: int
    pairs: int
    lr_pairs: int
    width: int  # atoms of the largest structure (rows of the per-structure sums)


def plan(structures: Sequence[Structure], batch_atoms: int) -> tuple[list[list[int]], Capacity]:
    """Batches (lists of indices, input order) of at most ``batch_atoms`` atoms (a larger structure gets a batch of
    its own) and one capacity that holds every batch."""
    batches: list[list[int]] = []
    atoms = 0
    for k, s in enumerate(structures):
        n = len(s.numbers)
        if not batches or atoms + n > batch_atoms:
            batches.append([])
            atoms = 0
        batches[-1].append(k)
        atoms += n

    def largest(count) -> int:
        return max(sum(count(structures[k]) for k in b) for b in batches)

    capacity = Capacity(
        atoms=ladder(largest(lambda s: len(s.numbers))),
        structures=ladder(max(len(b) for b in batches), 4),
        pairs=ladder(largest(lambda s: s.pairs.shape[1]), 16),
        lr_pairs=ladder(largest(lambda s: s.lr_pairs.shape[1]), 16),
        width=ladder(max(len(s.numbers) for s in structures)),
    )
    return batches, capacity


def pack(structures: Sequence[Structure], capacity: Capacity) -> dict[str, np.ndarray]:
    """The padded arrays of one batch (numpy; float64 coordinates): R, Z, mask, segment σ, local (the index of
    each atom within its structure), Q, S, pairs, shifts, lr_pairs, lr_shifts."""
    A, S = capacity.atoms, capacity.structures
    needed = Capacity(atoms=sum(len(st.numbers) for st in structures), structures=len(structures),
                      pairs=sum(st.pairs.shape[1] for st in structures),
                      lr_pairs=sum(st.lr_pairs.shape[1] for st in structures),
                      width=max(len(st.numbers) for st in structures))  # fmt: skip
    if any(getattr(needed, f.name) > getattr(capacity, f.name) for f in dataclasses.fields(Capacity)):
        raise ValueError(f"the batch ({needed}) does not fit {capacity}")
    R = np.zeros((A, 3))
    Z = np.ones(A, np.int32)
    mask = np.zeros(A, bool)
    segment = np.full(A, S, np.int32)
    local = np.zeros(A, np.int32)
    Q, spin = np.zeros(S), np.zeros(S)
    out = dict(R=R, Z=Z, mask=mask, segment=segment, local=local, Q=Q, S=spin)
    for name, shifts, P in (("pairs", "shifts", capacity.pairs), ("lr_pairs", "lr_shifts", capacity.lr_pairs)):
        out[name] = np.full((2, P), A, np.int32)
        out[shifts] = np.zeros((P, 3))
    offset, used = 0, {"pairs": 0, "lr_pairs": 0}
    for s, st in enumerate(structures):
        n = len(st.numbers)
        R[offset : offset + n] = st.positions
        Z[offset : offset + n] = st.numbers
        mask[offset : offset + n] = True
        segment[offset : offset + n] = s
        local[offset : offset + n] = np.arange(n)
        Q[s], spin[s] = st.charge, st.spin
        for name, shifts in (("pairs", "shifts"), ("lr_pairs", "lr_shifts")):
            p = getattr(st, name)
            u = used[name]
            out[name][:, u : u + p.shape[1]] = p + offset
            out[shifts][u : u + p.shape[1]] = getattr(st, shifts)
            used[name] = u + p.shape[1]
        offset += n
    return out


def structure_sums(values: jnp.ndarray, segment: jnp.ndarray, local: jnp.ndarray, num_segments: int, width: int,
                   one_by_one: bool = True) -> jnp.ndarray:
    """Σ_σ(x)_a: the sum of ``values`` over the atoms of each atom's structure, per atom.

    Each structure's values are laid out as one zero-padded row of ``width`` (its atoms first, in order) and summed
    as a row, ``one_by_one`` (``jax.lax.map``, a 1-D sum per structure) or all rows at once. Float sums depend on
    their order, which matters for the float32 charge and spin embedding normaliser (docs/model.md, "Precision"):
    on CPU the 1-D row sums reproduced the float32 sums of single-structure calls bit for bit where a scatter-add
    (``jax.ops.segment_sum``) was one rounding off (isolated sums of up to 16 atoms under JAX 0.4.37 and 21 under
    0.10; the charged radical of ``tests/test_eval.py``). This is measured behaviour of XLA, not a guarantee."""
    rows = jnp.zeros((num_segments, width), values.dtype).at[segment, local].add(values)
    sums = jax.lax.map(jnp.sum, rows) if one_by_one else jnp.sum(rows, axis=1)
    return sums[segment]


def _graph(R, pairs, shifts, deformation, segment, cutoff: float, node_mask, as_pairs: bool) -> Graph:
    """Edges r_ij = (1 + ε_σ(i)) (R_j − R_i + t_ij) of packed pair lists; padded or out-of-cutoff entries masked
    with a safe stand-in vector of length 2·cutoff, as in ``graph.build_graph``."""
    A = R.shape[0]
    centers, neighbors = pairs[0], pairs[1]
    i, j = jnp.minimum(centers, A - 1), jnp.minimum(neighbors, A - 1)
    vectors = R[j] - R[i] + shifts
    vectors = jnp.einsum("pab,pb->pa", deformation[segment[i]], vectors)
    d2 = jnp.sum(vectors**2, axis=-1)
    keep = (centers < A) & node_mask[i] & node_mask[j] & (d2 > 0) & (d2 < cutoff**2)
    vectors, distances = safe_geometry(vectors, keep, cutoff)
    centers = jnp.where(keep, centers, A)
    neighbors = jnp.where(keep, neighbors, A)
    return Graph(centers, neighbors, vectors, distances, keep, jnp.zeros((), bool), A, False, as_pairs)


def energies_fn(config, width: int, one_by_one: bool = True) -> Callable:
    """``apply(params, R, strain, Z, mask, segment, local, Q, S, pairs, shifts, lr_pairs, lr_shifts) ->
    (Σ E_s, out)`` for an ``SO3LRConfig``; ``out``: energy (S+1,), charges, hirshfeld_ratios (A,), dipole (S+1, 3).
    ``strain`` (S+1, 3, 3) is ε_s (zero: differentiate with respect to it for the virial). ``width`` and
    ``one_by_one``: see :func:`structure_sums`."""

    def model(R, strain, Z, mask, segment, local, Q, S, pairs, shifts, lr_pairs, lr_shifts):
        num_segments = Q.shape[0] + 1
        Z = jnp.where(mask, Z, 1)
        deformation = jnp.eye(3, dtype=R.dtype) + strain
        graph = _graph(R, pairs, shifts, deformation, segment, config.r_cutoff, mask, True)
        lr = None
        if config.long_range:
            lr_graph = _graph(R, lr_pairs, lr_shifts, deformation, segment, config.lr_cutoff, mask, False)
            lr = LongRangePairs(lr_graph, 1.0)
        pad = jnp.zeros(1, R.dtype)
        charge = jnp.concatenate([Q, pad])[segment]  # per atom: its structure's Q and S
        spin = jnp.concatenate([S, pad])[segment]
        total = lambda name, x: structure_sums(x, segment, local, num_segments, width, one_by_one)  # noqa: E731
        per_atom, aux = so3lr_energy(config, Z, graph, lr, mask, charge, spin, global_sum=total)
        per_atom = jnp.where(mask, per_atom, 0.0)
        energy = jax.ops.segment_sum(per_atom, segment, num_segments)
        q = aux["partial_charges"]
        dipole = dipole_moments(q, R, Z, segment, num_segments, mask)
        out = dict(energy=energy, charges=q, hirshfeld_ratios=aux["hirshfeld_ratios"], dipole=dipole)
        return jnp.sum(energy), out

    return hk.without_apply_rng(hk.transform(model)).apply


def predictions_fn(config, width: int, one_by_one: bool = True) -> Callable:
    """``predict(params, R, Z, mask, segment, local, Q, S, pairs, shifts, lr_pairs, lr_shifts)``: energy (S,),
    forces (A, 3), charges, hirshfeld_ratios (A,), dipole (S, 3), virial W_s = ∂E_s/∂ε_s (S, 3, 3), unsymmetrised."""
    apply = energies_fn(config, width, one_by_one)

    def predict(params, R, Z, mask, segment, local, Q, S, pairs, shifts, lr_pairs, lr_shifts):
        strain = jnp.zeros((Q.shape[0] + 1, 3, 3), R.dtype)
        (_, out), (grad, virial) = jax.value_and_grad(apply, argnums=(1, 2), has_aux=True)(
            params, R, strain, Z, mask, segment, local, Q, S, pairs, shifts, lr_pairs, lr_shifts
        )
        S_ = Q.shape[0]
        return dict(energy=out["energy"][:S_], forces=-grad, charges=out["charges"],
                    hirshfeld_ratios=out["hirshfeld_ratios"], dipole=out["dipole"][:S_],
                    virial=virial[:S_])  # fmt: skip

    return predict


__all__ = ["Capacity", "Structure", "energies_fn", "ladder", "pack", "plan", "predictions_fn", "structure_sums"]
