"""Committees: several parameter sets of one SO3LR architecture, evaluated in one batched call.

    params, kwargs, members = load_model(["member0.npz", "member1.npz", "member2.npz", "member3.npz"])
    # params: every leaf has a leading axis of length ``members``; jax.vmap over it evaluates all members at once.

The committee prediction is the mean over members, its uncertainty the spread (population standard deviation,
ddof = 0) over members:

    Ē = (1/M) Σ_m E_m,   σ_E = sqrt((1/M) Σ_m (E_m − Ē)²)

and the same per force component for F̄ and σ_F. Members must share the architecture (the same parameter tree and
shapes) and the factory arguments (cutoffs, physics terms); they differ in their weights, e.g. fine-tuned from
different seeds (``so3krates-hk finetune`` with ``training.committee``).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import jax
import numpy as np

from so3krates_hk.errors import UserError

ModelSpec = Union[None, str, os.PathLike, dict, Sequence[Union[str, os.PathLike, dict]]]


def _tree_signature(params) -> list:
    leaves, treedef = jax.tree_util.tree_flatten(params)
    return [treedef, [np.shape(x) for x in leaves]]


def stack_params(members: Sequence[dict]) -> dict:
    """One tree whose leaves have a leading member axis; raises UserError if the trees or shapes differ."""
    members = list(members)
    if not members:
        raise UserError("A committee needs at least one parameter set.")
    first = _tree_signature(members[0])
    for k, p in enumerate(members[1:], 1):
        if _tree_signature(p) != first:
            raise UserError(f"committee member {k} has another architecture (parameter tree or shapes) than member 0.")
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *members)


def unstack_params(stacked: dict, members: int) -> list[dict]:
    """The inverse of :func:`stack_params`."""
    return [jax.tree_util.tree_map(lambda x, m=m: np.asarray(x)[m], stacked) for m in range(members)]


def _load_one(spec) -> tuple[dict, dict[str, Any]]:
    from so3krates_hk import pretrained

    base_params, base_kwargs = pretrained.so3lr()
    if spec is None or (isinstance(spec, str) and spec == "so3lr"):
        return base_params, base_kwargs
    if isinstance(spec, dict):
        return spec, base_kwargs
    path = os.fspath(spec)
    if not os.path.exists(path):
        raise UserError(f"model {path!r} is neither 'so3lr' nor an existing parameter file (.npz).")
    from so3krates_hk.io import load_params

    try:
        params, metadata = load_params(path)
    except ValueError as e:
        raise UserError(str(e)) from None
    kwargs = dict(metadata.get("factory_kwargs") or base_kwargs)
    return params, kwargs


def load_model(model: ModelSpec) -> tuple[dict, dict[str, Any], Optional[int]]:
    """(params, factory keyword arguments, members) of ``model``.

    ``model``: None or "so3lr" (the shipped weights), a parameter file written by ``save_params`` (e.g. by
    ``finetune``), a parameter tree, or a list of those: a committee, returned stacked with ``members`` = its
    length. ``members`` is None for a single model. The factory arguments come from the file's metadata (those of
    the shipped weights when absent); committee members must agree on them.
    """
    if isinstance(model, (list, tuple)):
        loaded = [_load_one(m) for m in model]
        if len(loaded) == 1:
            return loaded[0][0], loaded[0][1], None
        kwargs = loaded[0][1]
        for k, (_, kw) in enumerate(loaded[1:], 1):
            if kw != kwargs:
                raise UserError(f"committee member {k} was built with other factory arguments than member 0: "
                                f"{ {key: kw.get(key) for key in set(kw) | set(kwargs) if kw.get(key) != kwargs.get(key)} }")  # fmt: skip
        return stack_params([p for p, _ in loaded]), kwargs, len(loaded)
    params, kwargs = _load_one(model)
    return params, kwargs, None


def mean_and_spread(values, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, population standard deviation) over the member axis."""
    values = np.asarray(values)
    return values.mean(axis=axis), values.std(axis=axis)


__all__ = ["load_model", "mean_and_spread", "stack_params", "unstack_params"]
