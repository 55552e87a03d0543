"""The dependency shims of so3krates_hk._compat, each checked against the failure it prevents."""

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._compat import jax_md, partition
from so3krates_hk.data import reference_structure


def test_jax_md_imports_and_key_array_alias():
    assert hasattr(jax.random, "KeyArray")
    assert hasattr(jax_md, "space") and hasattr(partition, "neighbor_list")


def test_box_check_flags_only_malformed_boxes():
    assert not bool(partition.is_box_valid(jnp.eye(3) * 10.0))  # valid (upper triangular): no error bit
    assert not bool(partition.is_box_valid(jnp.array([[10.0, 1.0, 0.0], [0.0, 10.0, 2.0], [0.0, 0.0, 9.0]])))
    assert bool(partition.is_box_valid(jnp.array([[10.0, 0.0, 0.0], [1.0, 10.0, 0.0], [0.0, 0.0, 9.0]])))
    assert jnp.shape(partition.is_box_valid(jnp.eye(3))) == ()  # a scalar flag (jax-md 0.2.8 returned (3, 3))


def test_triclinic_neighbour_list_is_right_with_many_candidates():
    # JAX 0.10.2 on CPU miscompiled jax-md's box transform for 16 385…~50 000 rows (float64): in this very setup the
    # list had 1 319 pairs, some 7.9 Å apart, instead of 1 474 pairs within 5 Å.
    s = reference_structure("dha")
    box = 36.0 * jnp.eye(3)
    disp, _ = jax_md.space.periodic_general(box, fractional_coordinates=True)
    frac = jnp.asarray((s.positions - s.positions.mean(0)) / 36.0 + 0.5)
    nbrs = partition.neighbor_list(disp, box, 5.0, format=partition.Sparse, fractional_coordinates=True).allocate(frac)
    assert not bool(nbrs.did_buffer_overflow)
    N = s.num_atoms
    valid = np.asarray(nbrs.idx[0] < N)
    d = jax.vmap(disp)(frac[jnp.minimum(nbrs.idx[0], N - 1)], frac[jnp.minimum(nbrs.idx[1], N - 1)])
    d = np.sqrt(np.sum(np.asarray(d) ** 2, -1))[valid]
    D = np.linalg.norm(s.positions[:, None] - s.positions[None], axis=-1)
    assert valid.sum() == (D < 5.0).sum() - N and d.max() < 5.0
    X = jnp.asarray(np.random.default_rng(0).normal(size=(20000, 3)))
    out = jax.jit(lambda x: jnp.sum(jax_md.space.transform(box, x) ** 2, -1))(X)
    np.testing.assert_allclose(out, 36.0**2 * np.sum(np.asarray(X) ** 2, -1), rtol=1e-12)
