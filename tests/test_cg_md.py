"""The CG MD throughput benchmark (benchmarks/cg_md.py): its pure helpers, and (slow) our worker for a few steps."""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import cg_md  # noqa: E402


def _rec(system, side, mode, n, loop_times, loop_steps=10, status="ok", **kw):
    r = dict(system=system, side=side, mode=mode, status=status, num_atoms=n, loop_steps=loop_steps,
             loop_times_s=loop_times, steps=loop_steps * len(loop_times), wall_s=sum(loop_times),
             load_start=(1.5, 1.0, 1.0), finite=True, reallocations=0)  # fmt: skip
    r.update(kw)
    return r


def test_initial_velocities_have_no_drift_and_the_temperature():
    n, T = 20000, 300.0
    v = cg_md.initial_velocities(n, T, seed=3)
    assert v.shape == (n, 3)
    np.testing.assert_allclose(v.mean(axis=0), 0.0, atol=1e-12)
    # equipartition: ½ m <v²> = 3/2 kT per bead (3N − 3 degrees of freedom after the drift is removed)
    T_kin = cg_md.CG_MASS * np.sum(v**2) / ((3 * n - 3) * cg_md.KB_EV)
    assert abs(T_kin - T) / T < 0.03
    # the same seed gives the same velocities (both sides start alike)
    np.testing.assert_array_equal(v, cg_md.initial_velocities(n, T, seed=3))
    assert not np.array_equal(v, cg_md.initial_velocities(n, T, seed=4))


def test_summarise_pools_loops_and_gives_the_same_run_ratio():
    recs = [
        _rec("cg-box-1000", "ours", "jit (XLA)", 1000, [0.10, 0.20]),  # 1e5, 5e4 bead-steps/s
        _rec("cg-box-1000", "Allegro", "eager", 1000, [1.0, 2.0, 4.0]),  # 1e4, 5e3, 2.5e3
        _rec("cg-box-1000", "ours", "jit (XLA)", 1000, [0.25]),  # 4e4 (second round)
        _rec("cg-box-1000", "Allegro", "compiled", 1000, [], status="failed", error="boom",
             compile_errors={"torch.compile": "InductorError: x"}),  # fmt: skip
    ]
    rows = cg_md.summarise(recs)
    assert [(r["side"], r["mode"]) for r in rows] == [("ours", "jit (XLA)"), ("Allegro", "eager"),
                                                      ("Allegro", "compiled")]  # fmt: skip
    ours, eager, comp = rows
    assert ours["loops"] == 3 and ours["runs"] == 2
    assert ours["bead_steps_per_s"] == pytest.approx(5e4)  # median of 1e5, 5e4, 4e4
    assert ours["bead_steps_per_s_min"] == pytest.approx(4e4) and ours["bead_steps_per_s_max"] == pytest.approx(1e5)
    assert ours["ms_per_step"] == pytest.approx(20.0)  # median of 10, 20, 25 ms
    assert eager["bead_steps_per_s"] == pytest.approx(5e3)
    assert eager["ratio_ours_over_this"] == pytest.approx(10.0)
    assert eager["ratio_range"] == pytest.approx([4e4 / 1e4, 1e5 / 2.5e3])
    assert "ratio_ours_over_this" not in ours
    assert comp["ok"] == 0 and comp["compile_errors"] == {"torch.compile": "InductorError: x"}
    # the wall-time figure of each worker: N × steps / wall
    assert ours["wall_bead_steps_per_s"] == [pytest.approx(1000 * 20 / 0.3), pytest.approx(1000 * 10 / 0.25)]


def test_summarise_without_ours_gives_no_ratio():
    rows = cg_md.summarise([_rec("cg-chain-100", "Allegro", "eager", 100, [1.0])])
    assert rows[0]["bead_steps_per_s"] == pytest.approx(1000.0)
    assert "ratio_ours_over_this" not in rows[0]


def test_report_lists_rows_settings_and_failures():
    ours_settings = dict(r_cutoff=10.0, num_layers=2, num_features=32, num_heads=4, degrees=[1, 2],
                         avg_num_neighbors=26.2, edges_per_bead=26.2, sr_skin=1.0, sr_capacity=4022)  # fmt: skip
    allegro_settings = dict(r_max=10.0, num_layers=2, l_max=2, num_scalar_features=32, num_tensor_features=2,
                            allegro_mlp_hidden_layers_width=32, avg_num_neighbors=26.2, edges_per_bead=26.2)
    recs = [
        _rec("cg-chain-100", "ours", "jit (XLA)", 100, [0.02, 0.03], settings=ours_settings),
        _rec("cg-chain-100", "Allegro", "eager", 100, [0.2, 0.3], settings=allegro_settings),
        _rec("cg-chain-100", "Allegro", "compiled", 100, [], status="failed", error="a | b"),
    ]
    meta = dict(date="2026-01-01", cpu="cpu", cores=2, dt_fs=2.0, temperature_k=300.0, rounds=1, loops=2,
                loop_steps=10, warmup_loops=1, uptime_start="load average: 1.00", uptime_end="load average: 2.00",
                versions={"jax": "0.4.37"}, malloc_env={}, command="python -m benchmarks.cg_md")  # fmt: skip
    matched = cg_md._matched(recs)
    assert [m["side"] for m in matched] == ["ours", "Allegro"]
    assert matched[0]["l_max"] == 2 and matched[1]["cutoff"] == 10.0
    text = cg_md.report(meta, cg_md.summarise(recs), matched)
    assert "| cg-chain-100 | ours | jit (XLA) | 41667 (33333–50000) | 2.50 | 2 |  | 1.50 |" in text
    assert "| cg-chain-100 | Allegro | eager | 4167 (3333–5000) | 25.00 | 2 | 10.00 (6.67–15.00) | 1.50 |" in text
    assert "failed: a / b" in text  # a pipe in an error does not break the table
    assert "load average: 1.00" in text and "jax: 0.4.37" in text
    # every line of the main table has the header's number of columns
    all_lines = text.splitlines()
    start = next(k for k, ln in enumerate(all_lines) if ln.startswith("| system | side | mode | bead-steps/s"))
    end = all_lines.index("", start)
    assert end - start == 5 and all(ln.count("|") == 9 for ln in all_lines[start:end])


def test_report_shows_compile_parity_and_the_nve_checks():
    recs = [
        _rec("cg-box-1000", "ours", "jit (XLA)", 1000, [0.1], energy_start=-3.0, energy_end=-2.0, ekin_start=38.0,
             ekin_end=37.0 + 1e-3),  # fmt: skip
        _rec("cg-box-1000", "Allegro", "compiled", 1000, [1.0], compile_backend="torch.compile(model)",
             parity_vs_eager={"torch.compile(model)": dict(energy_abs_diff=4e-7, max_force_diff_ev_a=5e-7, ok=True,
                                                           compile_s=29.5)},
             compile_errors={"torch.compile(model, dynamic=True)": "InductorError: KeyError | x"},
             nbr_s_per_step=0.007, model_s_per_step=0.9),  # fmt: skip
    ]
    rows = cg_md.summarise(recs)
    assert rows[0]["energy_drift_per_bead"] == [pytest.approx(1e-6)]  # (−2 + 37.001) − (−3 + 38) over 1000 beads
    meta = dict(date="d", dt_fs=2.0, temperature_k=300.0, rounds=1, loops=1, loop_steps=10, warmup_loops=1)
    text = cg_md.report(meta, rows)
    assert "| cg-box-1000 | torch.compile(model) | 4e-07 | 5e-07 | 29.5 | parity ok, timed |" in text
    assert "| cg-box-1000 | torch.compile(model, dynamic=True) |  |  |  | InductorError: KeyError / x |" in text
    assert "| cg-box-1000 | ours | jit (XLA) | 38.0000 | +1.0e-06 |  |  |" in text
    assert "| cg-box-1000 | Allegro | compiled |  |  | 7.00 | 900.00 |" in text


def test_only_cg_systems_are_accepted():
    with pytest.raises(SystemExit) as err:
        cg_md.main(["--systems", "water-192"])
    assert err.value.code == 2


@pytest.mark.slow
def test_our_worker_integrates_nve_and_conserves_energy(tmp_path):
    out = tmp_path / "w.json"
    a = argparse.Namespace(system="cg-chain-100", loops=2, loop_steps=5, warmup_loops=1, dt_fs=2.0,
                           temperature=300.0, seed=0, worker_out=str(out))  # fmt: skip
    res = cg_md.jax_worker(a)
    json.dumps(res)  # serialisable as the driver writes it
    assert res["finite"] and res["steps"] == 10 and len(res["loop_times_s"]) == 2
    v = cg_md.initial_velocities(100, 300.0, 0)
    assert res["ekin_start"] == pytest.approx(0.5 * cg_md.CG_MASS * np.sum(v**2), rel=1e-5)
    e0 = res["energy_start"] + res["ekin_start"]
    e1 = res["energy_end"] + res["ekin_end"]
    assert abs(e1 - e0) < 1e-3 * max(1.0, abs(e0))  # velocity Verlet at 2 fs: no drift over 20 steps
    assert res["settings"]["r_cutoff"] == 10.0 and res["settings"]["edges_per_bead"] > 10
