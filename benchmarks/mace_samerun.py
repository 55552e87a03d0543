"""MACE eager and compiled against ours, energy+forces per call, timed in one run, interleaved.

    python -m benchmarks.mace_samerun --jax-python /venvs/ct/bin/python --jax-python /venvs/cur/bin/python \\
        --torch-python /venvs/mace/bin/python --systems cg-chain-100,cg-box-1000 --rounds 2 --repeats 10

Sides, each one worker process per system and round, the rounds alternating the sides (A B C …, A B C …):

* ours, once per ``--jax-python``: ``jit(value_and_grad(E))`` of SO3krates at the width MACE is matched to
  (``so3krates-cg`` on the CG systems, ``so3krates`` on the atomistic ones; random init), through
  ``benchmarks.samerun``'s JAX worker: the jax-md lists allocated and the program compiled before the timer;
* MACE (``mace-torch``, ``benchmarks.torch_models.mace_matching``; random init, every parameter frozen as
  ``MACECalculator`` does), once per mode of ``--modes`` (``benchmarks.torch_models.MACE_MODES``): ``eager``,
  ``torchscript`` (``e3nn.util.jit.compile``, MACE's LAMMPS/deploy path), ``torch.compile`` (``mace.tools.compile``,
  what ``MACECalculator(compile_mode=...)`` does) and its variants with other inductor CPU kernels. The matscipy
  neighbour list and the input dict are built before the timer. A compiled mode runs the eager model first on the
  same input and is timed only if it reproduces eager (|ΔE| ≤ 1e-6 |E|, max |ΔF| ≤ 1e-4 eV/Å); otherwise, or if its
  process dies, it is reported ``failed`` with the reason, and not run again in later rounds.

Every worker runs with the same environment: the malloc settings of ``so3krates_hk.cpu_tuning`` and
``OMP_WAIT_POLICY`` as ``--omp-wait-policy`` sets it (default unset; ``PASSIVE`` stops torch's OpenMP threads spinning
on a shared machine, but slows compiled torch code many times over), float32, the default
thread count of each framework (both use every core; recorded). Each row pools every timed call of every round:
median (min–max); ours is compared with the fastest MACE mode that passed (median over median, and the range from
the slowest and fastest calls). ``uptime`` at each worker's start is recorded.

A worker (``--worker``) prints nothing but errors; it writes its result as JSON.
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

from benchmarks.hostinfo import cpu_name, uptime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_SYSTEMS = "cg-chain-100,cg-box-1000,dha"
DEFAULT_MODES = "eager,torchscript,torch.compile,torch.compile-avx2,torch.compile-scalar"


def ours_model(system: str) -> str:
    """The SO3krates MACE is matched to: the CG width on CG systems, the default width on atomistic ones."""
    return "so3krates-cg" if system.startswith("cg-") else "so3krates"


# ---------------------------------------------------------------------------------------------- aggregation
def summarise(records: list) -> list:
    """One row per (system, side): every timed call of every round pooled (median, min, max, ms), and per system the
    same-run ratios: for each of ours, the fastest MACE mode's median over ours' median (``x_fastest_torch``; > 1:
    ours is faster) with its range (their fastest call over our slowest, their slowest over our fastest); for each
    MACE mode, its median over the fastest MACE mode's."""
    keys = list(dict.fromkeys((r["system"], r["side"]) for r in records))
    rows = []
    for system, side in keys:
        rs = [r for r in records if (r["system"], r["side"]) == (system, side)]
        ok = [r for r in rs if r.get("status") == "ok"]
        row = dict(system=system, side=side, kind=rs[0]["kind"], label=rs[0]["label"], runs=len(rs), ok=len(ok))
        if not ok:
            row["error"] = " ".join(str(rs[0].get("error") or "").split())[-600:]
            if rs[0].get("parity_vs_eager"):
                row["parity_vs_eager"] = rs[0]["parity_vs_eager"]
            rows.append(row)
            continue
        times = [t for r in ok for t in r["times_s"]]
        cpu = [t for r in ok for t in r.get("cpu_times_s", [])]
        row.update(
            num_atoms=ok[0].get("num_atoms"), calls=len(times), median_ms=1e3 * statistics.median(times),
            min_ms=1e3 * min(times), max_ms=1e3 * max(times), round_medians_ms=[1e3 * r["median_s"] for r in ok],
            cpu_median_ms=1e3 * statistics.median(cpu) if cpu else None,
            first_call_s=[r.get("first_call_s", r.get("compile_s")) for r in ok],
            load=[round(r["load_start"][0], 2) for r in ok], versions=ok[0].get("versions"),
        )  # fmt: skip
        for k in ("parity_vs_eager", "parity_after_timing", "torch_threads", "num_edges", "sr_capacity"):
            if ok[0].get(k) is not None:
                row[k] = ok[0][k]
        rows.append(row)
    for system in dict.fromkeys(r["system"] for r in rows):
        good = [r for r in rows if r["system"] == system and r["ok"]]
        torch_rows = [r for r in good if r["kind"] == "torch"]
        if not torch_rows:
            continue
        fastest = min(torch_rows, key=lambda r: r["median_ms"])
        for r in good:
            if r["kind"] == "torch":
                r["x_fastest_torch_mode"] = r["median_ms"] / fastest["median_ms"]
                continue
            r["fastest_torch"] = fastest["label"]
            r["x_fastest_torch"] = fastest["median_ms"] / r["median_ms"]
            r["x_fastest_torch_range"] = [fastest["min_ms"] / r["max_ms"], fastest["max_ms"] / r["min_ms"]]
            eager = next((t for t in torch_rows if t["label"] == "eager"), None)
            if eager is not None:
                r["x_eager"] = eager["median_ms"] / r["median_ms"]
    return rows


def _f(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


def report(meta: dict, rows: list) -> str:
    L = [f"# MACE eager and compiled against ours, energy+forces, same run — {meta['date']}", ""]
    L.append(
        f"{meta.get('cpu', '?')}, {meta.get('cores', '?')} cores; float32; neighbour lists built outside the timed "
        f"region on every side; {meta['rounds']} round(s) per side, {meta['repeats']} timed calls per worker for "
        f"ours and {meta['torch_repeats']} for MACE (after {meta['torch_warmup']} untimed warm-up calls; ours after "
        "compiling and two calls), sides interleaved round by round; median (min–max) over all calls. The machine "
        "is shared: the load (1-minute average) at each worker's start is listed; compare ratios within a system."
    )  # fmt: skip
    if meta.get("note"):
        L += ["", f"Note: {meta['note']}."]
    L += ["", f"Load (`uptime`) at start: {meta.get('uptime_start', '?')}; at end: {meta.get('uptime_end', '?')}", ""]
    L.append("| system | side | mode | ms per call: median (min–max) | calls | load | × fastest MACE (median; range) "
             "| × MACE eager | first call s | parity vs eager: abs ΔE / max abs ΔF |")  # fmt: skip
    L.append("|---|---|---|---:|---:|---|---:|---:|---:|---|")
    for r in rows:
        if r["kind"] != "torch":
            mode = "compiled (jax.jit, XLA)"
        else:
            mode = "eager" if r["label"] == "eager" else f"compiled ({r['label']})"
        if not r["ok"]:
            err = r.get("error", "").replace("|", "/")[-300:]
            L.append(f"| {r['system']} | {r['side']} | {mode} | failed: {err} | | | | | | |")
            continue
        x = ""
        if "x_fastest_torch" in r:
            lo, hi = r["x_fastest_torch_range"]
            x = f"{r['x_fastest_torch']:.2f} ({lo:.2f}–{hi:.2f}) vs {r['fastest_torch']}"
        elif "x_fastest_torch_mode" in r:
            x = f"(this / fastest MACE: {r['x_fastest_torch_mode']:.2f})"
        par = r.get("parity_vs_eager")
        par = f"{par['energy_abs_diff']:.2g} eV / {par['max_force_diff']:.2g} eV/Å" if par else ""
        first = ", ".join(_f(v, ".2f") for v in r["first_call_s"])
        L.append(
            f"| {r['system']} | {r['side']} | {mode} | {r['median_ms']:.2f} ({r['min_ms']:.2f}–{r['max_ms']:.2f}) | "
            f"{r['calls']} | {', '.join(f'{v:.2f}' for v in r['load'])} | {x} | {_f(r.get('x_eager'), '.2f')} | "
            f"{first} | {par} |"
        )  # fmt: skip
    L += ["", "× fastest MACE: the fastest MACE mode's median over ours (> 1: ours is faster); the range divides their "
          "fastest call by our slowest and their slowest by our fastest. MACE modes:", ""]  # fmt: skip
    for k, v in meta.get("modes", {}).items():
        L.append(f"- `{k}`: {v}")
    if meta.get("versions"):
        L += ["", "Versions: " + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()) + "."]
    L += ["", f"Environment of every worker: {meta.get('env')}.", "", f"Command: `{meta.get('command')}`"]
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------------------------------- driver
def _env(omp_wait_policy: str = "") -> dict:
    from so3krates_hk.cpu_tuning import MALLOC_ENV

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV and k != "XLA_FLAGS"}
    env.update(MALLOC_ENV)
    if omp_wait_policy:
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    return env


def _ask(python: str, code: str) -> str:
    p = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def _worker(a) -> int:
    from benchmarks import torch_models

    system = None
    if a.system_npz:  # the atomistic structures come from so3krates_hk's data (JAX), built by the driver
        import numpy as np

        from benchmarks.systems import BenchSystem

        z = np.load(a.system_npz)
        box = float(z["box"])
        system = BenchSystem(name=str(z["name"]), family=str(z["family"]), positions=z["positions"],
                             species=z["species"], box=None if box < 0 else box, atomistic=bool(z["atomistic"]))
    try:
        res = torch_models.mace_mode_worker(a.system, a.mode, a.repeats, a.warmup, system=system)
    except torch_models.ModeFailed as err:
        with open(a.worker_out + ".failed.json", "w") as fh:
            json.dump(err.info, fh, indent=1)
        print(f"{a.mode}: {err}", file=sys.stderr)
        return 3
    with open(a.worker_out, "w") as fh:
        json.dump(res, fh)
    return 0


def main(argv=None) -> int:
    import numpy as np

    from benchmarks.torch_models import MACE_MODES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--system", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--system-npz", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=5, help="untimed MACE calls after the first (default 5)")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per worker (default 10)")
    p.add_argument("--torch-repeats", type=int, help="timed calls per MACE worker (default: --repeats)")
    p.add_argument("--jax-python", action="append", default=[],
                   help="python of a JAX environment with this project (repeat for several; default: this one)")
    p.add_argument("--torch-python", help="python of a venv with torch, mace-torch, matscipy, ase (omit: no MACE)")
    p.add_argument("--systems", default=DEFAULT_SYSTEMS, help=f"comma-separated systems (default {DEFAULT_SYSTEMS})")
    p.add_argument("--modes", default=DEFAULT_MODES, help=f"MACE modes (default {DEFAULT_MODES})")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--omp-wait-policy", default="",
                   help="OMP_WAIT_POLICY of every worker (default: unset; PASSIVE for a machine shared with other jobs)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker")
    p.add_argument("--out", help="output folder (default benchmarks/results/mace-compiled-cpu-<date>)")
    p.add_argument("--report-only", metavar="RESULTS_JSON", help="re-aggregate a results.json, rewrite results.md")
    a = p.parse_args(argv)
    if a.worker:
        return _worker(a)
    if a.report_only:
        d = json.load(open(a.report_only))
        d["summary"] = summarise(d["records"])
        with open(a.report_only, "w") as fh:
            json.dump(d, fh, indent=1)
        text = report(d["meta"], d["summary"])
        with open(os.path.splitext(a.report_only)[0] + ".md", "w") as fh:
            fh.write(text)
        print(text)
        return 0
    modes = a.modes.split(",")
    bad = [m for m in modes if m not in MACE_MODES]
    if bad:
        p.error(f"unknown MACE modes {bad}; choose from {sorted(MACE_MODES)}")
    if a.rounds < 1 or a.repeats < 1:
        p.error("--rounds and --repeats must be ≥ 1")
    torch_repeats = a.torch_repeats or a.repeats

    started = _dt.datetime.now(_dt.timezone.utc)
    out_dir = a.out or os.path.join(HERE, "results", f"mace-compiled-cpu-{started.date().isoformat()}")
    os.makedirs(out_dir, exist_ok=True)
    sides = []  # (side name, python, kind, label)
    for py in a.jax_python or [sys.executable]:
        sides.append((f"ours (JAX {_ask(py, 'import jax; print(jax.__version__)')})", py, "jax", "jit"))
    if a.torch_python:
        tv = _ask(a.torch_python, "import torch; print(torch.__version__)")
        for m in modes:
            sides.append((f"MACE {m} (torch {tv})", a.torch_python, "torch", m))
    env = _env(a.omp_wait_policy)
    tmp = tempfile.mkdtemp(prefix="mace-samerun-")
    log = open(os.path.join(out_dir, "log.txt"), "a")
    up0 = uptime()
    records, failed = [], set()
    from so3krates_hk.cpu_tuning import MALLOC_ENV

    meta = dict(date=started.isoformat(timespec="seconds"), host=platform.node(), python=platform.python_version(),
                cpu=cpu_name(), cores=os.cpu_count(), rounds=a.rounds, repeats=a.repeats, torch_repeats=torch_repeats,
                torch_warmup=a.warmup, modes={m: MACE_MODES[m] for m in modes}, uptime_start=up0,
                env={k: env[k] for k in (*MALLOC_ENV, "OMP_WAIT_POLICY") if k in env},
                command="python -m benchmarks.mace_samerun " + " ".join(sys.argv[1:] if argv is None else argv))

    def write():
        meta["uptime_end"] = uptime()
        versions = {}
        for r in records:
            if r.get("status") == "ok":
                versions.update({k: v for k, v in (r.get("versions") or {}).items() if v})
        meta["versions"] = versions
        summary = summarise(records)
        with open(os.path.join(out_dir, "results.json"), "w") as fh:
            json.dump(dict(meta=meta, summary=summary, records=records), fh, indent=1)
        text = report(meta, summary)
        with open(os.path.join(out_dir, "results.md"), "w") as fh:
            fh.write(text)
        return text

    from benchmarks.systems import build_system

    for system in a.systems.split(","):
        s = build_system(system)
        npz = os.path.join(tmp, f"{system}.npz")
        np.savez(npz, name=s.name, family=s.family, positions=s.positions, species=s.species,
                 box=-1.0 if s.box is None else float(s.box), atomistic=s.atomistic)  # fmt: skip
        for rnd in range(a.rounds):
            for side, py, kind, label in sides:
                if (system, side) in failed:
                    continue  # a mode that failed (or broke parity) once is recorded once
                out = os.path.join(tmp, f"{system}-{len(records)}.json")
                if kind == "jax":
                    cmd = [py, "-m", "benchmarks.samerun", "--worker", "jax", "--model", ours_model(system),
                           "--system", system, "--worker-out", out, "--repeats", str(a.repeats)]  # fmt: skip
                else:
                    cmd = [py, "-m", "benchmarks.mace_samerun", "--worker", "--mode", label, "--system", system,
                           "--system-npz", npz, "--worker-out", out, "--repeats", str(torch_repeats),
                           "--warmup", str(a.warmup)]  # fmt: skip
                load0, up = os.getloadavg(), uptime()
                t = time.perf_counter()
                try:
                    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=a.timeout)
                    rc, err = proc.returncode, (proc.stderr or proc.stdout)
                except subprocess.TimeoutExpired:
                    rc, err = -1, f"timed out after {a.timeout} s"
                rec = dict(system=system, side=side, kind=kind, label=label, round=rnd, python=py,
                           worker_wall_s=time.perf_counter() - t, load_start=load0, load_end=os.getloadavg(),
                           uptime_start=up)  # fmt: skip
                if rc != 0 or not os.path.exists(out):
                    lines = [ln for ln in err.splitlines() if ln.strip() and not any(
                        w in ln for w in ("Warning", "visitor(node)", "torch.load(", "cuequivariance"))]  # fmt: skip
                    rec.update(status="failed", returncode=rc, error="\n".join(lines[-12:])[-3000:]
                               or f"exit status {rc}")  # fmt: skip
                    if rc is not None and rc < 0 and rc != -1:
                        rec["error"] = f"process killed by signal {-rc}: " + rec["error"]
                    if os.path.exists(out + ".failed.json"):
                        info = json.load(open(out + ".failed.json"))
                        rec.update({k: v for k, v in info.items() if k in ("parity_vs_eager", "first_call_s",
                                                                            "energy_eager", "num_atoms")})
                        rec["error"] = info.get("error", rec["error"])
                    failed.add((system, side))
                    what = "FAILED " + " ".join(rec["error"].split())[-160:]
                else:
                    res = json.load(open(out))
                    res.pop("forces", None)
                    rec.update(res, status="ok", side=side)
                    what = f"median {1e3 * rec['median_s']:9.2f} ms"
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(f"{system:13s} r{rnd} {side:45s} {what}  (load {load0[0]:.2f})", flush=True)
                records.append(rec)
        write()  # after each system: a partial run still reports
    print(write())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
