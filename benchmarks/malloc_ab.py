"""glibc malloc settings compared: SO3LR energy+forces time and peak memory, one process per system and setting,
settings alternating.

    python -m benchmarks.malloc_ab [--systems dha,bb,water-1536] [--big water-12288] [--rounds 2] [--calls 12]
        [--settings heap,heap-cap,default]

Settings (each a complete set of the variables; everything else inherited):

* ``heap``: one arena, never trimmed, every allocation from the heap (``MALLOC_MMAP_THRESHOLD_`` 32 GiB): the
  setting before 2026-12-07.
* ``heap-cap``: as ``heap``, but blocks above 1/8 of physical memory get a mapping of their own
  (``cpu_tuning.mmap_threshold``).
* ``heap+thp``: ``heap-cap`` with transparent huge pages asked of glibc (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``).
* ``thp-arenas``: ``heap+thp`` without ``MALLOC_ARENA_MAX=1`` (glibc's arenas per thread).
* ``default``: glibc's defaults.

Each worker builds SO3LR on one system (float32, lists outside the timing), compiles energy+forces (serial loops as
the ASE calculator compiles it), calls it ``--calls`` times after a first call, and reports the median, min and max
and the process's peak resident memory (``getrusage``). Systems in ``--big`` run one round only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

from benchmarks.procs import ROOT, json_worker, write_rows

MALLOC_VARS = ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def settings(names) -> dict[str, dict[str, str]]:
    from so3krates_hk.cpu_tuning import mmap_threshold

    heap = {"MALLOC_ARENA_MAX": "1", "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30),
            "MALLOC_MMAP_THRESHOLD_": str(32 * 2**30)}  # fmt: skip
    capped = dict(heap, MALLOC_MMAP_THRESHOLD_=str(mmap_threshold()))
    thp = dict(capped, GLIBC_TUNABLES="glibc.malloc.hugetlb=1")
    arenas = {k: v for k, v in thp.items() if k != "MALLOC_ARENA_MAX"}
    variants = {"heap": heap, "heap-cap": capped, "heap+thp": thp, "thp-arenas": arenas, "default": {}}
    return {k: variants[k] for k in names}


def worker(system: str, calls: int) -> dict:
    import jax

    from benchmarks import jax_models
    from benchmarks.systems import build_system
    from so3krates_hk.cpu_tuning import serial_loops

    m = jax_models.build("so3lr", build_system(system), "float32")
    ef = jax.jit(jax.value_and_grad(lambda p, r, nb: m.energy(p, r, **nb), argnums=1))
    args = (m.params, m.position, m.neighbors)
    with serial_loops(len(m.position)):
        c = ef.lower(*args).compile()
    t = time.perf_counter()
    jax.block_until_ready(c(*args))
    first = time.perf_counter() - t
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        jax.block_until_ready(c(*args))
        ts.append(time.perf_counter() - t)
    return dict(system=system, jax=jax.__version__, first_s=first, median_ms=1e3 * statistics.median(ts),
                min_ms=1e3 * min(ts), max_ms=1e3 * max(ts), peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                load=os.getloadavg()[0])  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", default="dha,bb,water-1536")
    p.add_argument("--big", default="water-12288")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=12)
    p.add_argument("--settings", default="heap,heap-cap,default")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, a.calls)), flush=True)
        return 0
    variants = settings(a.settings.split(","))
    base = {k: v for k, v in os.environ.items() if k not in MALLOC_VARS}
    base["SO3KRATES_HK_MALLOC_TUNING"] = "0"  # the variables come from here only
    base["PYTHONPATH"] = os.pathsep.join(x for x in (ROOT, base.get("PYTHONPATH", "")) if x)
    jobs = [(r, s) for r in range(a.rounds) for s in a.systems.split(",") if s]
    jobs += [(0, s) for s in a.big.split(",") if s]
    rows = []
    for r, system in jobs:
        for name, env in variants.items():
            t = time.perf_counter()
            status, row = json_worker("benchmarks.malloc_ab", ["--worker", system, "--calls", str(a.calls)],
                                      {**base, **env}, check=False)  # fmt: skip
            if row is None:
                row = dict(system=system, status=f"exit {status}", peak_rss_gb=None)
            row.update(round=r + 1, setting=name, wall_s=time.perf_counter() - t, env=env)
            rows.append(row)
            if "median_ms" in row:
                print(f"round {r + 1} {system:12s} {name:9s} JAX {row['jax']}: {row['median_ms']:9.1f} ms "
                      f"({row['min_ms']:.1f}-{row['max_ms']:.1f}), first call {row['first_s']:.1f} s, peak "
                      f"{row['peak_rss_gb']:.1f} GB, load {row['load']:.2f}", flush=True)  # fmt: skip
            else:
                print(f"round {r + 1} {system:12s} {name:9s}: {row['status']} (-9: killed, out of memory)", flush=True)
    write_rows(a.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
