"""YAML configuration of the training jobs, validated: a wrong key or a wrong type raises a ``ConfigError`` that names
it (with its section), before any computation starts.

Sections of ``so3krates-hk train`` (see ``so3krates_hk/configs/cg_chignolin.yaml``):

    data:      dataset, temperature, max_frames, split, block_frames, gap_frames, train_fraction, val_fraction, seed
    model:     r_cutoff, dr_threshold, hyperparameters (any SO3kratesConfig field)
    priors:    bonds, angles, repulsion, bond_cutoff, repulsion_exponent
    training:  epochs, batch_size, learning_rate, final_learning_rate, gradient_clip, force_weight, seed,
               checkpoint_every, scale_energy_by_force_rms
    md:        replicas, steps, dt_fs, friction_per_ps, temperature, record_every, block, bead_mass, start_frame,
               priors_only
    output:    directory
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping, Optional, Union

import yaml
from so3krates_hk.errors import UserError


class ConfigError(UserError):
    """An invalid configuration; the message names the key."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "chignolin"  # a bundled CG dataset (chignolin, alanine_dipeptide) or a path to an .npz
    temperature: Optional[float] = None  # K: keep the frames at this temperature (files with several)
    max_frames: Optional[int] = None  # subsample (evenly) to at most this many frames
    split: str = "blocks"  # "blocks": contiguous time blocks of each trajectory; "trajectory": whole trajectories
    block_frames: int = 50  # frames per block (of the loaded, subsampled data) with split: blocks
    gap_frames: int = 5  # frames dropped where a block follows a block of another set (split: blocks)
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    r_cutoff: float = 10.0
    dr_threshold: float = 1.0  # neighbour-list skin
    hyperparameters: dict = dataclasses.field(default_factory=dict)  # SO3kratesConfig fields


@dataclasses.dataclass(frozen=True)
class PriorConfig:
    bonds: bool = True
    angles: bool = True
    repulsion: bool = True
    bond_cutoff: float = 4.3  # Å: mean distance below which two beads count as bonded
    repulsion_exponent: int = 12


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-4  # cosine decay to this
    gradient_clip: float = 10.0
    force_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 1  # epochs
    scale_energy_by_force_rms: bool = True  # initial per-species energy scale = RMS of the training forces


@dataclasses.dataclass(frozen=True)
class MDConfig:
    replicas: int = 4
    steps: int = 50_000
    dt_fs: float = 5.0
    friction_per_ps: float = 1.0
    temperature: Optional[float] = None  # K; default: the dataset's
    record_every: int = 100
    block: int = 1000
    bead_mass: Optional[float] = None  # amu; default: the dataset's masses, else 100
    start_frame: int = 0  # every replica starts here: the index of a frame in the dataset file
    priors_only: bool = True  # also run the same MD with the fitted priors alone (the baseline)


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    directory: str = "runs/cg"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    priors: PriorConfig = dataclasses.field(default_factory=PriorConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    md: MDConfig = dataclasses.field(default_factory=MDConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type annotation; ints are accepted for floats."""
    origin = typing.get_origin(annotation)
    if origin is Union:
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(value, inner, where)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number; got {value!r} ({type(value).__name__}).")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer; got {value!r} ({type(value).__name__}).")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false; got {value!r}.")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string; got {value!r}.")
        return value
    if annotation is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping; got {value!r}.")
        return dict(value)
    return value


def build_section(cls, values: Optional[Mapping[str, Any]], section: str):
    """A dataclass instance from a mapping, with unknown keys and wrong types reported as ``section.key``."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"Section '{section}' must be a mapping; got {values!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in section '{section}'; valid keys: {sorted(fields)}.")
    kwargs = {k: _check_type(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def _validate_values(cfg: TrainConfig) -> None:
    from so3krates_hk.config import SO3kratesConfig

    try:
        SO3kratesConfig.from_kwargs(**cfg.model.hyperparameters)
    except ValueError as e:
        raise ConfigError(f"model.hyperparameters: {e}") from None
    d, t, m = cfg.data, cfg.training, cfg.md
    checks = [
        (0 < d.train_fraction < 1, "data.train_fraction must be in (0, 1)"),
        (0 <= d.val_fraction < 1 - d.train_fraction + 1e-12, "data.val_fraction must be in [0, 1 − train_fraction)"),
        (d.max_frames is None or d.max_frames > 10, "data.max_frames must be > 10"),
        (d.split in ("blocks", "trajectory"), f"data.split must be 'blocks' or 'trajectory'; got {d.split!r}"),
        (d.block_frames >= 1 and 0 <= d.gap_frames < d.block_frames, "data.block_frames must be ≥ 1 and "
         "0 ≤ data.gap_frames < data.block_frames"),
        (d.temperature is None or d.temperature > 0, "data.temperature must be > 0"),
        (m.start_frame >= 0, "md.start_frame must be ≥ 0"),
        (cfg.model.r_cutoff > 0 and cfg.model.dr_threshold >= 0, "model.r_cutoff must be > 0, dr_threshold ≥ 0"),
        (t.epochs >= 1 and t.batch_size >= 1, "training.epochs and training.batch_size must be ≥ 1"),
        (t.learning_rate > 0 and t.final_learning_rate > 0, "training learning rates must be > 0"),
        (t.checkpoint_every >= 1, "training.checkpoint_every must be ≥ 1"),
        (m.steps >= 0 and m.replicas >= 1 and m.dt_fs > 0, "md.steps ≥ 0, md.replicas ≥ 1, md.dt_fs > 0"),
        (m.block % m.record_every == 0, "md.record_every must divide md.block"),
        (m.steps % m.block == 0, "md.steps must be a multiple of md.block"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message + ".")


def parse_config(raw: Optional[Mapping[str, Any]]) -> TrainConfig:
    """Validate a config mapping (e.g. parsed YAML) into a ``TrainConfig``."""
    raw = dict(raw or {})
    sections = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"Unknown section(s) {unknown}; valid sections: {sorted(sections)}.")
    hints = typing.get_type_hints(TrainConfig)
    cfg = TrainConfig(**{name: build_section(hints[name], raw.get(name), name) for name in sections})
    _validate_values(cfg)
    return cfg


def load_config(path: str) -> TrainConfig:
    """Read and validate a YAML config: a file, or the name of a bundled config (``cg_chignolin``)."""
    from so3krates_hk.configs import resolve

    path = resolve(path)
    with open(path) as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e}).") from None
    try:
        return parse_config(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
