"""Hyperparameters of the SO3krates transformer, validated.

Names follow SO3LR's ``hyperparameters.json`` ("model" section) wherever it has the knob, so a user can pass those
values straight through; defaults are SO3LR's (``docs/model.md``, "Notation and hyperparameters").
:class:`SO3LRConfig` adds the physical terms of SO3LR. Unknown names and wrong types raise a ``ValueError`` that
names the key.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from so3krates_hk.layers.cutoff import CUTOFF_FUNCTIONS
from so3krates_hk.layers.dense import ACTIVATIONS
from so3krates_hk.layers.radial import BERNSTEIN_GAMMA


@dataclasses.dataclass(frozen=True)
class SO3kratesConfig:
    """SO3krates hyperparameters (defaults: SO3LR's SO3krates)."""

    num_layers: int = 3  # T, interaction layers
    num_features: int = 128  # F, width of x
    num_heads: int = 4  # H, heads of the invariant attention (F/H features each)
    degrees: tuple[int, ...] = (1, 2, 3, 4)  # 𝓛, degrees carried by ε
    num_radial_basis_fn: int = 32  # K, Bernstein basis functions
    bernstein_gamma: float = BERNSTEIN_GAMMA  # γ of u = exp(−γ d), in inverse length units
    cutoff_fn: str = "phys"  # φ: "phys" (SO3LR) or "cosine"
    activation_fn: str = "silu"
    layer_normalization_1: bool = True
    layer_normalization_2: bool = True
    residual_mlp_1: bool = True
    residual_mlp_2: bool = False
    energy_regression_dim: int = 128  # hidden width of the energy head
    energy_activation_fn: str = "silu"
    energy_learn_atomic_type_scales: bool = True
    energy_learn_atomic_type_shifts: bool = True
    use_charge_embed: bool = False  # docs/model.md, "Initial features", total charge Q
    use_spin_embed: bool = False  # docs/model.md, "Initial features", number of unpaired electrons S

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = {"int": int, "float": (int, float), "str": str, "bool": bool}.get(f.type)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"Hyperparameter {f.name!r} must be an int, got {value!r}.")
            if expected is not None and not isinstance(value, expected):
                raise ValueError(f"Hyperparameter {f.name!r} must be {f.type}, got {value!r}.")
        object.__setattr__(self, "degrees", tuple(self.degrees))
        degrees = self.degrees
        if not degrees or any(isinstance(l, bool) or not isinstance(l, int) or l < 1 for l in degrees):
            raise ValueError(f"Hyperparameter 'degrees' must be a non-empty sequence of ints ≥ 1, got {degrees!r}.")
        if list(degrees) != sorted(set(degrees)):
            raise ValueError(f"Hyperparameter 'degrees' must be strictly increasing, got {degrees!r}.")
        for name in ("num_layers", "num_features", "num_heads", "num_radial_basis_fn", "energy_regression_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"Hyperparameter {name!r} must be ≥ 1, got {getattr(self, name)}.")
        F = self.num_features
        if F % self.num_heads or F % len(degrees) or F % 4:
            raise ValueError(
                f"num_features={F} must be divisible by num_heads={self.num_heads}, by the number of degrees "
                f"({len(degrees)}) and by 4."
            )
        if self.cutoff_fn not in CUTOFF_FUNCTIONS:
            raise ValueError(f"Hyperparameter 'cutoff_fn' must be one of {sorted(CUTOFF_FUNCTIONS)}, got {self.cutoff_fn!r}.")
        for name in ("activation_fn", "energy_activation_fn"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"Hyperparameter {name!r} must be one of {sorted(ACTIVATIONS)}, got {getattr(self, name)!r}.")
        if self.bernstein_gamma <= 0:
            raise ValueError(f"Hyperparameter 'bernstein_gamma' must be > 0, got {self.bernstein_gamma}.")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "SO3kratesConfig":
        """Build from keyword arguments; an unknown key raises a ``ValueError`` listing the valid ones."""
        return cls(**check_keys(kwargs, cls, "hyperparameter"))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["degrees"] = list(self.degrees)
        return d


# n̄ of the pretrained SO3LR, to be used exactly (docs/model.md, "Notation and hyperparameters").
SO3LR_AVG_NUM_NEIGHBORS = 13.168995780096482


def _so3lr_transformer() -> SO3kratesConfig:
    return SO3kratesConfig(use_charge_embed=True, use_spin_embed=True)


@dataclasses.dataclass(frozen=True)
class SO3LRConfig:
    """The SO3LR energy (docs/model.md, "Physical terms", "Assembly and forces"): the transformer's hyperparameters and
    the physical terms.

    Defaults are the pretrained SO3LR's. Ranges are checked: cutoffs, n̄ and the two scales are > 0, and the
    dispersion switch [lr_cutoff − dispersion_damping, lr_cutoff] lies in (0, lr_cutoff].
    """

    so3krates: SO3kratesConfig = dataclasses.field(default_factory=_so3lr_transformer)
    r_cutoff: float = 4.5  # r_c, Å: transformer and ZBL
    avg_num_neighbors: float = SO3LR_AVG_NUM_NEIGHBORS  # n̄
    lr_cutoff: Optional[float] = 12.0  # r_lr, Å: Coulomb and dispersion; None: untruncated
    dispersion_damping: float = 2.0  # Δ_disp, Å
    zbl: bool = True
    electrostatics: bool = True
    dispersion: bool = True
    electrostatic_energy_scale: float = 4.0  # σ_e, Å
    dispersion_energy_scale: float = 1.2  # s_disp

    def __post_init__(self):
        if not isinstance(self.so3krates, SO3kratesConfig):
            raise ValueError(f"so3krates must be a SO3kratesConfig, got {type(self.so3krates).__name__}.")
        for name in ("zbl", "electrostatics", "dispersion"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name!r} must be a bool, got {getattr(self, name)!r}.")
        positive = ["r_cutoff", "avg_num_neighbors", "electrostatic_energy_scale", "dispersion_energy_scale"]
        if self.lr_cutoff is not None:
            positive += ["lr_cutoff", "dispersion_damping"]
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name!r} must be a number > 0, got {value!r}.")
            object.__setattr__(self, name, float(value))
        if self.lr_cutoff is not None and self.dispersion_damping > self.lr_cutoff:
            raise ValueError(f"dispersion_damping ({self.dispersion_damping}) must not exceed lr_cutoff "
                             f"({self.lr_cutoff}).")  # fmt: skip

    @property
    def long_range(self) -> bool:
        """Whether any term needs the long-range list."""
        return self.electrostatics or self.dispersion


def check_keys(kwargs: Mapping[str, Any], schema, what: str) -> dict[str, Any]:
    """Reject keys that are not fields of the dataclass ``schema``."""
    valid = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise ValueError(f"Unknown {what}(s) {unknown}; valid names are {sorted(valid)}.")
    return dict(kwargs)
