"""The benchmark (benchmarks): systems, plan, report, and the ``--quick`` mode end to end.

No timing assertions: only that every configuration reports every field, and that the outputs exist.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from benchmarks import plan as planning
from benchmarks import report
from benchmarks.systems import CG_BOND, build_system, system_size
from benchmarks.worker import RESULT_FIELDS, empty_result

# Every "ok" energy+forces record of a JAX model must have these measured (not None).
EF_MEASURED = ("compile_s", "lower_s", "compile_only_s", "first_call_s", "ef_median_s", "ef_times_s", "repeats",
               "nbr_allocate_s", "nbr_update_median_s", "atom_steps_per_s", "md_step_median_s", "md_steps",
               "md_loops", "md_compile_s", "md_overflow", "peak_memory_bytes", "memory_kind", "energy",
               "max_abs_force", "finite", "num_edges", "settings", "device", "backend", "xla_memory_bytes",
               "xla_temp_bytes")  # fmt: skip
TORCH_MEASURED = ("compile_s", "first_call_s", "ef_median_s", "repeats", "nbr_update_median_s", "atom_steps_per_s",
                  "peak_memory_bytes", "energy", "settings")  # fmt: skip
TRAIN_MEASURED = ("train_structures_per_s", "train_batch_median_s", "train_batch_size", "train_first_epoch_s",
                  "train_batches_timed", "peak_memory_bytes", "settings")  # fmt: skip
MEMORY_MEASURED = ("compile_s", "xla_memory_bytes", "xla_temp_bytes", "num_edges", "settings", "device", "backend")
SETTINGS_KEYS = ("dtype", "sr_cutoff", "sr_capacity")


@pytest.mark.parametrize("name", ["cg-chain-100", "cg-box-1000"])
def test_cg_systems_have_protein_density_and_bonds(name):
    s = build_system(name)
    assert s.num_atoms == system_size(name)
    assert s.species.min() >= 0 and s.species.max() < 20
    assert np.all(np.isfinite(s.positions))
    if s.box is not None:
        assert 100 <= s.box**3 / s.num_atoms <= 150  # Å^3 per bead
        assert np.all((s.positions >= 0) & (s.positions < s.box))
    else:
        bonds = np.linalg.norm(np.diff(s.positions, axis=0), axis=1)
        np.testing.assert_allclose(bonds, CG_BOND, rtol=1e-9)


def test_water_and_molecules():
    assert build_system("water-192").box == pytest.approx(12.4, abs=0.1)
    assert build_system("water-1536").num_atoms == 1536
    assert build_system("dha").box is None and build_system("dha").num_atoms == 56


def test_plans_are_consistent():
    quick = planning.quick_plan()
    assert {c["model"] for c in quick} >= {"so3lr", "so3krates", "so3krates-cg"}
    assert all(c["dtype"] == "float32" for c in quick)
    full = planning.full_plan()
    assert {c["model"] for c in full} == set(planning.ALL_MODELS)
    assert any(c["dtype"] == "float64" for c in full)
    for c in quick + full:
        assert c["num_atoms"] == system_size(c["system"])
        if c["model"] in ("so3lr",) and c["system"].startswith("water"):
            assert c["num_atoms"] > 192  # the 12.4 Å box cannot hold the 12 Å long-range cutoff
    gpu = planning.full_plan(gpu=True)
    assert max(c["num_atoms"] for c in gpu) > max(c["num_atoms"] for c in full)


def test_gpu_plan_puts_the_gpu_targets_first():
    """The short GPU plan: the GPU targets come first (a run cut short by --budget still answers
    them), each target with Allegro at equal settings right after it, and the water series climbs to sizes beyond
    the full GPU plan's, so the largest box that fits is found."""
    plan = planning.gpu_plan()
    head = [(c["model"], c["system"]) for c in plan[:4]]
    assert head[:3] == [("so3lr", "water-12288"), ("so3krates-cg", "cg-box-100000"), ("allegro-torch", "cg-box-100000")]
    assert ("so3lr", "water-1536") in head
    for c in plan:
        assert c["num_atoms"] == system_size(c["system"]) and c["timeout_s"] <= 120
        assert set(c) == set(planning.config("so3lr", "dha"))  # every field the worker reads
    water = [c["num_atoms"] for c in plan if c["model"] == "so3lr" and c["system"].startswith("water")
             and c["dtype"] == "float32"]  # fmt: skip
    assert max(water) > max(c["num_atoms"] for c in planning.full_plan(gpu=True) if c["model"] == "so3lr")
    assert {c["model"] for c in plan} >= {"so3lr", "so3krates", "so3krates-cg", "allegro-torch", "mace-torch"}


def test_device_kit_lists_one_version_of_each_package():
    """requirements/device.txt (the wheels scripts/device_bench.sh installs on the GPU machine): exact pins, one
    per package, and it covers what so3krates_hk imports that the device image lacks."""
    root = os.path.join(os.path.dirname(__file__), os.pardir)
    lines = [ln.strip() for ln in open(os.path.join(root, "requirements", "device.txt")) if ln.strip()
             and not ln.lstrip().startswith("#")]  # fmt: skip
    names = [ln.split("==")[0].lower().replace("_", "-") for ln in lines]
    assert all("==" in ln for ln in lines) and len(names) == len(set(names))
    assert {"dm-haiku", "e3nn-jax", "jax-md", "chemtrain", "nequip", "nequip-allegro", "mace-torch"} <= set(names)


@pytest.mark.parametrize("script", ["device_wheels.sh", "device_bench.sh"])
def test_device_scripts_parse(script):
    import subprocess

    path = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", script)
    assert subprocess.run(["bash", "-n", path], capture_output=True).returncode == 0


def test_device_bench_measures_eval_against_the_ase_loop():
    path = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "device_bench.sh")
    text = open(path).read()
    assert "-m benchmarks.eval_bench" in text and '--out "$OUT/eval"' in text


def _fake_results():
    out = []
    for model, system, n, t in (("so3lr", "dha", 56, 0.03), ("so3krates-cg", "cg-box-1000", 1000, 0.1),
                                ("so3krates-cg", "cg-box-10000", 10000, 1.0), ("mace-torch", "dha", 56, 0.5)):  # fmt: skip
        r = empty_result(dict(model=model, system=system, num_atoms=n))
        r.update(status="ok", ef_median_s=t, compile_s=5.0, atom_steps_per_s=n / t, peak_memory_bytes=2**30,
                 md_step_median_s=t, settings=dict(dtype="float32", sr_cutoff=4.5), num_atoms=n,
                 xla_memory_bytes=int(1e5 * n))  # fmt: skip
        out.append(r)
    skipped = empty_result(dict(model="so3lr-original", system="dha", num_atoms=56))
    skipped.update(status="skipped", reason="not importable")
    return out + [skipped]


def test_memory_exponent_is_the_log_log_slope():
    rows = []
    for model, power in (("linear", 1.0), ("quadratic", 2.0)):
        for n in (100, 1000, 10000):
            r = empty_result(dict(model=model, system=f"cg-box-{n}", num_atoms=n))
            r.update(status="ok", xla_memory_bytes=3e4 * n**power, peak_memory_bytes=8e8 + 1e4 * n)
            rows.append(r)
    exps = {e["model"]: e for e in report.memory_exponents(rows)}
    assert exps["linear"]["exponent"] == pytest.approx(1.0) and exps["quadratic"]["exponent"] == pytest.approx(2.0)
    assert exps["linear"]["bytes_per_atom"] == pytest.approx(3e4) and exps["linear"]["sizes"] == 3
    peak = {e["model"]: e["exponent"] for e in report.memory_exponents(rows, "peak_memory_bytes")}
    assert 0 < peak["linear"] < 1  # the fixed runtime footprint flattens the peak at small N


def test_report_writes_json_markdown_and_plots(tmp_path):
    meta = dict(device="cpu", date="2026-01-01T00:00:00", mode="test", versions={"jax": "x"}, host={})
    paths = report.write_all(str(tmp_path), meta, _fake_results())
    doc = json.loads(open(paths["json"]).read())
    assert len(doc["results"]) == 5 and doc["reported_original"]
    md = open(paths["markdown"]).read()
    assert "Reported for the original SO3LR — not measured in this run" in md
    assert "25.4" in md and "1213" in md  # the original's reported figures, labelled
    assert "so3lr-original" in md and "skipped" in md
    for png in ("time_vs_n.png", "memory_vs_n.png"):
        assert os.path.getsize(tmp_path / png) > 1000


def _check_record(r):
    missing = [k for k in RESULT_FIELDS if k not in r]
    assert not missing, f"{r['model']} on {r['system']}: missing {missing}"
    if r["status"] != "ok":
        assert r["status"] == "skipped" and r["reason"], r
        return
    if r["task"] == "train":
        need = TRAIN_MEASURED
    elif r["task"] == "memory":
        need = MEMORY_MEASURED
        unexplained = [k for k in RESULT_FIELDS if r.get(k) is None and k not in r["na"]]
        assert not unexplained, f"{r['model']} on {r['system']} (memory): None without a reason: {unexplained}"
        assert r["xla_temp_bytes"] <= r["xla_memory_bytes"]
    elif r["model"].endswith("-torch"):
        need = TORCH_MEASURED
    else:
        need = EF_MEASURED
    empty = [k for k in need if r.get(k) is None]
    assert not empty, f"{r['model']} on {r['system']} ({r['task']}): no value for {empty}"
    for k in SETTINGS_KEYS:
        assert k in r["settings"], (r["model"], k)
    if r["task"] == "ef":
        assert r["finite"] is True
        assert math.isclose(r["atom_steps_per_s"], r["num_atoms"] / r["ef_median_s"], rel_tol=1e-9)


@pytest.mark.slow
def test_quick_benchmark_reports_every_field_for_every_model(tmp_path):
    from benchmarks.run import main

    out = tmp_path / "quick"
    rc = main(["--quick", "--out", str(out)])
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    meta, results = doc["meta"], doc["results"]
    for k in ("date", "device", "versions", "host", "mode"):
        assert meta.get(k), k
    assert meta["versions"].get("jax")
    for r in results:
        _check_record(r)
    ran = {(r["model"], r["task"]) for r in results if r["status"] == "ok"}
    assert {("so3lr", "ef"), ("so3krates", "ef"), ("so3krates-cg", "ef"), ("so3krates-cg", "memory")} <= ran
    try:
        import chemtrain  # noqa: F401

        assert ("so3krates-cg", "train") in ran
    except ImportError:
        pass
    md = (out / "results.md").read_text()
    assert "not measured in this run" in md
    assert "Memory of the energy+forces program" in md
    assert (out / "time_vs_n.png").exists() and (out / "memory_vs_n.png").exists()


def test_flop_count_of_a_lowered_program_multiplies_out_calls_and_batch_dims():
    import jax
    import jax.numpy as jnp

    from benchmarks.flops import dot_flops

    @jax.jit
    def inner(a, b):  # a private function of the module, called twice
        return a @ b

    def f(a, b, c):
        batched = jnp.einsum("pi,pj->pij", c, c)  # a batch dimension: 7 × 3 × 3 outputs, nothing contracted
        return inner(a, b).sum() + inner(2 * a, b).sum() + batched.sum()

    a, b, c = jnp.ones((5, 4)), jnp.ones((4, 6)), jnp.ones((7, 3))
    dots, ctrl = dot_flops(jax.jit(f).lower(a, b, c).as_text())
    assert dict(dots) == {5: 2 * (2 * 5 * 6 * 4), 7: 2 * 7 * 3 * 3} and not any(ctrl.values())


def test_cpu_name_carries_family_and_model_of_the_first_cpu():
    from benchmarks.hostinfo import cpu_name

    two_cpus = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: Other\n")  # fmt: skip
    assert cpu_name(two_cpus) == "AMD EPYC (family 25, model 17)"
    assert cpu_name("model name\t: Some CPU\n") == "Some CPU"


def test_alternate_calls_the_variants_in_turn_and_times_each_round():
    from benchmarks.alternate import alternate, ratio, summary

    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = alternate(calls, rounds=3, warmup=2, block=lambda x: x)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3  # warm-up per variant, then one call each per round
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for v in times.values() for t in v)
    s = summary([0.003, 0.001, 0.002])
    assert (s["median_ms"], s["min_ms"], s["max_ms"]) == pytest.approx((2.0, 1.0, 3.0))
    assert ratio({"old": [2.0, 4.0, 6.0], "new": [1.0, 2.0, 3.0]}, "old", "new") == pytest.approx(2.0)


def test_compile_variants_and_compare_report_outputs_differences_and_times():
    import jax.numpy as jnp

    from benchmarks.alternate import compare_variants, compile_variants, max_abs_difference

    x = jnp.arange(4.0)
    scale = {"value": 1.0}

    def variant(factor):
        def build():
            scale["value"] = factor  # the "patch": read when the function is traced, right after this
            return (lambda v: v * scale["value"]), (x,)

        return build

    compiled = compile_variants({"one": variant(1.0), "two": variant(2.0)})
    # each variant was traced under its own patch, not the last one set
    assert [float(c.outputs[3]) for c in compiled.values()] == [3.0, 6.0]
    assert all(c.lower_s >= 0 and c.compile_s >= 0 for c in compiled.values())
    lines = []
    rows = compare_variants(compiled, rounds=3, out=lines.append)
    assert rows["one"]["max_abs_diff"] == 0.0 and rows["two"]["max_abs_diff"] == 3.0
    assert rows["one"]["speedup_vs_first"] == 1.0
    assert len(lines) == 2 and lines[1].startswith("two")
    assert max_abs_difference((x, {"a": x}), (x + 1, {"a": x - 2})) == 2.0
