"""``so3krates-hk train --config cg_chignolin``: CG force matching with chemtrain, then CG MD.

1. Load the CG dataset, split it (seeded), fit the priors on the training frames.
2. Train SO3krates from random init with chemtrain's ``ForceMatching``; the ``energy_fn_template`` is SO3krates
   plus the priors. A progress bar, and per-epoch train and validation force RMSE.
3. Write ``params.npz`` (safe format: the best-validation parameters and the priors), ``loss_curve.png`` and
   ``metrics.json``; checkpoints every ``training.checkpoint_every`` epochs (``checkpoint.npz``), from which
   ``--resume`` continues exactly where an interrupted run stopped (same batches, same updates).
4. Run CG Langevin MD in jax-md with the trained model (``so3krates_hk.md``), compare its distributions with the
   reference data, draw them with their Jensen–Shannon divergences (``md_comparison.png``), and check stability:
   no NaN, no bond stretched beyond 1.5× its reference length.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from so3krates_hk.io import atomic_path
from so3krates_hk.md import MDSettings, Potential, Simulation, time_unit_fs
from so3krates_hk.training import analysis
from so3krates_hk.training.cg_model import CGModel, build_cg_model
from so3krates_hk.training.config import TrainConfig
from so3krates_hk.training.data import CGDataset, load_cg_dataset, split_indices

CHECKPOINT = "checkpoint.npz"
MAX_BOND_STRETCH = 1.5


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    t = cfg.training
    total = max(1, t.epochs * steps_per_epoch)
    schedule = optax.cosine_decay_schedule(t.learning_rate, total, alpha=t.final_learning_rate / t.learning_rate)
    return optax.chain(optax.clip_by_global_norm(t.gradient_clip), optax.adam(schedule))


# ---------------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str, params, opt_state, epoch: int, history: dict, best: dict) -> None:
    """Params, optimiser state, epoch and history in a pickle-free .npz, written atomically."""
    arrays = {}
    for prefix, tree in (("params", params), ("opt", opt_state), ("best", best["params"])):
        for i, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
            arrays[f"{prefix}_{i:04d}"] = np.asarray(jax.device_get(leaf))
    arrays["epoch"] = np.asarray(epoch)
    arrays["history"] = np.asarray(json.dumps(history))
    arrays["best_val"] = np.asarray(best["val"])
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_checkpoint(path: str, params_template, opt_template):
    """Inverse of ``save_checkpoint``, with tree structures from freshly initialised templates."""
    with np.load(path, allow_pickle=False) as data:

        def tree(prefix, template):
            leaves = jax.tree_util.tree_leaves(template)
            saved = [data[f"{prefix}_{i:04d}"] for i in range(len(leaves))]
            if any(np.shape(a) != np.shape(b) for a, b in zip(saved, leaves)) or f"{prefix}_{len(leaves):04d}" in data:
                raise ValueError(f"{path} does not match this model/optimiser ({prefix}); was the config changed?")
            saved = [jnp.asarray(a, dtype=jnp.asarray(b).dtype) for a, b in zip(saved, leaves)]
            return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), saved)

        params, opt_state, best_params = tree("params", params_template), tree("opt", opt_template), tree(
            "best", params_template
        )
        return params, opt_state, int(data["epoch"]), json.loads(str(data["history"])), dict(
            params=best_params, val=float(data["best_val"])
        )


# ---------------------------------------------------------------------------------------------------- training


class ForceMatchingRun:
    """One chemtrain ``ForceMatching`` run, epoch by epoch, with exact resume."""

    def __init__(self, cfg: TrainConfig, model: CGModel, train: CGDataset, val: CGDataset, out: str):
        from chemtrain.trainers import ForceMatching

        self.cfg, self.model, self.out = cfg, model, out
        t = cfg.training
        self.batch_size = min(t.batch_size, train.num_frames)
        self.steps_per_epoch = train.num_frames // self.batch_size
        self.optimizer = make_optimizer(cfg, self.steps_per_epoch)
        params = model.init_params(jax.random.PRNGKey(t.seed))
        if t.scale_energy_by_force_rms and "energy_head" in params and "atomic_scales" in params["energy_head"]:
            # Start the network at the scale of the data: per-atom energies × (RMS force · 1 length unit).
            rms = float(np.sqrt(np.mean(train.forces**2)))
            params["energy_head"]["atomic_scales"] = params["energy_head"]["atomic_scales"] * rms
        self.trainer = ForceMatching(
            params, self.optimizer, model.energy_fn_template, model.neighbor, gammas={"F": t.force_weight},
            batch_per_device=self.batch_size, batch_cache=1, log_file=os.path.join(out, "chemtrain.log"),
            checkpoint_path=os.path.join(out, "chemtrain"),
        )  # fmt: skip
        data = lambda ds: {"R": ds.positions, "F": ds.forces}  # noqa: E731
        self.trainer.set_dataset(data(train), stage="training", shuffle=True, seed=t.seed)
        self.has_val = val.num_frames > 0
        if self.has_val:
            self.trainer.set_dataset(data(val), stage="validation", include_all=True)
        self.history = {"train_force_rmse": [], "val_force_rmse": [], "epoch_seconds": []}
        self.best = {"params": params, "val": math.inf}
        self.epoch = 0

    def resume(self, path: str) -> None:
        params, opt_state, epoch, history, best = load_checkpoint(path, self.trainer.params,
                                                                  self.trainer.state.opt_state)  # fmt: skip
        self.trainer.state = self.trainer.state.replace(params=params, opt_state=opt_state)
        self.trainer._epoch = epoch
        self.trainer.update_times.extend([0.0] * epoch)  # chemtrain indexes its per-epoch timings by epoch
        # Replay the training batch stream up to this epoch, so the next batches are the ones an uninterrupted run
        # would have drawn (chemtrain draws from a seeded pipeline).
        for _ in range(epoch):
            for _batch in self.trainer._get_batch():
                pass
        self.epoch, self.history, self.best = epoch, history, best

    def train_epoch(self) -> None:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # chemtrain echoes its epoch log; it still goes to log_file
            self.trainer.train(1)
        losses = self.trainer.train_target_losses["F"][-self.steps_per_epoch :]
        self.history["train_force_rmse"].append(float(np.sqrt(np.mean(losses))))
        if self.has_val:
            val = float(np.sqrt(self.trainer.val_target_losses["F"][-1]))
            self.history["val_force_rmse"].append(val)
            if val < self.best["val"]:
                self.best = {"params": self.trainer.params, "val": val}
        else:
            self.best = {"params": self.trainer.params, "val": self.history["train_force_rmse"][-1]}
        self.history["epoch_seconds"].append(time.perf_counter() - t0)
        self.epoch += 1
        if self.epoch % self.cfg.training.checkpoint_every == 0 or self.epoch == self.cfg.training.epochs:
            save_checkpoint(os.path.join(self.out, CHECKPOINT), self.trainer.params, self.trainer.state.opt_state,
                            self.epoch, self.history, self.best)  # fmt: skip


def force_rmse(model: CGModel, params, ds: CGDataset, batch: int = 64) -> float:
    """Force RMSE (per component) of the full energy (SO3krates + priors) on a dataset."""
    if ds.num_frames == 0:
        return float("nan")
    energy_fn = model.energy_fn_template(params)
    nbrs0 = model.neighbor

    @jax.jit
    def forces(R):
        def one(r):
            return -jax.grad(lambda x: energy_fn(x, nbrs0.update(x)))(r)

        return jax.vmap(one)(R)

    sq = []
    for s in range(0, ds.num_frames, batch):
        R = jnp.asarray(ds.positions[s : s + batch])
        sq.append(np.asarray((forces(R) - ds.forces[s : s + batch]) ** 2).reshape(len(R), -1))
    return float(np.sqrt(np.concatenate(sq).mean()))


# ---------------------------------------------------------------------------------------------------- MD


def run_md(cfg: TrainConfig, model: CGModel, params, ds: CGDataset, progress: bool = True) -> tuple[np.ndarray, dict]:
    """CG Langevin MD from training frames, ``md.replicas`` independent runs; returns (frames, info)."""
    m = cfg.md
    unit_fs = time_unit_fs("kcal/mol")
    temperature = m.temperature or ds.temperature
    kT = 0.0019872042586408316 * temperature
    if m.bead_mass is not None:
        mass = m.bead_mass
    elif "masses" in ds.extras:
        mass = jnp.asarray(ds.extras["masses"], jnp.float32)[:, None]
    else:
        mass = 100.0
    settings = MDSettings(ensemble="nvt_langevin", dt=m.dt_fs / unit_fs, kT=kT, gamma=m.friction_per_ps * unit_fs / 1000,
                          block=m.block, record_every=m.record_every, seed=cfg.training.seed)  # fmt: skip

    def build(max_edges):
        apply_fn = model.build(max_edges)
        return model.energy_fn_template(params, apply_fn), lambda r, neighbor: apply_fn.count_edges(r, neighbor)

    sim = Simulation(Potential(build, max_edges=model.max_edges), {"neighbor": model.neighbor_fn}, model.shift,
                     mass, settings)  # fmt: skip
    starts = np.linspace(0, ds.num_frames - 1, m.replicas).round().astype(int)
    frames, t0 = [], time.perf_counter()
    for r, idx in enumerate(starts):
        state = sim.init_state(jnp.asarray(ds.positions[idx], jnp.float32), seed=cfg.training.seed + 1000 + r)
        _, traj = sim.run(state, steps=m.steps, progress=progress)
        frames.append(traj.positions)
    traj_all = np.concatenate(frames) if frames else np.zeros((0,) + ds.positions.shape[1:])
    info = dict(
        replicas=m.replicas, steps_per_replica=m.steps, dt_fs=m.dt_fs, temperature_K=temperature,
        bead_mass_amu=np.asarray(mass).ravel().tolist(),
        frames=len(traj_all), seconds=time.perf_counter() - t0, reallocations=sim.reallocations,
        simulated_ns=m.replicas * m.steps * m.dt_fs * 1e-6,
    )  # fmt: skip
    return traj_all, info


# ---------------------------------------------------------------------------------------------------- the job


def run(cfg: TrainConfig, resume: bool = False, progress: bool = True, output: Optional[str] = None) -> dict:
    """The whole job (see the module docstring). Returns the metrics written to ``metrics.json``."""
    from tqdm.auto import tqdm

    out = output or cfg.output.directory
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()
    ds = load_cg_dataset(cfg.data.dataset, cfg.data.max_frames)
    tr_idx, va_idx, te_idx = split_indices(ds.num_frames, cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.seed)
    train, val, test = ds.subset(tr_idx), ds.subset(va_idx), ds.subset(te_idx)
    pr = cfg.priors
    priors = None
    if pr.bonds or pr.angles or pr.repulsion:
        priors = dict(bonds=pr.bonds, angles=pr.angles, repulsion=pr.repulsion, bond_cutoff=pr.bond_cutoff,
                      repulsion_exponent=pr.repulsion_exponent)  # fmt: skip
    model = build_cg_model(train.positions, ds.species, ds.kT, cfg.model.r_cutoff, cfg.model.dr_threshold,
                           cfg.model.hyperparameters, priors)  # fmt: skip
    print(f"{ds.name}: {ds.num_frames} frames of {len(ds.species)} beads at {ds.temperature:g} K "
          f"(train {train.num_frames}, validation {val.num_frames}, test {test.num_frames}); "
          f"edge capacity {model.max_edges}, n̄ = {model.avg_num_neighbors:.2f}")  # fmt: skip

    fm = ForceMatchingRun(cfg, model, train, val, out)
    ckpt = os.path.join(out, CHECKPOINT)
    if resume and os.path.exists(ckpt):
        fm.resume(ckpt)
        print(f"resumed from {ckpt} at epoch {fm.epoch}")
    bar = tqdm(total=cfg.training.epochs, initial=fm.epoch, desc="force matching", unit="epoch", disable=not progress)
    while fm.epoch < cfg.training.epochs:
        fm.train_epoch()
        h = fm.history
        msg = f"epoch {fm.epoch}: train force RMSE {h['train_force_rmse'][-1]:.4f}"
        if h["val_force_rmse"]:
            msg += f", validation {h['val_force_rmse'][-1]:.4f} kcal/mol/Å"
        bar.set_postfix_str(msg.split(": ", 1)[1])
        bar.update(1)
        tqdm.write(msg)
    bar.close()

    params = fm.best["params"]
    metrics = dict(
        dataset=ds.name, frames=dict(train=train.num_frames, validation=val.num_frames, test=test.num_frames),
        history=fm.history, best_val_force_rmse=fm.best["val"], test_force_rmse=force_rmse(model, params, test),
        prior_only_test_force_rmse=_prior_only_rmse(model, test), config=cfg.to_dict(),
    )  # fmt: skip
    model.save(os.path.join(out, "params.npz"), params, {"config": cfg.to_dict(), "dataset": ds.name})
    analysis.plot_losses(fm.history, os.path.join(out, "loss_curve.png"), f"{ds.name}: SO3krates + priors")
    print(f"test force RMSE {metrics['test_force_rmse']:.4f} kcal/mol/Å "
          f"(priors alone: {metrics['prior_only_test_force_rmse']:.4f})")  # fmt: skip

    if cfg.md.steps > 0:
        md_frames, md_info = run_md(cfg, model, params, train, progress)
        finite = bool(np.isfinite(md_frames).all())
        stretch = analysis.max_bond_stretch(md_frames, model.priors.bonds, model.priors.bond_length) if (
            model.priors is not None and finite) else None  # fmt: skip
        stable = finite and (stretch is None or stretch < MAX_BOND_STRETCH)
        results = analysis.compare(ds.name, md_frames, ds.positions, ds.extras) if finite else {}
        analysis.plot_comparison(results, os.path.join(out, "md_comparison.png"),
                                 f"{ds.name}: CG MD ({md_info['simulated_ns']:.2f} ns) vs reference")  # fmt: skip
        np.savez_compressed(os.path.join(out, "md_trajectory.npz"), positions=md_frames.astype(np.float32))
        metrics["md"] = dict(md_info, stable=stable, finite=finite, max_bond_stretch=stretch,
                             js_divergence={k: v["js"] for k, v in results.items()})  # fmt: skip
        print("MD:", "stable" if stable else "UNSTABLE", f"(max bond stretch {stretch}),",
              ", ".join(f"JS[{k}] = {v['js']:.3f}" for k, v in results.items()))  # fmt: skip
    metrics["wall_seconds"] = time.perf_counter() - t_start
    with atomic_path(os.path.join(out, "metrics.json"), suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(metrics, f, indent=1, default=float)
    print(f"wrote {out}/params.npz, loss_curve.png, md_comparison.png, metrics.json "
          f"({metrics['wall_seconds']:.0f} s)")  # fmt: skip
    return metrics


def _prior_only_rmse(model: CGModel, ds: CGDataset) -> float:
    if model.priors is None or ds.num_frames == 0:
        return float("nan")
    prior = jax.jit(jax.vmap(jax.grad(model.priors.energy_fn(model.displacement))))
    f = -np.asarray(prior(jnp.asarray(ds.positions)))
    return float(np.sqrt(np.mean((f - ds.forces) ** 2)))
