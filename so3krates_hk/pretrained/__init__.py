"""Pretrained SO3LR, shipped with the package (converted from SO3LR's ``params.pkl``; MIT, see LICENSE-SO3LR).

    params, kwargs = so3krates_hk.pretrained.so3lr()
    init_fn, apply_fn = so3krates_hk.so3lr_neighborlist_pp(displacement, **kwargs)

``kwargs`` are the factory arguments the weights were trained with (cutoffs, n̄, physics scales).
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

from so3krates_hk.io import load_params

SO3LR_FILE = "so3lr.npz"


@functools.lru_cache(maxsize=None)
def _load_so3lr():
    with resources.as_file(resources.files("so3krates_hk.pretrained").joinpath(SO3LR_FILE)) as path:
        return load_params(path)


def so3lr() -> tuple[dict, dict[str, Any]]:
    """(params, factory keyword arguments) of the pretrained SO3LR, offline. Params are float32 numpy arrays."""
    params, metadata = _load_so3lr()
    return copy.deepcopy(params), dict(metadata["factory_kwargs"])


def so3lr_metadata() -> dict[str, Any]:
    """Everything recorded with the shipped weights: source checksum, original hyperparameters, factory kwargs."""
    return copy.deepcopy(_load_so3lr()[1])
