"""``so3krates-hk finetune --config finetune_aspirin``: fine-tune the pretrained SO3LR with chemtrain.

1. Read energies and forces from an extended-XYZ file (ASE); all frames must share one set of atomic numbers.
2. Start from the shipped SO3LR weights. Optionally fit a constant per-atom energy shift to the data first (the
   reference's total energies sit on another zero than SO3LR's), folded into the head's ``energy_offset``.
3. Train with chemtrain's ``ForceMatching`` on energies and forces, and, when the data carry them and their weights
   are positive, on dipole moments (``training.dipole_weight``; e·Å, ``info["dipole"]`` or the calculator's
   ``dipole``; the model's μ = Σ q_i (r_i − R_com) of its partial charges, ``so3krates_hk.physics.dipole``) and
   Hirshfeld ratios (``training.hirshfeld_weight``; ``arrays["hirshfeld_ratios"]``). The loss is
   γ_U·MSE(U) + γ_F·MSE(F) + γ_μ·MSE(μ) + γ_h·MSE(h). The parts listed in ``model.freeze``
   (glob patterns on Haiku module paths, e.g. ``"so3krates/*"``) are frozen with an optax mask
   (``optax.multi_transform`` with ``set_to_zero``), so they stay bit-identical.
4. Report force RMSE before and after on the test split, check the frozen leaves, export the result in the safe
   ``.npz`` format (``finetuned.npz``, metadata as the shipped weights), load it back and check it reproduces the
   trained energies.
5. ``training.committee: M`` trains M members, with seeds ``seed``, ``seed + 1``, … (the order of the training
   batches; every member starts from the same weights), into ``<output>/member_<m>/``, and lists them in
   ``committee.json`` (evaluate them together with ``so3krates-hk eval --model …`` or ``SO3LRCalculator``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import io
import json
import os
import time
import typing
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from so3krates_hk import pretrained
from so3krates_hk._cpu_runtime import serial_loops
from so3krates_hk._compat import jax_md, partition
from so3krates_hk.factory import so3lr_neighborlist_pp
from so3krates_hk.io import atomic_path, load_params, save_params
from so3krates_hk.training.config import ConfigError, build_section, option


@dataclasses.dataclass(frozen=True)
class FinetuneData:
    xyz: str = "aspirin_gfn2"  # a bundled set (so3krates_hk/data/finetune/<name>.xyz) or a path
    train_fraction: float = option(0.7, gt=0, lt=1)
    val_fraction: float = option(0.15, ge=0, lt=1)
    max_frames: Optional[int] = option(None, ge=2)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class FinetuneModel:
    freeze: list = dataclasses.field(default_factory=lambda: ["so3krates/*", "zbl_repulsion"])
    fit_energy_shift: bool = True
    total_charge: float = 0.0
    num_unpaired_electrons: float = 0.0


@dataclasses.dataclass(frozen=True)
class FinetuneTraining:
    epochs: int = option(5, ge=1)
    batch_size: int = option(8, ge=1)
    learning_rate: float = option(1e-4, gt=0)
    energy_weight: float = option(0.01, ge=0)
    force_weight: float = option(1.0, ge=0)
    dipole_weight: float = option(0.0, ge=0)  # γ_μ: fit dipoles (needs them in the data)
    hirshfeld_weight: float = option(0.0, ge=0)  # γ_h: fit Hirshfeld ratios (needs them in the data)
    seed: int = 0
    committee: int = option(1, ge=1)  # members trained with seeds seed, seed + 1, …


@dataclasses.dataclass(frozen=True)
class FinetuneOutput:
    directory: str = "runs/finetune"


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    data: FinetuneData = dataclasses.field(default_factory=FinetuneData)
    model: FinetuneModel = dataclasses.field(default_factory=FinetuneModel)
    training: FinetuneTraining = dataclasses.field(default_factory=FinetuneTraining)
    output: FinetuneOutput = dataclasses.field(default_factory=FinetuneOutput)


def parse_finetune_config(raw) -> FinetuneConfig:
    raw = dict(raw or {})
    hints = typing.get_type_hints(FinetuneConfig)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"Unknown section(s) {unknown}; valid sections: {sorted(hints)}.")
    cfg = FinetuneConfig(**{k: build_section(hints[k], raw.get(k), k) for k in hints})
    if not all(isinstance(p, str) for p in cfg.model.freeze):
        raise ConfigError("model.freeze must be a list of glob patterns (strings).")
    if cfg.data.train_fraction + cfg.data.val_fraction >= 1:
        raise ConfigError("data.train_fraction + data.val_fraction must be < 1 (the rest is the test split).")
    return cfg


def load_finetune_config(path: str) -> FinetuneConfig:
    import yaml

    from so3krates_hk.configs import resolve

    path = resolve(path)
    with open(path) as f:
        try:
            return parse_finetune_config(yaml.safe_load(f))
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


# ------------------------------------------------------------------------------------------------- freezing


def freeze_labels(params, patterns: Sequence[str]) -> dict:
    """{module: {name: "frozen" | "trainable"}}: a module is frozen when its path matches any glob pattern."""
    return {
        module: {name: "frozen" if any(fnmatch.fnmatchcase(module, p) for p in patterns) else "trainable"
                 for name in leaves}
        for module, leaves in params.items()
    }  # fmt: skip


def masked_optimizer(optimizer: optax.GradientTransformation, params, patterns: Sequence[str]):
    """``optimizer`` on the trainable leaves, zero updates on the frozen ones."""
    labels = freeze_labels(params, patterns)
    return optax.multi_transform({"trainable": optimizer, "frozen": optax.set_to_zero()}, labels)


# ------------------------------------------------------------------------------------------------- data


def read_xyz_dataset(path: str, max_frames: Optional[int] = None) -> dict[str, np.ndarray]:
    """{"R": (T, N, 3), "U": (T,), "F": (T, N, 3), "Z": (N,)} from an extended-XYZ file with energies and forces;
    with "dipole" (T, 3) and "hirshfeld" (T, N) when every frame carries them (see the module docstring)."""
    import ase.io

    if not os.path.exists(path):
        from importlib import resources

        bundled = resources.files("so3krates_hk.data").joinpath("finetune", f"{path}.xyz")
        if not os.path.exists(str(bundled)):
            raise FileNotFoundError(f"{path}: no such file, and no bundled fine-tuning set of that name.")
        path = str(bundled)
    frames = ase.io.read(path, index=":")
    if max_frames is not None:
        frames = frames[:max_frames]
    Z = frames[0].get_atomic_numbers()
    for k, a in enumerate(frames):
        if not np.array_equal(a.get_atomic_numbers(), Z):
            raise ValueError(f"{path}: frame {k} has different atoms; fine-tuning needs one composition.")
    R = np.stack([a.get_positions() for a in frames])
    U = np.array([a.get_potential_energy() for a in frames])
    F = np.stack([a.get_forces() for a in frames])
    data = {"R": R, "U": U, "F": F, "Z": Z.astype(np.int32)}
    from so3krates_hk.evaluate import references

    refs = [references(a) for a in frames]
    if all("dipole" in r for r in refs):
        data["dipole"] = np.stack([r["dipole"].reshape(3) for r in refs])
    if all("hirshfeld_ratios" in r for r in refs):
        data["hirshfeld"] = np.stack([r["hirshfeld_ratios"].reshape(len(Z)) for r in refs])
    return data


def extra_targets(t: "FinetuneTraining", data: dict) -> dict[str, float]:
    """{data key: weight} of the dipole and Hirshfeld targets switched on; a positive weight without the data
    raises ConfigError."""
    targets = {}
    for key, weight, what in (("dipole", t.dipole_weight, "dipoles (info['dipole'])"),
                              ("hirshfeld", t.hirshfeld_weight, "Hirshfeld ratios (arrays['hirshfeld_ratios'])")):  # fmt: skip
        if weight > 0:
            if key not in data:
                raise ConfigError(f"training.{key}_weight > 0, but not every frame of the data carries {what}.")
            targets[key] = float(weight)
    return targets


# ------------------------------------------------------------------------------------------------- the job


def make_energy_template(Z, total_charge=0.0, num_unpaired_electrons=0.0, r_cutoff=4.5, lr_cutoff=12.0, **kwargs):
    """(energy_fn_template, neighbor_fn, apply_fn): SO3LR in free space, the long-range list updated inside."""
    displacement, _ = jax_md.space.free()
    sr_fn = partition.neighbor_list(displacement, 1.0, r_cutoff, dr_threshold=0.5, format=partition.Sparse,
                                    disable_cell_list=True, capacity_multiplier=1.5)  # fmt: skip
    lr_fn = partition.neighbor_list(displacement, 1.0, lr_cutoff, dr_threshold=0.5, format=partition.OrderedSparse,
                                    disable_cell_list=True, capacity_multiplier=1.5)  # fmt: skip
    _, apply_fn = so3lr_neighborlist_pp(displacement, r_cutoff=r_cutoff, lr_cutoff=lr_cutoff, **kwargs)
    _, apply_all = so3lr_neighborlist_pp(displacement, r_cutoff=r_cutoff, lr_cutoff=lr_cutoff, mode="all", **kwargs)
    Z = jnp.asarray(Z, jnp.int32)

    def template(params, lr_init):
        def energy_fn(position, neighbor, mode=None, **kw):
            """The energy; with ``mode="with_aux"`` (chemtrain) also {"dipole", "hirshfeld"} for extra targets."""
            args = (params, position, neighbor, lr_init.update(position), Z, total_charge, num_unpaired_electrons)
            if mode == "with_aux":
                out = apply_all(*args, **kw)
                return out["energy"], {"dipole": out["dipole"], "hirshfeld": out["hirshfeld_ratios"]}
            return apply_fn(*args, **kw)

        return energy_fn

    return template, sr_fn, lr_fn


def run(cfg: FinetuneConfig, progress: bool = True, output: Optional[str] = None) -> dict:
    """Fine-tune (one model, or ``training.committee`` members with consecutive seeds); returns the metrics."""
    out = output or cfg.output.directory
    members = cfg.training.committee
    if members == 1:
        return _run_one(cfg, progress, out)
    os.makedirs(out, exist_ok=True)
    results = []
    for m in range(members):
        training = dataclasses.replace(cfg.training, seed=cfg.training.seed + m, committee=1)
        print(f"committee member {m + 1}/{members} (seed {training.seed})")
        results.append(_run_one(dataclasses.replace(cfg, training=training), progress, os.path.join(out, f"member_{m}")))
    summary = dict(members=[r["params"] for r in results], seeds=[cfg.training.seed + m for m in range(members)],
                   after=[r["after"] for r in results])  # fmt: skip
    with atomic_path(os.path.join(out, "committee.json"), suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1, default=float)
    return dict(summary, params=[r["params"] for r in results],
                frozen_bit_identical=all(r["frozen_bit_identical"] for r in results),
                export_reload_matches=all(r["export_reload_matches"] for r in results))  # fmt: skip


def _run_one(cfg: FinetuneConfig, progress: bool, out: str) -> dict:
    from chemtrain.trainers import ForceMatching
    from jax_md_mod import custom_quantity
    from tqdm.auto import tqdm

    from so3krates_hk.training.data import split_indices

    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    data = read_xyz_dataset(cfg.data.xyz, cfg.data.max_frames)
    extra = extra_targets(cfg.training, data)
    T, N = data["R"].shape[:2]
    tr, va, te = split_indices(T, cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.seed)
    params, kwargs = pretrained.so3lr()
    params = jax.tree_util.tree_map(jnp.asarray, params)
    kwargs = {k: v for k, v in kwargs.items()}
    r_cutoff, lr_cutoff = kwargs.pop("r_cutoff"), kwargs.pop("lr_cutoff")
    m = cfg.model
    template, sr_fn, lr_fn = make_energy_template(data["Z"], m.total_charge, m.num_unpaired_electrons, r_cutoff,
                                                  lr_cutoff, **kwargs)  # fmt: skip
    R0 = jnp.asarray(data["R"][0])
    sr0, lr0 = sr_fn.allocate(R0), lr_fn.allocate(R0)

    @jax.jit
    def one(p, r):  # parameters as an argument: one compilation for every prediction below
        energy_fn = template(p, lr0)
        (e, a), g = jax.value_and_grad(lambda x: energy_fn(x, sr0.update(x), mode="with_aux"), has_aux=True)(r)
        return e, -g, a

    def predict(p, idx, aux=False):
        with serial_loops(N):  # small structures: see cpu_tuning
            es, fs, auxes = zip(*(one(p, jnp.asarray(data["R"][i])) for i in idx))
        if aux:
            return np.asarray(es), np.asarray(fs), {k: np.stack([a[k] for a in auxes]) for k in auxes[0]}
        return np.asarray(es), np.asarray(fs)

    e_before, f_before, aux_before = predict(params, np.arange(T), aux=True)
    if m.fit_energy_shift:  # one constant per atom: a single composition makes per-element shifts unidentifiable
        shift = float(np.mean(data["U"][tr] - e_before[tr])) / N
        offsets = params["energy_head"]["energy_offset"]
        present = np.unique(data["Z"])
        params["energy_head"]["energy_offset"] = offsets.at[present].add(shift)
        e_before = e_before + shift * N
    rmse = lambda a, b: float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))  # noqa: E731
    before = dict(force_rmse=rmse(f_before[te], data["F"][te]), energy_rmse=rmse(e_before[te], data["U"][te]))
    for key in extra:
        before[f"{key}_rmse"] = rmse(aux_before[key][te], data[key][te])

    t = cfg.training
    optimizer = masked_optimizer(optax.adam(t.learning_rate), params, m.freeze)
    trainer = ForceMatching(
        params, optimizer, lambda p: template(p, lr0), sr0,
        gammas={"U": t.energy_weight, "F": t.force_weight, **extra}, energy_fn_has_aux=bool(extra),
        additional_targets={key: custom_quantity.get_aux(key) for key in extra} or None,
        batch_per_device=min(t.batch_size, len(tr)), batch_cache=1, log_file=os.path.join(out, "chemtrain.log"),
        checkpoint_path=os.path.join(out, "chemtrain"),
    )  # fmt: skip
    subset = lambda idx: {k: data[k][idx] for k in ("R", "U", "F", *extra)}  # noqa: E731
    trainer.set_dataset(subset(tr), stage="training", shuffle=True, seed=t.seed)
    if len(va):
        trainer.set_dataset(subset(va), stage="validation", include_all=True)
    history = {"train_force_rmse": [], "val_force_rmse": []}
    for _ in tqdm(range(t.epochs), desc="fine-tuning", unit="epoch", disable=not progress):
        # small batches compile chemtrain's update step with serial loops (cpu_tuning; as in the CG training job)
        with serial_loops(min(t.batch_size, len(tr)) * N), contextlib.redirect_stdout(io.StringIO()):
            trainer.train(1)  # chemtrain echoes its epoch log; it still goes to log_file
        bpe = max(1, len(tr) // min(t.batch_size, len(tr)))
        history["train_force_rmse"].append(float(np.sqrt(np.mean(trainer.train_target_losses["F"][-bpe:]))))
        if len(va):
            history["val_force_rmse"].append(float(np.sqrt(trainer.val_target_losses["F"][-1])))
    tuned = trainer.params
    e_after, f_after, aux_after = predict(tuned, np.arange(T), aux=True)
    after = dict(force_rmse=rmse(f_after[te], data["F"][te]), energy_rmse=rmse(e_after[te], data["U"][te]))
    for key in extra:
        after[f"{key}_rmse"] = rmse(aux_after[key][te], data[key][te])

    labels = freeze_labels(params, m.freeze)
    frozen_identical = all(
        np.array_equal(np.asarray(params[mod][name]), np.asarray(tuned[mod][name]))
        for mod, leaves in labels.items() for name, lab in leaves.items() if lab == "frozen"
    )  # fmt: skip
    n_frozen = sum(lab == "frozen" for leaves in labels.values() for lab in leaves.values())
    changed = sum(
        not np.array_equal(np.asarray(params[mod][name]), np.asarray(tuned[mod][name]))
        for mod, leaves in labels.items() for name, lab in leaves.items() if lab == "trainable"
    )  # fmt: skip

    path = os.path.join(out, "finetuned.npz")
    metadata = pretrained.so3lr_metadata()
    metadata.update(finetuned_on=str(cfg.data.xyz), freeze=list(m.freeze), config=dataclasses.asdict(cfg))
    save_params(path, jax.device_get(tuned), metadata)
    reloaded, _ = load_params(path)
    e_reload, _ = predict(jax.tree_util.tree_map(jnp.asarray, reloaded), te[:5])
    export_ok = bool(np.allclose(e_reload, e_after[te[:5]], rtol=0, atol=1e-5))

    metrics = dict(
        frames=dict(train=len(tr), validation=len(va), test=len(te)), atoms=N, before=before, after=after,
        targets=dict(U=t.energy_weight, F=t.force_weight, **extra), seed=t.seed,
        history=history, frozen_leaves=n_frozen, frozen_bit_identical=frozen_identical,
        trainable_leaves_changed=changed, export_reload_matches=export_ok, params=path,
        wall_seconds=time.perf_counter() - t0,
    )  # fmt: skip
    with atomic_path(os.path.join(out, "metrics.json"), suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(metrics, f, indent=1, default=float)
    print(f"force RMSE on the test split: {before['force_rmse']:.4f} → {after['force_rmse']:.4f} eV/Å; "
          f"energy RMSE {before['energy_rmse']:.4f} → {after['energy_rmse']:.4f} eV")  # fmt: skip
    for key, unit in (("dipole", "e·Å"), ("hirshfeld", "")):
        if key in extra:
            print(f"{key} RMSE on the test split: {before[key + '_rmse']:.4f} → {after[key + '_rmse']:.4f} {unit}")
    print(f"{n_frozen} frozen leaves bit-identical: {frozen_identical}; {changed} trainable leaves changed; "
          f"exported {path} and reloaded: {'matches' if export_ok else 'MISMATCH'}")  # fmt: skip
    return metrics
