"""``so3krates-hk --compile-cache DIR``: JAX's persistent compilation cache, so a second run skips compilation.

Each run is its own process (the cache is set up once per process, and must not leak into the other tests).
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
ENV.pop("JAX_COMPILATION_CACHE_DIR", None)
ENV.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)  # the flag's own choice: every program


def md(cache, out):
    cmd = [sys.executable, "-m", "so3krates_hk.cli", "--compile-cache", str(cache), "md", "--structure", "dha",
           "--steps", "20", "--no-progress", "--output", str(out)]  # fmt: skip
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def entries(cache):
    return sorted(os.listdir(cache))


def test_a_second_md_run_reads_every_program_from_the_cache_and_gives_the_same_trajectory(tmp_path):
    cache = tmp_path / "cache"
    md(cache, tmp_path / "first")
    first = entries(cache)
    assert first, "the first run wrote no compiled program"
    md(cache, tmp_path / "second")
    assert entries(cache) == first  # every program of the second run was found: nothing new written
    a, b = ((tmp_path / d / "log.csv").read_text() for d in ("first", "second"))
    assert a == b and len(a.splitlines()) > 2  # same seed, same programs: the same energies to the last digit


def test_compile_cache_must_be_a_writable_directory(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    cmd = [sys.executable, "-m", "so3krates_hk.cli", "--compile-cache", str(afile), "bench"]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"so3krates-hk: error: --compile-cache: {afile} is not a directory."]


def test_compile_cache_reaches_jax_and_child_processes(tmp_path):
    code = ("import os, sys, jax; from so3krates_hk.cli import main; rc = main(['--compile-cache', sys.argv[1], "
            "'bench']); print(rc, os.environ['JAX_COMPILATION_CACHE_DIR'], jax.config.jax_compilation_cache_dir, "
            "jax.config.jax_persistent_cache_min_compile_time_secs)")  # fmt: skip
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], env=ENV, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    path = str(tmp_path / "c")
    # set before the command runs ('bench' itself exits with 2), small programs included
    assert p.stdout.split()[-4:] == ["2", path, path, "0.0"]
    assert os.path.isdir(path)
