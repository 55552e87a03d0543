"""The users' model slot: their class name, their whole YAML (verbatim), strict keys inside ``model.so3lr``, the
interface their framework calls, padding, periodic boxes, and a few chemtrain force-matching steps."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml

from so3krates_hk.training.config import ConfigError
from so3krates_hk.training.data import load_cg_dataset
from so3krates_hk.training.model_slot import SO3kratesModel

# Their integration plan's config, verbatim.
THEIR_YAML = textwrap.dedent(
    """
    model:
      ml_model: "so3lr"
      cutoff: 4.5          # SO3krates SR cutoff
      dr_threshold: 0.5

      so3lr:
        num_layers: 3           # SO3krates transformer layers
        hidden_features: 128    # Feature dimension
        num_heads: 4            # Attention heads
        max_degree: 4           # Max spherical harmonic degree
        n_radial_basis: 32      # Bernstein basis functions
        use_lr: false           # Disable long-range for CG
        lr_cutoff: 0.0          # No LR cutoff when disabled
    """
)

SMALL_YAML = textwrap.dedent(
    """
    model:
      ml_model: "so3lr"
      cutoff: 6.0
      dr_threshold: 0.5
      so3lr:
        num_layers: 1
        hidden_features: 16
        num_heads: 2
        max_degree: 2
        n_radial_basis: 8
        use_lr: false
        lr_cutoff: 12.0
    """
)


@pytest.fixture(scope="module")
def chignolin():
    return load_cg_dataset("chignolin", max_frames=50)


def test_their_class_name_is_exported():
    from so3krates_hk import SO3kratesModel as A
    from so3krates_hk import SO3LRModel

    assert SO3LRModel is A is SO3kratesModel


def test_their_yaml_verbatim_on_cg_chignolin(chignolin):
    """Their whole config, with the keys of their framework and of other backbones beside ours."""
    from so3krates_hk import SO3LRModel

    config = yaml.safe_load(THEIR_YAML)
    config["model"]["mace"] = {"num_interactions": 2, "hidden_irreps": "64x0e"}  # another backbone's section
    config["model"]["their_own_flag"] = True  # their framework's key
    config["training"] = {"epochs": 100}  # their other sections
    R0 = chignolin.positions[0]
    model = SO3LRModel(config, R0, None, chignolin.species, len(R0))
    h = model.hyperparameters
    assert (h["num_layers"], h["num_features"], h["num_heads"], h["degrees"], h["num_radial_basis_fn"]) == (
        3, 128, 4, (1, 2, 3, 4), 32)  # fmt: skip
    assert (model.cutoff, model.dr_threshold, model.use_lr) == (4.5, 0.5, False)
    assert model.n_species == int(chignolin.species.max()) + 1
    params = model.initialize_params(jax.random.PRNGKey(0))
    e, f = jax.jit(lambda p, r: model.compute_energy_and_forces(p, r))(params, jnp.asarray(R0))
    assert np.isfinite(float(e)) and f.shape == R0.shape and float(jnp.abs(f).max()) > 0
    # A rigid rotation changes neither the energy nor the forces' magnitudes.
    rot = jnp.asarray(np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0], jnp.float32)
    e_rot = model.compute_energy(params, jnp.asarray(R0) @ rot.T)
    assert float(e_rot) == pytest.approx(float(e), rel=1e-4, abs=1e-4)


def test_their_yaml_with_use_lr_true():
    """``use_lr: true`` is SO3LR's atomistic long-range physics: their ``lr_cutoff: 0.0`` is refused with a clear
    error; with a real cutoff it runs on atoms (species = Z); bead type 0 is refused as not an element."""
    from so3krates_hk.data import reference_structure

    s = reference_structure("dha")
    config = yaml.safe_load(THEIR_YAML.replace("use_lr: false", "use_lr: true"))
    with pytest.raises(ConfigError, match=r"lr_cutoff \(0\) must exceed model.cutoff \(4.5\)"):
        SO3kratesModel(config, s.positions, None, s.atomic_numbers, s.num_atoms)
    config["model"]["so3lr"]["lr_cutoff"] = 12.0
    config["model"]["so3lr"].update(num_layers=1, hidden_features=16, max_degree=2, n_radial_basis=8)
    model = SO3kratesModel(config, s.positions, None, s.atomic_numbers, s.num_atoms)
    params = model.initialize_params(jax.random.PRNGKey(0))
    assert "partial_charges" in params and "zbl_repulsion" in params
    e, f = model.compute_energy_and_forces(params, jnp.asarray(s.positions), None, jnp.asarray(s.atomic_numbers))
    assert np.isfinite(float(e)) and bool(jnp.all(jnp.isfinite(f)))
    with pytest.raises(ConfigError, match="species must be atomic numbers"):
        SO3kratesModel(config, s.positions, None, np.zeros(s.num_atoms, int), s.num_atoms)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["model"]["so3lr"].update(max_degre=2),
         r"Unknown key\(s\) \['max_degre'\] in section 'model.so3lr'"),
        (lambda c: c["model"]["so3lr"].update(num_layers="2"), r"model.so3lr.num_layers must be an integer"),
        (lambda c: c["model"]["so3lr"].update(num_layers=2.0), r"model.so3lr.num_layers must be an integer"),
        (lambda c: c["model"]["so3lr"].update(use_lr="no"), r"model.so3lr.use_lr must be true or false"),
        (lambda c: c["model"]["so3lr"].update(num_heads=3), r"num_heads \(3\) must divide"),
        (lambda c: c["model"]["so3lr"].update(max_degree=0), r"model.so3lr.max_degree must be ≥ 1; got 0"),
        (lambda c: c["model"]["so3lr"].pop("hidden_features"),
         r"Missing key\(s\) \['hidden_features'\] in section 'model.so3lr'"),
        (lambda c: c["model"]["so3lr"].update(hyperparameters={"num_layer": 2}), r"model.so3lr.hyperparameters"),
        (lambda c: c["model"]["so3lr"].update(hyperparameters={"num_layers": 2}), r"repeats \['num_layers'\]"),
        (lambda c: c["model"].update(cutoff="4.5 A"), r"model.cutoff must be a number"),
        (lambda c: c["model"].update(cutoff=-1.0), r"model.cutoff must be > 0"),
        (lambda c: c["model"].update(ml_model="mace"), r"model.ml_model is 'mace'"),
        (lambda c: c["model"].pop("so3lr"), r"Missing key model.so3lr"),
    ],
)
def test_strict_inside_model_so3lr(chignolin, edit, message):
    config = yaml.safe_load(SMALL_YAML)
    edit(config)
    with pytest.raises(ConfigError, match=message):
        SO3kratesModel(config, chignolin.positions[0], None, chignolin.species, 10)


def test_slot_interface_padding_and_training_in_chemtrain(tmp_path):
    ForceMatching = pytest.importorskip("chemtrain.trainers", reason="needs chemtrain (the chemtrain environment)").ForceMatching

    ds = load_cg_dataset("alanine_dipeptide", max_frames=60)
    config = yaml.safe_load(SMALL_YAML)
    N_max = 12  # two padded beads
    R0 = np.concatenate([ds.positions[0], np.full((2, 3), 50.0, np.float32)])
    species = np.concatenate([ds.species, [0, 0]]).astype(np.int32)
    mask = jnp.arange(N_max) < 10
    model = SO3kratesModel(config, R0, None, species, N_max)
    assert model.initial_neighbors.idx.shape[0] == N_max
    assert model.nneigh_fn.allocate(jnp.asarray(R0)).format.name == "Dense"
    params = model.initialize_params(jax.random.PRNGKey(0))
    R = jnp.asarray(R0)
    e = model.compute_energy(params, R, mask, jnp.asarray(species))
    e2, f = model.compute_energy_and_forces(params, R, mask, jnp.asarray(species))
    assert float(e) == pytest.approx(float(e2)) and f.shape == (N_max, 3)
    np.testing.assert_allclose(f, -jax.grad(lambda r: model.compute_energy(params, r, mask, jnp.asarray(species)))(R))
    assert float(jnp.abs(f[10:]).max()) == 0.0  # padded beads feel nothing
    # Moving a padded bead changes nothing.
    e_moved = model.compute_energy(params, R.at[11].set(jnp.asarray([1.0, 2.0, 3.0])), mask, jnp.asarray(species))
    assert float(e_moved) == float(e)
    nbrs = model.nneigh_fn.allocate(R)
    assert float(model.compute_energy(params, R, mask, jnp.asarray(species), neighbor=nbrs)) == pytest.approx(float(e))

    def template(p):
        return lambda pos, neighbor, **kw: model.compute_energy(p, pos, mask, jnp.asarray(species), neighbor)

    R_data = np.concatenate([ds.positions[:40], np.full((40, 2, 3), 50.0, np.float32)], axis=1)
    F_data = np.concatenate([ds.forces[:40], np.zeros((40, 2, 3), np.float32)], axis=1)
    trainer = ForceMatching(params, optax.adam(3e-3), template, model.initial_neighbors, gammas={"F": 1.0},
                            batch_per_device=10, batch_cache=1, log_file=str(tmp_path / "log"),
                            checkpoint_path=str(tmp_path / "ckpt"))  # fmt: skip
    # (chemtrain 0.2.0 needs a validation split: its epoch log reads the validation losses)
    trainer.set_dataset({"R": R_data[:30], "F": F_data[:30]}, stage="training")
    trainer.set_dataset({"R": R_data[30:], "F": F_data[30:]}, stage="validation", include_all=True)
    trainer.train(2)
    assert len(trainer.train_losses) == 2 and np.isfinite(trainer.train_losses).all()
    assert trainer.train_losses[1] < trainer.train_losses[0]


def test_slot_periodic_box_uses_minimum_image(chignolin):
    """With a box, a bead pair across the boundary interacts as at its minimum-image distance (float64, enabled for
    the test session: the two lists sum the pairs in different orders, which float32 would blur at the 1e-5 level)."""
    config = yaml.safe_load(SMALL_YAML)
    R0 = np.asarray(chignolin.positions[0], np.float64) - chignolin.positions[0].min(0) + 1.0
    L = float(R0.max() + 20.0)
    free = SO3kratesModel(config, R0, None, chignolin.species, 10)
    periodic = SO3kratesModel(config, R0, jnp.asarray([L, L, L]), chignolin.species, 10)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), free.initialize_params(jax.random.PRNGKey(1)))
    e_free = free.compute_energy(params, jnp.asarray(R0))
    assert e_free.dtype == jnp.float64
    shifted = R0.copy()
    shifted[:5, 0] += L  # half the chain one box length away: the same molecule under periodicity
    e_periodic = float(periodic.compute_energy(params, jnp.asarray(shifted)))
    assert e_periodic == pytest.approx(float(e_free), rel=1e-10, abs=1e-10)
    e_unwrapped = float(free.compute_energy(params, jnp.asarray(shifted)))
    assert e_unwrapped != pytest.approx(float(e_free), rel=1e-5, abs=1e-5)