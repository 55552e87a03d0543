"""The MD runner: overflow recovery equals a run with enough capacity, exact restart, NaN detection, conservation."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, random_molecule

from so3krates_hk import so3krates_neighborlist_pp
from so3krates_hk._compat import jax_md, partition
from so3krates_hk.md import MDSettings, Potential, Simulation, SimulationError

CUTOFF = 3.0


@pytest.fixture(scope="module")
def system():
    """A 14-atom cluster, a small random SO3krates, and a harmonic trap that squeezes it (so neighbours appear)."""
    R, species = random_molecule(14, seed=3, spacing=1.6)
    R = jnp.asarray(R)
    species = jnp.asarray(species)
    displacement, shift = jax_md.space.free()
    nl = partition.neighbor_list(displacement, 1.0, CUTOFF, dr_threshold=0.2, format=partition.Sparse,
                                 disable_cell_list=True, capacity_multiplier=1.0)  # fmt: skip
    init_fn, _ = so3krates_neighborlist_pp(displacement, CUTOFF, n_species=4, avg_num_neighbors=4.0, **SMALL)
    params = init_fn(jax.random.PRNGKey(0), R, nl.allocate(R), species=species)

    def build(max_edges):
        _, apply_fn = so3krates_neighborlist_pp(displacement, CUTOFF, n_species=4, avg_num_neighbors=4.0,
                                                max_edges=max_edges, **SMALL)  # fmt: skip

        def energy(r, neighbor):
            trap = 0.5 * 2.0 * jnp.sum((r - jnp.mean(r, 0)) ** 2)
            return apply_fn(params, r, neighbor, species=species) + trap

        return energy, lambda r, neighbor: apply_fn.count_edges(r, neighbor)

    return dict(R=R, shift=shift, nl=nl, build=build)


def settings(**kw):
    base = dict(ensemble="nvt_langevin", dt=0.02, kT=0.3, gamma=1.0, block=20, record_every=5, seed=1)
    base.update(kw)
    return MDSettings(**base)


def test_overflow_recovery_equals_a_run_with_enough_capacity(system):
    edges0 = int(system["build"](None)[1](system["R"], system["nl"].allocate(system["R"])))
    tight = Simulation(Potential(system["build"], max_edges=edges0), {"neighbor": system["nl"]}, system["shift"],
                       1.0, settings())  # fmt: skip
    _, traj_tight = tight.run(position=system["R"], steps=200)
    assert tight.reallocations >= 2  # both the jax-md list and the model capacity had to grow
    assert tight.potential.max_edges > edges0

    roomy_nl = partition.neighbor_list(jax_md.space.free()[0], 1.0, CUTOFF, dr_threshold=0.2,
                                       format=partition.Sparse, disable_cell_list=True, capacity_multiplier=50.0)  # all pairs
    roomy = Simulation(Potential(system["build"], max_edges=14 * 13), {"neighbor": roomy_nl}, system["shift"], 1.0,
                       settings())  # fmt: skip
    _, traj_roomy = roomy.run(position=system["R"], steps=200)
    assert roomy.reallocations == 0
    assert np.isfinite(traj_tight.positions).all()
    # Same trajectory. The padded sizes differ, so sums run in another order: round-off (1e-16) grows through the
    # chaotic dynamics to ~1e-7 after 200 steps; a step computed with missing neighbours would differ by O(0.01–1).
    np.testing.assert_allclose(traj_tight.positions[:4], traj_roomy.positions[:4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(traj_tight.positions, traj_roomy.positions, rtol=0, atol=1e-5)
    np.testing.assert_allclose(traj_tight.potential_energy, traj_roomy.potential_energy, rtol=0, atol=1e-5)

    # Negative control: without the model-capacity check, the overflow poisons the run (NaN) and it stops loudly.
    def blind(max_edges):
        return system["build"](max_edges)[0], None

    unchecked = Simulation(Potential(blind, max_edges=edges0), {"neighbor": roomy_nl}, system["shift"], 1.0,
                           settings())  # fmt: skip
    with pytest.raises(SimulationError, match="NaN"):
        unchecked.run(position=system["R"], steps=200)


def test_restart_equals_an_uninterrupted_run(system, tmp_path):
    for ensemble in ("nvt_langevin", "nvt_nose_hoover"):
        sim = Simulation(Potential(system["build"], 14 * 13), {"neighbor": system["nl"]}, system["shift"], 1.0,
                         settings(ensemble=ensemble))  # fmt: skip
        ckpt = str(tmp_path / f"{ensemble}.npz")
        state_half, traj_a = sim.run(position=system["R"], steps=100, checkpoint=ckpt)
        state_full, traj_b = sim.run(state_half, steps=100, start_step=100)

        sim2 = Simulation(Potential(system["build"], 14 * 13), {"neighbor": system["nl"]}, system["shift"], 1.0,
                          settings(ensemble=ensemble))  # fmt: skip
        state_restarted, traj_c = sim2.run(steps=100, restart=ckpt)
        for a, b in zip(jax.tree_util.tree_leaves(state_full), jax.tree_util.tree_leaves(state_restarted)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(traj_b.positions, traj_c.positions)
        np.testing.assert_array_equal(traj_c.steps, np.arange(105, 201, 5))


def test_nan_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(system, tmp_path):
    def build(max_edges):
        energy, count = system["build"](max_edges)
        # An energy that turns NaN once the cluster has drifted 0.5 length units from the origin.
        return (lambda r, neighbor: energy(r, neighbor) + jnp.sqrt(0.5 - jnp.sum(jnp.mean(r, 0) ** 2))), count

    R = system["R"] - system["R"].mean(0)
    v = jnp.zeros_like(R).at[:].set(jnp.array([1.0, 0.0, 0.0]))  # the whole cluster moves at unit speed
    sim = Simulation(Potential(build, 14 * 13), {"neighbor": system["nl"]}, system["shift"], 1.0,
                     settings(ensemble="nve", kT=None, dt=0.01))  # fmt: skip
    ckpt = str(tmp_path / "c.npz")
    state = sim.init_state(R, velocities=v)
    with pytest.raises(SimulationError, match=r"NaN in the MD state between steps \d+ and \d+"):
        sim.run(state, steps=400, checkpoint=ckpt, checkpoint_every=20)
    good, step = sim.load_checkpoint(ckpt)
    assert 0 < step < 400 and bool(jnp.all(jnp.isfinite(good.position)))


def test_langevin_thermostat_reaches_its_temperature(system):
    sim = Simulation(Potential(system["build"], 14 * 13), {"neighbor": system["nl"]}, system["shift"], 1.0,
                     settings(kT=0.5, gamma=2.0, block=100, record_every=10))  # fmt: skip
    _, traj = sim.run(position=system["R"], steps=1500)
    kT = traj.temperature_kT[50:].mean()
    assert abs(kT - 0.5) < 0.1


# ---------------------------------------------------------------------------------------------------- SO3LR


@pytest.mark.slow
def test_so3lr_nve_conserves_energy_float64_dha(tmp_path):
    from so3krates_hk.md.run import MDRunConfig, run_md

    cfg = MDRunConfig(structure="dha", output=str(tmp_path / "nve"), ensemble="nve", dt_fs=0.25, temperature=300.0,
                      steps=800, record_every=10, block=200, checkpoint_every=400, float64=True)  # fmt: skip
    # NVE from Maxwell–Boltzmann velocities at 300 K: 0.2 ps
    summary = run_md(cfg, progress=False)
    log = np.genfromtxt(tmp_path / "nve" / "log.csv", delimiter=",", names=True)
    assert summary["steps_done"] == 800 and len(log) == 80
    cons = log["conserved_eV"]
    n = 56
    assert np.ptp(cons) / n < 5e-5  # fluctuation of the conserved energy, eV/atom, with 0.25 fs
    assert abs(summary["conserved_drift_eV_per_atom_per_ps"]) < 1e-3
    # started at 300 K: equipartition leaves ~150 K; a start from rest would only reach the ~60 K of relaxation
    assert log["temperature_K"].mean() > 120


def test_md_cli_writes_complete_outputs_and_restarts(tmp_path):
    from so3krates_hk.cli import main

    out = str(tmp_path / "md")
    args = ["md", "--structure", "dha", "--output", out, "--ensemble", "nvt_langevin", "--dt-fs", "0.5",
            "--steps", "40", "--record-every", "10", "--block", "20", "--checkpoint-every", "20", "--no-progress"]
    assert main(args) == 0
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["steps_done"] == 40 and run["frames"] == 4
    assert main(["md", "--output", out, "--restart", "--steps", "80", "--no-progress"]) == 0
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["steps_done"] == 80 and run["frames"] == 8
    import ase.io

    frames = ase.io.read(os.path.join(out, "trajectory.xyz"), index=":")
    assert [a.info["step"] for a in frames] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]


def test_md_cli_rejects_bad_structures(tmp_path):
    import ase
    import ase.io

    from so3krates_hk import InputError
    from so3krates_hk.md.run import MDRunConfig, run_md

    atoms = ase.Atoms("H2O", positions=[[0, 0, 0], [0.05, 0, 0], [0, 1, 0]])
    path = str(tmp_path / "bad.xyz")
    ase.io.write(path, atoms)
    with pytest.raises(InputError, match=r"atoms 0 and 1 are 0.05 Å apart"):
        run_md(MDRunConfig(structure=path, output=str(tmp_path / "o")), progress=False)
    atoms = ase.Atoms("H2O", positions=[[0, 0, 0], [0.9, 0, 0], [0, 1, 0]], cell=[10, 10, 10], pbc=True)
    ase.io.write(path, atoms)
    with pytest.raises(InputError, match="too small"):
        run_md(MDRunConfig(structure=path, output=str(tmp_path / "o")), progress=False)
    with pytest.raises(InputError, match="integer number of elementary charges"):
        run_md(MDRunConfig(structure="dha", output=str(tmp_path / "o"), total_charge=0.5), progress=False)
