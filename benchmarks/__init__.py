"""Benchmark and profiling scripts of so3krates_hk (``python -m benchmarks.run``, ``python -m benchmarks.profile``)."""
