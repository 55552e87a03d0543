"""The SO3LR weight converter, safe loading, the shipped weights, and the convert CLI."""

import io
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import DATA

from so3krates_hk import pretrained
from so3krates_hk.cli import main
from so3krates_hk.convert import ConversionError, convert_so3lr_tree, load_so3lr_pickle, safe_unpickle
from so3krates_hk.io import load_params, save_params

PICKLE = os.path.join(DATA, "params.pkl")


@pytest.fixture(scope="module")
def raw():
    with open(PICKLE, "rb") as f:
        return pickle.load(f)  # the trusted test file, read with the standard unpickler for comparison


@pytest.fixture(scope="module")
def converted():
    return load_so3lr_pickle(PICKLE)


def test_every_leaf_is_mapped_exactly_once_into_a_nan_tree(converted):
    from so3krates_hk.convert import so3lr_template

    template = so3lr_template()
    nan_tree = {m: {n: np.full(shape, np.nan, dtype) for n, (shape, dtype) in leaves.items()}
                for m, leaves in template.items()}  # fmt: skip
    filled = load_so3lr_pickle(PICKLE, into=nan_tree)
    leaves = jax.tree_util.tree_leaves(filled)
    assert len(leaves) == 131
    assert sum(x.size for x in leaves) == 530_238
    assert not any(np.isnan(x).any() for x in leaves)


def test_values_and_layouts(raw, converted):
    p = raw["params"]
    np.testing.assert_array_equal(
        converted["so3krates/layers_1/attention_block"]["Wq1"], np.swapaxes(p["layers_1"]["attention_block"]["Wq1"], 1, 2)
    )
    np.testing.assert_array_equal(
        converted["so3krates/layers_2/exchange_block/mlp_layer_2"]["w"], p["layers_2"]["exchange_block"]["mlp_layer_2"]["kernel"]
    )
    np.testing.assert_array_equal(
        converted["hirshfeld_ratios"]["ratio_query"], p["observables_2"]["Embed_1"]["embedding"]
    )
    np.testing.assert_array_equal(converted["zbl_repulsion"]["p"], p["observables_0"]["zbl_repulsion"]["p"])
    assert all(x.dtype == np.float32 for x in jax.tree_util.tree_leaves(converted))


def test_shipped_weights_equal_the_converted_pickle(converted):
    shipped, kwargs = pretrained.so3lr()
    assert jax.tree_util.tree_structure(shipped) == jax.tree_util.tree_structure(converted)
    for a, b in zip(jax.tree_util.tree_leaves(shipped), jax.tree_util.tree_leaves(converted)):
        np.testing.assert_array_equal(a, b)
    assert kwargs["avg_num_neighbors"] == 13.168995780096482 and kwargs["r_cutoff"] == 4.5
    assert pretrained.so3lr_metadata()["source"]["is_official_so3lr"]


def test_not_so3lr_pickles_get_clear_errors(raw):
    def dumps(obj):
        return pickle.dumps(obj)

    with pytest.raises(ConversionError, match="single key 'params'"):
        convert_so3lr_tree(safe_unpickle(dumps([1, 2])))
    with pytest.raises(ConversionError, match="single key 'params'"):
        convert_so3lr_tree({"weights": {}})
    p = {k: v for k, v in raw["params"].items() if k != "observables_2"}
    with pytest.raises(ConversionError, match="lacks 6 leaf"):
        convert_so3lr_tree({"params": p})
    extra = dict(raw["params"], layers_3=raw["params"]["layers_0"])
    with pytest.raises(ConversionError, match="layers_3.*does not have"):
        convert_so3lr_tree({"params": extra})
    bad = {**raw["params"], "observables_0": {**raw["params"]["observables_0"], "atomic_scales": np.ones(50, np.float32)}}
    with pytest.raises(ConversionError, match="atomic_scales' has shape"):
        convert_so3lr_tree({"params": bad})
    odd = {**raw["params"], "mystery": {"kernel": np.ones(3, np.float32)}}
    with pytest.raises(ConversionError, match="mystery/kernel' is not part of SO3LR"):
        convert_so3lr_tree({"params": odd})


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_unpickling_never_executes_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"params": {"x": _Exploit(str(marker))}})
    with pytest.raises(ConversionError, match="Refusing to unpickle"):
        safe_unpickle(payload)
    assert not marker.exists()
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(ConversionError, match="Refusing"):
        load_so3lr_pickle(path)
    assert not marker.exists()


def test_safe_npz_roundtrip_and_refusals(tmp_path, converted):
    path = tmp_path / "w.npz"
    save_params(path, converted, {"note": "test"})
    params, meta = load_params(path)
    assert meta == {"note": "test"}
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(converted)):
        np.testing.assert_array_equal(a, b)
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a so3krates_hk parameter file"):
        load_params(tmp_path / "obj.npz")
    np.savez(tmp_path / "plain.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="format"):
        load_params(tmp_path / "plain.npz")


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.npz"
    with pytest.raises(TypeError):
        save_params(path, {"m": {"w": np.ones(2)}}, {"bad": object()})  # metadata not JSON-serialisable
    assert not path.exists() and not list(tmp_path.iterdir())


def test_convert_cli(tmp_path, capsys):
    out = tmp_path / "so3lr.npz"
    assert main(["convert", PICKLE, "-o", str(out)]) == 0
    params, meta = load_params(out)
    shipped, _ = pretrained.so3lr()
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(shipped)):
        np.testing.assert_array_equal(a, b)
    assert meta["source"]["sha256"] == "1c481bd2d9280f8b7b131ec65e92d25ff73deda76956bc137754c2acb98d93fd"
    assert "131 leaves" in capsys.readouterr().out


def test_converted_params_work_in_float64_and_float32():
    from so3krates_hk import so3lr_neighborlist_pp
    from so3krates_hk.data import reference_structure
    from helpers import free_lists
    from so3krates_hk._compat import partition

    s = reference_structure("dha")
    params = pretrained.so3lr()[0]
    for dtype in (jnp.float64, jnp.float32):
        R = jnp.asarray(s.positions, dtype)
        disp, sr = free_lists(R, 4.5)
        _, lr = free_lists(R, 12.0, partition.OrderedSparse)
        _, apply_fn = so3lr_neighborlist_pp(disp)
        e = apply_fn(params, R, sr, lr, jnp.asarray(s.atomic_numbers))
        assert e.dtype == dtype and abs(float(e) + 94.8995) < 1e-3


@pytest.mark.parametrize("force_error, rc, verdict", [(2e-5, 1, "FAIL"), (5e-6, 0, "PASS")])
def test_convert_check_fails_on_a_force_error_alone(monkeypatch, capsys, force_error, rc, verdict):
    """Energies within their limits, one force error over 1e-5 eV/Å: the check must say FAIL and exit 1."""
    import so3krates_hk.data.parity as parity

    def report(params, names=None, dtype=jnp.float64):
        return [dict(name="dha", atoms=56, energy=-1.0, energy_ref=-1.0, energy_error=0.0, force_error=force_error),
                dict(name="water", atoms=1536, energy=-2.0, energy_ref=-2.0, energy_error=1e-7, force_error=1e-7)]

    monkeypatch.setattr(parity, "parity_report", report)
    assert main(["convert", "--check"]) == rc
    assert f"float64 parity: {verdict}" in capsys.readouterr().out
