"""The SO3krates factory: physics invariances, neighbour-list formats, padding, transformations, training, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import SMALL, free_lists, neighbor_list, random_molecule, rel, rotation, tree_all_finite

from so3krates_hk import InputError, so3krates_neighborlist_pp
from so3krates_hk._compat import jax_md, partition

CUTOFF = 3.0


@pytest.fixture(scope="module")
def mol():
    R, species = random_molecule(14, seed=0)
    displacement, nbrs = free_lists(R, CUTOFF)
    init_fn, apply_fn = so3krates_neighborlist_pp(displacement, CUTOFF, n_species=4, avg_num_neighbors=5.0, **SMALL)
    params = init_fn(jax.random.PRNGKey(0), jnp.asarray(R), nbrs, species=jnp.asarray(species))
    return dict(R=jnp.asarray(R), species=jnp.asarray(species), nbrs=nbrs, disp=displacement, params=params,
                apply=apply_fn)  # fmt: skip


def energy(m, R=None, nbrs=None, species=None, **kw):
    R = m["R"] if R is None else R
    if nbrs is None:
        nbrs = free_lists(R, CUTOFF)[1]
    return m["apply"](m["params"], R, nbrs, species=m["species"] if species is None else species, **kw)


def test_energy_is_float64_and_nontrivial(mol):
    e = energy(mol)
    assert e.dtype == jnp.float64 and e.shape == () and abs(float(e)) > 1e-3


def test_rotation_translation_permutation_invariance(mol):
    e0 = energy(mol)
    Q = jnp.asarray(rotation(1))
    assert rel(energy(mol, mol["R"] @ Q.T), e0) <= 1e-10
    assert rel(energy(mol, mol["R"] + jnp.array([3.3, -1.2, 7.9])), e0) <= 1e-10
    perm = np.random.default_rng(2).permutation(len(mol["R"]))
    assert rel(energy(mol, mol["R"][perm], species=mol["species"][perm]), e0) <= 1e-10


def test_forces_equal_minus_gradient_by_finite_differences(mol):
    R, nbrs = mol["R"], mol["nbrs"]
    grad = jax.grad(lambda r: energy(mol, r, nbrs))(R)
    h = 1e-5
    rng = np.random.default_rng(3)
    for _ in range(6):
        i, a = int(rng.integers(len(R))), int(rng.integers(3))
        dR = jnp.zeros_like(R).at[i, a].set(h)
        fd = (energy(mol, R + dR, nbrs) - energy(mol, R - dR, nbrs)) / (2 * h)
        assert abs(float(fd - grad[i, a])) <= 1e-7 * max(1.0, abs(float(grad[i, a])))


def test_remat_gives_the_same_energy_forces_and_parameter_gradients(mol):
    """remat=True (hk.remat around each layer) only changes what the backward pass stores: the same parameter tree
    from init, and energy, forces and parameter gradients equal to round-off."""
    init_r, apply_r = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0, remat=True,
                                                **SMALL)  # fmt: skip
    p_r = init_r(jax.random.PRNGKey(0), mol["R"], mol["nbrs"], species=mol["species"])
    assert jax.tree_util.tree_structure(p_r) == jax.tree_util.tree_structure(mol["params"])
    assert all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), p_r, mol["params"])))

    def both(apply):
        f = lambda p, r: apply(p, r, mol["nbrs"], species=mol["species"])  # noqa: E731
        return jax.value_and_grad(f, argnums=(0, 1))(mol["params"], mol["R"])

    (e0, (gp0, gr0)), (e1, (gp1, gr1)) = both(mol["apply"]), both(apply_r)
    assert abs(float(e1 - e0)) <= 1e-12 * max(1.0, abs(float(e0)))
    assert float(jnp.max(jnp.abs(gr1 - gr0))) <= 1e-12
    diffs = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), gp1, gp0))
    assert max(diffs) <= 1e-11


def test_sparse_equals_dense(mol):
    _, dense = free_lists(mol["R"], CUTOFF, partition.Dense)
    assert rel(energy(mol, nbrs=dense), energy(mol)) <= 1e-10
    g_s = jax.grad(lambda r: energy(mol, r, mol["nbrs"]))(mol["R"])
    g_d = jax.grad(lambda r: energy(mol, r, dense))(mol["R"])
    assert rel(g_d, g_s) <= 1e-10


def test_free_space_equals_periodic_big_box(mol):
    box = 60.0
    displacement, _ = jax_md.space.periodic(box)
    R = mol["R"] + box / 2
    _, nbrs = neighbor_list(displacement, box, CUTOFF, R, disable_cell_list=False)
    _, apply_fn = so3krates_neighborlist_pp(displacement, CUTOFF, n_species=4, avg_num_neighbors=5.0, **SMALL)
    e = apply_fn(mol["params"], R, nbrs, species=mol["species"])
    assert rel(e, energy(mol)) <= 1e-10


def test_fractional_coordinates_periodic_general_equal_cartesian():
    # A periodic system (crossing the boundary) in a box of 7 Å: periodic_general with fractional coordinates
    # must equal the Cartesian periodic space, energy and Cartesian forces.
    rng = np.random.default_rng(5)
    box = 7.0
    R = rng.uniform(0, box, (20, 3))
    species = jnp.asarray(rng.integers(0, 3, 20), jnp.int32)
    disp_c, _ = jax_md.space.periodic(box)
    _, nb_c = neighbor_list(disp_c, box, CUTOFF, R)
    init_fn, apply_c = so3krates_neighborlist_pp(disp_c, CUTOFF, n_species=3, avg_num_neighbors=4.0, **SMALL)
    params = init_fn(jax.random.PRNGKey(1), jnp.asarray(R), nb_c, species=species)
    e_c, g_c = jax.value_and_grad(apply_c, argnums=1)(params, jnp.asarray(R), nb_c, species)

    cell = jnp.eye(3) * box
    disp_f, _ = jax_md.space.periodic_general(cell, fractional_coordinates=True)
    frac = jnp.asarray(R / box)
    _, nb_f = neighbor_list(disp_f, cell, CUTOFF, frac, fractional_coordinates=True)
    _, apply_f = so3krates_neighborlist_pp(disp_f, CUTOFF, n_species=3, avg_num_neighbors=4.0, **SMALL)
    e_f, g_f = jax.value_and_grad(apply_f, argnums=1)(params, frac, nb_f, species)
    assert rel(e_f, e_c) <= 1e-10
    # jax-md's periodic_general makes the gradient with respect to fractional input Cartesian (docs/model.md,
    # "Assembly and forces").
    assert rel(g_f, g_c) <= 1e-9

    # The box as a dynamic keyword (chemutils style): the displacement is bound to a wrong, larger box, and only the
    # keyword gives the right one, so ignoring ``box=`` would change the energy.
    wrong = cell * 1.3
    disp_k, _ = jax_md.space.periodic_general(wrong, fractional_coordinates=True)
    _, apply_k = so3krates_neighborlist_pp(disp_k, CUTOFF, n_species=3, avg_num_neighbors=4.0, **SMALL)
    e_k, g_k = jax.value_and_grad(apply_k, argnums=1)(params, frac, nb_f, species, box=cell)
    assert rel(e_k, e_c) <= 1e-10
    assert rel(g_k, g_c) <= 1e-9
    e_wrong = apply_k(params, frac, nb_f, species)
    assert rel(e_wrong, e_c) > 1e-4  # the bound box alone gives another energy (1e-3 here): the keyword mattered


def test_masked_atoms_inside_the_system_change_nothing(mol):
    R, species = mol["R"], mol["species"]
    ghost = jnp.concatenate([R, R[:3] * 0.5 + 0.1, R.mean(0, keepdims=True) + 0.05])  # inside, even overlapping
    ghost_species = jnp.concatenate([species, jnp.array([3, 99, -5, 7], jnp.int32)])  # garbage species on ghosts
    mask = jnp.arange(len(ghost)) < len(R)
    _, nbrs = free_lists(ghost, CUTOFF)

    def e(r):
        return mol["apply"](mol["params"], r, nbrs, species=ghost_species, mask=mask)

    e_ghost, g_ghost = jax.value_and_grad(e)(ghost)
    e_ref, g_ref = jax.value_and_grad(lambda r: energy(mol, r, mol["nbrs"]))(R)
    assert rel(e_ghost, e_ref) <= 1e-12
    assert rel(g_ghost[: len(R)], g_ref) <= 1e-12
    assert bool(jnp.all(g_ghost[len(R):] == 0.0))
    grads = jax.grad(lambda p: mol["apply"](p, ghost, nbrs, species=ghost_species, mask=mask))(mol["params"])
    assert tree_all_finite(grads)
    # Per atom: the ghosts carry exactly zero energy, the real atoms exactly what they carry without the ghosts.
    _, apply_pp = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0,
                                            per_particle=True, **SMALL)  # fmt: skip
    per_atom = apply_pp(mol["params"], ghost, nbrs, species=ghost_species, mask=mask)
    per_atom_ref = apply_pp(mol["params"], R, mol["nbrs"], species=species)
    assert bool(jnp.all(per_atom[len(R):] == 0.0))
    assert rel(per_atom[: len(R)], per_atom_ref) <= 1e-12


def test_padded_edges_give_no_nan(mol):
    displacement, nbrs = free_lists(mol["R"], CUTOFF, capacity_multiplier=4.0)
    assert int((nbrs.idx[0] == len(mol["R"])).sum()) > 50  # plenty of padding entries
    e, g = jax.value_and_grad(lambda r: energy(mol, r, nbrs))(mol["R"])
    assert rel(e, energy(mol)) <= 1e-12 and tree_all_finite(g)
    gp = jax.grad(lambda p: mol["apply"](p, mol["R"], nbrs, species=mol["species"]))(mol["params"])
    assert tree_all_finite(gp)


def test_per_particle_sums_to_total_and_vmap_jit_eager_agree(mol):
    _, apply_pp = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0,
                                            per_particle=True, **SMALL)  # fmt: skip
    per_atom = apply_pp(mol["params"], mol["R"], mol["nbrs"], species=mol["species"])
    assert per_atom.shape == (len(mol["R"]),)
    assert rel(per_atom.sum(), energy(mol)) <= 1e-13

    batch = jnp.stack([mol["R"] + 0.05 * k for k in range(3)]) @ jnp.asarray(rotation(7)).T
    nbrs = mol["nbrs"]
    batched = jax.vmap(lambda r: mol["apply"](mol["params"], r, nbrs, species=mol["species"]))(batch)
    loop = jnp.stack([energy(mol, r, nbrs) for r in batch])
    assert rel(batched, loop) <= 1e-13
    jitted = jax.jit(lambda p, r: mol["apply"](p, r, nbrs, species=mol["species"]))(mol["params"], mol["R"])
    with jax.disable_jit():
        eager = energy(mol, mol["R"], nbrs)
    assert rel(jitted, eager) <= 1e-12
    # positions closed over, only the parameters traced (a parameter sweep, a committee): the checks still run on
    # the concrete positions (this once failed converting a traced value inside the overlap check)
    closed = jax.jit(lambda p: mol["apply"](p, mol["R"], nbrs, species=mol["species"]))
    assert rel(closed(mol["params"]), eager) <= 1e-12
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x]), mol["params"])
    both = jax.jit(jax.vmap(lambda p: mol["apply"](p, mol["R"], nbrs, species=mol["species"])))(stacked)
    assert rel(both[0], eager) <= 1e-12 and abs(float(both[1] - both[0])) > 1e-6


def test_bound_species_are_not_constant_folded_and_batched_species_work(mol, monkeypatch):
    """Species bound into a jitted energy reach XLA behind an optimisation barrier, so it does not evaluate the
    species-only per-atom work at compile time: the compiled program holds no per-atom float constant (without the
    barrier it does, which shows the check can fail). Species batched under vmap give the same energies as one call
    per species vector."""
    import re

    import so3krates_hk.factory as factory

    nbrs, n = mol["nbrs"], len(mol["R"])

    def folded_per_atom_constants():
        _, apply_fn = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0, **SMALL)
        fn = jax.jit(lambda r: apply_fn(mol["params"], r, nbrs, species=mol["species"]))
        text = fn.lower(mol["R"]).compile().as_text()
        return re.findall(rf"= f(?:32|64)\[{n},\d+\]\S* constant\(", text), fn(mol["R"])

    constants, e_barrier = folded_per_atom_constants()
    assert constants == []
    monkeypatch.setattr(factory, "not_folded", lambda z: z)
    constants, e_plain = folded_per_atom_constants()
    assert constants and rel(e_barrier, e_plain) <= 1e-13
    monkeypatch.undo()

    species = jnp.stack([mol["species"], jnp.roll(mol["species"], 1), (mol["species"] + 1) % 4])
    batched = jax.vmap(lambda z: mol["apply"](mol["params"], mol["R"], nbrs, species=z))(species)
    loop = jnp.stack([energy(mol, species=z) for z in species])
    assert rel(batched, loop) <= 1e-13 and len(set(np.asarray(loop).round(8))) == 3


def test_bound_neighbour_lists_are_not_constant_folded(mol, monkeypatch):
    """A neighbour list bound into a jitted energy (a closure, as in ``jit(lambda R: energy_fn(R, neighbor=nbrs))``)
    reaches XLA behind an optimisation barrier, so XLA does not fold the index work at compile time: the compiled
    program holds the list itself as a constant and nothing derived from it. Without the barrier it holds derived
    index and mask arrays, which shows the check can fail; on JAX 0.4.37 those made SO3LR e+f on 1536 water atoms
    26x slower."""
    import re

    import so3krates_hk.graph as graph

    nbrs = mol["nbrs"]
    slots = nbrs.idx.shape[1]

    def derived_constants():
        _, apply_fn = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0, **SMALL)
        fn = jax.jit(jax.value_and_grad(lambda r: apply_fn(mol["params"], r, nbrs, species=mol["species"])))
        text = fn.lower(mol["R"]).compile().as_text()
        return re.findall(rf"= (?:s32|pred)\[{slots}(?:,1)?\]\S* constant\(", text), fn(mol["R"])

    constants, (e_barrier, g_barrier) = derived_constants()
    assert constants == []
    monkeypatch.setattr(graph, "not_folded", lambda x: x)
    constants, (e_plain, g_plain) = derived_constants()
    assert constants and rel(e_barrier, e_plain) <= 1e-13 and rel(g_barrier, g_plain) <= 1e-12


def test_float32_agrees_with_float64(mol):
    p32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), mol["params"])
    R32 = mol["R"].astype(jnp.float32)
    _, nbrs = free_lists(R32, CUTOFF)
    e32, g32 = jax.value_and_grad(mol["apply"], argnums=1)(p32, R32, nbrs, mol["species"])
    e64, g64 = jax.value_and_grad(mol["apply"], argnums=1)(mol["params"], mol["R"], mol["nbrs"], mol["species"])
    assert e32.dtype == jnp.float32 and g32.dtype == jnp.float32
    assert rel(e32, e64) <= 1e-5
    assert rel(g32, g64) <= 1e-4


def test_edge_capacity_overflow_gives_nan_and_a_flag(mol):
    R, nbrs = mol["R"], mol["nbrs"]
    n_edges = int(energy_all(mol, max_edges=None)["num_edges"])
    ok = energy_all(mol, max_edges=n_edges)
    assert not bool(ok["edge_overflow"]) and np.isfinite(float(ok["energy"]))
    assert rel(ok["energy"], energy(mol)) <= 1e-12
    # Capacity counts whole pairs (two directed edges): n − 1 still holds all n/2 pairs, n − 2 does not.
    assert not bool(energy_all(mol, max_edges=n_edges - 1)["edge_overflow"])
    bad = energy_all(mol, max_edges=n_edges - 2)
    assert bool(bad["edge_overflow"]) and np.isnan(float(bad["energy"]))
    _, apply_fn = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0,
                                            max_edges=n_edges - 2, **SMALL)  # fmt: skip
    g = jax.grad(apply_fn, argnums=1)(mol["params"], R, nbrs, mol["species"])
    from so3krates_hk.graph import build_graph

    graph = build_graph(mol["disp"], R, nbrs, CUTOFF)
    has_edge = np.zeros(len(R), bool)
    has_edge[np.asarray(graph.centers)[np.asarray(graph.mask)]] = True
    assert has_edge.sum() >= len(R) - 3
    assert bool(jnp.all(jnp.isnan(g[has_edge])))  # forces are NaN on every atom with an edge


def energy_all(mol, max_edges):
    _, apply_fn = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0,
                                            max_edges=max_edges, mode="all", **SMALL)  # fmt: skip
    return apply_fn(mol["params"], mol["R"], mol["nbrs"], species=mol["species"])


def test_capacity_and_avg_neighbors_from_test_structure(mol):
    _, apply_fn = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, positions_test=mol["R"],
                                            neighbor_test=mol["nbrs"], **SMALL)  # fmt: skip
    n_edges = int(energy_all(mol, None)["num_edges"])
    assert apply_fn.max_edges == int(np.ceil(1.25 * n_edges))
    assert apply_fn.avg_num_neighbors == pytest.approx(n_edges / len(mol["R"]))


def test_cg_chain_trains_with_optax():
    # CG use: species 0…19, cutoff 10 Å, a 50-bead chain, random init, a few steps of force matching.
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(50, 3))
    chain = jnp.asarray(np.cumsum(3.8 * steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0))
    species = jnp.asarray(rng.integers(0, 20, 50), jnp.int32)
    displacement, nbrs = free_lists(chain, 10.0)
    init_fn, apply_fn = so3krates_neighborlist_pp(
        displacement, 10.0, n_species=20, positions_test=chain, neighbor_test=nbrs,
        num_layers=2, num_features=32, degrees=(1, 2), bernstein_gamma=0.4,
    )  # fmt: skip
    params = init_fn(jax.random.PRNGKey(42), chain, nbrs, species=species)
    frames = chain[None] + 0.3 * jnp.asarray(rng.normal(size=(4, 50, 3)))

    def toy_energy(r):  # a Gaussian pair repulsion: representable by the model
        d2 = jnp.sum((r[:, None] - r[None]) ** 2, -1) + jnp.eye(len(r)) * 1e6
        return 0.5 * jnp.sum(jnp.exp(-d2 / 8.0))

    target = jax.vmap(lambda r: -jax.grad(toy_energy)(r))(frames)

    def loss(p):
        forces = jax.vmap(lambda r: -jax.grad(apply_fn, argnums=1)(p, r, nbrs, species))(frames)
        return jnp.mean((forces - target) ** 2)

    opt = optax.adam(1e-2)
    state = opt.init(params)
    step = jax.jit(lambda p, s: (lambda l, g: (l, *optax_step(opt, p, s, g)))(*jax.value_and_grad(loss)(p)))
    losses = []
    for _ in range(20):
        l, params, state = step(params, state)
        losses.append(float(l))
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


def optax_step(opt, p, s, g):
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s


def test_charge_and_spin_embeddings_are_optional_and_zero_at_zero(mol):
    init_fn, apply_fn = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0,
                                                  use_charge_embed=True, use_spin_embed=True, **SMALL)  # fmt: skip
    params = init_fn(jax.random.PRNGKey(0), mol["R"], mol["nbrs"], species=mol["species"])
    assert "so3krates/charge_embedding" in params and "so3krates/spin_embedding" in params
    assert "so3krates/charge_embedding" not in mol["params"]
    e0 = apply_fn(params, mol["R"], mol["nbrs"], mol["species"])
    e1 = apply_fn(params, mol["R"], mol["nbrs"], mol["species"], total_charge=1.0)
    e2 = apply_fn(params, mol["R"], mol["nbrs"], mol["species"], num_unpaired_electrons=2.0)
    assert float(e0) != float(e1) and float(e0) != float(e2)
    # With Q = S = 0 the charge/spin embeddings vanish: x0 = e_Z / sqrt(3).
    _, apply_all = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0, mode="all",
                                             use_charge_embed=True, use_spin_embed=True, **SMALL)  # fmt: skip
    out = apply_all(params, mol["R"], mol["nbrs"], mol["species"])
    table = params["so3krates/atom_type_embedding"]["embeddings"]
    np.testing.assert_allclose(out["x_embed"], table[mol["species"]] / np.sqrt(3), rtol=1e-15)


def test_bad_inputs_raise_clear_errors(mol):
    R, nbrs, sp = mol["R"], mol["nbrs"], mol["species"]
    apply_fn, params = mol["apply"], mol["params"]
    with pytest.raises(InputError, match=r"species\[2\] = 4"):
        apply_fn(params, R, nbrs, sp.at[2].set(4))
    with pytest.raises(InputError, match="shape"):
        apply_fn(params, R[:, :2], nbrs, sp)
    with pytest.raises(InputError, match="species must have shape"):
        apply_fn(params, R, nbrs, sp[:-1])
    with pytest.raises(InputError, match="mask must have shape"):
        apply_fn(params, R, nbrs, sp, mask=jnp.ones(3, bool))
    with pytest.raises(InputError, match="atom 5 is not finite"):
        apply_fn(params, R.at[5, 1].set(jnp.nan), nbrs, sp)
    with pytest.raises(InputError, match="integers"):
        apply_fn(params, R, nbrs, sp.astype(jnp.float32))
    _, ordered = free_lists(R, CUTOFF, partition.OrderedSparse)
    with pytest.raises(InputError, match="both directions"):
        apply_fn(params, R, ordered, sp)
    with pytest.raises(ValueError, match="Unknown hyperparameter"):
        so3krates_neighborlist_pp(mol["disp"], CUTOFF, avg_num_neighbors=5.0, num_layer=2)
    with pytest.raises(ValueError, match="'num_layers' must be an int"):
        so3krates_neighborlist_pp(mol["disp"], CUTOFF, avg_num_neighbors=5.0, num_layers=2.5)
    with pytest.raises(ValueError, match="avg_num_neighbors is required"):
        so3krates_neighborlist_pp(mol["disp"], CUTOFF)
    with pytest.raises(ValueError, match="mode"):
        so3krates_neighborlist_pp(mol["disp"], CUTOFF, avg_num_neighbors=5.0, mode="forces")
    # Overlapping atoms, coincident ones included (a list entry with d = 0 has no direction and would be dropped).
    for d, text in ((0.0, "0"), (0.05, "0.05")):
        R2 = R.at[6].set(R[2] + jnp.array([d, 0.0, 0.0]))
        _, nbrs2 = free_lists(R2, CUTOFF)
        with pytest.raises(InputError, match=rf"atoms 2 and 6 are {text} Å apart"):
            apply_fn(params, R2, nbrs2, sp)
        apply_fn(params, R2, nbrs2, sp, mask=jnp.ones(len(R), bool).at[6].set(False))  # a masked ghost may overlap
        with pytest.raises(InputError, match=rf"atoms 2 and 6 are {text} Å apart"):  # concrete inside a jit
            jax.jit(lambda p, R2=R2, nbrs2=nbrs2: apply_fn(p, R2, nbrs2, sp))(params)
    # Inside jit, value checks cannot run: the documented behaviour is a NaN, not an exception.
    e = jax.jit(lambda r: apply_fn(params, r, nbrs, sp))(R.at[5, 1].set(jnp.nan))
    assert np.isnan(float(e))


def test_positive_species_shifts_by_one(mol):
    _, apply_fn = so3krates_neighborlist_pp(mol["disp"], CUTOFF, n_species=4, avg_num_neighbors=5.0,
                                            positive_species=True, **SMALL)  # fmt: skip
    e = apply_fn(mol["params"], mol["R"], mol["nbrs"], mol["species"] + 1)
    assert rel(e, energy(mol)) <= 1e-14
    with pytest.raises(InputError):
        apply_fn(mol["params"], mol["R"], mol["nbrs"], mol["species"])  # 0 is out of range when 1-based


def test_default_hyperparameters_are_so3lr():
    import json
    from importlib import resources

    from so3krates_hk import SO3kratesConfig

    hyper = json.loads(resources.files("so3krates_hk.pretrained").joinpath("hyperparameters.json").read_text())["model"]
    c = SO3kratesConfig()
    assert (c.num_layers, c.num_features, c.num_heads) == (hyper["num_layers"], hyper["num_features"], hyper["num_heads"])
    assert list(c.degrees) == hyper["degrees"] and c.num_radial_basis_fn == hyper["num_radial_basis_fn"]
    assert c.cutoff_fn == hyper["cutoff_fn"] and c.activation_fn == hyper["activation_fn"]
    assert (c.layer_normalization_1, c.layer_normalization_2) == (True, True)
    assert (c.residual_mlp_1, c.residual_mlp_2) == (hyper["residual_mlp_1"], hyper["residual_mlp_2"])
    assert c.energy_regression_dim == hyper["energy_regression_dim"]
    assert dataclasses.replace(c, num_layers=2).num_layers == 2


_TWO_GENERAL_CELL_MODELS = r"""
import sys
import jax, jax.numpy as jnp, numpy as np
from so3krates_hk import so3krates_neighborlist_pp
from so3krates_hk._compat import jax_md, partition
L, out = 9.0, []
for seed in (0, 1):  # two models on the same structure, each with its list in a general periodic cell
    rng = np.random.default_rng(0)
    frac = jnp.asarray((np.stack(np.meshgrid(*[np.arange(3)] * 3), -1).reshape(-1, 3) + 0.5) / 3
                       + rng.normal(scale=0.02, size=(27, 3)), jnp.float32)
    box = jnp.asarray(np.eye(3) * L + rng.normal(scale=0.3, size=(3, 3)), jnp.float32)
    disp, _ = jax_md.space.periodic_general(box)
    nbrs = partition.neighbor_list(disp, box, 3.0, dr_threshold=0.3, format=partition.Sparse,
                                   fractional_coordinates=True).allocate(frac)
    species = jnp.asarray(rng.integers(0, 4, 27), jnp.int32)
    init_fn, apply_fn = so3krates_neighborlist_pp(disp, 3.0, n_species=4, positions_test=frac, neighbor_test=nbrs,
                                                  num_layers=1, num_features=16, num_heads=2, degrees=[1, 2],
                                                  num_radial_basis_fn=8)
    params = init_fn(jax.random.PRNGKey(seed), frac, nbrs, species=species)
    ef = jax.jit(jax.value_and_grad(lambda p, r, n: apply_fn(p, r, n, species=species), argnums=1))
    e, g = ef(params, frac, nbrs)
    out.append(bool(np.isfinite(float(e)) and np.all(np.isfinite(np.asarray(g)))))
print("ok" if all(out) else "not finite")
"""


def test_lists_of_general_periodic_cells_work_for_a_second_model():
    """jax-md keeps the cell size of a list in a general periodic cell (fractional coordinates) as a JAX scalar in the
    list's static data, which JAX compares when it looks up a compiled function. On JAX 0.4.37 a second model's
    jitted energy+forces on such a list then failed with a ``TracerBoolConversionError`` inside JAX's cache lookup
    (or hung there). The factories turn the cell size into a Python float (``graph.static_cell_size``). Run in a
    subprocess with a time limit, so a hang fails the test rather than stalling the suite."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", _TWO_GENERAL_CELL_MODELS], cwd=root, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
