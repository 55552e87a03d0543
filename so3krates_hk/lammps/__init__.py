"""SO3LR and SO3krates models inside LAMMPS, on any number of MPI ranks, through ``fix external pf/callback``.

Scheme (exact; docs/lammps.md, "The decomposition scheme"):

* LAMMPS owns the spatial decomposition. Each rank sees its *owned* atoms and the *ghost* atoms (periodic images and
  atoms of neighbouring sub-domains) within the ghost cutoff r_g of its sub-domain.
* The model runs in stages (embedding, T layers, heads, pair terms); each computes values of the owned atoms from
  atoms within one cutoff, so r_g = max(r_c, r_lr) + skin. Between stages the ghosts' values (features after each
  layer, SO3LR's partial charges and Hirshfeld ratios) are copied from their owners (``MPI_Alltoallv`` by atom tag).
* E_r = Σ_{i owned} E_i; the backward pass runs the stages in reverse with their VJPs and sends the cotangents of
  ghost rows (features, charges, Hirshfeld ratios, positions) back to the owners, where they are added: the forces
  are exact. ``fix external`` adds forces to owned atoms only, so this reverse communication is done here.
* Sums over the whole system (SO3LR's charge neutralisation Σ_j q̃_j and N, the charge/spin embedding normaliser
  Σ_j α_j) go through the model's ``global_sum`` hook: each rank sums its owned atoms and ``MPI_Allreduce`` adds the
  ranks. Their gradient is exact: with g = Σ_r ∂E_r/∂S (one more ``Allreduce``) each rank adds g·∂S_r/∂x.

Cost: the networks' per-atom work is on the owned atoms; ghosts add the pairs that cross the sub-domain boundary.
``benchmarks/lammps_bench.py`` reports local (owned + ghost) / owned atoms. See ``docs/lammps.md``.
"""

from so3krates_hk.lammps.model import LocalModel, load_model
from so3krates_hk.lammps.species import cg_type_map, so3lr_type_map

__all__ = ["LocalModel", "load_model", "cg_type_map", "so3lr_type_map"]
