"""Building blocks against the equations of docs/model.md and the reference intermediates of dha."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import DATA, free_lists, with_pairs

from so3krates_hk._compat import partition
from so3krates_hk.graph import build_graph, gather_rows
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


def _attention_case(recompute, num_nodes=9, num_pairs=20, seed=0):
    """A random pair graph (padded pairs with index N and φ = 0), features, and the attention's outputs and
    gradients (inputs and parameters) for one ``recompute`` setting."""
    import haiku as hk

    from so3krates_hk.layers.attention import EdgeFeatures, EuclideanAttention

    rng = np.random.default_rng(seed)
    N, P, F, degrees = num_nodes, num_pairs, 16, (1, 2)
    i = rng.integers(1, N, P)
    j = np.array([rng.integers(0, a) for a in i])
    i[-3:], j[-3:] = N, N  # padding
    cut = rng.random(P) * (i < N)
    arrays = dict(rbf=rng.random((P, 6)), cut=cut, ylm=rng.normal(size=(P, 8)))
    x, ev = rng.normal(size=(N, F)), rng.normal(size=(N, 8))

    def f(x, ev, rbf, cut, ylm):
        edges = EdgeFeatures(jnp.asarray(i), jnp.asarray(j), rbf, cut, ylm, N, False)
        return EuclideanAttention(F, 4, degrees, 3.0, jax.nn.silu, recompute=recompute)(x, ev, edges)

    t = hk.without_apply_rng(hk.transform(f))
    args = (jnp.asarray(x), jnp.asarray(ev), *(jnp.asarray(arrays[k]) for k in ("rbf", "cut", "ylm")))
    params = t.init(jax.random.PRNGKey(seed), *args)
    params = jax.tree_util.tree_map(lambda a: a + 0.3 * jnp.asarray(rng.normal(size=a.shape)), params)
    cx, cev = rng.normal(size=(N, F)), rng.normal(size=(N, 8))

    def loss(params, *args):
        dx, dev = t.apply(params, *args)
        return jnp.sum(dx * cx) + jnp.sum(dev * cev)

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4, 5)))(params, *args)
    return t.apply(params, *args), value, grads, (i, j, params, args)


def test_attention_recomputed_and_stored_backward_agree():
    """Both ways of evaluating the attention (per-pair terms recomputed in the backward pass, or stored) give the
    same outputs and the same gradients with respect to the inputs and every parameter (float64)."""
    out_r, val_r, grads_r, _ = _attention_case(True)
    out_s, val_s, grads_s, _ = _attention_case(False)
    for a, b in zip(jax.tree_util.tree_leaves((out_r, val_r, grads_r)), jax.tree_util.tree_leaves((out_s, val_s, grads_s))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    assert float(jnp.max(jnp.abs(grads_r[1]))) > 0  # the gradients are not trivially zero


def test_attention_matches_the_directed_edge_equations():
    """Δx and Δε against a direct evaluation of the equations over directed edges (both directions of each pair,
    Y(r̂_ji) = (−1)^l Y(r̂_ij)), with the filters written out from the parameters."""
    (dx, dev), _, _, (i, j, params, (x, ev, rbf, cut, ylm)) = _attention_case(None, seed=3)
    x, ev, rbf, cut, ylm = (np.asarray(a) for a in (x, ev, rbf, cut, ylm))
    p = {k: {n: np.asarray(v) for n, v in d.items()} for k, d in params.items()}
    N, F, H, G, degrees = x.shape[0], x.shape[1], 4, 2, (1, 2)
    silu = lambda z: z / (1 + np.exp(-z))  # noqa: E731

    def block_diag(blocks):
        b, n, m = blocks.shape
        out = np.zeros((b * n, b * m))
        for k in range(b):
            out[k * n:(k + 1) * n, k * m:(k + 1) * m] = blocks[k]
        return out

    proj = {w: x @ block_diag(p["attention_block"][w]) for w in ("Wq1", "Wk1", "Wv1", "Wq2", "Wk2")}

    def dense(name, z):
        return z @ p[f"attention_block/{name}"]["w"] + p[f"attention_block/{name}"]["b"]

    sizes = [2 * l + 1 for l in degrees]
    bounds = np.cumsum([0] + sizes)
    expect_dx, expect_dev = np.zeros_like(x), np.zeros_like(ev)
    for e in range(len(i)):
        if i[e] >= N:
            continue
        for c, n, sign in ((i[e], j[e], 1), (j[e], i[e], -1)):  # centre c receives from neighbour n
            y = ylm[e] * np.concatenate([np.full(s, sign ** l) for s, l in zip(sizes, degrees)])
            diff = ev[n] - ev[c]
            g = np.array([np.sum(diff[bounds[k]:bounds[k + 1]] ** 2) / np.sqrt(2 * l + 1) for k, l in enumerate(degrees)])
            w = {f: dense(f"radial_filter{f}_layer_2", silu(dense(f"radial_filter{f}_layer_1", rbf[e])))
                 + dense(f"spherical_filter{f}_layer_2", silu(dense(f"spherical_filter{f}_layer_1", g))) for f in (1, 2)}
            t1 = (proj["Wq1"][c] * w[1] * proj["Wk1"][n]).reshape(H, -1).sum(-1) * cut[e] / 3.0
            t2 = (proj["Wq2"][c] * w[2] * proj["Wk2"][n]).reshape(G, -1).sum(-1) * cut[e] / 3.0
            expect_dx[c] += np.repeat(t1, F // H) * proj["Wv1"][n]
            expect_dev[c] += np.repeat(t2, sizes) * y
    np.testing.assert_allclose(np.asarray(dx), expect_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dev), expect_dev, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8])
def test_gather_rows_is_indexing_with_the_same_gradient(width):
    """``graph.gather_rows`` pads rows of 3 (positions) to 4 for a faster scatter in the gradient; values and
    gradients are those of plain indexing, and the padded gather is what runs."""
    rng = np.random.default_rng(width)
    x = jnp.asarray(rng.normal(size=(7, width)))
    index = jnp.asarray(rng.integers(0, 7, 40))
    w = jnp.asarray(rng.normal(size=(40, width)))
    np.testing.assert_array_equal(gather_rows(x, index), x[index])
    g_rows = jax.grad(lambda x: jnp.sum(jnp.sin(gather_rows(x, index)) * w))(x)
    g_plain = jax.grad(lambda x: jnp.sum(jnp.sin(x[index]) * w))(x)
    np.testing.assert_allclose(g_rows, g_plain, rtol=1e-14, atol=1e-14)
    jaxpr = jax.make_jaxpr(gather_rows)(x, index)
    sizes = [e.params["slice_sizes"] for e in jaxpr.eqns if e.primitive.name == "gather"]
    assert sizes == [(1, 1 << (width - 1).bit_length())]
