"""The XLA:CPU runtime choice for jaxlib 0.4.32-0.4.x (so3krates_hk._cpu_runtime)."""

import os
import subprocess
import sys

from so3krates_hk._cpu_runtime import (
    CLASSIC_RUNTIME_FLAG,
    prefer_classic_runtime,
    wants_classic_runtime,
    xla_flags,
)


def test_only_jaxlib_0_4_32_to_0_4_x():
    assert not wants_classic_runtime("0.4.31")
    assert wants_classic_runtime("0.4.32")
    assert wants_classic_runtime("0.4.37")
    assert wants_classic_runtime("0.4.36.dev20241201")
    assert not wants_classic_runtime("0.5.0")
    assert not wants_classic_runtime("0.10.2")


def test_flag_added_to_existing_flags_and_never_overrides_a_choice():
    assert xla_flags(None, "0.4.37") == CLASSIC_RUNTIME_FLAG
    assert xla_flags("--xla_dump_to=/tmp/x", "0.4.37") == f"--xla_dump_to=/tmp/x {CLASSIC_RUNTIME_FLAG}"
    assert xla_flags("--xla_cpu_use_thunk_runtime=true", "0.4.37") is None
    assert xla_flags("--xla_dump_to=/tmp/x", "0.10.2") is None


def test_opt_out():
    env = {"SO3KRATES_HK_CLASSIC_CPU_RUNTIME": "0"}
    assert not prefer_classic_runtime(env)
    assert "XLA_FLAGS" not in env


def test_import_sets_the_flag_exactly_when_this_jaxlib_wants_it():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "SO3KRATES_HK_CLASSIC_CPU_RUNTIME")}
    code = "import os, so3krates_hk; print(os.environ.get('XLA_FLAGS', ''))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert (CLASSIC_RUNTIME_FLAG in out.stdout) == wants_classic_runtime()
