"""How far apart two halves of a bundled CG reference are, in the training job's own divergences.

    python -m benchmarks.cg_reference_halves -o benchmarks/results/.../reference_halves.json

For each bundled dataset, the reference frames (``equilibrium`` = 1 where the file marks them) are split by replica
into two halves (the replicas in file order: first half against second half, and even against odd positions), and
``so3krates_hk.training.analysis.compare`` gives the Jensen–Shannon divergences between them, with the same
observables and bins as the job's MD comparison. A model's divergence near these values is as close as the
reference can resolve.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from so3krates_hk.training import analysis
from so3krates_hk.training.data import BUNDLED_CG, load_cg_dataset


def halves(name: str) -> dict:
    ds = load_cg_dataset(name).reference()
    reps = list(dict.fromkeys(ds.replica.tolist()))
    out = {"frames": ds.num_frames, "replicas": reps}
    for label, a in (("first_vs_second", reps[: len(reps) // 2]), ("even_vs_odd", reps[::2])):
        m = np.isin(ds.replica, a)
        res = analysis.compare(ds.name, ds.positions[m], ds.positions[~m], ds.extras)
        out[label] = {"replicas_a": a, "js_divergence": {k: v["js"] for k, v in res.items()}}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    result = {name: halves(name) for name in BUNDLED_CG}
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
