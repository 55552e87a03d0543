"""``so3krates_hk.evaluate`` and ``so3krates-hk eval``: batched padded buckets against per-structure calls of the ASE
calculator, compile count, metrics, outputs and errors."""

import json
import os

import numpy as np
import pytest

ase = pytest.importorskip("ase")
import ase.io  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import molecule  # noqa: E402

from so3krates_hk.cli import main  # noqa: E402
from so3krates_hk.evaluate import Evaluator, bucket_size, compute_metrics, evaluate  # noqa: E402

FINETUNE = os.path.join(os.path.dirname(__file__), "..", "so3krates_hk", "data", "finetune", "aspirin_gfn2.xyz")


@pytest.fixture(scope="module")
def calc():
    from so3krates_hk.ase import SO3LRCalculator

    return SO3LRCalculator(dtype="float64")


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator(dtype="float64")


def frames_mixed():
    """Nine aspirin frames of the bundled set (21 atoms) and a doublet radical cation (charge +1, multiplicity 2)."""
    frames = ase.io.read(FINETUNE, ":9")
    radical = molecule("NH3")
    radical.info.update(charge=1, multiplicity=2)
    return frames + [radical]


def test_bucket_ladder():
    assert [bucket_size(n) for n in (1, 8, 9, 12, 13, 17, 21, 25, 33, 49, 65, 100)] == [
        8, 8, 12, 12, 16, 24, 24, 32, 48, 64, 96, 128
    ]  # fmt: skip


@pytest.mark.slow  # ~50 s on an idle 2-core CPU (four compilations), 2 min under load
def test_eval_matches_per_structure_calls(calc, evaluator):
    frames = frames_mixed()
    result = evaluate(frames, evaluator=evaluator, batch_atoms=96)  # aspirin: 4 per batch, 3 batches (last padded)
    assert result.num_compilations == 2  # buckets of 8 and 24 atoms
    assert result.buckets == {"free 8": 1, "free 24": 9}
    for k, atoms in enumerate(frames):
        a = atoms.copy()
        a.info = dict(atoms.info)
        a.calc = calc
        p = result.predictions[k]
        np.testing.assert_allclose(p["energy"], a.get_potential_energy(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(p["forces"], a.get_forces(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(p["charges"], calc.results["charges"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(p["dipole"], a.get_dipole_moment(), rtol=0, atol=1e-9)
    # a second evaluation reuses the compiled programs
    again = evaluate(frames[2:5], evaluator=evaluator, batch_atoms=96)
    assert again.num_compilations == 0


def test_metrics_are_the_errors_of_the_predictions(evaluator):
    frames = ase.io.read(FINETUNE, ":5")
    result = evaluate(frames, evaluator=evaluator, batch_atoms=96)
    e_err = [(p["energy"] - a.get_potential_energy()) / len(a) for p, a in zip(result.predictions, frames)]
    f_err = np.concatenate([(p["forces"] - a.get_forces()).ravel() for p, a in zip(result.predictions, frames)])
    assert result.metrics["energy"]["mae"] == pytest.approx(np.mean(np.abs(e_err)), rel=1e-12)
    assert result.metrics["forces"]["rmse"] == pytest.approx(np.sqrt(np.mean(f_err**2)), rel=1e-12)
    assert set(result.metrics) == {"energy", "forces"}  # the file has no charges or dipoles
    # charges and dipoles are compared where the data carry them
    refs = [dict(charges=p["charges"] + 0.1, dipole=p["dipole"] - 0.2) for p in result.predictions]
    m = compute_metrics(result.predictions, refs, result.num_atoms)
    assert m["charges"]["mae"] == pytest.approx(0.1) and m["dipole"]["rmse"] == pytest.approx(0.2)


@pytest.mark.slow
def test_eval_periodic_matches_calculator(calc, evaluator):
    box = Atoms(cell=np.eye(3) * 24.5, pbc=True)
    for k, shift in enumerate([(1, 1, 1), (12, 3, 20), (23.9, 12, 6)]):
        w = molecule("H2O")
        w.translate(shift)
        box += w
    box.wrap()
    result = evaluate([box], evaluator=evaluator)
    a = box.copy()
    a.calc = calc
    p = result.predictions[0]
    np.testing.assert_allclose(p["energy"], a.get_potential_energy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(p["forces"], a.get_forces(), rtol=0, atol=1e-9)
    from ase.stress import full_3x3_to_voigt_6_stress

    np.testing.assert_allclose(full_3x3_to_voigt_6_stress(p["stress"]), a.get_stress(), rtol=0, atol=1e-10)
    assert np.all(np.isnan(p["dipole"]))  # not defined for a periodic cell


def test_cli_eval_writes_predictions_metrics_and_plot(tmp_path, capsys):
    data = tmp_path / "small.extxyz"
    ase.io.write(data, ase.io.read(FINETUNE, ":4"))
    out = tmp_path / "res.npz"
    assert main(["eval", str(data), "-o", str(out), "--float64", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "4 structures, 1 bucket(s), 1 compilation(s)" in text and "energy/atom" in text
    with np.load(out) as f:
        assert f["energy"].shape == (4,) and f["forces"].shape == (84, 3) and f["ref_forces"].shape == (84, 3)
        metrics = json.loads(str(f["metrics_json"]))
    assert metrics["forces"]["count"] == 4
    assert (tmp_path / "res_parity.png").stat().st_size > 1000
    assert json.loads((tmp_path / "res_metrics.json").read_text())["compilations"] == 1


def test_cli_eval_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.xyz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("so3krates-hk: error:") and "missing.xyz" in err and "\n" not in err
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nH 0 0 0\nH 0 0 0.05\n")
    assert main(["eval", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "structure 0" in err and "closer than" in err and "\n" not in err
    assert main(["eval", str(bad), "-o", "x.txt"]) == 2
    assert "--output must end in .npz" in capsys.readouterr().err
