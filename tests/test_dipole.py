"""Dipole moments from SO3LR's partial charges: Σ q_i (r_i − R_com), translation behaviour, masking, periodic cells."""

import numpy as np
import pytest

import jax.numpy as jnp

from so3krates_hk.physics.dipole import ATOMIC_MASSES, center_of_mass, dipole_moment

ase = pytest.importorskip("ase")
import ase.data  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import molecule  # noqa: E402
from ase.calculators.calculator import PropertyNotImplementedError  # noqa: E402


def test_masses_are_ase_standard_weights():
    np.testing.assert_array_equal(np.asarray(ATOMIC_MASSES), ase.data.atomic_masses[:100])


def test_dipole_formula_and_padding_contributes_zero():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(5, 3))
    q = rng.normal(size=5)
    Z = np.array([1, 6, 7, 8, 1])
    m = ase.data.atomic_masses[Z]
    com = (m[:, None] * R).sum(0) / m.sum()
    expected = (q[:, None] * (R - com)).sum(0)
    np.testing.assert_allclose(dipole_moment(jnp.asarray(q), jnp.asarray(R), jnp.asarray(Z)), expected, atol=1e-12)
    # two padded atoms (masked, arbitrary values) change nothing
    Rp = np.concatenate([R, rng.normal(size=(2, 3)) * 50])
    qp = np.concatenate([q, [3.0, -7.0]])
    Zp = np.concatenate([Z, [1, 1]])
    mask = np.arange(7) < 5
    got = dipole_moment(jnp.asarray(qp), jnp.asarray(Rp), jnp.asarray(Zp), jnp.asarray(mask))
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(center_of_mass(jnp.asarray(Rp), jnp.asarray(ase.data.atomic_masses[Zp]),
                                              jnp.asarray(mask)), com, atol=1e-12)  # fmt: skip


@pytest.fixture(scope="module")
def calc():
    from so3krates_hk.ase import SO3LRCalculator

    return SO3LRCalculator(dtype="float64")


@pytest.mark.slow  # two compilations of the calculator (3 and 4 atoms)
def test_neutral_and_charged_molecules(calc):
    t = np.array([3.0, -2.0, 5.0])
    # neutral: μ = Σ q_i r_i, origin-independent
    water = molecule("H2O")
    water.calc = calc
    mu = water.get_dipole_moment()
    q = water.get_charges()
    assert abs(q.sum()) < 1e-10
    np.testing.assert_allclose(mu, (q[:, None] * water.positions).sum(0), rtol=0, atol=1e-10)
    assert np.linalg.norm(mu) > 0.05  # water has a dipole
    moved = water.copy()
    moved.translate(t)
    moved.calc = calc
    np.testing.assert_allclose(moved.get_dipole_moment(), mu, rtol=0, atol=1e-9)

    # charged (Q = +1, doublet): about the centre of mass, so translation-invariant; Σ q_i r_i itself is not
    ion = molecule("NH3")
    ion.info.update(charge=1, multiplicity=2)
    ion.positions[0] += [0.05, 0.0, 0.02]  # break the symmetry
    ion.calc = calc
    mu = ion.get_dipole_moment()
    q = ion.get_charges()
    assert q.sum() == pytest.approx(1.0, abs=1e-10)
    com = ion.get_center_of_mass()
    np.testing.assert_allclose(mu, (q[:, None] * (ion.positions - com)).sum(0), rtol=0, atol=1e-10)
    moved = ion.copy()
    moved.translate(t)
    moved.calc = calc
    np.testing.assert_allclose(moved.get_dipole_moment(), mu, rtol=0, atol=1e-9)
    raw = lambda a: (a.get_charges()[:, None] * a.positions).sum(0)  # noqa: E731
    np.testing.assert_allclose(raw(moved) - raw(ion), q.sum() * t, atol=1e-9)  # shifts by Q·t


def test_mode_all_has_the_dipole():
    from so3krates_hk import pretrained
    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3lr_neighborlist_pp

    params, kwargs = pretrained.so3lr()
    kwargs.pop("r_cutoff"), kwargs.pop("lr_cutoff")
    displacement, _ = jax_md.space.free()
    water = molecule("H2O")
    R = jnp.asarray(water.positions)
    sr = partition.neighbor_list(displacement, 1.0, 4.5, format=partition.Sparse, disable_cell_list=True).allocate(R)
    lr = partition.neighbor_list(displacement, 1.0, 12.0, format=partition.OrderedSparse,
                                 disable_cell_list=True).allocate(R)  # fmt: skip
    _, apply_fn = so3lr_neighborlist_pp(displacement, mode="all", **kwargs)
    out = apply_fn(params, R, sr, lr, jnp.asarray(water.numbers))
    q = np.asarray(out["partial_charges"])
    np.testing.assert_allclose(out["dipole"], (q[:, None] * water.positions).sum(0), rtol=0, atol=1e-6)


@pytest.mark.slow  # compiles the periodic calculator
def test_periodic_dipole_is_not_defined(calc):
    box = Atoms(cell=np.eye(3) * 24.5, pbc=True)
    box += molecule("H2O")
    box.calc = calc
    box.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        box.get_dipole_moment()
