"""chemtrain training: configs, data (splits, temperatures, boxes), priors, the energy template, force matching on the
bundled data, exact resume, the job's outputs (MD with the trained model and with the priors alone, a blow-up), the
fine-tuning freeze mask and a whole fine-tuning run."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("chemtrain", reason="the training tests need the chemtrain extra (pip install '.[chemtrain]')")

from so3krates_hk.errors import UserError  # noqa: E402
from so3krates_hk.training import train as train_mod  # noqa: E402
from so3krates_hk.training.cg_model import build_cg_model, load_cg_model  # noqa: E402
from so3krates_hk.training.config import ConfigError, load_config, parse_config  # noqa: E402
from so3krates_hk.training import analysis  # noqa: E402
from so3krates_hk.training.data import DatasetError, load_cg_dataset, split_frames  # noqa: E402
from so3krates_hk.training.finetune import freeze_labels, masked_optimizer, parse_finetune_config  # noqa: E402
from so3krates_hk.training.priors import fit_priors  # noqa: E402

TINY = dict(num_layers=1, num_features=16, num_heads=2, degrees=[1, 2], num_radial_basis_fn=8, bernstein_gamma=0.6,
            energy_regression_dim=16)  # fmt: skip
ROOT = os.path.dirname(os.path.dirname(__file__))


def tiny_config(tmp_path, **overrides):
    raw = {
        "data": {"dataset": "alanine_dipeptide", "max_frames": 160, "train_fraction": 0.75, "val_fraction": 0.125,
                 "block_frames": 10, "gap_frames": 1},
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
        ({"training": {"epochs": 0}}, r"training.epochs must be ≥ 1; got 0"),
        ({"md": {"dt_fs": -1.0}}, r"md.dt_fs must be > 0; got -1.0"),
        ({"data": {"split": "random"}}, r"data.split must be one of \['blocks', 'trajectory'\]; got 'random'"),
        ({"data": {"gap_frames": 50, "block_frames": 50}}, r"data.gap_frames must be < data.block_frames"),
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
    # The fine-tuning config is read by the same machinery: strict keys and ranges.
    with pytest.raises(ConfigError, match=r"training.learning_rate must be > 0; got 0.0"):
        parse_finetune_config({"training": {"learning_rate": 0.0}})
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) \['epoch'\] in section 'training'"):
        parse_finetune_config({"training": {"epoch": 3}})


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


def test_priors_keep_an_angle_from_closing():
    """The 1–3 pair of an angle has its own repulsive wall, and the angle term pulls back even at θ ≈ 0."""
    rng = np.random.default_rng(1)
    kT, T = 0.6, 2000
    theta = np.radians(100.0) + rng.normal(scale=0.1, size=T)
    b1, b2 = 3.8 + rng.normal(scale=0.05, size=(2, T))
    R = np.zeros((T, 3, 3))
    R[:, 1, 0] = b1
    R[:, 2, 0] = b1 - b2 * np.cos(theta)
    R[:, 2, 1] = b2 * np.sin(theta)
    p = fit_priors(R, kT, bond_cutoff=4.3)
    assert p.repulsion_pairs.tolist() == [[0, 2]]
    d13 = np.linalg.norm(R[:, 2] - R[:, 0], axis=-1)
    assert p.repulsion_sigma[0] == pytest.approx(np.percentile(d13, 1.0))
    assert fit_priors(R, kT, bond_cutoff=4.3, repulsion_min_bonds=3).repulsion_pairs.shape == (0, 2)
    from so3krates_hk._compat import jax_md

    disp, _ = jax_md.space.free()
    closed = jnp.asarray([[0.0, 0.0, 0.0], [3.8, 0.0, 0.0], [0.05, 0.01, 0.0]])  # θ ≈ 0: beads 0 and 2 overlap
    f = -jax.grad(p.energy_fn(disp))(closed)
    assert bool(jnp.all(jnp.isfinite(f)))
    assert float(jnp.dot(f[2] - f[0], closed[2] - closed[0])) > 0  # pushes the 1–3 pair apart
    no_wall = fit_priors(R, kT, bond_cutoff=4.3, repulsion_min_bonds=3)
    shut = jnp.asarray([[0.0, 0.0, 0.0], [3.8, 0.0, 0.0], [0.0, 3.8e-5, 0.0]])  # θ = 1e-5 rad
    f_angle = -jax.grad(no_wall.energy_fn(disp))(shut)
    assert float(f_angle[2, 1]) > 1.0  # the angle term alone still opens it (arccos of a clipped cosine would not)


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


def _split(cfg, ds):
    d = cfg.data
    return split_frames(ds, d.train_fraction, d.val_fraction, d.seed, d.split, d.block_frames, d.gap_frames)


def _run(cfg, model, ds, epochs, out, resume=False):
    tr, va, _ = _split(cfg, ds)
    fm = train_mod.ForceMatchingRun(cfg, model, ds.subset(tr), ds.subset(va), str(out))
    if resume:
        fm.resume(os.path.join(out, train_mod.CHECKPOINT))
    while fm.epoch < epochs:
        fm.train_epoch()
    return fm


@pytest.mark.slow
def test_force_matching_epoch_reduces_the_loss_and_resume_is_exact(tmp_path, ala):
    ds, model = ala
    cfg = tiny_config(tmp_path)
    tr, va, _ = _split(cfg, ds)
    params0 = model.init_params(jax.random.PRNGKey(cfg.training.seed))
    val0 = train_mod.force_rmse(model, _scaled(params0, ds.subset(tr)), ds.subset(va))

    full = _run(cfg, model, ds, 2, tmp_path / "full")
    assert len(full.history["val_force_rmse"]) == 2
    assert full.history["val_force_rmse"][0] < val0  # one epoch reduces the validation force error
    train0 = train_mod.force_rmse(model, _scaled(params0, ds.subset(tr)), ds.subset(tr))
    assert train_mod.force_rmse(model, full.trainer.params, ds.subset(tr)) < train0  # two epochs fit the training set

    # Interrupted after epoch 1, then resumed: identical to the uninterrupted run.
    _run(cfg, model, ds, 1, tmp_path / "split")
    resumed = _run(cfg, model, ds, 2, tmp_path / "split", resume=True)
    for a, b in zip(jax.tree_util.tree_leaves(full.trainer.params), jax.tree_util.tree_leaves(resumed.trainer.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Same params; the validation stream restarts on resume, so its float32 sums run in another order.
    np.testing.assert_allclose(resumed.history["val_force_rmse"], full.history["val_force_rmse"], rtol=1e-6)


def test_serial_loops_in_training_change_no_number_and_leave_no_thread_narrowed(tmp_path, ala, monkeypatch):
    """chemtrain's update step compiles with serial loops for small batches (the chemtrain environment's XLA:CPU):
    the same parameters as with the block opted out, and no thread of the process left on one CPU afterwards."""
    from so3krates_hk import _cpu_runtime

    ds, model = ala
    cfg = tiny_config(tmp_path, training={"epochs": 1})
    if not _cpu_runtime.serial_loops_apply(cfg.training.batch_size * len(model.species)):
        pytest.skip("serial loops do not apply here (needs XLA:CPU's classic runtime and more than one CPU)")
    main_thread = os.sched_getaffinity(0)
    serial = _run(cfg, model, ds, 1, tmp_path / "serial")
    monkeypatch.setenv(_cpu_runtime.SERIAL_LOOPS_OPT_OUT, "0")
    pool = _run(cfg, model, ds, 1, tmp_path / "pool")
    for a, b in zip(jax.tree_util.tree_leaves(serial.trainer.params), jax.tree_util.tree_leaves(pool.trainer.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert os.sched_getaffinity(0) == main_thread
    for tid in os.listdir("/proc/self/task"):  # threads chemtrain or XLA started inside the block inherit nothing
        try:
            cpus = os.sched_getaffinity(int(tid))
            assert cpus == main_thread, f"thread {tid} left on {cpus}"
        except ProcessLookupError:
            pass  # the thread has ended


def _scaled(params, train):
    params = jax.tree_util.tree_map(lambda x: x, params)
    rms = float(np.sqrt(np.mean(train.forces**2)))
    params["energy_head"]["atomic_scales"] = params["energy_head"]["atomic_scales"] * rms
    return params


@pytest.mark.slow
def test_training_job_writes_its_outputs_with_the_priors_only_baseline(tmp_path):
    md = {"steps": 400, "block": 200, "record_every": 20, "replicas": 2, "dt_fs": 2.0, "bead_mass": 14.0,
          "start_frame": 7}  # fmt: skip
    cfg = tiny_config(tmp_path, training={"epochs": 1}, md=md)
    metrics = train_mod.run(cfg, progress=False)
    for name in ("params.npz", "loss_curve.png", "md_comparison.png", "metrics.json", train_mod.CHECKPOINT):
        assert (tmp_path / name).exists(), name
    import json

    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    md, base = on_disk["md"], on_disk["md_priors_only"]
    assert set(md) == set(base)  # the same fields
    assert set(md["js_divergence"]) == set(base["js_divergence"]) == {"ramachandran", "phi", "psi"}
    assert md["finite"] and md["stable"] and md["frames"] == base["frames"] == 2 * 20
    for key in ("replicas", "steps_per_replica", "dt_fs", "temperature_K", "bead_mass_amu", "start_frame", "seeds"):
        assert md[key] == base[key], key
    assert md["start_frame"] == 7 and md["seeds"] == [1000, 1001]
    # Both runs start from frame 7 of the file: the first recorded frames are 20 steps from it.
    traj = np.load(tmp_path / "md_trajectory.npz")
    start = load_cg_dataset("alanine_dipeptide").positions[7]
    assert np.abs(traj["positions"][0] - start).max() < 1.0 and np.abs(traj["positions"][20] - start).max() < 1.0
    assert md["js_divergence"] != base["js_divergence"]  # two different energies
    assert metrics["frames"]["test"] > 0
    ds = load_cg_dataset("alanine_dipeptide", max_frames=160)
    model, params, meta = load_cg_model(str(tmp_path / "params.npz"), ds.positions[0])
    e = model.energy_fn_template(params)(jnp.asarray(ds.positions[0]), model.neighbor)
    assert np.isfinite(float(e)) and meta["dataset"] == "alanine_dipeptide"


@pytest.mark.slow
def test_md_blow_up_still_writes_metrics_and_a_plot(tmp_path):
    """A 400 fs step tears the stiff heavy-atom bonds apart: the job reports it instead of raising."""
    md = {"steps": 400, "block": 200, "record_every": 20, "replicas": 1, "dt_fs": 400.0, "bead_mass": 14.0}
    cfg = tiny_config(tmp_path, training={"epochs": 1}, md=md)
    metrics = train_mod.run(cfg, progress=False)
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "md_comparison.png").exists()
    for key in ("md", "md_priors_only"):
        assert metrics[key]["stable"] is False
        assert metrics[key]["blown_up"] or not metrics[key]["finite"] or metrics[key]["max_bond_stretch"] > 1.5


def test_plot_comparison_without_finite_frames(tmp_path):
    analysis.plot_comparison({}, str(tmp_path / "a.png"), "unstable", {})
    ds = load_cg_dataset("chignolin", max_frames=100)
    res = analysis.compare(ds.name, ds.positions[:50], ds.positions, ds.extras)
    analysis.plot_comparison({}, str(tmp_path / "b.png"), "trained unstable", res)
    analysis.plot_comparison(res, str(tmp_path / "c.png"), "baseline unstable", {})
    assert all((tmp_path / f"{n}.png").stat().st_size > 1000 for n in "abc")


# ------------------------------------------------------------------------------------------------ data


def test_splits_keep_time_series_together():
    ds = load_cg_dataset("chignolin")
    tr, va, te = split_frames(ds, 0.8, 0.1, 0, "blocks", 50, 5)
    assert not (set(tr) & set(te) or set(tr) & set(va) or set(va) & set(te))
    assert len(te) > 100 and len(va) > 100
    sets = np.full(ds.num_frames, -1)
    sets[tr], sets[va], sets[te] = 0, 1, 2
    rep, t = ds.extras["replica"], ds.extras["time_ps"]
    for a in np.nonzero(sets == 2)[0]:  # no training frame within 5 ps of a test frame of the same trajectory
        near = (rep == rep[a]) & (np.abs(t - t[a]) <= 5.0)
        assert not np.any(sets[near] == 0)
    tr, va, te = split_frames(ds, 0.5, 0.25, 0, "trajectory")
    assert [len(set(ds.replica[s].tolist())) for s in (tr, va, te)] == [2, 1, 1]
    assert not set(ds.replica[tr].tolist()) & set(ds.replica[te].tolist())
    with pytest.raises(ConfigError, match="data.split"):
        parse_config({"data": {"split": "random"}})


def _write(tmp_path, **arrays):
    ds = load_cg_dataset("chignolin", max_frames=40)
    data = dict(positions=ds.positions, forces=ds.forces, species=ds.species, temperature=340.0)
    data.update(arrays)
    path = tmp_path / "user.npz"
    np.savez(path, **data)
    return str(path)


def test_biased_frames_train_but_are_not_the_reference(tmp_path):
    eq = np.tile([1, 1, 1, 1, 0], 8)  # every 5th frame from an umbrella window
    ds = load_cg_dataset(_write(tmp_path, equilibrium=eq, replica=np.repeat(np.arange(8), 5)))
    ref = ds.reference()
    assert ref.num_frames == 32 and ref.extras["frame_index"].tolist() == np.nonzero(eq)[0].tolist()
    np.testing.assert_array_equal(ref.positions, ds.positions[eq == 1])
    tr, va, te = split_frames(ds, 0.5, 0.25, 0, "trajectory")
    assert len(tr) + len(va) + len(te) == 40  # biased frames stay in the split (they are training data)
    part = ds.subset(tr).reference()
    assert part.extras["equilibrium"].tolist() == [1] * part.num_frames
    plain = load_cg_dataset(_write(tmp_path))
    assert plain.reference() is plain  # no 'equilibrium' key: every frame is the reference
    with pytest.raises(DatasetError, match="'equilibrium' must have one entry per frame"):
        load_cg_dataset(_write(tmp_path, equilibrium=np.ones(3)))


def test_user_data_box_is_refused_and_temperatures_are_chosen(tmp_path):
    with pytest.raises(DatasetError, match="has a 'box'"):
        load_cg_dataset(_write(tmp_path, box=np.eye(3) * 30.0))
    temps = np.repeat([320.0, 348.0], 20)
    with pytest.raises(DatasetError, match=r"several temperatures \[320.0, 348.0\]"):
        load_cg_dataset(_write(tmp_path, temperature=temps))
    ds = load_cg_dataset(_write(tmp_path, temperature=temps, replica=np.repeat([0, 1], 20)), temperature=348.0)
    assert ds.num_frames == 20 and ds.temperature == 348.0 and set(ds.replica.tolist()) == {1}
    assert ds.extras["frame_index"].tolist() == list(range(20, 40))
    with pytest.raises(DatasetError, match="no frames at 400 K"):
        load_cg_dataset(_write(tmp_path, temperature=temps), temperature=400.0)
    with pytest.raises(DatasetError, match="'replica' must have one entry per frame"):
        load_cg_dataset(_write(tmp_path, replica=np.zeros(3)))


def test_one_definition_of_q_shared_with_the_data_script():
    import runpy

    script = runpy.run_path(os.path.join(ROOT, "scripts", "generate_cg_data.py"))
    ds = load_cg_dataset("chignolin", max_frames=200)
    ref = ds.extras["reference_structure"]
    assert script["fraction_native_contacts"] is not None
    np.testing.assert_array_equal(script["fraction_native_contacts"](ds.positions, ref),
                                  analysis.native_contacts(ds.positions, ref))  # fmt: skip
    # The folded reference has Q ≈ 1 and an RMSD of 0; a stretched chain has Q ≈ 0.
    assert analysis.native_contacts(ref[None], ref)[0] > 0.99
    assert analysis.kabsch_rmsd(ref[None] @ np.linalg.qr(np.ones((3, 3)) + np.eye(3))[0], ref)[0] < 1e-5
    line = np.zeros((1, 10, 3))
    line[0, :, 0] = 3.8 * np.arange(10)
    assert analysis.native_contacts(line, ref)[0] < 0.01
    curves = analysis.folded_fraction_vs_time([ref[None].repeat(20, 0), line.repeat(20, 0)], ref, 1.0, windows=4)
    assert curves[0]["folded_fraction"] == [1.0] * 4 and curves[1]["folded_fraction"] == [0.0] * 4
    assert curves[0]["time_ps"] == [5.0, 10.0, 15.0, 20.0]


def test_start_frame_must_exist(tmp_path):
    cfg = tiny_config(tmp_path, md={"steps": 400, "block": 200, "record_every": 20, "start_frame": 50000})
    with pytest.raises(ConfigError, match="md.start_frame 50000 is not a frame"):
        train_mod.run(cfg, progress=False)


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


# ------------------------------------------------------------------------------------------------ fine-tuning run


@pytest.mark.slow
def test_finetune_run_end_to_end(tmp_path):
    from so3krates_hk.training import finetune

    cfg = finetune.parse_finetune_config({
        "data": {"max_frames": 12, "train_fraction": 0.5, "val_fraction": 0.25},
        "training": {"epochs": 2, "batch_size": 3, "learning_rate": 1e-4},
        "output": {"directory": str(tmp_path)},
    })  # fmt: skip
    metrics = finetune.run(cfg, progress=False)
    assert metrics["frames"] == {"train": 6, "validation": 3, "test": 3}
    assert metrics["frozen_bit_identical"] and metrics["frozen_leaves"] > 0 and metrics["trainable_leaves_changed"] > 0
    assert metrics["export_reload_matches"]
    assert len(metrics["history"]["train_force_rmse"]) == 2
    after, before = metrics["after"]["force_rmse"], metrics["before"]["force_rmse"]
    assert np.isfinite(after) and after != before
    assert (tmp_path / "finetuned.npz").exists() and (tmp_path / "metrics.json").exists()
