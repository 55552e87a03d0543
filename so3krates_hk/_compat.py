"""Compatibility shims for the two supported environments (see README, "Environments").

* jax-md 0.2.8, the only release that resolves beside chemtrain's ``jax<=0.4.37`` pin, reads ``jax.random.KeyArray``
  at import time, which JAX 0.4.3x no longer has. We alias it to ``jax.Array`` before the first ``import jax_md``
  (chemtrain's ``jax_md_mod`` applies the same alias).
* ``jax_md.partition`` records ``MALFORMED_BOX`` from ``is_box_valid(box)``, but that function returns *validity*:
  jax-md 0.2.29 therefore flags every valid upper-triangular box as malformed, and 0.2.8 returns a (3, 3) array that
  makes ``nbrs.did_buffer_overflow`` ambiguous. Both versions are patched so that the function returns a scalar
  "is malformed" flag, which is what the call site records.

* chemtrain's ``jax_md_mod`` replaces ``jax_md.partition.PartitionError`` by its own class when it is first
  imported. A neighbour list allocated before that import carries the old class, and its ``update`` inside chemtrain
  then fails with "true_fun and false_fun output must have same type structure". When chemtrain is installed we
  therefore import ``jax_md_mod`` first, so every list is built with the class chemtrain will use.

* JAX 0.10.2 on CPU miscompiles a small-matrix × batch product followed by a reduction
  (``jnp.sum((A @ X.T) ** 2, 0)`` with A 3×3 and 16 385 … ~50 000 rows in float64 comes out wrong, no error).
  ``jax_md.space.raw_transform``, behind ``periodic_general``, is exactly that product, so displacements and
  neighbour lists in triclinic boxes went silently wrong (dha in a 36 Å box: +7.96 eV instead of −94.90 eV). We
  replace its matrix case by the same sum written element-wise, which XLA compiles correctly, on every JAX.

Import ``jax_md`` through this module (``from so3krates_hk._compat import jax_md``) so the shims run first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

if not hasattr(jax.random, "KeyArray"):
    jax.random.KeyArray = jax.Array

try:  # chemtrain's patches (see above) must precede any neighbour list
    import jax_md_mod  # noqa: F401
except ImportError:
    pass

import jax_md  # noqa: E402
from jax_md import partition  # noqa: E402

try:  # jax.core.Tracer moved in newer JAX
    from jax.core import Tracer  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    from jax._src.core import Tracer  # type: ignore


def _box_is_malformed(box) -> jnp.ndarray:
    """True when a 2-D box is not upper triangular; scalar and 1-D boxes are always fine."""
    if jnp.isscalar(box) or jnp.ndim(box) <= 1:
        return jnp.asarray(False)
    if jnp.ndim(box) == 2:
        return jnp.any(jnp.triu(box) != box)
    return jnp.asarray(True)


def _jax_md_version() -> tuple[int, ...]:
    try:
        from importlib.metadata import version

        return tuple(int(p) for p in version("jax-md").split(".")[:3])
    except Exception:  # pragma: no cover
        return (0, 0, 0)


# Patched only for the releases known to carry the inverted check (0.2.8 … 0.2.29).
if _jax_md_version() <= (0, 2, 29) and not getattr(partition.is_box_valid, "_so3krates_hk_patched", False):
    _box_is_malformed._so3krates_hk_patched = True  # type: ignore[attr-defined]
    partition.is_box_valid = _box_is_malformed


_raw_transform = jax_md.space.raw_transform


def _elementwise_raw_transform(box, R):
    """jax-md's affine transform R ↦ box · R, with the matrix case written as an element-wise sum (see above)."""
    if not (jnp.isscalar(box) or jnp.size(box) == 1) and jnp.ndim(box) == 2:
        return jnp.sum(box * R[..., None, :], axis=-1)
    return _raw_transform(box, R)


if not getattr(jax_md.space.raw_transform, "_so3krates_hk_patched", False):
    _elementwise_raw_transform._so3krates_hk_patched = True  # type: ignore[attr-defined]
    jax_md.space.raw_transform = _elementwise_raw_transform


def is_tracer(x) -> bool:
    """True when ``x`` is an abstract value inside jit/vmap/grad, where host-side value checks cannot run."""
    return isinstance(x, Tracer)


__all__ = ["jax_md", "partition", "is_tracer"]
