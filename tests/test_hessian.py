"""The exact Hessian (``so3krates_hk.hessian``): symmetry, zero translational modes, ASE's finite-difference
``Vibrations`` on our calculator, charge and spin, periodic cells, and ``so3krates-hk vib``."""

import numpy as np
import pytest

ase = pytest.importorskip("ase")
from ase import Atoms  # noqa: E402
from ase.build import molecule  # noqa: E402
from ase.vibrations import Vibrations  # noqa: E402

import so3krates_hk  # noqa: E402
from so3krates_hk.evaluate import Evaluator  # noqa: E402
from so3krates_hk.hessian import vibrations  # noqa: E402


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator(dtype="float64")


def signed(freqs):
    """Frequencies as real numbers, imaginary ones negative (ASE returns complex)."""
    freqs = np.asarray(freqs)
    return np.where(np.abs(freqs.imag) > np.abs(freqs.real), -np.abs(freqs.imag), freqs.real)


@pytest.mark.slow  # three compilations (Hessian, calculator forces, calculator Hessian): ~60 s idle, 160 s loaded
def test_hessian_symmetric_translations_zero_and_matches_finite_differences(evaluator, tmp_path):
    from so3krates_hk.ase import SO3LRCalculator

    water = molecule("H2O")
    water.positions[0] += [0.01, -0.02, 0.03]  # off-symmetry, not a minimum
    H = so3krates_hk.hessian(water, evaluator=evaluator)
    N = len(water)
    assert H.shape == (3 * N, 3 * N)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-10)
    # Σ_b H_{ai,bj} = 0: a rigid translation changes no force
    np.testing.assert_allclose(H.reshape(N, 3, N, 3).sum(axis=2), 0.0, atol=1e-9)
    vib = vibrations(water, H)
    translation = np.zeros((N, 3))
    translation[:, 0] = 1.0
    assert np.abs(H @ translation.ravel()).max() < 1e-9

    # ASE's central differences (4 displacements per coordinate, error O(δ⁴)) on the calculator
    a = water.copy()
    a.calc = SO3LRCalculator(dtype="float64")
    fd = Vibrations(a, name=str(tmp_path / "vib"), delta=0.005, nfree=4)
    fd.run()
    np.testing.assert_allclose(signed(vib.get_frequencies()), signed(fd.get_frequencies()), rtol=0, atol=1.0)
    # the measured agreement is far inside 1 cm⁻¹; the three stretch/bend modes to 0.01 cm⁻¹
    np.testing.assert_allclose(signed(vib.get_frequencies())[-3:], signed(fd.get_frequencies())[-3:], atol=1e-2)
    # the calculator gives the same Hessian, in the form ASE's VibrationsData uses
    np.testing.assert_allclose(a.calc.get_hessian(a), H, rtol=0, atol=1e-9)
    assert np.allclose(a.calc.get_vibrations(a).get_frequencies(), vib.get_frequencies())


def test_hessian_depends_on_charge_and_spin(evaluator):
    neutral = molecule("NH3")
    cation = neutral.copy()
    cation.info.update(charge=1, multiplicity=2)
    H0 = so3krates_hk.hessian(neutral, evaluator=evaluator)
    H1 = so3krates_hk.hessian(cation, evaluator=evaluator)
    np.testing.assert_allclose(H1, H1.T, rtol=0, atol=1e-10)
    assert np.abs(H1 - H0).max() > 1e-2
    with pytest.raises(so3krates_hk.InputError, match="parity"):
        bad = neutral.copy()
        bad.info.update(charge=1)  # 9 electrons cannot be a singlet
        so3krates_hk.hessian(bad, evaluator=evaluator)


@pytest.mark.slow
def test_periodic_hessian_against_force_differences(evaluator):
    from so3krates_hk.ase import SO3LRCalculator

    box = Atoms(cell=np.eye(3) * 24.2, pbc=True)
    for shift in [(0.3, 0.5, 0.2), (23.5, 1.0, 2.0)]:  # the second molecule sits across the boundary
        w = molecule("H2O")
        w.translate(shift)
        box += w
    N = len(box)
    H = so3krates_hk.hessian(box, evaluator=evaluator)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(H.reshape(N, 3, N, 3).sum(axis=2), 0.0, atol=1e-9)
    calc = SO3LRCalculator(dtype="float64")
    h = 1e-4
    for a, i in [(0, 0), (3, 2), (5, 1)]:  # columns −∂F/∂r_{a,i} by central differences
        plus, minus = box.copy(), box.copy()
        plus.positions[a, i] += h
        minus.positions[a, i] -= h
        plus.calc = minus.calc = calc
        column = -(plus.get_forces() - minus.get_forces()).ravel() / (2 * h)
        np.testing.assert_allclose(H[:, 3 * a + i], column, rtol=0, atol=2e-5)


@pytest.mark.slow
def test_cli_vib_relaxes_and_writes_modes(tmp_path, capsys):
    import ase.io
    from ase.vibrations import VibrationsData

    from so3krates_hk.cli import main

    path = tmp_path / "water.xyz"
    w = molecule("H2O")
    w.positions[1] += [0.0, 0.1, 0.05]
    ase.io.write(path, w)
    out = tmp_path / "vib.json"
    assert main(["vib", str(path), "--relax", "--fmax", "1e-4", "-o", str(out), "--jmol", str(tmp_path / "m.xyz")]) == 0
    text = capsys.readouterr().out
    assert "relaxed with BFGS" in text and "NOT converged" not in text
    freqs = signed(VibrationsData.read(out).get_frequencies())
    assert len(freqs) == 9
    assert np.abs(freqs[:6]).max() < 5.0  # at a minimum, translations and rotations are zero modes
    assert freqs[6] > 1000 and freqs[8] > 3000  # bend and stretches
    assert main(["vib", str(tmp_path / "missing.xyz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("so3krates-hk: error:") and "\n" not in err
