"""Where SO3LR's energy+forces spends its time and FLOPs (CPU, float32 by default).

    python -m benchmarks.profile [--systems bb,water-1536] [--dtype float32] [--out DIR] [--repeats 7]

For each system it reports, from one run:

1. The whole ``jit(value_and_grad(E))``: XLA's cost analysis (FLOPs, bytes accessed, transcendentals) and the
   median wall time.
2. Ablations, same run: full SO3LR; without the long-range terms (NN + ZBL); the SO3krates network alone (no ZBL, no
   long range); the energy alone (no backward pass); the neighbour-list updates and the graph construction. The
   differences give the cost of the long-range pair terms, ZBL, the backward pass and the lists.
3. Per-op attribution of the optimised HLO: every instruction (fused ones included) is classified by opcode (dot,
   gather, scatter, reduce, transcendental, elementwise, data movement) and by source (the Python function of
   ``so3krates_hk``/e3nn/jax-md that emitted it, from the HLO metadata, and forward or backward pass). Dot FLOPs are
   exact (2·M·N·K from the shapes), gathers/scatters are counted in bytes moved, elementwise ops in elements.
4. With JAX ≥ 0.5 (``jax.profiler.ProfileData``): the measured time of every executed thunk (fusion, dot, scatter,
   …) from a ``jax.profiler`` trace, summed by the categories of 3.

Writes ``profile.json`` and ``profile.md`` into ``--out`` (default ``benchmarks/results/profile-<device>-<date>``).
Haiku's ``profiler_name_scopes`` is switched on so HLO op names carry the module path (no model code changes).
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import glob
import json
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np

DTYPE_BYTES = {"f64": 8, "f32": 4, "f16": 2, "bf16": 2, "s64": 8, "s32": 4, "u32": 4, "s8": 1, "u8": 1, "pred": 1,
               "s16": 2, "u16": 2, "u64": 8}  # fmt: skip
TRANSCENDENTAL = {"exponential", "log", "tanh", "logistic", "sqrt", "rsqrt", "power", "sine", "cosine", "erf",
                  "exponential-minus-one", "log-plus-one", "cbrt", "atan2"}  # fmt: skip
MOVEMENT = {"copy", "transpose", "concatenate", "slice", "dynamic-slice", "dynamic-update-slice", "pad", "broadcast",
            "reshape", "bitcast", "reverse", "iota", "convert", "bitcast-convert", "tuple", "get-tuple-element",
            "parameter", "constant"}  # fmt: skip


# ------------------------------------------------------------------------------------------------------ HLO parsing
_INSTR = re.compile(
    r"^\s*(?:ROOT\s+)?%?(?P<name>[^\s=]+)\s*=\s*(?P<type>\([^=]*?\)|[^\s(]+)\s+(?P<op>[a-z][\w\-]*)\((?P<args>.*?)\)"
    r"(?P<rest>.*)$"
)
_SHAPE = re.compile(r"\b(pred|[fsu]\d+|bf16)\[([\d,]*)\]")


def _elems(dims: str) -> int:
    return int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1


def _shape_list(text: str):
    return [(t, _elems(d), [int(x) for x in d.split(",") if x]) for t, d in _SHAPE.findall(text)]


def parse_hlo(text: str) -> dict:
    """{computation name: [instruction dicts]} and the entry computation's name."""
    comps: dict[str, list] = {}
    entry, current = None, None
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"^(ENTRY\s+)?%?([\w.\-]+)\s*(\(.*\))?\s*->.*\{$", s) or re.match(r"^(ENTRY\s+)?%?([\w.\-]+)\s+\{$", s)
        if m and "=" not in s.split("{")[0].split("->")[0].replace("->", ""):
            current = m.group(2)
            comps[current] = []
            if m.group(1):
                entry = current
            continue
        if s == "}":
            current = None
            continue
        if current is None:
            continue
        mi = _INSTR.match(line)
        if not mi:
            continue
        rest = mi.group("rest")
        meta = {}
        mm = re.search(r'op_name="([^"]*)"', rest)
        if mm:
            meta["op_name"] = mm.group(1)
        mm = re.search(r'source_file="([^"]*)"', rest)
        if mm:
            meta["source_file"] = mm.group(1)
        mm = re.search(r"source_line=(\d+)", rest)
        if mm:
            meta["source_line"] = int(mm.group(1))
        calls = re.findall(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)", rest)
        mm = re.search(r"custom_call_target=\"([^\"]*)\"", rest)
        args = _shape_list(mi.group("args"))  # older XLA prints operand shapes inline
        if not args:  # newer XLA prints names only: resolve them in this computation
            table = {i["name"]: i["out"] for i in comps[current]}
            for ref in re.findall(r"%([\w.\-]+)", mi.group("args")):
                args += table.get(ref, [])
        comps[current].append(dict(
            name=mi.group("name"), op=mi.group("op"), out=_shape_list(mi.group("type")),
            args=args, rest=rest, calls=calls, meta=meta, target=mm.group(1) if mm else None,
        ))  # fmt: skip
    return {"computations": comps, "entry": entry}


def op_cost(ins: dict) -> dict:
    """flops (dots exactly, elementwise/reduce by element count), transcendentals, bytes moved by gathers/scatters."""
    op = ins["op"]
    out_elems = sum(e for _, e, _ in ins["out"])
    c = dict(flops=0.0, transcendentals=0.0, gather_bytes=0.0, scatter_bytes=0.0)
    if op in ("dot", "convolution"):
        m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", ins["rest"])
        k = 1
        if m and ins["args"]:
            dims = ins["args"][0][2]
            for d in (int(x) for x in m.group(1).split(",") if x):
                if d < len(dims):
                    k *= dims[d]
        c["flops"] = 2.0 * out_elems * k
    elif op == "gather":
        c["gather_bytes"] = float(sum(e * DTYPE_BYTES.get(t, 4) for t, e, _ in ins["out"]))
    elif op == "scatter":
        upd = ins["args"][-1] if ins["args"] else ("f32", out_elems, [])
        c["scatter_bytes"] = float(upd[1] * DTYPE_BYTES.get(upd[0], 4))
        c["flops"] = float(upd[1])
    elif op in ("reduce", "reduce-window"):
        c["flops"] = float(sum(e for _, e, _ in ins["args"][: max(1, len(ins["args"]) // 2)]))
    elif op in TRANSCENDENTAL:
        c["transcendentals"] = float(out_elems)
        c["flops"] = float(out_elems)
    elif op not in MOVEMENT and op not in ("fusion", "call", "custom-call", "while", "conditional", "select-and-scatter"):
        c["flops"] = float(out_elems)
    return c


def op_class(op: str) -> str:
    if op in ("dot", "convolution"):
        return "dot (dense matmul)"
    if op == "gather":
        return "gather"
    if op in ("scatter", "select-and-scatter"):
        return "scatter (segment sums)"
    if op in ("reduce", "reduce-window", "sort"):
        return "reduce/sort"
    if op in TRANSCENDENTAL:
        return "transcendental"
    if op in MOVEMENT:
        return "data movement"
    return "elementwise"


def direction(meta: dict) -> str:
    return "backward" if "transpose(" in meta.get("op_name", "") else "forward"


def module_path(meta: dict) -> tuple[str, str]:
    """(haiku module path with layer numbers folded, primitive) from an HLO op_name; transforms are dropped."""
    parts = [p for p in meta.get("op_name", "").split("/") if "(" not in p and "[" not in p]
    parts = [re.sub(r"layers_\d+", "layers_*", p) for p in parts]
    if not parts:
        return "", ""
    return "/".join(parts[:-1]), parts[-1]


def component(meta: dict, dims: set, hints: dict) -> str:
    """A coarse, human category, from the op's haiku module path (and, outside modules, from its shapes)."""
    path, prim = module_path(meta)
    if "radial_filter" in path or "spherical_filter" in path:
        return "per-edge filter MLPs (radial + spherical)"
    if "nhi,hio" in path or "ngi,gio" in path:
        return "q/k/v projections (per atom)"
    if "attention_block" in path:
        if prim == "gather":
            return "attention: gathers atom→edge (q, k, v, ε)"
        if prim.startswith("scatter"):
            return "attention: segment sums edge→atom"
        return "attention: α, messages, ε_j−ε_i contraction (per edge)"
    if "layer_normalization" in path:
        return "LayerNorms"
    if "res_mlp" in path:
        return "residual MLPs (per atom)"
    if "exchange_block" in path:
        return "exchange block (per atom)"
    if "zbl" in path:
        return "ZBL repulsion (short-range pairs)"
    if "energy_head" in path or "partial_charges" in path or "hirshfeld" in path:
        return "heads (energy, charges, Hirshfeld)"
    if "ijk->" in path:
        return "spherical harmonics (e3nn)"
    if path.startswith("so3krates") and "embedding" in path:
        return "embeddings"
    if path.startswith("so3krates"):
        return "edge features (Bernstein basis, cutoff, Y_lm)"
    lr = hints.get("lr_dims", set())
    if lr and dims & lr:
        return "long-range pairs (LR graph, Coulomb, dispersion)"
    if dims & hints.get("sr_dims", set()):
        return "short-range graph (gathers, displacements, compaction)"
    return "other (outside modules)"


CLASS_PRIORITY = ("scatter (segment sums)", "dot (dense matmul)", "gather", "reduce/sort", "transcendental",
                  "elementwise", "data movement")  # fmt: skip


def attribute(hlo: dict, hints: dict) -> list[dict]:
    """One row per instruction of every computation reachable from the entry (fusions included)."""
    comps = hlo["computations"]
    rows = []
    seen = set()

    def walk(cname, top):
        for ins in comps.get(cname, []):
            meta = ins["meta"]
            dims = {shape[0] for _, _, shape in ins["out"] + ins["args"] if shape}
            path, _ = module_path(meta)
            row = dict(name=ins["name"], op=ins["op"], cls=op_class(ins["op"]), label=path or "(top level)",
                       component=component(meta, dims, hints), dir=direction(meta), top=top or ins["name"],
                       out=[(t, d) for t, _, d in ins["out"]], **op_cost(ins))  # fmt: skip
            rows.append(row)
            for c in ins["calls"]:
                if (c, top or ins["name"]) not in seen:
                    seen.add((c, top or ins["name"]))
                    walk(c, top or ins["name"])

    walk(hlo["entry"], None)
    # a fusion (or call) takes the class of its most significant inner op
    inner: dict = collections.defaultdict(set)
    for r in rows:
        if r["top"] != r["name"]:
            inner[r["top"]].add(r["cls"])
    for r in rows:
        if r["top"] == r["name"] and r["op"] in ("fusion", "call", "custom-call") and inner.get(r["name"]):
            r["cls"] = next((c for c in CLASS_PRIORITY if c in inner[r["name"]]), r["cls"])
    return rows


# ---------------------------------------------------------------------------------------------------- measurements
def _cost(compiled) -> dict:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    ca = ca or {}
    return {k: float(ca[k]) for k in ("flops", "bytes accessed", "transcendentals") if k in ca}


def thunk_times(compiled_call, repeats: int) -> dict:
    """{thunk name: mean seconds per call} from a jax.profiler trace (JAX ≥ 0.5), or {} if unavailable."""
    try:
        from jax.profiler import ProfileData
    except ImportError:
        return {}
    import jax

    jax.block_until_ready(compiled_call())
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        for _ in range(repeats):
            jax.block_until_ready(compiled_call())
        jax.profiler.stop_trace()
        files = sorted(glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True))
        if not files:
            return {}
        pd = ProfileData.from_file(files[-1])
    acc = collections.defaultdict(float)
    for plane in pd.planes:
        if not plane.name.startswith("/host:CPU") and not plane.name.startswith("/device"):
            continue
        for line in plane.lines:
            if line.name == "python" or "Steps" in line.name:
                continue
            for ev in line.events:
                n = ev.name
                if n.startswith("end: ") or n.startswith("ThreadpoolListener") or "::" in n:
                    continue
                acc[n] += ev.duration_ns * 1e-9
    return {k: v / repeats for k, v in acc.items()}


def profile_system(name: str, dtype_name: str, repeats: int) -> dict:
    import haiku as hk
    import jax

    if hasattr(hk.experimental, "profiler_name_scopes"):  # older haiku; newer ones always name module calls
        hk.experimental.profiler_name_scopes(enabled=True)
    from so3krates_hk import pretrained, so3lr_neighborlist_pp
    from benchmarks import jax_models
    from benchmarks.systems import build_system
    from so3krates_hk.graph import build_graph

    system = build_system(name)
    try:
        m = jax_models.build("so3lr", system, dtype_name)
    except jax_models.Unavailable:  # a box smaller than twice the long-range cutoff: short range only
        m = jax_models.build("so3lr-sr", system, dtype_name)
    nbrs, R, params = m.neighbors, m.position, m.params
    out = dict(system=name, num_atoms=system.num_atoms, dtype=dtype_name, settings=m.settings)
    Z = m.species
    _, kwargs = pretrained.so3lr()
    sr, lr = nbrs["neighbor"], nbrs.get("neighbor_lr")
    out["num_edges_sr"] = int(m.count_edges(R, **nbrs))
    out["max_edges_sr"] = m.max_edges
    out["sr_list_capacity"] = int(sr.idx.shape[1])
    if lr is not None:
        out["lr_list_capacity"] = int(lr.idx.shape[1])

    hints = dict(sr_dims={int(sr.idx.shape[1]), int(m.max_edges or 0)},
                 lr_dims={int(lr.idx.shape[1])} if lr is not None else set())  # fmt: skip
    variants = {"full": {}, "no long range (NN+ZBL)": dict(electrostatics=False, dispersion=False),
                "SO3krates network only": dict(electrostatics=False, dispersion=False, zbl=False)}  # fmt: skip
    if lr is None:
        variants.pop("full")
    calls, costs = {}, {}
    main_compiled = None
    for label, switches in variants.items():
        kw = dict(kwargs, **switches)
        _, apply_fn = so3lr_neighborlist_pp(m.displacement, positions_test=R, neighbor_test=sr, **kw)
        uses_lr = kw.get("electrostatics", True) or kw.get("dispersion", True)

        def energy(p, r, sr, lr, apply_fn=apply_fn, uses_lr=uses_lr):
            return apply_fn(p, r, sr, lr if uses_lr else None, Z, 0.0, 0.0)

        ef = jax.jit(jax.value_and_grad(energy, argnums=1))
        t = time.perf_counter()
        compiled = ef.lower(params, R, sr, lr).compile()
        compile_s = time.perf_counter() - t
        calls[f"e+f: {label}"] = lambda c=compiled: c(params, R, sr, lr)
        costs[f"e+f: {label}"] = dict(_cost(compiled), compile_s=compile_s)
        if main_compiled is None:
            main_compiled = compiled
            main_label = label
            e_only = jax.jit(energy).lower(params, R, sr, lr).compile()
            calls[f"energy only: {label}"] = lambda c=e_only: c(params, R, sr, lr)
            costs[f"energy only: {label}"] = _cost(e_only)

    # neighbour lists and graph construction
    for key, nb in nbrs.items():
        upd = jax.jit(lambda r, nb: nb.update(r)).lower(R, nb).compile()
        calls[f"list update: {key}"] = lambda c=upd, nb=nb: c(R, nb)
        costs[f"list update: {key}"] = _cost(upd)
        cutoff = m.settings["sr_cutoff"] if key == "neighbor" else m.settings["lr_cutoff"]
        cap = m.max_edges if key == "neighbor" else None
        gb = jax.jit(lambda r, nb, cutoff=cutoff, cap=cap: build_graph(m.displacement, r, nb, cutoff, None, cap).vectors)
        gbc = gb.lower(R, nb).compile()
        calls[f"graph build (fwd): {key}"] = lambda c=gbc, nb=nb: c(R, nb)
        costs[f"graph build (fwd): {key}"] = _cost(gbc)
    # interleaved rounds (each function once per round), so a change of machine load hits every variant alike
    samples = collections.defaultdict(list)
    for fn in calls.values():
        jax.block_until_ready(fn())
    for _ in range(repeats):
        for k, fn in calls.items():
            t = time.perf_counter()
            jax.block_until_ready(fn())
            samples[k].append(time.perf_counter() - t)
    out["timings_s"] = {k: statistics.median(v) for k, v in samples.items()}
    out["timings_all_s"] = dict(samples)
    out["costs"] = costs

    # per-op attribution of the main compiled function
    hlo = parse_hlo(main_compiled.as_text())
    rows = attribute(hlo, hints)
    tt = thunk_times(lambda: main_compiled(params, R, sr, lr), max(3, repeats // 2))
    out["attributed_function"] = f"e+f: {main_label}"
    out["thunk_time_total_s"] = sum(tt.values()) if tt else None
    out["hlo_rows"] = len(rows)

    def group(keyf):
        g = collections.defaultdict(lambda: dict(flops=0.0, transcendentals=0.0, gather_bytes=0.0,
                                                 scatter_bytes=0.0, time_s=0.0, ops=0))  # fmt: skip
        for r in rows:
            k = keyf(r)
            for f in ("flops", "transcendentals", "gather_bytes", "scatter_bytes"):
                g[k][f] += r[f]
            g[k]["ops"] += 1
        # thunk time goes to the top-level instruction's own category (fusions: their root op's source)
        top_rows = {r["name"]: r for r in rows if r["top"] == r["name"]}
        for name, sec in tt.items():
            r = top_rows.get(name)
            if r is None:
                continue
            g[keyf(r)]["time_s"] += sec
        return dict(sorted(g.items(), key=lambda kv: -(kv[1]["time_s"] or 0) - kv[1]["flops"] * 1e-15))

    out["by_component"] = group(lambda r: r["component"])
    out["by_component_dir"] = group(lambda r: f"{r['component']} [{r['dir']}]")
    out["by_class"] = group(lambda r: r["cls"])
    out["by_source"] = group(lambda r: r["label"])
    top_rows = {r["name"]: r for r in rows if r["top"] == r["name"]}
    inner = collections.defaultdict(list)
    for r in rows:
        if r["top"] != r["name"]:
            inner[r["top"]].append(r)
    hot = []
    for name, sec in sorted(tt.items(), key=lambda kv: -kv[1])[:30]:
        r = top_rows.get(name)
        if r is None:
            continue
        ops = collections.Counter(x["op"] for x in inner.get(name, []))
        flops = r["flops"] + sum(x["flops"] for x in inner.get(name, []))
        hot.append(dict(thunk=name, time_ms=sec * 1e3, op=r["cls"], component=r["component"], source=r["label"],
                        dir=r["dir"], out=r["out"][:2], flops=flops,
                        inner_ops=dict(ops.most_common(6))))  # fmt: skip
    out["hottest_thunks"] = hot
    # every executed thunk (for counting passes over pair-sized arrays by output shape)
    out["thunks"] = [dict(thunk=name, time_ms=sec * 1e3, op=top_rows[name]["cls"], dir=top_rows[name]["dir"],
                          component=top_rows[name]["component"], out=top_rows[name]["out"][:2])
                     for name, sec in sorted(tt.items(), key=lambda kv: -kv[1]) if name in top_rows]  # fmt: skip
    return out


def _md(results: list[dict], meta: dict) -> str:
    L = [f"# SO3LR energy+forces profile — {meta['device']}, {meta['date']}", ""]
    L.append(f"JAX {meta.get('jax')}, {meta.get('dtype')}; load average {meta.get('loadavg')}. Times are wall clock "
             "on a shared machine: read them as fractions of the same run.")  # fmt: skip
    L.append("")
    for r in results:
        L.append(f"## {r['system']} ({r['num_atoms']} atoms)")
        L.append("")
        L.append(f"Short-range edges: {r['num_edges_sr']} real, capacity {r['max_edges_sr']} (list capacity "
                 f"{r['sr_list_capacity']}); long-range list capacity {r.get('lr_list_capacity', '–')}.")  # fmt: skip
        L.append("")
        L.append("| function | median ms | GFLOP (XLA) | GB accessed (XLA) | transcendentals (M) |")
        L.append("|---|---:|---:|---:|---:|")
        for k, v in r["timings_s"].items():
            c = r["costs"].get(k, {})
            L.append(f"| {k} | {v * 1e3:.2f} | {c.get('flops', 0) / 1e9:.3f} | {c.get('bytes accessed', 0) / 1e9:.3f} "
                     f"| {c.get('transcendentals', 0) / 1e6:.2f} |")  # fmt: skip
        L.append("")
        tot = r.get("thunk_time_total_s")
        L.append(f"### {r['attributed_function']}: by component (thunk time from the trace"
                 + (f", total {tot * 1e3:.1f} ms per call" if tot else ", not available") + ")")  # fmt: skip
        L.append("")
        L.append("| component | time ms | time % | GFLOP (HLO) | gather MB | scatter MB | transc. M |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        fl_tot = sum(v["flops"] for v in r["by_component"].values()) or 1
        for k, v in r["by_component"].items():
            pct = 100 * v["time_s"] / tot if tot else 0
            L.append(f"| {k} | {v['time_s'] * 1e3:.2f} | {pct:.1f} | {v['flops'] / 1e9:.3f} "
                     f"({100 * v['flops'] / fl_tot:.0f}%) | {v['gather_bytes'] / 2**20:.1f} | "
                     f"{v['scatter_bytes'] / 2**20:.1f} | {v['transcendentals'] / 1e6:.2f} |")  # fmt: skip
        L.append("")
        L.append("#### by op class")
        L.append("")
        L.append("| op class | time ms | GFLOP | gather MB | scatter MB |")
        L.append("|---|---:|---:|---:|---:|")
        for k, v in r["by_class"].items():
            L.append(f"| {k} | {v['time_s'] * 1e3:.2f} | {v['flops'] / 1e9:.3f} | {v['gather_bytes'] / 2**20:.1f} | "
                     f"{v['scatter_bytes'] / 2**20:.1f} |")  # fmt: skip
        L.append("")
        L.append("#### by component and pass")
        L.append("")
        L.append("| component [pass] | time ms | GFLOP |")
        L.append("|---|---:|---:|")
        for k, v in r["by_component_dir"].items():
            L.append(f"| {k} | {v['time_s'] * 1e3:.2f} | {v['flops'] / 1e9:.3f} |")
        L.append("")
        L.append("#### hottest thunks")
        L.append("")
        L.append("| thunk | ms | op class | component | module path | pass | output | GFLOP | inner ops |")
        L.append("|---|---:|---|---|---|---|---|---:|---|")
        for h in r["hottest_thunks"][:20]:
            outs = "; ".join(f"{t}{d}" for t, d in h["out"])
            ops = ", ".join(f"{k}×{v}" for k, v in h["inner_ops"].items())
            L.append(f"| {h['thunk']} | {h['time_ms']:.2f} | {h['op']} | {h['component']} | {h['source']} | "
                     f"{h['dir']} | {outs} | {h['flops'] / 1e9:.3f} | {ops} |")  # fmt: skip
        L.append("")
        L.append("#### top module paths by FLOPs")
        L.append("")
        L.append("| module path | time ms | GFLOP | gather MB | scatter MB |")
        L.append("|---|---:|---:|---:|---:|")
        for k, v in sorted(r["by_source"].items(), key=lambda kv: -kv[1]["flops"])[:20]:
            L.append(f"| {k} | {v['time_s'] * 1e3:.2f} | {v['flops'] / 1e9:.3f} | {v['gather_bytes'] / 2**20:.1f} | "
                     f"{v['scatter_bytes'] / 2**20:.1f} |")  # fmt: skip
        L.append("")
    return "\n".join(L)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--systems", default="bb,water-1536")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out")
    args = p.parse_args(argv)
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dev = jax.devices()[0]
    date = _dt.datetime.now()
    meta = dict(device=f"{dev.platform}:{getattr(dev, 'device_kind', '')}", date=date.isoformat(timespec="seconds"),
                jax=jax.__version__, dtype=args.dtype, loadavg=list(os.getloadavg()))  # fmt: skip
    out_dir = args.out or os.path.join("benchmarks", "results", f"profile-{dev.platform}-{date:%Y-%m-%d}")
    os.makedirs(out_dir, exist_ok=True)
    results = []
    for name in [s.strip() for s in args.systems.split(",") if s.strip()]:
        print(f"profiling SO3LR on {name} ...", flush=True)
        results.append(profile_system(name, args.dtype, args.repeats))
        with open(os.path.join(out_dir, "profile.json"), "w") as f:
            json.dump(dict(meta=meta, results=results), f, indent=1, default=str)
        with open(os.path.join(out_dir, "profile.md"), "w") as f:
            f.write(_md(results, meta) + "\n")
    print(f"wrote {out_dir}/profile.md and profile.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
