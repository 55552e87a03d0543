#!/usr/bin/env python
"""Generate coarse-grained (CG) training data for chignolin (CLN025) and alanine dipeptide with OpenMM.

Two systems, both in free space with an implicit solvent (no box, no cutoff), Langevin dynamics
(``LangevinMiddleIntegrator``, friction 1/ps), forces of the *full* system saved every ``--save-every-ps``.

chignolin (CLN025, YYDPETGTWY)
    All-atom: built with PeptideBuilder, hydrogens added with OpenMM's Modeller at pH 7 (charged termini, D3 and E5
    deprotonated: net charge -2), Amber ff14SB (``amber14-all.xml``) with the GBn2 implicit solvent
    (``implicit/gbn2.xml``), HBonds constraints, hydrogen mass repartitioning (1.5 amu on H) and a 4 fs step.
    Temperature 340 K: the experimental melting temperature of CLN025 is ~343 K (Honda et al. 2008), so near it both
    the hairpin and the unfolded ensemble carry weight. The simulations that would be needed to see many
    folding/unfolding transitions (hundreds of ns) do not fit on a 2-core CPU, so the replicas start from two kinds of
    structure: a β-hairpin model (β strands Y1-D3 and T8-Y10, turn D3-P4-E5-T6-G7 built with P4/E5/T6 in αR and G7
    in αL, relaxed with Cα-Cα restraints Y1-Y10, Y2-W9, D3-T8 and then minimized without restraints) and unfolded
    coils (an extended chain heated to 600 K for a short while, with a different seed per replica).
    The data therefore are *not* an equilibrium ensemble at 340 K unless transitions are seen; the script measures and
    reports the Cα RMSD to the hairpin model and the fraction of native Cα contacts per frame (``summary.json``).
    CG map: one bead per residue at the Cα atom (selection map). Species: the residue's index in the alphabet
    ``AMINO_ACIDS`` = "ACDEFGHIKLMNPQRSTVWY" (one-letter codes in alphabetical order, 0-19), so Y=19, D=2, P=12,
    E=3, T=16, G=5, W=18.

alanine dipeptide (ACE-ALA-NME)
    openmmtools' ``testsystems.AlanineDipeptideImplicit`` (Amber96 with the OBC GB implicit solvent, HBonds
    constraints as it builds them), 300 K, 2 fs step. CG map: the 10 heavy atoms (selection map). Species
    ``ALA2_BEAD_TYPES``: 0 methyl C (ACE CH3, ALA CB, NME CH3), 1 carbonyl C (ACE C, ALA C), 2 carbonyl O,
    3 amide N, 4 Cα. φ = C(ACE)-N-CA-C, ψ = N-CA-C-N(NME), as bead indices in ``phi_psi_atoms``.
    ``--ala2-umbrella-grid N`` adds N x N umbrella windows: replicas held near a grid of (φ, ψ) centres by harmonic
    restraints ½ k (Δφ² + Δψ²) on the dihedrals of the selected heavy atoms, in force group 31, which the saved forces
    leave out. The restraints are functions of the CG coordinates alone, so the atoms inside the beads keep their
    unbiased conditional distribution and the mapped forces remain samples of the CG mean force; the windows sample
    the barrier regions that unbiased runs cross rarely. Their frames carry ``equilibrium`` = 0 (1 for the unbiased
    replicas): training data, not the reference ensemble.

Force map (both systems)
    The CG map M is a selection: bead I sits on one atom a(I), M[I, α] = δ(α, a(I)). Each atom α is assigned to
    exactly one bead (chignolin: every atom to the Cα of its residue; alanine dipeptide: every heavy atom with the
    hydrogens bonded to it) and the force map W sums the forces of the atoms of a bead: W[I, α] = 1 if α is in
    bead I, else 0. Because the selected atom a(J) belongs to bead J only, (W Mᵀ)[I, J] = W[I, a(J)] = δ(I, J), so
    W Mᵀ = I and W is a valid force map: the mapped forces W f are unbiased samples of the CG mean force
    (Ciccotti et al. 2005; Krämer et al. 2023, "Statistically optimal force aggregation for coarse-graining molecular
    dynamics"). With holonomic constraints a valid force map must also cancel the constraint forces; with HBonds
    constraints every constrained pair (a heavy atom and its hydrogen) lies in one bead with equal weights, so the
    equal and opposite constraint forces cancel in the sum. That is why the forces OpenMM reports (all force groups,
    constraint forces excluded) can be aggregated as they are. Hydrogen mass repartitioning changes masses only, not
    the configurational distribution or the forces, and the map does not depend on masses.

Units in the written files: positions Å, forces kcal/mol/Å, temperature K, times ps.

Outputs
    ``--out DIR``: ``<system>_full.npz`` (every saved frame, float32, same keys as the bundle plus ``q`` / ``rmsd`` or
    ``phi`` / ``psi``), ``<system>_start_*.pdb`` (all-atom starting structures), ``summary.json``.
    ``--bundle-dir`` (default ``so3krates_hk/data/cg``): ``<system>.npz`` with at most ``--bundle-max-frames`` frames
    (an even stride over all frames), keys ``positions``, ``forces``, ``species``, ``bead_names``, ``temperature``,
    ``frame_interval_ps``, ``reference_structure``, ``replica``, ``time_ps`` and, for alanine dipeptide,
    ``phi_psi_atoms``; plus ``provenance.json``.

Example (what made the bundled data)::

    OPENMM_CPU_THREADS=1 python scripts/generate_cg_data.py --system all --out runs/cg_data --workers 2 --seed 2024
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
CHIGNOLIN_SEQ = "YYDPETGTWY"
ALA2_BEAD_TYPES = {"methyl_C": 0, "carbonyl_C": 1, "carbonyl_O": 2, "amide_N": 3, "alpha_C": 4}
# (residue name, atom name) -> bead type, for the heavy atoms of openmmtools' alanine dipeptide.
_ALA2_TYPES = {
    ("ACE", "CH3"): 0, ("ACE", "C"): 1, ("ACE", "O"): 2,
    ("ALA", "N"): 3, ("ALA", "CA"): 4, ("ALA", "CB"): 0, ("ALA", "C"): 1, ("ALA", "O"): 2,
    ("NME", "N"): 3, ("NME", "C"): 0, ("NME", "CH3"): 0,
}
KJ_PER_KCAL = 4.184
UMBRELLA_GROUP = 31  # force group of the alanine-dipeptide umbrella restraints (left out of the saved forces)
# Chignolin hairpin backbone dihedrals (residue index -> (phi, psi), degrees); others β (-130, 135).
HAIRPIN_TURN = {3: (-60.0, -30.0), 4: (-70.0, -20.0), 5: (-100.0, 0.0), 6: (80.0, 10.0)}
BETA = (-130.0, 135.0)
HAIRPIN_PAIRS = ((0, 9), (1, 8), (2, 7))  # cross-strand Cα pairs used to relax the hairpin model


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def _omm():
    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    return mm, app, u


def _platform(threads: int):
    mm, _, _ = _omm()
    return mm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)}


def _seed(base: int, *k: int) -> int:
    """A positive 31-bit seed derived from ``base`` and integers ``k`` (OpenMM treats 0 as 'random')."""
    s = np.random.SeedSequence([base, *k]).generate_state(1)[0]
    return int(s % (2**31 - 2)) + 1


def _shared_observables():
    """Q and the RMSD from ``so3krates_hk/training/analysis.py``, the one definition the training job's analysis
    uses too. Loaded from its file (it needs only NumPy), so this script runs in an OpenMM environment without JAX."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "so3krates_hk" / "training" / "analysis.py"
    spec = importlib.util.spec_from_file_location("_cg_analysis", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_OBS = _shared_observables()
kabsch_rmsd = _OBS.kabsch_rmsd  # (T, n, 3), (n, 3) -> (T,) Å
fraction_native_contacts = _OBS.native_contacts  # (T, n, 3), (n, 3) -> (T,) Q


def native_contacts(ref: np.ndarray):
    """The native Cα pairs (i, j, r0) of the reference (see ``so3krates_hk.training.analysis``)."""
    return _OBS.native_pairs(ref)


def dihedral(x: np.ndarray, idx) -> np.ndarray:
    """Dihedral angle in degrees of atoms ``idx`` (4,) for each frame of ``x`` (T, n, 3)."""
    p0, p1, p2, p3 = (x[:, k] for k in idx)
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, -1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, -1, keepdims=True) * b1n
    xx = np.sum(v * w, -1)
    yy = np.sum(np.cross(b1n, v) * w, -1)
    return np.degrees(np.arctan2(yy, xx))


def ramachandran_basins(phi: np.ndarray, psi: np.ndarray) -> dict:
    """Populations of coarse Ramachandran regions (degrees).

    beta/C7eq/PPII: φ < 0 and (ψ > 50 or ψ < -150); alpha_R: φ < 0 and -150 <= ψ <= 50; alpha_L/C7ax: φ >= 0.
    """
    neg = phi < 0
    beta = neg & ((psi > 50) | (psi < -150))
    alpha_r = neg & ~beta
    left = ~neg
    n = max(len(phi), 1)
    return {
        "beta_C7eq_PPII": float(beta.sum() / n),
        "alpha_R": float(alpha_r.sum() / n),
        "alpha_L_C7ax": float(left.sum() / n),
        "C7ax_strict(phi 30..110, psi -110..-10)": float(((phi > 30) & (phi < 110) & (psi > -110) & (psi < -10)).sum() / n),
        "alpha_L_strict(phi 30..110, psi 0..100)": float(((phi > 30) & (phi < 110) & (psi > 0) & (psi < 100)).sum() / n),
    }


def bead_force_matrix(assign: np.ndarray, n_beads: int) -> np.ndarray:
    """W (n_beads, n_atoms): W[I, α] = 1 if atom α is assigned to bead I."""
    w = np.zeros((n_beads, len(assign)))
    w[assign, np.arange(len(assign))] = 1.0
    return w


def check_force_map(w: np.ndarray, selected: np.ndarray, constraints) -> None:
    """Assert W Mᵀ = I for the selection map and that each constrained pair is inside one bead with equal weights."""
    m = np.zeros_like(w)
    m[np.arange(len(selected)), selected] = 1.0
    assert np.allclose(w @ m.T, np.eye(len(selected))), "force map violates W M^T = I"
    for a, b in constraints:
        assert np.allclose(w[:, a], w[:, b]), f"constrained pair ({a}, {b}) split across beads"


# ----------------------------------------------------------------------------------------------------------------
# system construction
# ----------------------------------------------------------------------------------------------------------------
def build_chignolin_pdb(phi_psi: dict | None):
    """All-atom CLN025 (no H) from PeptideBuilder; ``phi_psi`` overrides β dihedrals per residue; None = extended."""
    import PeptideBuilder
    from Bio.PDB import PDBIO

    _, app, _ = _omm()
    n = len(CHIGNOLIN_SEQ)
    phis, psis = [BETA[0]] * n, [BETA[1]] * n
    if phi_psi is None:
        phis, psis = [-150.0] * n, [150.0] * n
    else:
        for i, (p, s) in phi_psi.items():
            phis[i], psis[i] = p, s
    st = PeptideBuilder.make_structure(CHIGNOLIN_SEQ, phis[1:], psis[:-1])
    PeptideBuilder.add_terminal_OXT(st)
    buf = io.StringIO()
    writer = PDBIO()
    writer.set_structure(st)
    writer.save(buf)
    return app.PDBFile(io.StringIO(buf.getvalue()))


def chignolin_system(pdb):
    mm, app, u = _omm()
    ff = app.ForceField("amber14-all.xml", "implicit/gbn2.xml")
    mod = app.Modeller(pdb.topology, pdb.positions)
    mod.addHydrogens(ff, pH=7.0)
    # PeptideBuilder structures can clash badly; a first minimization without constraints is robust where the
    # constrained minimizer gets stuck.
    free = ff.createSystem(mod.topology, nonbondedMethod=app.NoCutoff, constraints=None)
    ctx = mm.Context(free, mm.VerletIntegrator(1 * u.femtosecond), *_platform(1))
    ctx.setPositions(mod.positions)
    mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 3000)
    positions = _positions_nm(ctx)
    del ctx
    system = ff.createSystem(
        mod.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds, hydrogenMass=1.5 * u.amu
    )
    return mod.topology, system, positions


def chignolin_map(topology):
    atoms = list(topology.atoms())
    res_index = {r: k for k, r in enumerate(topology.residues())}
    assign = np.array([res_index[a.residue] for a in atoms])
    selected = np.array([a.index for a in atoms if a.name == "CA"])
    names = [f"{r.name}{k + 1}" for k, r in enumerate(topology.residues())]
    species = np.array([AMINO_ACIDS.index(c) for c in CHIGNOLIN_SEQ], dtype=np.int32)
    assert len(selected) == len(CHIGNOLIN_SEQ) and len(names) == len(CHIGNOLIN_SEQ)
    return assign, selected, species, names


def ala2_map(topology):
    atoms = list(topology.atoms())
    heavy = [a for a in atoms if a.element.symbol != "H"]
    bead_of = {a.index: k for k, a in enumerate(heavy)}
    assign = np.full(len(atoms), -1)
    for a in heavy:
        assign[a.index] = bead_of[a.index]
    for b in topology.bonds():
        a1, a2 = b[0], b[1]
        if a1.element.symbol == "H" and a2.element.symbol != "H":
            assign[a1.index] = bead_of[a2.index]
        elif a2.element.symbol == "H" and a1.element.symbol != "H":
            assign[a2.index] = bead_of[a1.index]
    assert (assign >= 0).all(), "a hydrogen without a heavy-atom bond"
    selected = np.array([a.index for a in heavy])
    species = np.array([_ALA2_TYPES[(a.residue.name, a.name)] for a in heavy], dtype=np.int32)
    names = [f"{a.residue.name}:{a.name}" for a in heavy]
    idx = {n: k for k, n in enumerate(names)}
    phi = [idx["ACE:C"], idx["ALA:N"], idx["ALA:CA"], idx["ALA:C"]]
    psi = [idx["ALA:N"], idx["ALA:CA"], idx["ALA:C"], idx["NME:N"]]
    return assign, selected, species, names, np.array([phi, psi], dtype=np.int64)


def _constraints(system):
    return [tuple(system.getConstraintParameters(k)[:2]) for k in range(system.getNumConstraints())]


def _positions_nm(context) -> np.ndarray:
    _, _, u = _omm()
    return context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)


def prepare_chignolin(seed: int, n_unfolded: int, threads: int, out: Path):
    """Return (topology, system, folded start, [unfolded starts], reference Cα in Å)."""
    mm, app, u = _omm()
    pdb = build_chignolin_pdb(HAIRPIN_TURN)
    topology, system, pos = chignolin_system(pdb)
    _, selected, _, _ = chignolin_map(topology)
    plat, props = _platform(threads)

    # Relax the hairpin model with flat-bottom Cα-Cα restraints, then minimize without them.
    rsys = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(system))
    rest = mm.CustomBondForce("0.5*k*step(r-r0)*(r-r0)^2")
    rest.addGlobalParameter("k", 2000.0)  # kJ/mol/nm^2
    rest.addGlobalParameter("r0", 0.55)  # nm
    for i, j in HAIRPIN_PAIRS:
        rest.addBond(int(selected[i]), int(selected[j]), [])
    rsys.addForce(rest)
    integ = mm.LangevinMiddleIntegrator(300 * u.kelvin, 1 / u.picosecond, 2 * u.femtosecond)
    integ.setRandomNumberSeed(_seed(seed, 1, 0))
    ctx = mm.Context(rsys, integ, plat, props)
    ctx.setPositions(pos * u.nanometer)
    mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 3000)
    ctx.setVelocitiesToTemperature(300 * u.kelvin, _seed(seed, 1, 1))
    integ.step(10000)  # 20 ps restrained
    folded_pos = _positions_nm(ctx)
    del ctx, integ
    integ = mm.VerletIntegrator(1 * u.femtosecond)
    ctx = mm.Context(system, integ, plat, props)
    ctx.setPositions(folded_pos * u.nanometer)
    mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 3000)
    folded_pos = _positions_nm(ctx)
    ref = (folded_pos[selected] * 10.0).astype(np.float32)
    del ctx, integ
    with open(out / "chignolin_start_hairpin.pdb", "w") as fh:
        app.PDBFile.writeFile(topology, folded_pos * u.nanometer, fh)

    # Unfolded starts: extended chain, minimized, 600 K for 20 ps with a per-replica seed.
    ext_top, ext_sys, ext_pos = chignolin_system(build_chignolin_pdb(None))
    assert [a.name for a in ext_top.atoms()] == [a.name for a in topology.atoms()]
    unfolded = []
    for r in range(n_unfolded):
        integ = mm.LangevinMiddleIntegrator(600 * u.kelvin, 5 / u.picosecond, 2 * u.femtosecond)
        integ.setRandomNumberSeed(_seed(seed, 2, r))
        ctx = mm.Context(system, integ, plat, props)
        ctx.setPositions(ext_pos * u.nanometer)
        mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 3000)
        ctx.setVelocitiesToTemperature(600 * u.kelvin, _seed(seed, 3, r))
        integ.step(10000)  # 20 ps at 600 K
        mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 3000)
        p = _positions_nm(ctx)
        unfolded.append(p)
        with open(out / f"chignolin_start_unfolded{r}.pdb", "w") as fh:
            app.PDBFile.writeFile(topology, p * u.nanometer, fh)
        del ctx, integ
    return topology, system, folded_pos, unfolded, ref


# ----------------------------------------------------------------------------------------------------------------
# production (runs in worker processes)
# ----------------------------------------------------------------------------------------------------------------
def run_replica(job: dict) -> dict:
    """Equilibrate, then run Langevin dynamics and save mapped positions/forces every ``save_every_ps``."""
    mm, _, u = _omm()
    from tqdm import tqdm

    system = mm.XmlSerializer.deserialize(job["system_xml"])
    groups = -1  # every force group
    if job.get("umbrella"):
        # Harmonic restraints on dihedrals of the *selected* atoms (functions of the CG coordinates alone), in their
        # own force group, which the saved forces leave out.
        assert all(system.getForce(k).getForceGroup() == 0 for k in range(system.getNumForces()))
        um = mm.CustomTorsionForce("0.5*k_umbrella*d^2; d = min(dt, 2*pi - dt); dt = abs(theta - theta0); "
                                   "pi = 3.141592653589793")
        um.addGlobalParameter("k_umbrella", job["umbrella"]["k"])
        um.addPerTorsionParameter("theta0")
        for atoms, theta0 in zip(job["umbrella"]["atoms"], job["umbrella"]["theta0"]):
            um.addTorsion(*[int(a) for a in atoms], [float(theta0)])
        um.setForceGroup(UMBRELLA_GROUP)
        system.addForce(um)
        groups = set(range(32)) - {UMBRELLA_GROUP}
    temp = job["temperature"] * u.kelvin
    dt_ps = job["dt_fs"] * 1e-3
    integ = mm.LangevinMiddleIntegrator(temp, 1 / u.picosecond, dt_ps * u.picoseconds)
    integ.setRandomNumberSeed(job["seed"])
    plat, props = _platform(job["threads"])
    ctx = mm.Context(system, integ, plat, props)
    ctx.setPositions(job["positions_nm"] * u.nanometer)
    mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 2000)
    ctx.setVelocitiesToTemperature(temp, job["seed"] + 1)
    integ.step(int(round(job["equil_ps"] / dt_ps)))
    stride = int(round(job["save_every_ps"] / dt_ps))
    n_frames = int(round(job["ns"] * 1000.0 / job["save_every_ps"]))
    sel, assign, nb = job["selected"], job["assign"], len(job["selected"])
    pos = np.empty((n_frames, nb, 3), np.float32)
    frc = np.empty((n_frames, nb, 3), np.float32)
    fnet = 0.0
    t0 = time.time()
    bar = tqdm(range(n_frames), desc=job["label"], position=job["position"], unit="ps", mininterval=5.0,
               leave=True, dynamic_ncols=True, file=sys.stderr)
    for k in bar:
        integ.step(stride)
        # all force groups but an umbrella's; constraint forces are not included
        st = ctx.getState(getPositions=True, getForces=True, groups=groups)
        x = st.getPositions(asNumpy=True).value_in_unit(u.angstrom)
        f = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.angstrom) / KJ_PER_KCAL
        agg = np.zeros((nb, 3))
        np.add.at(agg, assign, f)
        pos[k] = x[sel]
        frc[k] = agg
        fnet = max(fnet, float(np.abs(f.sum(0)).max()))
    wall = time.time() - t0
    bar.close()
    return {
        "label": job["label"], "replica": job["replica"], "positions": pos, "forces": frc,
        "time_ps": (np.arange(1, n_frames + 1) * job["save_every_ps"]).astype(np.float32),
        "wall_s": wall, "ns_per_day": job["ns"] / wall * 86400.0, "max_abs_net_force_kcal_per_mol_A": fnet,
        "start": job["start"], "seed": job["seed"],
    }


def _run_jobs(jobs, workers):
    if workers <= 1:
        return [run_replica(j) for j in jobs]
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        return list(ex.map(run_replica, jobs))


def _subsample(n: int, max_frames: int) -> np.ndarray:
    stride = max(1, int(np.ceil(n / max_frames)))
    return np.arange(0, n, stride)


def _collect(results):
    results = sorted(results, key=lambda r: r["replica"])
    pos = np.concatenate([r["positions"] for r in results])
    frc = np.concatenate([r["forces"] for r in results])
    rep = np.concatenate([np.full(len(r["positions"]), r["replica"], np.int32) for r in results])
    tps = np.concatenate([r["time_ps"] for r in results])
    return results, pos, frc, rep, tps


def _versions():
    import openmm

    v = {"python": platform.python_version(), "numpy": np.__version__, "openmm": openmm.__version__}
    for mod in ("openmmtools", "PeptideBuilder", "Bio"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    v["platform"] = "OpenMM CPU"
    v["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    return v


# ----------------------------------------------------------------------------------------------------------------
# systems
# ----------------------------------------------------------------------------------------------------------------
def generate_chignolin(args, out: Path, bundle: Path) -> dict:
    mm, app, u = _omm()
    print(f"[chignolin] preparing starting structures (seed {args.seed})", flush=True)
    topology, system, folded, unfolded, ref = prepare_chignolin(
        args.seed, args.chignolin_unfolded, args.threads, out
    )
    assign, selected, species, names = chignolin_map(topology)
    w = bead_force_matrix(assign, len(selected))
    check_force_map(w, selected, _constraints(system))
    xml = mm.XmlSerializer.serialize(system)
    starts = [("hairpin", folded)] * args.chignolin_folded + [(f"unfolded{k}", p) for k, p in enumerate(unfolded)]
    jobs = []
    for r, (kind, p) in enumerate(starts):
        jobs.append(dict(
            system_xml=xml, positions_nm=np.asarray(p), temperature=args.chignolin_temperature, dt_fs=4.0,
            seed=_seed(args.seed, 10, r), threads=args.threads, equil_ps=10.0, save_every_ps=args.save_every_ps,
            ns=args.chignolin_ns, selected=selected, assign=assign, label=f"chignolin r{r} ({kind})", position=r,
            replica=r, start=kind,
        ))
    results, pos, frc, rep, tps = _collect(_run_jobs(jobs, args.workers))
    q = fraction_native_contacts(pos, ref)
    rmsd = kabsch_rmsd(pos, ref)
    folded_mask = rmsd < 2.0
    per_rep = []
    for r in results:
        m = rep == r["replica"]
        per_rep.append({
            "replica": r["replica"], "start": r["start"], "seed": r["seed"], "frames": int(m.sum()),
            "ns_per_day": r["ns_per_day"], "wall_s": r["wall_s"],
            "fraction_rmsd_lt_2A": float(folded_mask[m].mean()), "fraction_rmsd_lt_2.5A": float((rmsd[m] < 2.5).mean()),
            "fraction_Q_gt_0.8": float((q[m] > 0.8).mean()),
            "mean_Q": float(q[m].mean()), "mean_rmsd_A": float(rmsd[m].mean()),
            "rmsd_A_block_means": [float(c.mean()) for c in np.array_split(rmsd[m], min(20, int(m.sum())))],
            "max_abs_net_force_kcal_per_mol_A": r["max_abs_net_force_kcal_per_mol_A"],
        })
    # folded <-> unfolded transitions (RMSD < 2 Å folded, > 4 Å unfolded, hysteresis in between)
    transitions = 0
    for r in results:
        state = None
        for v in rmsd[rep == r["replica"]]:
            s = "F" if v < 2.0 else ("U" if v > 4.0 else None)
            if s is not None and state is not None and s != state:
                transitions += 1
            state = s if s is not None else state
    common = dict(
        species=species, bead_names=np.array(names), temperature=float(args.chignolin_temperature),
        frame_interval_ps=float(args.save_every_ps), reference_structure=ref,
    )
    np.savez(out / "chignolin_full.npz", positions=pos, forces=frc, replica=rep, time_ps=tps, q=q.astype(np.float32),
             rmsd=rmsd.astype(np.float32), **common)
    idx = _subsample(len(pos), args.bundle_max_frames)
    np.savez(bundle / "chignolin.npz", positions=pos[idx], forces=frc[idx], replica=rep[idx], time_ps=tps[idx],
             **common)
    return {
        "n_atoms": system.getNumParticles(), "n_constraints": system.getNumConstraints(),
        "temperature_K": args.chignolin_temperature, "dt_fs": 4.0, "hydrogen_mass_amu": 1.5, "friction_per_ps": 1.0,
        "force_field": "amber14-all.xml (ff14SB) + implicit/gbn2.xml (GBn2), NoCutoff, HBonds",
        "ns_per_replica": args.chignolin_ns, "n_replicas": len(results), "total_ns": args.chignolin_ns * len(results),
        "frames_full": int(len(pos)), "frames_bundle": int(len(idx)), "bundle_stride": int(idx[1] - idx[0]) if len(idx) > 1 else 1,
        "fraction_rmsd_lt_2A": float(folded_mask.mean()), "fraction_rmsd_lt_2.5A": float((rmsd < 2.5).mean()),
        "fraction_rmsd_gt_4A": float((rmsd > 4.0).mean()),
        "fraction_Q_gt_0.8": float((q > 0.8).mean()), "fraction_Q_lt_0.3": float((q < 0.3).mean()),
        "folded_unfolded_transitions": transitions, "native_contacts": int(len(native_contacts(ref)[0])),
        "fraction_rmsd_lt_2A_bundle": float(folded_mask[idx].mean()), "replicas": per_rep,
    }


def generate_ala2(args, out: Path, bundle: Path) -> dict:
    mm, app, u = _omm()
    from openmmtools import testsystems

    ts = testsystems.AlanineDipeptideImplicit()
    system, topology = ts.system, ts.topology
    start = np.asarray(ts.positions.value_in_unit(u.nanometer))
    assign, selected, species, names, phi_psi = ala2_map(topology)
    w = bead_force_matrix(assign, len(selected))
    check_force_map(w, selected, _constraints(system))
    with open(out / "alanine_dipeptide_start.pdb", "w") as fh:
        app.PDBFile.writeFile(topology, ts.positions, fh)
    ref = (start[selected] * 10.0).astype(np.float32)
    xml = mm.XmlSerializer.serialize(system)
    jobs = [dict(
        system_xml=xml, positions_nm=start, temperature=args.ala2_temperature, dt_fs=2.0, seed=_seed(args.seed, 20, r),
        threads=args.threads, equil_ps=10.0, save_every_ps=args.save_every_ps, ns=args.ala2_ns, selected=selected,
        assign=assign, label=f"ala2 r{r}", position=r, replica=r, start="openmmtools",
    ) for r in range(args.ala2_replicas)]
    # Umbrella windows: a grid of (φ, ψ) centres, each held by harmonic restraints on the CG dihedrals φ and ψ. The
    # restraints depend on the CG coordinates alone, so the atoms inside each bead keep their unbiased conditional
    # distribution and the saved forces (restraints left out) are samples of the same mean force; the windows fill
    # in the barrier regions the unbiased runs cross too rarely. Their frames are training data, never reference.
    grid = np.linspace(-np.pi, np.pi, args.ala2_umbrella_grid, endpoint=False)
    centres = [(a, b) for a in grid for b in grid]
    k_rad = args.ala2_umbrella_k * KJ_PER_KCAL  # kJ/mol/rad²
    jobs += [dict(
        system_xml=xml, positions_nm=start, temperature=args.ala2_temperature, dt_fs=2.0,
        seed=_seed(args.seed, 21, w), threads=args.threads, equil_ps=10.0, save_every_ps=args.save_every_ps,
        ns=args.ala2_umbrella_ps * 1e-3, selected=selected, assign=assign, label=f"ala2 window {w}",
        position=w % max(args.workers, 1), replica=args.ala2_replicas + w, start=f"umbrella({a:.2f}, {b:.2f})",
        umbrella=dict(k=k_rad, atoms=[selected[phi_psi[0]], selected[phi_psi[1]]], theta0=[a, b]),
    ) for w, (a, b) in enumerate(centres)]
    results, pos, frc, rep, tps = _collect(_run_jobs(jobs, args.workers))
    equilibrium = (rep < args.ala2_replicas).astype(np.int8)
    phi = dihedral(pos.astype(np.float64), phi_psi[0])
    psi = dihedral(pos.astype(np.float64), phi_psi[1])
    common = dict(
        species=species, bead_names=np.array(names), temperature=float(args.ala2_temperature),
        frame_interval_ps=float(args.save_every_ps), reference_structure=ref, phi_psi_atoms=phi_psi,
    )
    np.savez(out / "alanine_dipeptide_full.npz", positions=pos, forces=frc, replica=rep, time_ps=tps,
             equilibrium=equilibrium, phi=phi.astype(np.float32), psi=psi.astype(np.float32), **common)
    idx = _subsample(len(pos), args.bundle_max_frames)
    np.savez(bundle / "alanine_dipeptide.npz", positions=pos[idx], forces=frc[idx], replica=rep[idx],
             time_ps=tps[idx], equilibrium=equilibrium[idx], **common)
    eq = equilibrium.astype(bool)
    results_eq = [r for r in results if r["replica"] < args.ala2_replicas]
    # count entries into the phi > 0 region (lasting >= 2 frames) as a crude transition count
    left = phi > 0
    entries = int(sum(np.sum(left[rep == r][1:] & ~left[rep == r][:-1]) for r in range(args.ala2_replicas)))
    return {
        "n_atoms": system.getNumParticles(), "n_constraints": system.getNumConstraints(),
        "temperature_K": args.ala2_temperature, "dt_fs": 2.0, "friction_per_ps": 1.0,
        "force_field": "openmmtools AlanineDipeptideImplicit: Amber96 + OBC GBSA (CustomGBForce), NoCutoff, HBonds",
        "ns_per_replica": args.ala2_ns, "n_replicas": len(results_eq), "total_ns": args.ala2_ns * len(results_eq),
        "frames_full": int(len(pos)), "frames_equilibrium": int(eq.sum()),
        "frames_bundle": int(len(idx)),
        "bundle_stride": int(idx[1] - idx[0]) if len(idx) > 1 else 1,
        "basins_full": ramachandran_basins(phi[eq], psi[eq]),
        "basins_bundle": ramachandran_basins(phi[idx][eq[idx]], psi[idx][eq[idx]]),
        "entries_into_phi_gt_0": entries,
        "replicas": [{"replica": r["replica"], "seed": r["seed"], "ns_per_day": r["ns_per_day"], "wall_s": r["wall_s"],
                      "max_abs_net_force_kcal_per_mol_A": r["max_abs_net_force_kcal_per_mol_A"],
                      "basins": ramachandran_basins(phi[rep == r["replica"]], psi[rep == r["replica"]])}
                     for r in results_eq],
        "umbrella": {
            "windows": len(centres), "grid_per_angle": args.ala2_umbrella_grid, "ps_per_window": args.ala2_umbrella_ps,
            "k_kcal_per_mol_rad2": args.ala2_umbrella_k, "frames": int((~eq).sum()),
            "basins_all_windows": ramachandran_basins(phi[~eq], psi[~eq]),
            "seeds": [r["seed"] for r in results if r["replica"] >= args.ala2_replicas],
            "max_abs_net_force_kcal_per_mol_A": max([r["max_abs_net_force_kcal_per_mol_A"] for r in results
                                                     if r["replica"] >= args.ala2_replicas], default=None),
        },
    }


def main(argv=None):
    here = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=["chignolin", "alanine_dipeptide", "all"], default="all")
    p.add_argument("--out", type=Path, required=True, help="directory for the full data set")
    p.add_argument("--bundle-dir", type=Path, default=here / "so3krates_hk" / "data" / "cg")
    p.add_argument("--bundle-max-frames", type=int, default=3000)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--save-every-ps", type=float, default=1.0)
    p.add_argument("--chignolin-ns", type=float, default=0.5, help="production length per chignolin replica (ns)")
    p.add_argument("--chignolin-folded", type=int, default=2, help="replicas started from the hairpin model")
    p.add_argument("--chignolin-unfolded", type=int, default=2, help="replicas started from unfolded coils")
    p.add_argument("--chignolin-temperature", type=float, default=340.0)
    p.add_argument("--ala2-ns", type=float, default=2.0, help="production length per alanine-dipeptide replica (ns)")
    p.add_argument("--ala2-replicas", type=int, default=2)
    p.add_argument("--ala2-temperature", type=float, default=300.0)
    p.add_argument("--ala2-umbrella-grid", type=int, default=0,
                   help="umbrella windows: an N x N grid of (phi, psi) centres (0: none); training frames only")
    p.add_argument("--ala2-umbrella-ps", type=float, default=50.0, help="production length per umbrella window (ps)")
    p.add_argument("--ala2-umbrella-k", type=float, default=10.0,
                   help="umbrella force constant on phi and psi (kcal/mol/rad^2)")
    p.add_argument("--workers", type=int, default=2, help="replicas run in parallel processes")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OPENMM_CPU_THREADS", "1")),
                   help="OpenMM CPU threads per process (default $OPENMM_CPU_THREADS or 1)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.bundle_dir.mkdir(parents=True, exist_ok=True)
    summary = {"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
               "args": {k: str(v) for k, v in vars(args).items()}, "versions": _versions()}
    prov_path = args.bundle_dir / "provenance.json"
    if prov_path.exists():  # keep the other system's entry when only one is regenerated
        old = json.loads(prov_path.read_text())
        summary.update({k: v for k, v in old.items() if k in ("chignolin", "alanine_dipeptide")})
    t0 = time.time()
    if args.system in ("chignolin", "all"):
        t = time.time()
        summary["chignolin"] = generate_chignolin(args, args.out, args.bundle_dir)
        summary["chignolin"]["wall_s_total"] = time.time() - t
        _print_chig(summary["chignolin"])
    if args.system in ("alanine_dipeptide", "all"):
        t = time.time()
        summary["alanine_dipeptide"] = generate_ala2(args, args.out, args.bundle_dir)
        summary["alanine_dipeptide"]["wall_s_total"] = time.time() - t
        print("[ala2] basins:", json.dumps(summary["alanine_dipeptide"]["basins_full"]), flush=True)
    summary["wall_s"] = time.time() - t0
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    prov_path.write_text(json.dumps(summary, indent=1))
    print(f"done in {summary['wall_s'] / 60:.1f} min; summary in {args.out / 'summary.json'}", flush=True)


def _print_chig(s):
    print(f"[chignolin] RMSD<2Å: {s['fraction_rmsd_lt_2A']:.3f}  RMSD>4Å: {s['fraction_rmsd_gt_4A']:.3f}  "
          f"Q>0.8: {s['fraction_Q_gt_0.8']:.3f}  transitions: {s['folded_unfolded_transitions']}", flush=True)
    for r in s["replicas"]:
        print(f"   r{r['replica']} {r['start']}: RMSD<2Å {r['fraction_rmsd_lt_2A']:.3f}, mean Q {r['mean_Q']:.3f}, "
              f"{r['ns_per_day']:.1f} ns/day", flush=True)


if __name__ == "__main__":
    main()
