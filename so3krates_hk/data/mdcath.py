"""mdCATH domains to the one-bead-per-residue CG dataset the training job reads (``so3krates-hk data mdcath``).

mdCATH (Mirarchi et al., Sci. Data 11, 1299, 2024) stores one CATH domain per HDF5 file
``mdcath_dataset_<domain>.h5``: one top group named after the domain, with the attributes ``numProteinAtoms`` and
``numResidues``, the per-atom datasets ``resname``, ``resid``, ``element``, ``z`` and the PDB text
``pdbProteinAtoms``; then one group per temperature (``"320"``, ``"348"``, ``"379"``, ``"413"``, ``"450"`` K), each
with one group per replica (``"0"`` … ``"4"``) holding ``coords`` and ``forces`` (frames × atoms × 3, Å and
kcal/mol/Å), ``box`` and per-frame analyses (``rmsd``, ``gyrationRadius``, ``dssp``, …).

The CG map (the same as ``scripts/generate_cg_data.py``'s for chignolin):

* one bead per residue at its Cα: R_I = r_{Cα(I)} (a selection map M);
* the force on bead I is the sum of the forces on all atoms α of residue I: F_I = Σ_{α∈I} f_α (a force map W with
  W Mᵀ = I, so W f is an unbiased sample of the CG mean force);
* species: the residue's index in the alphabet ``ACDEFGHIKLMNPQRSTVWY`` (one-letter codes in alphabetical order,
  0–19), with the protonation and disulfide variants of force fields (HSD, HSE, HSP, HID, HIE, HIP, CYX, …)
  mapped onto their residue.

Solvated frames sit in a periodic box; the CG model integrates the solvent out, so the written frames are whole
chains in free space: with a box, each Cα is placed at the minimum image of the previous one along the chain (the
forces do not change). The output has no ``box``.

Written keys: ``positions`` (T, n, 3) and ``forces`` (T, n, 3) float32, ``species`` (n,), ``temperature`` (T,) K,
``replica`` (T,), ``frame_in_replica`` (T,), ``bead_names`` (n,), ``reference_structure`` (n, 3) (the Cα of
``pdbProteinAtoms``, the domain's starting structure), ``domain``, ``source``.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from so3krates_hk.errors import UserError

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
THREE_TO_ONE = {
    "ALA": "A", "CYS": "C", "ASP": "D", "GLU": "E", "PHE": "F", "GLY": "G", "HIS": "H", "ILE": "I", "LYS": "K",
    "LEU": "L", "MET": "M", "ASN": "N", "PRO": "P", "GLN": "Q", "ARG": "R", "SER": "S", "THR": "T", "VAL": "V",
    "TRP": "W", "TYR": "Y",
    # protonation states and variants (CHARMM, AMBER)
    "HSD": "H", "HSE": "H", "HSP": "H", "HID": "H", "HIE": "H", "HIP": "H", "HSC": "H",
    "CYX": "C", "CYM": "C", "ASH": "D", "ASPP": "D", "GLH": "E", "GLUP": "E", "LYN": "K", "LSN": "K",
}  # fmt: skip
MDCATH_TEMPERATURES = ("320", "348", "379", "413", "450")


class MdcathError(UserError):
    """An mdCATH file that cannot be read as expected; the message names the missing or inconsistent piece."""


def _text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


def _pdb_atoms(pdb: str) -> list[tuple[str, str, str]]:
    """(atom name, residue name, residue key) of every ATOM/HETATM record, in order."""
    atoms = []
    for line in pdb.splitlines():
        if line.startswith(("ATOM", "HETATM")):
            atoms.append((line[12:16].strip(), line[17:21].strip(), line[21:27]))
    return atoms


def _pdb_positions(pdb: str) -> np.ndarray:
    rows = [line for line in pdb.splitlines() if line.startswith(("ATOM", "HETATM"))]
    try:
        return np.array([[float(r[30:38]), float(r[38:46]), float(r[46:54])] for r in rows])
    except ValueError:
        return np.zeros((0, 3))


def _box_lengths(box, frames: int, where: str) -> Optional[np.ndarray]:
    """Orthorhombic box edge lengths per frame (frames, 3), or None when there is no usable box."""
    if box is None:
        return None
    b = np.asarray(box, np.float64)
    if b.size == 0:
        return None
    if b.shape[-2:] == (3, 3):
        diag = np.diagonal(b, axis1=-2, axis2=-1)
        off = b - np.eye(3) * diag[..., None, :]
        if np.abs(off).max() > 1e-6:
            raise MdcathError(f"{where}/box is not orthorhombic; triclinic boxes are not supported.")
        b = diag
    b = b.reshape(-1, 3)
    if len(b) == 1:
        b = np.repeat(b, frames, 0)
    if len(b) != frames:
        raise MdcathError(f"{where}/box has {len(b)} entries for {frames} frames.")
    return None if np.all(b == 0) else b


def _whole_chain(ca: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
    """Each Cα at the minimum image of the previous one (frames, n, 3)."""
    if lengths is None:
        return ca
    ca = ca.copy()
    L = lengths[:, None, :]
    for i in range(1, ca.shape[1]):
        d = ca[:, i] - ca[:, i - 1]
        ca[:, i] -= L[:, 0] * np.round(d / L[:, 0])
    return ca


def read_mdcath(path: str, temperatures: Optional[Sequence] = None, replicas: Optional[Sequence] = None) -> dict:
    """Read an mdCATH domain file into CG arrays (see the module docstring); ``temperatures`` (K) and ``replicas``
    select groups (default: all present)."""
    from so3krates_hk.errors import require

    require("h5py", "mdcath", "Reading mdCATH files")
    import h5py

    if not os.path.exists(path):
        raise MdcathError(f"{path}: no such file.")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise MdcathError(f"{path}: not an HDF5 file ({e}).") from None
    with f:
        domains = list(f.keys())
        if len(domains) != 1:
            raise MdcathError(f"{path}: expected one top group (the domain); found {domains}.")
        domain = domains[0]
        g = f[domain]

        def need(name, where=g):
            if name not in where:
                raise MdcathError(f"{path}: missing '{where.name.strip('/')}/{name}'.")
            return where[name]

        for attr in ("numProteinAtoms", "numResidues"):
            if attr not in g.attrs:
                raise MdcathError(f"{path}: missing attribute '{domain}.{attr}'.")
        n_atoms, n_res = int(g.attrs["numProteinAtoms"]), int(g.attrs["numResidues"])
        resname, resid = _text(need("resname")[()]), np.asarray(need("resid")[()]).ravel()
        pdb = need("pdbProteinAtoms")[()]
        pdb = pdb.decode() if isinstance(pdb, bytes) else _text(pdb)[0]
        atoms = _pdb_atoms(pdb)
        for name, arr in (("resname", resname), ("resid", resid), ("pdbProteinAtoms records", atoms)):
            if len(arr) != n_atoms:
                raise MdcathError(f"{path}: {name} has {len(arr)} entries; numProteinAtoms is {n_atoms}.")

        # Residues: runs of equal resid, in file order.
        starts = np.r_[0, np.nonzero(np.diff(resid))[0] + 1]
        if len(starts) != n_res:
            raise MdcathError(f"{path}: resid has {len(starts)} residues; numResidues is {n_res}.")
        residue_of_atom = np.repeat(np.arange(n_res), np.diff(np.r_[starts, n_atoms]))
        ca_index, species, names = [], [], []
        for r, s in enumerate(starts):
            members = np.nonzero(residue_of_atom == r)[0]
            cas = [a for a in members if atoms[a][0] == "CA"]
            rname = resname[s]
            if len(cas) != 1:
                raise MdcathError(f"{path}: residue {rname}{resid[s]} has {len(cas)} atoms named CA (need one).")
            if rname not in THREE_TO_ONE:
                raise MdcathError(f"{path}: residue name {rname!r} (resid {resid[s]}) is not a standard amino acid; "
                                  f"known: {sorted(THREE_TO_ONE)}.")  # fmt: skip
            ca_index.append(cas[0])
            species.append(AMINO_ACIDS.index(THREE_TO_ONE[rname]))
            names.append(f"{rname}{resid[s]}")
        ca_index = np.asarray(ca_index)

        present = [k for k in g.keys() if k in MDCATH_TEMPERATURES or k.isdigit()]
        if not present:
            raise MdcathError(f"{path}: no temperature groups in '{domain}' (expected {MDCATH_TEMPERATURES}).")
        wanted = present if not temperatures else [str(int(float(t))) for t in temperatures]
        for t in wanted:
            if t not in present:
                raise MdcathError(f"{path}: no temperature {t} K; the file has {present}.")
        positions, forces, temps, reps, frame_ids = [], [], [], [], []
        for t in wanted:
            tg = g[t]
            have = sorted(tg.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else k))
            reps_wanted = have if replicas is None else [str(int(r)) for r in replicas]
            for r in reps_wanted:
                if r not in tg:
                    raise MdcathError(f"{path}: no replica {r} at {t} K; it has {have}.")
                rg = tg[r]
                coords, frc = np.asarray(need("coords", rg)[()]), np.asarray(need("forces", rg)[()])
                where = f"{domain}/{t}/{r}"
                if coords.ndim != 3 or coords.shape[1:] != (n_atoms, 3) or coords.shape != frc.shape:
                    raise MdcathError(f"{path}: {where} coords {coords.shape} and forces {frc.shape} must both be "
                                      f"(frames, {n_atoms}, 3).")  # fmt: skip
                if not (np.isfinite(coords).all() and np.isfinite(frc).all()):
                    raise MdcathError(f"{path}: {where} has NaN/inf coordinates or forces.")
                T = len(coords)
                lengths = _box_lengths(rg["box"][()] if "box" in rg else None, T, f"{path}: {where}")
                bead_f = np.zeros((T, n_res, 3))
                np.add.at(bead_f, (slice(None), residue_of_atom), frc.astype(np.float64))
                positions.append(_whole_chain(coords[:, ca_index].astype(np.float64), lengths))
                forces.append(bead_f)
                temps.append(np.full(T, float(t)))
                reps.append(np.full(T, int(r)))
                frame_ids.append(np.arange(T))
    if not positions or sum(len(p) for p in positions) == 0:
        raise MdcathError(f"{path}: the selected groups hold no frames.")
    ref = _pdb_positions(pdb)
    out = dict(
        positions=np.concatenate(positions).astype(np.float32), forces=np.concatenate(forces).astype(np.float32),
        species=np.asarray(species, np.int32), temperature=np.concatenate(temps), replica=np.concatenate(reps),
        frame_in_replica=np.concatenate(frame_ids), bead_names=np.asarray(names), domain=np.asarray(domain),
        source=np.asarray(f"mdCATH {os.path.basename(path)}: Cα beads, forces summed per residue"),
    )  # fmt: skip
    if len(ref) == n_atoms:
        out["reference_structure"] = ref[ca_index].astype(np.float32)
    return out


def mdcath_to_npz(path: str, output: str, temperatures: Optional[Sequence] = None,
                  replicas: Optional[Sequence] = None) -> dict:  # fmt: skip
    """Read ``path`` (see :func:`read_mdcath`) and write the CG ``.npz``; returns a short summary."""
    data = read_mdcath(path, temperatures, replicas)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    np.savez_compressed(output, **data)
    return dict(domain=str(data["domain"]), beads=len(data["species"]), frames=len(data["positions"]),
                temperatures=sorted(set(data["temperature"].tolist())),
                replicas=sorted(set(data["replica"].tolist())), output=output)  # fmt: skip
