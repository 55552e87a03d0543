"""The XLA:CPU runtime of jaxlib 0.4.32 … 0.4.x.

From jaxlib 0.4.32 to the last 0.4 release (0.4.37, the chemtrain environment) XLA:CPU runs programs through its
"thunk" runtime by default. That runtime executes a ``while`` loop one iteration at a time through its thunk
executor, and on CPU XLA turns every scatter (each segment sum, and the gradient of each gather) into such a loop
with one iteration per index. SO3LR's energy+forces on 1536 atoms of water holds 54 of them (37 050 to 759 440
iterations each). Measured in one process on a loaded 2-core machine (``benchmarks/xla_cpu_runtime.py``, fastest
of 11 calls): a segment sum of 759 440 scalars onto 1536 atoms 97.5 ms with the thunk runtime, 1.7 ms with the
classic one; of (37 050, 128) features 14.2 and 2.6 ms. The older "classic" runtime compiles the loops into the
program, as current XLA does for scatters anyway, so for those jaxlib versions :func:`apply_cpu_flags` asks
for it (``--xla_cpu_use_thunk_runtime=false`` in ``XLA_FLAGS``). The numbers are identical; only the speed differs:
SO3LR energy+forces on 1536 atoms of water 1.38× faster, on a 148-atom molecule 1.11×, on a 56-atom one 0.87×
(``benchmarks/results/samerun-quieter-cpu-2026-12-02``).
XLA reads ``XLA_FLAGS`` once, when the first computation starts the backend: importing ``so3krates_hk`` calls
:func:`apply_cpu_flags` before that (opt out with ``SO3KRATES_HK_CLASSIC_CPU_RUNTIME=0``); where JAX has
already run something, set the flag in the shell (``python -m so3krates_hk.cpu_tuning`` prints it).

Serial loops for small structures (:func:`serial_loops`). When the classic runtime compiles a program, it splits
every large-enough element-wise loop into tasks for its thread pool, as many as the CPUs the *compiling thread* may
run on. On programs of a few hundred small kernels the hand-offs between threads cost more than the second core
gives. Compiled while the calling thread is limited to one CPU, the same program runs those loops on the calling
thread (matrix products still use the pool); numbers are identical. Measured in one process, JAX 0.4.37, 2-core AMD
EPYC, float32, tuned malloc, energy+forces (``benchmarks/results/serial-loops-cpu-2026-12-06-jax0.4.37``): 1.20×
on a 56-atom molecule, 1.06× on 148 atoms, 1.24×, 1.16× and 1.06× on CG chains of 100, 300 and 1000 beads, 0.89×
on 1536 atoms of water. Hence :data:`SERIAL_LOOPS_MAX_ATOMS`.

YNNPACK fusions, jaxlib 0.8.1 … 0.10.x. These versions hand matrix products, element-wise kernels and reductions to
YNNPACK. For this model's per-pair work that is slower than XLA's own code: the sum over a head's block of
q_i ⊙ w_ij ⊙ k_j on 30 384 pairs × 128 features took 2.9 ms through YNNPACK and 1.2–1.4 ms without (JAX 0.10.2,
one process); energy+forces ran 1.18× faster without YNNPACK on SO3LR water-1536 and on a 1000-bead CG box, and
0.96–1.03× (within the spread) on 56- and 148-atom molecules and a 100-bead chain
(``benchmarks/results/ynn-ab-cpu-2026-12-07``).
So :data:`NO_YNN_FLAG` is added to ``XLA_FLAGS`` for those versions (opt out with ``SO3KRATES_HK_YNN_FUSIONS=1``;
a ``--xla_cpu_experimental_ynn_fusion_type`` of the caller's own is kept). The flag exists in jaxlib 0.8.1 to 0.10.2;
later versions are left alone until measured, since XLA stops on a flag it does not know.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Iterator, Optional

CLASSIC_RUNTIME_FLAG = "--xla_cpu_use_thunk_runtime=false"
CLASSIC_RUNTIME_OPT_OUT = "SO3KRATES_HK_CLASSIC_CPU_RUNTIME"
NO_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
YNN_OPT_OUT = "SO3KRATES_HK_YNN_FUSIONS"


def _version_tuple(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        out.append(int(digits) if digits else 0)
    return tuple(out)


@functools.lru_cache(maxsize=None)
def jaxlib_version() -> Optional[str]:
    """The installed jaxlib's version, without importing it (None if jaxlib is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return None


def jaxlib_before(bound: tuple[int, ...], version: Optional[str] = None) -> bool:
    """True when jaxlib is installed and older than ``bound`` (e.g. ``(0, 5, 0)``)."""
    version = jaxlib_version() if version is None else version
    return version is not None and _version_tuple(version) < bound


def wants_classic_runtime(version: Optional[str] = None) -> bool:
    """True for jaxlib 0.4.32 … 0.4.x, whose default XLA:CPU runtime runs scatters as interpreted loops."""
    version = jaxlib_version() if version is None else version
    return version is not None and (0, 4, 32) <= _version_tuple(version) < (0, 5, 0)


def wants_no_ynn(version: Optional[str] = None) -> bool:
    """True for jaxlib 0.8.1 … 0.10.x, whose XLA:CPU hands kernels to YNNPACK (slower here; module docstring)."""
    version = jaxlib_version() if version is None else version
    return version is not None and (0, 8, 1) <= _version_tuple(version) < (0, 11, 0)


def ynn_fusions_off(environ: Optional[dict] = None, version: Optional[str] = None) -> bool:
    """True when this jaxlib (0.8.1 … 0.10.x) runs without YNNPACK fusions: :data:`NO_YNN_FLAG` in ``XLA_FLAGS``."""
    env = os.environ if environ is None else environ
    return wants_no_ynn(version) and NO_YNN_FLAG in env.get("XLA_FLAGS", "").split()


def xla_flags(base: Optional[str] = None, version: Optional[str] = None, classic: bool = True,
              no_ynn: bool = True) -> Optional[str]:  # fmt: skip
    """``XLA_FLAGS`` with the flags that help this jaxlib added, where the caller has not chosen that setting:
    :data:`CLASSIC_RUNTIME_FLAG` (jaxlib 0.4.32 … 0.4.x, with ``classic``) and :data:`NO_YNN_FLAG` (jaxlib 0.8.1 …
    0.10.x, with ``no_ynn``). None when nothing is to be added."""
    base = base or ""
    added = []
    if classic and wants_classic_runtime(version) and "xla_cpu_use_thunk_runtime" not in base:
        added.append(CLASSIC_RUNTIME_FLAG)
    if no_ynn and wants_no_ynn(version) and "xla_cpu_experimental_ynn_fusion_type" not in base:
        added.append(NO_YNN_FLAG)
    if not added:
        return None
    return " ".join([base, *added]).strip()


def apply_cpu_flags(environ: Optional[dict] = None) -> bool:
    """Add the flags of :func:`xla_flags` to ``XLA_FLAGS`` (``os.environ`` or ``environ``): the classic runtime on
    jaxlib 0.4.32 … 0.4.x unless ``SO3KRATES_HK_CLASSIC_CPU_RUNTIME=0``, no YNNPACK fusions on jaxlib 0.8.1 … 0.10.x
    unless ``SO3KRATES_HK_YNN_FUSIONS=1``. Takes effect only if no JAX computation has run yet in this process.
    Returns True when a flag was added."""
    env = os.environ if environ is None else environ
    flags = xla_flags(env.get("XLA_FLAGS"), classic=env.get(CLASSIC_RUNTIME_OPT_OUT, "1") != "0",
                      no_ynn=env.get(YNN_OPT_OUT, "0") != "1")  # fmt: skip
    if flags is None:
        return False
    env["XLA_FLAGS"] = flags
    return True


SERIAL_LOOPS_MAX_ATOMS = 512
"""Structures up to this many atoms (summed over a batch) compile with serial loops (:func:`serial_loops`)."""
SERIAL_LOOPS_OPT_OUT = "SO3KRATES_HK_SERIAL_LOOPS"


def classic_runtime_active(environ: Optional[dict] = None, version: Optional[str] = None) -> bool:
    """True when XLA:CPU runs programs through its classic runtime: jaxlib before 0.4.32 (unless the thunk runtime
    was asked for), and 0.4.32 … 0.4.x with :data:`CLASSIC_RUNTIME_FLAG` in ``XLA_FLAGS``."""
    env = os.environ if environ is None else environ
    version = jaxlib_version() if version is None else version
    if version is None or _version_tuple(version) >= (0, 5, 0):
        return False
    flags = env.get("XLA_FLAGS", "")
    if _version_tuple(version) < (0, 4, 32):
        return "xla_cpu_use_thunk_runtime=true" not in flags
    return CLASSIC_RUNTIME_FLAG in flags.split()


def serial_loops_apply(num_atoms: Optional[int] = None) -> bool:
    """Whether :func:`serial_loops` changes anything here: classic CPU runtime, a Linux thread affinity with more
    than one CPU, ``num_atoms`` (None: any size) at most :data:`SERIAL_LOOPS_MAX_ATOMS`, and not opted out of
    (``SO3KRATES_HK_SERIAL_LOOPS=0``)."""
    if num_atoms is not None and num_atoms > SERIAL_LOOPS_MAX_ATOMS:
        return False
    if os.environ.get(SERIAL_LOOPS_OPT_OUT, "1") == "0":
        return False
    return _classic_cpu_backend() and len(os.sched_getaffinity(0)) > 1


@functools.lru_cache(maxsize=None)
def _classic_cpu_backend() -> bool:
    """The classic XLA:CPU runtime runs this process's programs, on a platform with thread affinities. Fixed once the
    backend has started (XLA reads ``XLA_FLAGS`` then), so asked once: callers wrap every call."""
    if not hasattr(os, "sched_setaffinity") or not classic_runtime_active():
        return False
    import jax

    return jax.default_backend() == "cpu"


@contextlib.contextmanager
def serial_loops(num_atoms: Optional[int] = None) -> Iterator[bool]:
    """Programs that XLA:CPU's classic runtime compiles inside this block run their element-wise loops on the calling
    thread instead of splitting them over the thread pool (faster on small structures; module docstring).

    It limits the calling thread to one of its CPUs for the duration of the block and restores its affinity after.
    Only compilation looks at it: a program compiled inside keeps its serial loops when called later, and one
    compiled before is unchanged. Calls inside the block run with the calling thread on that one CPU and the pool's
    threads on all of them (measured no slower than outside, so callers may simply wrap every call). Threads
    started inside the block (a library's callback or loader thread) inherit the one CPU while it lasts and get the
    caller's CPUs back when it ends. Does nothing unless :func:`serial_loops_apply` (``num_atoms``: the structure's
    atoms, summed over a batch). Yields whether it applied.
    """
    if not serial_loops_apply(num_atoms):
        yield False
        return
    previous = os.sched_getaffinity(0)
    before = _thread_ids()
    os.sched_setaffinity(0, {min(previous)})
    try:
        yield True
    finally:
        os.sched_setaffinity(0, previous)
        for tid in _thread_ids() - before:  # threads born inside inherited the one CPU
            try:
                os.sched_setaffinity(tid, previous)
            except OSError:  # ended meanwhile (ProcessLookupError), or not ours to change
                pass


def _thread_ids() -> set[int]:
    """The kernel ids of this process's threads (Linux)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()
