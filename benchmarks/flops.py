"""FLOPs of one SO3LR energy+forces call, counted from the program, and the rate it runs at on this CPU.

    python -m benchmarks.flops [SYSTEM ...] [--calls 20] [--out FILE]     (default: dha bb water-1536)

Counting. The energy+forces function is lowered (``jax.jit(...).lower``) with one segment over the whole pair axis,
and every ``dot_general`` of the StableHLO module is counted, 2 × (output size) × (contracted size), through every
function call (a function called k times counts k times). This is what XLA receives: the backward pass and, on
jaxlib 0.4.x, the per-pair terms recomputed in it are already explicit there, and XLA neither adds nor removes
products. Products with a leading axis of the short-range pair capacity H are *per pair*; the program that runs
evaluates the pair axis in segments and skips the tail segment while no real pair lies in it (``layers.segments``),
so the per-pair count is scaled by the slots actually computed (the first segment when the real pairs fit in it,
else all H). The per-pair count is checked against the count by hand from the parameter shapes: per pair and layer,
both filter networks of both families forward, and once more backward (the input gradient of each product has the
same size; the weights get no gradient in an energy+forces call).

Rate. The same process times the energy+forces program (compiled as the ASE calculator compiles it: serial loops up
to 512 atoms on jaxlib 0.4.x) and a large float32 matrix product (2048 × 2048 × 2048, ``jnp.dot`` under ``jit``),
whose rate is the practical matrix-product peak of this CPU under this XLA. Only products are counted: element-wise
work, gathers, scatters and transcendental functions are not, so the rate is a lower bound of the work done.
Float32; run with the tuned malloc settings.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import re
import statistics
import time

_FUNC = re.compile(r"\s*func\.func (?:public |private )?@([\w.\-]+)\(")
_TENSOR = re.compile(r"tensor<([0-9x]+)x(?:f16|bf16|f32|f64)>")
_CONTRACT = re.compile(r"contracting_dims = \[([0-9, ]*)\] x")
_CALL = re.compile(r"call @([\w.\-]+)")


def dot_flops(stablehlo: str) -> tuple[collections.Counter, collections.Counter]:
    """FLOPs of every ``dot_general`` reachable from ``main``, by the output's leading dimension; and the control-flow
    ops met (``case``/``if``/``while`` regions are counted once, so the caller should avoid them)."""
    funcs: dict[str, dict] = {}
    name = None
    for line in stablehlo.splitlines():
        m = _FUNC.match(line)
        if m:
            name = m.group(1)
            funcs[name] = {"dots": collections.Counter(), "calls": collections.Counter(), "ctrl": collections.Counter()}
            continue
        if name is None:
            continue
        f = funcs[name]
        if "stablehlo.dot_general" in line:
            types = _TENSOR.findall(line)
            lhs, out = [int(x) for x in types[0].split("x")], [int(x) for x in types[-1].split("x")]
            c = _CONTRACT.search(line)
            contracted = [int(x) for x in c.group(1).split(",") if x.strip()] if c else []
            f["dots"][out[0]] += 2 * math.prod(out) * math.prod(lhs[i] for i in contracted)
        for callee in _CALL.findall(line):
            f["calls"][callee] += 1
        for op in ("stablehlo.case", "stablehlo.if", "stablehlo.while"):
            f["ctrl"][op] += op in line
    memo: dict[str, tuple] = {}

    def total(fn: str) -> tuple[collections.Counter, collections.Counter]:
        if fn not in memo:
            dots, ctrl = collections.Counter(funcs[fn]["dots"]), collections.Counter(funcs[fn]["ctrl"])
            for callee, n in funcs[fn]["calls"].items():
                d, c = total(callee)
                for k, v in d.items():
                    dots[k] += n * v
                for k, v in c.items():
                    ctrl[k] += n * v
            memo[fn] = (dots, ctrl)
        return memo[fn]

    return total("main")


def filter_flops_by_hand(params: dict) -> int:
    """Matrix-product FLOPs per pair and interaction layer of the filter networks, forward and backward: 2 × 2 × Σ
    (fan_in × fan_out) over the radial and spherical filters of both families."""
    layers = {k.split("/")[1] for k in params if "/layers_" in k}
    macs = sum(math.prod(v["w"].shape) for k, v in params.items() if "layers_0/attention_block/" in k and "filter" in k)
    return len(layers) * 2 * 2 * macs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("systems", nargs="*", default=["dha", "bb", "water-1536"])
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np

    import so3krates_hk.factory as factory
    from benchmarks import jax_models
    from benchmarks.systems import build_system
    from so3krates_hk.cpu_tuning import serial_loops
    from so3krates_hk.layers import segments

    lines = [f"JAX {jax.__version__}, {os.cpu_count()} CPUs, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
             f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX')}, float32, load {os.getloadavg()[0]:.2f}"]  # fmt: skip

    def say(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    say(lines[0])
    n = 2048
    x = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    gemm = jax.jit(jnp.dot).lower(x, x).compile()
    jax.block_until_ready(gemm(x, x))
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        jax.block_until_ready(gemm(x, x))
        ts.append(time.perf_counter() - t)
    peak = 2 * n**3 / statistics.median(ts) / 1e9
    say(f"matrix product {n}^3, float32: {peak:.0f} GFLOP/s (median of 10; best {2 * n**3 / min(ts) / 1e9:.0f})")

    for name in a.systems:
        system = build_system(name)
        min_pairs = segments.MIN_SEGMENTED_PAIRS
        segments.MIN_SEGMENTED_PAIRS = 10**12  # one segment: no conditional in the program to count
        try:
            m1 = jax_models.build("so3lr", system, "float32")
            ef = jax.value_and_grad(lambda p, r, nb, m=m1: m.energy(p, r, **nb), argnums=1)
            dots, ctrl = dot_flops(jax.jit(ef).lower(m1.params, m1.position, m1.neighbors).as_text())
        finally:
            segments.MIN_SEGMENTED_PAIRS = min_pairs
        if any(ctrl.values()):
            raise RuntimeError(f"control flow in the one-segment program, counted once only: {dict(ctrl)}")
        H = factory._pair_capacity(m1.max_edges)
        real = int(m1.count_edges(m1.position, **m1.neighbors)) // 2
        bounds = segments.segment_bounds(H)
        computed = next(b for b in bounds[1:] if b >= real)
        per_pair = dots.pop(H, 0)
        other = sum(dots.values())
        hand = filter_flops_by_hand(m1.params) * H
        run_flops = per_pair * computed / H + other

        m = jax_models.build("so3lr", system, "float32")  # as it runs: segments on
        ef = jax.jit(jax.value_and_grad(lambda p, r, nb, m=m: m.energy(p, r, **nb), argnums=1))
        args = (m.params, m.position, m.neighbors)
        with serial_loops(len(m.position)):
            c = ef.lower(*args).compile()
        jax.block_until_ready(c(*args))
        ts = []
        for _ in range(a.calls):
            t = time.perf_counter()
            jax.block_until_ready(c(*args))
            ts.append(time.perf_counter() - t)
        med = statistics.median(ts)
        rate = run_flops / med / 1e9
        say(f"{name}: N {len(m.position)}, short-range pairs {real} real in H = {H} slots, {computed} computed "
            f"(segments {bounds}); products per call: {per_pair / 1e9:.3f} GFLOP on the pair axis (filter networks by "
            f"hand: {hand / 1e9:.3f}) + {other / 1e9:.3f} other = {run_flops / 1e9:.3f} GFLOP run; e+f "
            f"{1e3 * med:.2f} ms (median of {a.calls}, {1e3 * min(ts):.2f}-{1e3 * max(ts):.2f}) -> {rate:.0f} GFLOP/s "
            f"of products, {100 * rate / peak:.0f} % of the large product's rate; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
