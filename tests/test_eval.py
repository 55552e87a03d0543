"""``so3krates_hk.evaluate`` and ``so3krates-hk eval``: packed batches (several structures per graph) against
per-structure calls of the ASE calculator, compile count, metrics, outputs and errors."""

import json
import os

import numpy as np
import pytest

ase = pytest.importorskip("ase")
import ase.io  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import molecule  # noqa: E402

from so3krates_hk.cli import main  # noqa: E402
from so3krates_hk.evaluate import Evaluator, compute_metrics, evaluate, pairs_within  # noqa: E402
from so3krates_hk.packed import Capacity, Structure, ladder, pack, plan  # noqa: E402

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


def test_capacity_ladder():
    assert [ladder(n) for n in (1, 8, 9, 12, 13, 17, 21, 25, 33, 49, 65, 100)] == [
        8, 8, 12, 12, 16, 24, 24, 32, 48, 64, 96, 128
    ]  # fmt: skip
    assert [ladder(n, 4) for n in (1, 5, 7)] == [4, 6, 8]


def _structure(n, pairs, lr_pairs):
    i = np.arange(pairs) % n
    return Structure(np.full(n, 6), np.arange(3 * n, dtype=float).reshape(n, 3), 0.0, 0.0,
                     np.stack([i, i]), np.zeros((pairs, 3)), np.zeros((2, lr_pairs), int), np.zeros((lr_pairs, 3)))


def test_plan_and_pack_offsets_and_padding():
    structures = [_structure(5, 4, 6), _structure(3, 2, 2), _structure(7, 6, 10), _structure(2, 0, 1)]
    batches, cap = plan(structures, batch_atoms=9)
    assert batches == [[0, 1], [2, 3]]  # input order, at most 9 atoms each
    assert cap == Capacity(atoms=12, structures=4, pairs=16, lr_pairs=16, width=8)
    a = pack([structures[2], structures[3]], cap)
    assert a["mask"].sum() == 9 and not a["mask"][9:].any()
    np.testing.assert_array_equal(a["segment"], [0] * 7 + [1] * 2 + [4] * 3)  # padded atoms: structure S = 4
    np.testing.assert_array_equal(a["local"][:9], list(range(7)) + [0, 1])
    np.testing.assert_array_equal(a["R"][7:9], structures[3].positions)
    assert (a["pairs"][:, :6] < 7).all() and (a["pairs"][:, 6:] == 12).all()  # padded pairs hold index A
    np.testing.assert_array_equal(a["lr_pairs"][:, 10], [7, 7])  # the second structure's pair, shifted by 7
    assert (a["lr_pairs"][:, 11:] == 12).all()
    with pytest.raises(ValueError, match="does not fit"):
        pack(structures, cap)


def test_pairs_within_matches_ase():
    from ase.neighborlist import neighbor_list

    frames = ase.io.read(FINETUNE, ":1")
    box = Atoms("H2O" * 3, positions=np.random.default_rng(0).uniform(0, 9, (9, 3)), cell=np.eye(3) * 9.5, pbc=True)
    for atoms, cutoff in ((frames[0], 4.5), (frames[0], 12.0), (box, 4.5)):
        cell = atoms.cell.array if atoms.pbc.all() else None
        pairs, shifts = pairs_within(atoms.positions, cell, cutoff)
        i, j, D = neighbor_list("ijD", atoms, cutoff)
        keep = j < i
        assert sorted(zip(*pairs)) == sorted(zip(i[keep], j[keep]))
        mine = atoms.positions[pairs[1]] - atoms.positions[pairs[0]] + shifts
        order, ref = np.lexsort(pairs[::-1]), np.lexsort((j[keep], i[keep]))
        np.testing.assert_allclose(mine[order], D[keep][ref], atol=1e-12)


@pytest.mark.slow  # ~50 s on an idle 2-core CPU (four compilations), 2 min under load
def test_eval_matches_per_structure_calls(calc, evaluator):
    frames = frames_mixed()
    result = evaluate(frames, evaluator=evaluator, batch_atoms=96)  # 4 aspirin + NH3, 4 aspirin, 1 aspirin
    assert result.num_compilations == 1  # one capacity for every batch
    assert result.batches == 3 and result.capacity["atoms"] == 96
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
    assert "4 structures, 1 batch(es), 1 compilation(s)" in text and "energy/atom" in text
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


def test_structure_sums_run_over_each_structure():
    import jax.numpy as jnp

    from so3krates_hk.packed import structure_sums

    x = jnp.asarray([1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0])
    segment = jnp.asarray([0, 0, 1, 1, 1, 2, 2])  # two structures, two padded atoms (structure S = 2)
    local = jnp.asarray([0, 1, 0, 1, 2, 0, 0])
    for one_by_one in (True, False):
        got = structure_sums(x, segment, local, 3, 4, one_by_one)
        np.testing.assert_array_equal(np.asarray(got), [3, 3, 12, 12, 12, 0, 0])
