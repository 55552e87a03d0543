"""SO3LR as a whole: component bookkeeping, long-range list formats, padding, forces through q and h, invariance,
switches, masks, input errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import free_lists, rel, rotation, tree_all_finite

from so3krates_hk import InputError, pretrained, so3lr_neighborlist_pp
from so3krates_hk._compat import partition
from so3krates_hk.data import reference_structure
from so3krates_hk.factory import so3lr_to_jax_md


@pytest.fixture(scope="module")
def dha():
    s = reference_structure("dha")
    R = jnp.asarray(s.positions)
    displacement, sr = free_lists(R, 4.5)
    _, lr = free_lists(R, 12.0, partition.OrderedSparse)
    _, lr_full = free_lists(R, 12.0, partition.Sparse)
    params = jax.tree_util.tree_map(jnp.asarray, pretrained.so3lr()[0])
    _, apply_all = so3lr_neighborlist_pp(displacement, mode="all")
    return dict(R=R, Z=jnp.asarray(s.atomic_numbers), disp=displacement, sr=sr, lr=lr, lr_full=lr_full,
                params=params, apply_all=apply_all)  # fmt: skip


def test_energy_is_the_sum_of_the_components(dha):
    out = dha["apply_all"](dha["params"], dha["R"], dha["sr"], dha["lr"], dha["Z"])
    parts = sum(out[k] for k in ("energy_nn", "energy_zbl", "energy_elec", "energy_disp"))
    np.testing.assert_allclose(out["per_atom_energy"], parts, rtol=0, atol=1e-13)
    assert abs(float(out["energy"]) - float(parts.sum())) <= 1e-12
    assert abs(float(out["partial_charges"].sum())) <= 1e-12  # charge conservation at Q = 0


def test_ordered_and_full_long_range_lists_agree(dha):
    _, apply_full = so3lr_neighborlist_pp(dha["disp"], lr_neighbor_format="sparse")
    _, apply_ord = so3lr_neighborlist_pp(dha["disp"], lr_neighbor_format="ordered")
    e_full = apply_full(dha["params"], dha["R"], dha["sr"], dha["lr_full"], dha["Z"])
    e_ord = apply_ord(dha["params"], dha["R"], dha["sr"], dha["lr"], dha["Z"])
    assert abs(float(e_full - e_ord)) <= 1e-10
    # A full list declared as ordered would double both long-range terms (docs/model.md, "Graphs"): refused.
    with pytest.raises(InputError, match="double or halve"):
        apply_ord(dha["params"], dha["R"], dha["sr"], dha["lr_full"], dha["Z"])


def test_padded_short_and_long_range_edges_keep_gradients_finite(dha):
    _, sr = free_lists(dha["R"], 4.5, capacity_multiplier=3.0)
    N = len(dha["R"])
    lr = dha["lr"]  # every pair of dha is within 12 Å: jax-md allocates no padding, so add some by hand
    lr = dataclasses.replace(lr, idx=jnp.concatenate([lr.idx, jnp.full((2, 300), N, lr.idx.dtype)], axis=1))
    assert int((sr.idx[0] == N).sum()) > 100 and int((lr.idx[0] == N).sum()) > 100
    _, apply_fn = so3lr_neighborlist_pp(dha["disp"])
    e, (gp, gr) = jax.value_and_grad(apply_fn, argnums=(0, 1))(dha["params"], dha["R"], sr, lr, dha["Z"])
    e0 = apply_fn(dha["params"], dha["R"], dha["sr"], dha["lr"], dha["Z"])
    assert abs(float(e - e0)) <= 1e-10
    assert tree_all_finite(gp) and tree_all_finite(gr)


def test_forces_by_finite_differences_through_charges_and_hirshfeld(dha):
    # Charged, so q depends on geometry non-trivially; all four terms on.
    _, apply_fn = so3lr_neighborlist_pp(dha["disp"], check_spin_parity=False)
    R, sr, lr, Z, p = dha["R"], dha["sr"], dha["lr"], dha["Z"], dha["params"]

    def e(r):
        return apply_fn(p, r, sr, lr, Z, 1.0, 0.0)

    grad = jax.grad(e)(R)
    h = 1e-5
    for i, a in [(0, 0), (7, 1), (20, 2), (33, 0), (55, 1)]:
        dR = jnp.zeros_like(R).at[i, a].set(h)
        fd = (e(R + dR) - e(R - dR)) / (2 * h)
        assert abs(float(fd - grad[i, a])) <= 1e-6, (i, a)


def test_forces_of_each_long_range_term_by_finite_differences(dha):
    # Electrostatics alone and dispersion alone: their forces flow through q(R) and h(R).
    for flags in (dict(zbl=False, dispersion=False), dict(zbl=False, electrostatics=False)):
        _, apply_fn = so3lr_neighborlist_pp(dha["disp"], mode="all", **flags)

        def e(r):
            out = apply_fn(dha["params"], r, dha["sr"], dha["lr"], dha["Z"])
            return out["energy"] - out["energy_nn"].sum()

        R = dha["R"]
        grad = jax.grad(e)(R)
        h = 1e-5
        for i, a in [(3, 0), (30, 2)]:
            dR = jnp.zeros_like(R).at[i, a].set(h)
            fd = (e(R + dR) - e(R - dR)) / (2 * h)
            assert abs(float(fd - grad[i, a])) <= 1e-8, (flags, i, a)


def test_rotation_invariance_with_all_terms(dha):
    _, apply_fn = so3lr_neighborlist_pp(dha["disp"])
    e0 = apply_fn(dha["params"], dha["R"], dha["sr"], dha["lr"], dha["Z"])
    Rr = (dha["R"] - dha["R"].mean(0)) @ jnp.asarray(rotation(4)).T + 3.0
    _, sr = free_lists(Rr, 4.5)
    _, lr = free_lists(Rr, 12.0, partition.OrderedSparse)
    assert rel(apply_fn(dha["params"], Rr, sr, lr, dha["Z"]), e0) <= 1e-10


def test_remat_reproduces_so3lr(dha):
    _, apply_r = so3lr_neighborlist_pp(dha["disp"], mode="all", remat=True)

    def ef(apply):
        f = lambda r: apply(dha["params"], r, dha["sr"], dha["lr"], dha["Z"])["energy"]  # noqa: E731
        return jax.value_and_grad(f)(dha["R"])

    (e0, g0), (e1, g1) = ef(dha["apply_all"]), ef(apply_r)
    assert abs(float(e1 - e0)) <= 1e-10 and float(jnp.max(jnp.abs(g1 - g0))) <= 1e-10


def test_terms_switch_off(dha):
    args = (dha["params"], dha["R"], dha["sr"], dha["lr"], dha["Z"])
    full = dha["apply_all"](*args)
    _, nn_only = so3lr_neighborlist_pp(dha["disp"], zbl=False, electrostatics=False, dispersion=False, mode="all")
    out = nn_only(dha["params"], dha["R"], dha["sr"], None, dha["Z"])  # no long-range list needed
    assert float(jnp.abs(out["energy_zbl"]).max() + jnp.abs(out["energy_elec"]).max()) == 0.0
    assert abs(float(out["energy"] - full["energy_nn"].sum())) <= 1e-12


def test_masked_ghost_atoms_change_nothing(dha):
    R, Z = dha["R"], dha["Z"]
    ghosts = jnp.concatenate([R, R[:2] + 0.3])
    Zg = jnp.concatenate([Z, jnp.array([0, 200], jnp.int32)])  # invalid Z on ghosts is fine: they are masked
    mask = jnp.arange(len(ghosts)) < len(R)
    _, sr = free_lists(ghosts, 4.5)
    _, lr = free_lists(ghosts, 12.0, partition.OrderedSparse)
    _, apply_fn = so3lr_neighborlist_pp(dha["disp"], check_spin_parity=False)
    e, g = jax.value_and_grad(apply_fn, argnums=1)(dha["params"], ghosts, sr, lr, Zg, 1.0, 0.0, mask)
    e0, g0 = jax.value_and_grad(apply_fn, argnums=1)(dha["params"], R, dha["sr"], dha["lr"], Z, 1.0, 0.0)
    assert abs(float(e - e0)) <= 1e-10
    assert rel(g[: len(R)], g0) <= 1e-10 and float(jnp.abs(g[len(R):]).max()) == 0.0


def test_bad_inputs(dha):
    _, apply_fn = so3lr_neighborlist_pp(dha["disp"])
    p, R, sr, lr, Z = dha["params"], dha["R"], dha["sr"], dha["lr"], dha["Z"]
    with pytest.raises(InputError, match=r"atomic number \(species\)\[4\] = 100"):
        apply_fn(p, R, sr, lr, Z.at[4].set(100))
    with pytest.raises(InputError, match=r"\[0\] = 0"):
        apply_fn(p, R, sr, lr, Z.at[0].set(0))
    with pytest.raises(InputError, match="integer number of elementary charges"):
        apply_fn(p, R, sr, lr, Z, total_charge=0.5)
    with pytest.raises(InputError, match="inconsistent with"):
        apply_fn(p, R, sr, lr, Z, total_charge=1.0, num_unpaired_electrons=0.0)
    with pytest.raises(InputError, match="non-negative"):
        apply_fn(p, R, sr, lr, Z, num_unpaired_electrons=-2.0)
    with pytest.raises(InputError, match="both directions"):
        apply_fn(p, R, lr, lr, Z)
    with pytest.raises(InputError, match="needs species"):
        apply_fn(p, R, sr, lr, None)
    R2 = R.at[3].set(R[7] + jnp.array([0.0, 0.05, 0.0]))
    _, sr2 = free_lists(R2, 4.5)
    _, lr2 = free_lists(R2, 12.0, partition.OrderedSparse)
    with pytest.raises(InputError, match=r"atoms 3 and 7 are 0\.05 Å apart"):
        apply_fn(p, R2, sr2, lr2, Z)
    assert np.isfinite(float(apply_fn(p, R, sr, lr, Z, total_charge=1.0, num_unpaired_electrons=1.0)))


def test_to_jax_md_runs_nve_with_pretrained_weights(dha):
    from so3krates_hk._compat import jax_md

    R = dha["R"] - dha["R"].mean(0) + 25.0
    displacement, shift = jax_md.space.free()
    neighbor_fn, neighbor_fn_lr, energy_fn = so3lr_to_jax_md(displacement, 50.0, dha["Z"], disable_cell_list=True)
    nbrs, nbrs_lr = neighbor_fn.allocate(R), neighbor_fn_lr.allocate(R)
    assert abs(float(energy_fn(R, nbrs, nbrs_lr) - dha["apply_all"](dha["params"], R, nbrs, nbrs_lr, dha["Z"])["energy"])) <= 1e-10
    init, step = jax_md.simulate.nve(energy_fn, shift, dt=0.1 * 0.09822694788464063)  # 0.1 fs (time unit √(amu Å²/eV) = 10.18 fs)
    mass = jnp.asarray([1.008, 12.011, 14.007, 15.999])[jnp.searchsorted(jnp.array([1, 6, 7, 8]), dha["Z"])]
    state = init(jax.random.PRNGKey(0), R, kT=0.0, mass=mass[:, None], neighbor=nbrs, neighbor_lr=nbrs_lr)
    step = jax.jit(step)
    e0 = None
    for _ in range(20):
        nbrs, nbrs_lr = nbrs.update(state.position), nbrs_lr.update(state.position)
        state = step(state, neighbor=nbrs, neighbor_lr=nbrs_lr)
        kin = float(jax_md.quantity.kinetic_energy(momentum=state.momentum, mass=state.mass))
        tot = float(energy_fn(state.position, nbrs, nbrs_lr)) + kin
        e0 = tot if e0 is None else e0
    assert not bool(nbrs.did_buffer_overflow) and not bool(nbrs_lr.did_buffer_overflow)
    assert abs(tot - e0) <= 1e-4


def test_so3lr_config_is_checked_and_carried_by_the_factory():
    """The SO3LR energy's settings are one checked dataclass; the factory builds it from its arguments."""
    from so3krates_hk.config import SO3LRConfig, SO3kratesConfig
    from so3krates_hk._compat import jax_md

    default = SO3LRConfig()
    assert default.so3krates == SO3kratesConfig(use_charge_embed=True, use_spin_embed=True)
    assert (default.r_cutoff, default.lr_cutoff, default.dispersion_damping) == (4.5, 12.0, 2.0)
    for bad, match in [(dict(r_cutoff=0.0), "r_cutoff"), (dict(lr_cutoff=-12.0), "lr_cutoff"),
                       (dict(dispersion_damping=13.0), "must not exceed lr_cutoff"), (dict(zbl=1), "'zbl'"),
                       (dict(electrostatic_energy_scale="4"), "electrostatic_energy_scale")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            SO3LRConfig(**bad)
    assert SO3LRConfig(lr_cutoff=None, dispersion_damping=0.0).lr_cutoff is None  # untruncated: no switch width

    displacement, _ = jax_md.space.free()
    _, apply_fn = so3lr_neighborlist_pp(displacement, lr_cutoff=10.0, dispersion=False, num_layers=2)
    cfg = apply_fn.so3lr_config
    assert (cfg.lr_cutoff, cfg.dispersion, cfg.so3krates.num_layers, cfg.long_range) == (10.0, False, 2, True)
    with pytest.raises(ValueError, match="dispersion_damping"):
        so3lr_neighborlist_pp(displacement, lr_cutoff=1.0)
