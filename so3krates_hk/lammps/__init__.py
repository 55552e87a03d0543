"""SO3LR and SO3krates models inside LAMMPS, on any number of MPI ranks, through ``fix external pf/callback``.

Scheme (exact, one evaluation per rank and step):

* LAMMPS owns the spatial decomposition. Each rank sees its *owned* atoms and the *ghost* atoms (periodic images and
  atoms of neighbouring sub-domains) within the ghost cutoff r_g of its sub-domain.
* Receptive field R: an owned atom's energy depends on atoms up to R away, R = T·r_c for SO3krates (T message-passing
  layers of cutoff r_c) and R = T·r_c + r_lr for SO3LR (the long-range pair terms use charges and Hirshfeld ratios of
  atoms r_lr away, and those depend on their own T·r_c). The ghost cutoff is r_g = R + skin, so R stays covered
  while atoms drift between re-neighbourings (LAMMPS re-neighbours once an atom moved skin/2).
* Each rank evaluates the model on its owned + ghost atoms in free space (ghost images carry their shifted
  coordinates) and takes E_r = Σ_{i owned} E_i; Σ_r E_r is the total energy, each atom counted once.
* Forces: F_k = −∂E_r/∂R_k on every local atom k, owned *and* ghost. A ghost force belongs to the atom the ghost is an
  image of: it is sent to that atom's owner (tag → owner table, ``MPI_Alltoallv``) and added there. ``fix external``
  itself adds forces to owned atoms only, so this reverse communication is done here.
* Sums over the whole system (SO3LR's charge neutralisation Σ_j q̃_j and N, the charge/spin embedding normaliser
  Σ_j α_j) go through the model's ``global_sum`` hook: each rank sums its owned atoms and ``MPI_Allreduce`` adds the
  ranks. Their gradient is exact: with g = Σ_r ∂E_r/∂S (one more ``Allreduce``) each rank adds g·∂S_r/∂R_k.

Cost: atoms evaluated / atoms owned = (n_owned + n_ghost) / n_owned per rank; ``benchmarks/lammps_bench.py``
measures it. See ``docs/lammps.md``.
"""

from so3krates_hk.lammps.model import LocalModel, load_model
from so3krates_hk.lammps.species import cg_type_map, so3lr_type_map

__all__ = ["LocalModel", "load_model", "cg_type_map", "so3lr_type_map"]
