"""``so3krates-hk example``: the pretrained SO3LR on a bundled molecule, and a randomly initialised CG SO3krates.

A smoke test a new user can read: it builds both factories, evaluates energies and forces, and prints them.
"""

from __future__ import annotations

import argparse

NAME = "example"
HELP = "evaluate pretrained SO3LR on a bundled molecule and a random CG model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--molecule", default="dha", choices=["atat", "dha", "bb"], help="bundled molecule")


def run(args: argparse.Namespace) -> int:
    return example(args.molecule)


def example(molecule: str = "dha") -> int:
    """Print SO3LR's energy terms and forces on ``molecule``, then a random-init CG SO3krates on a 50-bead chain."""
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    from so3krates_hk import pretrained, so3krates_neighborlist_pp, so3lr_neighborlist_pp
    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.data import reference_structure

    # 1. Pretrained SO3LR on a molecule (free space, Å, eV).
    s = reference_structure(molecule)
    R, Z = jnp.asarray(s.positions, jnp.float32), jnp.asarray(s.atomic_numbers)
    displacement, _ = jax_md.space.free()
    params, kwargs = pretrained.so3lr()
    sr = partition.neighbor_list(displacement, 1000.0, 4.5, format=partition.Sparse, disable_cell_list=True)
    lr = partition.neighbor_list(displacement, 1000.0, 12.0, format=partition.OrderedSparse, disable_cell_list=True)
    nbrs, nbrs_lr = sr.allocate(R), lr.allocate(R)
    _, apply_fn = so3lr_neighborlist_pp(displacement, mode="all", **kwargs)
    t = time.perf_counter()
    (energy, out), grad = jax.value_and_grad(lambda r: (lambda o: (o["energy"], o))(
        apply_fn(params, r, nbrs, nbrs_lr, Z)), has_aux=True)(R)  # fmt: skip
    forces = -np.asarray(grad)
    print(f"SO3LR on {molecule} ({s.num_atoms} atoms, float32, {time.perf_counter() - t:.1f} s incl. compile):")
    for k in ("energy_nn", "energy_zbl", "energy_elec", "energy_disp"):
        print(f"  {k:12s} {float(jnp.sum(out[k])):14.6f} eV")
    print(f"  {'total':12s} {float(energy):14.6f} eV   max |F| = {np.abs(forces).max():.4f} eV/Å")

    # 2. A small CG SO3krates from random init: a 50-bead chain, species 0…19, cutoff 10 Å.
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(50, 3))
    chain = np.cumsum(3.8 * steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0).astype(np.float32)
    species = jnp.asarray(rng.integers(0, 20, 50), jnp.int32)
    nl = partition.neighbor_list(displacement, 1000.0, 10.0, format=partition.Sparse, disable_cell_list=True)
    cg_nbrs = nl.allocate(jnp.asarray(chain))
    init_fn, cg_apply = so3krates_neighborlist_pp(
        displacement, 10.0, n_species=20, positions_test=chain, neighbor_test=cg_nbrs,
        num_layers=2, num_features=32, degrees=(1, 2), bernstein_gamma=0.4,
    )  # fmt: skip
    cg_params = init_fn(jax.random.PRNGKey(0), jnp.asarray(chain), cg_nbrs, species=species)
    e, g = jax.value_and_grad(cg_apply, argnums=1)(cg_params, jnp.asarray(chain), cg_nbrs, species)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(cg_params))
    print(f"\nCG SO3krates (random init, {n_params:,} parameters) on a 50-bead chain: E = {float(e):.4f}, "
          f"max |F| = {float(jnp.abs(g).max()):.4f}")  # fmt: skip
    return 0
