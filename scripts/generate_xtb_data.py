#!/usr/bin/env python
"""Generate a small GFN2-xTB fine-tuning set (energies and forces) for one organic molecule.

Default molecule: aspirin (C9H8O4, 21 atoms, elements H/C/O, neutral, closed shell).

Procedure (all seeded, so a rerun gives the same data up to floating-point noise):
1. Starting geometry from SMILES with RDKit (ETKDG embedding with ``randomSeed=seed``, MMFF94 optimization).
2. Langevin MD with ASE (``ase.md.langevin.Langevin``) driven by GFN2-xTB from tblite (``tblite.ase.TBLite``,
   total charge 0, singlet): ``--temperature`` 500 K, 0.5 fs step, friction 0.02/fs, Maxwell-Boltzmann velocities
   drawn from ``numpy.random.default_rng(seed)``; ``--equil-ps`` of equilibration that is not kept, then one frame
   every ``--every`` steps until ``--frames`` frames are collected.
3. Each kept frame is labeled with a fresh GFN2-xTB single point (new TBLite calculator, so the label does not
   depend on the SCF guess of the MD step): energy in eV, forces in eV/Å.

Output: an extended-XYZ file readable with ``ase.io.read(path, index=":")``. Each frame's comment line has
``energy=`` (eV) and the atom lines a ``forces`` column (eV/Å), written from a ``SinglePointCalculator``; ASE's reader
(3.23+) turns those two keys back into a ``SinglePointCalculator``, so after reading use
``atoms.get_potential_energy()`` / ``atoms.get_forces()`` (ASE then does not keep them in ``atoms.info`` /
``atoms.arrays``). Also ``charge=0``, ``method=GFN2-xTB`` and ``md_time_fs`` in the comment line. Free space (no
cell, pbc False).

Example (what made the bundled file)::

    OMP_NUM_THREADS=1 python scripts/generate_xtb_data.py --out so3krates_hk/data/finetune/aspirin_gfn2.xyz
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
}


def initial_atoms(smiles: str, seed: int):
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise RuntimeError("RDKit embedding failed")
    AllChem.MMFFOptimizeMolecule(mol)
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    assert set(symbols) <= {"H", "C", "N", "O"}, symbols
    assert Chem.GetFormalCharge(mol) == 0
    return Atoms(symbols, positions=mol.GetConformer().GetPositions())


def xtb_calc():
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", charge=0, multiplicity=1, verbosity=0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--molecule", choices=sorted(MOLECULES), default="aspirin")
    p.add_argument("--out", type=Path, required=True, help="extended-XYZ output path")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--every", type=int, default=40, help="MD steps between kept frames (0.5 fs each)")
    p.add_argument("--equil-ps", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=500.0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    import ase
    import ase.io
    from ase import units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from tqdm import tqdm

    rng = np.random.default_rng(args.seed)
    atoms = initial_atoms(MOLECULES[args.molecule], args.seed)
    atoms.calc = xtb_calc()
    MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dt_fs = 0.5
    dyn = Langevin(atoms, dt_fs * units.fs, temperature_K=args.temperature, friction=0.02 / units.fs, rng=rng,
                   fixcm=False)

    n_equil = int(round(args.equil_ps * 1000 / dt_fs))
    t0 = time.time()
    with tqdm(total=n_equil, desc="equilibration", unit="step", mininterval=2.0) as bar:
        for _ in range(n_equil // 100):
            dyn.run(100)
            bar.update(100)
    frames = []
    refs = xtb_calc()
    for k in tqdm(range(args.frames), desc="sampling+labeling", unit="frame", mininterval=2.0):
        dyn.run(args.every)
        snap = ase.Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions())
        snap.calc = refs
        e = float(snap.get_potential_energy())
        f = np.array(snap.get_forces())
        snap.info.update(charge=0, method="GFN2-xTB", md_time_fs=(n_equil + (k + 1) * args.every) * dt_fs)
        # ASE's extxyz writer stores the calculator's results as `energy=` in the comment line and a `forces`
        # column; its reader turns them back into a SinglePointCalculator.
        snap.calc = SinglePointCalculator(snap, energy=e, forces=f)
        frames.append(snap)
    wall = time.time() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(args.out, frames, format="extxyz")

    energies = np.array([a.get_potential_energy() for a in frames])
    forces = np.concatenate([a.get_forces() for a in frames])
    try:
        import tblite

        tb_version = getattr(tblite, "__version__", None)
        if tb_version is None:
            from importlib.metadata import version

            tb_version = version("tblite")
    except Exception:  # noqa: BLE001
        tb_version = "unknown"
    import rdkit

    summary = {
        "molecule": args.molecule, "smiles": MOLECULES[args.molecule], "formula": frames[0].get_chemical_formula(),
        "n_frames": len(frames), "temperature_K": args.temperature, "dt_fs": dt_fs, "every_steps": args.every,
        "equil_ps": args.equil_ps, "seed": args.seed, "wall_s": wall,
        "energy_eV": {"mean": float(energies.mean()), "std": float(energies.std()),
                      "min": float(energies.min()), "max": float(energies.max())},
        "force_eV_per_A": {"rms": float(np.sqrt(np.mean(forces**2))), "max_abs": float(np.abs(forces).max())},
        "versions": {"python": platform.python_version(), "ase": ase.__version__, "tblite": tb_version,
                     "rdkit": rdkit.__version__, "numpy": np.__version__},
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
