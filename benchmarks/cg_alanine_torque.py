"""Mean torques about the alanine-dipeptide backbone bonds, binned by dihedral: the data against trained models.

    python -m benchmarks.cg_alanine_torque -o torque.json [--model NAME=params.npz ...]

The generalised force on ψ (N–Cα–C–N) is the torque of the forces on the beads beyond the Cα–C bond (O, N and C of
NME) about that bond's axis, τ_ψ = Σ_i ((r_i − r_C) × F_i) · ê_{Cα→C}; for φ, the beads beyond N–Cα (CB, C, O, N, C)
about the N→Cα axis. Force matching fits the mean of τ at each configuration, so per bin of the dihedral the mean
mapped-force torque of the data is what a model's torque should match; where a bin holds few frames, its mean is
uncertain by about (per-frame spread) / sqrt(frames / 5) (frames 1 ps apart, correlated over a few ps). The bundled
unbiased frames (``equilibrium`` = 1) and all frames (with the umbrella windows) are reported separately.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk.training import analysis
from so3krates_hk.training.cg_model import load_cg_model
from so3krates_hk.training.data import load_cg_dataset

GROUPS = {"psi": (4, 6, [7, 8, 9]), "phi": (3, 4, [5, 6, 7, 8, 9])}  # axis (a → b), beads that turn with it
BINS = np.linspace(-np.pi, np.pi, 19)


def torque(X: np.ndarray, F: np.ndarray, a: int, b: int, group: list) -> np.ndarray:
    e = X[:, b] - X[:, a]
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    return sum(np.sum(np.cross(X[:, i] - X[:, b], F[:, i]) * e, -1) for i in group)


def model_forces(path: str, X: np.ndarray) -> np.ndarray:
    model, params, _ = load_cg_model(path, X[0])
    energy, nbrs = model.energy_fn_template(params), model.neighbor
    f = jax.jit(jax.vmap(lambda r: -jax.grad(lambda x: energy(x, nbrs.update(x)))(r)))
    return np.concatenate([np.asarray(f(jnp.asarray(X[s : s + 256]))) for s in range(0, len(X), 256)])


def table(X, F, models: dict, atoms) -> dict:
    out = {}
    for name, (a, b, group) in GROUPS.items():
        ang = analysis.dihedral(X, atoms[0 if name == "phi" else 1])
        idx = np.clip(np.digitize(ang, BINS) - 1, 0, len(BINS) - 2)
        t_data = torque(X, F, a, b, group)
        t_models = {m: torque(X, Fm, a, b, group) for m, Fm in models.items()}
        rows = []
        for k in range(len(BINS) - 1):
            sel = idx == k
            n = int(sel.sum())
            row = {"centre_rad": float(0.5 * (BINS[k] + BINS[k + 1])), "frames": n}
            if n:
                row["data_mean"] = float(t_data[sel].mean())
                row["data_stderr"] = float(t_data[sel].std() / np.sqrt(max(n / 5, 1)))
                row.update({f"{m}_mean": float(t[sel].mean()) for m, t in t_models.items()})
            rows.append(row)
        out[name] = {"per_frame_spread_kcal_per_mol_rad": float(t_data.std()), "bins": rows}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--model", action="append", default=[], help="NAME=params.npz (a trained CG model)")
    args = p.parse_args()
    ds = load_cg_dataset("alanine_dipeptide")
    atoms = np.asarray(ds.extras["phi_psi_atoms"])
    result = {"units": "kcal/mol/rad", "bins_rad": BINS.tolist()}
    for label, part in (("unbiased_frames", ds.reference()), ("all_frames", ds)):
        models = {}
        for spec in args.model:
            name, path = spec.split("=", 1)
            models[name] = model_forces(path, part.positions)
        result[label] = table(part.positions, part.forces, models, atoms)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    for label in ("unbiased_frames", "all_frames"):
        for name in GROUPS:
            r = result[label][name]
            print(label, name, "spread", round(r["per_frame_spread_kcal_per_mol_rad"], 2))
            for row in r["bins"]:
                print("  ", {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()})


if __name__ == "__main__":
    main()
