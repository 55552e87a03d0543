"""CG backbones compared on the same data and the same training loop: SO3krates against MACE and NequIP (``mlip``).

    python -m benchmarks.cg_backbones --out benchmarks/results/cg-backbones-<date> [--models so3krates mace nequip]

Every model is trained on the bundled chignolin set (``so3krates_hk.training.data``, Cα beads, 340 K) with

* the same split: the package's ``split_frames`` with the bundled config's ``data`` settings where the package has
  it; otherwise contiguous time blocks of every replica (first ``train_fraction`` of each replica's frames for
  training, the next ``val_fraction`` for validation, the rest for the test), so no test frame sits 1 ps from a
  training frame except at the two block boundaries of each replica;
* the same loop: chemtrain's ``ForceMatching`` as ``so3krates_hk.training.train.ForceMatchingRun`` drives it (same
  epochs, batch size, optimiser: Adam with cosine decay and gradient clipping from the bundled ``cg_chignolin``
  config), force loss only;
* the same priors, fitted once on the training frames (``so3krates_hk.training.priors``) and added to every network's
  energy: U = U_network + U_prior;
* the same cutoff (the config's ``r_cutoff``) over the same jax-md Dense neighbour list, and width matched: every
  model has 2 interaction layers, 32 channels per degree and degrees up to l = 2, 16 radial basis functions; their
  parameter counts differ and are reported;
* the same initial energy scale: SO3krates starts its per-species energy scale at the RMS training force
  (× 1 Å), the ``mlip`` networks get the same number as ``DatasetInfo.scaling_stdev``.

Then each model (and the priors alone) runs the same short CG Langevin MD (jax-md, ``so3krates_hk.md.Simulation``):
every replica starts from one state, the least-folded reference frame (lowest native-contact fraction Q), with
per-replica seeds shared by all models. The Jensen–Shannon divergences of the Cα-distance, Q and RMSD distributions
against the whole reference set come from ``so3krates_hk.training.analysis``.

Outputs in ``--out``: ``results.json`` (settings, versions, per-model history and metrics), ``results.md`` (the
table) and ``validation_loss.png`` (validation force RMSE against epoch and against wall time).

The ``mlip`` networks are used through their public flax API: ``Mace``/``Nequip`` built from their ``Config`` and a
``DatasetInfo``, applied to an ``mlip.graph.Graph`` built from the jax-md neighbour list in the library's own padding
convention (one padding node; padding edges join it to itself). Species are the residue indices 0…19, given to
``mlip`` as atomic numbers 1…20 (zero atomic energies).

chemtrain 0.2.0 imports ``jax.tree_map`` and its siblings, which JAX 0.6 removed; on such JAX this script adds them
back from ``jax.tree_util`` (``benchmarks.worker._chemtrain_jax_aliases``) and records the names it added. Only this
benchmark does that, never the package.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

MODELS = ("so3krates", "mace", "nequip")
WIDTH = dict(layers=2, channels=32, l_max=2, num_rbf=16)


# ---------------------------------------------------------------------------------------------------- data


def contiguous_split(replica: np.ndarray, train_fraction: float, val_fraction: float):
    """(train, validation, test) indices: contiguous time blocks of each replica, in that order.

    For every replica r with frames in time order, the first round(train_fraction · n_r) frames go to training, the
    next round(val_fraction · n_r) to validation and the rest to the test set.
    """
    replica = np.asarray(replica)
    train, val, test = [], [], []
    for r in np.unique(replica):
        idx = np.nonzero(replica == r)[0]
        n = len(idx)
        n_train, n_val = int(round(train_fraction * n)), int(round(val_fraction * n))
        train.append(idx[:n_train])
        val.append(idx[n_train : n_train + n_val])
        test.append(idx[n_train + n_val :])
    return tuple(np.sort(np.concatenate(a)).astype(int) for a in (train, val, test))


# ---------------------------------------------------------------------------------------------------- models


@dataclasses.dataclass
class Backbone:
    """What ``ForceMatchingRun``, ``force_rmse`` and the MD need from a model: parameters, an energy template
    (network + priors) over the shared neighbour list, and an MD potential builder."""

    name: str
    description: str
    init_params: Callable
    energy_fn_template: Callable
    neighbor: Any
    md_build: Callable  # params -> Potential.build
    max_edges: Optional[int]
    hyperparameters: dict


def so3krates_backbone(cg) -> Backbone:
    """The CG model of ``so3krates-hk train`` (``build_cg_model``: SO3krates + priors)."""

    def md_build(params):
        def build(max_edges):
            apply_fn = cg.build(max_edges)
            return cg.energy_fn_template(params, apply_fn), lambda r, neighbor: apply_fn.count_edges(r, neighbor)

        return build

    return Backbone("so3krates", "SO3krates (so3krates_neighborlist_pp) + priors", cg.init_params,
                    cg.energy_fn_template, cg.neighbor, md_build, cg.max_edges, dict(cg.hyperparameters))  # fmt: skip


def mlip_backbone(name: str, cg, species: np.ndarray, force_rms: float, min_distance: float,
                  overrides: Optional[dict] = None) -> Backbone:
    """MACE or NequIP from ``mlip`` at the matched width (``overrides``: other config fields), + the same priors, over
    the same neighbour list."""
    import jax.numpy as jnp
    from mlip.data.dataset_info import DatasetInfo
    from mlip.graph import Graph
    from mlip.graph.edge_ordering import EdgeOrdering
    from mlip.graph.graph import GraphEdges, GraphGlobals, GraphNodes
    from mlip.models import Mace, Nequip

    n_types = 20  # residue alphabet; mlip gets them as atomic numbers 1…20
    info = DatasetInfo(
        dataset_name="chignolin-cg", atomic_energies_map={z: 0.0 for z in range(1, n_types + 1)},
        graph_cutoff_angstrom=cg.r_cutoff, avg_num_neighbors=cg.avg_num_neighbors, avg_r_min_angstrom=min_distance,
        scaling_mean=0.0, scaling_stdev=force_rms,
    )  # fmt: skip
    w = WIDTH
    if name == "mace":
        hp = dict(num_layers=w["layers"], num_channels=w["channels"], l_max=w["l_max"], num_rbf=w["num_rbf"],
                  correlation=3, **(overrides or {}))  # fmt: skip
        network = Mace(Mace.Config(**hp), info)
        description = "MACE (mlip) + priors"
    elif name == "nequip":
        c = w["channels"]
        hp = dict(num_layers=w["layers"], target_irreps=f"{c}x0e + {c}x1o + {c}x2e", l_max=w["l_max"],
                  num_rbf=w["num_rbf"], **(overrides or {}))  # fmt: skip
        network = Nequip(Nequip.Config(**hp), info)
        description = "NequIP (mlip) + priors"
    else:
        raise ValueError(f"unknown mlip model {name!r}")

    N = len(species)
    z = jnp.asarray(np.concatenate([np.asarray(species) + 1, [1]]), jnp.int32)  # + one padding node
    cutoff2 = float(cg.r_cutoff) ** 2
    prior = cg.priors.energy_fn(cg.displacement) if cg.priors is not None else None

    def graph_of(position, neighbor):
        """The mlip graph of one frame: real edges i → j for j in i's list and |r_ij| < cutoff, sorted by sender;
        every other slot becomes a padding edge from the padding node N to itself."""
        idx = neighbor.idx  # (N, K), N marks an empty slot
        K = idx.shape[1]
        senders = jnp.repeat(jnp.arange(N), K)
        receivers = idx.reshape(-1)
        pos = jnp.concatenate([position, jnp.zeros((1, 3), position.dtype)], axis=0)
        d = pos[receivers] - pos[senders]
        valid = (receivers < N) & (jnp.sum(d * d, axis=-1) < cutoff2)
        key = jnp.where(valid, senders, N)
        order = jnp.argsort(key, stable=True)
        senders = key[order]
        receivers = jnp.where(valid, receivers, N)[order]
        return Graph(
            nodes=GraphNodes(positions=pos, atomic_numbers=z), edges=GraphEdges(),
            globals=GraphGlobals(cell=jnp.zeros((2, 3, 3), position.dtype), weight=jnp.ones((2,), position.dtype)),
            n_node=jnp.asarray([N, 1]), n_edge=jnp.asarray([N * K, 0]), senders=senders, receivers=receivers,
            ordering=EdgeOrdering.SENDER,
        )  # fmt: skip

    def network_energy(params, position, neighbor):
        out = network.apply(params, graph_of(position, neighbor))
        return jnp.sum(out.nodes.features["energy"][:N])

    def energy_fn_template(params, _apply_fn=None):
        def energy_fn(position, neighbor, **kwargs):
            e = network_energy(params, position, neighbor)
            return e + prior(position) if prior is not None else e

        return energy_fn

    def init_params(key):
        return network.init(key, graph_of(cg.neighbor.reference_position, cg.neighbor))

    def md_build(params):
        return lambda max_edges: (energy_fn_template(params), None)

    hp = {k: (str(v) if not isinstance(v, (int, float, list)) else v) for k, v in hp.items()}
    return Backbone(name, description, init_params, energy_fn_template, cg.neighbor, md_build, None, hp)


def load_split(args: argparse.Namespace, cfg):
    """The dataset and its (train, validation, test) subsets, as every model sees them."""
    from so3krates_hk.training.data import load_cg_dataset

    ds = load_cg_dataset(args.dataset, args.max_frames)
    try:  # the package's own split of CG time series, where it has one
        from so3krates_hk.training.data import split_frames
    except ImportError:
        split_frames = None
    if split_frames is not None:
        d = cfg.data
        tr, va, te = split_frames(ds, d.train_fraction, d.val_fraction, d.seed, how=d.split,
                                  block_frames=d.block_frames, gap_frames=d.gap_frames)  # fmt: skip
        how = (f"so3krates_hk.training.data.split_frames(how={d.split!r}, block_frames={d.block_frames}, "
               f"gap_frames={d.gap_frames}, seed={d.seed})")  # fmt: skip
        return ds, (tr, va, te), (ds.subset(tr), ds.subset(va), ds.subset(te)), how
    if "replica" in ds.extras and len(ds.extras["replica"]) == ds.num_frames:
        replica = np.asarray(ds.extras["replica"])
    elif "replica" in ds.extras:
        # load_cg_dataset subsamples positions and forces only: subsample the replica labels the same way.
        full = np.asarray(ds.extras["replica"])
        replica = full[np.linspace(0, len(full) - 1, ds.num_frames).round().astype(int)]
    else:
        replica = np.zeros(ds.num_frames, int)
    tr, va, te = contiguous_split(replica, cfg.data.train_fraction, cfg.data.val_fraction)
    how = "contiguous time blocks per replica (train | validation | test)"
    return ds, (tr, va, te), (ds.subset(tr), ds.subset(va), ds.subset(te)), how


def prior_rmse(priors, displacement, ds) -> float:
    """Force RMSE of the priors alone on a dataset."""
    import jax

    force = jax.jit(jax.vmap(jax.grad(priors.energy_fn(displacement))))
    return float(np.sqrt(np.mean((-np.asarray(force(ds.positions)) - ds.forces) ** 2)))


def priors_only_md_build(cg):
    def build(max_edges):
        prior = cg.priors.energy_fn(cg.displacement)
        return (lambda position, neighbor, **kw: prior(position)), None

    return build


def count_params(params) -> int:
    import jax

    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


# ---------------------------------------------------------------------------------------------------- MD


def run_md(cg, build, ds, start: np.ndarray, md: dict, seed: int) -> dict:
    """``md['replicas']`` Langevin runs of ``md['steps']`` steps from ``start``; frames, stability and divergences."""
    import jax.numpy as jnp

    from so3krates_hk.md import MDSettings, Potential, Simulation, time_unit_fs
    from so3krates_hk.md.simulation import SimulationError
    from so3krates_hk.training import analysis

    unit_fs = time_unit_fs("kcal/mol")
    settings = MDSettings(ensemble="nvt_langevin", dt=md["dt_fs"] / unit_fs, kT=ds.kT,
                          gamma=md["friction_per_ps"] * unit_fs / 1000, block=md["block"],
                          record_every=md["record_every"], seed=seed)  # fmt: skip
    t0 = time.perf_counter()
    sim = Simulation(Potential(build, max_edges=md.get("max_edges")), {"neighbor": cg.neighbor_fn}, cg.shift,
                     md["bead_mass"], settings)  # fmt: skip
    frames, error = [], None
    for r in range(md["replicas"]):
        try:
            state = sim.init_state(jnp.asarray(start, jnp.float32), seed=seed + 1000 + r)
            _, traj = sim.run(state, steps=md["steps"])
            frames.append(traj.positions)
        except SimulationError as e:
            error = f"replica {r}: {e}"
            break
    traj = np.concatenate(frames) if frames else np.zeros((0,) + ds.positions.shape[1:])
    finite = error is None and bool(np.isfinite(traj).all())
    stretch = analysis.max_bond_stretch(traj, cg.priors.bonds, cg.priors.bond_length) if finite and len(traj) else None
    results = analysis.compare(ds.name, traj, ds.positions, ds.extras) if finite and len(traj) else {}
    q = analysis.native_contacts(traj, np.asarray(ds.extras["reference_structure"])) if len(traj) else np.zeros(0)
    return dict(
        seconds=time.perf_counter() - t0, frames=len(traj), finite=finite, error=error,
        stable=finite and (stretch is None or stretch < 1.5), max_bond_stretch=stretch,
        js_divergence={k: v["js"] for k, v in results.items()}, mean_q=float(q.mean()) if len(q) else None,
        reallocations=sim.reallocations,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------- the run


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "jax-md", "dm-haiku", "e3nn-jax", "flax", "optax", "chemtrain", "mlip", "e3j",
                 "numpy"):  # fmt: skip
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run(args: argparse.Namespace) -> dict:
    from benchmarks.worker import _chemtrain_jax_aliases

    aliases = _chemtrain_jax_aliases()  # before chemtrain is imported (by ForceMatchingRun)
    import jax

    from so3krates_hk.training import analysis
    from so3krates_hk.training.cg_model import build_cg_model
    from so3krates_hk.training.config import load_config
    from so3krates_hk.training.train import ForceMatchingRun, force_rmse

    cfg = load_config("cg_chignolin")
    training = dataclasses.replace(cfg.training, epochs=args.epochs, batch_size=args.batch_size,
                                   checkpoint_every=args.epochs, seed=args.seed)  # fmt: skip
    cfg = dataclasses.replace(cfg, training=training)
    ds, (tr, va, te), (train, val, test), split_how = load_split(args, cfg)
    pr = cfg.priors
    priors = dict(bonds=pr.bonds, angles=pr.angles, repulsion=pr.repulsion, bond_cutoff=pr.bond_cutoff,
                  repulsion_exponent=pr.repulsion_exponent)  # fmt: skip
    if hasattr(pr, "repulsion_min_bonds"):
        priors["repulsion_min_bonds"] = pr.repulsion_min_bonds
    cg = build_cg_model(train.positions, ds.species, ds.kT, cfg.model.r_cutoff, cfg.model.dr_threshold,
                        cfg.model.hyperparameters, priors)  # fmt: skip
    force_rms = float(np.sqrt(np.mean(train.forces**2)))
    d = np.linalg.norm(train.positions[:, :, None] - train.positions[:, None], axis=-1)
    d[:, np.arange(d.shape[1]), np.arange(d.shape[1])] = np.inf
    min_distance = float(d.min(axis=(1, 2)).mean())

    reference = np.asarray(ds.extras["reference_structure"])
    q_all = analysis.native_contacts(ds.positions, reference)
    start_frame = int(np.argmin(q_all))
    md = dict(replicas=args.md_replicas, steps=args.md_steps, dt_fs=cfg.md.dt_fs, friction_per_ps=cfg.md.friction_per_ps,
              record_every=args.md_record_every, block=args.md_block, bead_mass=cfg.md.bead_mass or 110.0,
              temperature_K=ds.temperature, start_frame=start_frame, start_q=float(q_all[start_frame]),
              simulated_ns_per_model=args.md_replicas * args.md_steps * cfg.md.dt_fs * 1e-6)  # fmt: skip

    prior_test = prior_rmse(cg.priors, cg.displacement, test)
    out = dict(
        date=datetime.date.today().isoformat(), command=" ".join(sys.argv), host=platform.node(),
        backend=jax.default_backend(), cpu_count=os.cpu_count(), versions=versions(), chemtrain_jax_aliases=aliases,
        dataset=dict(name=ds.name, frames=ds.num_frames, beads=len(ds.species), temperature_K=ds.temperature,
                     split=split_how,
                     train=len(tr), validation=len(va), test=len(te)),
        training=dict(epochs=args.epochs, batch_size=training.batch_size, learning_rate=training.learning_rate,
                      final_learning_rate=training.final_learning_rate, gradient_clip=training.gradient_clip,
                      optimizer="optax: clip_by_global_norm + adam, cosine decay", loss="force MSE (chemtrain F)",
                      seed=args.seed, force_rms=force_rms),
        cutoff_angstrom=cg.r_cutoff, neighbor_skin_angstrom=cg.dr_threshold, avg_num_neighbors=cg.avg_num_neighbors,
        width=WIDTH, md=md, models={},
        priors_only=dict(test_force_rmse=prior_test, val_force_rmse=prior_rmse(cg.priors, cg.displacement, val)),
    )  # fmt: skip
    if args.md_steps > 0:
        out["priors_only"]["md"] = run_md(cg, priors_only_md_build(cg), ds, ds.positions[start_frame], md, args.seed)
        _log(f"priors only: test force RMSE {prior_test:.3f}; MD {out['priors_only']['md']['js_divergence']}")
    _write(args.out, out)

    for name in args.models:
        try:
            bb = so3krates_backbone(cg) if name == "so3krates" else mlip_backbone(name, cg, ds.species, force_rms,
                                                                                   min_distance)  # fmt: skip
        except ImportError as e:
            out["models"][name] = dict(status="skipped", reason=f"{type(e).__name__}: {e}")
            _log(f"{name}: skipped ({e})")
            _write(args.out, out)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            fm = ForceMatchingRun(cfg, bb, train, val, tmp)
            setup_s = time.perf_counter() - t0
            n_params = count_params(fm.trainer.params)
            _log(f"{name}: {n_params} parameters; training {args.epochs} epochs")
            while fm.epoch < args.epochs:
                fm.train_epoch()
                _log(f"  {name} epoch {fm.epoch}: train {fm.history['train_force_rmse'][-1]:.3f}, "
                     f"validation {fm.history['val_force_rmse'][-1]:.3f} ({fm.history['epoch_seconds'][-1]:.1f} s)")  # fmt: skip
        params = fm.best["params"]
        sec = fm.history["epoch_seconds"]
        rec = dict(
            status="ok", description=bb.description, hyperparameters=bb.hyperparameters, parameters=n_params,
            setup_seconds=setup_s, history=fm.history, best_val_force_rmse=fm.best["val"],
            seconds_per_epoch=float(np.median(sec[1:])) if len(sec) > 1 else float(sec[0]),
            first_epoch_seconds=float(sec[0]), test_force_rmse=force_rmse(bb, params, test),
        )  # fmt: skip
        _log(f"{name}: test force RMSE {rec['test_force_rmse']:.3f} (priors alone {prior_test:.3f})")
        out["models"][name] = rec
        _write(args.out, out)  # training results first: the MD comes after
        if args.md_steps > 0:
            build = bb.md_build(params)
            md_run = dict(md, max_edges=bb.max_edges)
            rec["md"] = run_md(cg, build, ds, ds.positions[start_frame], md_run, args.seed)
            _log(f"{name}: MD {rec['md']['js_divergence']} stable={rec['md']['stable']}")
        out["models"][name] = rec
        _write(args.out, out)
        write_table(args.out, out)  # after every model, so an interrupted run still leaves its table and figure
        plot(args.out, out)
    write_table(args.out, out)
    plot(args.out, out)
    return out


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _write(directory: str, out: dict) -> None:
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1, default=_json_default)
    os.replace(tmp, os.path.join(directory, "results.json"))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


# ---------------------------------------------------------------------------------------------------- report


def write_table(directory: str, out: dict) -> str:
    """``results.md``: one row per model (and the priors alone)."""
    js_keys = ("ca_distances", "native_contacts", "rmsd_to_folded")

    def js(rec, k):
        v = (rec.get("md") or {}).get("js_divergence", {}).get(k)
        return f"{v:.3f}" if v is not None else "–"

    def stable(rec):
        m = rec.get("md")
        return "–" if m is None else ("yes" if m["stable"] else "no")

    lines = [
        "| model | parameters | s / epoch | best val. force RMSE | test force RMSE | JS Cα dist. | JS Q | JS RMSD | MD stable |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    p = out["priors_only"]
    pv = f"{p['val_force_rmse']:.3f}" if p.get("val_force_rmse") is not None else "–"
    lines.append(f"| priors only | 0 | – | {pv} | {p['test_force_rmse']:.3f} | {js(p, js_keys[0])} | {js(p, js_keys[1])} | "
                 f"{js(p, js_keys[2])} | {stable(p)} |")  # fmt: skip
    for name, rec in out["models"].items():
        if rec.get("status") != "ok":
            lines.append(f"| {name} | skipped: {rec.get('reason')} | | | | | | | |")
            continue
        lines.append(
            f"| {rec['description']} | {rec['parameters']:,} | {rec['seconds_per_epoch']:.1f} | "
            f"{rec['best_val_force_rmse']:.3f} | {rec['test_force_rmse']:.3f} | {js(rec, js_keys[0])} | "
            f"{js(rec, js_keys[1])} | {js(rec, js_keys[2])} | {stable(rec)} |"
        )
    d, t, md = out["dataset"], out["training"], out["md"]
    notes = [
        "",
        f"Force RMSE in kcal/mol/Å (per component, network + priors). Data: {d['name']}, {d['frames']} frames of "
        f"{d['beads']} beads at {d['temperature_K']:g} K, split {d['split']}: {d['train']} / {d['validation']} / "
        f"{d['test']} frames. chemtrain ForceMatching, {t['epochs']} epochs, batch {t['batch_size']}, "
        f"{t['optimizer']} from {t['learning_rate']:g} to {t['final_learning_rate']:g}, clip {t['gradient_clip']:g}; "
        f"cutoff {out['cutoff_angstrom']:g} Å (skin {out['neighbor_skin_angstrom']:g} Å). "
        f"s / epoch: median of epochs 2…{t['epochs']} (the first includes compilation), "
        f"{out['backend']} with {out['cpu_count']} cores shared with other jobs, so only ratios within this run mean "
        "anything.",
        f"MD: {md['replicas']} Langevin replicas × {md['steps']} steps of {md['dt_fs']:g} fs "
        f"({md['simulated_ns_per_model']:.2f} ns per model) at {md['temperature_K']:g} K, friction "
        f"{md['friction_per_ps']:g}/ps, bead mass {md['bead_mass']:g} amu, all from reference frame "
        f"{md['start_frame']} (Q = {md['start_q']:.2f}, the least folded); JS divergences (bits) against all "
        "reference frames. Short MD: the divergences are indicative only.",
    ]
    merged = [n for n, r in out["models"].items() if r.get("merged_from")]
    if merged:
        notes.append(f"{', '.join(merged)}: trained in a separate process with the same settings, at the same time as "
                     "the others (merged with --merge); the machine's load changed during the runs, so the "
                     "s / epoch ratios are rough.")  # fmt: skip
    if out.get("chemtrain_jax_aliases"):
        notes.append(f"chemtrain 0.2.0 ran on JAX {out['versions']['jax']} with {', '.join(out['chemtrain_jax_aliases'])} "
                     "added back from jax.tree_util by this benchmark.")  # fmt: skip
    text = "\n".join(lines + notes) + "\n"
    with open(os.path.join(directory, "results.md"), "w") as f:
        f.write(text)
    return text


def plot(directory: str, out: dict) -> None:
    """``validation_loss.png``: validation force RMSE against epoch and against cumulative training wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    prior = out["priors_only"].get("val_force_rmse")
    for name, rec in out["models"].items():
        if rec.get("status") != "ok":
            continue
        h = rec["history"]
        epochs = np.arange(1, len(h["val_force_rmse"]) + 1)
        a.plot(epochs, h["val_force_rmse"], "o-", label=name)
        b.plot(np.cumsum(h["epoch_seconds"]), h["val_force_rmse"], "o-", label=name)
    for ax, xl in ((a, "epoch"), (b, "training wall time (s, compilation included)")):
        if prior is not None:
            ax.axhline(prior, color="gray", ls="--", lw=1, label="priors alone")
        ax.set(xlabel=xl, ylabel="validation force RMSE (kcal/mol/Å)")
        ax.legend(fontsize=8)
    fig.suptitle(f"{out['dataset']['name']} CG: same data, split, loop, optimiser and priors")
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "validation_loss.png"), dpi=110)
    plt.close(fig)


SAME_SETTINGS = ("dataset", "training", "cutoff_angstrom", "neighbor_skin_angstrom", "width", "md", "versions",
                 "chemtrain_jax_aliases")  # fmt: skip


def fill_priors_validation(out: dict) -> None:
    """The priors' validation force RMSE for results written before it was recorded: the same split and the same
    fit again; the recomputed test RMSE must equal the recorded one."""
    from so3krates_hk._compat import jax_md
    from so3krates_hk.training.config import load_config
    from so3krates_hk.training.priors import fit_priors

    cfg = load_config("cg_chignolin")
    d = out["dataset"]
    args = argparse.Namespace(dataset=d["name"], max_frames=d["frames"])
    ds, _, (train, val, test), how = load_split(args, cfg)
    if how != d["split"]:
        raise SystemExit(f"this checkout splits by {how}, the run by {d['split']}; not filled in.")
    pr = cfg.priors
    priors = fit_priors(train.positions, ds.kT, bond_cutoff=pr.bond_cutoff, repulsion_exponent=pr.repulsion_exponent)
    displacement, _ = jax_md.space.free()
    test_rmse = prior_rmse(priors, displacement, test)
    if not np.isclose(test_rmse, out["priors_only"]["test_force_rmse"], rtol=1e-5):
        raise SystemExit(f"recomputed priors test RMSE {test_rmse} differs from the recorded one; not filled in.")
    out["priors_only"]["val_force_rmse"] = prior_rmse(priors, displacement, val)


def merge(directory: str, others: list[str]) -> dict:
    """Add the models of other runs (``results.json`` in ``others``) to the run in ``directory``, after checking that
    they used the same data, split, training, MD settings and package versions; rewrite its table and figure."""
    with open(os.path.join(directory, "results.json")) as f:
        out = json.load(f)
    for other in others:
        with open(os.path.join(other, "results.json")) as f:
            res = json.load(f)
        differ = [k for k in SAME_SETTINGS if res.get(k) != out.get(k)]
        if differ:
            raise SystemExit(f"{other}: settings differ from {directory} in {differ}; not merged.")
        for name, rec in res["models"].items():
            rec = dict(rec, merged_from=dict(command=res["command"], priors_only=res["priors_only"]))
            out["models"][name] = rec
    if out["priors_only"].get("val_force_rmse") is None:
        fill_priors_validation(out)
    _write(directory, out)
    write_table(directory, out)
    plot(directory, out)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for results.json, results.md and validation_loss.png")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models to train")
    p.add_argument("--dataset", default="chignolin", help="bundled CG dataset or .npz path")
    p.add_argument("--max-frames", type=int, default=None, help="subsample the dataset to this many frames")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (every model)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per batch (every model)")
    p.add_argument("--seed", type=int, default=0, help="initialisation, shuffling and MD seed")
    p.add_argument("--md-replicas", type=int, default=2, help="MD replicas per model (0 steps: no MD)")
    p.add_argument("--md-steps", type=int, default=10000, help="MD steps per replica (a multiple of --md-block)")
    p.add_argument("--md-block", type=int, default=1000, help="MD steps per jitted block")
    p.add_argument("--md-record-every", type=int, default=50, help="MD steps between recorded frames")
    p.add_argument("--merge", nargs="+", metavar="DIR", help="instead of training: add the models of these runs' "
                   "results.json to the one in --out (same settings required) and redraw its table and figure")
    args = p.parse_args(argv)
    if args.merge:
        merge(args.out, args.merge)
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
