"""``so3krates-hk train --config cg_chignolin``: CG force matching with chemtrain, then CG MD.

1. Load the CG dataset, split it (seeded) into train, validation and test by contiguous time blocks or by whole
   trajectories (never single frames of a time series), fit the priors on the training frames (those of the
   equilibrium runs where the file marks frames sampled under a bias: ``equilibrium``).
2. Train SO3krates from random init with chemtrain's ``ForceMatching``; the ``energy_fn_template`` is SO3krates
   plus the priors. A progress bar, and per-epoch train and validation force RMSE.
3. Write ``params.npz`` (safe format: the best-validation parameters and the priors), ``loss_curve.png`` and
   ``metrics.json``; checkpoints every ``training.checkpoint_every`` epochs (``checkpoint.npz``), from which
   ``--resume`` continues exactly where an interrupted run stopped (same batches, same updates).
4. Run CG Langevin MD in jax-md (``so3krates_hk.md``) twice with identical settings, starts and seeds: with the
   trained model (SO3krates + priors, ``metrics["md"]``) and with the fitted priors alone (the baseline,
   ``metrics["md_priors_only"]``). Every replica starts from the one frame ``md.start_frame`` (for chignolin an
   unfolded one), so the divergences measure each model's ensemble, not its starting points. Compare both with the
   reference data (its equilibrium frames): histograms with their Jensen–Shannon divergences (``md_comparison.png``),
   and for a protein with a folded reference the folded fraction against simulated time per replica
   (``folded_fraction.png``). Check stability: no NaN, no bond stretched beyond 1.5× its reference length. A run that
   blows up stops its replica there, and the job still writes ``metrics.json`` (``stable: false``) and the figures.
"""

from __future__ import annotations

import contextlib
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

from so3krates_hk._cpu_runtime import serial_loops
from so3krates_hk.io import atomic_path
from so3krates_hk.md import MDSettings, Potential, Simulation, SimulationError, time_unit_fs
from so3krates_hk.training import analysis
from so3krates_hk.training.cg_model import CGModel, build_cg_model
from so3krates_hk.training.config import ConfigError, TrainConfig
from so3krates_hk.training.data import CGDataset, load_cg_dataset, split_frames

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
        self.batch_atoms = self.batch_size * train.positions.shape[1]  # beads in one batch
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
        # chemtrain compiles its update step in the first epoch; batches of up to SERIAL_LOOPS_MAX_ATOMS beads compile
        # with serial loops (cpu_tuning; the chemtrain environment's XLA:CPU, same numbers; 1.31× per epoch on the
        # main job, benchmarks/train_serial_loops.py). chemtrain echoes its epoch log (it still goes to log_file).
        with serial_loops(self.batch_atoms), contextlib.redirect_stdout(io.StringIO()):
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


def run_md(cfg: TrainConfig, model: CGModel, params, start: np.ndarray, ds: CGDataset, progress: bool = True,
           priors_only: bool = False) -> tuple[list, dict]:  # fmt: skip
    """CG Langevin MD, ``md.replicas`` independent runs from the one configuration ``start`` (N, 3), replica r with
    seed ``training.seed + 1000 + r``; with the trained model, or with the fitted priors alone (``priors_only``).

    Returns (a list of per-replica frame arrays, info). A replica that blows up (NaN, runaway neighbour lists) stops
    there: its frames up to the last good block are kept and ``info["blown_up"]`` says where.
    """
    from tqdm.auto import tqdm

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
    settings = MDSettings(ensemble="nvt_langevin", dt=m.dt_fs / unit_fs, kT=kT,
                          gamma=m.friction_per_ps * unit_fs / 1000, block=m.block, record_every=m.record_every,
                          seed=cfg.training.seed)  # fmt: skip
    if priors_only:
        if model.priors is None:
            raise ConfigError("md.priors_only needs priors (switch on priors.bonds, angles or repulsion).")
        prior = model.priors.energy_fn(model.displacement)
        potential, lists = Potential(lambda max_edges: (lambda r, **kw: prior(r), None)), {}
    else:

        def build(max_edges):
            apply_fn = model.build(max_edges)
            return model.energy_fn_template(params, apply_fn), lambda r, neighbor: apply_fn.count_edges(r, neighbor)

        potential, lists = Potential(build, max_edges=model.max_edges), {"neighbor": model.neighbor_fn}
    sim = Simulation(potential, lists, model.shift, mass, settings)
    label = "MD, priors alone" if priors_only else "MD, SO3krates + priors"
    bar = tqdm(total=m.replicas * (m.steps // m.block), desc=label, unit="block", disable=not progress)
    replicas, blown_up, t0 = [], [], time.perf_counter()
    for r in range(m.replicas):
        state = sim.init_state(jnp.asarray(start, jnp.float32), seed=cfg.training.seed + 1000 + r)
        frames = []
        for b in range(m.steps // m.block):
            try:
                state, traj = sim.run(state, steps=m.block)
            except SimulationError as e:
                blown_up.append(dict(replica=r, step=b * m.block, error=str(e)))
                bar.update(m.steps // m.block - b)
                break
            frames.append(traj.positions)
            bar.update(1)
        replicas.append(np.concatenate(frames) if frames else np.zeros((0,) + np.shape(start), np.float32))
    bar.close()
    info = dict(
        replicas=m.replicas, steps_per_replica=m.steps, dt_fs=m.dt_fs, temperature_K=temperature,
        bead_mass_amu=np.asarray(mass).ravel().tolist(), start_frame=m.start_frame, seeds=[
            cfg.training.seed + 1000 + r for r in range(m.replicas)],
        frames=int(sum(len(f) for f in replicas)), seconds=time.perf_counter() - t0,
        reallocations=sim.reallocations, simulated_ns=m.replicas * m.steps * m.dt_fs * 1e-6, blown_up=blown_up,
    )  # fmt: skip
    return replicas, info


def md_report(cfg: TrainConfig, model: CGModel, replicas: list, info: dict, ds: CGDataset) -> tuple[dict, dict]:
    """(metrics of one MD run, its histograms): stability, divergences against the reference ``ds``, and for a
    protein with a folded reference the folded fraction against time per replica."""
    finite_reps = [f for f in replicas if len(f) and np.isfinite(f).all()]
    frames = np.concatenate(finite_reps) if finite_reps else np.zeros((0,) + ds.positions.shape[1:])
    finite = all(np.isfinite(f).all() for f in replicas) and not info["blown_up"]
    stretch = None
    if model.priors is not None and len(frames):
        stretch = analysis.max_bond_stretch(frames, model.priors.bonds, model.priors.bond_length)
    complete = all(len(f) == cfg.md.steps // cfg.md.record_every for f in replicas)
    stable = finite and complete and (stretch is None or stretch < MAX_BOND_STRETCH)
    results = analysis.compare(ds.name, frames, ds.reference().positions, ds.extras) if len(frames) else {}
    out = dict(info, stable=stable, finite=finite, max_bond_stretch=stretch,
               js_divergence={k: v["js"] for k, v in results.items()})  # fmt: skip
    if "reference_structure" in ds.extras and "phi_psi_atoms" not in ds.extras:
        ref = np.asarray(ds.extras["reference_structure"], np.float64)
        frame_ps = cfg.md.record_every * cfg.md.dt_fs * 1e-3
        out["folded_fraction_vs_time"] = analysis.folded_fraction_vs_time(replicas, ref, frame_ps)
        out["folded_fraction"] = float(np.mean(analysis.native_contacts(frames, ref) >= analysis.FOLDED_Q)) if len(
            frames) else None  # fmt: skip
    return out, results


# ---------------------------------------------------------------------------------------------------- the job


def run(cfg: TrainConfig, resume: bool = False, progress: bool = True, output: Optional[str] = None) -> dict:
    """The whole job (see the module docstring). Returns the metrics written to ``metrics.json``."""
    from tqdm.auto import tqdm

    out = output or cfg.output.directory
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()
    d = cfg.data
    ds = load_cg_dataset(d.dataset, d.max_frames, d.temperature)
    tr_idx, va_idx, te_idx = split_frames(ds, d.train_fraction, d.val_fraction, d.seed, d.split, d.block_frames,
                                          d.gap_frames)  # fmt: skip
    train, val, test = ds.subset(tr_idx), ds.subset(va_idx), ds.subset(te_idx)
    start = md_start(cfg, ds) if cfg.md.steps > 0 else None
    pr = cfg.priors
    priors = None
    if pr.bonds or pr.angles or pr.repulsion:
        priors = dict(bonds=pr.bonds, angles=pr.angles, repulsion=pr.repulsion, bond_cutoff=pr.bond_cutoff,
                      repulsion_exponent=pr.repulsion_exponent, repulsion_min_bonds=pr.repulsion_min_bonds)  # fmt: skip
    # priors by Boltzmann inversion: from the training frames of the reference ensemble (no biased frames)
    model = build_cg_model(train.reference().positions, ds.species, ds.kT, cfg.model.r_cutoff, cfg.model.dr_threshold,
                           cfg.model.hyperparameters, priors)  # fmt: skip
    print(f"{ds.name}: {ds.num_frames} frames of {len(ds.species)} beads at {ds.temperature:g} K "
          f"(split by {d.split}: train {train.num_frames}, validation {val.num_frames}, test {test.num_frames}); "
          f"edge capacity {model.max_edges}, n̄ = {model.avg_num_neighbors:.2f}")  # fmt: skip

    fm = ForceMatchingRun(cfg, model, train, val, out)
    ckpt = os.path.join(out, CHECKPOINT)
    if resume and os.path.exists(ckpt):
        fm.resume(ckpt)
        print(f"resumed from {ckpt} at epoch {fm.epoch}")
    bar = tqdm(total=cfg.training.epochs, initial=fm.epoch, desc="force matching", unit="epoch", disable=not progress)
    first = True
    while fm.epoch < cfg.training.epochs:
        if first:  # the first epoch compiles chemtrain's update step: say so, with its time
            t0 = time.perf_counter()
            bar.write("compiling the force-matching step (first epoch) …")
        fm.train_epoch()
        if first:
            bar.write(f"compiled and trained the first epoch in {time.perf_counter() - t0:.1f} s")
            first = False
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
        title = f"{ds.name}: CG MD ({cfg.md.replicas} × {cfg.md.steps * cfg.md.dt_fs * 1e-3:g} ps from frame " \
                f"{cfg.md.start_frame}) vs reference"  # fmt: skip
        reps, info = run_md(cfg, model, params, start, train, progress)
        metrics["md"], results = md_report(cfg, model, reps, info, ds)
        np.savez_compressed(os.path.join(out, "md_trajectory.npz"),
                            positions=np.concatenate(reps).astype(np.float32),
                            replica=np.concatenate([np.full(len(f), r) for r, f in enumerate(reps)]))  # fmt: skip
        baseline = {}
        if cfg.md.priors_only:
            reps0, info0 = run_md(cfg, model, params, start, train, progress, priors_only=True)
            metrics["md_priors_only"], baseline = md_report(cfg, model, reps0, info0, ds)
        analysis.plot_comparison(results, os.path.join(out, "md_comparison.png"), title, baseline)
        if "folded_fraction_vs_time" in metrics["md"]:
            curves = {"SO3krates + priors": metrics["md"]["folded_fraction_vs_time"]}
            if "md_priors_only" in metrics:
                curves["priors alone"] = metrics["md_priors_only"]["folded_fraction_vs_time"]
            ref = np.asarray(ds.extras["reference_structure"])
            ref_fraction = float(np.mean(analysis.native_contacts(ds.reference().positions, ref) >= analysis.FOLDED_Q))
            metrics["reference_folded_fraction"] = ref_fraction
            analysis.plot_folded_fraction(curves, os.path.join(out, "folded_fraction.png"), ref_fraction,
                                          f"{ds.name}: folded fraction, all replicas from frame {cfg.md.start_frame}")
        for key, name in (("md", "SO3krates + priors"), ("md_priors_only", "priors alone")):
            if key in metrics:
                mm = metrics[key]
                js = ", ".join(f"JS[{k}] = {v:.3f}" for k, v in mm["js_divergence"].items())
                print(f"MD, {name}:", "stable" if mm["stable"] else "UNSTABLE",
                      f"(max bond stretch {mm['max_bond_stretch']}),", js)  # fmt: skip
    metrics["wall_seconds"] = time.perf_counter() - t_start
    with atomic_path(os.path.join(out, "metrics.json"), suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(metrics, f, indent=1, default=float)
    written = ["params.npz", "loss_curve.png"] + [f for f in ("md_comparison.png", "folded_fraction.png")
                                                  if os.path.exists(os.path.join(out, f))]  # fmt: skip
    print(f"wrote {out}/{', '.join(written)}, metrics.json ({metrics['wall_seconds']:.0f} s)")
    return metrics


def _prior_only_rmse(model: CGModel, ds: CGDataset) -> float:
    if model.priors is None or ds.num_frames == 0:
        return float("nan")
    prior = jax.jit(jax.vmap(jax.grad(model.priors.energy_fn(model.displacement))))
    f = -np.asarray(prior(jnp.asarray(ds.positions)))
    return float(np.sqrt(np.mean((f - ds.forces) ** 2)))


def md_start(cfg: TrainConfig, ds: CGDataset) -> np.ndarray:
    """The configuration every MD replica starts from: frame ``md.start_frame`` of the dataset file."""
    full = load_cg_dataset(cfg.data.dataset, None, cfg.data.temperature)
    hit = np.nonzero(full.extras["frame_index"] == cfg.md.start_frame)[0]
    if len(hit) == 0:
        raise ConfigError(f"md.start_frame {cfg.md.start_frame} is not a frame of {full.name} "
                          f"(it has {int(full.extras['frame_index'].max()) + 1} frames"
                          + (f"; those at {cfg.data.temperature:g} K are kept" if cfg.data.temperature else "") + ").")
    return np.asarray(full.positions[hit[0]], np.float32)
