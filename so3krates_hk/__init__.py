"""so3krates_hk: SO3krates and SO3LR in dm-haiku + e3nn-jax + jax-md.

Public API:
    so3krates_neighborlist_pp  chemutils-style SO3krates factory (random init, explicit params)
    so3lr_neighborlist_pp      the full SO3LR energy (short- and long-range lists, total charge and spin)
    so3lr_to_jax_md            pretrained SO3LR bound into jax-md (neighbor_fn, neighbor_fn_lr, energy_fn)
    SO3kratesConfig            the transformer's hyperparameters
"""

from so3krates_hk import _compat  # noqa: F401  (jax-md shims before anything imports jax_md)
from so3krates_hk.config import SO3kratesConfig
from so3krates_hk.factory import (
    SO3LR_AVG_NUM_NEIGHBORS,
    so3krates_neighborlist_pp,
    so3lr_neighborlist_pp,
    so3lr_to_jax_md,
)
from so3krates_hk.validation import InputError

__version__ = "0.1.0"

__all__ = [
    "SO3kratesConfig",
    "SO3LR_AVG_NUM_NEIGHBORS",
    "InputError",
    "so3krates_neighborlist_pp",
    "so3lr_neighborlist_pp",
    "so3lr_to_jax_md",
    "__version__",
]
