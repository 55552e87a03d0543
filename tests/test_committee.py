"""Committees: members stacked and evaluated in one batched call; mean and spread against separate evaluations."""

import numpy as np
import pytest

import jax

from so3krates_hk import pretrained
from so3krates_hk.committee import load_model, mean_and_spread, stack_params, unstack_params
from so3krates_hk.errors import UserError

ase = pytest.importorskip("ase")
from ase.build import molecule  # noqa: E402


def members(n=3):
    """The shipped weights with the energy head and the charge head's weights perturbed differently per member."""
    base, _ = pretrained.so3lr()
    out = []
    rng = np.random.default_rng(0)
    for _ in range(n):
        p = jax.tree_util.tree_map(np.array, base)
        for module in ("energy_head",):
            for name, value in p[module].items():
                if np.issubdtype(value.dtype, np.floating):
                    p[module][name] = value + 0.02 * rng.standard_normal(value.shape).astype(value.dtype)
        out.append(p)
    return out


def test_stack_and_unstack_and_mismatch():
    ms = members(2)
    stacked = stack_params(ms)
    leaf = stacked["energy_head"]["energy_offset"]
    assert leaf.shape[0] == 2
    back = unstack_params(stacked, 2)
    np.testing.assert_array_equal(back[1]["energy_head"]["energy_offset"], ms[1]["energy_head"]["energy_offset"])
    broken = jax.tree_util.tree_map(np.array, ms[1])
    broken["energy_head"]["energy_offset"] = broken["energy_head"]["energy_offset"][:-1]
    with pytest.raises(UserError, match="member 1"):
        stack_params([ms[0], broken])
    params, _, n = load_model(ms)
    assert n == 2 and params["energy_head"]["energy_offset"].shape[0] == 2


@pytest.mark.slow  # three compilations (single, committee, calculator committee)
def test_committee_equals_separate_members():
    from so3krates_hk.ase import SO3LRCalculator
    from so3krates_hk.evaluate import Evaluator, evaluate

    ms = members(3)
    frames = [molecule("H2O"), molecule("CH3OH")]
    frames[1].positions[0] += 0.05
    single = Evaluator(dtype="float64")
    separate = []
    for p in ms:  # one compiled program, each member's parameters in turn
        single.params = jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x, jax.numpy.float64), p)
        separate.append(evaluate(frames, evaluator=single).predictions)
    result = evaluate(frames, model=ms, dtype="float64")
    assert result.num_compilations == 1  # both structures in one packed batch: one program for all members
    for k in range(len(frames)):
        e = np.array([s[k]["energy"] for s in separate])
        f = np.array([s[k]["forces"] for s in separate])
        mean, spread = mean_and_spread(e)
        np.testing.assert_allclose(result.predictions[k]["energy"], mean, rtol=0, atol=1e-9)
        np.testing.assert_allclose(result.predictions[k]["energy_std"], spread, rtol=0, atol=1e-9)
        np.testing.assert_allclose(result.predictions[k]["forces"], f.mean(0), rtol=0, atol=1e-9)
        np.testing.assert_allclose(result.predictions[k]["forces_std"], f.std(0), rtol=0, atol=1e-9)
        assert spread > 1e-3  # the members really differ

    # the ASE calculator: one batched call, the same mean and spread
    calc = SO3LRCalculator(params=ms, dtype="float64")
    a = frames[1].copy()
    a.calc = calc
    np.testing.assert_allclose(a.get_potential_energy(), result.predictions[1]["energy"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.get_forces(), result.predictions[1]["forces"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(calc.get_property("energy_std", a), result.predictions[1]["energy_std"], atol=1e-9)
    np.testing.assert_allclose(calc.get_property("forces_std", a), result.predictions[1]["forces_std"], atol=1e-9)


def test_single_model_has_no_spread():
    from ase.calculators.calculator import PropertyNotImplementedError

    from so3krates_hk.ase import SO3LRCalculator

    a = molecule("H2O")
    a.calc = SO3LRCalculator(dtype="float64")
    with pytest.raises(PropertyNotImplementedError, match="committee"):
        a.calc.get_property("energy_std", a)
