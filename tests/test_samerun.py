"""The same-run harness's side for the original SO3LR (``--original-python``), against a stand-in package.

The original ``so3lr`` is not on PyPI, so these tests give the worker and the driver ``tests/data/fake_so3lr``: the
same jax-md entry point around a toy pair energy that the first test recomputes by brute force in NumPy.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE = os.path.join(ROOT, "tests", "data", "fake_so3lr")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (FAKE, ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def _toy_energy_and_forces(R: np.ndarray) -> tuple[float, np.ndarray]:
    """The stand-in's energy, E = Σ_{i≠j, d<4.5} exp(−d) + Σ_{i<j, d<12} 0.01/d, and F = −∇E, over all pairs."""
    dr = R[:, None, :] - R[None, :, :]  # r_i − r_j
    d = np.linalg.norm(dr, axis=-1)
    off = ~np.eye(len(R), dtype=bool)
    sr, lr = off & (d < 4.5), off & (d < 12.0)
    dd = np.where(off, d, 1.0)
    energy = np.sum(np.where(sr, np.exp(-dd), 0.0)) + 0.5 * np.sum(np.where(lr, 0.01 / dd, 0.0))
    # ∂E/∂r_i = Σ_j m g'(d_ij) (r_i − r_j)/d_ij, m = 2 for the short range (both directions), 1 for the long range
    dg = np.where(sr, 2 * -np.exp(-dd), 0.0) + np.where(lr, -0.01 / dd**2, 0.0)
    forces = -np.sum((dg / dd)[:, :, None] * dr, axis=1)
    return float(energy), forces


def test_original_worker_forces_are_minus_the_gradient_of_its_energy(tmp_path):
    from benchmarks.systems import build_system

    s = build_system("dha")
    npz, out = tmp_path / "dha.npz", tmp_path / "out.json"
    np.savez(npz, positions=s.positions, species=s.species, box=-1.0)
    worker = os.path.join(ROOT, "benchmarks", "so3lr_original_worker.py")
    proc = subprocess.run([sys.executable, worker, str(npz), str(out), "--repeats", "2"], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    energy, forces = _toy_energy_and_forces(np.asarray(s.positions, np.float64))
    assert res["energy"] == pytest.approx(energy, rel=1e-5)
    np.testing.assert_allclose(np.asarray(res["forces"]), forces, atol=1e-4 * np.abs(forces).max())
    assert len(res["times_s"]) == 2 and res["median_s"] > 0
    assert not res["xla_flags"]  # the original runs with its JAX's own XLA settings


def test_samerun_times_the_original_beside_ours_and_reports_the_ratio(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "benchmarks.samerun", "--jax-python", sys.executable, "--original-python",
           sys.executable, "--systems", "dha", "--rounds", "1", "--repeats", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())["summary"]
    ours = next(r for r in rows if r["side"].startswith("ours"))
    original = next(r for r in rows if r["side"].startswith("original SO3LR"))
    assert ours["ok"] == original["ok"] == 1
    assert ours["speedup_vs_original"] == pytest.approx(original["median_ms"] / ours["median_ms"])
    assert ours["speedup_vs_original_min"] == pytest.approx(original["min_ms"] / ours["min_ms"])
    assert "speedup_vs_original" not in original
    assert not original["xla_flags"]  # none of this package's XLA:CPU flags reach the original's process
    # the toy energy is not SO3LR's: the parity columns report the difference rather than hide it
    assert abs(original["energy_diff_per_atom_ev"]) > 1.0
    report = (out / "results.md").read_text()
    assert "× original SO3LR (median; min)" in report
    assert "Yardstick from another run" not in report


def test_benchmark_model_so3lr_original_goes_through_the_original_entry_point(monkeypatch):
    """``benchmarks.run``'s ``so3lr-original`` model, in process, against the same stand-in."""
    import jax

    from benchmarks import jax_models
    from benchmarks.systems import build_system

    monkeypatch.syspath_prepend(FAKE)
    monkeypatch.delitem(sys.modules, "so3lr", raising=False)
    try:
        m = jax_models.build("so3lr-original", build_system("dha"), "float32")
        energy, grad = jax.value_and_grad(m.energy, argnums=1)(m.params, m.position, **m.neighbors)
    finally:  # later tests in this process must not find the stand-in
        sys.modules.pop("so3lr", None)
    ref_energy, ref_forces = _toy_energy_and_forces(np.asarray(m.position, np.float64))
    assert float(energy) == pytest.approx(ref_energy, rel=1e-5)
    np.testing.assert_allclose(-np.asarray(grad), ref_forces, atol=1e-4 * np.abs(ref_forces).max())
    assert set(m.neighbors) == {"neighbor", "neighbor_lr"}


def _velocity_verlet(R: np.ndarray, V: np.ndarray, masses: np.ndarray, dt: float, steps: int) -> np.ndarray:
    """Velocity Verlet of the stand-in's energy in float64 (eV, Å, amu; dt in jax-md's unit of time)."""
    m = masses[:, None]
    F = _toy_energy_and_forces(R)[1]
    for _ in range(steps):
        V = V + 0.5 * dt * F / m
        R = R + dt * V
        F = _toy_energy_and_forces(R)[1]
        V = V + 0.5 * dt * F / m
    return R


def test_original_worker_md_integrates_the_same_trajectory_as_velocity_verlet(tmp_path):
    """With zero friction jax-md's Langevin step is velocity Verlet: the worker's trajectory, started from the
    positions and velocities it records, must match an independent float64 integration of the stand-in's forces."""
    from benchmarks.jax_models import atom_masses
    from benchmarks.systems import build_system

    s = build_system("dha")
    masses = np.asarray(atom_masses(s, np.float32), np.float64)
    npz, out = tmp_path / "dha.npz", tmp_path / "md.json"
    np.savez(npz, positions=s.positions, species=s.species, box=-1.0, masses=masses)
    worker = os.path.join(ROOT, "benchmarks", "so3lr_original_worker.py")
    cmd = [sys.executable, worker, str(npz), str(out), "--md-steps", "20", "--md-loop-steps", "10", "--gamma", "0",
           "--md-record"]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["md_steps"] == 20 and res["finite"] and res["atom_steps_per_s"] > 0 and res["reallocations"] == 0
    start, end = np.asarray(res["start_positions"]), np.asarray(res["end_positions"])
    np.testing.assert_allclose(start, s.positions, atol=1e-5)
    expected = _velocity_verlet(start, np.asarray(res["start_velocities"]), masses, res["dt"], res["md_steps"])
    assert np.abs(expected - start).max() > 0.05  # the atoms moved: a wrong force, mass or step would show
    np.testing.assert_allclose(end, expected, atol=1e-3)


def test_samerun_runs_md_of_the_original_beside_ours(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "benchmarks.samerun", "--jax-python", sys.executable, "--original-python",
           sys.executable, "--systems", "dha", "--md-only", "--md-steps", "10", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "results-md.json").read_text())["md"]
    ours = next(r for r in rows if r["side"].startswith("ours"))
    original = next(r for r in rows if r["side"].startswith("original SO3LR"))
    assert ours["status"] == original["status"] == "ok"
    assert ours["md_steps"] == original["md_steps"] == 10
    assert ours["integrator"] == original["integrator"]  # the same thermostat, temperature, step and list updates
    assert not original["xla_flags"]
    report = (out / "results-md.md").read_text()
    line = next(ln for ln in report.splitlines() if ln.startswith("| dha | ours"))
    ratio = float(line.split("|")[4])
    assert ratio == pytest.approx(ours["atom_steps_per_s"] / original["atom_steps_per_s"], abs=0.006)  # printed to 0.01
    assert "Yardstick from another run" not in report
