"""Data-set evaluation and committees: ``so3krates_hk.evaluate`` (packed batches) against looping the ASE calculator.

    eval "$(python -m so3krates_hk.cpu_tuning)"          # the malloc settings the CLI uses
    python -m benchmarks.eval_bench                       # bundled aspirin set, float32 and float64
    python -m benchmarks.eval_bench --frames 64 --dtypes float32 --out /tmp/eval-bench

Everything runs in one process, one after another, so the ratios are same-run ratios (the machine may be shared;
the absolute times are noisy; the load average is recorded before each measurement). For each dtype:

* ``ase_loop``: ``atoms.calc = SO3LRCalculator(dtype)``; energy and forces of every frame in a Python loop (the
  usual way). Cold (first pass, compilation included) and warm (the fastest of ``--repeats`` further passes)
  seconds. The warm passes also time the calculator's jitted energy+forces call alone (``compute_s``, inputs ready,
  result awaited); the rest (``host_s``: validation, neighbour-list update, Python, transfers) is per-call overhead.
  ``bound = warm_s / compute_s`` caps what batching can gain over the loop *if* batching does not make the model
  itself cheaper per structure (it removes only the overhead).
* ``eval_<batch_atoms>``: ``evaluate(frames, evaluator=…)`` cold (new Evaluator: compilation included) and warm
  (the same Evaluator again, fastest of ``--repeats``); with the number of compilations and the split of the warm
  time into host-side preparation (validation, pair lists: ``prepare_s``) and the batched model calls
  (``predict_s``).
* ``committee``: 4 members (the shipped weights with their energy offsets perturbed), warm: one batched committee
  call (``Evaluator`` with 4 members; ``SO3LRCalculator(params=[…4…])``) against 4 separate calls of one model
  (``Evaluator`` programs with each member's params; 4 calculators) over the same frames.

Results: ``results.json`` and ``results.md`` in ``--out`` (default ``benchmarks/results/eval-<date>/``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
import warnings


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ase_loop(calc, subset) -> None:
    for a in subset:
        b = a.copy()
        b.calc = calc
        b.get_potential_energy()
        b.get_forces()


def fmt(load) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="structure file (default: the bundled aspirin_gfn2.xyz)")
    parser.add_argument("--frames", type=int, default=None, help="use the first FRAMES frames (default: all)")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated")
    parser.add_argument("--batch-atoms", default="384,1536", help="comma-separated batch_atoms values")
    parser.add_argument("--committee-frames", type=int, default=32,
                        help="frames for the committee comparison (0: none)")
    parser.add_argument("--out", default=None, help="output directory")
    parser.add_argument("--committee-only", action="store_true", help="only the committee comparison")
    parser.add_argument("--repeats", type=int, default=3, help="warm passes; the fastest counts")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import ase.io
    import jax

    from so3krates_hk.ase import SO3LRCalculator
    from so3krates_hk.evaluate import Evaluator, evaluate

    data = args.data or os.path.join(os.path.dirname(__file__), "..", "so3krates_hk", "data", "finetune",
                                     "aspirin_gfn2.xyz")  # fmt: skip
    frames = ase.io.read(data, ":" if args.frames is None else f":{args.frames}")
    out_dir = args.out or os.path.join(os.path.dirname(__file__), "results", f"eval-{datetime.date.today()}")
    os.makedirs(out_dir, exist_ok=True)
    record = dict(data=os.path.basename(data), frames=len(frames), atoms=sorted({len(a) for a in frames}),
                  jax=jax.__version__, device=str(jax.devices()[0]), platform=platform.platform(),
                  malloc_tuned=os.environ.get("MALLOC_ARENA_MAX") == "1", load_start=os.getloadavg(),
                  date=datetime.datetime.now().isoformat(timespec="seconds"), runs=[])  # fmt: skip

    def instrument(calc):
        """Time the calculator's jitted calls (result awaited) into ``spent[0]``."""
        spent = [0.0]
        build = calc._evaluator

        def timed_evaluator(*key):
            fn = build(*key)

            def timed(*a):
                t = time.perf_counter()
                out = jax.block_until_ready(fn(*a))
                spent[0] += time.perf_counter() - t
                return out

            return timed

        calc._evaluator = timed_evaluator
        return spent

    for dtype in [] if args.committee_only else args.dtypes.split(","):
        calc = SO3LRCalculator(dtype=dtype)
        load = os.getloadavg()[0]
        cold, _ = _timed(lambda: ase_loop(calc, frames))
        spent = instrument(calc)
        passes = []
        for _ in range(args.repeats):
            spent[0] = 0.0
            passes.append((_timed(lambda: ase_loop(calc, frames))[0], spent[0]))
        warm, compute = min(passes)
        base = dict(dtype=dtype, method="ase_loop", load=load, cold_s=cold, warm_s=warm, compute_s=compute,
                    host_s=warm - compute, bound=warm / compute, warm_structures_per_s=len(frames) / warm,
                    compilations=calc.num_compilations)  # fmt: skip
        record["runs"].append(base)
        print(json.dumps(base), flush=True)
        for batch_atoms in (int(b) for b in args.batch_atoms.split(",")):
            load = os.getloadavg()[0]
            ev = Evaluator(dtype=dtype)
            cold, r = _timed(lambda: evaluate(frames, evaluator=ev, batch_atoms=batch_atoms))
            passes = []
            for _ in range(args.repeats):
                t_prep, prepared = _timed(lambda: [ev.prepare(a) for a in frames])
                t_pred, _ = _timed(lambda: ev.predict(prepared, batch_atoms=batch_atoms))
                passes.append((t_prep + t_pred, t_prep, t_pred))
            warm, t_prep, t_pred = min(passes)
            row = dict(dtype=dtype, method=f"eval_{batch_atoms}", load=load, cold_s=cold, warm_s=warm,
                       prepare_s=t_prep, predict_s=t_pred, warm_structures_per_s=len(frames) / warm,
                       compilations=r.num_compilations, batches=r.batches, capacity=r.capacity,
                       speedup_warm_vs_ase=base["warm_s"] / warm, speedup_cold_vs_ase=base["cold_s"] / cold)  # fmt: skip
            record["runs"].append(row)
            print(json.dumps(row), flush=True)

    record["load_end"] = os.getloadavg()
    if args.committee_frames > 0:
        committee_runs(args, frames, record)
    record["load_end"] = os.getloadavg()
    write(record, out_dir)
    return 0


def committee_runs(args, frames, record) -> None:
    """A committee of 4 against 4 separate calls (warm), the first dtype."""
    import jax
    import numpy as np

    from so3krates_hk import pretrained
    from so3krates_hk.ase import SO3LRCalculator
    from so3krates_hk.evaluate import Evaluator

    dtype = args.dtypes.split(",")[0]
    subset = frames[: args.committee_frames]
    base_params, _ = pretrained.so3lr()
    members = []
    for m in range(4):
        p = jax.tree_util.tree_map(np.array, base_params)
        p["energy_head"]["energy_offset"] = p["energy_head"]["energy_offset"] + 0.01 * m
        members.append(p)
    single = Evaluator(dtype=dtype)
    committee = Evaluator(members, dtype=dtype)
    prepared = [single.prepare(a) for a in subset]

    def separate():
        for p in members:
            single.params = jax.tree_util.tree_map(lambda x: jax.numpy.asarray(x, single.dtype), p)
            single.predict(prepared)

    separate()
    committee.predict(prepared)
    t_sep, _ = _timed(separate)
    t_com, _ = _timed(lambda: committee.predict(prepared))
    row = dict(dtype=dtype, method="committee4_eval", frames=len(subset), separate_4_s=t_sep, committee_s=t_com,
               ratio_committee_over_separate=t_com / t_sep)  # fmt: skip
    record["runs"].append(row)
    print(json.dumps(row), flush=True)
    calcs = [SO3LRCalculator(params=p, dtype=dtype) for p in members]
    ccalc = SO3LRCalculator(params=members, dtype=dtype)
    for c in calcs + [ccalc]:
        ase_loop(c, subset[:2])
    t_sep, _ = _timed(lambda: [ase_loop(c, subset) for c in calcs])
    t_com, _ = _timed(lambda: ase_loop(ccalc, subset))
    row = dict(dtype=dtype, method="committee4_ase", frames=len(subset), separate_4_s=t_sep, committee_s=t_com,
               ratio_committee_over_separate=t_com / t_sep)  # fmt: skip
    record["runs"].append(row)
    print(json.dumps(row), flush=True)


def write(record: dict, out_dir: str) -> None:
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(record, f, indent=1)
    lines = [f"# Data-set evaluation, {record['data']} ({record['frames']} frames, {record['atoms']} atoms)", "",
             f"{record['device']}, JAX {record['jax']}, malloc tuned: {record['malloc_tuned']}, load average "
             f"(1, 5, 15 min) {fmt(record['load_start'])} at the start, {fmt(record['load_end'])} at the end. "
             "Same-process, same-run ratios; per row the 1-minute load before it.", "",
             "| dtype | method | load | compilations | cold s | warm s | warm structures/s | × ASE loop (warm) | "
             "× (cold) |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in record["runs"]:
        if r["method"].startswith("committee"):
            continue
        lines.append(f"| {r['dtype']} | {r['method']} | {r['load']:.1f} | {r['compilations']} | {r['cold_s']:.2f} | "
                     f"{r['warm_s']:.2f} | {r['warm_structures_per_s']:.1f} | "
                     f"{r.get('speedup_warm_vs_ase', 1.0):.2f} | {r.get('speedup_cold_vs_ase', 1.0):.2f} |")  # fmt: skip
    lines += ["", "Where the warm time goes, ms per structure (ASE loop: the jitted call vs the rest; eval: host-side "
              "preparation vs the batched model calls). bound = loop time / its jitted compute.", "",
              "| dtype | method | total | compute (jitted) | host | bound |", "|---|---|---|---|---|---|"]  # fmt: skip
    n = record["frames"]
    for r in record["runs"]:
        if r["method"] == "ase_loop":
            lines.append(f"| {r['dtype']} | ase_loop | {1e3 * r['warm_s'] / n:.2f} | {1e3 * r['compute_s'] / n:.2f} | "
                         f"{1e3 * r['host_s'] / n:.2f} | {r['bound']:.2f}× |")  # fmt: skip
        elif r["method"].startswith("eval"):
            lines.append(f"| {r['dtype']} | {r['method']} | {1e3 * r['warm_s'] / n:.2f} | "
                         f"{1e3 * r['predict_s'] / n:.2f} | {1e3 * r['prepare_s'] / n:.2f} | |")  # fmt: skip
    lines += ["", "| committee of 4 | frames | 4 separate calls, s | one committee call, s | ratio |",
              "|---|---|---|---|---|"]
    for r in record["runs"]:
        if r["method"].startswith("committee"):
            lines.append(f"| {r['method']} ({r['dtype']}) | {r['frames']} | {r['separate_4_s']:.2f} | "
                         f"{r['committee_s']:.2f} | {r['ratio_committee_over_separate']:.2f} |")  # fmt: skip
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
