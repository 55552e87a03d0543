"""The ASE calculator (``so3krates_hk.ase.SO3LRCalculator``): parity with the jax-md path, charge and spin from
``atoms.info``, periodic cells and stress, neighbour-list reuse, ASE optimiser and MD, float32, input errors.

Compilations dominate the run time, so each calculator is module-scoped and every test on it keeps the atom count
(and hence the compiled shapes) fixed: dha (56 atoms) in free space and in a periodic box, and the 64-molecule water
box (192 atoms, 12.4 Å) with a 6 Å long-range cutoff.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import rotation

ase = pytest.importorskip("ase")
import ase.io  # noqa: E402
from ase import units  # noqa: E402
from ase.calculators.calculator import PropertyNotImplementedError  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402
from ase.optimize import BFGS  # noqa: E402

from so3krates_hk import InputError, pretrained, validation  # noqa: E402
from so3krates_hk.ase import SO3LRCalculator, charge_and_spin  # noqa: E402
from so3krates_hk.data.parity import reference_system, so3lr_on_reference  # noqa: E402

REF = os.path.join(os.path.dirname(validation.__file__), "data", "so3lr_reference")


def read_dha():
    atoms = ase.io.read(os.path.join(REF, "dha.xyz"))
    atoms.pbc = False  # the file carries a 999.9 Å placeholder cell; the reference runs are gas phase
    atoms.cell = None
    return atoms


def read_water():
    return ase.io.read(os.path.join(REF, "water_64.xyz"))  # 12.4 Å cube, pbc


@pytest.fixture(scope="module")
def calc64():
    return SO3LRCalculator()


@pytest.fixture(scope="module")
def calc_water():
    return SO3LRCalculator(lr_cutoff=6.0, dispersion_damping=1.0)


@pytest.fixture(scope="module")
def reference():
    """The jax-md path (parity.so3lr_on_reference) on dha, float64, neutral and with Q = 1, S = 1."""
    params = pretrained.so3lr()[0]
    system = reference_system("dha")
    return {qs: so3lr_on_reference(params, system, total_charge=qs[0], num_unpaired_electrons=qs[1])
            for qs in [(0.0, 0.0), (1.0, 1.0)]}  # fmt: skip


def sheared_rotated_water(seed=3):
    """The water box, sheared into a triclinic cell (widths stay ≥ 12 Å) and rotated out of ASE's standard form."""
    atoms = read_water()
    cell = atoms.cell.array @ np.array([[1.0, 0.0, 0.0], [0.12, 1.0, 0.0], [-0.05, 0.08, 1.0]])
    atoms.set_cell(cell, scale_atoms=True)
    Q = rotation(seed)
    atoms.set_cell(atoms.cell.array @ Q.T, scale_atoms=True)  # rotates cell and positions alike
    return atoms


# ---------------------------------------------------------------------------------------------------------------
# Parity, charge and spin


def test_matches_the_jax_md_path_float64(calc64, reference):
    atoms = read_dha()
    atoms.calc = calc64
    ref = reference[(0.0, 0.0)]
    assert abs(atoms.get_potential_energy() - float(ref["energy"])) <= 1e-8
    assert float(np.abs(atoms.get_forces() - ref["forces"]).max()) <= 1e-8
    assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()
    assert abs(atoms.calc.get_property("energies").sum() - atoms.get_potential_energy()) <= 1e-10
    np.testing.assert_allclose(atoms.get_charges(), ref["partial_charges"], rtol=0, atol=1e-10)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()  # free space: no stress


def test_charge_and_multiplicity_from_atoms_info(calc64, reference):
    atoms = read_dha()
    atoms.calc = calc64
    atoms.info.update(charge=1, multiplicity=2)  # S = multiplicity − 1 = 1
    ref = reference[(1.0, 1.0)]
    assert abs(atoms.get_potential_energy() - float(ref["energy"])) <= 1e-8
    assert float(np.abs(atoms.get_forces() - ref["forces"]).max()) <= 1e-8
    assert abs(atoms.get_charges().sum() - 1.0) <= 1e-10
    # Changing only atoms.info invalidates ASE's cache (ASE itself does not compare info).
    del atoms.info["multiplicity"]
    atoms.info.update(charge=0)
    assert abs(atoms.get_potential_energy() - float(reference[(0.0, 0.0)]["energy"])) <= 1e-8
    # info["spin"] is S directly.
    assert charge_and_spin({"charge": 1, "spin": 1}) == charge_and_spin({"charge": 1.0, "multiplicity": 2}) == (1, 1)
    assert charge_and_spin({}) == (0.0, 0.0)


def test_bad_charge_spin_and_atoms_are_clear_errors(calc64):
    atoms = read_dha()
    atoms.calc = calc64
    cases = [
        (dict(charge=0.5), "must be an integer"),
        (dict(charge=1), "inconsistent with"),  # odd electron count needs S odd
        (dict(multiplicity=0), "multiplicity"),
        (dict(multiplicity=3, spin=1), "contradicts"),
        (dict(charge="plus one"), "single number"),
    ]
    for info, match in cases:
        atoms.info = dict(info)
        with pytest.raises(InputError, match=match):
            atoms.get_potential_energy()
    atoms.info = {}
    bad = atoms.copy()
    bad.positions[7] = bad.positions[3] + [0.05, 0.0, 0.0]
    bad.calc = calc64
    with pytest.raises(InputError, match=r"atoms 3 and 7 are 0\.05 Å apart"):
        bad.get_potential_energy()
    bad = atoms.copy()
    bad.positions[5, 1] = np.nan
    bad.calc = calc64
    with pytest.raises(InputError, match="atom 5 is not finite"):
        bad.get_potential_energy()
    for z in (0, 100):
        bad = atoms.copy()
        bad.numbers[2] = z
        bad.calc = calc64
        with pytest.raises(InputError, match=rf"atomic number\[2\] = {z}"):
            bad.get_potential_energy()
    bad = atoms.copy()
    bad.cell, bad.pbc = np.eye(3) * 40.0, [True, True, False]
    bad.calc = calc64
    with pytest.raises(NotImplementedError, match="pbc"):
        bad.get_potential_energy()
    water = read_water()  # 12.4 Å cell, default lr_cutoff 12 Å: minimum image would be wrong
    water.calc = calc64
    with pytest.raises(InputError, match=r"too small.*12\.4 Å < 2 × 12 Å"):
        water.get_potential_energy()
    assert np.isfinite(atoms.get_potential_energy())  # the calculator still works afterwards


# ---------------------------------------------------------------------------------------------------------------
# Neighbour lists


def test_neighbor_lists_are_reused_and_reallocated(calc64):
    atoms = read_dha()
    atoms.calc = calc64
    e0 = atoms.get_potential_energy()
    alloc, rebuilds, compiled = calc64.num_allocations, calc64.num_rebuilds, calc64.num_compilations
    atoms.positions[10] += [1e-3, -1e-3, 0.0]  # far below skin/2: the lists are kept as they are
    e1 = atoms.get_potential_energy()
    assert (calc64.num_allocations, calc64.num_rebuilds) == (alloc, rebuilds) and e1 != e0
    atoms.positions[10] += [0.4, 0.0, 0.0]  # beyond skin/2 = 0.25 Å: rebuilt in place, same capacity
    e2 = atoms.get_potential_energy()
    assert calc64.num_allocations == alloc and calc64.num_rebuilds == rebuilds + 1
    calc64.reset_neighbor_lists()  # a fresh allocation gives the same numbers
    calc64.reset()
    assert abs(atoms.get_potential_energy() - e2) <= 1e-10 and calc64.num_allocations == alloc + 1
    # Overflow: squeeze the stored short-range list to 10 slots, then move an atom beyond skin/2: the rebuild
    # overflows, and the calculator re-allocates (at the capacity it already had, so nothing recompiles).
    from so3krates_hk.ase import _fit

    calc64._sr = _fit(calc64._sr, 10)
    atoms.positions[10] -= [0.4, 0.0, 0.0]
    e3 = atoms.get_potential_energy()
    assert calc64.num_allocations == alloc + 2
    assert abs(e3 - e1) <= 1e-10
    assert calc64.num_compilations == compiled


def test_changed_cell_reallocates_without_recompiling(calc_water):
    atoms = read_water()
    atoms.calc = calc_water
    atoms.get_potential_energy()
    alloc, compiled = calc_water.num_allocations, calc_water.num_compilations
    atoms.positions[0] += 1e-3
    atoms.get_potential_energy()
    assert calc_water.num_allocations == alloc
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=True)
    atoms.get_stress()
    assert calc_water.num_allocations == alloc + 1 and calc_water.num_compilations == compiled


# ---------------------------------------------------------------------------------------------------------------
# Periodic cells and stress


def test_molecule_in_a_periodic_box_equals_free_space_and_stress_is_the_virial(calc64):
    free = read_dha()
    free.calc = calc64
    e, f = free.get_potential_energy(), free.get_forces()
    # A triclinic cell in non-standard orientation, wide enough that no image is within 12 Å.
    cell = 36.0 * np.array([[1.0, 0.0, 0.0], [0.1, 1.0, 0.0], [-0.1, 0.15, 1.0]]) @ rotation(5).T
    boxed = free.copy()
    boxed.positions += 0.5 * cell.sum(0) - free.positions.mean(0)
    boxed.cell, boxed.pbc = cell, True
    boxed.calc = SO3LRCalculator()
    assert abs(boxed.get_potential_energy() - e) <= 1e-9
    assert float(np.abs(boxed.get_forces() - f).max()) <= 1e-9
    # For an isolated molecule, σ = (1/V) ∂E/∂ε = −(1/V) Σ_i sym(r_i ⊗ F_i).
    virial = -np.einsum("ia,ib->ab", free.positions, f)
    expected = 0.5 * (virial + virial.T) / abs(np.linalg.det(cell))
    np.testing.assert_allclose(boxed.get_stress(voigt=False), expected, rtol=0, atol=1e-10)


def test_stress_matches_finite_differences(calc_water):
    atoms = sheared_rotated_water()
    atoms.calc = calc_water
    stress = atoms.get_stress(voigt=False)
    cell, volume, d = atoms.cell.array.copy(), atoms.get_volume(), 1e-5
    fd = np.zeros((3, 3))
    for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * d / (1 if a == b else 2)
            strain[b, a] = strain[a, b]
            atoms.set_cell(cell @ strain, scale_atoms=True)  # symmetric strain, atoms follow affinely
            energies.append(atoms.get_potential_energy())
        fd[a, b] = fd[b, a] = (energies[0] - energies[1]) / (2 * d * volume)
    np.testing.assert_allclose(stress, fd, rtol=0, atol=1e-9)
    assert float(np.abs(stress).max()) > 1e-3  # not trivially zero


def test_rotated_triclinic_cell_rotates_forces_and_stress(calc_water):
    atoms = read_water()
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0, 0], [0.12, 1.0, 0], [-0.05, 0.08, 1.0]]), scale_atoms=True)
    atoms.calc = calc_water
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    Q = rotation(3)
    rotated = sheared_rotated_water(3)
    rotated.calc = calc_water
    assert abs(rotated.get_potential_energy() - e) <= 1e-9
    assert float(np.abs(rotated.get_forces() - f @ Q.T).max()) <= 1e-9
    np.testing.assert_allclose(rotated.get_stress(voigt=False), Q @ s @ Q.T, rtol=0, atol=1e-11)


# ---------------------------------------------------------------------------------------------------------------
# ASE drivers, float32


def test_ase_bfgs_lowers_the_energy(calc64):
    atoms = read_dha()
    atoms.calc = calc64
    e0 = atoms.get_potential_energy()
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=4)
    assert atoms.get_potential_energy() < e0 - 1e-3


def test_ase_velocity_verlet_conserves_energy(calc64):
    atoms = read_dha()
    atoms.calc = calc64
    rng = np.random.default_rng(0)  # Maxwell–Boltzmann momenta at 300 K, no net momentum
    masses = atoms.get_masses()[:, None]
    momenta = rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * 300.0)
    atoms.set_momenta(momenta - masses * momenta.sum(0) / masses.sum())
    md = VelocityVerlet(atoms, timestep=0.25 * units.fs, logfile=None)
    totals = []
    md.attach(lambda: totals.append(atoms.get_total_energy()), interval=1)
    md.run(8)
    assert len(totals) == 9
    assert max(totals) - min(totals) <= 3e-3  # eV; measured 1.2e-3 (Verlet fluctuation ∝ dt², E_kin ≈ 2 eV)


def test_float32_is_within_1e4_of_float64(calc64):
    atoms = read_dha()
    atoms.calc = calc64
    e64, f64 = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SO3LRCalculator(dtype="float32")
    assert abs(atoms.get_potential_energy() - e64) <= 1e-4
    assert float(np.abs(atoms.get_forces() - f64).max()) <= 5e-4


def test_float64_enables_x64_process_wide_and_refuses_if_it_is_turned_off():
    code = """
import jax, numpy as np, ase
assert not jax.config.jax_enable_x64
from so3krates_hk import InputError
from so3krates_hk.ase import SO3LRCalculator
SO3LRCalculator(dtype="float32")
assert not jax.config.jax_enable_x64
calc = SO3LRCalculator()
assert jax.config.jax_enable_x64
jax.config.update("jax_enable_x64", False)
atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
atoms.calc = calc
try:
    atoms.get_potential_energy()
except RuntimeError as e:
    assert "jax_enable_x64" in str(e)
    print("refused")
"""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused" in out.stdout


# ---------------------------------------------------------------------------------------------------------------
# The reusable host checks in so3krates_hk.validation


def test_validation_geometry_helpers():
    cell = np.array([[10.0, 0, 0], [3.0, 10.0, 0], [0, 0, 12.0]])
    widths = validation.perpendicular_widths(cell)
    np.testing.assert_allclose(widths, [10.0 / np.hypot(1.0, 0.3), 10.0, 12.0])
    validation.check_minimum_image(cell, 4.5)
    with pytest.raises(InputError, match="lattice vector a"):
        validation.check_minimum_image(cell, 4.9)
    validation.check_minimum_image(cell, 4.9, pbc=[False, True, True])
    with pytest.raises(InputError, match="singular"):
        validation.check_minimum_image(np.zeros((3, 3)), 1.0)
    R = np.array([[0.0, 0, 0], [1.0, 0, 0], [9.96, 0, 0], [5.0, 5.0, 5.0]])
    validation.check_min_distance(R)  # free space: closest pair 0.96 Å
    with pytest.raises(InputError, match=r"atoms 0 and 2 are 0\.04 Å apart"):
        validation.check_min_distance(R, cell=np.eye(3) * 10.0, pbc=True)  # minimum image: 9.96 → −0.04
    with pytest.raises(InputError, match=r"atoms 0 and 2 are 0\.04 Å apart"):
        validation.check_min_distance(R, cell=np.eye(3) * 10.0, pbc=True, pairs=([2, 1, 4], [0, 0, 4]))
    validation.check_min_distance(R, cell=np.eye(3) * 10.0, pbc=True, pairs=([1], [0]))
