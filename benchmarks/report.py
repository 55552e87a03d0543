"""Benchmark output: ``results.json``, ``results.md`` (tables) and PNG plots (time and memory against N, log-log)."""

from __future__ import annotations

import json
import math
import os
from benchmarks.plan import REPORTED_ORIGINAL, family

MB = 1024.0**2


def _fmt(x, scale=1.0, digits=3) -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "–"
    v = x * scale
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _ok(results, task="ef"):
    return [r for r in results if r.get("status") == "ok" and r.get("task") == task]


def write_json(path: str, meta: dict, results: list[dict]) -> None:
    doc = dict(meta=meta, results=results, reported_original=list(REPORTED_ORIGINAL))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    os.replace(tmp, path)


def _settings_line(s: dict) -> str:
    if not s:
        return "–"
    keys = [
        "dtype", "r_cutoff", "sr_cutoff", "lr_cutoff", "r_max", "num_layers", "num_interactions", "num_features",
        "num_scalar_features", "num_tensor_features", "hidden_irreps", "num_heads", "degrees", "max_ell", "l_max",
        "parity", "correlation", "num_radial_basis_fn", "bernstein_gamma", "sr_format", "sr_skin", "sr_capacity",
        "max_edges", "lr_format", "lr_capacity", "neighbor_list", "avg_num_neighbors", "weights", "num_parameters",
        "mode", "torch_threads", "remat", "chemtrain_jax_aliases",
    ]  # fmt: skip
    parts = []
    for k in keys:
        if k in s and s[k] is not None:
            v = s[k]
            if isinstance(v, float):
                v = f"{v:.4g}"
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def markdown(meta: dict, results: list[dict]) -> str:
    L = []
    L.append(f"# so3krates_hk benchmark — {meta.get('device', '?')}, {meta.get('date', '?')}")
    L.append("")
    L.append(f"Mode: `{meta.get('mode')}`; command: `{meta.get('command')}`.")
    L.append(f"Host: {meta.get('host', {}).get('cpu', '?')}, {meta.get('host', {}).get('cores', '?')} cores, "
             f"load average at start {meta.get('host', {}).get('loadavg_start')}, at end "
             f"{meta.get('host', {}).get('loadavg_end')}.")  # fmt: skip
    versions = meta.get("versions", {})
    if versions:
        L.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".")
    old = meta.get("appended_to")
    if old:
        L.append(f"Appended (`--append`) to the run of {old.get('date')} (`{old.get('command')}`)"
                 + (", versions: " + ", ".join(f"{k} {v}" for k, v in old["versions"].items() if v)
                    if old.get("versions") else "")
                 + "; each record in `results.json` names its versions (`run_versions`), and the tables below "
                   "give the JAX version per row.")  # fmt: skip
    if meta.get("malloc_env"):
        L.append("Every worker (ours and the baselines) ran with " + ", ".join(
            f"`{k}={v}`" for k, v in meta["malloc_env"].items()) + " (see `so3krates_hk/cpu_tuning.py`).")
    if meta.get("xla_flags"):
        L.append(f"JAX workers ran with `XLA_FLAGS={meta['xla_flags']}`.")
    tv = meta.get("torch_versions")
    if tv:
        L.append("Torch baselines (" + str(meta.get("torch_python")) + "): " +
                 ", ".join(f"{k} {v}" for k, v in tv.items() if v) + ".")  # fmt: skip
    L.append("")
    L.append("Times are wall clock on a shared machine: compare models by **same-run ratios**, not absolute numbers "
             "(each row carries the load average; see `results.json`).")  # fmt: skip
    L.append("")

    ef = sorted(_ok(results), key=lambda r: (family(r["system"]), r["model"], r["dtype"], r["num_atoms"]))
    if ef:
        L.append("## Energy + forces")
        L.append("")
        L.append("| model | system | N | dtype | JAX | edges (SR) | compile s | e+f median ms | (n) | nbr update ms | "
                 "atom-steps/s | MD step ms | peak RSS MB | XLA buffers MB | load |")  # fmt: skip
        L.append("|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in ef:
            load = r.get("loadavg_start")
            L.append(
                f"{_head_cells(r)}{_fmt(r.get('num_edges'))} | "
                f"{_fmt(r.get('compile_s'))} | {_fmt(r.get('ef_median_s'), 1e3)} | {r.get('repeats')} | "
                f"{_fmt(r.get('nbr_update_median_s'), 1e3)} | {_fmt(r.get('atom_steps_per_s'))} | "
                f"{_fmt(r.get('md_step_median_s'), 1e3)} | {_fmt(r.get('peak_memory_bytes'), 1 / MB)} | "
                f"{_fmt(r.get('xla_memory_bytes'), 1 / MB)} | {load[0] if load else '–'} |"
            )
        L.append("")
        L.append("compile: `jit(value_and_grad(E)).lower().compile()` wall time (torch: first call − warm median). "
                 "e+f: median of n warm calls, `block_until_ready`. nbr update: jitted `nbrs.update(R')` of every "
                 "list with one atom moved by 0.75 skin, i.e. a full rebuild (torch: a matscipy rebuild); the "
                 "check-only update (nothing moved) is `nbr_check_median_s` in the JSON. MD step: NVE velocity Verlet "
                 "with every list updated each step, median of short jitted loops, per step. Peak RSS: the whole "
                 "process during the warm e+f calls (JAX/torch runtime included; CPU), or the device's "
                 "`peak_bytes_in_use` (GPU). XLA buffers: the compiled e+f program's arguments + outputs + "
                 "temporaries from XLA's buffer assignment (`memory_analysis()`), free of the allocator and the "
                 "runtime.")  # fmt: skip
        L.append("")
    L.extend(_memory_table(_ok(results, "memory")))
    L.extend(_memory_scaling(ef + _ok(results, "memory")))

    # same-run ratios, per system
    by_sys: dict[tuple, list] = {}
    for r in ef:
        by_sys.setdefault((r["system"], r["dtype"]), []).append(r)
    rows = []
    for (system, dtype), rs in sorted(by_sys.items(), key=lambda kv: (kv[0][1], system_order(kv[0][0]))):
        if len(rs) < 2:
            continue
        ref = min(rs, key=lambda r: r["ef_median_s"])
        for r in sorted(rs, key=lambda r: r["ef_median_s"]):
            rows.append(f"| {system} | {dtype} | {r['model']} | {_fmt(r['ef_median_s'], 1e3)} | "
                        f"{r['ef_median_s'] / ref['ef_median_s']:.2f} |")  # fmt: skip
    if rows:
        L.append("### Same-run ratios (e+f time relative to the fastest model on that system)")
        L.append("")
        L.append("| system | dtype | model | e+f ms | × fastest |")
        L.append("|---|---|---|---:|---:|")
        L.extend(rows)
        L.append("")

    f64 = {(r["model"], r["system"]): r for r in ef if r["dtype"] == "float64"}
    rows = []
    for r in ef:
        if r["dtype"] == "float32" and (r["model"], r["system"]) in f64:
            d = f64[(r["model"], r["system"])]
            rows.append(f"| {r['model']} | {r['system']} | {_fmt(r['ef_median_s'], 1e3)} | "
                        f"{_fmt(d['ef_median_s'], 1e3)} | {d['ef_median_s'] / r['ef_median_s']:.2f} |")  # fmt: skip
    if rows:
        L.append("### float64 / float32 (same run)")
        L.append("")
        L.append("| model | system | float32 ms | float64 ms | ratio |")
        L.append("|---|---|---:|---:|---:|")
        L.extend(rows)
        L.append("")

    tr = _ok(results, "train")
    if tr:
        L.append("## Training step (chemtrain `ForceMatching`, force loss, adam)")
        L.append("")
        L.append("| model | system | N | dtype | JAX | batch | batch median ms | structures/s | first epoch s (compile) "
                 "| batches timed |")  # fmt: skip
        L.append("|---|---|---:|---|---|---:|---:|---:|---:|---:|")
        for r in tr:
            L.append(f"{_head_cells(r)}{r.get('train_batch_size')} | "
                     f"{_fmt(r.get('train_batch_median_s'), 1e3)} | {_fmt(r.get('train_structures_per_s'))} | "
                     f"{_fmt(r.get('train_first_epoch_s'))} | {r.get('train_batches_timed')} |")  # fmt: skip
        L.append("")
        L.append("Dataset: the system itself with Gaussian displacements (0.05 Å atomistic, 0.2 Å CG) and random force "
                 "targets; 80/10/10 split; the first epoch compiles, the batch time is the median interval between "
                 "batch updates of later epochs (data loading included).")  # fmt: skip
        L.append("")

    L.append("## Reported for the original SO3LR — not measured in this run")
    L.append("")
    L.append("Figures reported for the original SO3LR from another run (2-core CPU, float32, the original's own jax-md path), for orientation only: "
             "another machine and another load, so not a same-run comparison.")  # fmt: skip
    L.append("")
    L.append("| system | N | e+f ms (original, reported) | compile s (original, reported) | so3lr here, float32: e+f ms | "
             "compile s |")  # fmt: skip
    L.append("|---|---:|---:|---:|---:|---:|")
    ours = {r["system"]: r for r in ef if r["model"] == "so3lr" and r["dtype"] == "float32"}
    for o in REPORTED_ORIGINAL:
        r = ours.get(o["system"], {})
        L.append(f"| {o['system']} | {o['num_atoms']} | {o['ef_ms']} | {o['compile_s']} | "
                 f"{_fmt(r.get('ef_median_s'), 1e3)} | {_fmt(r.get('compile_s'))} |")  # fmt: skip
    L.append("")

    L.append("## Settings of each model (as run)")
    L.append("")
    seen = set()
    L.append("| model | system | settings |")
    L.append("|---|---|---|")
    for r in sorted(_ok(results) + _ok(results, "train"), key=lambda r: (r["model"], r["num_atoms"])):
        s = r.get("settings") or {}
        key = (r["model"], r["system"], r["dtype"])
        if key in seen:
            continue
        seen.add(key)
        L.append(f"| {r['model']} | {r['system']} | {_settings_line(s)} |")
    L.append("")

    other = [r for r in results if r.get("status") != "ok"]
    if other:
        L.append("## Skipped and failed")
        L.append("")
        for r in other:
            L.append(f"- {r['model']} on {r['system']} ({r['dtype']}, {r['task']}): **{r['status']}** — "
                     f"{(r.get('reason') or '').splitlines()[0] if r.get('reason') else ''}")  # fmt: skip
        L.append("")
    dropped = meta.get("dropped")
    if dropped:
        L.append("Not run in this mode (too large for the time budget on this device): " + "; ".join(dropped) + ".")
        L.append("")
    largest = largest_sizes(results)
    if largest:
        L.append("Largest system that ran, per model: " +
                 "; ".join(f"{m}: {n} atoms ({s})" for m, (n, s) in sorted(largest.items())) + ".")  # fmt: skip
        L.append("")
    return "\n".join(L)


def memory_exponents(results: list[dict], key: str = "xla_memory_bytes") -> list[dict]:
    """Per series (model, dtype, system family) with at least two sizes: the log-log slope of ``key`` against N
    between the smallest and the largest size (1 = linear), and the bytes per atom at the largest."""
    series: dict = {}
    for r in results:
        if r.get("status") == "ok" and r.get(key) and r.get("task", "ef") in ("ef", "memory"):
            series.setdefault((r["model"], r["dtype"], family(r["system"])), []).append((r["num_atoms"], r[key]))
    out = []
    for (model, dtype, fam), pts in sorted(series.items()):
        pts = sorted(set(pts))
        (n0, m0), (n1, m1) = pts[0], pts[-1]
        if n1 <= n0:
            continue
        out.append(dict(model=model, dtype=dtype, family=fam, n_min=n0, n_max=n1, sizes=len(pts),
                        exponent=math.log(m1 / m0) / math.log(n1 / n0), bytes_per_atom=m1 / n1))  # fmt: skip
    return out


def _head_cells(r: dict) -> str:
    """The first cells of a row: model, system, N, dtype, the JAX version of the run that measured it ("(torch)")."""
    jax_v = "(torch)" if r["model"].endswith("-torch") else (r.get("run_versions") or {}).get("jax", "?")
    return f"| {r['model']} | {r['system']} | {r['num_atoms']} | {r['dtype']} | {jax_v} | "


def _memory_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    rows = sorted(rows, key=lambda r: (r["model"], r["dtype"], family(r["system"]), r["num_atoms"]))
    L = ["## Memory of the energy+forces program (compiled, not run: XLA's buffer assignment)", "",
         "| model | system | N | dtype | JAX | edges (SR) | pairs (LR) | compile s | XLA buffers MB | temporaries MB | "
         "kB per atom |", "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        per_atom = r["xla_memory_bytes"] / r["num_atoms"] / 1e3 if r.get("xla_memory_bytes") else None
        L.append(f"{_head_cells(r)}{_fmt(r.get('num_edges'))} | {_fmt(r.get('num_pairs_lr'))} | "
                 f"{_fmt(r.get('compile_s'))} | {_fmt(r.get('xla_memory_bytes'), 1 / MB)} | "
                 f"{_fmt(r.get('xla_temp_bytes'), 1 / MB)} | {_fmt(per_atom)} |")  # fmt: skip
    return L + [""]


def _memory_scaling(ef: list[dict]) -> list[str]:
    rows = memory_exponents(ef)
    if not rows:
        return []
    peak = {(r["model"], r["dtype"], r["family"]): r["exponent"] for r in memory_exponents(ef, "peak_memory_bytes")}
    L = ["### Memory scaling (log-log slope against N, smallest to largest size; 1 = linear)", "",
         "| model | dtype | systems | N range | sizes | XLA buffers exponent | kB per atom (largest) "
         "| peak exponent |",
         "|---|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        p = peak.get((r["model"], r["dtype"], r["family"]))
        L.append(f"| {r['model']} | {r['dtype']} | {r['family']} | {r['n_min']}–{r['n_max']} | {r['sizes']} | "
                 f"{r['exponent']:.2f} | {r['bytes_per_atom'] / 1e3:.1f} | {'–' if p is None else f'{p:.2f}'} |")  # fmt: skip
    L += ["", "The peak (RSS on CPU) carries the runtime's fixed footprint, so its exponent reads below 1 at small N.",
          ""]  # fmt: skip
    return L


def system_order(name: str):
    return (family(name), name)


def largest_sizes(results) -> dict:
    out: dict = {}
    for r in _ok(results):
        m = f"{r['model']} {r['dtype']}"
        if m not in out or r["num_atoms"] > out[m][0]:
            out[m] = (r["num_atoms"], r["system"])
    return out


def plots(out_dir: str, results: list[dict], device: str) -> list[str]:
    """time_vs_n.png, md_step_vs_n.png, memory_vs_n.png: log-log against N, float32, one line per model (and CG
    family); atomistic models (default width) and CG models in two panels, each with a line for linear scaling.
    The memory plot draws the measured peak (solid) and the compiled program's XLA buffers (dashed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001
        return []
    files = []
    ef = [r for r in _ok(results) if r.get("dtype") == "float32"]
    mem = [r for r in _ok(results, "memory") if r.get("dtype") == "float32"]
    panels = (("atomistic (water, molecules; default width)", lambda f: f in ("water", "molecule")),
              ("CG (chains, boxes; CG width)", lambda f: f.startswith("cg")))  # fmt: skip

    def series_name(r):
        fam = family(r["system"])
        return r["model"] + (f" ({fam})" if fam.startswith("cg") else "")

    # (key, source records, line style, legend suffix) per quantity; memory: the measured peak (solid) and the
    # compiled program's buffers (dashed; from the e+f runs and the compile-only memory runs)
    figures = (
        ("energy + forces, median (s)", "time_vs_n.png", 1.0, [("ef_median_s", ef, "-", "")]),
        ("MD step incl. neighbour update (s)", "md_step_vs_n.png", 1.0, [("md_step_median_s", ef, "-", "")]),
        ("memory (MB)", "memory_vs_n.png", 1 / MB,
         [("peak_memory_bytes", ef, "-", ": peak"), ("xla_memory_bytes", ef + mem, "--", ": XLA buffers")]),
    )  # fmt: skip
    for label, fname, scale, sources in figures:
        if not any(r.get(key) is not None for key, rows, _, _ in sources for r in rows):
            continue
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        for ax, (title, keep) in zip(axes, panels):
            allpts, colors = [], {}
            for key, rows, style, suffix in sources:
                series: dict[str, dict] = {}
                for r in rows:
                    if r.get(key) is not None and keep(family(r["system"])):
                        series.setdefault(series_name(r), {})[r["num_atoms"]] = r[key] * scale
                for name, pts in sorted(series.items()):
                    xs, ys = zip(*sorted(pts.items()))
                    line = ax.plot(xs, ys, ls=style, marker="o" if style == "-" else ".", color=colors.get(name),
                                   label=name + (suffix if len(sources) > 1 else ""))[0]  # fmt: skip
                    colors.setdefault(name, line.get_color())
                    allpts += list(zip(xs, ys))
            if not allpts:
                ax.set_visible(False)
                continue
            allpts.sort()
            (lo, y0), hi = allpts[0], allpts[-1][0]
            if hi > lo:
                ax.plot([lo, hi], [y0, y0 * hi / lo], "k:", lw=1, label="∝ N (linear, from the smallest point)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("atoms / beads N")
            ax.set_ylabel(label)
            ax.set_title(title, fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{label} — {device}, float32")
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def write_all(out_dir: str, meta: dict, results: list[dict], make_plots: bool = True) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "results.json"), "markdown": os.path.join(out_dir, "results.md")}
    meta = dict(meta)
    if make_plots:
        meta["plots"] = [os.path.basename(p) for p in plots(out_dir, results, meta.get("device", "?"))]
    write_json(paths["json"], meta, results)
    with open(paths["markdown"], "w") as f:
        f.write(markdown(meta, results) + "\n")
    return paths


def load(path: str) -> tuple[dict, list[dict]]:
    with open(path) as f:
        doc = json.load(f)
    return doc["meta"], doc["results"]
