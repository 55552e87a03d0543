"""The glibc malloc settings (so3krates_hk.cpu_tuning): the threshold rule, and why blocks above it are mapped."""

import os
import subprocess
import sys
import textwrap

import pytest

from so3krates_hk.cpu_tuning import MALLOC_ENV, mmap_threshold, tuned_env

GiB = 2**30


def test_threshold_is_an_eighth_of_the_memory_within_bounds():
    assert mmap_threshold(24 * GiB) == 3 * GiB
    assert mmap_threshold(1 * GiB) == 256 * 2**20  # floor: medium blocks stay in the heap on small machines
    assert mmap_threshold(1024 * GiB) == 32 * GiB
    assert int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]) == mmap_threshold()


def test_tuned_env_keeps_the_callers_own_settings():
    env = tuned_env({"MALLOC_ARENA_MAX": "4", "PATH": "/bin"})
    assert env["MALLOC_ARENA_MAX"] == "4" and env["PATH"] == "/bin"
    assert all(env[k] == v for k, v in MALLOC_ENV.items() if k != "MALLOC_ARENA_MAX")
    assert tuned_env({"GLIBC_TUNABLES": "glibc.cpu.x86_shstk=off"})["GLIBC_TUNABLES"] == (
        "glibc.cpu.x86_shstk=off:glibc.malloc.hugetlb=1"
    )
    assert tuned_env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"


# A block freed in the middle of the heap, a small allocation landing in its hole, the same block asked for again:
# from the heap it no longer fits the hole and the heap grows by a whole block; mapped, it is returned and mapped
# anew. This is the pattern that doubled the memory of large systems (cpu_tuning.mmap_threshold).
PATTERN = textwrap.dedent(
    """
    import ctypes, re
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    B = 128 << 20
    a = libc.malloc(B); ctypes.memset(a, 1, B)
    above = libc.malloc(8 << 20)  # the block is no longer the top of the heap (too big for an older hole)
    libc.free(a)
    small = libc.malloc(1 << 20); ctypes.memset(small, 1, 1 << 20)
    b = libc.malloc(B); ctypes.memset(b, 1, B)
    print(int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) << 10)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings: Linux only")
def test_a_block_above_the_threshold_does_not_double_the_memory():
    def rss(threshold: int) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
        env.update(MALLOC_ARENA_MAX="1", MALLOC_TRIM_THRESHOLD_=str(64 * GiB), MALLOC_MMAP_THRESHOLD_=str(threshold))
        out = subprocess.run([sys.executable, "-c", PATTERN], env=env, capture_output=True, text=True, check=True)
        return int(out.stdout)

    block = 128 * 2**20
    heap, mapped = rss(32 * GiB), rss(64 * 2**20)
    assert heap > mapped + 0.8 * block  # the heap kept the hole and grew by another block
    assert mapped < 1.5 * block + 64 * 2**20  # one block resident (plus the interpreter and the 8 MB)


def test_shell_exports_carry_the_xla_flags_this_jaxlib_wants():
    from so3krates_hk._cpu_runtime import CLASSIC_RUNTIME_FLAG, NO_YNN_FLAG, wants_classic_runtime, wants_no_ynn

    drop = ("XLA_FLAGS", "SO3KRATES_HK_CLASSIC_CPU_RUNTIME", "SO3KRATES_HK_YNN_FUSIONS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    out = subprocess.run([sys.executable, "-m", "so3krates_hk.cpu_tuning"], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    for k, v in MALLOC_ENV.items():
        assert f"export {k}={v}" in out
    line = [x for x in out.splitlines() if x.startswith("export XLA_FLAGS=")]
    flags = line[0].split("=", 1)[1].strip("'").split() if line else []
    assert (CLASSIC_RUNTIME_FLAG in flags) == wants_classic_runtime()
    assert (NO_YNN_FLAG in flags) == wants_no_ynn()
