"""Shared test utilities: small structures, neighbour lists, and lists built from explicit pairs."""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._compat import jax_md, partition

DATA = os.path.join(os.path.dirname(__file__), "data")

SMALL = dict(num_layers=2, num_features=16, num_heads=2, degrees=(1, 2), num_radial_basis_fn=8,
             energy_regression_dim=16)  # fmt: skip


def random_molecule(n=12, seed=0, spacing=1.3, n_species=4):
    """A compact random cluster with no pair closer than 0.9 Å, and random species."""
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = rng.uniform(-1, 1, 3) * spacing * n ** (1 / 3)
        if all(np.linalg.norm(p - q) > 0.9 for q in pts):
            pts.append(p)
    return np.array(pts), rng.integers(0, n_species, n).astype(np.int32)


def neighbor_list(displacement, box, cutoff, R, fmt=partition.Sparse, **kwargs):
    kwargs.setdefault("disable_cell_list", True)
    nl = partition.neighbor_list(displacement, box, cutoff, format=fmt, **kwargs)
    return nl, nl.allocate(jnp.asarray(R))


def free_lists(R, cutoff, fmt=partition.Sparse, **kwargs):
    displacement, _ = jax_md.space.free()
    return displacement, neighbor_list(displacement, 1000.0, cutoff, R, fmt, **kwargs)[1]


def with_pairs(template, centers, neighbors, fmt):
    """A NeighborList (built from ``template``) whose entries are the given (centre i, neighbour j) pairs."""
    idx = jnp.stack([jnp.asarray(neighbors, jnp.int32), jnp.asarray(centers, jnp.int32)])
    return dataclasses.replace(template, idx=idx, format=fmt)


def rotation(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def tree_all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(tree))
