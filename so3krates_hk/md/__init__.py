"""Molecular dynamics in jax-md.

* :mod:`so3krates_hk.md.simulation`: :class:`Simulation`, jitted blocks of NVE / Langevin / Nosé–Hoover steps with
  neighbour-list overflow detection and re-allocation, for any energy built by the factories.
* :mod:`so3krates_hk.md.run`: :func:`run_md`, an SO3LR run from a structure file with checkpoints and restarts
  (what ``so3krates-hk md`` calls).
"""

from so3krates_hk.md.simulation import (
    ENSEMBLES,
    MDSettings,
    Potential,
    Simulation,
    SimulationError,
    Trajectory,
    checkpoint_extra,
    time_unit_fs,
)

__all__ = ["ENSEMBLES", "MDSettings", "Potential", "Simulation", "SimulationError", "Trajectory", "checkpoint_extra",
           "time_unit_fs"]
