"""The JAX models of the benchmark, each bound to a system: ours, chemutils' Allegro and the original SO3LR.

``build(model, system, dtype)`` returns a :class:`BoundModel`: jax-md neighbour-list functions (allocated lists
included), ``energy(params, position, **neighbor_lists)`` (a scalar), the parameters, the space's shift function and
a ``settings`` dict that records everything needed to repeat the run (cutoffs, widths, layers, degrees, dtype,
neighbour-list format and capacity). Models that cannot be built here raise :class:`Unavailable` with the reason.

Model names (see ``MODEL_INFO``):

* ``so3lr``: pretrained SO3LR, short range (4.5 Å, NN + ZBL) and long range (12 Å Coulomb + dispersion).
* ``so3lr-sr``: pretrained SO3LR without the long-range terms (for boxes smaller than 2 × 12 Å).
* ``so3lr-remat``: ``so3lr`` with ``remat=True`` (gradient checkpointing of the interaction layers).
* ``so3krates``: SO3krates at default width (SO3LR's: 3 layers, 128 features, degrees 1–4), 4.5 Å, random init.
* ``so3krates-cg``: the small CG width (2 layers, 32 features, 4 heads, degrees 1–2, 10 Å, γ = 0.4), random init.
* ``allegro-chemutils``: chemutils' JAX Allegro (``allegro_neighborlist_pp``) at the width of the matching
  SO3krates (``--width``), through the same jax-md lists. Not on PyPI: skipped when not importable.
* ``so3lr-original``: the original SO3LR package (``so3lr``), its own jax-md path. Not on PyPI: skipped when not
  importable.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Optional

import numpy as np

from benchmarks.systems import BenchSystem


class Unavailable(RuntimeError):
    """The model cannot run in this environment (a missing package, or the system does not fit the model)."""


# Widths: "default" is SO3LR's SO3krates, "cg" the small CG model.
WIDTHS = {
    "default": dict(r_cutoff=4.5, num_layers=3, num_features=128, num_heads=4, degrees=(1, 2, 3, 4)),
    "cg": dict(r_cutoff=10.0, num_layers=2, num_features=32, num_heads=4, degrees=(1, 2), bernstein_gamma=0.4),
}
SKIN = {"default": 0.5, "cg": 1.0}  # jax-md dr_threshold (Å): the list holds pairs within cutoff + skin
CAPACITY_MULTIPLIER = 1.25  # jax-md's, and ours for max_edges
MASSES = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 15: 30.974, 16: 32.06}
CG_MASS = 110.0  # amu, an average residue
TIME_UNIT_FS = 10.180505710774743  # jax-md time unit for amu, Å, eV

MODEL_INFO = {
    "so3lr": "pretrained SO3LR: SO3krates (3 layers, 128 features, degrees 1-4, 4.5 Å) + ZBL + Coulomb + dispersion (12 Å)",
    "so3lr-sr": "pretrained SO3LR, short range only (NN + ZBL, 4.5 Å; Coulomb and dispersion off)",
    "so3lr-remat": "so3lr with remat=True: each interaction layer recomputed in the backward pass (hk.remat)",
    "so3krates": "SO3krates, default width (3 layers, 128 features, 4 heads, degrees 1-4), 4.5 Å, random init",
    "so3krates-cg": "SO3krates, CG width (2 layers, 32 features, 4 heads, degrees 1-2, γ=0.4), 10 Å, random init",
    "allegro-chemutils": "chemutils' JAX Allegro at the matching width, same jax-md lists (skipped unless importable)",
    "so3lr-original": "the original SO3LR package, its own jax-md path (skipped unless importable)",
}
JAX_MODELS = tuple(MODEL_INFO)
# The pretrained-SO3LR models: which terms and options each runs with (our factory; "so3lr-original" its own path).
SO3LR_VARIANTS = {
    "so3lr": dict(long_range=True, remat=False),
    "so3lr-sr": dict(long_range=False, remat=False),
    "so3lr-remat": dict(long_range=True, remat=True),
    "so3lr-original": dict(long_range=True, remat=False),
}


@dataclasses.dataclass
class BoundModel:
    name: str
    energy: Callable  # energy(params, position, **neighbor_lists) -> scalar
    params: Any
    neighbor_fns: dict  # name -> jax-md NeighborListFns
    neighbors: dict  # name -> allocated NeighborList
    displacement: Callable
    shift: Callable
    position: Any  # (N, 3) array in the model dtype (translated for free space, see `_space`)
    species: Any
    masses: Any
    settings: dict
    count_edges: Optional[Callable] = None  # count_edges(position, **neighbor_lists) -> real short-range edges
    max_edges: Optional[int] = None
    allocate_s: Optional[float] = None  # wall time of the first allocation of every list (jax-md compile included)


def model_width(model: str) -> str:
    return "cg" if model in ("so3krates-cg",) else "default"


def _space(system: BenchSystem, margin: float, dtype):
    """(displacement, shift, neighbour-list box, positions, use cell list) for a system.

    Free space: positions are translated so that every atom sits at least ``margin`` inside a cube that encloses the
    molecule; jax-md's cell list then works for large free systems (small ones use the O(N²) list).
    """
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md

    if system.box is not None:
        box = jnp.asarray(system.box, dtype)
        displacement, shift = jax_md.space.periodic(box)
        return displacement, shift, box, jnp.asarray(system.positions, dtype), True
    pos = system.positions - system.positions.min(axis=0) + margin
    box = float(np.ceil(pos.max() + margin))
    displacement, shift = jax_md.space.free()
    return displacement, shift, box, jnp.asarray(pos, dtype), system.num_atoms > 2000


def atom_masses(system: BenchSystem, dtype):
    import jax.numpy as jnp

    if not system.atomistic:
        return jnp.full(system.num_atoms, CG_MASS, dtype)
    return jnp.asarray([MASSES.get(int(z), 12.0) for z in system.species], dtype)


def _cast(params, dtype):
    import jax
    import jax.numpy as jnp

    def cast(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree_util.tree_map(cast, params)


LR_CUTOFF = 12.0  # SO3LR's long-range cutoff (Å)


def long_range_skin(system: BenchSystem, skin: float = SKIN["default"], lr_cutoff: float = LR_CUTOFF) -> float:
    """The long-range list's skin: ``skin``, shrunk where a periodic box is just large enough for minimum image
    (box/2 ≥ cutoff + skin; the 24.8 Å water box: 0.35 Å). Boxes under twice the cutoff are refused."""
    if system.box is None:
        return skin
    lr_skin = min(skin, math.floor((system.box / 2 - lr_cutoff) * 100) / 100 - 0.05)
    if lr_skin < 0:
        raise Unavailable(
            f"{system.name}: box {system.box:.1f} Å < 2 × 12 Å long-range cutoff, minimum image does not hold; "
            "run so3lr-sr (short range only) on it."
        )
    return lr_skin


def _neighbor_fn(displacement, box, cutoff, skin, fmt, cell_list):
    from so3krates_hk._compat import partition

    return partition.neighbor_list(
        displacement, box, cutoff, dr_threshold=skin, capacity_multiplier=CAPACITY_MULTIPLIER,
        format=fmt, disable_cell_list=not cell_list,
    )  # fmt: skip


def _list_settings(name, fn_cutoff, skin, fmt_name, nbrs, cell_list) -> dict:
    return {
        f"{name}_cutoff": fn_cutoff,
        f"{name}_skin": skin,
        f"{name}_format": fmt_name,
        f"{name}_capacity": int(nbrs.idx.shape[-1]) if nbrs.idx.ndim == 2 and fmt_name != "Dense" else int(nbrs.idx.size),
        f"{name}_cell_list": bool(cell_list),
    }


def build(model: str, system: BenchSystem, dtype_name: str = "float32", seed: int = 0) -> BoundModel:
    """Bind ``model`` to ``system`` in ``dtype_name`` (see the module docstring)."""
    if model not in JAX_MODELS:
        raise ValueError(f"Unknown JAX model {model!r}; choose from {JAX_MODELS}.")
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import partition

    dtype = {"float32": jnp.float32, "float64": jnp.float64}[dtype_name]
    if dtype_name == "float64" and not jax.config.jax_enable_x64:
        raise RuntimeError("float64 needs jax_enable_x64 before any array is created (the worker sets it).")
    width = model_width(model)
    w = WIDTHS[width]
    skin = SKIN[width]
    variant = SO3LR_VARIANTS.get(model, dict(long_range=False, remat=False))
    long_range, remat = variant["long_range"], variant["remat"]
    if model in SO3LR_VARIANTS and not system.atomistic:
        raise Unavailable(f"{model} needs atomic numbers; {system.name} is a CG system.")
    lr_cutoff = LR_CUTOFF
    lr_skin = long_range_skin(system, skin) if long_range else skin
    margin = (lr_cutoff if long_range else w["r_cutoff"]) + 2.0
    displacement, shift, box, R, cell_list = _space(system, margin, dtype)
    species = jnp.asarray(system.species, jnp.int32)
    masses = atom_masses(system, dtype)
    common = dict(
        model=model, info=MODEL_INFO[model], dtype=dtype_name, width=width, periodic=system.box is not None,
        box=None if system.box is None else float(system.box),
    )  # fmt: skip

    if model == "so3lr-original":
        return _build_original(system, dtype, R, displacement, shift, box, cell_list, species, masses, common, skin)

    sr_fn = _neighbor_fn(displacement, box, w["r_cutoff"], skin, partition.Sparse, cell_list)
    t = time.perf_counter()
    nbrs = sr_fn.allocate(R)
    allocate_s = time.perf_counter() - t
    fns, lists = {"neighbor": sr_fn}, {"neighbor": nbrs}
    settings = dict(common, **_list_settings("sr", w["r_cutoff"], skin, "Sparse", nbrs, cell_list))

    if model in SO3LR_VARIANTS:  # ours (so3lr-original returned above)
        from so3krates_hk import pretrained, so3lr_neighborlist_pp

        params, kwargs = pretrained.so3lr()
        kwargs = dict(kwargs)
        if not long_range:
            kwargs.update(electrostatics=False, dispersion=False)
        else:
            lr_fn = _neighbor_fn(displacement, box, lr_cutoff, lr_skin, partition.OrderedSparse, cell_list)
            t = time.perf_counter()
            nbrs_lr = lr_fn.allocate(R)
            allocate_s += time.perf_counter() - t
            fns["neighbor_lr"], lists["neighbor_lr"] = lr_fn, nbrs_lr
            settings.update(_list_settings("lr", lr_cutoff, lr_skin, "OrderedSparse", nbrs_lr, cell_list))
        _, apply_fn = so3lr_neighborlist_pp(
            displacement, positions_test=R, neighbor_test=nbrs, max_edge_multiplier=CAPACITY_MULTIPLIER, remat=remat,
            **kwargs,
        )  # fmt: skip
        params = _cast(params, dtype)
        Z = species

        def energy(params, position, neighbor, neighbor_lr=None):
            return apply_fn(params, position, neighbor, neighbor_lr, Z, 0.0, 0.0)

        cfg = apply_fn.config
        settings.update(
            r_cutoff=kwargs["r_cutoff"], lr_cutoff=kwargs["lr_cutoff"] if long_range else None,
            long_range=long_range, zbl=True, num_layers=cfg.num_layers, num_features=cfg.num_features,
            num_heads=cfg.num_heads, degrees=list(cfg.degrees), num_radial_basis_fn=cfg.num_radial_basis_fn,
            max_edges=apply_fn.max_edges, avg_num_neighbors=kwargs["avg_num_neighbors"], weights="pretrained",
            remat=remat,
        )  # fmt: skip
        count = lambda position, neighbor, neighbor_lr=None: apply_fn.count_edges(position, neighbor)  # noqa: E731
        return BoundModel(model, energy, params, fns, lists, displacement, shift, R, species, masses, settings,
                          count, apply_fn.max_edges, allocate_s)  # fmt: skip

    if model in ("so3krates", "so3krates-cg"):
        from so3krates_hk import so3krates_neighborlist_pp

        hyper = {k: v for k, v in w.items() if k != "r_cutoff"}
        n_species = 20 if width == "cg" else 100  # atomistic: species are Z (< 100) on a 100-row table
        init_fn, apply_fn = so3krates_neighborlist_pp(
            displacement, w["r_cutoff"], n_species=n_species, positions_test=R, neighbor_test=nbrs,
            max_edge_multiplier=CAPACITY_MULTIPLIER, **hyper,
        )  # fmt: skip
        params = _cast(init_fn(jax.random.PRNGKey(seed), R, nbrs, species=species), dtype)

        def energy(params, position, neighbor):
            return apply_fn(params, position, neighbor, species=species)

        cfg = apply_fn.config
        settings.update(
            r_cutoff=w["r_cutoff"], lr_cutoff=None, long_range=False, zbl=False, num_layers=cfg.num_layers,
            num_features=cfg.num_features, num_heads=cfg.num_heads, degrees=list(cfg.degrees),
            num_radial_basis_fn=cfg.num_radial_basis_fn, bernstein_gamma=cfg.bernstein_gamma, n_species=n_species,
            max_edges=apply_fn.max_edges, avg_num_neighbors=apply_fn.avg_num_neighbors, weights=f"random (seed {seed})",
        )  # fmt: skip
        return BoundModel(model, energy, params, fns, lists, displacement, shift, R, species, masses, settings,
                          apply_fn.count_edges, apply_fn.max_edges, allocate_s)  # fmt: skip

    if model == "allegro-chemutils":
        bound = _build_chemutils_allegro(system, dtype, R, nbrs, fns, lists, displacement, shift, species, masses,
                                         settings, width, seed)  # fmt: skip
        bound.allocate_s = allocate_s
        return bound
    raise AssertionError(model)


def allegro_matching(width: str) -> dict:
    """Allegro settings at the width of the matching SO3krates: same cutoff, layers, scalar width and max degree.

    SO3krates carries one channel per degree in ε; Allegro's tensor track needs a multiplicity, we use F/16 (8 at
    the default width, 2 at the CG width) and no odd-parity copies, so the tensor track has the irreps of Y_l.
    """
    w = WIDTHS[width]
    F, lmax = w["num_features"], max(w["degrees"])
    return dict(
        r_cutoff=w["r_cutoff"], num_layers=w["num_layers"], max_ell=lmax, num_scalar_features=F,
        num_tensor_features=max(2, F // 16), mlp_width=F, n_radial_basis=8,
    )  # fmt: skip


def _build_chemutils_allegro(system, dtype, R, nbrs, fns, lists, displacement, shift, species, masses, settings,
                             width, seed):  # fmt: skip
    try:
        from chemutils.models.allegro import allegro_neighborlist_pp
    except Exception as err:  # noqa: BLE001 — any import failure means "not available here"
        raise Unavailable(f"chemutils is not importable ({type(err).__name__}: {err})") from None
    import jax

    m = allegro_matching(width)
    lmax, F, T = m["max_ell"], m["num_scalar_features"], m["num_tensor_features"]
    hidden = " + ".join([f"{F}x0e"] + [f"{T}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(1, lmax + 1)])
    n_species = 20 if width == "cg" else 100
    init_fn, apply_fn = allegro_neighborlist_pp(
        displacement, m["r_cutoff"], n_species=n_species, positions_test=R, neighbor_test=nbrs,
        max_ell=lmax, num_layers=m["num_layers"], hidden_irreps=hidden, mlp_n_hidden=F, mlp_n_layers=2,
        n_radial_basis=m["n_radial_basis"],
    )  # fmt: skip
    params = _cast(init_fn(jax.random.PRNGKey(seed), R, nbrs, species=species), dtype)

    def energy(params, position, neighbor):
        return apply_fn(params, position, neighbor, species=species)

    settings.update(
        r_cutoff=m["r_cutoff"], num_layers=m["num_layers"], max_ell=lmax, hidden_irreps=hidden, mlp_n_hidden=F,
        mlp_n_layers=2, n_radial_basis=m["n_radial_basis"], n_species=n_species, weights=f"random (seed {seed})",
        matching=f"SO3krates {width} width",
    )  # fmt: skip
    return BoundModel("allegro-chemutils", energy, params, fns, lists, displacement, shift, R, species, masses, settings)


def _build_original(system, dtype, R, displacement, shift, box, cell_list, species, masses, common, skin):
    """The original SO3LR through its own jax-md entry point (``so3lr.to_jax_md`` with ``So3lrPotential``), when the
    package is present. ``benchmarks/so3lr_original_worker.py`` times it from an environment of its own."""
    try:
        from so3lr import So3lrPotential, to_jax_md
    except Exception as err:  # noqa: BLE001
        raise Unavailable(f"the original so3lr package is not importable ({type(err).__name__}: {err})") from None
    import jax.numpy as jnp

    # the original's defaults: 4.5 Å short range, 12 Å long range, 2 Å dispersion damping
    potential = So3lrPotential(lr_cutoff=LR_CUTOFF, dtype=np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    lr_box = box if system.box is not None else None  # the original's energy function wants the box (None: free)
    neighbor_fn, neighbor_fn_lr, energy_fn = to_jax_md(
        potential=potential, displacement_or_metric=displacement, box_size=box, species=species,
        dr_threshold=min(skin, long_range_skin(system, skin)), capacity_multiplier=CAPACITY_MULTIPLIER,
        buffer_size_multiplier_sr=CAPACITY_MULTIPLIER, buffer_size_multiplier_lr=CAPACITY_MULTIPLIER,
        disable_cell_list=not cell_list, fractional_coordinates=False,
    )  # fmt: skip
    t = time.perf_counter()
    nbrs, nbrs_lr = neighbor_fn.allocate(R), neighbor_fn_lr.allocate(R)
    allocate_s = time.perf_counter() - t

    def energy(params, position, neighbor, neighbor_lr):
        del params
        return jnp.sum(energy_fn(position, neighbor=neighbor.idx, neighbor_lr=neighbor_lr.idx, box=lr_box))

    settings = dict(
        common, r_cutoff=4.5, lr_cutoff=12.0, long_range=True, weights="pretrained (original package)",
        sr_format=str(getattr(nbrs, "format", "?")), lr_format=str(getattr(nbrs_lr, "format", "?")),
        sr_capacity=int(nbrs.idx.shape[-1]), lr_capacity=int(nbrs_lr.idx.shape[-1]), sr_skin=skin,
        num_layers=3, num_features=128, num_heads=4, degrees=[1, 2, 3, 4],
    )  # fmt: skip
    return BoundModel("so3lr-original", energy, {}, {"neighbor": neighbor_fn, "neighbor_lr": neighbor_fn_lr},
                      {"neighbor": nbrs, "neighbor_lr": nbrs_lr}, displacement, shift, R, species, masses, settings,
                      allocate_s=allocate_s)
