"""A stand-in for the original ``so3lr`` package's jax-md interface, for testing the benchmark harness only.

It offers what ``benchmarks/so3lr_original_worker.py`` calls (``So3lrPotential`` with ``cutoff`` and
``long_range_cutoff``, and ``to_jax_md`` returning two jax-md neighbour-list functions and an energy function of the
positions and both lists' index arrays), around a toy pair energy that has nothing to do with SO3LR:

    E = Σ_{i≠j, d < 4.5 Å} exp(−d_ij) + Σ_{i<j, d < 12 Å} 0.01 / d_ij

(the short-range list holds both directions of a pair, the long-range list each pair once, as in the original)

so that a test can recompute it, and its forces, independently.
"""

import jax
import jax.numpy as jnp

if not hasattr(jax.random, "KeyArray"):  # PyPI's jax-md 0.2.8 reads it at import; JAX 0.4.3x no longer has it
    jax.random.KeyArray = jax.Array

from jax_md import partition  # noqa: E402

__version__ = "0.0-test-stand-in"


class So3lrPotential:
    def __init__(self, lr_cutoff=12.0, dtype=None, **unused):
        self.cutoff = 4.5
        self.long_range_cutoff = float(lr_cutoff)


def _pair_sum(R, idx, displacement, fn, cutoff, **kw):
    """Σ fn(d) over the list's pairs within ``cutoff`` (the list also holds pairs within its skin); padded entries
    (index N) count zero."""
    n = R.shape[0]
    i, j = idx[0], idx[1]
    valid = (i < n) & (j < n)
    dr = jax.vmap(lambda a, b: displacement(a, b, **kw))(R[jnp.minimum(i, n - 1)], R[jnp.minimum(j, n - 1)])
    dr = jnp.where(valid[:, None], dr, 1.0)  # no zero-length vectors on padding (their norm's gradient is NaN)
    d = jnp.linalg.norm(dr, axis=-1)
    return jnp.sum(jnp.where(valid & (d < cutoff), fn(d), 0.0))


def to_jax_md(potential, displacement_or_metric, box_size, species=None, dr_threshold=0.0, capacity_multiplier=1.25,
              buffer_size_multiplier_sr=1.25, buffer_size_multiplier_lr=1.25, disable_cell_list=False,
              fractional_coordinates=True, **unused):
    box = 1.0 if box_size is None else box_size
    common = dict(dr_threshold=dr_threshold, capacity_multiplier=capacity_multiplier,
                  disable_cell_list=disable_cell_list, fractional_coordinates=fractional_coordinates)
    neighbor_fn = partition.neighbor_list(displacement_or_metric, box, potential.cutoff,
                                          format=partition.Sparse, **common)
    neighbor_fn_lr = partition.neighbor_list(displacement_or_metric, box, potential.long_range_cutoff,
                                             format=partition.OrderedSparse, **common)

    def energy_fn(R, neighbor, neighbor_lr, **kwargs):
        kw = {k: v for k, v in kwargs.items() if k != "box"}
        e_sr = _pair_sum(R, neighbor, displacement_or_metric, lambda d: jnp.exp(-d), potential.cutoff, **kw)
        e_lr = _pair_sum(R, neighbor_lr, displacement_or_metric, lambda d: 0.01 / d, potential.long_range_cutoff, **kw)
        return e_sr + e_lr

    return neighbor_fn, neighbor_fn_lr, energy_fn
