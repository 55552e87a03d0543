"""YAML configuration of the training jobs, validated: a wrong key, a wrong type or a value out of range raises a
``ConfigError`` that names it (with its section), before any computation starts.

One config system for ``so3krates-hk train``, ``so3krates-hk finetune`` and the model slot's ``model.so3lr``
section: every section is a frozen dataclass whose fields carry their type and, through :func:`option`, their
range (``ge``, ``gt``, ``le``, ``lt``) or allowed values (``choices``); :func:`build_section` reads a mapping into
one, rejecting unknown keys, missing required keys, wrong types and values out of range, each by its dotted name.

Sections of ``so3krates-hk train`` (see ``so3krates_hk/configs/cg_chignolin.yaml``):

    data:      dataset, temperature, max_frames, split, block_frames, gap_frames, train_fraction, val_fraction, seed
    model:     r_cutoff, dr_threshold, hyperparameters (any SO3kratesConfig field)
    priors:    bonds, angles, repulsion, bond_cutoff, repulsion_exponent, repulsion_min_bonds
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


def option(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, choices=None, factory=None):
    """A dataclass field with its allowed range (``ge`` ≤ value, ``gt`` < value, value ≤ ``le``, value < ``lt``) or
    its allowed ``choices``; :func:`build_section` checks them. No default: the key is required."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices).items() if v is not None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{where} must be one of {list(meta['choices'])}; got {value!r}.")
    for key, ok, text in (("ge", lambda a, b: a >= b, "≥"), ("gt", lambda a, b: a > b, ">"),
                          ("le", lambda a, b: a <= b, "≤"), ("lt", lambda a, b: a < b, "<")):  # fmt: skip
        if key in meta and not ok(value, meta[key]):
            raise ConfigError(f"{where} must be {text} {meta[key]}; got {value!r}.")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "chignolin"  # a bundled CG dataset (chignolin, alanine_dipeptide) or a path to an .npz
    temperature: Optional[float] = option(None, gt=0)  # K: keep the frames at this temperature (files with several)
    max_frames: Optional[int] = option(None, gt=10)  # subsample (evenly) to at most this many frames
    split: str = option("blocks", choices=("blocks", "trajectory"))  # contiguous time blocks / whole trajectories
    block_frames: int = option(50, ge=1)  # frames per block (of the loaded, subsampled data) with split: blocks
    gap_frames: int = option(5, ge=0)  # frames dropped where a block follows a block of another set
    train_fraction: float = option(0.8, gt=0, lt=1)
    val_fraction: float = option(0.1, ge=0, lt=1)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    r_cutoff: float = option(10.0, gt=0)
    dr_threshold: float = option(1.0, ge=0)  # neighbour-list skin
    hyperparameters: dict = dataclasses.field(default_factory=dict)  # SO3kratesConfig fields


@dataclasses.dataclass(frozen=True)
class PriorConfig:
    bonds: bool = True
    angles: bool = True
    repulsion: bool = True
    bond_cutoff: float = option(4.3, gt=0)  # Å: mean distance below which two beads count as bonded
    repulsion_exponent: int = option(12, ge=1)
    repulsion_min_bonds: int = option(2, ge=2)  # pairs at least this many bonds apart feel the repulsion


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int = option(20, ge=1)
    batch_size: int = option(16, ge=1)
    learning_rate: float = option(1e-3, gt=0)
    final_learning_rate: float = option(1e-4, gt=0)  # cosine decay to this
    gradient_clip: float = option(10.0, gt=0)
    force_weight: float = option(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = option(1, ge=1)  # epochs
    scale_energy_by_force_rms: bool = True  # initial per-species energy scale = RMS of the training forces


@dataclasses.dataclass(frozen=True)
class MDConfig:
    replicas: int = option(4, ge=1)
    steps: int = option(50_000, ge=0)
    dt_fs: float = option(5.0, gt=0)
    friction_per_ps: float = option(1.0, gt=0)
    temperature: Optional[float] = option(None, gt=0)  # K; default: the dataset's
    record_every: int = option(100, ge=1)
    block: int = option(1000, ge=1)
    bead_mass: Optional[float] = option(None, gt=0)  # amu; default: the dataset's masses, else 100
    start_frame: int = option(0, ge=0)  # every replica starts here: the index of a frame in the dataset file
    priors_only: bool = True  # also run the same MD with the fitted priors alone (the baseline)


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    directory: str = "runs/cg"


@dataclasses.dataclass(frozen=True)
class SO3LRSlotConfig:
    """The model slot's ``model.so3lr`` section (their names; see :mod:`so3krates_hk.training.model_slot`)."""

    num_layers: int = option(ge=1)
    hidden_features: int = option(ge=1)
    num_heads: int = option(ge=1)
    max_degree: int = option(ge=1)
    n_radial_basis: int = option(ge=1)
    use_lr: bool = False
    lr_cutoff: float = option(12.0, ge=0)  # read only with use_lr: true
    bernstein_gamma: Optional[float] = option(None, gt=0)
    avg_num_neighbors: Optional[float] = option(None, gt=0)
    n_species: Optional[int] = option(None, ge=1)
    hyperparameters: dict = option(factory=dict)  # further SO3kratesConfig fields


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
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in section '{section}'; valid keys: {sorted(fields)}.")
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing:
        raise ConfigError(f"Missing key(s) {missing} in section '{section}'.")
    kwargs = {k: _check_type(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    for k, v in kwargs.items():
        _check_range(v, fields[k].metadata, f"{section}.{k}")
    return cls(**kwargs)


def _validate_values(cfg: TrainConfig) -> None:
    from so3krates_hk.config import SO3kratesConfig

    try:
        SO3kratesConfig.from_kwargs(**cfg.model.hyperparameters)
    except ValueError as e:
        raise ConfigError(f"model.hyperparameters: {e}") from None
    d, m = cfg.data, cfg.md
    checks = [
        (d.val_fraction < 1 - d.train_fraction + 1e-12, "data.val_fraction must be in [0, 1 − train_fraction)"),
        (d.gap_frames < d.block_frames, "data.gap_frames must be < data.block_frames"),
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
