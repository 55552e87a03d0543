"""SO3krates in the users' model slot: the one class interface their framework holds Allegro and MACE behind.

    from so3krates_hk import SO3LRModel
    model = SO3LRModel(config, R0, box, species, N_max)   # config: their whole YAML, as a nested dict
    params = model.initialize_params(rng_key)
    E = model.compute_energy(params, R, mask, species, neighbor=None)
    E, F = model.compute_energy_and_forces(params, R, mask, species, neighbor=None)
    model.initial_neighbors, model.displacement, model.nneigh_fn      # jax-md Dense neighbour list function

``config`` is the nested dict of their YAML. Only the ``model:`` section is read, and in it only ``ml_model``,
``cutoff``, ``dr_threshold`` and ``so3lr``: the section belongs to their framework, so other backbones' sections
(``mace:``, ``allegro:``) and their own keys are left alone. ``ml_model``, when present, must be ``"so3lr"``. Inside
``model.so3lr`` the keys are checked strictly: an unknown or mistyped key, a wrong type or a value out of range is a
:class:`~so3krates_hk.training.config.ConfigError` that names it (the section is
:class:`~so3krates_hk.training.config.SO3LRSlotConfig`, read by the same machinery as the training configs).

| their key                       | ours                                 | note                                       |
|---------------------------------|--------------------------------------|--------------------------------------------|
| ``model.cutoff``                | ``r_cutoff``                         | short-range cutoff, units of R, > 0        |
| ``model.dr_threshold``          | neighbour-list skin                  | ≥ 0 (default 0)                            |
| ``model.so3lr.num_layers``      | ``num_layers``                       | ≥ 1                                        |
| ``model.so3lr.hidden_features`` | ``num_features``                     | ≥ 1                                        |
| ``model.so3lr.num_heads``       | ``num_heads``                        | must divide hidden_features                |
| ``model.so3lr.max_degree``      | ``degrees = (1, …, max_degree)``     | ``max_degree: 4`` means degrees 1, 2, 3, 4 |
| ``model.so3lr.n_radial_basis``  | ``num_radial_basis_fn``              | Bernstein basis functions, ≥ 1             |
| ``model.so3lr.use_lr``          | SO3LR long-range physics on / off    | see below                                  |
| ``model.so3lr.lr_cutoff``       | ``lr_cutoff``                        | read only with ``use_lr: true``; > cutoff  |

Optional extra keys under ``model.so3lr``: ``bernstein_gamma``, ``avg_num_neighbors``, ``n_species`` and any other
``SO3kratesConfig`` field under ``model.so3lr.hyperparameters``.

``use_lr: false`` (the CG case): the short-range SO3krates transformer alone. Species are bead types 0…n−1
(``n_species`` = max(species)+1 unless ``model.so3lr.n_species`` is given); units are those of the data.

``use_lr: true`` adds SO3LR's long-range and physical terms: ZBL nuclear repulsion, damped Coulomb between
predicted partial charges, and dispersion from predicted Hirshfeld volumes. Every one of them is defined per
chemical element, so ``use_lr: true`` means an **atomistic** model: species are atomic numbers Z (1…99; 0 only for
padding), positions in Å, energies in eV, and ``lr_cutoff`` must exceed ``cutoff``. It has no meaning for a
one-bead-per-residue CG model, whose bead types are not elements (a bead type such as 6 would silently be read as
carbon), so keep ``use_lr: false`` there. The long-range neighbour list (jax-md Dense, ``lr_cutoff``) is kept inside
the class and updated from ``R`` on every call.

Box: None → free space; a scalar or a length-3 vector → ``space.periodic``; a 3×3 matrix → ``space.periodic_general``
with Cartesian positions. ``N_max`` particles, of which ``mask`` marks the real ones; padded particles contribute
exactly zero.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._compat import jax_md, partition
from so3krates_hk.factory import SO3LR_AVG_NUM_NEIGHBORS, so3krates_neighborlist_pp, so3lr_neighborlist_pp
from so3krates_hk.training.config import ConfigError, SO3LRSlotConfig, build_section

MAX_Z = 99  # SO3LR's element tables


def _get(mapping: Mapping, key: str, where: str, kind=None, default=Ellipsis):
    if key not in mapping:
        if default is Ellipsis:
            raise ConfigError(f"Missing key {where}.{key}.")
        return default
    value = mapping[key]
    if kind is not None and (isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)):
        name = "a number" if kind == (int, float) else getattr(kind, "__name__", kind)
        raise ConfigError(f"{where}.{key} must be {name}; got {value!r}.")
    return value


class SO3kratesModel:
    """SO3krates (or SO3LR with ``use_lr``) behind the users' backbone interface; see the module docstring."""

    def __init__(self, config: Mapping[str, Any], R0, box, species, N_max: int):
        model_cfg = _get(config, "model", "config", Mapping)
        backbone = model_cfg.get("ml_model", "so3lr")
        if backbone != "so3lr":
            raise ConfigError(f"model.ml_model is {backbone!r}; SO3LRModel is the backbone for ml_model: \"so3lr\".")
        so3 = build_section(SO3LRSlotConfig, _get(model_cfg, "so3lr", "model", Mapping), "model.so3lr")
        self.so3lr = so3
        self.cutoff = float(_get(model_cfg, "cutoff", "model", (int, float)))
        self.dr_threshold = float(_get(model_cfg, "dr_threshold", "model", (int, float), 0.0))
        if not self.cutoff > 0 or not self.dr_threshold >= 0:
            raise ConfigError(f"model.cutoff must be > 0 and model.dr_threshold ≥ 0; got {self.cutoff}, "
                              f"{self.dr_threshold}.")  # fmt: skip
        if so3.hidden_features % so3.num_heads:
            raise ConfigError(f"model.so3lr.num_heads ({so3.num_heads}) must divide model.so3lr.hidden_features "
                              f"({so3.hidden_features}).")  # fmt: skip
        self.use_lr, self.lr_cutoff = so3.use_lr, so3.lr_cutoff
        if self.use_lr:
            if not self.lr_cutoff > self.cutoff:
                raise ConfigError(f"model.so3lr.lr_cutoff ({self.lr_cutoff:g}) must exceed model.cutoff "
                                  f"({self.cutoff:g}) with use_lr: true (the long-range terms act up to lr_cutoff).")
            z = np.asarray(species)
            if z.size and (z.min() < 0 or z.max() > MAX_Z or not np.any(z > 0)):
                raise ConfigError(f"use_lr: true is SO3LR's atomistic long-range physics: species must be atomic "
                                  f"numbers 1…{MAX_Z} (0 for padding); got values {z.min()}…{z.max()}. A CG model "
                                  f"with bead types needs use_lr: false.")  # fmt: skip
        hyper = dict(so3.hyperparameters)
        hyper.update(
            num_layers=so3.num_layers,
            num_features=so3.hidden_features,
            num_heads=so3.num_heads,
            degrees=tuple(range(1, so3.max_degree + 1)),
            num_radial_basis_fn=so3.n_radial_basis,
        )
        if so3.bernstein_gamma is not None:
            hyper["bernstein_gamma"] = so3.bernstein_gamma
        clash = sorted(set(so3.hyperparameters) & {"num_layers", "num_features", "num_heads", "degrees",
                                                              "num_radial_basis_fn", "bernstein_gamma"})  # fmt: skip
        if clash:
            raise ConfigError(f"model.so3lr.hyperparameters repeats {clash}; set them through the model.so3lr keys.")
        from so3krates_hk.config import SO3kratesConfig

        try:
            SO3kratesConfig.from_kwargs(**hyper)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.so3lr.hyperparameters: {e}") from None
        self.hyperparameters = hyper

        R0 = jnp.asarray(R0)
        if R0.shape != (N_max, 3):
            raise ConfigError(f"R0 must have shape (N_max, 3) = ({N_max}, 3); got {R0.shape}.")
        self.N_max = int(N_max)
        self.species = jnp.asarray(species, jnp.int32)
        self.box = None if box is None else jnp.asarray(box)
        if self.box is None:
            self._displacement, self._shift = jax_md.space.free()
            list_box, cell_list = 1.0, False
        elif self.box.ndim == 2:
            self._displacement, self._shift = jax_md.space.periodic_general(self.box, fractional_coordinates=False)
            list_box, cell_list = self.box, True
        else:
            self._displacement, self._shift = jax_md.space.periodic(self.box)
            list_box, cell_list = self.box, True
        lists = dict(dr_threshold=self.dr_threshold, format=partition.Dense, disable_cell_list=not cell_list)
        if self.box is not None and self.box.ndim == 2:
            lists["fractional_coordinates"] = False
        self._nneigh_fn = partition.neighbor_list(self._displacement, list_box, self.cutoff, **lists)
        self._initial_neighbors = self._nneigh_fn.allocate(R0)

        if self.use_lr:
            avg = so3.avg_num_neighbors if so3.avg_num_neighbors is not None else SO3LR_AVG_NUM_NEIGHBORS
            self._lr_fn = partition.neighbor_list(self._displacement, list_box, self.lr_cutoff, **lists)
            self._initial_lr = self._lr_fn.allocate(R0)
            self._init, self._apply = so3lr_neighborlist_pp(
                self._displacement, r_cutoff=self.cutoff, lr_cutoff=self.lr_cutoff, lr_neighbor_format="dense",
                avg_num_neighbors=avg, **hyper,
            )  # fmt: skip
        else:
            n_species = so3.n_species if so3.n_species is not None else int(np.max(np.asarray(species))) + 1
            self.n_species = n_species
            kwargs = dict(n_species=n_species, **hyper)
            if so3.avg_num_neighbors is not None:
                kwargs["avg_num_neighbors"] = so3.avg_num_neighbors
            else:
                kwargs.update(positions_test=R0, neighbor_test=self._initial_neighbors)
            self._init, self._apply = so3krates_neighborlist_pp(self._displacement, self.cutoff, **kwargs)

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def initial_neighbors(self):
        """The jax-md Dense neighbour list allocated on R0."""
        return self._initial_neighbors

    @property
    def displacement(self):
        return self._displacement

    @property
    def shift(self):
        return self._shift

    @property
    def nneigh_fn(self):
        """The jax-md Dense neighbour list function (``allocate``/``update``), cutoff ``model.cutoff``."""
        return self._nneigh_fn

    # ------------------------------------------------------------------------------------------------ methods
    def initialize_params(self, rng_key) -> dict:
        R0 = self._initial_neighbors.reference_position
        if self.use_lr:
            return self._init(rng_key, R0, self._initial_neighbors, self._initial_lr, self.species)
        return self._init(rng_key, R0, self._initial_neighbors, species=self.species)

    def compute_energy(self, params, R, mask=None, species=None, neighbor=None, **kwargs):
        """Total energy; ``neighbor=None`` updates the initial list from ``R`` (jittable)."""
        species = self.species if species is None else species
        if neighbor is None:
            neighbor = self._initial_neighbors.update(R)
        if self.use_lr:
            lr = self._initial_lr.update(R)
            return self._apply(params, R, neighbor, lr, species, mask=mask, **kwargs)
        return self._apply(params, R, neighbor, species=species, mask=mask, **kwargs)

    def compute_energy_and_forces(self, params, R, mask=None, species=None, neighbor=None, **kwargs):
        """(energy, forces = −∂E/∂R)."""
        energy, grad = jax.value_and_grad(
            lambda r: self.compute_energy(params, r, mask, species, neighbor, **kwargs)
        )(R)
        return energy, -grad


SO3LRModel = SO3kratesModel  # the name the users' model slot uses (``ml_model: "so3lr"``)
