"""chemtrain training: configs, priors, the energy template, one epoch of force matching on the bundled data,
exact resume, the users' model slot, and the fine-tuning freeze mask."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml

pytest.importorskip("chemtrain", reason="the training tests need the chemtrain extra (pip install '.[chemtrain]')")

from so3krates_hk.errors import UserError  # noqa: E402
from so3krates_hk.training import train as train_mod  # noqa: E402
from so3krates_hk.training.cg_model import build_cg_model, load_cg_model  # noqa: E402
from so3krates_hk.training.config import ConfigError, load_config, parse_config  # noqa: E402
from so3krates_hk.training.data import load_cg_dataset, split_indices  # noqa: E402
from so3krates_hk.training.finetune import freeze_labels, masked_optimizer, parse_finetune_config  # noqa: E402
from so3krates_hk.training.priors import fit_priors  # noqa: E402

TINY = dict(num_layers=1, num_features=16, num_heads=2, degrees=[1, 2], num_radial_basis_fn=8, bernstein_gamma=0.6,
            energy_regression_dim=16)  # fmt: skip
ROOT = os.path.dirname(os.path.dirname(__file__))


def tiny_config(tmp_path, **overrides):
    raw = {
        "data": {"dataset": "alanine_dipeptide", "max_frames": 160, "train_fraction": 0.75, "val_fraction": 0.125},
        "model": {"r_cutoff": 6.0, "dr_threshold": 0.5, "hyperparameters": TINY},
        "priors": {"bond_cutoff": 1.7},
        "training": {"epochs": 2, "batch_size": 20, "learning_rate": 0.003, "final_learning_rate": 0.001},
        "md": {"steps": 0},
        "output": {"directory": str(tmp_path)},
    }
    for section, values in overrides.items():
        raw[section].update(values)
    return parse_config(raw)


# ------------------------------------------------------------------------------------------------ configs


def test_shipped_configs_are_valid_and_reachable_by_name():
    from so3krates_hk.configs import bundled_names

    assert {"cg_chignolin", "cg_alanine_dipeptide", "finetune_aspirin"} <= set(bundled_names())
    for name in ("cg_chignolin", "cg_alanine_dipeptide"):
        cfg = load_config(name)
        assert cfg.training.epochs >= 1
    from so3krates_hk.training.finetune import load_finetune_config

    assert load_finetune_config("finetune_aspirin").model.freeze


def test_unknown_config_name_lists_the_bundled_ones():
    with pytest.raises(UserError, match="cg_chignolin"):
        load_config("cg_chignolinn")


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"trianing": {}}, r"Unknown section\(s\) \['trianing'\]"),
        ({"training": {"epoch": 3}}, r"Unknown key\(s\) \['epoch'\] in section 'training'"),
        ({"training": {"epochs": "ten"}}, r"training.epochs must be an integer"),
        ({"training": {"epochs": 2.5}}, r"training.epochs must be an integer"),
        ({"priors": {"bonds": "yes"}}, r"priors.bonds must be true or false"),
        ({"model": {"r_cutoff": "10 A"}}, r"model.r_cutoff must be a number"),
        ({"model": {"hyperparameters": {"num_layer": 2}}}, r"model.hyperparameters: Unknown hyperparameter"),
        ({"data": {"train_fraction": 1.5}}, r"data.train_fraction"),
        ({"md": {"steps": 1500, "block": 1000}}, r"md.steps must be a multiple of md.block"),
        ({"data": []}, r"Section 'data' must be a mapping"),
    ],
)
def test_bad_configs_get_errors_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="Unknown section"):
        parse_finetune_config({"optimizer": {}})


# ------------------------------------------------------------------------------------------------ priors and model


def test_priors_recover_a_harmonic_bond_and_give_finite_forces():
    rng = np.random.default_rng(0)
    kT, k, r0 = 0.6, 30.0, 3.8
    T = 4000
    d = r0 + rng.normal(scale=np.sqrt(kT / k), size=T)
    R = np.zeros((T, 3, 3))
    R[:, 1, 0] = d
    R[:, 2, 0] = d + 9.0 + rng.normal(scale=0.1, size=T)  # beads 1–2 at ~9 Å: no bond with a 4.3 Å cutoff
    p = fit_priors(R, kT, bond_cutoff=4.3)
    assert p.bonds.tolist() == [[0, 1]]
    assert p.bond_length[0] == pytest.approx(r0, abs=0.01)
    assert p.bond_k[0] == pytest.approx(k, rel=0.1)
    from so3krates_hk._compat import jax_md

    disp, _ = jax_md.space.free()
    f = jax.grad(p.energy_fn(disp))(jnp.asarray(R[0]))
    assert bool(jnp.all(jnp.isfinite(f)))


@pytest.fixture(scope="module")
def ala():
    ds = load_cg_dataset("alanine_dipeptide", max_frames=160)
    model = build_cg_model(ds.positions, ds.species, ds.kT, 6.0, 0.5, TINY, dict(bond_cutoff=1.7))
    return ds, model


def test_energy_template_is_differentiable_in_params_and_positions(ala):
    ds, model = ala
    params = model.init_params(jax.random.PRNGKey(0))
    R = jnp.asarray(ds.positions[0])
    nbrs = model.neighbor.update(R)

    def energy(p, r):
        return model.energy_fn_template(p)(r, nbrs)

    g_params, g_pos = jax.grad(energy, argnums=(0, 1))(params, R)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(g_params))
    assert float(jnp.abs(g_params["energy_head/energy_dense_final"]["w"]).max()) > 0
    assert bool(jnp.all(jnp.isfinite(g_pos))) and float(jnp.abs(g_pos).max()) > 0
    assert model.priors is not None and len(model.priors.bonds) == 9  # the 9 heavy-atom bonds of ACE-ALA-NME


# ------------------------------------------------------------------------------------------------ force matching


def _run(cfg, model, ds, epochs, out, resume=False):
    tr, va, _ = split_indices(ds.num_frames, cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.seed)
    fm = train_mod.ForceMatchingRun(cfg, model, ds.subset(tr), ds.subset(va), str(out))
    if resume:
        fm.resume(os.path.join(out, train_mod.CHECKPOINT))
    while fm.epoch < epochs:
        fm.train_epoch()
    return fm


def test_force_matching_epoch_reduces_the_loss_and_resume_is_exact(tmp_path, ala):
    ds, model = ala
    cfg = tiny_config(tmp_path)
    tr, va, _ = split_indices(ds.num_frames, 0.75, 0.125, 0)
    params0 = model.init_params(jax.random.PRNGKey(cfg.training.seed))
    val0 = train_mod.force_rmse(model, _scaled(params0, ds.subset(tr)), ds.subset(va))

    full = _run(cfg, model, ds, 2, tmp_path / "full")
    assert len(full.history["val_force_rmse"]) == 2
    assert full.history["val_force_rmse"][0] < val0  # one epoch reduces the validation force error
    assert full.history["train_force_rmse"][1] < full.history["train_force_rmse"][0]

    # Interrupted after epoch 1, then resumed: identical to the uninterrupted run.
    _run(cfg, model, ds, 1, tmp_path / "split")
    resumed = _run(cfg, model, ds, 2, tmp_path / "split", resume=True)
    for a, b in zip(jax.tree_util.tree_leaves(full.trainer.params), jax.tree_util.tree_leaves(resumed.trainer.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Same params; the validation stream restarts on resume, so its float32 sums run in another order.
    np.testing.assert_allclose(resumed.history["val_force_rmse"], full.history["val_force_rmse"], rtol=1e-6)


def _scaled(params, train):
    params = jax.tree_util.tree_map(lambda x: x, params)
    rms = float(np.sqrt(np.mean(train.forces**2)))
    params["energy_head"]["atomic_scales"] = params["energy_head"]["atomic_scales"] * rms
    return params


def test_training_job_writes_its_outputs(tmp_path):
    cfg = tiny_config(tmp_path, training={"epochs": 1}, md={"steps": 400, "block": 200, "record_every": 20,
                                                              "replicas": 1, "dt_fs": 2.0, "bead_mass": 14.0})  # fmt: skip
    metrics = train_mod.run(cfg, progress=False)
    for name in ("params.npz", "loss_curve.png", "md_comparison.png", "metrics.json", train_mod.CHECKPOINT):
        assert (tmp_path / name).exists(), name
    assert metrics["md"]["finite"] and metrics["md"]["frames"] == 20
    assert set(metrics["md"]["js_divergence"]) == {"ramachandran", "phi", "psi"}
    ds = load_cg_dataset("alanine_dipeptide", max_frames=160)
    model, params, meta = load_cg_model(str(tmp_path / "params.npz"), ds.positions[0])
    e = model.energy_fn_template(params)(jnp.asarray(ds.positions[0]), model.neighbor)
    assert np.isfinite(float(e)) and meta["dataset"] == "alanine_dipeptide"


# ------------------------------------------------------------------------------------------------ fine-tuning mask


def test_freeze_mask_freezes_exactly_what_it_names():
    from so3krates_hk import pretrained

    params = jax.tree_util.tree_map(jnp.asarray, pretrained.so3lr()[0])
    patterns = ["so3krates/*", "zbl_repulsion"]
    labels = freeze_labels(params, patterns)
    frozen = {m for m, leaves in labels.items() if all(v == "frozen" for v in leaves.values())}
    assert frozen == {m for m in params if m.startswith("so3krates/") or m == "zbl_repulsion"}
    assert "energy_head" not in frozen and "partial_charges" not in frozen

    opt = masked_optimizer(optax.adam(1e-2), params, patterns)
    state = opt.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    new = params
    for _ in range(3):
        updates, state = opt.update(grads, state, new)
        new = optax.apply_updates(new, updates)
    for m, leaves in params.items():
        for n, v in leaves.items():
            same = np.array_equal(np.asarray(v), np.asarray(new[m][n]))
            assert same == (labels[m][n] == "frozen"), (m, n)
