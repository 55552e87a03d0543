"""so3krates_hk: SO3krates and SO3LR in dm-haiku + e3nn-jax + jax-md.

Public API:
    so3krates_neighborlist_pp  chemutils-style SO3krates factory (random init, explicit params)
    so3lr_neighborlist_pp      the full SO3LR energy (short- and long-range lists, total charge and spin)
    so3lr_to_jax_md            pretrained SO3LR bound into jax-md (neighbor_fn, neighbor_fn_lr, energy_fn)
    hessian                    the exact Hessian of SO3LR at an ase.Atoms, by automatic differentiation
    SO3kratesConfig            the transformer's hyperparameters
    SO3LRModel                 the model-slot class for frameworks that hold several backbones (alias SO3kratesModel)

The names are imported on first use, so ``import so3krates_hk`` (and ``so3krates-hk --help``) stays fast. Importing
the package does apply the one shim jax-md 0.2.8 needs at import time (``jax.random.KeyArray``); the others are in
:mod:`so3krates_hk._compat`, which every module that uses jax-md imports first.
"""

from __future__ import annotations

import importlib
from typing import Any

import jax as _jax

from so3krates_hk._cpu_runtime import apply_cpu_flags as _apply_cpu_flags

# XLA:CPU flags per jaxlib version: on 0.4.32-0.4.x the classic runtime, which compiles the scatter loops the
# default runtime interprets; on 0.8.1-0.10.x no YNNPACK fusions (slower for this model's per-pair work). No effect
# on other versions, or once JAX has run (see cpu_tuning and _cpu_runtime).
_apply_cpu_flags()

if not hasattr(_jax.random, "KeyArray"):  # jax-md 0.2.8 reads it at import time (see so3krates_hk._compat)
    _jax.random.KeyArray = _jax.Array

__version__ = "0.1.0"

_LAZY = {
    "SO3kratesConfig": "so3krates_hk.config",
    "SO3LR_AVG_NUM_NEIGHBORS": "so3krates_hk.factory",
    "so3krates_neighborlist_pp": "so3krates_hk.factory",
    "so3lr_neighborlist_pp": "so3krates_hk.factory",
    "so3lr_to_jax_md": "so3krates_hk.factory",
    "hessian": "so3krates_hk.hessian",
    "InputError": "so3krates_hk.validation",
    "UserError": "so3krates_hk.errors",
    "SO3LRConfig": "so3krates_hk.config",
    "SO3LRModel": "so3krates_hk.training.model_slot",
    "SO3kratesModel": "so3krates_hk.training.model_slot",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'so3krates_hk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
