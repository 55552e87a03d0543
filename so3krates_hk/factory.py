"""chemutils-style factories: ``(init_fn, apply_fn)`` pairs over jax-md neighbour lists.

``so3krates_neighborlist_pp`` follows the calling convention of chemutils' ``allegro_neighborlist_pp`` (see
``CHEMUTILS_CONTRACT``), so a chemtrain user swaps backbones by changing one line:

    init_fn, apply_fn = so3krates_neighborlist_pp(displacement, r_cutoff, n_species, positions_test, neighbor_test)
    params = init_fn(key, position, neighbor, species=species)
    energy = apply_fn(params, position, neighbor, species=species, mask=mask, box=box)

Every extra keyword of ``init_fn``/``apply_fn`` (``box=`` for ``space.periodic_general``, …) is passed to the
displacement function. Both functions are pure, and work under ``jax.jit``, ``jax.vmap`` and ``jax.grad``. Called
with concrete arrays they first validate their inputs on the host (``so3krates_hk.validation``): shapes, finite
positions, species (atomic numbers) in range, charge and spin, and (``apply_fn`` only) no two unmasked atoms of a list
entry closer than 0.1 Å (coincident atoms would otherwise be dropped from the graph: an entry with d = 0 has no
direction). Under a JAX transformation only the shape checks can run.

Edge capacity and overflow: with ``max_edges`` (given, or ceil(edges × ``max_edge_multiplier``) of the test graph)
the real short-range edges are compacted into ``max_edges`` slots. A structure with more edges than that returns a
**NaN energy** (and NaN forces); ``mode="all"`` also returns ``edge_overflow`` (True) and ``num_edges``, so a driver
can re-allocate (see ``so3krates_hk.md``). Without ``max_edges`` and test data, every entry of the neighbour list is
kept and nothing can overflow.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp

from so3krates_hk import validation
from so3krates_hk._compat import partition
from so3krates_hk.config import SO3LR_AVG_NUM_NEIGHBORS, SO3kratesConfig, SO3LRConfig
from so3krates_hk.graph import (build_graph, capacity_from_test, closest_pair, count_edges, not_folded,
                                pair_multiplicity, static_cell_size)
from so3krates_hk.models import (
    SO3LR_HEAD_SPECIES,
    LongRangePairs,
    so3krates_energy,
    so3lr_energy,
)
from so3krates_hk.physics.dipole import dipole_moment

MODES = ("energy", "all")
LR_FORMATS = {
    "ordered": partition.NeighborListFormat.OrderedSparse,
    "sparse": partition.NeighborListFormat.Sparse,
    "dense": partition.NeighborListFormat.Dense,
}


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")


def _finish(per_atom: jnp.ndarray, aux: dict, position, node_mask, overflow, mode: str, per_particle: bool):
    """Poison the result on edge overflow or non-finite positions; then return the scalar, the per-atom vector, or
    the dict of ``mode="all"``.

    Inside jit these cannot raise, and a NaN position would otherwise only silence that atom's edges (its distances
    fail every cutoff test). Multiplying by NaN, rather than selecting NaN, makes the forces NaN too.
    """
    finite = jnp.all(jnp.isfinite(position) | ~node_mask[:, None])
    poison = jnp.where(overflow | ~finite, jnp.nan, 1.0).astype(per_atom.dtype)
    per_atom = per_atom * poison
    energy = jnp.sum(per_atom)
    if mode == "all":
        return dict(aux, energy=energy, per_atom_energy=per_atom, edge_overflow=overflow)
    return per_atom if per_particle else energy


def _pair_capacity(max_edges: Optional[int]) -> Optional[int]:
    """The transformer works on unordered pairs (``graph.build_graph(pairs=True)``): ``max_edges`` directed edges
    are ⌈max_edges / 2⌉ pairs."""
    return None if max_edges is None else max(1, -(-int(max_edges) // 2))


def _displacement_kwargs(kwargs: dict) -> dict:
    """The keyword arguments of an ``apply_fn`` call that go to the displacement function (e.g. ``box``)."""
    return {k: v for k, v in kwargs.items() if k not in ("total_charge", "num_unpaired_electrons")}


def _edge_counter(displacement, r_cutoff: float) -> Callable:
    """``count_edges(position, neighbor, mask=None, **kwargs)``: the real short-range edges of a structure, jittable.

    Compare it with ``apply_fn.max_edges`` to detect (or anticipate) an edge-capacity overflow, e.g. in an MD loop.
    """

    def real_edges(position, neighbor, mask=None, **kwargs):
        node_mask = None if mask is None else jnp.asarray(mask).astype(bool)
        return build_graph(displacement, position, neighbor, r_cutoff, node_mask, None, **kwargs).num_edges

    return real_edges


def _test_graph_stats(displacement, r_cutoff, positions_test, neighbor_test):
    if (positions_test is None) != (neighbor_test is None):
        raise ValueError("Pass positions_test and neighbor_test together (or neither).")
    if positions_test is None:
        return None
    n_edges = count_edges(displacement, positions_test, neighbor_test, r_cutoff)
    return n_edges, jnp.shape(positions_test)[0]


def _capacity(displacement, r_cutoff, positions_test, neighbor_test, max_edges, max_edge_multiplier):
    """(max_edges, edges per atom of the test graph): ``max_edges`` as given, else ⌈edges × multiplier⌉ of the test
    graph, else None (unbounded); the edges per atom are None without test data."""
    stats = _test_graph_stats(displacement, r_cutoff, positions_test, neighbor_test)
    if stats is None:
        return max_edges, None
    n_edges, n_atoms = stats
    if max_edges is None:
        max_edges = capacity_from_test(n_edges, max_edge_multiplier)
    return max_edges, n_edges / n_atoms


def _build(model: Callable, check: Callable, displacement, r_cutoff: float, config, max_edges: Optional[int]):
    """The chemutils convention, written once: ``(init_fn, apply_fn)`` around the Haiku function ``model``.

    ``model(position, neighbor, ..., mask=None, **kwargs)`` returns the energy; its signature is the one of
    ``init_fn`` (after ``key``) and ``apply_fn`` (after ``params``). Called with concrete arrays, both first run
    ``check(arguments)`` (the model's own host-side checks, on the bound arguments by name) and ``apply_fn`` then the
    overlap check (no two unmasked atoms of a list entry closer than 0.1 Å; not at init, where only shapes matter and
    padded frames may stack their ghosts unmasked). Then the jitted Haiku ``init``/``apply`` run. The functions
    carry ``config``, ``max_edges`` and ``count_edges`` (the real short-range edges, to compare with ``max_edges``).
    """
    signature = inspect.signature(model)
    transformed = hk.without_apply_rng(hk.transform(model))
    init_jit, apply_jit = jax.jit(transformed.init), jax.jit(transformed.apply)
    closest = jax.jit(functools.partial(closest_pair, displacement))

    def bind(args, kwargs, overlap: bool) -> inspect.BoundArguments:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        for name in ("neighbor", "neighbor_lr"):  # no JAX scalar in a list's static data (graph.static_cell_size)
            if a.get(name) is not None:
                a[name] = static_cell_size(a[name])
        check(a)
        if overlap:
            validation.check_closest_pair(closest, a["position"], a["neighbor"], a["mask"],
                                          **_displacement_kwargs(a["kwargs"]))  # fmt: skip
        return bound

    def init_fn(key, *args, **kwargs):
        bound = bind(args, kwargs, overlap=False)
        return init_jit(key, *bound.args, **bound.kwargs)

    def apply_fn(params, *args, **kwargs):
        bound = bind(args, kwargs, overlap=True)
        return apply_jit(params, *bound.args, **bound.kwargs)

    parameters = list(signature.parameters.values())
    for fn, first in ((init_fn, "key"), (apply_fn, "params")):
        first = inspect.Parameter(first, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        fn.__signature__ = signature.replace(parameters=[first, *parameters], return_annotation=inspect.Signature.empty)
    init_fn.config = apply_fn.config = config
    apply_fn.max_edges = max_edges
    apply_fn.count_edges = _edge_counter(displacement, r_cutoff)
    return init_fn, apply_fn


def so3krates_neighborlist_pp(
    displacement: Callable,
    r_cutoff: float,
    n_species: int = 100,
    positions_test: Optional[jnp.ndarray] = None,
    neighbor_test: Optional[Any] = None,
    max_edge_multiplier: float = 1.25,
    max_edges: Optional[int] = None,
    avg_num_neighbors: Optional[float] = None,
    mode: str = "energy",
    per_particle: bool = False,
    positive_species: bool = False,
    remat: bool = False,
    **hyperparameters: Any,
) -> tuple[Callable, Callable]:
    """SO3krates energy over a jax-md neighbour list, as an ``(init_fn, apply_fn)`` pair.

    Args:
        displacement: jax-md displacement function, d(Ra, Rb) = Ra − Rb (free, periodic or periodic_general).
        r_cutoff: short-range cutoff, in the units of the positions (SO3LR: 4.5 Å).
        n_species: rows of the species embedding; species are integers in [0, n_species).
        positions_test, neighbor_test: a representative structure and its neighbour list; sizes ``max_edges`` and,
            if not given, ``avg_num_neighbors`` (edges per atom).
        max_edge_multiplier: head room on the test graph's edge count.
        max_edges: edge capacity (overrides the estimate); see the module docstring for overflow.
        avg_num_neighbors: the message normaliser n̄ (a constant, not learned). Required unless test data is given.
        mode: "energy" (scalar, or per-atom with ``per_particle``) or "all" (a dict of energies and features).
        per_particle: return per-atom energies (N,), zero on masked atoms.
        positive_species: species are 1-based (e.g. atomic numbers on a table of ``n_species`` rows); 1 is subtracted.
        remat: gradient checkpointing of the interaction layers (``hk.remat``): forces and parameter gradients
            recompute each layer's forward pass instead of storing its per-edge intermediates. Same numbers and
            parameter tree, 15-40 % more time. On XLA:CPU memory does not drop (its pipeline removes the
            optimisation barriers that keep the recomputation in the backward pass; ``benchmarks/NOTES.md``); the
            GPU benchmark measures it there (``so3lr-remat``).
        **hyperparameters: ``SO3kratesConfig`` fields (defaults: SO3LR's SO3krates). Unknown names raise.

    Returns:
        ``init_fn(key, position, neighbor, species=None, mask=None, **kwargs) -> params`` and
        ``apply_fn(params, position, neighbor, species=None, mask=None, **kwargs) -> energy``. With
        ``use_charge_embed``/``use_spin_embed`` both also take ``total_charge=`` and ``num_unpaired_electrons=``.
    """
    config = SO3kratesConfig.from_kwargs(**hyperparameters)
    _check_mode(mode)
    r_cutoff = float(r_cutoff)
    max_edges, test_edges_per_atom = _capacity(displacement, r_cutoff, positions_test, neighbor_test, max_edges,
                                               max_edge_multiplier)  # fmt: skip
    if avg_num_neighbors is None:
        avg_num_neighbors = test_edges_per_atom
    if avg_num_neighbors is None:
        raise ValueError("avg_num_neighbors is required: pass it, or positions_test and neighbor_test to estimate it.")
    avg_num_neighbors = float(avg_num_neighbors)
    offset = 1 if positive_species else 0
    pair_capacity = _pair_capacity(max_edges)

    def model(position, neighbor, species=None, mask=None, **kwargs):
        total_charge = kwargs.pop("total_charge", 0.0)
        num_unpaired = kwargs.pop("num_unpaired_electrons", 0.0)
        N = position.shape[0]
        node_mask = jnp.ones(N, bool) if mask is None else jnp.asarray(mask).astype(bool)
        species = jnp.zeros(N, jnp.int32) if species is None else jnp.asarray(species, jnp.int32) - offset
        species = jnp.where(node_mask, not_folded(species), 0)
        graph = build_graph(displacement, position, neighbor, r_cutoff, node_mask, pair_capacity, pairs=True, **kwargs)
        per_atom, aux = so3krates_energy(
            config, n_species, r_cutoff, avg_num_neighbors, species, graph, node_mask, total_charge, num_unpaired,
            remat=remat,
        )
        aux["num_edges"] = graph.num_edges
        return _finish(per_atom, aux, position, node_mask, graph.overflow, mode, per_particle)

    def check(a):
        validation.validate_structure(
            a["position"], a["species"], a["mask"], num_species=n_species + offset, species_low=offset,
            neighbor=a["neighbor"], allow_ordered=False,
        )  # fmt: skip

    init_fn, apply_fn = _build(model, check, displacement, r_cutoff, config, max_edges)
    apply_fn.avg_num_neighbors = avg_num_neighbors
    return init_fn, apply_fn


def so3lr_neighborlist_pp(
    displacement: Callable,
    r_cutoff: float = 4.5,
    lr_cutoff: Optional[float] = 12.0,
    dispersion_damping: float = 2.0,
    zbl: bool = True,
    electrostatics: bool = True,
    dispersion: bool = True,
    positions_test: Optional[jnp.ndarray] = None,
    neighbor_test: Optional[Any] = None,
    lr_neighbor_format: str = "ordered",
    avg_num_neighbors: float = SO3LR_AVG_NUM_NEIGHBORS,
    per_particle: bool = False,
    mode: str = "energy",
    max_edges: Optional[int] = None,
    max_edge_multiplier: float = 1.25,
    electrostatic_energy_scale: float = 4.0,
    dispersion_energy_scale: float = 1.2,
    check_spin_parity: bool = True,
    remat: bool = False,
    **hyperparameters: Any,
) -> tuple[Callable, Callable]:
    """SO3LR: SO3krates + ZBL + damped Coulomb + vdW-QDO dispersion, as an ``(init_fn, apply_fn)`` pair
    (docs/model.md, "Physical terms", "Assembly and forces").

    ``species`` are atomic numbers Z (1 … 99), positions in Å, energies in eV.

    Args:
        r_cutoff: short-range cutoff of the transformer and ZBL (4.5 Å).
        lr_cutoff: long-range cutoff of Coulomb and dispersion (12 Å); None for the untruncated variant
            (then the long-range list must hold all pairs).
        dispersion_damping: width Δ of the dispersion switch on [lr_cutoff − Δ, lr_cutoff].
        zbl, electrostatics, dispersion: switch each physical term on or off.
        positions_test, neighbor_test, max_edges, max_edge_multiplier: short-range edge capacity, as in
            ``so3krates_neighborlist_pp``.
        lr_neighbor_format: the format of ``neighbor_lr``: "ordered" (jax-md ``OrderedSparse``, each pair once),
            "sparse" (both directions) or "dense"; pair energies get multiplicity 1 or ½ accordingly
            (docs/model.md, "Graphs").
            A list of another format raises.
        avg_num_neighbors: n̄ = 13.168995780096482 for the pretrained weights.
        mode: "energy" or "all" (total, components, partial charges, Hirshfeld ratios, features, and ``dipole``
            Σ q_i (r_i − R_com) of the positions as given: meaningful for Cartesian free-space positions only;
            see ``so3krates_hk.physics.dipole``).
        electrostatic_energy_scale: σ_e, the erf width of the Coulomb kernel (4 Å).
        dispersion_energy_scale: scale of the QDO damping radius (1.2).
        check_spin_parity: reject (outside jit) a number of unpaired electrons whose parity differs from the
            electron count ΣZ − Q. The original does not check; pass False to evaluate such states anyway.
        remat: gradient checkpointing of the interaction layers, as in ``so3krates_neighborlist_pp``.
        **hyperparameters: ``SO3kratesConfig`` fields; charge and spin embeddings default to on.

    Returns:
        ``init_fn(key, position, neighbor, neighbor_lr, species, total_charge=0., num_unpaired_electrons=0.,
        mask=None, **kwargs)`` and ``apply_fn(params, <same>)``.
    """
    hyperparameters.setdefault("use_charge_embed", True)
    hyperparameters.setdefault("use_spin_embed", True)
    _check_mode(mode)
    if lr_neighbor_format not in LR_FORMATS:
        raise ValueError(f"lr_neighbor_format must be one of {sorted(LR_FORMATS)}; got {lr_neighbor_format!r}.")
    expected_lr_format = LR_FORMATS[lr_neighbor_format]
    config = SO3LRConfig(
        so3krates=SO3kratesConfig.from_kwargs(**hyperparameters), r_cutoff=r_cutoff,
        avg_num_neighbors=avg_num_neighbors, lr_cutoff=lr_cutoff, dispersion_damping=dispersion_damping, zbl=zbl,
        electrostatics=electrostatics, dispersion=dispersion, electrostatic_energy_scale=electrostatic_energy_scale,
        dispersion_energy_scale=dispersion_energy_scale,
    )  # fmt: skip
    r_cutoff = config.r_cutoff
    max_edges, _ = _capacity(displacement, r_cutoff, positions_test, neighbor_test, max_edges, max_edge_multiplier)
    pair_capacity = _pair_capacity(max_edges)

    def model(position, neighbor, neighbor_lr, species, total_charge=0.0, num_unpaired_electrons=0.0, mask=None,
              **kwargs):  # fmt: skip
        N = position.shape[0]
        node_mask = jnp.ones(N, bool) if mask is None else jnp.asarray(mask).astype(bool)
        Z = jnp.where(node_mask, not_folded(jnp.asarray(species, jnp.int32)), 1)
        dtype = position.dtype
        graph = build_graph(displacement, position, neighbor, r_cutoff, node_mask, pair_capacity, pairs=True, **kwargs)
        lr = None
        if config.long_range:
            lr_graph = build_graph(displacement, position, neighbor_lr, config.lr_cutoff, node_mask, None, **kwargs)
            lr = LongRangePairs(lr_graph, pair_multiplicity(neighbor_lr))
        per_atom, aux = so3lr_energy(
            config, Z, graph, lr, node_mask, jnp.asarray(total_charge, dtype).reshape(()),
            jnp.asarray(num_unpaired_electrons, dtype).reshape(()), remat=remat,
        )  # fmt: skip
        aux["num_edges"] = graph.num_edges
        aux["dipole"] = dipole_moment(aux["partial_charges"], position, Z, node_mask)  # e·Å, about the centre of mass
        return _finish(per_atom, aux, position, node_mask, graph.overflow, mode, per_particle)

    def check(a):
        N = validation.validate_structure(
            a["position"], a["species"], a["mask"], num_species=SO3LR_HEAD_SPECIES, species_low=1,
            neighbor=a["neighbor"], allow_ordered=False, what="atomic number (species)",
        )  # fmt: skip
        if a["species"] is None:
            raise validation.InputError("SO3LR needs species: the atomic numbers Z of the atoms.")
        if config.long_range:
            neighbor_lr = a["neighbor_lr"]
            validation.check_neighbor(neighbor_lr, N, name="neighbor_lr")
            if neighbor_lr.format != expected_lr_format:
                raise validation.InputError(
                    f"neighbor_lr has format {neighbor_lr.format.name}, but the factory was built with "
                    f"lr_neighbor_format={lr_neighbor_format!r}; a mismatch would double or halve the long-range "
                    "energies."
                )
        validation.check_charge_spin(a["species"], a["total_charge"], a["num_unpaired_electrons"], a["mask"],
                                     check_spin_parity)  # fmt: skip

    init_fn, apply_fn = _build(model, check, displacement, r_cutoff, config.so3krates, max_edges)
    apply_fn.so3lr_config = config
    return init_fn, apply_fn


def so3lr_to_jax_md(
    displacement: Callable,
    box_size,
    species,
    *,
    params: Optional[dict] = None,
    r_cutoff: float = 4.5,
    lr_cutoff: float = 12.0,
    dr_threshold: float = 0.5,
    capacity_multiplier: float = 1.25,
    fractional_coordinates: bool = False,
    disable_cell_list: bool = False,
    total_charge: float = 0.0,
    num_unpaired_electrons: float = 0.0,
    positions_test: Optional[jnp.ndarray] = None,
    **so3lr_kwargs: Any,
) -> tuple[Any, Any, Callable]:
    """Pretrained SO3LR bound into a jax-md energy, with the two neighbour-list functions it needs.

    Returns ``(neighbor_fn, neighbor_fn_lr, energy_fn)``: jax-md ``Sparse`` (short range, ``r_cutoff``) and
    ``OrderedSparse`` (long range, ``lr_cutoff``) neighbour-list functions, and
    ``energy_fn(position, neighbor, neighbor_lr, **kwargs)`` with the weights, species, charge and spin bound.
    ``params=None`` uses the shipped pretrained weights. MD in five lines::

        neighbor_fn, neighbor_fn_lr, energy_fn = so3lr_to_jax_md(displacement, box, Z)
        nbrs, nbrs_lr = neighbor_fn.allocate(R), neighbor_fn_lr.allocate(R)
        init, step = jax_md.simulate.nvt_langevin(energy_fn, shift, dt=0.5e-3 * units.fs, kT=kT)  # your units
        state = init(key, R, neighbor=nbrs, neighbor_lr=nbrs_lr)
        state = step(state, neighbor=nbrs.update(state.position), neighbor_lr=nbrs_lr.update(state.position))

    (Check ``nbrs.did_buffer_overflow`` and re-allocate, or use ``so3krates_hk.md`` which does it for you.)
    ``positions_test`` sizes the short-range edge capacity to the real edges (dropping skin pairs before the
    network runs); the energy is then NaN if a later structure has more edges than that (see the module docstring).
    """
    if params is None:
        from so3krates_hk import pretrained

        params, kwargs = pretrained.so3lr()
        for key, value in kwargs.items():
            so3lr_kwargs.setdefault(key, value)
        so3lr_kwargs.pop("r_cutoff", None)
        so3lr_kwargs.pop("lr_cutoff", None)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    lists = dict(
        dr_threshold=dr_threshold,
        capacity_multiplier=capacity_multiplier,
        fractional_coordinates=fractional_coordinates,
        disable_cell_list=disable_cell_list,
    )
    neighbor_fn = partition.neighbor_list(displacement, box_size, r_cutoff, format=partition.Sparse, **lists)
    neighbor_fn_lr = partition.neighbor_list(displacement, box_size, lr_cutoff, format=partition.OrderedSparse, **lists)
    test = {}
    if positions_test is not None:
        test = dict(positions_test=positions_test, neighbor_test=neighbor_fn.allocate(positions_test))
    _, apply_fn = so3lr_neighborlist_pp(
        displacement, r_cutoff=r_cutoff, lr_cutoff=lr_cutoff, lr_neighbor_format="ordered", **test, **so3lr_kwargs
    )
    species = jnp.asarray(species, jnp.int32)

    def energy_fn(position, neighbor, neighbor_lr, **kwargs):
        return apply_fn(
            params, position, neighbor, neighbor_lr, species, total_charge, num_unpaired_electrons, **kwargs
        )

    return neighbor_fn, neighbor_fn_lr, energy_fn
