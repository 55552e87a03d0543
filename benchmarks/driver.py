"""The benchmark driver: plans the configurations, runs each in a subprocess, and writes the report.

    python -m benchmarks.run [--quick] [--out DIR] [--models ...] [--systems ...] [--torch-python PATH]

Each configuration runs in its own process (``worker``), so its peak RSS is its own and a crash or a timeout costs
only that configuration. ``--quick`` runs its few configurations in one process per interpreter (saves a JAX start-up
each; records say ``memory_isolation``). The PyTorch baselines run in ``--torch-python`` (default: this interpreter)
so they can live in another virtual environment than chemtrain.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

from benchmarks import plan as planning
from benchmarks import report
from benchmarks.hostinfo import cpu_name
from benchmarks.worker import empty_result
from so3krates_hk.cpu_tuning import MALLOC_ENV, tuned_env

PROBE = r"""
import json, importlib.metadata as md
out = {}
for p in ("jax", "jaxlib", "jax-md", "dm-haiku", "e3nn-jax", "numpy", "chemtrain", "optax", "so3krates-hk",
          "torch", "nequip", "nequip-allegro", "mace-torch", "e3nn", "matscipy", "chemutils", "so3lr"):
    try:
        out[p] = md.version(p)
    except Exception:
        out[p] = None
if %(jax)s:
    import jax
    d = jax.devices()[0]
    out["_platform"] = d.platform
    out["_device_kind"] = getattr(d, "device_kind", d.platform)
    out["_device_count"] = jax.device_count()
print("PROBE" + json.dumps(out))
"""


def _probe(python: str, with_jax: bool) -> dict:
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    try:
        p = subprocess.run([python, "-c", PROBE % {"jax": with_jax}], capture_output=True, text=True, timeout=300,
                           env=env)  # fmt: skip
        for line in p.stdout.splitlines():
            if line.startswith("PROBE"):
                return json.loads(line[5:])
    except Exception as err:  # noqa: BLE001
        return {"_error": f"{type(err).__name__}: {err}"}
    return {"_error": (p.stderr or "")[-500:]}


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower()


def _has(python: str, module: str) -> bool:
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    p = subprocess.run([python, "-c", f"import importlib.util, sys; sys.exit(importlib.util.find_spec('{module}') is None)"],
                       capture_output=True)  # fmt: skip
    return p.returncode == 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="CI mode: a few small systems, float32, fewer repetitions")
    p.add_argument("--out", help="output directory (default benchmarks/results/<device>-<date>/)")
    p.add_argument("--models", help=f"comma-separated subset of {','.join(planning.ALL_MODELS)}")
    p.add_argument("--systems", help="comma-separated subset of systems (e.g. dha,water-1536,cg-box-10000)")
    p.add_argument("--dtypes", help="comma-separated subset of float32,float64")
    p.add_argument("--tasks", help="comma-separated subset of ef,train,memory")
    p.add_argument("--max-atoms", type=int, help="skip systems larger than this")
    p.add_argument("--gpu", action="store_true",
                   help="the GPU run sized for one short device session, most important first (plan.gpu_plan)")
    p.add_argument("--memory", action="store_true",
                   help="memory scaling only: compile energy+forces up to large N and read XLA's buffer sizes")
    p.add_argument("--gpu-sizes", action="store_true", help="plan the GPU sizes even on CPU (default: by device)")
    p.add_argument("--repeats", type=int, help="warm energy+forces calls per configuration (default 15; quick 5)")
    p.add_argument("--timeout", type=float, help="seconds per configuration (default from the plan)")
    p.add_argument("--torch-python", default=os.environ.get("SO3KRATES_BENCH_TORCH_PYTHON"),
                   help="interpreter for the PyTorch baselines (default: this one; env SO3KRATES_BENCH_TORCH_PYTHON)")
    p.add_argument("--budget", type=float, help="overall seconds: configurations not started by then are skipped")
    p.add_argument("--append", action="store_true",
                   help="keep the results already in --out/results.json (a re-run configuration replaces its old one)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="run the workers with the caller's malloc settings (default: so3krates_hk.cpu_tuning's, for "
                        "every model, baselines included)")  # fmt: skip
    return p


_WORKER_ENV: dict = {}  # set by main(): the environment every worker (ours and the baselines) runs in


def _result_for(cfg: dict, status: str, reason: str) -> dict:
    r = empty_result(cfg)
    r.update(status=status, reason=reason)
    return r


def _run_one(cfg: dict, python: str, tmp: str, idx: int) -> dict:
    cpath, opath = os.path.join(tmp, f"c{idx}.json"), os.path.join(tmp, f"r{idx}.json")
    with open(cpath, "w") as f:
        json.dump(cfg, f)
    env = dict(_WORKER_ENV or os.environ)
    t = time.perf_counter()
    try:
        p = subprocess.run([python, "-m", "benchmarks.worker", cpath, opath], capture_output=True, text=True,
                           timeout=cfg["timeout_s"], env=env)  # fmt: skip
        status, tail = None, (p.stderr or "")[-2000:]
        if p.returncode != 0:
            status = "error"
    except subprocess.TimeoutExpired:
        status, tail = "timeout", f"timed out after {cfg['timeout_s']:.0f} s"
    result = _read(opath, cfg)
    if status == "timeout" or (status == "error" and result.get("status") in ("running", None)):
        reason = tail if status == "error" else tail
        if _oom(tail):
            reason = "out of memory: " + reason[-300:]
        result.update(status=status, reason=(result.get("reason") or "") + reason.strip()[-1500:])
    result.setdefault("wall_s", round(time.perf_counter() - t, 2))
    return result


def _oom(text: str) -> bool:
    return bool(re.search(r"RESOURCE_EXHAUSTED|out of memory|Cannot allocate memory|MemoryError|Killed", text or ""))


def _read(path: str, cfg: dict) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return _result_for(cfg, "error", "the worker wrote no result (crashed before its first phase: ")


def _run_batch(cfgs: list[dict], python: str, tmp: str, tag: str, timeout: float) -> list[dict]:
    items = [{"config": c, "out": os.path.join(tmp, f"{tag}{i}.json")} for i, c in enumerate(cfgs)]
    bpath = os.path.join(tmp, f"{tag}batch.json")
    with open(bpath, "w") as f:
        json.dump(items, f)
    tail = ""
    try:
        p = subprocess.run([python, "-m", "benchmarks.worker", "--batch", bpath], capture_output=True,
                           text=True, timeout=timeout, env=dict(_WORKER_ENV or os.environ))  # fmt: skip
        tail = (p.stderr or "")[-1500:] if p.returncode else ""
    except subprocess.TimeoutExpired:
        tail = f"timed out after {timeout:.0f} s (batch)"
    out = []
    for it in items:
        r = _read(it["out"], it["config"])
        if r.get("status") in ("running", None):
            r.update(status="timeout" if "timed out" in tail else "error", reason=tail or r.get("reason"))
        out.append(r)
    return out


def _announce(r: dict) -> None:
    what = f"{r['model']} on {r['system']} ({r.get('num_atoms')} atoms, {r['dtype']}, {r['task']})"
    if r["status"] == "ok":
        if r["task"] == "memory":
            xla = r.get("xla_memory_bytes")
            print(f"  ok    {what}: compile {r['compile_s']:.2f} s, {r.get('num_edges')} SR edges, "
                  f"{r.get('num_pairs_lr') or 0} LR pairs, XLA buffers "
                  + (f"{xla / 2**20:.0f} MB" if xla else "n/a"), flush=True)  # fmt: skip
        elif r["task"] == "train":
            print(f"  ok    {what}: {r['train_structures_per_s']:.3g} structures/s "
                  f"(batch {r['train_batch_size']}, {r['train_batch_median_s'] * 1e3:.1f} ms)", flush=True)  # fmt: skip
        else:
            md = r.get("md_step_median_s")
            mem = r.get("peak_memory_bytes")
            print(f"  ok    {what}: compile {r['compile_s']:.2f} s, e+f {r['ef_median_s'] * 1e3:.2f} ms "
                  f"(median of {r['repeats']}), {r['atom_steps_per_s']:.3g} atom-steps/s"
                  + (f", MD step {md * 1e3:.2f} ms" if md else "")
                  + (f", peak {mem / 2**20:.0f} MB" if mem else ""), flush=True)  # fmt: skip
    elif r["status"] == "skipped":
        print(f"  SKIP  {what}: {r.get('reason')}", flush=True)
    else:
        reason = (r.get("reason") or "").strip().splitlines()
        print(f"  {r['status'].upper():5s} {what}: {reason[-1] if reason else ''}", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))
    torch_python = args.torch_python or sys.executable
    started = _dt.datetime.now()
    t_start = time.perf_counter()
    host = dict(cpu=cpu_name(), cores=os.cpu_count(), platform=platform.platform(), loadavg_start=_loadavg())
    versions = _probe(sys.executable, with_jax=True)
    plat = versions.pop("_platform", "cpu")
    kind = versions.pop("_device_kind", plat)
    ndev = versions.pop("_device_count", 1)
    versions.pop("_error", None)
    device = f"{plat}" if plat == "cpu" else f"{plat}-{kind}"
    device_words = f"{kind} ×{ndev}" if plat != "cpu" else f"CPU: {host['cpu']}, {host['cores']} cores"
    gpu = plat != "cpu" or args.gpu_sizes

    if args.quick + args.gpu + args.memory > 1:
        raise SystemExit("benchmarks.run: --quick, --gpu and --memory are different plans; pass one.")
    mode = "quick" if args.quick else "gpu" if args.gpu else "memory" if args.memory else "full"
    cfgs = planning.plan_for(mode, gpu)
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    cfgs = planning.select(cfgs, split(args.models), split(args.systems), split(args.dtypes), args.max_atoms,
                           split(args.tasks))  # fmt: skip
    for c in cfgs:
        if args.repeats:
            c["repeats"] = args.repeats
        if args.timeout:
            c["timeout_s"] = args.timeout
    if args.list:
        for c in cfgs:
            print(f"{c['model']:18s} {c['system']:16s} {c['num_atoms']:>8d} {c['dtype']:8s} {c['task']:6s} "
                  f"{c['framework']}")  # fmt: skip
        return 0

    out_dir = args.out or os.path.join("benchmarks", "results", f"{_slug(device)}-{started:%Y-%m-%d}")
    os.makedirs(out_dir, exist_ok=True)
    print(f"so3krates_hk benchmark ({mode}): {len(cfgs)} configurations on "
          f"{device_words}; results in {out_dir}", flush=True)  # fmt: skip

    torch_versions = None
    if any(c["framework"] == "torch" for c in cfgs):
        if torch_python != sys.executable:
            torch_versions = {k: v for k, v in _probe(torch_python, with_jax=False).items() if not k.startswith("_")}
            torch_versions = {k: torch_versions.get(k) for k in ("torch", "nequip", "nequip-allegro", "mace-torch",
                                                                  "e3nn", "matscipy")}  # fmt: skip
    has_torch = _has(torch_python, "torch")
    has_chemtrain = importlib.util.find_spec("chemtrain") is not None
    missing_pkg = {m: pkg for m, pkg in (("allegro-chemutils", "chemutils"), ("so3lr-original", "so3lr"))
                   if importlib.util.find_spec(pkg) is None}  # fmt: skip

    meta = dict(
        date=started.isoformat(timespec="seconds"), device=device, device_words=device_words, host=host,
        versions={k: v for k, v in versions.items() if v}, torch_python=torch_python, torch_versions=torch_versions,
        python=platform.python_version(), mode=mode,
        command=" ".join(["python -m benchmarks.run"] + list(argv if argv is not None else sys.argv[1:])),
        dropped=[] if (mode != "full" or gpu) else planning.dropped_on_cpu(),
    )  # fmt: skip
    _WORKER_ENV.clear()
    _WORKER_ENV.update(os.environ if args.no_malloc_tuning else tuned_env())
    # the workers import ``benchmarks`` from this checkout, whatever their working directory
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _WORKER_ENV["PYTHONPATH"] = os.pathsep.join(p for p in (root, _WORKER_ENV.get("PYTHONPATH", "")) if p)
    meta["malloc_env"] = {k: _WORKER_ENV.get(k) for k in MALLOC_ENV}
    meta["xla_flags"] = _WORKER_ENV.get("XLA_FLAGS")  # jaxlib 0.4.32-0.4.x: the classic XLA:CPU runtime, see cpu_tuning

    results: list[dict] = []
    failed_series: dict[tuple, str] = {}
    with tempfile.TemporaryDirectory(prefix="so3krates-bench-") as tmp:
        pending = []
        for i, c in enumerate(cfgs):
            # cheap skips, without starting a process
            over_budget = args.budget is not None and time.perf_counter() - t_start > args.budget
            if over_budget:
                r = _result_for(c, "skipped", f"overall time budget of {args.budget:.0f} s used up (--budget)")
            elif c["model"] in missing_pkg:
                pkg = missing_pkg[c["model"]]
                r = _result_for(c, "skipped", f"{c['model']}: the package {pkg!r} is not importable in {sys.executable}"
                                              " (not on PyPI; install it to compare)")  # fmt: skip
            elif c["framework"] == "torch" and not has_torch:
                r = _result_for(c, "skipped", f"{c['model']}: torch is not importable in {torch_python} "
                                               "(pass --torch-python)")  # fmt: skip
            elif c["task"] == "train" and not has_chemtrain:
                r = _result_for(c, "skipped", "chemtrain is not importable in this interpreter")
            elif planning.series_key(c) in failed_series:
                r = _result_for(c, "skipped", f"larger than the largest that fits ({failed_series[planning.series_key(c)]})")
            else:
                pending.append((i, c))
                if not args.quick:
                    r = _run_one(c, torch_python if c["framework"] == "torch" else sys.executable, tmp, i)
                    if r["status"] in ("timeout", "error") and (r["status"] == "timeout" or _oom(r.get("reason", ""))):
                        failed_series[planning.series_key(c)] = f"{c['system']} {r['status']}"
                else:
                    continue
            _announce(r)
            results.append(r)
            _partial(out_dir, meta, results)
        if args.quick:
            groups: dict[tuple, list] = {}
            for i, c in pending:
                py = torch_python if c["framework"] == "torch" else sys.executable
                groups.setdefault((py, c["dtype"]), []).append(c)
            for g, (key, group) in enumerate(groups.items()):
                timeout = sum(c["timeout_s"] for c in group)
                for r in _run_batch(group, key[0], tmp, f"b{g}_", timeout):
                    _announce(r)
                    results.append(r)
                    _partial(out_dir, meta, results)

    if args.append and os.path.exists(os.path.join(out_dir, "results.json")):
        old_meta, old_results = report.load(os.path.join(out_dir, "results.json"))
        for r in old_results:  # every record names the versions of the run that measured it
            r.setdefault("run_versions", old_meta.get("versions"))
        key = lambda r: (r["model"], r["system"], r["dtype"], r["task"])  # noqa: E731
        fresh = {key(r) for r in results}
        results = [r for r in old_results if key(r) not in fresh] + results
        meta["appended_to"] = {k: old_meta.get(k) for k in ("date", "command", "elapsed_s", "versions")}
        meta["dropped"] = old_meta.get("dropped", meta["dropped"])
    for r in results:
        r.setdefault("run_versions", meta["versions"])
    meta["host"]["loadavg_end"] = _loadavg()
    meta["elapsed_s"] = round((_dt.datetime.now() - started).total_seconds(), 1)
    paths = report.write_all(out_dir, meta, results, make_plots=not args.no_plots)
    try:
        os.remove(os.path.join(out_dir, "partial.json"))
    except OSError:
        pass
    n_ok = sum(r["status"] == "ok" for r in results)
    n_skip = sum(r["status"] == "skipped" for r in results)
    n_bad = len(results) - n_ok - n_skip
    print(f"done in {meta['elapsed_s']:.0f} s: {n_ok} ok, {n_skip} skipped, {n_bad} failed. "
          f"{paths['markdown']}, {paths['json']}", flush=True)  # fmt: skip
    return 1 if n_bad else 0


def _partial(out_dir: str, meta: dict, results: list[dict]) -> None:
    """Results so far, so an interrupted run leaves something usable."""
    report.write_json(os.path.join(out_dir, "partial.json"), meta, results)


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
