"""Skipping trailing padding (``layers.segments``): same sums as one segment, for any layout of the real pairs; the
skipped segment is really not run; the whole SO3LR energy and forces are unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from so3krates_hk.layers import segments
from so3krates_hk.layers.segments import extent, segment_bounds, sum_over_segments


def test_bounds():
    assert segment_bounds(100) == (0, 100)  # below MIN_SEGMENTED_PAIRS: one segment
    assert segment_bounds(10_000) == (0, 8200, 10_000)
    assert segment_bounds(1000, fractions=(0.5, 0.9), min_slots=0) == (0, 504, 904, 1000)
    assert segment_bounds(10, fractions=(0.99,), min_slots=0) == (0, 10)  # a cut at or past the end is dropped


def test_extent():
    assert int(extent(jnp.array([False, False]))) == 0
    assert int(extent(jnp.array([True, False, True, False]))) == 3
    assert int(extent(jnp.array([False, False, False, True]))) == 4
    assert int(extent(jnp.zeros(0, bool))) == 0


def _segment_sum_fn(values, mask, poison_from=None):
    """Σ over [start, stop) of the masked values onto 3 bins; with ``poison_from``, segments starting there return
    NaN, so a result without NaN proves they were skipped."""

    def fn(start, stop):
        v = jnp.where(mask[start:stop], values[start:stop], 0.0)
        out = jax.ops.segment_sum(v, jnp.arange(start, stop) % 3, 3)
        return out * jnp.nan if poison_from is not None and start >= poison_from else out

    return fn


@pytest.mark.parametrize("layout", ["front", "shuffled", "last"])
def test_same_sum_for_any_layout(layout):
    rng = np.random.default_rng(0)
    P, real = 1000, 700
    mask = np.zeros(P, bool)
    if layout == "front":
        mask[:real] = True
    elif layout == "shuffled":
        mask[rng.permutation(P)[:real]] = True
    else:
        mask[-1] = True  # a single real pair in the very last slot
    values = jnp.asarray(rng.normal(size=P))
    mask = jnp.asarray(mask)
    bounds = segment_bounds(P, fractions=(0.5, 0.82), min_slots=0)
    expected = _segment_sum_fn(values, mask)(0, P)
    got = jax.jit(lambda v, m: sum_over_segments(_segment_sum_fn(v, m), bounds, extent(m)))(values, mask)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_tail_segment_is_skipped():
    """The tail [820, 1000) holds only padding: it must not run (it would return NaN)."""
    P = 1000
    mask = jnp.arange(P) < 800
    values = jnp.ones(P)
    bounds = segment_bounds(P, fractions=(0.82,), min_slots=0)
    fn = lambda v, m: sum_over_segments(_segment_sum_fn(v, m, poison_from=bounds[1]), bounds, extent(m))  # noqa: E731
    got = jax.jit(fn)(values, mask)
    assert np.isfinite(np.asarray(got)).all()
    np.testing.assert_allclose(got.sum(), 800.0)
    # a real pair in the tail makes it run (and the poison shows)
    assert not np.isfinite(np.asarray(jax.jit(fn)(values, mask.at[900].set(True)))).all()


def test_tail_segment_is_skipped_eagerly_without_a_condition():
    """Outside jit, Python decides: the poisoned tail is not run, and no lax.cond is traced."""
    P = 1000
    mask = jnp.arange(P) < 800
    bounds = segment_bounds(P, fractions=(0.82,), min_slots=0)
    got = sum_over_segments(_segment_sum_fn(jnp.ones(P), mask, poison_from=bounds[1]), bounds, extent(mask))
    np.testing.assert_allclose(got.sum(), 800.0)
    late = mask.at[900].set(True)
    assert not np.isfinite(np.asarray(
        sum_over_segments(_segment_sum_fn(jnp.ones(P), late, poison_from=bounds[1]), bounds, extent(late)))).all()


def test_gradient_and_vmap_through_segments():
    rng = np.random.default_rng(1)
    P = 64
    values = jnp.asarray(rng.normal(size=(2, P)))
    masks = jnp.asarray([np.arange(P) < 40, np.arange(P) < 60])
    bounds = segment_bounds(P, fractions=(0.5, 0.75), min_slots=0)

    def total(v, m):
        return jnp.sum(sum_over_segments(_segment_sum_fn(v**2, m), bounds, extent(m)) ** 2)

    def reference(v, m):
        return jnp.sum(_segment_sum_fn(v**2, m)(0, P) ** 2)

    for b in range(2):
        np.testing.assert_allclose(jax.grad(total)(values[b], masks[b]), jax.grad(reference)(values[b], masks[b]),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(jax.vmap(jax.grad(total))(values, masks), jax.vmap(jax.grad(reference))(values, masks),
                               rtol=1e-12, atol=1e-12)  # fmt: skip


@pytest.fixture(scope="module")
def dha_padded():
    import dataclasses

    from helpers import free_lists

    from so3krates_hk import pretrained
    from so3krates_hk._compat import partition
    from so3krates_hk.data import reference_structure

    s = reference_structure("dha")
    R = jnp.asarray(s.positions)
    N = len(R)
    displacement, sr = free_lists(R, 4.5, capacity_multiplier=2.0)
    _, lr = free_lists(R, 12.0, partition.OrderedSparse)
    # padding in the tail of the long-range list, and the same list shuffled (padding anywhere)
    lr_tail = dataclasses.replace(lr, idx=jnp.concatenate([lr.idx, jnp.full((2, 600), N, lr.idx.dtype)], axis=1))
    order = np.random.default_rng(0).permutation(lr_tail.idx.shape[1])
    lr_shuffled = dataclasses.replace(lr_tail, idx=lr_tail.idx[:, order])
    cast = lambda x: jnp.asarray(x, jnp.float64) if np.issubdtype(np.asarray(x).dtype, np.floating) else x  # noqa: E731
    params = jax.tree_util.tree_map(cast, pretrained.so3lr()[0])
    return dict(R=R, Z=jnp.asarray(s.atomic_numbers), disp=displacement, sr=sr, lrs=(lr_tail, lr_shuffled),
                params=params)  # fmt: skip


@pytest.mark.parametrize("which_lr", [0, 1], ids=["lr-padding-at-the-end", "lr-shuffled"])
def test_so3lr_energy_forces_and_parameter_gradients_unchanged(dha_padded, which_lr, monkeypatch):
    """SO3LR on dha (float64) with padded short- and long-range lists: segments forced on (two cuts) against one
    segment; energy, forces and parameter gradients agree to rounding."""
    from so3krates_hk import so3lr_neighborlist_pp

    d = dha_padded
    lr = d["lrs"][which_lr]

    def evaluate():
        _, apply_fn = so3lr_neighborlist_pp(d["disp"], positions_test=d["R"], neighbor_test=d["sr"],
                                            max_edge_multiplier=2.0)  # fmt: skip
        f = jax.value_and_grad(lambda p, r: apply_fn(p, r, d["sr"], lr, d["Z"]), argnums=(0, 1))
        conds = str(jax.make_jaxpr(f)(d["params"], d["R"])).count("cond[")
        return jax.jit(f)(d["params"], d["R"]), conds

    monkeypatch.setattr(segments, "MIN_SEGMENTED_PAIRS", 10**9)
    (e0, (gp0, gr0)), conds0 = evaluate()
    monkeypatch.setattr(segments, "MIN_SEGMENTED_PAIRS", 0)
    monkeypatch.setattr(segments, "SEGMENT_FRACTIONS", (0.4, 0.7))
    (e1, (gp1, gr1)), conds1 = evaluate()
    # one segment: no condition; two cuts in 3 layers and the long range, forward and backward: many
    assert conds0 == 0 and conds1 >= 2 * (3 + 1)
    assert abs(float(e1 - e0)) <= 1e-10
    np.testing.assert_allclose(gr1, gr0, rtol=0, atol=1e-10)
    for a, b in zip(jax.tree_util.tree_leaves(gp1), jax.tree_util.tree_leaves(gp0)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
