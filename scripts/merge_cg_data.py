#!/usr/bin/env python
"""Concatenate CG datasets written by ``generate_cg_data.py`` (same system) into one file.

    python scripts/merge_cg_data.py OUT.npz A.npz B.npz ...

Per-frame arrays (``positions``, ``forces``, ``replica``, ``time_ps``, ``equilibrium``) are concatenated in the given
order; the replica ids of each later file are shifted past those of the earlier ones, so every trajectory keeps its
own id. A file without ``equilibrium`` (plain equilibrium runs) gets ``equilibrium`` = 1 for all its frames. All other
keys (``species``, ``reference_structure``, ``temperature``, ...) must be identical in every file.
"""

from __future__ import annotations

import sys

import numpy as np

PER_FRAME = ("positions", "forces", "replica", "time_ps", "equilibrium")


def merge(out: str, parts: list[str]) -> int:
    acc = {k: [] for k in PER_FRAME}
    common, offset = None, 0
    for path in parts:
        with np.load(path) as f:
            d = {k: f[k] for k in f.files}
        if "equilibrium" not in d:
            d["equilibrium"] = np.ones(len(d["positions"]), np.int8)
        for k in PER_FRAME:
            acc[k].append(d[k] + offset if k == "replica" else d[k])
        offset += int(d["replica"].max()) + 1
        rest = {k: v for k, v in d.items() if k not in PER_FRAME}
        if common is None:
            common = rest
        elif rest.keys() != common.keys() or any(not np.array_equal(rest[k], common[k]) for k in rest):
            raise SystemExit(f"{path}: its non-per-frame keys differ from {parts[0]}'s; not the same system.")
    np.savez(out, **{k: np.concatenate(v) for k, v in acc.items()}, **common)
    return sum(len(p) for p in acc["positions"])


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    print(sys.argv[1], merge(sys.argv[1], sys.argv[2:]), "frames")
