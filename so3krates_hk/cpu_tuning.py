"""glibc malloc settings that make XLA:CPU programs of this size markedly faster.

XLA:CPU allocates its buffers afresh on every call. With glibc's defaults, allocations of tens of MB are served by
``mmap`` and returned with ``munmap``, and the worker threads get arenas of their own, so each call page-faults its
whole working set in again: on the project's 2-core CPU a third of SO3LR's wall time went to the kernel
(``sys`` time) and element-wise kernels ran ~10× below their stand-alone speed. Keeping the memory in one arena
that is never trimmed nor unmapped removes that (measured with ``benchmarks/``, JAX 0.10.2, float32, same run:
bb 82 → 47 ms, water-1536 1.41 → 0.94 s per energy+forces call).

The variables must be set before the process starts; a library cannot change them afterwards (``mallopt`` at run
time was measured and does not give the same effect). So:

* ``so3krates-hk`` (the command line) re-executes itself once with them when they are not set
  (opt out with ``SO3KRATES_HK_MALLOC_TUNING=0``);
* the benchmark gives them to every worker process, ours and the baselines alike, and records them;
* in your own scripts, export them in the shell: ``eval "$(python -m so3krates_hk.cpu_tuning)"``.

They cost resident memory (freed memory stays with the process) and have no effect on GPU kernels.

The XLA:CPU runtime of jaxlib 0.4.32 … 0.4.x: see :mod:`so3krates_hk._cpu_runtime` (``tuned_env`` and ``main``
add its flag where it applies).

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
    SERIAL_LOOPS_MAX_ATOMS,
    SERIAL_LOOPS_OPT_OUT,
    prefer_classic_runtime,
    serial_loops,
    serial_loops_apply,
    wants_classic_runtime,
    xla_flags,
)

MALLOC_ENV: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",  # one arena: XLA's threads reuse the same free memory
    "MALLOC_TRIM_THRESHOLD_": str(64 * 2**30),  # never give the top of the heap back to the OS
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**30),  # serve large blocks from the heap, not fresh mmaps
}
OPT_OUT = "SO3KRATES_HK_MALLOC_TUNING"


def tuned_env(base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with :data:`MALLOC_ENV` added where the caller has not set the variable."""
    env = dict(os.environ if base is None else base)
    for k, v in MALLOC_ENV.items():
        env.setdefault(k, v)
    prefer_classic_runtime(env)
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
    flags = xla_flags(os.environ.get("XLA_FLAGS")) or os.environ.get("XLA_FLAGS")
    if wants_classic_runtime() and flags:
        print(f"export XLA_FLAGS='{flags}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
