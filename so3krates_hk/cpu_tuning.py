"""glibc malloc settings that make XLA:CPU programs of this size markedly faster.

XLA:CPU allocates its buffers afresh on every call. With glibc's defaults, allocations of tens of MB are served by
``mmap`` and returned with ``munmap``, and the worker threads get arenas of their own, so each call page-faults its
whole working set in again: on the project's 2-core CPU a third of SO3LR's wall time went to the kernel
(``sys`` time) and element-wise kernels ran ~10× below their stand-alone speed. Keeping the memory in one arena
that is never trimmed removes that (measured with ``benchmarks/``, JAX 0.10.2, float32, same run: bb 82 → 47 ms,
water-1536 1.41 → 0.94 s per energy+forces call). Blocks larger than 1/8 of physical memory (:func:`mmap_threshold`)
are mapped per call instead, with transparent huge pages, so that a large system cannot double its memory in the
heap (``benchmarks/malloc_ab.py``).

The variables must be set before the process starts; a library cannot change them afterwards (``mallopt`` at run
time was measured and does not give the same effect). So:

* ``so3krates-hk`` (the command line) re-executes itself once with them when they are not set
  (opt out with ``SO3KRATES_HK_MALLOC_TUNING=0``);
* the benchmark gives them to every worker process, ours and the baselines alike, and records them;
* in your own scripts, export them in the shell: ``eval "$(python -m so3krates_hk.cpu_tuning)"``.

They cost resident memory (freed memory stays with the process) and have no effect on GPU kernels.

XLA:CPU flags per jaxlib version (the classic runtime of jaxlib 0.4.32 … 0.4.x, no YNNPACK fusions on jaxlib 0.8.1 …
0.10.x): see :mod:`so3krates_hk._cpu_runtime` (importing ``so3krates_hk``, ``tuned_env`` and ``main`` add them
where they apply).

Small structures on that runtime: :func:`serial_loops` compiles programs whose element-wise loops stay on the
calling thread. The ASE calculator, the MD driver and ``evaluate`` use it for structures of up to
:data:`SERIAL_LOOPS_MAX_ATOMS` atoms; wrap your own first call (or ``jax.jit(...).lower(...).compile()``) in it::

    with so3krates_hk.cpu_tuning.serial_loops(num_atoms):
        energy_and_forces(params, position, neighbors)  # compiles here
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Optional, Sequence

from so3krates_hk._cpu_runtime import (  # noqa: F401  (serial_loops and its limit are public here)
    CLASSIC_RUNTIME_FLAG,
    NO_YNN_FLAG,
    SERIAL_LOOPS_MAX_ATOMS,
    SERIAL_LOOPS_OPT_OUT,
    apply_cpu_flags,
    serial_loops,
    serial_loops_apply,
    wants_classic_runtime,
    xla_flags,
)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
        return 64 * 2**30


def mmap_threshold(physical_memory: Optional[int] = None) -> int:
    """Blocks above this many bytes get a mapping of their own: 1/8 of physical memory, within [256 MiB, 32 GiB].

    Below it, blocks come from the one heap and are reused call after call (the speed-up). Above it, a block is
    mapped and unmapped per call: a heap that holds program-sized blocks can need twice the program's memory, when
    one call's small allocations land in the hole the last call's largest block left (water-12 288 on JAX 0.10.2:
    22.4 GB against 11.7 GB untuned, and the 24 GB machine ran out of memory in MD)."""
    m = _physical_memory() if physical_memory is None else physical_memory
    return int(min(max(m // 8, 256 * 2**20), 32 * 2**30))


MALLOC_ENV: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",  # one arena: XLA's threads reuse the same free memory
    "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30),  # never give the top of the heap back to the OS
    "MALLOC_MMAP_THRESHOLD_": str(mmap_threshold()),  # blocks up to 1/8 of the memory from the heap, larger mapped
    "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",  # transparent huge pages: a mapped block faults in 2 MB at a time
}
OPT_OUT = "SO3KRATES_HK_MALLOC_TUNING"


def tuned_env(base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with :data:`MALLOC_ENV` added where the caller has not set the variable
    (``GLIBC_TUNABLES`` of the caller's own get the huge-page tunable appended, unless they set it)."""
    env = dict(os.environ if base is None else base)
    own = env.get("GLIBC_TUNABLES")
    if own and "glibc.malloc.hugetlb" not in own:  # the caller's tunables, and ours besides
        env["GLIBC_TUNABLES"] = f"{own}:{MALLOC_ENV['GLIBC_TUNABLES']}"
    for k, v in MALLOC_ENV.items():
        env.setdefault(k, v)
    apply_cpu_flags(env)
    return env


def is_tuned(env: Optional[Mapping[str, str]] = None) -> bool:
    env = os.environ if env is None else env
    return all(k in env for k in MALLOC_ENV)


def reexec_tuned(argv: Sequence[str]) -> None:
    """Replace this process by itself with the malloc settings, unless they are set, opted out of, or not glibc."""
    if is_tuned() or os.environ.get(OPT_OUT, "1") == "0" or not sys.platform.startswith("linux"):
        return
    env = tuned_env()
    env[OPT_OUT] = env.get(OPT_OUT, "1")
    try:
        os.execve(sys.executable, [sys.executable, *argv], env)
    except OSError:  # pragma: no cover - keep going untuned rather than fail
        return


def main() -> int:
    """Print ``export`` lines for the shell."""
    for k, v in MALLOC_ENV.items():
        print(f"export {k}={v}")
    flags = os.environ.get("XLA_FLAGS", "")  # importing so3krates_hk added the flags this jaxlib wants
    if any(f in flags.split() for f in (CLASSIC_RUNTIME_FLAG, NO_YNN_FLAG)):
        print(f"export XLA_FLAGS='{flags}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
