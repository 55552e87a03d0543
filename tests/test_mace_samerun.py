"""The MACE same-run benchmark (benchmarks/mace_samerun.py, benchmarks/torch_models.py): the parity gate of the
compiled modes and the aggregation of the records (pure Python, no torch); one MACE worker where mace-torch is
installed."""

from __future__ import annotations

import math
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import mace_samerun  # noqa: E402
from benchmarks.torch_models import MACE_MODES, PARITY_ENERGY_REL, PARITY_FORCE_ABS, parity_check  # noqa: E402


def test_parity_passes_within_both_tolerances():
    p = parity_check(-10.0, -10.0 + 0.5e-5, 0.5e-4)
    assert p["ok"] and "reason" not in p
    assert p["energy_tol"] == pytest.approx(PARITY_ENERGY_REL * 10.0)
    assert p["force_tol"] == PARITY_FORCE_ABS


def test_parity_fails_on_energy_or_forces_and_says_which():
    e = parity_check(-10.0, -10.0 + 2e-5, 0.0)  # 2e-5 > 1e-6 × 10
    assert not e["ok"] and "dE" in e["reason"] and "dF" not in e["reason"]
    f = parity_check(-10.0, -10.0, 2e-4)
    assert not f["ok"] and "dF" in f["reason"] and "dE" not in f["reason"]
    both = parity_check(1.0, 2.0, 1.0)
    assert "dE" in both["reason"] and "dF" in both["reason"]


def test_parity_fails_on_non_finite_and_is_relative_to_the_eager_energy():
    assert not parity_check(1.0, math.nan, 0.0)["ok"]
    assert not parity_check(1.0, 1.0, math.inf)["ok"]
    assert "not finite" in parity_check(1.0, 1.0, math.nan)["reason"]
    # |E| = 1e-3: the energy bound is 1e-9 eV
    assert parity_check(-1e-3, -1e-3 + 0.5e-9, 0.0)["ok"]
    assert not parity_check(-1e-3, -1e-3 + 2e-9, 0.0)["ok"]


def _rec(system, side, kind, label, times, status="ok", rnd=0, **kw):
    r = dict(system=system, side=side, kind=kind, label=label, round=rnd, status=status, load_start=(1.5, 1.0, 1.0),
             num_atoms=100)  # fmt: skip
    if status == "ok":
        r.update(times_s=times, median_s=sorted(times)[len(times) // 2], cpu_times_s=times, first_call_s=1.0)
    r.update(kw)
    return r


def _records():
    return [
        _rec("cg-chain-100", "ours A", "jax", "jit", [0.002, 0.003, 0.004]),
        _rec("cg-chain-100", "MACE eager", "torch", "eager", [0.030, 0.031, 0.032]),
        _rec("cg-chain-100", "MACE torchscript", "torch", "torchscript", [0.036, 0.037, 0.038]),
        _rec("cg-chain-100", "MACE torch.compile", "torch", "torch.compile", None, status="failed",
             error="process killed by signal 6: double free or corruption (!prev)"),
        _rec("cg-chain-100", "MACE torch.compile-scalar", "torch", "torch.compile-scalar", [0.020, 0.026],
             parity_vs_eager=dict(energy_abs_diff=1e-10, max_force_diff=1e-9, ok=True)),
        # a second round: pooled with the first
        _rec("cg-chain-100", "ours A", "jax", "jit", [0.003, 0.0035], rnd=1),
        _rec("cg-chain-100", "MACE torch.compile-scalar", "torch", "torch.compile-scalar", [0.024], rnd=1),
    ]  # fmt: skip


def test_summary_pools_rounds_and_compares_ours_with_the_fastest_mace_mode():
    rows = {r["side"]: r for r in mace_samerun.summarise(_records())}
    ours = rows["ours A"]
    assert ours["calls"] == 5 and ours["median_ms"] == pytest.approx(3.0)
    assert ours["min_ms"] == pytest.approx(2.0) and ours["max_ms"] == pytest.approx(4.0)
    fastest = rows["MACE torch.compile-scalar"]  # 24 ms median, faster than eager (31) and TorchScript (37)
    assert fastest["calls"] == 3 and fastest["median_ms"] == pytest.approx(24.0)
    assert ours["fastest_torch"] == "torch.compile-scalar"
    assert ours["x_fastest_torch"] == pytest.approx(24.0 / 3.0)
    assert ours["x_fastest_torch_range"] == pytest.approx([20.0 / 4.0, 26.0 / 2.0])
    assert ours["x_eager"] == pytest.approx(31.0 / 3.0)
    assert rows["MACE eager"]["x_fastest_torch_mode"] == pytest.approx(31.0 / 24.0)
    failed = rows["MACE torch.compile"]
    assert failed["ok"] == 0 and "signal 6" in failed["error"]
    assert "x_fastest_torch_mode" not in failed


def test_a_failed_mode_never_counts_as_the_fastest():
    recs = [r for r in _records() if r["label"] != "torch.compile-scalar"]
    recs.append(_rec("cg-chain-100", "MACE torch.compile-scalar", "torch", "torch.compile-scalar", None,
                     status="failed", error="parity against eager failed: abs dE 1 eV > ..."))  # fmt: skip
    ours = next(r for r in mace_samerun.summarise(recs) if r["side"] == "ours A")
    assert ours["fastest_torch"] == "eager" and ours["x_fastest_torch"] == pytest.approx(31.0 / 3.0)


def test_report_labels_every_row_and_shows_failures():
    rows = mace_samerun.summarise(_records())
    meta = dict(date="d", rounds=2, repeats=3, torch_repeats=3, torch_warmup=5, modes={m: MACE_MODES[m] for m in
                MACE_MODES}, command="c")  # fmt: skip
    text = mace_samerun.report(meta, rows)
    lines = [ln for ln in text.splitlines() if ln.startswith("| cg-chain-100")]
    assert len(lines) == 5
    assert "compiled (jax.jit, XLA)" in lines[0] and "8.00 (5.00–13.00) vs torch.compile-scalar" in lines[0]
    assert "| eager |" in lines[1] and "compiled (torchscript)" in lines[2]
    assert "failed: process killed by signal 6" in lines[3]


def test_ours_is_matched_by_width():
    assert mace_samerun.ours_model("cg-box-1000") == "so3krates-cg"
    assert mace_samerun.ours_model("dha") == "so3krates"


def test_unknown_mode_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        mace_samerun.main(["--modes", "eager,tensorrt", "--out", "/nonexistent/never-written"])
    assert e.value.code == 2 and "tensorrt" in capsys.readouterr().err


def test_mace_torchscript_worker_reproduces_eager():
    """One worker on cg-chain-100 (a few seconds): needs torch and mace-torch, which the project's own environments
    do not hold (they live in the benchmark's MACE venv, see benchmarks/README.md)."""
    pytest.importorskip("torch", reason="torch is not installed here (the MACE baseline has its own venv)")
    pytest.importorskip("mace", reason="mace-torch is not installed here (the MACE baseline has its own venv)")
    from benchmarks.torch_models import mace_mode_worker

    r = mace_mode_worker("cg-chain-100", "torchscript", repeats=2, warmup=1)
    assert r["parity_vs_eager"]["ok"] and r["parity_after_timing"]["ok"]
    assert len(r["times_s"]) == 2 and r["finite"] and r["num_edges"] > 0
