"""The model on one rank's atoms, in stages that exchange per-atom values between ranks (docs/lammps.md).

Owned atoms come first, then ghosts (images of atoms owned by some rank, possibly this one). Every stage computes
values of the *owned* atoms only, from owned and ghost inputs within one short cutoff; between stages the ghosts'
values are copied from their owners (``Halo.gather``):

    x⁰, ε⁰  (embedding; per atom, computed for ghosts locally)
    (x, ε)^{t+1}_i = layer_t((x, ε)^t, R)_i          i owned; pairs {i, j} with d_ij < r_c    → gather ghosts
    E^nn_i, q_i, h_i = heads(x^T_i)                   i owned                                  → gather q, h
    E_r = Σ_{i owned} E^nn_i + E^zbl_i + E^el_i + E^disp_i   (pairs d_ij < r_c; long-range d_ij < r_lr)

so each stage needs the ghosts within max(r_c, r_lr) of the owned atoms, whatever the number of layers. The
backward pass runs the stages in reverse with their VJPs: the cotangents of ghost rows (features, charges,
Hirshfeld ratios, positions) are sent to the owners and added there (``Halo.fold``), so Σ_r E_r is differentiated
exactly. The forces returned are −∂E/∂R_k on every local row (owned and ghost); the ghost rows still have to be
folded onto their owners (the driver does this; the virial uses the unfolded rows).

Whole-system sums S_s (SO3LR's charge neutralisation Σ q̃ and N, the charge/spin embedding normaliser Σ α) go through
the model's ``global_sum`` hook: each rank sums its owned atoms, ``reduce`` adds the ranks; the gradient carries
g_s = Σ_r ∂E_r/∂S_s (one more ``reduce``) times ∂S_{r,s}/∂x.

Neighbour pairs are found on the host (``scipy.spatial.cKDTree``) every call, so their exact counts are known
before the model runs: owned-atom, ghost-atom, short-range-pair and long-range-pair capacities grow (×1.25,
recompiling once) whenever a count exceeds them, and nothing is ever dropped.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk.errors import UserError

# Whole-system sums that depend on species only (constant while no atom is created or deleted); every other sum is
# re-reduced each call and its gradient is made exact.
SPECIES_ONLY_SUMS = ("/alpha", "/num_atoms")
GROWTH = 1.25


@dataclasses.dataclass
class ModelSpec:
    """What the LAMMPS driver needs to know about a model."""

    kind: str  # "so3lr" or "so3krates"
    params: dict
    r_cutoff: float
    lr_cutoff: Optional[float]  # SO3LR's long-range cutoff (None: no long-range terms)
    num_layers: int
    n_species: int  # SO3krates: species 0 … n_species − 1
    units: str  # the LAMMPS unit style the model's numbers are in
    kwargs: dict  # factory keyword arguments (hyperparameters, physics switches)

    @property
    def stage_cutoff(self) -> float:
        """max(r_c, r_lr): the distance over which one stage of the staged model reads other atoms."""
        return max(self.r_cutoff, self.lr_cutoff or 0.0)


def load_model(model: str, lr_cutoff: Optional[float] = None) -> ModelSpec:
    """``"so3lr"`` (the shipped weights) or a ``params.npz``: a fine-tuned SO3LR or a CG SO3krates model."""
    from so3krates_hk.config import SO3kratesConfig
    from so3krates_hk.io import load_params

    if model == "so3lr":
        from so3krates_hk import pretrained

        params, kwargs = pretrained.so3lr()
    else:
        try:
            params, meta = load_params(model)
        except (OSError, ValueError) as e:
            raise UserError(f"--model {model}: cannot read it as a parameter file ({e})") from None
        if "factory_kwargs" in meta:
            kwargs = dict(meta["factory_kwargs"])
        elif meta.get("model") == "so3krates_cg":
            if params.pop("cg_priors", None):
                raise UserError(f"--model {model}: the model has CG priors (bonds, angles, repulsion); declare them "
                                "as LAMMPS bond/angle/pair styles and save the model without priors")  # fmt: skip
            hyper = dict(meta["hyperparameters"])
            cfg = SO3kratesConfig.from_kwargs(**hyper)
            return ModelSpec("so3krates", params, float(meta["r_cutoff"]), None, cfg.num_layers,
                             int(meta["n_species"]), "real",
                             dict(hyper, avg_num_neighbors=float(meta["avg_num_neighbors"])))  # fmt: skip
        else:
            raise UserError(f"--model {model}: neither SO3LR weights (metadata 'factory_kwargs') nor a CG SO3krates "
                            "model (metadata model='so3krates_cg')")  # fmt: skip
    kwargs = dict(kwargs)
    if lr_cutoff is not None:
        kwargs["lr_cutoff"] = float(lr_cutoff)
    hyper = {k: v for k, v in kwargs.items() if k in {f.name for f in dataclasses.fields(SO3kratesConfig)}}
    hyper.setdefault("use_charge_embed", True)
    hyper.setdefault("use_spin_embed", True)
    cfg = SO3kratesConfig.from_kwargs(**hyper)
    long_range = kwargs.get("electrostatics", True) or kwargs.get("dispersion", True)
    lr = float(kwargs.get("lr_cutoff", 12.0)) if long_range else None
    return ModelSpec("so3lr", params, float(kwargs.get("r_cutoff", 4.5)), lr, cfg.num_layers, 119, "metal", kwargs)


class _Pairs:
    """The two attributes of a jax-md neighbour list that ``graph.build_graph`` reads (a ``Sparse`` list)."""

    def __init__(self, idx):
        from so3krates_hk._compat import partition

        self.idx = idx
        self.format = partition.NeighborListFormat.Sparse


def _grown(capacity: int, needed: int) -> int:
    return capacity if needed <= capacity else max(needed, int(math.ceil(needed * GROWTH)))


class _Scope(hk.Module):
    """The transformer's name scope ``so3krates``: modules created inside get the full model's parameter names."""

    def __init__(self):
        super().__init__(name="so3krates")

    def __call__(self, fn, *args):
        return fn(*args)


def _layer_params(params: dict, t: int) -> dict:
    """Layer t's parameters under the name of layer 0 (one compiled layer stage serves every layer)."""
    prefix = f"so3krates/layers_{t}/"
    return {"so3krates/layers_0/" + k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


class LocalModel:
    """Energy and forces of one rank's owned atoms, stage by stage; see the module docstring.

    ``__call__(positions (n, 3), species (n,), n_owned, tags (n,)) -> (E_r, forces (n, 3))``: the first ``n_owned``
    rows are the owned atoms, the rest ghosts; ``tags`` identify the atoms across ranks (a ghost has its atom's tag).
    Species are atomic numbers (SO3LR) or 0-based species (SO3krates). ``decomposition`` (``Decomposition``) does the
    communication; None: one process holding the whole system.
    """

    def __init__(self, spec: ModelSpec, float64: bool = False, total_charge: float = 0.0,
                 num_unpaired_electrons: float = 0.0, decomposition=None):  # fmt: skip
        from so3krates_hk.lammps.decomposition import Decomposition

        self.spec = spec
        self.dtype = jnp.float64 if float64 else jnp.float32
        self.decomposition = decomposition if decomposition is not None else Decomposition(None)
        self.params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, self.dtype), spec.params)
        self.charge, self.spin = float(total_charge), float(num_unpaired_electrons)
        self.capacity = dict(owned=0, ghost=0, sr=0, lr=0)
        self.reallocations = 0
        self.static_sums: Optional[dict] = None
        self.stats = dict(calls=0, owned=0, ghost=0, sr_pairs=0, lr_pairs=0)
        self._build()

    def new_system(self) -> None:
        """Forget the species-only whole-system sums (call when atoms were created or deleted)."""
        self.static_sums = None

    # ---- the stages ----------------------------------------------------------------------------------------------

    def _build(self) -> None:
        from so3krates_hk.config import SO3kratesConfig
        from so3krates_hk.graph import build_graph
        from so3krates_hk.models import (SO3LR_NUM_SPECIES, LongRangePairs, edge_features, energy_head,
                                         initial_features, interaction_layer, so3lr_heads,
                                         so3lr_pair_terms)  # fmt: skip

        spec = self.spec
        kw = dict(spec.kwargs)
        fields = {f.name for f in dataclasses.fields(SO3kratesConfig)}
        hyper = {k: v for k, v in kw.items() if k in fields}
        if spec.kind == "so3lr":
            hyper.setdefault("use_charge_embed", True)
            hyper.setdefault("use_spin_embed", True)
        config = SO3kratesConfig.from_kwargs(**hyper)
        self.config = config
        so3lr_config = None
        if spec.kind == "so3lr":
            from so3krates_hk.config import SO3LR_AVG_NUM_NEIGHBORS, SO3LRConfig

            avg = float(kw.get("avg_num_neighbors", SO3LR_AVG_NUM_NEIGHBORS))
            so3lr_config = SO3LRConfig(
                so3krates=config, r_cutoff=spec.r_cutoff, avg_num_neighbors=avg,
                lr_cutoff=spec.lr_cutoff, dispersion_damping=kw.get("dispersion_damping", 2.0),
                zbl=kw.get("zbl", True), electrostatics=kw.get("electrostatics", True),
                dispersion=kw.get("dispersion", True),
                electrostatic_energy_scale=kw.get("electrostatic_energy_scale", 4.0),
                dispersion_energy_scale=kw.get("dispersion_energy_scale", 1.2),
            )  # fmt: skip
            num_species = SO3LR_NUM_SPECIES
        else:
            avg = float(kw["avg_num_neighbors"])
            num_species = spec.n_species
        dtype = self.dtype
        r_c = spec.r_cutoff

        def displacement(Ra, Rb):
            return Ra - Rb

        def global_sum_of(owned, ext, recorded):
            def global_sum(name, per_atom):
                local = jnp.sum(jnp.where(owned, per_atom, 0).astype(per_atom.dtype))
                recorded[name] = local
                return ext[name].astype(per_atom.dtype) if name in ext else local

            return global_sum

        def embed(species, node_mask, owned, charge, spin, ext):
            """x⁰, ε⁰ of every local atom (no position dependence)."""
            recorded = {}
            gs = global_sum_of(owned, ext, recorded)
            x, ev, _ = _Scope()(lambda: initial_features(config, num_species, species, node_mask, charge, spin,
                                                         dtype, gs))  # fmt: skip
            return x, ev, recorded

        def layer(x_o, x_g, ev_o, ev_g, R, sr_idx, node_mask):
            """(x, ε) of the owned atoms after one layer (named layer 0; ``_layer_params`` maps layer t onto it)."""
            graph = build_graph(displacement, R, _Pairs(sr_idx), r_c, node_mask, sr_idx.shape[1], pairs=True)
            edges = edge_features(graph, config, r_c)
            x, ev = jnp.concatenate([x_o, x_g]), jnp.concatenate([ev_o, ev_g])
            return _Scope()(lambda: interaction_layer(config, avg, 0)(x, ev, edges, num_out=x_o.shape[0]))

        def heads(x_o, species_o, mask_o, charge, ext):
            """Σ_owned E^nn_i and, for SO3LR, the owned atoms' q_i and h_i."""
            recorded = {}
            gs = global_sum_of(mask_o, ext, recorded)
            if spec.kind == "so3lr":
                e_nn, q, h = so3lr_heads(config, x_o, species_o, mask_o, charge, gs)
            else:
                e_nn = jnp.where(mask_o, energy_head(config, num_species, x_o, species_o), 0.0)
                q = h = jnp.zeros(mask_o.shape, x_o.dtype)
            return (jnp.sum(jnp.where(mask_o, e_nn, 0.0)), q, h), recorded

        def pair_terms(R, species, q, h, sr_idx, lr_idx, lr_weight, node_mask, owned):
            """Σ_owned E^zbl_i + E^el_i + E^disp_i (SO3LR)."""
            graph = build_graph(displacement, R, _Pairs(sr_idx), r_c, node_mask, sr_idx.shape[1], pairs=True)
            lr = None
            if spec.lr_cutoff is not None:
                lr_graph = build_graph(displacement, R, _Pairs(lr_idx), spec.lr_cutoff, node_mask, None)
                lr = LongRangePairs(lr_graph, lr_weight)  # per-pair multiplicity: 1 owned–owned, ½ owned–ghost
            e_zbl, e_el, e_disp = so3lr_pair_terms(so3lr_config, species, graph, lr, q, h)
            return jnp.sum(jnp.where(owned, e_zbl + e_el + e_disp, 0.0))

        t_embed, t_layer, t_heads, t_pairs = (hk.without_apply_rng(hk.transform(f))
                                              for f in (embed, layer, heads, pair_terms))  # fmt: skip
        self._transforms = dict(embed=t_embed, layer=t_layer, heads=t_heads, pairs=t_pairs)

        def layer_vjp(p, x_o, x_g, ev_o, ev_g, R, sr_idx, node_mask):
            return jax.vjp(lambda *a: t_layer.apply(p, *a, sr_idx, node_mask), x_o, x_g, ev_o, ev_g, R)

        def heads_vjp(p, x_o, species_o, mask_o, charge, ext_static, ext_dyn):
            return jax.vjp(lambda x, d: t_heads.apply(p, x, species_o, mask_o, charge, dict(ext_static, **d)),
                           x_o, ext_dyn)  # fmt: skip

        def pairs_vjp(p, R, species, q, h, sr_idx, lr_idx, lr_weight, node_mask, owned):
            return jax.vjp(lambda R_, q_, h_: t_pairs.apply(p, R_, species, q_, h_, sr_idx, lr_idx, lr_weight, node_mask,
                                                            owned),
                           R, q, h)  # fmt: skip

        self._embed = jax.jit(t_embed.apply)
        self._layer = jax.jit(t_layer.apply)
        self._layer_vjp = jax.jit(layer_vjp)
        self._heads = jax.jit(t_heads.apply)
        self._heads_vjp = jax.jit(heads_vjp)
        self._pairs_vjp = jax.jit(pairs_vjp)
        self._backward = jax.jit(lambda vjp, ct: vjp(ct))
        self._names: Optional[tuple] = None
        # parameters of each stage: the full tree, split (checked against the full model's tree)
        P = self.params
        self._p_embed = {k: v for k, v in P.items() if k.startswith("so3krates/") and "/layers_" not in k}
        self._p_layers = [_layer_params(P, t) for t in range(config.num_layers)]
        self._p_heads = {k: v for k, v in P.items() if not k.startswith("so3krates/") and k != "zbl_repulsion"}
        self._p_pairs = {k: v for k, v in P.items() if k == "zbl_repulsion"}
        used = set(self._p_embed) | set(self._p_heads) | set(self._p_pairs)
        used |= {k for t in range(config.num_layers) for k in P if k.startswith(f"so3krates/layers_{t}/")}
        if used != set(P):
            raise UserError(f"the model's parameters {sorted(set(P) - used)} belong to no stage of the LAMMPS model")

    # ---- host side: pairs, capacities ----------------------------------------------------------------------------

    def _inputs(self, positions: np.ndarray, species: np.ndarray, n_owned: int) -> dict:
        from scipy.spatial import cKDTree

        spec = self.spec
        n = positions.shape[0]
        n_ghost = n - n_owned
        owned_tree, tree = cKDTree(positions[:n_owned]), cKDTree(positions)
        # short range: unordered pairs {i, j} with at least one owned atom (pairs of ghosts feed no owned value)
        sr = owned_tree.sparse_distance_matrix(tree, spec.r_cutoff * (1 + 1e-6), output_type="ndarray")
        i, j = sr["i"].astype(np.int64), sr["j"].astype(np.int64)
        keep = (j >= n_owned) | (j < i)  # owned–owned pairs come twice; i == j (distance 0) never
        sr = np.stack([np.minimum(i, j)[keep], np.maximum(i, j)[keep]], 1)
        if spec.lr_cutoff is not None:
            # long range, centred on owned atoms: an owned–owned pair once (j < i, multiplicity 1), an owned–ghost
            # pair on the owned end (multiplicity ½; the ghost's owner counts the other half)
            lr = owned_tree.sparse_distance_matrix(tree, spec.lr_cutoff * (1 + 1e-6), output_type="ndarray")
            i, j = lr["i"].astype(np.int64), lr["j"].astype(np.int64)
            keep = (j >= n_owned) | (j < i)
            lr = np.stack([i, j], 1)[keep]
            lr_half = j[keep] >= n_owned
        else:
            lr, lr_half = np.zeros((0, 2), np.int64), np.zeros(0, bool)
        cap = self.capacity
        new = dict(owned=_grown(cap["owned"], max(n_owned, 1)), ghost=_grown(cap["ghost"], max(n_ghost, 1)),
                   sr=_grown(cap["sr"], max(len(sr), 1)), lr=_grown(cap["lr"], max(len(lr), 1)))  # fmt: skip
        if new != cap and cap["owned"]:
            self.reallocations += 1
        self.capacity = new
        O, G = new["owned"], new["ghost"]
        A = O + G
        row = np.concatenate([np.arange(n_owned), O + np.arange(n_ghost)])  # compact index → padded row
        R = np.zeros((A, 3))
        R[row] = positions
        Z = np.full(A, 1 if spec.kind == "so3lr" else 0, np.int32)
        Z[row] = species
        node_mask = np.zeros(A, bool)
        node_mask[row] = True
        owned = np.zeros(A, bool)
        owned[:n_owned] = True
        sr_idx = np.full((2, new["sr"]), A, np.int32)  # (neighbour j, centre i), j < i; padding = A
        sr_idx[0, : len(sr)], sr_idx[1, : len(sr)] = row[sr[:, 0]], row[sr[:, 1]]
        lr_idx = np.full((2, new["lr"]), A, np.int32)  # (neighbour j, centre i)
        lr_idx[0, : len(lr)], lr_idx[1, : len(lr)] = row[lr[:, 1]], row[lr[:, 0]]
        lr_weight = np.zeros(new["lr"])
        lr_weight[: len(lr)] = np.where(lr_half, 0.5, 1.0)
        self.stats["sr_pairs"] += len(sr)
        self.stats["lr_pairs"] += len(lr)
        dt = self.dtype
        return dict(R=jnp.asarray(R, dt), Z=jnp.asarray(Z), node_mask=jnp.asarray(node_mask),
                    owned=jnp.asarray(owned), sr_idx=jnp.asarray(sr_idx), lr_idx=jnp.asarray(lr_idx),
                    lr_weight=jnp.asarray(lr_weight, dt),
                    charge=jnp.asarray(self.charge, dt), spin=jnp.asarray(self.spin, dt), O=O, G=G, row=row,
                    n_owned=n_owned, n_ghost=n_ghost)  # fmt: skip

    # ---- one evaluation ------------------------------------------------------------------------------------------

    def __call__(self, positions: np.ndarray, species: np.ndarray, n_owned: int,
                 tags: Optional[np.ndarray] = None) -> tuple[float, np.ndarray]:  # fmt: skip
        positions = np.asarray(positions, np.float64)
        n = positions.shape[0]
        if tags is None:
            if n != n_owned:
                raise ValueError("ghost atoms need the tags of the atoms they are images of")
            tags = np.arange(n)
        d = self.decomposition
        halo = d.halo(np.asarray(tags), n_owned)
        inp = self._inputs(positions, np.asarray(species), n_owned)
        O, G, n_ghost = inp["O"], inp["G"], inp["n_ghost"]
        dt = self.dtype
        one = jnp.asarray(1.0, dt)
        Z, node_mask, owned = inp["Z"], inp["node_mask"], inp["owned"]
        Z_o, mask_o = Z[:O], node_mask[:O]

        def ghosts_of(owned_rows: jnp.ndarray) -> jnp.ndarray:
            """Padded ghost rows (G, …) from the owners' values (``Halo.gather``)."""
            out = np.zeros((G,) + owned_rows.shape[1:])
            out[:n_ghost] = halo.gather(np.asarray(owned_rows[:n_owned], np.float64))
            return jnp.asarray(out, dt)

        def fold_ghosts(ct_o: jnp.ndarray, ct_g: jnp.ndarray) -> jnp.ndarray:
            """Owned cotangents (O, …): own rows + every ghost row that is an image of them (``Halo.fold``)."""
            rows = np.concatenate([np.asarray(ct_o[:n_owned], np.float64), np.asarray(ct_g[:n_ghost], np.float64)])
            out = np.zeros((O,) + ct_o.shape[1:])
            out[:n_owned] = halo.fold(rows)
            return jnp.asarray(out, dt)

        F = self.config.num_features

        def split(a: jnp.ndarray, k: int) -> tuple[jnp.ndarray, jnp.ndarray]:
            return a[:, :k], a[:, k:]

        # whole-system sums: the species-only ones once, the others every call (in the order the model takes them)
        if self._names is None:
            x_shape = jax.ShapeDtypeStruct((O, self.config.num_features), dt)
            rec_e = jax.eval_shape(self._embed, self._p_embed, Z, node_mask, owned, inp["charge"],
                                   inp["spin"], {})[2]  # fmt: skip
            rec_h = jax.eval_shape(self._heads, self._p_heads, x_shape, Z_o, mask_o, inp["charge"], {})[1]
            self._names = (list(rec_e), list(rec_h))
        embed_names, head_names = self._names
        static = [k for k in embed_names + head_names if k.endswith(SPECIES_ONLY_SUMS)]
        dynamic_embed = [k for k in embed_names if k not in static]
        if dynamic_embed:
            raise NotImplementedError(f"position-dependent sums in the embedding: {dynamic_embed}")
        dynamic = [k for k in head_names if k not in static]
        if self.static_sums is None:
            _, _, rec = self._embed(self._p_embed, Z, node_mask, owned, inp["charge"], inp["spin"],
                                    {k: one for k in embed_names})  # fmt: skip
            x0 = jnp.zeros((O, self.config.num_features), dt)
            _, rec_h = self._heads(self._p_heads, x0, Z_o, mask_o, inp["charge"], {k: one for k in head_names})
            rec = dict(rec, **rec_h)
            total = d.reduce(np.asarray([float(rec[k]) for k in static], np.float64))
            self.static_sums = dict(zip(static, total.tolist()))
        ext_static = {k: jnp.asarray(v, dt) for k, v in self.static_sums.items()}

        # forward: embedding, T layers (ghost rows from the owners after each), heads, pair terms
        x, ev, _ = self._embed(self._p_embed, Z, node_mask, owned, inp["charge"], inp["spin"], ext_static)
        x_o, x_g, ev_o, ev_g = x[:O], x[O:], ev[:O], ev[O:]
        R, sr_idx = inp["R"], inp["sr_idx"]
        T = self.config.num_layers
        layer_inputs = []
        vjp_last = None
        for t in range(T):
            layer_inputs.append((x_o, x_g, ev_o, ev_g))
            if t == T - 1:  # the last layer keeps its VJP; the others are recomputed in the backward pass
                (x_o, ev_o), vjp_last = self._layer_vjp(self._p_layers[t], x_o, x_g, ev_o, ev_g, R, sr_idx, node_mask)
            else:
                x_o, ev_o = self._layer(self._p_layers[t], x_o, x_g, ev_o, ev_g, R, sr_idx, node_mask)
                x_g, ev_g = split(ghosts_of(jnp.concatenate([x_o, ev_o], 1)), F)
        ext_dyn = {k: one for k in dynamic}
        for k in dynamic:
            _, rec = self._heads(self._p_heads, x_o, Z_o, mask_o, inp["charge"], dict(ext_static, **ext_dyn))
            ext_dyn[k] = jnp.asarray(float(d.reduce(np.asarray([float(rec[k])]))[0]), dt)
        ((e_nn, q_o, h_o), rec), vjp_heads = self._heads_vjp(self._p_heads, x_o, Z_o, mask_o, inp["charge"],
                                                             ext_static, ext_dyn)  # fmt: skip
        energy = float(e_nn)
        ct_R = jnp.zeros_like(R)
        zero_o = jnp.zeros((O,), dt)
        ct_q, ct_h = zero_o, zero_o
        if self.spec.kind == "so3lr":
            q_g, h_g = ghosts_of(jnp.stack([q_o, h_o], 1)).T
            q, h = jnp.concatenate([q_o, q_g]), jnp.concatenate([h_o, h_g])
            e_pair, vjp_pairs = self._pairs_vjp(self._p_pairs, R, Z, q, h, sr_idx, inp["lr_idx"], inp["lr_weight"],
                                                node_mask, owned)  # fmt: skip
            energy += float(e_pair)
            ct_R, ct_q_all, ct_h_all = self._backward(vjp_pairs, jnp.ones((), dt))
            del vjp_pairs  # its intermediates (one per long-range pair) are not needed any more
            ct_q, ct_h = fold_ghosts(jnp.stack([ct_q_all[:O], ct_h_all[:O]], 1),
                                     jnp.stack([ct_q_all[O:], ct_h_all[O:]], 1)).T

        # backward: heads (and the whole-system sums' share), then the layers in reverse
        zero_rec = {k: jnp.zeros((), dt) for k in rec}
        ct_x, ct_ext = self._backward(vjp_heads, ((jnp.ones((), dt), ct_q, ct_h), zero_rec))
        if dynamic:
            g = d.reduce(np.asarray([float(ct_ext[k]) for k in dynamic], np.float64))  # g_s = Σ_r ∂E/∂S_s
            ct_rec = dict(zero_rec, **{k: jnp.asarray(v, dt) for k, v in zip(dynamic, g)})
            ct_x2, _ = self._backward(vjp_heads, ((jnp.zeros((), dt), zero_o, zero_o), ct_rec))
            ct_x = ct_x + ct_x2
        del vjp_heads
        ct_ev = jnp.zeros_like(ev_o)
        for t in reversed(range(T)):
            if t == T - 1:
                vjp, vjp_last = vjp_last, None  # one layer's intermediates alive at a time
            else:
                _, vjp = self._layer_vjp(self._p_layers[t], *layer_inputs[t], R, sr_idx, node_mask)
            ct_xo, ct_xg, ct_evo, ct_evg, ct_Rt = self._backward(vjp, (ct_x, ct_ev))
            ct_R = ct_R + ct_Rt
            if t > 0:  # layer 0's inputs are the embeddings: no position dependence
                ct_x, ct_ev = split(fold_ghosts(jnp.concatenate([ct_xo, ct_evo], 1),
                                                jnp.concatenate([ct_xg, ct_evg], 1)), F)
            del vjp

        forces = -np.asarray(ct_R, np.float64)[inp["row"]]
        self.stats["calls"] += 1
        self.stats["owned"] += n_owned
        self.stats["ghost"] += n_ghost
        return energy, forces
