"""Safe parameter files: a documented ``.npz`` layout, loaded without pickle, written atomically.

Layout (format ``so3krates_hk.params/1``):
* one array per parameter leaf, under the key ``"<haiku module path>:<parameter name>"``,
  e.g. ``"so3krates/layers_0/attention_block:Wq1"``;
* ``"__format__"``: the format string above, as a 0-d unicode array;
* ``"__metadata__"``: a JSON document (0-d unicode array) with whatever the writer records, e.g. the model's
  hyperparameters and the factory's arguments.

``np.load(path, allow_pickle=False)`` reads every array, so loading never executes code. Writes go to a temporary
file in the same directory, then ``os.replace`` it into place, so a crash never leaves a half-written file under the
final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Iterator, Mapping, Optional

import numpy as np

FORMAT = "so3krates_hk.params/1"
_SEP = ":"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on failure removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix or os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions a plain open() would
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def flatten_params(params: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Haiku tree → {"module:name": array}."""
    flat = {}
    for module, leaves in params.items():
        for name, value in leaves.items():
            flat[f"{module}{_SEP}{name}"] = np.asarray(value)
    return flat


def unflatten_params(flat: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{"module:name": array} → Haiku tree."""
    tree: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        module, sep, name = key.rpartition(_SEP)
        if not sep or not module or not name:
            raise ValueError(f"Malformed parameter key {key!r}: expected '<module>{_SEP}<name>'.")
        tree.setdefault(module, {})[name] = value
    return tree


def save_params(path: str | os.PathLike, params, metadata: Optional[Mapping[str, Any]] = None) -> None:
    """Write ``params`` (a Haiku tree) and JSON ``metadata`` to ``path`` in the safe ``.npz`` format, atomically."""
    arrays = flatten_params(params)
    arrays["__format__"] = np.array(FORMAT)
    arrays["__metadata__"] = np.array(json.dumps(dict(metadata or {}), sort_keys=True))
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_params(path: str | os.PathLike) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Read a file written by ``save_params``: (params, metadata). Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as data:
            files = dict(data.items())
    except ValueError as e:
        raise ValueError(f"{path}: not a so3krates_hk parameter file ({e}).") from None
    fmt = str(files.pop("__format__", ""))
    if fmt != FORMAT:
        raise ValueError(f"{path}: not a so3krates_hk parameter file (format {fmt or 'missing'!r}, expected {FORMAT!r}).")
    metadata = json.loads(str(files.pop("__metadata__", "{}")))
    return unflatten_params(files), metadata
