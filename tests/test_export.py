"""Exported models: the lammps-jax bundle (pair_style jax/kk) run on the CPU, and the chemtrain-deploy exporter run
from its serialised CPU export, both against the Python model; and the refusals (SO3LR, priors, charge embedding).

The lammps-jax tests need ``lammps-jax`` and ``lammps-jax-pjrt-cpu`` (JAX ≥ 0.8: the current environment); the
chemtrain-deploy tests need chemtrain (the chemtrain environment). Each half skips, saying so, where its package is
missing.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from so3krates_hk.cli import main
from so3krates_hk.errors import MissingExtraError
from so3krates_hk.export.model_file import NotExportableError, load_model, so3krates_metadata
from so3krates_hk.io import save_params
from so3krates_hk.training.cg_model import build_cg_model, load_cg_model
from so3krates_hk.training.priors import fit_priors

TWO_LAYERS = dict(num_layers=2, num_features=16, num_heads=2, degrees=[1, 2], num_radial_basis_fn=8,
                  bernstein_gamma=0.6, energy_regression_dim=16)  # fmt: skip
R_CUT = 3.2
N_BEADS = 16
FORCE_TOL = 1e-5  # energy units / Å, float32


def chain(seed=0, frames=3):
    """A bead chain along x (spacing 1.5 Å, jittered), so a two-rank split has ghosts that matter and atoms beyond."""
    rng = np.random.default_rng(seed)
    base = np.stack([1.5 * np.arange(N_BEADS), 0.6 * np.sin(np.arange(N_BEADS)), 0.4 * np.cos(np.arange(N_BEADS))], 1)
    return base[None] + 0.1 * rng.normal(size=(frames, N_BEADS, 3))


@pytest.fixture(scope="module")
def cg(tmp_path_factory):
    """A two-layer CG model saved as `so3krates-hk train` saves it, with a reference frame, and its twin with priors."""
    frames = chain()
    species = np.arange(N_BEADS) % 3
    model = build_cg_model(frames, species, kT=0.6, r_cutoff=R_CUT, hyperparameters=TWO_LAYERS, priors=None)
    params = model.init_params(jax.random.PRNGKey(1))
    d = tmp_path_factory.mktemp("cg")
    path, with_priors = str(d / "params.npz"), str(d / "with_priors.npz")
    model.save(path, params)
    dataclasses.replace(model, priors=fit_priors(frames, 0.6, bond_cutoff=1.8)).save(with_priors, params)
    return dict(path=path, with_priors=with_priors, R=frames[0].astype(np.float32), species=species, model=model,
                params=params)  # fmt: skip


@pytest.fixture(scope="module")
def reference(cg):
    """E and F of the saved model through the library's own path (jax-md Dense list, compacted graph), float32."""
    model, params, _ = load_cg_model(cg["path"], cg["R"])
    R = cg["R"]
    p32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    R = jnp.asarray(R, jnp.float32)
    nbrs = model.neighbor_fn.allocate(R)
    e, g = jax.value_and_grad(lambda X: model.apply_fn(p32, X, nbrs, species=model.species))(R)
    assert e.dtype == jnp.float32
    return float(e), -np.asarray(g, np.float64)


# ------------------------------------------------------------------------------------------------ refusals


def test_so3lr_is_refused_with_the_reason(tmp_path, capsys):
    assert main(["export", "so3lr", "-o", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("so3krates-hk: error: SO3LR cannot be exported") and "neutralised" in err
    assert "sum over all atoms of all ranks" in err and "so3krates-hk lammps" in err
    path = str(tmp_path / "so3lr.npz")  # SO3LR weights of one's own: recognised by their metadata
    save_params(path, {"so3krates": {"w": np.zeros(2)}}, {"model": "so3lr"})
    with pytest.raises(NotExportableError, match="charges are neutralised over the whole system"):
        load_model(path)
    assert not (tmp_path / "b.json").exists()


def test_charge_or_spin_embedding_models_are_refused(tmp_path):
    path = str(tmp_path / "q.npz")
    save_params(path, {"so3krates": {"w": np.zeros(2)}},
                so3krates_metadata(4.0, 5, 10.0, use_charge_embed=True, **TWO_LAYERS))  # fmt: skip
    with pytest.raises(NotExportableError, match="embeds the total charge or spin"):
        load_model(path)


def test_cg_priors_are_refused_unless_left_out_on_purpose(cg, tmp_path, capsys):
    assert main(["export", cg["with_priors"], "-o", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "CG priors" in err and "--without-priors" in err and "fixed atom indices" in err


def test_missing_lammps_jax_names_the_extra(cg, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lammps_jax" else real(name, *a))
    from so3krates_hk.export.lammps_jax import export_bundle

    with pytest.raises(MissingExtraError, match=r"so3krates-hk\[lammps-jax\]"):
        export_bundle(load_model(cg["path"]), "never.json", max_atoms=8, max_edges=16)


def test_so3krates_kind_and_type_mapping(cg, reference, tmp_path):
    """A plain SO3krates file (1-based species, mapped from LAMMPS types by a table) gives the same energy, over the
    engine's edge list, as the library's model (forces of the same function: the bundle tests)."""
    from so3krates_hk.errors import UserError
    from so3krates_hk.export.energy import per_atom_energy_fn
    from so3krates_hk.export.lammps_jax import lammps_edges
    from so3krates_hk.export.model_file import type_table

    path = str(tmp_path / "so3krates.npz")
    meta = so3krates_metadata(R_CUT, 3, cg["model"].avg_num_neighbors, positive_species=True, **TWO_LAYERS)
    save_params(path, jax.device_get(cg["params"]), meta)
    model = load_model(path)
    assert (model.kind, model.default_units, model.priors) == ("so3krates", "metal", None)
    assert model.receptive_field == 2 * R_CUT
    table = type_table(model, [3, 1, 2])  # LAMMPS types 1, 2, 3 → species 3, 1, 2 → embedding rows 2, 0, 1
    np.testing.assert_array_equal(table, [2, 0, 1])
    with pytest.raises(UserError, match=r"outside the model's range \[1, 4\)"):
        type_table(model, [1, 4])
    inverse = np.argsort(table)
    types = inverse[cg["species"]]  # the 0-based types the pair style would pass for these beads
    senders, receivers, mask = lammps_edges(cg["R"], R_CUT + 0.5, N_BEADS * N_BEADS)
    e = jnp.sum(jax.jit(per_atom_energy_fn(model, table))(jnp.asarray(cg["R"]), types, senders, receivers, mask))
    e_ref, _ = reference
    assert e.dtype == jnp.float32 and abs(float(e) - e_ref) <= 1e-5 * max(1.0, abs(e_ref))
    e_unmapped = jnp.sum(jax.jit(per_atom_energy_fn(model))(jnp.asarray(cg["R"]), types, senders, receivers, mask))
    assert abs(float(e_unmapped) - e_ref) > 1e-3  # the table matters


def test_missing_chemtrain_names_the_extra(monkeypatch):
    import importlib
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "chemtrain" else real(name, *a))
    monkeypatch.delitem(sys.modules, "so3krates_hk.deploy", raising=False)
    with pytest.raises(MissingExtraError, match=r"so3krates_hk.deploy needs the 'chemtrain' package.*\[chemtrain\]"):
        importlib.import_module("so3krates_hk.deploy")


# ------------------------------------------------------------------------------------------------ lammps-jax


@pytest.fixture(scope="module")
def bundle(cg, tmp_path_factory):
    pytest.importorskip("lammps_jax", reason="needs lammps-jax 0.2.1, which needs JAX >= 0.8 (the current environment)")
    out = str(tmp_path_factory.mktemp("bundle") / "model.json")
    rc = main(["export", cg["path"], "--format", "lammps-jax", "-o", out, "--platform", "cpu", "--max-atoms", "24",
               "--edges-per-atom", "12"])  # fmt: skip
    assert rc == 0
    with open(out) as f:
        return json.load(f)


def test_ghost_hops_cover_the_receptive_field_and_full_neighbourhoods(cg):
    from so3krates_hk.export.lammps_jax import ghost_hops

    model = load_model(cg["path"])
    for layers, hops in ((1, 2), (2, 2), (3, 3)):
        config = dataclasses.replace(model.config, num_layers=layers)
        assert ghost_hops(dataclasses.replace(model, config=config)) == hops


def test_bundle_contract(bundle):
    c = bundle["contract"]
    assert bundle["format"] == "lammps-jax-json-distributed"  # a ghost export: the shell spans n_hops cutoffs
    assert (c["n_hops"], c["cutoff"], c["unit_style"], c["precision"]) == (2, R_CUT, "real", "float32")
    assert (c["max_atoms"], c["max_edges"], c["n_species"], c["newton"]) == (24, 24 * 12, 3, "on")
    assert bundle["export_info"]["platform"] == "cpu" and bundle["programs"]["energy_and_forces_mlir_b64"]


def test_default_bundle_targets_cuda_and_is_not_run_on_the_cpu(cg, tmp_path):
    pytest.importorskip("lammps_jax", reason="needs lammps-jax 0.2.1, which needs JAX >= 0.8 (the current environment)")
    from so3krates_hk.errors import UserError
    from so3krates_hk.export.lammps_jax import read_bundle, run_bundle

    out = str(tmp_path / "gpu.json")
    assert main(["export", cg["path"], "-o", out, "--max-atoms", "16", "--edges-per-atom", "8", "--units", "lj"]) == 0
    bundle = read_bundle(out)
    assert bundle["export_info"]["platform"] == "cuda" and bundle["contract"]["unit_style"] == "lj"
    with pytest.raises(UserError, match="exported for CUDA"):
        run_bundle(bundle, cg["R"][:2], [0, 0], 2, 0, [0, 1], [1, 0], [True, True])


def test_bundle_matches_the_python_model_in_float32(cg, bundle, reference):
    """One rank holding every atom, run through the PJRT CPU plugin (what a Kokkos OpenMP LAMMPS loads): the
    program's energy and forces equal the Python model's. (The float64 test below runs on jaxlib's CPU client.)"""
    pytest.importorskip("lammps_jax_pjrt_cpu", reason="needs lammps-jax-pjrt-cpu==0.11.2 (the PJRT CPU plugin)")
    from so3krates_hk.export.lammps_jax import cpu_plugin_path, lammps_edges, run_bundle

    plugin = cpu_plugin_path()
    R, types = cg["R"], cg["species"]
    e_ref, f_ref = reference
    assert np.abs(f_ref).max() > 1e-3  # forces worth comparing
    senders, receivers, mask = lammps_edges(R, R_CUT + 0.5, 24 * 12)  # the pair style also lists skin pairs
    energy, forces = run_bundle(bundle, R, types, len(R), 0, senders, receivers, mask, plugin=plugin)
    assert energy.dtype == np.float32 and forces.shape == (24, 3)
    assert abs(float(energy) - e_ref) <= 1e-5 * max(1.0, abs(e_ref))
    np.testing.assert_allclose(forces[: len(R)], f_ref, rtol=0, atol=FORCE_TOL)
    assert np.all(forces[len(R) :] == 0)  # padding rows


def test_float64_bundle_equals_the_python_model_to_rounding(cg, tmp_path):
    pytest.importorskip("lammps_jax", reason="needs lammps-jax 0.2.1, which needs JAX >= 0.8 (the current environment)")
    from so3krates_hk.export.lammps_jax import lammps_edges, read_bundle, run_bundle

    out = str(tmp_path / "f64.json")
    assert main(["export", cg["path"], "-o", out, "--platform", "cpu", "--float64", "--max-atoms", "16",
                 "--edges-per-atom", "8"]) == 0  # fmt: skip
    bundle = read_bundle(out)
    assert bundle["contract"]["precision"] == "float64"
    R = cg["R"].astype(np.float64)
    model, params, _ = load_cg_model(cg["path"], R)
    nbrs = model.neighbor_fn.allocate(jnp.asarray(R))
    p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    e_ref, g = jax.value_and_grad(lambda X: model.apply_fn(p64, X, nbrs, species=model.species))(jnp.asarray(R))
    senders, receivers, mask = lammps_edges(R, R_CUT + 0.5, 16 * 8)
    energy, forces = run_bundle(bundle, R, cg["species"], len(R), 0, senders, receivers, mask)
    assert energy.dtype == np.float64 and abs(float(energy) - float(e_ref)) <= 1e-12 * max(1.0, abs(float(e_ref)))
    np.testing.assert_allclose(forces[: len(R)], -np.asarray(g), rtol=0, atol=1e-12)


def test_bundle_under_a_two_rank_ghost_decomposition(cg, bundle, reference):
    """Two ranks split the chain at its middle; each holds its owned atoms first, then every atom within
    layers × cutoff of them as ghosts, and lists ghost rows too (n_hops > 1). Σ_ranks E and the ghost forces
    returned to their owners equal the one-process Python model."""
    pytest.importorskip("lammps_jax_pjrt_cpu", reason="needs lammps-jax-pjrt-cpu==0.11.2 (the PJRT CPU plugin)")
    from so3krates_hk.export.lammps_jax import cpu_plugin_path, lammps_edges, run_bundle

    R, types = cg["R"], cg["species"]
    e_ref, f_ref = reference
    shell = bundle["contract"]["n_hops"] * R_CUT
    split = np.median(R[:, 0])
    energy, forces, ghosts = 0.0, np.zeros_like(f_ref), []
    for owned in (R[:, 0] < split, R[:, 0] >= split):
        near = np.linalg.norm(R[:, None] - R[owned][None], axis=-1).min(axis=1) < shell
        rows = np.concatenate([np.nonzero(owned)[0], np.nonzero(near & ~owned)[0]])
        ghosts.append(len(rows) - owned.sum())
        senders, receivers, mask = lammps_edges(R[rows], R_CUT, 24 * 12)
        e, f = run_bundle(bundle, R[rows], types[rows], int(owned.sum()), len(rows) - int(owned.sum()), senders,
                          receivers, mask, plugin=cpu_plugin_path())  # fmt: skip
        energy += float(e)
        np.add.at(forces, rows, f[: len(rows)])  # reverse communication: ghost rows back to their owners
    assert all(0 < g < N_BEADS // 2 for g in ghosts)  # real ghosts, and atoms beyond the shell
    assert abs(energy - e_ref) <= 1e-5 * max(1.0, abs(e_ref))
    np.testing.assert_allclose(forces, f_ref, rtol=0, atol=FORCE_TOL)


# ------------------------------------------------------------------------------------------------ chemtrain-deploy


@pytest.fixture(scope="module")
def deploy():
    pytest.importorskip("chemtrain", reason="needs chemtrain==0.2.0 (the chemtrain extra)")
    pytest.importorskip("flatbuffers", reason="needs flatbuffers (jax.export serialisation)")
    import so3krates_hk.deploy as deploy

    return deploy


def test_deploy_exporter_exports_and_saves(cg, deploy, tmp_path):
    from chemtrain.deploy.exporter import Exporter

    exporter = deploy.SO3kratesCGExporter(cg["path"])
    assert isinstance(exporter, Exporter) and exporter.nbr_order == [2, 4] and exporter.unit_style == "real"
    exporter.export()
    out = tmp_path / "model.ptb"
    exporter.save(str(out))
    assert out.stat().st_size > 10_000
    text = str(exporter)
    assert f"cutoff: {R_CUT}" in text and 'unit_style: "real"' in text and "SIMPLE_SPARSE" in text
    with pytest.raises(NotExportableError, match="--without-priors"):
        with_priors = dataclasses.replace(cg["model"], priors=load_model(cg["with_priors"]).priors)
        deploy.SO3kratesCGExporter.from_cg_model(with_priors, cg["params"])


def test_deploy_energy_runs_from_its_serialised_cpu_export(cg, deploy, reference):
    """The wrapped energy (list pruning, per-atom energies, gradient), exported for the CPU, serialised,
    deserialised and called: newton on (full list) and newton off (half list) equal the Python model."""
    exporter = deploy.SO3kratesCGExporter.from_cg_model(cg["model"], cg["params"])
    program = jax.export.deserialize(exporter.exported(("cpu",)).serialize())
    R, types = cg["R"], cg["species"].astype(np.int32)
    e_ref, f_ref = reference
    from so3krates_hk.export.lammps_jax import lammps_edges

    senders, receivers, mask = lammps_edges(R, R_CUT + 0.5, N_BEADS * N_BEADS)
    senders, receivers = senders[mask], receivers[mask]
    half = senders < receivers
    n = np.int32(len(R))
    for newton, s, r in ((True, senders, receivers), (False, senders[half], receivers[half])):
        forces, (energy, _, _) = program.call(R, types, n, np.int32(0), np.bool_(newton), s, r,
                                              np.ones(len(senders), bool))  # fmt: skip
        assert abs(float(energy) - e_ref) <= 1e-5 * max(1.0, abs(e_ref))
        np.testing.assert_allclose(np.asarray(forces), f_ref, rtol=0, atol=FORCE_TOL)
