"""Port SO3LR's ``params.pkl`` (mlff/flax layout) onto this package's Haiku tree; docs/model.md names both sides of
every block's parameters.

Every one of the 131 leaves maps to exactly one leaf of ours; the converter checks that each expected leaf is
present with the right shape, that nothing is left over, and refuses anything that is not plain containers and
numpy arrays while unpickling (no code runs). Values are copied unchanged (float32) except the attention block
matrices, which SO3LR stores ``[block, out, in]`` and we store ``[block, in, out]`` (docs/model.md,
"Interaction layer").

    params = load_so3lr_pickle("params.pkl")         # Haiku tree for so3lr_neighborlist_pp
    so3krates-hk convert params.pkl -o so3lr.npz      # the same, to the safe .npz format (so3krates_hk.io)
"""

from __future__ import annotations

import io
import os
import pickle
import re
from typing import Any, Mapping, Optional

import numpy as np
from so3krates_hk.errors import UserError

SO3LR_PICKLE_SHA256 = "1c481bd2d9280f8b7b131ec65e92d25ff73deda76956bc137754c2acb98d93fd"


class ConversionError(UserError):
    """The input is not an SO3LR parameter set; the message says what is wrong."""


# ------------------------------------------------------------------------------------------------ safe unpickling

_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only numpy's array reconstructors; any other global (a class, a function) is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise ConversionError(
                f"Refusing to unpickle {module}.{name}: SO3LR's params.pkl holds only dicts and numpy arrays, and "
                "anything else could execute code."
            )
        if module.startswith("numpy._core") and not hasattr(np, "_core"):  # numpy < 1.26 calls it numpy.core
            module = "numpy.core" + module[len("numpy._core"):]
        return super().find_class(module, name)


def safe_unpickle(data: bytes) -> Any:
    """Unpickle bytes that may hold only plain containers and numpy arrays."""
    try:
        return _SafeUnpickler(io.BytesIO(data)).load()
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(f"Could not unpickle: {type(e).__name__}: {e}") from None


# ------------------------------------------------------------------------------------------------ the mapping

_T = r"(?P<t>\d+)"
# (pickle path regex, our module path template, our leaf name, transform)
_RULES: list[tuple[str, str, str, Optional[str]]] = [
    (r"feature_embeddings_0/Embed_0/embedding", "so3krates/atom_type_embedding", "embeddings", None),
    *[
        (rf"feature_embeddings_{k}/ChargeSpinEmbedSparse_0/Embed_{e}/embedding", f"so3krates/{mod}_embedding", leaf, None)
        for k, mod in ((1, "charge"), (2, "spin"))
        for e, leaf in ((0, "query"), (1, "key"), (2, "value"))
    ],
    *[
        (rf"feature_embeddings_{k}/ChargeSpinEmbedSparse_0/Residual_0/layers_{r}/kernel",
         f"so3krates/{mod}_embedding/residual_layer_{r}", "w", None)
        for k, mod in ((1, "charge"), (2, "spin"))
        for r in (0, 1)
    ],  # fmt: skip
    (rf"layers_{_T}/attention_block/(?P<w>W[qkv][12])", "so3krates/layers_{t}/attention_block", "{w}", "transpose"),
    (rf"layers_{_T}/attention_block/(?P<m>(radial|spherical)_filter[12]_layer_[12])/kernel",
     "so3krates/layers_{t}/attention_block/{m}", "w", None),
    (rf"layers_{_T}/attention_block/(?P<m>(radial|spherical)_filter[12]_layer_[12])/bias",
     "so3krates/layers_{t}/attention_block/{m}", "b", None),
    (rf"layers_{_T}/exchange_block/mlp_layer_2/kernel", "so3krates/layers_{t}/exchange_block/mlp_layer_2", "w", None),
    (rf"layers_{_T}/exchange_block/mlp_layer_2/bias", "so3krates/layers_{t}/exchange_block/mlp_layer_2", "b", None),
    (rf"layers_{_T}/(?P<m>layer_normalization_[12])/scale", "so3krates/layers_{t}/{m}", "scale", None),
    (rf"layers_{_T}/(?P<m>layer_normalization_[12])/bias", "so3krates/layers_{t}/{m}", "offset", None),
    (rf"layers_{_T}/(?P<m>res_mlp_[12]_layer_[12])/kernel", "so3krates/layers_{t}/{m}", "w", None),
    (rf"layers_{_T}/(?P<m>res_mlp_[12]_layer_[12])/bias", "so3krates/layers_{t}/{m}", "b", None),
    (r"observables_0/atomic_scales", "energy_head", "atomic_scales", None),
    (r"observables_0/energy_offset", "energy_head", "energy_offset", None),
    (r"observables_0/(?P<m>energy_dense_(regression|final))/kernel", "energy_head/{m}", "w", None),
    (r"observables_0/(?P<m>energy_dense_(regression|final))/bias", "energy_head/{m}", "b", None),
    (r"observables_0/electrostatic_energy/partial_charges/Embed_0/embedding", "partial_charges", "charge_bias", None),
    (r"observables_0/electrostatic_energy/partial_charges/(?P<m>charge_dense_(regression|final)_vec)/kernel",
     "partial_charges/{m}", "w", None),
    (r"observables_0/electrostatic_energy/partial_charges/(?P<m>charge_dense_(regression|final)_vec)/bias",
     "partial_charges/{m}", "b", None),
    (r"observables_0/zbl_repulsion/(?P<p>a[1-4]|c[1-4]|p|d)", "zbl_repulsion", "{p}", None),
    (r"observables_2/Embed_0/embedding", "hirshfeld_ratios", "ratio_shift", None),
    (r"observables_2/Embed_1/embedding", "hirshfeld_ratios", "ratio_query", None),
    (r"observables_2/(?P<m>hirshfeld_ratios_dense_(regression|final))/kernel", "hirshfeld_ratios/{m}", "w", None),
    (r"observables_2/(?P<m>hirshfeld_ratios_dense_(regression|final))/bias", "hirshfeld_ratios/{m}", "b", None),
]  # fmt: skip
_COMPILED = [(re.compile(p + r"\Z"), mod, leaf, tf) for p, mod, leaf, tf in _RULES]


def map_path(path: str) -> tuple[str, str, Optional[str]]:
    """SO3LR leaf path (without the leading ``params/``) → (our module, our leaf name, transform)."""
    for pattern, mod, leaf, tf in _COMPILED:
        m = pattern.match(path)
        if m:
            groups = m.groupdict()
            return mod.format(**groups), leaf.format(**groups), tf
    raise ConversionError(f"Leaf {path!r} is not part of SO3LR's parameter tree (see docs/model.md).")


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat


def so3lr_template() -> dict[str, dict[str, tuple[tuple[int, ...], np.dtype]]]:
    """Shapes of our SO3LR tree, {module: {name: (shape, dtype)}}, from an abstract (no-FLOP) initialisation."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import partition, jax_md
    from so3krates_hk.factory import so3lr_neighborlist_pp

    disp, _ = jax_md.space.free()
    R = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], jnp.float32)
    Z = jnp.array([8, 1, 1], jnp.int32)
    sr = partition.neighbor_list(disp, 10.0, 4.5, format=partition.Sparse, disable_cell_list=True).allocate(R)
    lr = partition.neighbor_list(disp, 10.0, 12.0, format=partition.OrderedSparse, disable_cell_list=True).allocate(R)
    init_fn, _ = so3lr_neighborlist_pp(disp)
    shapes = jax.eval_shape(lambda k: init_fn(k, R, sr, lr, Z), jax.random.PRNGKey(0))
    return {m: {n: (tuple(v.shape), np.dtype(v.dtype)) for n, v in leaves.items()} for m, leaves in shapes.items()}


def convert_so3lr_tree(raw: Any, into: Optional[Mapping[str, Mapping[str, Any]]] = None) -> dict:
    """Map an unpickled SO3LR tree (``{"params": {...}}``) onto our Haiku tree.

    Args:
        raw: the object in params.pkl.
        into: an existing tree whose leaves are replaced (its structure defines what is expected); defaults to the
            structure of ``so3lr_neighborlist_pp``'s parameters.

    Returns:
        A new Haiku tree with every leaf taken from ``raw`` (numpy arrays, dtype as stored, float32).
    """
    if not isinstance(raw, Mapping) or set(raw) != {"params"} or not isinstance(raw["params"], Mapping):
        keys = sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__
        raise ConversionError(f"Not an SO3LR parameter file: expected a dict with the single key 'params', got {keys}.")
    flat = _flatten(raw["params"])
    if into is None:
        expected = {m: {n: s for n, (s, _) in leaves.items()} for m, leaves in so3lr_template().items()}
    else:
        expected = {m: {n: tuple(np.shape(v)) for n, v in leaves.items()} for m, leaves in into.items()}

    out: dict[str, dict[str, np.ndarray]] = {}
    for path in sorted(flat):
        value = flat[path]
        if not isinstance(value, np.ndarray):
            raise ConversionError(f"Leaf {path!r} is a {type(value).__name__}, not a numpy array.")
        module, name, transform = map_path(path)
        if transform == "transpose":
            value = np.swapaxes(value, -1, -2)
        if module not in expected or name not in expected[module]:
            raise ConversionError(f"Leaf {path!r} maps to {module}:{name}, which the target model does not have.")
        if tuple(value.shape) != tuple(expected[module][name]):
            raise ConversionError(
                f"Leaf {path!r} has shape {value.shape}; {module}:{name} needs {tuple(expected[module][name])}."
            )
        if name in out.get(module, {}):
            raise ConversionError(f"Two leaves map to {module}:{name} (the second is {path!r}).")
        out.setdefault(module, {})[name] = np.array(value, copy=True)

    missing = [f"{m}:{n}" for m, leaves in expected.items() for n in leaves if n not in out.get(m, {})]
    if missing:
        raise ConversionError(f"The pickle lacks {len(missing)} leaf/leaves the model needs, e.g. {missing[:5]}.")
    return out


def load_so3lr_pickle(path: str | os.PathLike, into: Optional[Mapping] = None) -> dict:
    """Read SO3LR's ``params.pkl`` safely and return our Haiku parameter tree (see ``convert_so3lr_tree``)."""
    with open(path, "rb") as f:
        data = f.read()
    return convert_so3lr_tree(safe_unpickle(data), into=into)


# ------------------------------------------------------------------------------------------------ metadata
def so3lr_factory_kwargs() -> dict:
    """The ``so3lr_neighborlist_pp`` arguments SO3LR's weights were trained with (cutoffs in Å, n̄, energy scales)."""
    from so3krates_hk.factory import SO3LR_AVG_NUM_NEIGHBORS

    return dict(r_cutoff=4.5, lr_cutoff=12.0, dispersion_damping=2.0, avg_num_neighbors=SO3LR_AVG_NUM_NEIGHBORS,
                electrostatic_energy_scale=4.0, dispersion_energy_scale=1.2)  # fmt: skip


def so3lr_pickle_metadata(pickle_path: str) -> dict:
    """What :func:`so3krates_hk.io.save_params` records with weights converted from ``pickle_path``."""
    import hashlib
    import json
    import os
    from importlib import resources

    with open(pickle_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    hyper = json.loads(resources.files("so3krates_hk.pretrained").joinpath("hyperparameters.json").read_text())
    return {
        "model": "so3lr",
        "factory": "so3krates_hk.so3lr_neighborlist_pp",
        "factory_kwargs": so3lr_factory_kwargs(),
        "source": {"file": os.path.basename(pickle_path), "sha256": sha, "is_official_so3lr": sha == SO3LR_PICKLE_SHA256},
        "original_hyperparameters": hyper,
        "license": "MIT (SO3LR weights; see LICENSE-SO3LR)",
    }
