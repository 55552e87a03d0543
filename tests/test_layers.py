"""Building blocks against the equations of docs/model.md and the reference intermediates of dha."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import DATA, free_lists, with_pairs

from so3krates_hk._compat import partition
from so3krates_hk.graph import build_graph
from so3krates_hk.layers.cutoff import cosine_cutoff, phys_cutoff, smooth_switch
from so3krates_hk.layers.harmonics import degree_contraction, expand_degrees, spherical_harmonics
from so3krates_hk.layers.radial import BERNSTEIN_GAMMA, bernstein_basis


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(f"{DATA}/reference_intermediates_dha.npz"))


@pytest.fixture(scope="module")
def ref_graph(ref):
    R = jnp.asarray(ref["positions"])
    displacement, template = free_lists(R, 4.5)
    nbrs = with_pairs(template, ref["sr_idx_i"], ref["sr_idx_j"], partition.Sparse)
    return build_graph(displacement, R, nbrs, 4.5)


def test_distances_match_reference(ref, ref_graph):
    assert bool(ref_graph.mask.all())
    np.testing.assert_allclose(ref_graph.distances, ref["d"], rtol=1e-14, atol=0)


def test_bernstein_basis_matches_reference(ref, ref_graph):
    rbf = bernstein_basis(ref_graph.distances, 32)
    assert rbf.shape == (len(ref["d"]), 32)
    np.testing.assert_allclose(rbf, ref["rbf"], rtol=1e-12, atol=1e-300)


def test_bernstein_gamma_is_float32_rounded():
    # docs/model.md, "Edge geometry": the float32 rounding of 1/(2 a0), not the exact value.
    assert BERNSTEIN_GAMMA == float(np.float32(1 / (2 * 0.5291772105638411)))
    assert BERNSTEIN_GAMMA != 1 / (2 * 0.5291772105638411)


def test_bernstein_is_zero_with_finite_gradient_at_zero_distance():
    d = jnp.array([0.0, 1.0])
    assert float(jnp.abs(bernstein_basis(d)[0]).max()) == 0.0
    g = jax.jacfwd(lambda x: bernstein_basis(x).sum())(d)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_bernstein_is_a_partition_of_unity():
    # Σ_k C(n,k) u^k (1-u)^(n-k) = 1 for u in (0, 1).
    d = jnp.linspace(0.1, 8.0, 50)
    np.testing.assert_allclose(bernstein_basis(d).sum(-1), 1.0, rtol=1e-12)


def test_phys_cutoff_matches_reference_and_vanishes_smoothly(ref, ref_graph):
    np.testing.assert_allclose(phys_cutoff(ref_graph.distances, 4.5), ref["cut"], rtol=1e-13, atol=1e-14)
    assert float(phys_cutoff(jnp.array(0.0), 4.5)) == 1.0
    for f in (phys_cutoff, cosine_cutoff):
        assert float(f(jnp.array(4.5), 4.5)) == 0.0 and float(f(jnp.array(6.0), 4.5)) == 0.0
    dphi = jax.grad(lambda d: phys_cutoff(d, 4.5))(jnp.array(4.5 - 1e-9))
    assert abs(float(dphi)) < 1e-12


def test_spherical_harmonics_match_reference(ref, ref_graph):
    # The reference uses r_ij = R_j - R_i with i the centre, like build_graph.
    np.testing.assert_allclose(spherical_harmonics(ref_graph.vectors), ref["ylm"], rtol=0, atol=1e-13)


def test_spherical_harmonics_follow_spec_table():
    v = np.random.default_rng(0).normal(size=(20, 3))
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    x, y, z = u.T
    pi = np.pi
    table = {
        0: np.sqrt(3 / (4 * pi)) * y, 1: np.sqrt(3 / (4 * pi)) * z, 2: np.sqrt(3 / (4 * pi)) * x,
        3: 0.5 * np.sqrt(15 / pi) * x * y, 5: 0.25 * np.sqrt(5 / pi) * (3 * z**2 - 1),
        7: 0.25 * np.sqrt(15 / pi) * (x**2 - y**2),
        8: 0.25 * np.sqrt(35 / (2 * pi)) * y * (3 * x**2 - y**2), 11: 0.25 * np.sqrt(7 / pi) * (5 * z**3 - 3 * z),
        14: 0.25 * np.sqrt(35 / (2 * pi)) * x * (x**2 - 3 * y**2),
        15: 0.75 * np.sqrt(35 / pi) * x * y * (x**2 - y**2),
        19: 3 / 16 * np.sqrt(1 / pi) * (35 * z**4 - 30 * z**2 + 3),
        23: 3 / 16 * np.sqrt(35 / pi) * (x**2 * (x**2 - 3 * y**2) - y**2 * (3 * x**2 - y**2)),
    }  # fmt: skip
    Y = np.asarray(spherical_harmonics(jnp.asarray(3.0 * v)))
    for k, expected in table.items():
        np.testing.assert_allclose(Y[:, k], expected, atol=1e-14, err_msg=f"component {k}")


def test_contraction_of_harmonics_is_sqrt_2l_plus_1_over_4pi():
    # Σ_m Y_lm² = (2l+1)/4π (integral normalisation), and c_l = that / √(2l+1) (docs/model.md, "Edge geometry").
    v = jnp.asarray(np.random.default_rng(1).normal(size=(7, 3)))
    c = degree_contraction(spherical_harmonics(v))
    expected = np.sqrt(2 * np.arange(1, 5) + 1) / (4 * np.pi)
    np.testing.assert_allclose(c, np.broadcast_to(expected, c.shape), rtol=1e-13)


def test_contraction_is_rotation_invariant_and_expand_matches_layout():
    from helpers import rotation

    v = jnp.asarray(np.random.default_rng(2).normal(size=(5, 3)))
    Q = jnp.asarray(rotation(3))
    a = degree_contraction(spherical_harmonics(v) * 1.7)
    b = degree_contraction(spherical_harmonics(v @ Q.T) * 1.7)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    e = expand_degrees(jnp.array([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_array_equal(e[0], [1] * 3 + [2] * 5 + [3] * 7 + [4] * 9)


def test_smooth_switch_limits_and_gradients():
    x = jnp.linspace(-1.0, 3.0, 41)
    s = smooth_switch(x, 0.0, 1.5)
    assert bool(jnp.all(s[x <= 0] == 1.0)) and bool(jnp.all(s[x >= 1.5] == 0.0))
    assert bool(jnp.all(jnp.diff(s) <= 0))
    g = jax.vmap(jax.grad(lambda t: smooth_switch(t, 0.0, 1.5)))(x)
    assert bool(jnp.all(jnp.isfinite(g)))
