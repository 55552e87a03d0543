"""The CG backbone comparison (``benchmarks/cg_backbones.py``): its split, its mlip adapter and its plumbing on a tiny
setting. The full comparison is run by hand (it needs ``mlip``; see benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from benchmarks import cg_backbones as cb

HAS_CHEMTRAIN = importlib.util.find_spec("chemtrain") is not None
HAS_MLIP = importlib.util.find_spec("mlip") is not None
needs_chemtrain = pytest.mark.skipif(not HAS_CHEMTRAIN, reason="chemtrain is not installed in this environment")
needs_mlip = pytest.mark.skipif(
    not HAS_MLIP, reason="mlip is not installed (the comparison's own venv has it; see benchmarks/README.md)"
)

TINY = ["--max-frames", "40", "--epochs", "1", "--batch-size", "8", "--md-replicas", "1", "--md-steps", "100",
        "--md-block", "100", "--md-record-every", "10"]  # fmt: skip


def test_contiguous_split_is_blocks_in_time_per_replica():
    replica = np.repeat([0, 1, 2], [50, 30, 20])
    tr, va, te = cb.contiguous_split(replica, 0.8, 0.1)
    assert len(np.intersect1d(tr, va)) == len(np.intersect1d(tr, te)) == len(np.intersect1d(va, te)) == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(100))
    for r, n in ((0, 50), (1, 30), (2, 20)):
        frames = np.nonzero(replica == r)[0]
        t, v, s = (np.intersect1d(a, frames) for a in (tr, va, te))
        assert (len(t), len(v), len(s)) == (round(0.8 * n), round(0.1 * n), n - round(0.8 * n) - round(0.1 * n))
        # contiguous, and in time order train | validation | test
        for block in (t, v, s):
            assert np.all(np.diff(block) == 1)
        assert t.max() < v.min() < v.max() < s.min()


def _check_results(out_dir, models):
    with open(os.path.join(out_dir, "results.json")) as f:
        res = json.load(f)
    d = res["dataset"]
    assert d["train"] + d["validation"] + d["test"] == d["frames"] == 40
    assert np.isfinite(res["priors_only"]["test_force_rmse"])
    assert set(res["priors_only"]["md"]["js_divergence"]) == {"ca_distances", "native_contacts", "rmsd_to_folded"}
    for name in models:
        rec = res["models"][name]
        assert rec["status"] == "ok", rec
        assert len(rec["history"]["val_force_rmse"]) == len(rec["history"]["epoch_seconds"]) == 1
        assert rec["parameters"] > 1000
        assert np.isfinite(rec["test_force_rmse"]) and rec["test_force_rmse"] > 0
        md = rec["md"]
        assert md["frames"] == 10 and md["finite"]
        assert set(md["js_divergence"]) == {"ca_distances", "native_contacts", "rmsd_to_folded"}
        assert all(0 <= v <= 1 for v in md["js_divergence"].values())
    table = open(os.path.join(out_dir, "results.md")).read()
    assert table.count("\n| ") == 2 + len(models)  # separator, priors row, one row per model
    assert os.path.getsize(os.path.join(out_dir, "validation_loss.png")) > 1000


@needs_chemtrain
@pytest.mark.slow
def test_so3krates_plumbing_tiny(tmp_path):
    assert cb.main(["--out", str(tmp_path), "--models", "so3krates", *TINY]) == 0
    _check_results(tmp_path, ["so3krates"])


@needs_mlip
@pytest.mark.slow
def test_mlip_adapter_ignores_padding_and_is_invariant():
    """The mlip graph built from a jax-md Dense list gives the same energy with more empty list slots (padding edges
    contribute nothing), and the same energy after a rotation and translation of the frame."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk.training.cg_model import build_cg_model
    from so3krates_hk.training.data import load_cg_dataset

    ds = load_cg_dataset("chignolin", 20)
    R = ds.positions.astype(np.float64)
    cg = build_cg_model(R, ds.species, ds.kT, 6.0, 1.0, dict(num_layers=1, num_features=8, degrees=[1],
                                                           num_radial_basis_fn=4), dict(bond_cutoff=4.3))  # fmt: skip
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    for name in ("mace", "nequip"):
        bb = cb.mlip_backbone(name, cg, ds.species, 10.0, 3.8)
        params = bb.init_params(jax.random.PRNGKey(1))
        e = bb.energy_fn_template(params)
        x = jnp.asarray(R[3])
        tight = cg.neighbor_fn.allocate(x)
        loose = cg.neighbor_fn.allocate(x, extra_capacity=4)
        assert loose.idx.shape[1] > tight.idx.shape[1]
        e_tight, e_loose = float(e(x, tight)), float(e(x, loose))
        assert np.isfinite(e_tight) and e_tight != float(cg.priors.energy_fn(cg.displacement)(x))
        np.testing.assert_allclose(e_loose, e_tight, rtol=1e-6, atol=1e-6)
        y = jnp.asarray(R[3] @ rot.T + np.array([1.0, -2.0, 0.5]))
        np.testing.assert_allclose(float(e(y, cg.neighbor_fn.allocate(y))), e_tight, rtol=1e-5, atol=1e-5)
        f = -jax.grad(lambda r: e(r, tight))(x)
        assert np.all(np.isfinite(np.asarray(f)))


@needs_chemtrain
@needs_mlip
@pytest.mark.slow
def test_mlip_plumbing_tiny(tmp_path):
    assert cb.main(["--out", str(tmp_path), "--models", "mace", "nequip", *TINY]) == 0
    _check_results(tmp_path, ["mace", "nequip"])
