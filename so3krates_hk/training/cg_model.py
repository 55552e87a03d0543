"""The CG energy: SO3krates from random init (species 0…n−1) plus fitted priors, over a jax-md Dense neighbour list.

``CGModel.energy_fn_template(params)`` is chemtrain's ``energy_fn_template``: it returns
``energy_fn(position, neighbor, **kwargs)``, the SO3krates energy plus the (fixed) prior energy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._compat import jax_md, partition
from so3krates_hk.factory import so3krates_neighborlist_pp
from so3krates_hk.io import load_params, save_params
from so3krates_hk.training.priors import CGPriors, fit_priors


@dataclasses.dataclass
class CGModel:
    species: jnp.ndarray
    n_species: int
    r_cutoff: float
    dr_threshold: float
    hyperparameters: dict
    priors: Optional[CGPriors]
    displacement: Callable
    shift: Callable
    neighbor_fn: Any
    neighbor: Any  # allocated on the densest training frame
    max_edges: Optional[int]
    avg_num_neighbors: float
    init_fn: Callable
    apply_fn: Callable

    def build(self, max_edges: Optional[int]) -> Callable:
        """The SO3krates apply function at a given edge capacity (used to grow it during MD)."""
        return so3krates_neighborlist_pp(
            self.displacement, self.r_cutoff, n_species=self.n_species, max_edges=max_edges,
            avg_num_neighbors=self.avg_num_neighbors, **self.hyperparameters,
        )[1]  # fmt: skip

    def energy_fn_template(self, params, apply_fn: Optional[Callable] = None) -> Callable:
        apply_fn = apply_fn or self.apply_fn
        prior = self.priors.energy_fn(self.displacement) if self.priors is not None else None
        species = self.species

        def energy_fn(position, neighbor, **kwargs):
            e = apply_fn(params, position, neighbor, species=species, **kwargs)
            return e + prior(position) if prior is not None else e

        return energy_fn

    def init_params(self, key) -> dict:
        R0 = self.neighbor.reference_position
        return self.init_fn(key, R0, self.neighbor, species=self.species)

    def save(self, path: str, params, metadata: Optional[dict] = None) -> None:
        """Params and priors in one safe .npz (priors under the pseudo-module ``cg_priors``)."""
        tree = dict(jax.device_get(params))
        if self.priors is not None:
            tree["cg_priors"] = self.priors.to_arrays()
        meta = dict(metadata or {})
        meta.update(
            model="so3krates_cg",
            r_cutoff=self.r_cutoff,
            dr_threshold=self.dr_threshold,
            n_species=self.n_species,
            species=np.asarray(self.species).tolist(),
            hyperparameters=self.hyperparameters,
            avg_num_neighbors=self.avg_num_neighbors,
            max_edges=self.max_edges,
        )
        save_params(path, tree, meta)


def build_cg_model(
    positions: np.ndarray,
    species: np.ndarray,
    kT: float,
    r_cutoff: float = 10.0,
    dr_threshold: float = 1.0,
    hyperparameters: Optional[dict] = None,
    priors: Optional[dict] = None,
    n_species: Optional[int] = None,
    capacity_multiplier: float = 1.25,
) -> CGModel:
    """Build the CG model for frames ``positions`` (T, N, 3) in free space, fitting the priors on them.

    ``priors``: None for no priors, else the keyword arguments of ``fit_priors`` plus booleans ``bonds``,
    ``angles``, ``repulsion`` that switch the terms.
    """
    hyperparameters = dict(hyperparameters or {})
    positions = np.asarray(positions)
    species = jnp.asarray(species, jnp.int32)
    N = positions.shape[1]
    n_species = int(n_species if n_species is not None else int(species.max()) + 1)
    fitted = None
    if priors is not None:
        p = dict(priors)
        switches = {k: p.pop(k, True) for k in ("bonds", "angles", "repulsion")}
        fitted = fit_priors(positions, kT, **p)
        if not switches["bonds"]:
            fitted = dataclasses.replace(fitted, bonds=fitted.bonds[:0], bond_length=fitted.bond_length[:0],
                                         bond_k=fitted.bond_k[:0])  # fmt: skip
        if not switches["angles"]:
            fitted = dataclasses.replace(fitted, angles=fitted.angles[:0], angle=fitted.angle[:0],
                                         angle_k=fitted.angle_k[:0])  # fmt: skip
        if not switches["repulsion"]:
            fitted = dataclasses.replace(fitted, repulsion_pairs=fitted.repulsion_pairs[:0])

    displacement, shift = jax_md.space.free()
    neighbor_fn = partition.neighbor_list(
        displacement, 1.0, r_cutoff, dr_threshold=dr_threshold, format=partition.Dense,
        disable_cell_list=True, capacity_multiplier=capacity_multiplier,
    )  # fmt: skip
    # The densest frame sizes the neighbour list and the edge capacity.
    d = np.linalg.norm(positions[:, :, None] - positions[:, None], axis=-1)
    counts = ((d < r_cutoff).sum(axis=(1, 2)) - N)
    densest = jnp.asarray(positions[int(np.argmax(counts))])
    nbrs = neighbor_fn.allocate(densest)
    init_fn, apply_fn = so3krates_neighborlist_pp(
        displacement, r_cutoff, n_species=n_species, positions_test=densest, neighbor_test=nbrs, **hyperparameters
    )
    max_edges = min(apply_fn.max_edges, N * (N - 1))
    avg = float(counts.mean() / N)
    model = CGModel(species, n_species, float(r_cutoff), float(dr_threshold), hyperparameters, fitted, displacement,
                    shift, neighbor_fn, nbrs, max_edges, avg, init_fn, apply_fn)  # fmt: skip
    model.init_fn, model.apply_fn = so3krates_neighborlist_pp(
        displacement, r_cutoff, n_species=n_species, max_edges=max_edges, avg_num_neighbors=avg, **hyperparameters
    )
    return model


def load_cg_model(path: str, reference_positions: np.ndarray) -> tuple[CGModel, dict, dict]:
    """Rebuild a saved CG model: (model, params, metadata). ``reference_positions`` (N, 3) sizes the lists."""
    tree, meta = load_params(path)
    if meta.get("model") != "so3krates_cg":
        raise ValueError(f"{path} holds a {meta.get('model')!r} model, not a CG SO3krates model.")
    prior_arrays = tree.pop("cg_priors", None)
    priors = CGPriors.from_arrays(prior_arrays) if prior_arrays is not None else None
    displacement, shift = jax_md.space.free()
    neighbor_fn = partition.neighbor_list(
        displacement, 1.0, meta["r_cutoff"], dr_threshold=meta["dr_threshold"], format=partition.Dense,
        disable_cell_list=True,
    )  # fmt: skip
    R = jnp.asarray(reference_positions)
    nbrs = neighbor_fn.allocate(R)
    init_fn, apply_fn = so3krates_neighborlist_pp(
        displacement, meta["r_cutoff"], n_species=meta["n_species"], max_edges=meta["max_edges"],
        avg_num_neighbors=meta["avg_num_neighbors"], **meta["hyperparameters"],
    )  # fmt: skip
    model = CGModel(jnp.asarray(meta["species"], jnp.int32), meta["n_species"], meta["r_cutoff"], meta["dr_threshold"],
                    meta["hyperparameters"], priors, displacement, shift, neighbor_fn, nbrs, meta["max_edges"],
                    meta["avg_num_neighbors"], init_fn, apply_fn)  # fmt: skip
    params = jax.tree_util.tree_map(jnp.asarray, tree)
    return model, params, meta
