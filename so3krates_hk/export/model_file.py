"""Trained models as the exporters read them: a ``params.npz`` (:mod:`so3krates_hk.io`) whose metadata says how to
build the model.

Kinds (metadata ``"model"``):

* ``"so3krates_cg"``: a CG model saved by :meth:`so3krates_hk.training.cg_model.CGModel.save` (``so3krates-hk
  train`` writes it as ``params.npz``): ``r_cutoff``, ``n_species``, ``avg_num_neighbors``, ``hyperparameters``,
  and the fitted priors under the pseudo-module ``cg_priors``.
* ``"so3krates"``: any SO3krates energy of :func:`so3krates_hk.so3krates_neighborlist_pp`; ``factory_kwargs``
  holds ``r_cutoff``, ``n_species``, ``avg_num_neighbors``, optionally ``positive_species``, and the
  ``SO3kratesConfig`` fields. :func:`so3krates_metadata` writes it.
* ``"so3lr"``: SO3LR weights (``so3krates-hk convert``, ``finetune``). Recognised so that the exporters can say
  why they refuse it (:class:`NotExportableError`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

from so3krates_hk.config import SO3kratesConfig
from so3krates_hk.errors import UserError

SO3LR_NAME = "so3lr"  # the MODEL argument that means the shipped SO3LR weights
PRIORS_MODULE = "cg_priors"
DEFAULT_UNITS = {"so3krates_cg": "real", "so3krates": "metal"}


class NotExportableError(UserError):
    """The model cannot be expressed in the target format; the message says why and what to use instead."""


def so3lr_refusal(target: str) -> NotExportableError:
    """Why SO3LR does not fit a per-rank pair-style interface (``target`` names the format)."""
    return NotExportableError(
        f"SO3LR cannot be exported to {target}: its partial charges are neutralised over the whole system "
        "(q_i = q̃_i − (Σ_j q̃_j − Q)/N) and its charge and spin embeddings are normalised by a sum over every atom, "
        f"but a {target} model sees one rank's atoms (owned and ghost rows, padding included, not told apart) and "
        "the format offers no sum over all atoms of all ranks (its exchanges only copy owner rows into ghost rows "
        "and add ghost rows back to their owners). Run SO3LR in LAMMPS with `so3krates-hk lammps` "
        "(fix external, sums reduced over MPI), or in `so3krates-hk md`."
    )


@dataclasses.dataclass(frozen=True)
class ShortRangeModel:
    """A local SO3krates energy E = Σ_i E_i, each E_i depending on atoms within ``num_layers`` × ``r_cutoff``."""

    kind: str
    params: dict  # Haiku tree of the transformer and the energy head (priors removed)
    config: SO3kratesConfig
    r_cutoff: float
    n_species: int
    avg_num_neighbors: float
    positive_species: bool = False  # species are 1-based (subtract 1 before the embedding)
    priors: Any = None  # CGPriors of a CG model, else None
    path: str = ""

    @property
    def default_units(self) -> str:
        """LAMMPS unit style the model's kind is trained in by default (CG: ``real``, kcal/mol and Å)."""
        return DEFAULT_UNITS[self.kind]

    @property
    def receptive_field(self) -> float:
        """num_layers × r_cutoff: how far the energy of one atom reaches."""
        return self.config.num_layers * self.r_cutoff


def so3krates_metadata(
    r_cutoff: float, n_species: int, avg_num_neighbors: float, positive_species: bool = False, **hyperparameters: Any
) -> dict:
    """The metadata that makes a ``save_params`` file of a :func:`so3krates_neighborlist_pp` model exportable."""
    SO3kratesConfig.from_kwargs(**hyperparameters)  # validate now, not at export time
    kwargs = dict(r_cutoff=float(r_cutoff), n_species=int(n_species), avg_num_neighbors=float(avg_num_neighbors),
                  positive_species=bool(positive_species), **hyperparameters)  # fmt: skip
    if "degrees" in kwargs:
        kwargs["degrees"] = list(kwargs["degrees"])
    return {"model": "so3krates", "factory": "so3krates_hk.so3krates_neighborlist_pp", "factory_kwargs": kwargs}


def _require(meta: dict, key: str, path: str):
    if key not in meta:
        raise UserError(f"{path}: the metadata has no {key!r}; it was not written by so3krates_hk's trainers.")
    return meta[key]


def load_model(path: str, target: str = "this format") -> ShortRangeModel:
    """Read an exportable model from a ``save_params`` file; ``"so3lr"`` or SO3LR weights raise
    :class:`NotExportableError`, anything else unknown a :class:`UserError`."""
    from so3krates_hk.io import load_params

    if path == SO3LR_NAME:
        raise so3lr_refusal(target)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        tree, meta = load_params(path)
    except ValueError as e:
        raise UserError(str(e)) from None
    kind = meta.get("model")
    if kind == "so3lr":
        raise so3lr_refusal(target)
    priors = None
    if kind == "so3krates_cg":
        from so3krates_hk.training.priors import CGPriors

        arrays = tree.pop(PRIORS_MODULE, None)
        priors = None if arrays is None else CGPriors.from_arrays(arrays)
        kwargs = dict(r_cutoff=_require(meta, "r_cutoff", path), n_species=_require(meta, "n_species", path),
                      avg_num_neighbors=_require(meta, "avg_num_neighbors", path), positive_species=False,
                      **_require(meta, "hyperparameters", path))  # fmt: skip
    elif kind == "so3krates":
        kwargs = dict(_require(meta, "factory_kwargs", path))
    else:
        raise UserError(f"{path} holds a {kind!r} model; exportable kinds are 'so3krates_cg' and 'so3krates'.")
    r_cutoff = float(kwargs.pop("r_cutoff"))
    n_species = int(kwargs.pop("n_species"))
    avg = float(kwargs.pop("avg_num_neighbors"))
    positive = bool(kwargs.pop("positive_species", False))
    try:
        config = SO3kratesConfig.from_kwargs(**kwargs)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    if config.use_charge_embed or config.use_spin_embed:
        raise NotExportableError(
            f"{path}: this SO3krates model embeds the total charge or spin, whose normaliser is a sum over every "
            f"atom of the system; {target} models see one rank's atoms only. Export a model without "
            "use_charge_embed/use_spin_embed."
        )
    params = {k: {n: np.asarray(v) for n, v in leaves.items()} for k, leaves in tree.items()}
    return ShortRangeModel(kind, params, config, r_cutoff, n_species, avg, positive, priors, str(path))


def check_priors(model: ShortRangeModel, without_priors: bool, target: str) -> None:
    """A CG model's priors act on fixed atom indices (bonds, angles, excluded pairs), which a per-rank pair style
    never sees: refuse unless the caller exports the network alone on purpose."""
    if model.priors is not None and not without_priors:
        n = (len(model.priors.bonds), len(model.priors.angles), len(model.priors.repulsion_pairs))
        raise NotExportableError(
            f"{model.path} carries CG priors ({n[0]} bonds, {n[1]} angles, {n[2]} repulsive pairs) defined on fixed "
            f"atom indices, which {target} models never see (they get positions, types and a neighbour list). "
            "Export the network alone with --without-priors and add the priors in LAMMPS (bond_style harmonic, "
            "angle_style harmonic and a repulsive pair style with special_bonds exclusions)."
        )


def type_table(model: ShortRangeModel, species: Optional[list[int]]) -> np.ndarray:
    """Model species of LAMMPS types 1, 2, …: ``species`` as given (the values ``apply_fn`` takes), else type t →
    species t − 1 (+1 for 1-based models). Returns the 0-based embedding rows."""
    offset = 1 if model.positive_species else 0
    if species is None:
        return np.arange(model.n_species, dtype=np.int32)
    table = np.asarray(species, dtype=np.int64) - offset
    if table.ndim != 1 or len(table) == 0:
        raise UserError("--species needs one model species per LAMMPS type.")
    bad = [int(s) + offset for s in table if not 0 <= s < model.n_species]
    if bad:
        raise UserError(f"species {bad} are outside the model's range [{offset}, {model.n_species + offset}).")
    return table.astype(np.int32)
