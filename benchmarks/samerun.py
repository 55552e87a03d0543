"""SO3LR energy+forces, ours in several JAX environments and so3krates-torch, timed in one run, interleaved.

    python -m benchmarks.samerun --jax-python /venvs/ct/bin/python --jax-python /venvs/cur/bin/python \\
        --torch-python /venvs/torch/bin/python --systems dha,bb,water-1536 --rounds 2 --repeats 10

Each *side* is one worker process per system and round: ours through ``jit(value_and_grad(E))`` of the pretrained
SO3LR (``benchmarks.jax_models``, model ``so3lr``: 4.5 Å network + ZBL, 12 Å Coulomb and dispersion), compiled as
the ASE calculator and the MD driver compile it (``so3krates_hk.cpu_tuning.serial_loops``: on JAX 0.4.x, structures
of up to 512 atoms keep their element-wise loops on the calling thread), or
so3krates-torch's pretrained SO3LR (``benchmarks/so3krates_torch_worker.py``), or, with ``--original-python``, the
original SO3LR from an environment that holds it (``benchmarks/so3lr_original_worker.py``: its own jax-md entry
point, its JAX's default XLA settings, the same list skins and capacity as ours; ours then gets a "× original"
column from the same run, in the MD table too). Neighbour lists are built before the
timer starts on both sides; float32 everywhere. The rounds alternate the sides (A B C, A B C, …) so that a change in
the machine's load hits every side alike; each row gives the median, min and max over every timed call of every
round. With ``--jax-thunk`` a jaxlib 0.4.32–0.4.x worker compiles the program twice, with XLA:CPU's classic runtime
(what ``so3krates_hk`` asks for) and with the thunk runtime (that jaxlib's default), and times the two interleaved in
one process.

With ``--md-steps N`` every side also runs N steps of NVT Langevin MD on each system (300 K, 0.5 fs), neighbour-list
updates and re-allocation inside the timed loop: ours and the original through jax-md's ``nvt_langevin`` in jitted
loops of ``MD_LOOP_STEPS`` steps, so3krates-torch through its ASE calculator and ASE's Langevin.

Every side runs with the same malloc settings (``so3krates_hk.cpu_tuning``); ``--plain`` adds a pass without them.
Before any timing counts, the driver checks parity: every side's energy and forces against the first JAX side's
(so3krates-torch's energy carries per-element ``energy_shifts`` that SO3LR does not add: the difference per atom is
reported, and the forces must agree).

A worker (``--worker``) prints nothing; it writes its result as JSON.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.hostinfo import cpu_name

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MD_LOOP_STEPS = 10  # MD steps per jitted loop, every side


# ------------------------------------------------------------------------------------------------------- worker
def jax_worker(system_name: str, out: str, repeats: int, model: str = "so3lr", alt_runtime: bool = False) -> None:
    import jax

    from benchmarks import jax_models
    from benchmarks.systems import build_system

    s = build_system(system_name)
    b = jax_models.build(model, s, "float32")
    t = time.perf_counter()
    low = jax.jit(jax.value_and_grad(b.energy, argnums=1)).lower(b.params, b.position, **b.neighbors)
    lower_s = time.perf_counter() - t
    import jaxlib

    from so3krates_hk._cpu_runtime import wants_classic_runtime

    # jaxlib 0.4.32-0.4.x: the thunk runtime (that jaxlib's default) too, compiled in this process and timed
    # interleaved with the classic one, so the two share every moment of the machine's load
    variants = {"main": None}
    if alt_runtime and wants_classic_runtime(jaxlib.__version__):
        variants["thunk"] = {"xla_cpu_use_thunk_runtime": True}
    from so3krates_hk.cpu_tuning import serial_loops

    runs = {}
    for key, opts in variants.items():
        t, tc = time.perf_counter(), time.process_time()
        with serial_loops(s.num_atoms):  # as the calculator and the MD driver compile (small structures only)
            c = low.compile(compiler_options=opts) if opts else low.compile()
        compile_s, compile_cpu_s = time.perf_counter() - t, time.process_time() - tc
        e, g = c(b.params, b.position, **b.neighbors)
        jax.block_until_ready(g)
        jax.block_until_ready(c(b.params, b.position, **b.neighbors))
        runs[key] = dict(c=c, compile_s=compile_s, compile_cpu_s=compile_cpu_s, energy=float(e),
                         forces=(-np.asarray(g, np.float64)).tolist(), times_s=[], cpu_times_s=[])  # fmt: skip
    for _ in range(repeats):
        for r in runs.values():
            t, tc = time.perf_counter(), time.process_time()
            jax.block_until_ready(r["c"](b.params, b.position, **b.neighbors))
            r["times_s"].append(time.perf_counter() - t)
            r["cpu_times_s"].append(time.process_time() - tc)
    for r in runs.values():
        c = r.pop("c")
        r.update(median_s=statistics.median(r["times_s"]), min_s=min(r["times_s"]), max_s=max(r["times_s"]))
    ca = c.cost_analysis()
    ca = (ca[0] if isinstance(ca, (list, tuple)) else ca) or {}
    main = runs["main"]
    res = dict(
        main, side=f"ours (JAX {jax.__version__})", lower_s=lower_s, flops=ca.get("flops"),
        bytes_accessed=ca.get("bytes accessed"), transcendentals=ca.get("transcendentals"), num_atoms=s.num_atoms,
        versions=dict(jax=jax.__version__, jaxlib=jaxlib.__version__), xla_flags=os.environ.get("XLA_FLAGS"),
        max_edges=b.settings.get("max_edges"), sr_capacity=b.settings.get("sr_capacity"),
        lr_capacity=b.settings.get("lr_capacity"),
    )  # fmt: skip
    if "thunk" in runs:
        res["alt"] = dict(runs["thunk"], compiler_options=variants["thunk"])
    with open(out, "w") as fh:
        json.dump(res, fh)


def jax_md_worker(system_name: str, out: str, steps: int, loop_steps: int = MD_LOOP_STEPS,
                  model: str = "so3lr") -> None:  # fmt: skip
    """NVT Langevin MD (300 K, 0.5 fs): every list updated every step inside jitted loops of ``loop_steps`` steps; on
    a list overflow the lists are re-allocated and the loop recompiled (all of it inside the wall time)."""
    import jax
    import jax.numpy as jnp

    from benchmarks import jax_models
    from benchmarks.systems import build_system
    from so3krates_hk._compat import jax_md

    s = build_system(system_name)
    m = jax_models.build(model, s, "float32")
    params = m.params
    kT = 300.0 * 8.617333262e-5
    dt = 0.5 / jax_models.TIME_UNIT_FS
    init, apply = jax_md.simulate.nvt_langevin(lambda R, **nb: m.energy(params, R, **nb), m.shift, dt, kT, gamma=0.1)

    from benchmarks.worker import md_loop

    loop = md_loop(apply, loop_steps)

    t0 = time.perf_counter()
    nbrs = dict(m.neighbors)
    state = jax.block_until_ready(init(jax.random.PRNGKey(0), m.position, mass=m.masses, **nbrs))  # eager, op by op
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = jax.jit(loop).lower(state, nbrs).compile()
    compile_s = time.perf_counter() - t0  # the MD loop's program: trace, lower, compile
    jax.block_until_ready(compiled(state, nbrs))  # warm
    done, reallocations, t = 0, 0, time.perf_counter()
    while done < steps:
        new_state, new_nbrs, overflow = compiled(state, nbrs)
        if bool(overflow):  # re-allocate from the last good positions and redo the loop
            nbrs = {k: m.neighbor_fns[k].allocate(state.position) for k in nbrs}
            compiled = jax.jit(loop).lower(state, nbrs).compile()
            reallocations += 1
            continue
        state, nbrs, done = new_state, new_nbrs, done + loop_steps
    jax.block_until_ready(state.position)
    wall = time.perf_counter() - t
    res = dict(side=f"ours (JAX {jax.__version__})", md_steps=done, md_wall_s=wall, md_step_s=wall / done,
               atom_steps_per_s=s.num_atoms * done / wall, reallocations=reallocations, compile_s=compile_s,
               init_s=init_s, finite=bool(jnp.all(jnp.isfinite(state.position))), num_atoms=s.num_atoms,
               loop_steps=loop_steps,
               versions=dict(jax=jax.__version__), xla_flags=os.environ.get("XLA_FLAGS"),
               integrator="jax_md nvt_langevin 300 K, 0.5 fs, gamma 0.1, lists updated every step")  # fmt: skip
    with open(out, "w") as fh:
        json.dump(res, fh)


# ------------------------------------------------------------------------------------------------------- driver
def _env(tuned: bool, thunk: bool = False) -> dict:
    from so3krates_hk.cpu_tuning import MALLOC_ENV

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV and k != "XLA_FLAGS"}
    if tuned:
        env.update(MALLOC_ENV)
    if thunk:
        env["XLA_FLAGS"] = "--xla_cpu_use_thunk_runtime=true"
    # the JAX workers import ``so3krates_hk`` from this checkout; it adds the classic-runtime flag where it applies
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def _module_version(python: str, module: str) -> str:
    out = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=("jax", "jax-md"), help=argparse.SUPPRESS)
    p.add_argument("--md-steps", type=int, default=0,
                   help="also run NVT MD of this many steps per side and system (atom-steps/s; 0: none)")
    p.add_argument("--system", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--model", default="so3lr", help=argparse.SUPPRESS)  # the JAX worker's model (benchmarks.jax_models)
    p.add_argument("--jax-python", action="append", default=[],
                   help="python of a JAX environment with this project installed (repeat for several; "
                        "default: this one)")
    p.add_argument("--torch-python", action="append", default=[],
                   help="python of a venv with torch and so3krates-torch (repeat for several torch versions, each "
                        "named by its version; omit: no torch side)")
    p.add_argument("--original-python", action="append", default=[],
                   help="python of an environment with the original so3lr package (JAX 0.5.3): adds it as a side")
    p.add_argument("--torch-compiled", action="store_true", help="also time so3krates-torch under torch.compile")
    p.add_argument("--jax-thunk", action="store_true",
                   help="jaxlib 0.4.32-0.4.x workers also compile with XLA:CPU's thunk runtime (that jaxlib's "
                        "default) and time both executables interleaved in one process")
    p.add_argument("--systems", default="dha,bb,water-1536", help="comma-separated benchmark systems")
    p.add_argument("--rounds", type=int, default=2, help="rounds; each runs every side once per system")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per worker")
    p.add_argument("--torch-repeats", type=int, help="timed calls per so3krates-torch worker (default: --repeats)")
    p.add_argument("--md-only", action="store_true", help="only the MD task (with --md-steps)")
    p.add_argument("--plain", action="store_true", help="add a pass without the malloc settings")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    p.add_argument("--out", help="output folder (default benchmarks/results/samerun-cpu-<date>)")
    p.add_argument("--report-only", metavar="RESULTS_JSON", help="rewrite results.md from a results.json and exit")
    p.add_argument("--from-log", metavar="LOG_TXT",
                   help="summarise an interrupted run from its log.txt (no parity: the log holds no forces) and exit")
    args = p.parse_args(argv)
    if args.from_log:
        recs = [json.loads(line) for line in open(args.from_log)]
        from so3krates_hk.cpu_tuning import MALLOC_ENV

        meta = dict(date=recs[0].get("date", "see log.txt"), host=platform.node(), cpu=cpu_name(),
                    cores=os.cpu_count(), rounds="≤ " + str(1 + max(r["round"] for r in recs)),
                    repeats=len(next(r for r in recs if r["status"] == "ok").get("times_s", [])),
                    malloc_env=MALLOC_ENV, command=f"--from-log {args.from_log} (interrupted run)")  # fmt: skip
        ef = [r for r in recs if r.get("task", "ef") == "ef"]
        summary = summarise(ef)
        base = os.path.join(os.path.dirname(args.from_log), "results-from-log")
        with open(base + ".json", "w") as fh:
            json.dump(dict(meta=meta, summary=summary), fh, indent=1)
        text = report(meta, summary)
        with open(base + ".md", "w") as fh:
            fh.write(text)
        print(text)
        return 0
    if args.report_only:
        d = json.load(open(args.report_only))
        text = report(d["meta"], d["summary"], d.get("md", []))
        with open(os.path.splitext(args.report_only)[0] + ".md", "w") as fh:
            fh.write(text)
        print(text)
        return 0

    if args.worker == "jax":
        jax_worker(args.system, args.worker_out, args.repeats, model=args.model, alt_runtime=args.jax_thunk)
        return 0
    if args.worker == "jax-md":
        jax_md_worker(args.system, args.worker_out, args.md_steps)
        return 0

    from benchmarks.jax_models import SKIN, Unavailable, atom_masses, long_range_skin
    from benchmarks.systems import build_system

    started = _dt.datetime.now()
    out_dir = args.out or os.path.join(HERE, "results", f"samerun-cpu-{started.date().isoformat()}")
    os.makedirs(out_dir, exist_ok=True)
    jax_pythons = args.jax_python or [sys.executable]
    sides = []  # (name, argv builder, env kwargs, kind)
    for py in jax_pythons:
        v = _module_version(py, "jax")
        from so3krates_hk._cpu_runtime import wants_classic_runtime

        classic = wants_classic_runtime(_module_version(py, "jaxlib"))
        sides.append((f"ours, JAX {v}" + (" (classic XLA:CPU runtime)" if classic else ""), py, "jax", False))
    for py in args.original_python:
        sides.append((f"original SO3LR (JAX {_module_version(py, 'jax')})", py, "original", False))
    for py in args.torch_python:
        tv = f"torch {_module_version(py, 'torch')}, " if len(args.torch_python) > 1 else ""
        sides.append((f"so3krates-torch ({tv}eager)", py, "torch-eager", False))
        if args.torch_compiled:
            sides.append((f"so3krates-torch ({tv}torch.compile)", py, "torch-compiled", False))
    passes = [True] + ([False] if args.plain else [])
    records = []
    tmp = tempfile.mkdtemp(prefix="samerun-")
    log = open(os.path.join(out_dir, "log.txt"), "a")
    for system_name in args.systems.split(","):
        s = build_system(system_name)
        npz = os.path.join(tmp, f"{system_name}.npz")
        np.savez(npz, positions=s.positions, species=s.species, box=-1.0 if s.box is None else float(s.box),
                 masses=np.asarray(atom_masses(s, np.float32)))  # fmt: skip
        try:  # the original side's long-range skin; −1: the box cannot hold its 12 Å (its worker then refuses)
            lr_skin = long_range_skin(s)
        except Unavailable:
            lr_skin = -1.0
        jobs = [] if args.md_only else [(tuned, r, "ef") for tuned in passes for r in range(args.rounds)]
        if args.md_steps:
            jobs.append((True, 0, "md"))
        for tuned, r, task in jobs:
            for name, py, kind, thunk in sides:
                out = os.path.join(tmp, f"{system_name}-{len(records)}.json")
                if task == "md" and thunk:
                    continue
                if kind == "jax":
                    cmd = [py, "-m", "benchmarks.samerun", "--worker", "jax" if task == "ef" else "jax-md",
                           "--system", system_name, "--worker-out", out, "--repeats", str(args.repeats),
                           "--md-steps", str(args.md_steps)] + (["--jax-thunk"] if args.jax_thunk else [])  # fmt: skip
                elif kind == "original":  # our list skins for its lists
                    cmd = [py, os.path.join(HERE, "so3lr_original_worker.py"), npz, out, "--repeats",
                           str(args.repeats), "--skin-sr", str(SKIN["default"]), "--skin-lr", str(lr_skin)]  # fmt: skip
                    if task == "md":  # the same integrator, settings and loop length as ours
                        cmd += ["--md-steps", str(args.md_steps), "--md-loop-steps", str(MD_LOOP_STEPS)]
                else:
                    cmd = [py, os.path.join(HERE, "so3krates_torch_worker.py"), npz, out, "--repeats",
                           str(args.torch_repeats or args.repeats), "--mode", kind.split("-")[1]]  # fmt: skip
                    if task == "md":
                        cmd += ["--md-steps", str(args.md_steps)]
                load0, alt_rec = os.getloadavg(), None
                t = time.perf_counter()
                proc = subprocess.run(cmd, cwd=ROOT, env=_env(tuned, thunk), capture_output=True, text=True,
                                      timeout=args.timeout)  # fmt: skip
                wall = time.perf_counter() - t
                rec = dict(system=system_name, side=name, round=r, malloc_tuned=tuned, task=task, worker_wall_s=wall,
                           load_start=load0, load_end=os.getloadavg(), python=py)  # fmt: skip
                if proc.returncode != 0 or not os.path.exists(out):
                    rec.update(status="failed", returncode=proc.returncode,
                               error=(proc.stderr or proc.stdout)[-3000:] or f"exit status {proc.returncode}")
                    if os.path.exists(out + ".failed.json"):  # a compiled torch side: every attempt and its parity
                        rec.update(json.load(open(out + ".failed.json")))
                else:
                    rec.update(json.load(open(out)), status="ok", side=name)
                    alt = rec.pop("alt", None)
                    if alt is not None:  # the same process's thunk-runtime executable: a row of its own
                        alt_rec = dict(rec, **alt, side=f"{name.split(' (')[0]} (thunk runtime, that jaxlib's default; "
                                       "same process, interleaved)",
                                       xla_flags="compiler option xla_cpu_use_thunk_runtime=True")  # fmt: skip
                log.write(json.dumps({k: v for k, v in rec.items() if k != "forces"}) + "\n")
                log.flush()
                if rec["status"] != "ok":
                    what = "FAILED"
                elif task == "md":
                    what = f"MD {rec['atom_steps_per_s']:9.0f} atom-steps/s"
                else:
                    what = f"median {1e3 * rec['median_s']:9.1f} ms"
                print(f"{system_name:11s} {task} {'tuned' if tuned else 'plain'} r{r} {name:55s} {what}", flush=True)
                records.append(rec)
                if alt_rec is not None:
                    records.append(alt_rec)
                    log.write(json.dumps({k: v for k, v in alt_rec.items() if k != "forces"}) + "\n")
                    log.flush()
                    print(f"{system_name:11s} {task} {'tuned' if tuned else 'plain'} r{r} {alt_rec['side']:55s} "
                          f"median {1e3 * alt_rec['median_s']:9.1f} ms", flush=True)
    summary = summarise([r for r in records if r["task"] == "ef"])
    md_rows = [{k: v for k, v in r.items() if k not in ("forces",)} for r in records if r["task"] == "md"]
    meta = dict(date=started.isoformat(timespec="seconds"), host=platform.node(), python=platform.python_version(),
                cpu=cpu_name(), cores=os.cpu_count(), command=" ".join(sys.argv), rounds=args.rounds,
                repeats=args.repeats)  # fmt: skip
    from so3krates_hk.cpu_tuning import MALLOC_ENV

    meta["malloc_env"] = MALLOC_ENV
    name = "results" if not args.md_only else "results-md"
    with open(os.path.join(out_dir, f"{name}.json"), "w") as fh:
        json.dump(dict(meta=meta, summary=summary, md=md_rows, records=[{k: v for k, v in r.items() if k != "forces"}
                                                            for r in records]), fh, indent=1)  # fmt: skip
    with open(os.path.join(out_dir, f"{name}.md"), "w") as fh:
        fh.write(report(meta, summary, md_rows))
    print(report(meta, summary, md_rows))
    return 0


def _mode(side: str, rs: list) -> str:
    """eager or compiled, and how: ours is always jit-compiled by XLA."""
    if side.startswith(("ours", "original")):
        return "compiled (jax.jit, XLA)"
    if "eager" in side:
        return "eager"
    backends = {r.get("compile_backend") for r in rs if r.get("status") == "ok"}
    return "compiled (" + ", ".join(sorted(b for b in backends if b)) + ")" if backends - {None} else "compiled"


def summarise(records: list) -> list:
    """One row per (system, malloc, side): pooled timings, parity against the first JAX side, ratios."""
    rows = []
    keys = []
    for r in records:
        k = (r["system"], r["malloc_tuned"], r["side"])
        if k not in keys:
            keys.append(k)
    for system, tuned, side in keys:
        rs = [r for r in records if (r["system"], r["malloc_tuned"], r["side"]) == (system, tuned, side)]
        ok = [r for r in rs if r["status"] == "ok"]
        row = dict(system=system, malloc_tuned=tuned, side=side, runs=len(rs), ok=len(ok), mode=_mode(side, rs))
        if ok:
            times = [t for r in ok for t in r["times_s"]]
            cpu = [t for r in ok for t in r.get("cpu_times_s", [])]
            if cpu:
                row["cpu_median_ms"] = 1e3 * statistics.median(cpu)
            row.update(median_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times), max_ms=1e3 * max(times),
                       round_medians_ms=[1e3 * r["median_s"] for r in ok], calls=len(times),
                       versions=ok[0].get("versions"), xla_flags=ok[0].get("xla_flags"),
                       compile_s=[r.get("compile_s") for r in ok],
                       compile_cpu_s=[r.get("compile_cpu_s") for r in ok], flops=ok[0].get("flops"),
                       num_atoms=ok[0].get("num_atoms"), energy=ok[0]["energy"],
                       load=[r["load_start"][0] for r in ok])  # fmt: skip
            row["_forces"] = np.asarray(ok[0]["forces"]) if "forces" in ok[0] else None
            if ok[0].get("parity_vs_eager") is not None:
                row["parity_vs_eager"] = [r.get("parity_vs_eager") for r in ok]
                row["compile_errors"] = ok[0].get("compile_errors")
        else:
            row["error"] = rs[0].get("error", "")[-500:]
            if rs[0].get("compile_errors") is not None:
                row["compile_errors"] = rs[0]["compile_errors"]
                row["parity_vs_eager"] = [r.get("parity_vs_eager") for r in rs]
        rows.append(row)
    for system, tuned in dict.fromkeys((r["system"], r["malloc_tuned"]) for r in rows):
        group = [r for r in rows if r["system"] == system and r["malloc_tuned"] == tuned and r["ok"]]
        ref = next((r for r in group if r["side"].startswith("ours")), None)
        torch_rows = [r for r in group if r["side"].startswith("so3krates-torch")]
        fastest_torch = min(torch_rows, key=lambda r: r["median_ms"]) if torch_rows else None
        original = next((r for r in group if r["side"].startswith("original")), None)
        for r in group:
            if ref is not None and ref["_forces"] is not None and r["_forces"] is not None:
                r["parity_vs"] = ref["side"]
                r["energy_diff_per_atom_ev"] = (r["energy"] - ref["energy"]) / r["num_atoms"]
                r["max_force_diff_ev_a"] = float(np.abs(r["_forces"] - ref["_forces"]).max())
            if fastest_torch is not None and r["side"].startswith("ours"):
                r["speedup_vs_fastest_torch"] = fastest_torch["median_ms"] / r["median_ms"]
                r["fastest_torch"] = fastest_torch["side"]
                r["speedup_vs_fastest_torch_min"] = fastest_torch["min_ms"] / r["min_ms"]
            if original is not None and r["side"].startswith("ours"):
                r["speedup_vs_original"] = original["median_ms"] / r["median_ms"]
                r["speedup_vs_original_min"] = original["min_ms"] / r["min_ms"]
    for r in rows:
        r.pop("_forces", None)
    return rows


# float32 peak of one core of this machine's CPU (AVX-512, 2 FMA units, 2.6 GHz): 2.6e9 × 2 × 16 × 2
PEAK_PER_CORE_GFLOPS = 166.4
PEAK_NOTE = ("166 GFLOP/s per core, 333 for both (2.6 GHz × 2 AVX-512 FMA units × 16 lanes × 2; half that if the "
             "virtual CPU has one FMA unit)")

# the original SO3LR (JAX 0.5.3), measured in another run (AMD EPYC, 2 cores): a yardstick only, never divided
ORIGINAL_FROM_ANOTHER_RUN_MS = {"dha": (24.7, 25.6), "bb": (59.0, 90.2), "water-1536": (882.0, 1272.0)}


def _fmt(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


def report(meta: dict, rows: list, md_rows: list = ()) -> str:
    L = [f"# SO3LR energy+forces, same run — {meta['date']}", ""]
    L.append(f"{meta['cpu']}, {meta['cores']} cores, host {meta['host']}; float32; neighbour lists built outside "
             f"the timed region on every side; {meta['rounds']} round(s) of {meta['repeats']} timed calls per side, "
             "sides interleaved; median (min–max) over all calls. The machine is shared with other jobs: the load "
             "average at each worker's start is listed; compare ratios within a row group.")  # fmt: skip
    L.append("")
    L.append("Malloc settings ('tuned'): " + ", ".join(f"`{k}={v}`" for k, v in meta["malloc_env"].items()) + ".")
    L.append("")
    with_original = any(r["side"].startswith("original") for r in list(rows) + list(md_rows))
    L.append("| system | malloc | side | mode | ms per call: median (min–max) | calls | load | × fastest so3krates-torch "
             "(median; min) | " + ("× original SO3LR (median; min) | " if with_original else "")
             + "process CPU ms per call (median) | ΔE/atom vs ours (eV) | max ΔF (eV/Å) | compile s (wall / CPU) | "
             "XLA_FLAGS |")  # fmt: skip
    L.append("|---|---|---|---|---:|---:|---|---:|" + ("---:|" if with_original else "") + "---:|---:|---:|---:|---|")
    for r in rows:
        if not r["ok"]:
            L.append(f"| {r['system']} | {'tuned' if r['malloc_tuned'] else 'plain'} | {r['side']} | {r.get('mode', '')} | failed |"
                     + " |" * (9 if with_original else 8))
            continue
        sp = (f"{r['speedup_vs_fastest_torch']:.2f}; {r['speedup_vs_fastest_torch_min']:.2f}"
              if "speedup_vs_fastest_torch" in r else "")  # fmt: skip
        comp = ", ".join(f"{c:.1f} / {cc:.1f}" for c, cc in zip(r["compile_s"], r["compile_cpu_s"]) if c is not None)
        if with_original:
            sp += " | " + (f"{r['speedup_vs_original']:.2f}; {r['speedup_vs_original_min']:.2f}"
                           if "speedup_vs_original" in r else "")  # fmt: skip
        L.append(
            f"| {r['system']} | {'tuned' if r['malloc_tuned'] else 'plain'} | {r['side']} | {r.get('mode', '')} | "
            f"{r['median_ms']:.1f} ({r['min_ms']:.1f}–{r['max_ms']:.1f}) | {r['calls']} | "
            f"{', '.join(f'{x:.1f}' for x in r['load'])} | {sp} | {r.get('cpu_median_ms', float('nan')):.1f} | "
            f"{_fmt(r.get('energy_diff_per_atom_ev'), '+.4f')} | "
            f"{_fmt(r.get('max_force_diff_ev_a'), '.1e')} | {comp} | {r.get('xla_flags') or ''} |"
        )  # fmt: skip
    comp_rows = [r for r in rows if r.get("compile_errors") is not None or r.get("parity_vs_eager")]
    if comp_rows:
        L += ["", "## so3krates-torch compiled: parity against eager, before any timing", "",
              "Each compiled worker first runs the eager model on the same batch; a compiled model counts only if it "
              "reproduces eager's energy (|ΔE| ≤ 1e-6 |E|) and forces (max |ΔF| ≤ 1e-4 eV/Å). torch.compile "
              "(inductor) is tried first, then torch.jit.script, then torch.jit.trace.", "",
              "| system | side | attempt | abs ΔE vs eager (eV) | max abs ΔF vs eager (eV/Å) | first call s | result |",
              "|---|---|---|---:|---:|---:|---|"]  # fmt: skip
        for r in comp_rows:
            par = next((p for p in (r.get("parity_vs_eager") or []) if p), {}) or {}
            errs = r.get("compile_errors") or {}
            for b in dict.fromkeys(list(par) + list(errs)):
                q = par.get(b, {})
                res = "parity ok" if q.get("ok") else " ".join(errs.get(b, "").replace("|dE|", "abs dE").replace("|dF|", "abs dF").replace("|", "/").split())[:600]
                L.append(f"| {r['system']} | {r['side']} | {b} | {_fmt(q.get('energy_abs_diff'), '.3g')} | "
                         f"{_fmt(q.get('max_force_diff_ev_a'), '.3g')} | {_fmt(q.get('compile_s'), '.1f')} | {res} |")
    flop_rows = [r for r in rows if r.get("ok") and r.get("flops") and r["side"].startswith("ours")]
    if flop_rows:
        L += ["", "## FLOPs and achieved rate (ours)", "",
              f"XLA's cost analysis of the compiled e+f program; this CPU's float32 peak is {PEAK_NOTE}. 'per CPU "
              "second' divides by the process CPU time of a call (all its threads), which the other jobs on the "
              "machine inflate less than the wall time.", "",
              "| system | side | GFLOP per call | GFLOP/s (wall, median) | GFLOP/s per CPU second (median) | "
              "% of one core's peak per CPU second |", "|---|---|---:|---:|---:|---:|"]  # fmt: skip
        for r in flop_rows:
            g = r["flops"] / 1e9
            cpu = r.get("cpu_median_ms")
            per_cpu = g / (cpu / 1e3) if cpu else float("nan")
            L.append(f"| {r['system']} | {r['side']} | {g:.2f} | {g / (r['median_ms'] / 1e3):.1f} | {per_cpu:.1f} | "
                     f"{100 * per_cpu / PEAK_PER_CORE_GFLOPS:.0f} % |")  # fmt: skip
    if md_rows:
        original_rate = {r["system"]: r["atom_steps_per_s"] for r in md_rows
                         if r["status"] == "ok" and r["side"].startswith("original")}  # fmt: skip
        ratio_col = bool(original_rate)
        L += ["", "## MD, same run", "",
              "| system | side | atom-steps/s | " + ("× original SO3LR | " if ratio_col else "") + "ms per step | steps "
              "| re-allocations | MD program compile s (init s) | what |",
              "|---|---|---:|" + ("---:|" if ratio_col else "") + "---:|---:|---:|---:|---|"]  # fmt: skip
        for r in md_rows:
            if r["status"] != "ok":
                L.append(f"| {r['system']} | {r['side']} | failed |" + " |" * (6 if ratio_col else 5))
                continue
            comp = "" if r.get("compile_s") is None else f"{r['compile_s']:.1f}"
            if r.get("init_s") is not None:
                comp += f" ({r['init_s']:.1f})"
            ratio = ""
            if ratio_col:
                base = original_rate.get(r["system"])
                ratio = (f"{r['atom_steps_per_s'] / base:.2f} | " if base and r["side"].startswith("ours") else " | ")
            L.append(f"| {r['system']} | {r['side']} | {r['atom_steps_per_s']:.0f} | {ratio}{1e3 * r['md_step_s']:.1f} | "
                     f"{r['md_steps']} | {r.get('reallocations', '')} | {comp} | {r.get('integrator', '')} |")  # fmt: skip
    if not with_original:
        L.append("")
        L.append("Yardstick from another run (not a same-run ratio): the original SO3LR (JAX 0.5.3) took, tuned/plain, "
                 + "; ".join(f"{k} {a} / {b} ms" for k, (a, b) in ORIGINAL_FROM_ANOTHER_RUN_MS.items())
                 + " on a 2-core AMD EPYC under another load.")  # fmt: skip
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
