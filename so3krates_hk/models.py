"""The models, as functions to call inside ``hk.transform``: they wire the layers and nothing more
(docs/model.md, "Assembly and forces").

    species, Graph ──► SO3krates (embeddings, T layers) ──► x, ε ──► heads ──► per-atom energies
                                                                 └──► q, h ──► Coulomb, dispersion (SO3LR)

Top-level module names give the parameter tree: ``so3krates/~/…`` (the transformer), ``energy_head``, and for SO3LR
``partial_charges``, ``hirshfeld_ratios`` and ``zbl_repulsion``. A fine-tuned SO3LR tree therefore contains every
leaf an SO3krates-only model needs.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import haiku as hk
import jax.numpy as jnp
import numpy as np

from so3krates_hk.config import SO3kratesConfig, SO3LRConfig
from so3krates_hk.graph import Graph, graph_slice, segment_sum
from so3krates_hk.layers.attention import EdgeFeatures
from so3krates_hk.layers.block import SO3kratesLayer
from so3krates_hk.layers.cutoff import get_cutoff_fn
from so3krates_hk.layers.dense import get_activation
from so3krates_hk.layers.embedding import AtomTypeEmbedding, ChargeSpinEmbedding, GlobalSum
from so3krates_hk.layers.harmonics import harmonics_dim, spherical_harmonics
from so3krates_hk.layers.heads import EnergyHead, HirshfeldHead, PartialChargeHead
from so3krates_hk.layers.radial import bernstein_basis
from so3krates_hk.layers.segments import extent, segment_bounds, sum_over_segments
from so3krates_hk.physics.dispersion import dispersion_pair_energy
from so3krates_hk.physics.electrostatics import coulomb_pair_energy
from so3krates_hk.physics.zbl import ZBLRepulsion


class SO3kratesOutput(NamedTuple):
    x: jnp.ndarray  # (N, F) invariant features after the last layer
    ev: jnp.ndarray  # (N, Σ(2l+1)) equivariant features ε after the last layer
    edges: EdgeFeatures  # the short-range edge geometry
    intermediates: dict  # x_embed, x_layer{t}, ev_layer{t}, e_charge, e_spin


def edge_features(graph: Graph, config: SO3kratesConfig, r_cutoff: float) -> EdgeFeatures:
    """β, φ and Y on the short-range edges (docs/model.md, "Edge geometry"); φ is 0 on masked edges, which silences
    them everywhere."""
    d = graph.distances
    cut = get_cutoff_fn(config.cutoff_fn)(d, r_cutoff) * graph.mask
    return EdgeFeatures(
        centers=graph.centers,
        neighbors=graph.neighbors,
        rbf=bernstein_basis(d, config.num_radial_basis_fn, config.bernstein_gamma),
        cut=cut,
        ylm=spherical_harmonics(graph.vectors, config.degrees),
        num_nodes=graph.num_nodes,
        sorted=graph.sorted,
        extent=extent(graph.mask),
    )


def initial_features(cfg: SO3kratesConfig, num_species: int, species: jnp.ndarray, node_mask: jnp.ndarray,
                     total_charge, num_unpaired_electrons, dtype,
                     global_sum: Optional[GlobalSum] = None) -> tuple[jnp.ndarray, jnp.ndarray, dict]:  # fmt: skip
    """x⁰ = (e^Z + e^Q + e^S) / √(number of embeddings), ε⁰ = 0 (docs/model.md, "Initial features"), and the
    embeddings. Creates the embedding modules in the caller's name scope (``so3krates``)."""
    inter = {}
    embeddings = [AtomTypeEmbedding(num_species, cfg.num_features)(species, dtype).astype(dtype)]
    if cfg.use_charge_embed:
        e_q = ChargeSpinEmbedding(num_species, cfg.num_features, name="charge_embedding")(
            species, total_charge, node_mask, dtype, global_sum
        )
        embeddings.append(e_q)
        inter["e_charge"] = e_q
    if cfg.use_spin_embed:
        e_s = ChargeSpinEmbedding(num_species, cfg.num_features, name="spin_embedding")(
            species, num_unpaired_electrons, node_mask, dtype, global_sum
        )
        embeddings.append(e_s)
        inter["e_spin"] = e_s
    x = sum(embeddings) / float(np.sqrt(len(embeddings)))
    ev = jnp.zeros((x.shape[0], harmonics_dim(cfg.degrees)), dtype)
    inter["x_embed"] = x
    return x, ev, inter


def interaction_layer(cfg: SO3kratesConfig, avg_num_neighbors: float, t: int) -> SO3kratesLayer:
    """Interaction layer t, ``layers_{t}`` in the caller's name scope (``so3krates``)."""
    return SO3kratesLayer(
        cfg.num_features,
        cfg.num_heads,
        cfg.degrees,
        avg_num_neighbors,
        get_activation(cfg.activation_fn),
        layer_norm_1=cfg.layer_normalization_1,
        layer_norm_2=cfg.layer_normalization_2,
        residual_mlp_1=cfg.residual_mlp_1,
        residual_mlp_2=cfg.residual_mlp_2,
        name=f"layers_{t}",
    )


class SO3krates(hk.Module):
    """The SO3krates transformer: initial embeddings and T interaction layers (docs/model.md, "Initial features",
    "Interaction layer")."""

    def __init__(
        self,
        config: SO3kratesConfig,
        num_species: int,
        r_cutoff: float,
        avg_num_neighbors: float,
        remat: bool = False,
        global_sum: Optional[GlobalSum] = None,
        name: Optional[str] = "so3krates",
    ):
        super().__init__(name=name)
        self.config = config
        self.num_species = num_species
        self.r_cutoff = r_cutoff
        self.avg_num_neighbors = avg_num_neighbors
        self.remat = remat
        self.global_sum = global_sum  # sums over the whole structure (see ChargeSpinEmbedding); None: jnp.sum

    def __call__(
        self,
        species: jnp.ndarray,
        graph: Graph,
        node_mask: jnp.ndarray,
        total_charge: jnp.ndarray = 0.0,
        num_unpaired_electrons: jnp.ndarray = 0.0,
    ) -> SO3kratesOutput:
        cfg = self.config
        dtype = graph.vectors.dtype
        edges = edge_features(graph, cfg, self.r_cutoff)
        x, ev, inter = initial_features(cfg, self.num_species, species, node_mask, total_charge,
                                        num_unpaired_electrons, dtype, self.global_sum)  # fmt: skip
        for t in range(cfg.num_layers):
            layer = interaction_layer(cfg, self.avg_num_neighbors, t)
            x, ev = _rematerialised(layer, x, ev, edges) if self.remat else layer(x, ev, edges)
            inter[f"x_layer{t}"] = x
            inter[f"ev_layer{t}"] = ev
        return SO3kratesOutput(x, ev, edges, inter)


def _rematerialised(layer, x, ev, edges: EdgeFeatures):
    """``layer(x, ev, edges)`` under ``hk.remat`` (gradient checkpointing): the backward pass recomputes the layer's
    forward instead of keeping its per-edge intermediates. The edge arrays pass as arguments; the node count and the
    sortedness flag stay static. Same numbers; whether the peak memory drops is the compiler's schedule (on XLA:CPU
    it does not, see ``benchmarks/NOTES.md``)."""
    static = dict(num_nodes=edges.num_nodes, sorted=edges.sorted)
    arrays = {k: v for k, v in edges._asdict().items() if k not in static}
    return hk.remat(lambda x, ev, arrays: layer(x, ev, EdgeFeatures(**arrays, **static)))(x, ev, arrays)


def energy_head(config: SO3kratesConfig, num_species: int, x: jnp.ndarray, species: jnp.ndarray) -> jnp.ndarray:
    """E^nn_i (docs/model.md, "Heads")."""
    return EnergyHead(
        num_species,
        config.energy_regression_dim,
        get_activation(config.energy_activation_fn),
        config.energy_learn_atomic_type_scales,
        config.energy_learn_atomic_type_shifts,
    )(x, species)


def so3krates_energy(
    config: SO3kratesConfig,
    num_species: int,
    r_cutoff: float,
    avg_num_neighbors: float,
    species: jnp.ndarray,
    graph: Graph,
    node_mask: jnp.ndarray,
    total_charge=0.0,
    num_unpaired_electrons=0.0,
    remat: bool = False,
    global_sum: Optional[GlobalSum] = None,
) -> tuple[jnp.ndarray, dict]:
    """Per-atom SO3krates energies (zero on masked atoms) and a dict of everything computed on the way.

    ``global_sum`` replaces the sums over the whole structure (charge/spin embedding normaliser); see
    ``layers.embedding.GlobalSum``."""
    feats = SO3krates(config, num_species, r_cutoff, avg_num_neighbors, remat, global_sum)(
        species, graph, node_mask, total_charge, num_unpaired_electrons
    )
    e = jnp.where(node_mask, energy_head(config, num_species, feats.x, species), 0.0)
    return e, dict(feats.intermediates, x=feats.x, ev=feats.ev, energy_nn=e)


class LongRangePairs(NamedTuple):
    """Long-range pairs (docs/model.md, "Graphs"): the graph and its multiplicity c (1 each pair once, ½ both
    directions; or one value per pair)."""

    graph: Graph
    multiplicity: Union[float, jnp.ndarray]


# SO3LR's parameter tables: the atom-type, charge and spin query tables have 119 rows indexed by Z; the charge
# bias and Hirshfeld tables have 100 (docs/model.md, "Heads").
SO3LR_NUM_SPECIES = 119
SO3LR_HEAD_SPECIES = 100


def so3lr_energy(
    config: SO3LRConfig,
    atomic_numbers: jnp.ndarray,
    graph: Graph,
    lr: Optional[LongRangePairs],
    node_mask: jnp.ndarray,
    total_charge,
    num_unpaired_electrons,
    remat: bool = False,
    global_sum: Optional[GlobalSum] = None,
) -> tuple[jnp.ndarray, dict]:
    """Per-atom SO3LR energies E_i = E^nn + E^zbl + E^el + E^disp (docs/model.md,
    "Assembly and forces"), and all components.

    ``config`` holds the transformer's hyperparameters, the cutoffs and which physical terms are on; ``lr`` is None
    when no long-range term is. ``global_sum`` replaces the sums over the whole structure (embedding normalisers,
    N and Σ q̃ of the charge neutralisation) when the structure is split over processes; see
    ``layers.embedding.GlobalSum``.
    """
    Z = atomic_numbers
    tf = config.so3krates
    feats = SO3krates(tf, SO3LR_NUM_SPECIES, config.r_cutoff, config.avg_num_neighbors, remat, global_sum)(
        Z, graph, node_mask, total_charge, num_unpaired_electrons
    )
    x = feats.x
    e_nn, q, h = so3lr_heads(tf, x, Z, node_mask, total_charge, global_sum)
    e_zbl, e_el, e_disp = so3lr_pair_terms(config, Z, graph, lr, q, h)
    e = jnp.where(node_mask, e_nn + e_zbl + e_el + e_disp, 0.0)
    out = dict(
        feats.intermediates,
        x=x,
        ev=feats.ev,
        energy_nn=e_nn,
        energy_zbl=e_zbl,
        energy_elec=e_el,
        energy_disp=e_disp,
        partial_charges=q,
        hirshfeld_ratios=h,
    )
    return e, out


def so3lr_heads(tf: SO3kratesConfig, x: jnp.ndarray, Z: jnp.ndarray, node_mask: jnp.ndarray, total_charge,
                global_sum: Optional[GlobalSum] = None) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:  # fmt: skip
    """SO3LR's per-atom heads on the final features x: E^nn_i, the neutralised partial charges q_i and the Hirshfeld
    ratios h_i (docs/model.md, "Heads"); modules ``energy_head``, ``partial_charges``, ``hirshfeld_ratios``."""
    act = get_activation(tf.energy_activation_fn)
    e_nn = jnp.where(node_mask, energy_head(tf, SO3LR_NUM_SPECIES, x, Z), 0.0)
    q = PartialChargeHead(SO3LR_HEAD_SPECIES, act)(x, Z, jnp.asarray(total_charge, x.dtype), node_mask, global_sum)
    h = HirshfeldHead(SO3LR_HEAD_SPECIES, act)(x, Z, node_mask)
    return e_nn, q, h


def so3lr_pair_terms(config: SO3LRConfig, Z: jnp.ndarray, graph: Graph, lr: Optional[LongRangePairs],
                     q: jnp.ndarray, h: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:  # fmt: skip
    """SO3LR's per-atom pair terms E^zbl_i (short-range ``graph``), E^el_i and E^disp_i (long-range pairs ``lr``, with
    partial charges q and Hirshfeld ratios h) (docs/model.md, "Assembly and forces"); module ``zbl_repulsion``."""
    dtype = graph.vectors.dtype
    zeros = jnp.zeros(Z.shape, dtype)
    e_zbl = zeros
    if config.zbl:
        last = Z.shape[0] - 1
        i, j = jnp.minimum(graph.centers, last), jnp.minimum(graph.neighbors, last)
        cut = get_cutoff_fn(config.so3krates.cutoff_fn)(graph.distances, config.r_cutoff) * graph.mask
        pair = ZBLRepulsion()(graph.distances, Z[i], Z[j], cut)
        e_zbl = segment_sum(pair, graph)

    e_el, e_disp = zeros, zeros
    if lr is not None and config.long_range and (config.electrostatics or config.dispersion):
        N = Z.shape[0]
        qh = jnp.stack([q, h], -1)

        def lr_segment(start: int, stop: int) -> tuple[jnp.ndarray, jnp.ndarray]:
            g = graph_slice(lr.graph, start, stop)
            c = lr.multiplicity[start:stop] if np.ndim(lr.multiplicity) else lr.multiplicity  # per pair or one
            i, j = jnp.minimum(g.centers, N - 1), jnp.minimum(g.neighbors, N - 1)
            # q and h travel together: one gather per side, so one scatter per side in the gradient
            (q_i, h_i), (q_j, h_j) = qh[i].T, qh[j].T
            el = disp = jnp.zeros_like(g.distances)
            if config.electrostatics:
                el = coulomb_pair_energy(g.distances, q_i, q_j, config.lr_cutoff, config.electrostatic_energy_scale, c)
                el = jnp.where(g.mask, el, 0.0)
            if config.dispersion:
                disp = dispersion_pair_energy(
                    g.distances, Z[i], Z[j], h_i, h_j, g.mask, config.lr_cutoff, config.dispersion_damping,
                    config.dispersion_energy_scale, c,
                )  # fmt: skip
            el, disp = segment_sum(jnp.stack([el, disp], -1), g).T  # one scatter for both
            return el, disp

        # trailing padding of the list is skipped (``layers.segments``)
        bounds = segment_bounds(lr.graph.centers.shape[0])
        e_el, e_disp = sum_over_segments(lr_segment, bounds, extent(lr.graph.mask))
    return e_zbl, e_el, e_disp
