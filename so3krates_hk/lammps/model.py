"""The model on one rank's atoms: owned + ghost atoms in free space, energy of the owned atoms, forces on all.

    E_r = Σ_{i < n_owned} E_i(R_local),   F_k = −∂E_r/∂R_k − Σ_s g_s ∂S_{r,s}/∂R_k   (k owned or ghost)

S_{r,s} is this rank's part of a whole-system sum s (``layers.embedding.GlobalSum``); the model sees the global
value S_s = Σ_r S_{r,s}, and g_s = Σ_r ∂E_r/∂S_s. ``reduce`` (numpy vector → its sum over ranks) is the only
communication; with ``reduce=None`` the rank is the whole system.

Neighbour pairs are found on the host (``scipy.spatial.cKDTree``) every call, so their exact counts are known
before the model runs: atom, short-range-pair and long-range-pair capacities grow (×1.25, recompiling once) whenever
a count exceeds them, and nothing is ever dropped.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk.errors import UserError

Reduce = Callable[[np.ndarray], np.ndarray]
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
    def receptive_field(self) -> float:
        """R = T·r_c (+ r_lr): the distance over which an atom's energy depends on other atoms."""
        return self.num_layers * self.r_cutoff + (self.lr_cutoff or 0.0)


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


class LocalModel:
    """Energy and forces of one rank's owned atoms; see the module docstring.

    ``__call__(positions (n, 3), species (n,), n_owned) -> (E_r, forces (n, 3))``: the first ``n_owned`` rows are
    the owned atoms, the rest ghosts. Species are atomic numbers (SO3LR) or 0-based species (SO3krates).
    """

    def __init__(self, spec: ModelSpec, float64: bool = False, total_charge: float = 0.0,
                 num_unpaired_electrons: float = 0.0, reduce: Optional[Reduce] = None):  # fmt: skip
        self.spec = spec
        self.dtype = jnp.float64 if float64 else jnp.float32
        self.reduce = reduce if reduce is not None else (lambda v: np.asarray(v, np.float64))
        self.params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, self.dtype), spec.params)
        self.charge, self.spin = float(total_charge), float(num_unpaired_electrons)
        self.capacity = dict(atoms=0, sr=0, lr=0)
        self.reallocations = 0
        self.static_sums: Optional[dict] = None
        self.stats = dict(calls=0, owned=0, evaluated=0)
        self._build()

    def new_system(self) -> None:
        """Forget the species-only whole-system sums (call when atoms were created or deleted)."""
        self.static_sums = None

    # ---- the local energy --------------------------------------------------------------------------------------

    def _build(self) -> None:
        from so3krates_hk.graph import build_graph
        from so3krates_hk.models import LongRangePairs, so3krates_energy, so3lr_energy
        from so3krates_hk.config import SO3kratesConfig

        spec = self.spec
        kw = dict(spec.kwargs)
        fields = {f.name for f in dataclasses.fields(SO3kratesConfig)}
        hyper = {k: v for k, v in kw.items() if k in fields}
        if spec.kind == "so3lr":
            hyper.setdefault("use_charge_embed", True)
            hyper.setdefault("use_spin_embed", True)
        config = SO3kratesConfig.from_kwargs(**hyper)
        so3lr_config = None
        if spec.kind == "so3lr":
            from so3krates_hk.config import SO3LR_AVG_NUM_NEIGHBORS, SO3LRConfig

            so3lr_config = SO3LRConfig(
                so3krates=config, r_cutoff=spec.r_cutoff,
                avg_num_neighbors=float(kw.get("avg_num_neighbors", SO3LR_AVG_NUM_NEIGHBORS)),
                lr_cutoff=spec.lr_cutoff, dispersion_damping=kw.get("dispersion_damping", 2.0),
                zbl=kw.get("zbl", True), electrostatics=kw.get("electrostatics", True),
                dispersion=kw.get("dispersion", True),
                electrostatic_energy_scale=kw.get("electrostatic_energy_scale", 4.0),
                dispersion_energy_scale=kw.get("dispersion_energy_scale", 1.2),
            )  # fmt: skip

        def displacement(Ra, Rb):
            return Ra - Rb

        def model(R, species, node_mask, owned, sr_idx, lr_idx, charge, spin, ext):
            recorded = {}

            def global_sum(name, per_atom):
                local = jnp.sum(jnp.where(owned, per_atom, 0).astype(per_atom.dtype))
                recorded[name] = local
                return ext[name].astype(per_atom.dtype) if name in ext else local

            graph = build_graph(displacement, R, _Pairs(sr_idx), spec.r_cutoff, node_mask, sr_idx.shape[1],
                                pairs=True)  # fmt: skip
            if spec.kind == "so3lr":
                lr = None
                if spec.lr_cutoff is not None:
                    lr_graph = build_graph(displacement, R, _Pairs(lr_idx), spec.lr_cutoff, node_mask, None)
                    lr = LongRangePairs(lr_graph, 0.5)
                per_atom, _ = so3lr_energy(so3lr_config, species, graph, lr, node_mask, charge, spin,
                                           global_sum=global_sum)  # fmt: skip
            else:
                per_atom, _ = so3krates_energy(
                    config, spec.n_species, spec.r_cutoff, float(kw["avg_num_neighbors"]), species, graph, node_mask,
                    charge, spin, global_sum=global_sum,
                )  # fmt: skip
            return jnp.sum(jnp.where(owned, per_atom, 0.0)), recorded

        self._model = hk.without_apply_rng(hk.transform(model))

        def local(params, R, inputs, ext_static, ext_dyn):
            e, rec = self._model.apply(params, R, *inputs, dict(ext_static, **ext_dyn))
            return e, {k: rec[k] for k in ext_dyn}

        def forward(params, R, inputs, ext_static, ext_dyn):
            return self._model.apply(params, R, *inputs, dict(ext_static, **ext_dyn))

        def forward_vjp(params, R, inputs, ext_static, ext_dyn):
            return jax.vjp(lambda R_, d: local(params, R_, inputs, ext_static, d), R, ext_dyn)

        def energy_and_grad(params, R, inputs, ext_static):
            return jax.value_and_grad(lambda R_: local(params, R_, inputs, ext_static, {})[0])(R)

        self._forward = jax.jit(forward)
        self._forward_vjp = jax.jit(forward_vjp)
        self._backward = jax.jit(lambda vjp, ct: vjp(ct))
        self._energy_and_grad = jax.jit(energy_and_grad)
        self._names: Optional[list] = None

    # ---- host side: pairs, capacities ---------------------------------------------------------------------------

    def _inputs(self, positions: np.ndarray, species: np.ndarray, n_owned: int):
        from scipy.spatial import cKDTree

        spec = self.spec
        n = positions.shape[0]
        tree = cKDTree(positions)
        sr = tree.query_pairs(spec.r_cutoff * (1 + 1e-6), output_type="ndarray")  # i < j
        if spec.lr_cutoff is not None:
            lr = tree.query_pairs(spec.lr_cutoff * (1 + 1e-6), output_type="ndarray")
            lr = np.concatenate([lr, lr[:, ::-1]])  # both directions, multiplicity ½ …
            lr = lr[lr[:, 0] < n_owned]  # … centred on owned atoms only (ghost energies are never used)
        else:
            lr = np.zeros((0, 2), np.int64)
        cap = self.capacity
        new = dict(atoms=_grown(cap["atoms"], max(n, 1)), sr=_grown(cap["sr"], max(len(sr), 1)),
                   lr=_grown(cap["lr"], max(len(lr), 1)))  # fmt: skip
        if new != cap and cap["atoms"]:
            self.reallocations += 1
        self.capacity = new
        N = new["atoms"]
        R = np.zeros((N, 3))
        R[:n] = positions
        Z = np.full(N, 1 if spec.kind == "so3lr" else 0, np.int32)
        Z[:n] = species
        node_mask = np.arange(N) < n
        owned = np.arange(N) < n_owned
        sr_idx = np.full((2, new["sr"]), N, np.int32)  # (neighbour j, centre i), j < i; padding = N
        sr_idx[0, : len(sr)], sr_idx[1, : len(sr)] = sr[:, 0], sr[:, 1]
        lr_idx = np.full((2, new["lr"]), N, np.int32)
        lr_idx[0, : len(lr)], lr_idx[1, : len(lr)] = lr[:, 1], lr[:, 0]
        dt = self.dtype
        inputs = (jnp.asarray(Z), jnp.asarray(node_mask), jnp.asarray(owned), jnp.asarray(sr_idx),
                  jnp.asarray(lr_idx), jnp.asarray(self.charge, dt), jnp.asarray(self.spin, dt))  # fmt: skip
        return jnp.asarray(R, dt), inputs

    # ---- one evaluation -----------------------------------------------------------------------------------------

    def __call__(self, positions: np.ndarray, species: np.ndarray, n_owned: int) -> tuple[float, np.ndarray]:
        n = positions.shape[0]
        R, inputs = self._inputs(np.asarray(positions, np.float64), np.asarray(species), n_owned)
        dt = self.dtype
        if self._names is None:  # which whole-system sums the model takes, in the order it takes them
            shapes = jax.eval_shape(lambda p, R_, i: self._model.apply(p, R_, *i, {}), self.params, R, inputs)
            self._names = list(shapes[1])
        static_names = [k for k in self._names if k.endswith(SPECIES_ONLY_SUMS)]
        dynamic = [k for k in self._names if k not in static_names]
        one = jnp.asarray(1.0, dt)
        if self.static_sums is None:  # species-only sums: once (they do not change while atoms are conserved)
            _, rec = self._forward(self.params, R, inputs, {k: one for k in static_names}, {k: one for k in dynamic})
            total = self.reduce(np.asarray([float(rec[k]) for k in static_names], np.float64))
            self.static_sums = dict(zip(static_names, total.tolist()))
        ext_static = {k: jnp.asarray(v, dt) for k, v in self.static_sums.items()}
        self.stats["calls"] += 1
        self.stats["owned"] += n_owned
        self.stats["evaluated"] += n
        if not dynamic:
            e, grad = self._energy_and_grad(self.params, R, inputs, ext_static)
            return float(e), -np.asarray(grad, np.float64)[:n]
        # Position-dependent sums, resolved in the order the model uses them (a later one may depend on an earlier).
        ext_dyn = {k: one for k in dynamic}
        for k in dynamic:
            _, rec = self._forward(self.params, R, inputs, ext_static, ext_dyn)
            ext_dyn[k] = jnp.asarray(float(self.reduce(np.asarray([float(rec[k])]))[0]), dt)
        (e, _), vjp = self._forward_vjp(self.params, R, inputs, ext_static, ext_dyn)
        zero = {k: jnp.zeros((), dt) for k in dynamic}
        dR_e, d_ext = self._backward(vjp, (jnp.ones((), dt), zero))
        g = self.reduce(np.asarray([float(d_ext[k]) for k in dynamic], np.float64))  # g_s = Σ_r ∂E_r/∂S_s
        dR_s, _ = self._backward(vjp, (jnp.zeros((), dt), {k: jnp.asarray(v, dt) for k, v in zip(dynamic, g)}))
        forces = -(np.asarray(dR_e, np.float64) + np.asarray(dR_s, np.float64))
        return float(e), forces[:n]
