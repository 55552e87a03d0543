"""Per-op times of SO3LR energy+forces on JAX 0.4.x with the classic XLA:CPU runtime (the chemtrain environment),
where ``jax.profiler.ProfileData`` (used by ``benchmarks.profile``) does not exist.

    XLA_FLAGS=--xla_cpu_enable_xprof_traceme python -m benchmarks.profile_classic --system bb [--out DIR]

The flag makes the compiled program emit one trace event per executed HLO instruction; a ``jax.profiler`` trace is
written as a Perfetto JSON and summed per instruction, then by kind: ``call`` (a fusion the runtime splits into
tasks for its thread pool), ``custom-call`` (``__onednn$matmul``: a dot through oneDNN), ``dot`` (a dot through
Eigen), ``while`` (a loop, e.g. a scatter), and single-threaded fusions. For large systems every loop iteration is
traced and the trace outgrows memory; use it on molecules. Prints the table and writes ``profile_classic-<system>.txt``
into ``--out`` when given.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import tempfile
import time

TRACEME = "--xla_cpu_enable_xprof_traceme"


def _hlo_index(text: str) -> dict:
    """{instruction name: (shape, custom-call target, called computation, op_name)} of optimised HLO text."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\([^)]*\)|\S+) ", line)
        if not m:
            continue
        target = re.search(r'custom_call_target="([^"]*)"', line)
        called = re.search(r"to_apply=%?([\w.\-]+)", line)
        op = re.search(r'op_name="([^"]*)"', line)
        out[m.group(1)] = (m.group(2), target.group(1) if target else "", called.group(1) if called else "",
                           op.group(1) if op else "")  # fmt: skip
    return out


def _lookup(hlo: dict, name: str) -> tuple:
    return hlo.get(name) or hlo.get(name.removesuffix(".clone")) or ("", "", "", "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--system", default="bb")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--out")
    args = p.parse_args(argv)
    if TRACEME not in os.environ.get("XLA_FLAGS", ""):
        p.error(f"set XLA_FLAGS={TRACEME} (with any other flags) before running")

    import jax

    from benchmarks import jax_models
    from benchmarks.systems import build_system

    m = jax_models.build("so3lr", build_system(args.system), "float32")
    ef = jax.jit(jax.value_and_grad(lambda prm, r, nb: m.energy(prm, r, **nb), argnums=1))
    compiled = ef.lower(m.params, m.position, m.neighbors).compile()

    def call():
        return jax.block_until_ready(compiled(m.params, m.position, m.neighbors))

    for _ in range(5):
        call()
    times = []
    for _ in range(10):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(args.repeats):
                call()
        trace = json.load(gzip.open(glob.glob(os.path.join(d, "**", "perfetto_trace.json.gz"), recursive=True)[0]))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    per_op = collections.defaultdict(float)
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith("$") and "::" not in e["name"] and "Pjit" not in e["name"]:
            per_op[e["name"]] += e.get("dur", 0) * 1e-3 / args.repeats  # µs → ms per call
    hlo = _hlo_index(compiled.as_text())
    kinds = collections.defaultdict(float)
    for name, ms in per_op.items():
        shape, target, called, _ = _lookup(hlo, name)
        kind = re.sub(r"[.\d]+$", "", name.removesuffix(".clone"))
        kinds[kind + (f" ({target})" if target else "")] += ms
    lines = [f"JAX {jax.__version__}, {args.system}, XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}, load "
             f"{os.getloadavg()[0]:.2f}; median of 10 calls without tracing {1e3 * statistics.median(times):.2f} ms; "
             f"traced ops sum to {sum(per_op.values()):.2f} ms per call (both threads)", "", "by kind (ms per call):"]
    lines += [f"  {ms:8.3f}  {k}" for k, ms in sorted(kinds.items(), key=lambda kv: -kv[1]) if ms >= 0.01]
    lines += ["", f"top {args.top} instructions (ms per call, shape, custom-call target or called computation, op):"]
    for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[: args.top]:
        shape, target, called, op = _lookup(hlo, name)
        lines.append(f"  {ms:8.3f}  {name:24s} {shape:22s} {target or called:40s} {op[-80:]}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"profile_classic-{args.system}.txt"), "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
