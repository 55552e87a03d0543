"""Basin populations of alanine dipeptide CG MD against the bundled reference ensemble.

    python -m benchmarks.cg_alanine_populations RUN_DIR/md_trajectory.npz [--out populations.json]

Basins on the CG (φ, ψ) of the bundled data's ``phi_psi_atoms``, in radians: φ > 0; αR: φ < 0 and −2.1 < ψ < 1.0;
β/C7eq/PPII: the rest of φ < 0. The reference is the unbiased part of the bundled file (``equilibrium`` = 1).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from so3krates_hk.training.analysis import dihedral
from so3krates_hk.training.data import load_cg_dataset

ALPHA_R_PSI = (-2.1, 1.0)


def populations(positions: np.ndarray, phi_atoms, psi_atoms) -> dict:
    phi, psi = dihedral(positions, phi_atoms), dihedral(positions, psi_atoms)
    phi_pos = phi > 0
    alpha_r = ~phi_pos & (psi > ALPHA_R_PSI[0]) & (psi < ALPHA_R_PSI[1])
    return dict(beta=float(np.mean(~phi_pos & ~alpha_r)), alpha_r=float(np.mean(alpha_r)),
                phi_positive=float(np.mean(phi_pos)),
                alpha_r_mean_phi=float(np.mean(phi[alpha_r])) if alpha_r.any() else None)  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trajectory")
    p.add_argument("--out")
    args = p.parse_args(argv)
    ds = load_cg_dataset("alanine_dipeptide")
    phi_atoms, psi_atoms = np.asarray(ds.extras["phi_psi_atoms"])
    out = dict(definition=__doc__.split("\n\n")[2].replace("\n", " "),
               reference=populations(ds.reference().positions, phi_atoms, psi_atoms),
               md=populations(np.load(args.trajectory)["positions"], phi_atoms, psi_atoms))  # fmt: skip
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
