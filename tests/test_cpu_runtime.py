"""The XLA:CPU flags per jaxlib version (so3krates_hk._cpu_runtime): the classic runtime on 0.4.32-0.4.x, no YNNPACK
fusions on 0.8.1-0.10.x."""

import os
import subprocess
import sys

from so3krates_hk._cpu_runtime import (
    CLASSIC_RUNTIME_FLAG,
    NO_YNN_FLAG,
    apply_cpu_flags,
    wants_classic_runtime,
    wants_no_ynn,
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
    assert xla_flags("--xla_dump_to=/tmp/x", "0.6.0") is None


def test_no_ynn_only_on_jaxlib_0_8_1_to_0_10_x_and_never_overrides_a_choice():
    assert not wants_no_ynn("0.8.0")
    assert wants_no_ynn("0.8.1")
    assert wants_no_ynn("0.10.2")
    assert not wants_no_ynn("0.11.0")  # unmeasured: XLA stops on a flag it does not know
    assert not wants_no_ynn("0.4.37")
    assert xla_flags(None, "0.10.2") == NO_YNN_FLAG
    assert xla_flags("--xla_dump_to=/tmp/x", "0.9.0") == f"--xla_dump_to=/tmp/x {NO_YNN_FLAG}"
    own = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
    assert xla_flags(own, "0.10.2") is None
    assert xla_flags(None, "0.10.2", no_ynn=False) is None


def test_ynn_fusions_off_reads_the_flag_on_the_versions_that_have_it():
    from so3krates_hk._cpu_runtime import ynn_fusions_off

    assert ynn_fusions_off({"XLA_FLAGS": f"--xla_dump_to=/tmp/x {NO_YNN_FLAG}"}, "0.10.2")
    assert not ynn_fusions_off({}, "0.10.2")
    assert not ynn_fusions_off({"XLA_FLAGS": NO_YNN_FLAG + "LIBRARY_FUSION_TYPE_DOT"}, "0.10.2")
    assert not ynn_fusions_off({"XLA_FLAGS": NO_YNN_FLAG}, "0.4.37")


def test_opt_out():
    env = {"SO3KRATES_HK_CLASSIC_CPU_RUNTIME": "0"}
    apply_cpu_flags(env)
    assert CLASSIC_RUNTIME_FLAG not in env.get("XLA_FLAGS", "")
    env = {"SO3KRATES_HK_YNN_FUSIONS": "1"}
    apply_cpu_flags(env)
    assert NO_YNN_FLAG not in env.get("XLA_FLAGS", "")


def test_import_sets_the_flags_exactly_when_this_jaxlib_wants_them():
    drop = ("XLA_FLAGS", "SO3KRATES_HK_CLASSIC_CPU_RUNTIME", "SO3KRATES_HK_YNN_FUSIONS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    code = "import os, so3krates_hk; print(os.environ.get('XLA_FLAGS', ''))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert (CLASSIC_RUNTIME_FLAG in out.stdout) == wants_classic_runtime()
    assert (NO_YNN_FLAG in out.stdout.split()) == wants_no_ynn()


def test_no_ynn_flag_takes_effect_in_a_compiled_program():
    """Where the flag applies, a program compiled after importing so3krates_hk holds no YNNPACK fusion; with the
    opt-out it holds some (so the check can fail)."""
    import pytest

    if not wants_no_ynn():
        pytest.skip("this jaxlib has no YNNPACK fusions to switch off")
    code = (
        "import so3krates_hk, jax, jax.numpy as jnp\n"
        "f = jax.jit(lambda a, b: ((a @ b) * a).reshape(64, 4, 32).sum(-1))\n"
        "x = jnp.ones((64, 128))\n"
        "print(f.lower(x, jnp.ones((128, 128))).compile().as_text().count('__ynn_fusion'))\n"
    )
    counts = {}
    for keep in ("0", "1"):
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env["SO3KRATES_HK_YNN_FUSIONS"] = keep
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        counts[keep] = int(out.stdout.split()[-1])
    assert counts["0"] == 0
    assert counts["1"] > 0


def test_classic_runtime_active_by_version_and_flags():
    from so3krates_hk._cpu_runtime import classic_runtime_active

    assert classic_runtime_active({"XLA_FLAGS": CLASSIC_RUNTIME_FLAG}, "0.4.37")
    assert not classic_runtime_active({}, "0.4.37")  # the thunk runtime is that jaxlib's default
    assert not classic_runtime_active({"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=false_x"}, "0.4.37")
    assert classic_runtime_active({}, "0.4.31")
    assert not classic_runtime_active({"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=true"}, "0.4.31")
    assert not classic_runtime_active({"XLA_FLAGS": CLASSIC_RUNTIME_FLAG}, "0.10.2")


def test_serial_loops_restores_the_thread_affinity_and_respects_the_size_limit():
    import pytest

    from so3krates_hk._cpu_runtime import SERIAL_LOOPS_MAX_ATOMS, serial_loops, serial_loops_apply

    before = os.sched_getaffinity(0)
    with serial_loops(SERIAL_LOOPS_MAX_ATOMS + 1) as applied:
        assert not applied and os.sched_getaffinity(0) == before
    expected = serial_loops_apply(10)
    with pytest.raises(KeyError):
        with serial_loops(10) as applied:
            assert applied == expected
            assert len(os.sched_getaffinity(0)) == (1 if applied else len(before))
            raise KeyError("leaves the block")
    assert os.sched_getaffinity(0) == before


def test_threads_started_inside_serial_loops_get_the_callers_cpus_back():
    import threading

    import pytest

    from so3krates_hk._cpu_runtime import serial_loops, serial_loops_apply

    if not serial_loops_apply(10):
        pytest.skip("serial loops do not apply here (needs XLA:CPU's classic runtime and more than one CPU)")
    before = os.sched_getaffinity(0)
    release, inside = threading.Event(), []
    worker = threading.Thread(target=release.wait, daemon=True)
    with serial_loops(10):
        worker.start()
        inside.append(os.sched_getaffinity(worker.native_id))
    after = os.sched_getaffinity(worker.native_id)
    release.set()
    worker.join()
    assert len(inside[0]) == 1  # inherited the block's one CPU while it lasted
    assert after == before


def test_serial_loops_opt_out(monkeypatch):
    from so3krates_hk._cpu_runtime import serial_loops

    before = os.sched_getaffinity(0)
    monkeypatch.setenv("SO3KRATES_HK_SERIAL_LOOPS", "0")
    with serial_loops(10) as applied:
        assert not applied and os.sched_getaffinity(0) == before


def test_serial_loops_changes_the_compiled_program_exactly_where_it_applies():
    """On the classic runtime a program compiled inside has no loops split over the thread pool (XLA marks split
    loops with ``outer_dimension_partitions``), and gives the same numbers; elsewhere the block does nothing."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from so3krates_hk._cpu_runtime import serial_loops, serial_loops_apply

    def f(x):
        return jnp.tanh(x) * jnp.sin(x) + x**2

    def g(x):  # the same program as a new function: JAX would hand back f's cached executable
        return jnp.tanh(x) * jnp.sin(x) + x**2

    x = jnp.asarray(np.random.default_rng(0).normal(size=(512, 512)), jnp.float32)
    expected = serial_loops_apply(10)
    plain = jax.jit(f).lower(x).compile()
    with serial_loops(10) as applied:
        serial = jax.jit(g).lower(x).compile()
    assert applied == expected
    split = "outer_dimension_partitions"
    if applied:
        assert split in plain.as_text() and split not in serial.as_text()
    else:
        assert plain.as_text().count(split) == serial.as_text().count(split)
    np.testing.assert_array_equal(np.asarray(plain(x)), np.asarray(serial(x)))
