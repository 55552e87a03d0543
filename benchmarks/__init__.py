"""Benchmarks of so3krates_hk and its baselines (not installed with the package; run from a checkout).

Entry points: ``python -m benchmarks.run [--quick] ...`` and ``python -m benchmarks.profile``.

Modules: ``systems`` (water boxes, molecules, CG chains/boxes), ``jax_models`` and ``torch_models`` (each model bound
to a system, with its settings), ``plan`` (which configurations), ``worker`` (one configuration, in a subprocess),
``memory`` (peak RSS / device peak), ``report`` (JSON, markdown, plots), ``driver`` (the command line).
"""
