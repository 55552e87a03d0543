"""Compare CG MD with the reference data: observables, histograms, Jensen–Shannon divergences, and the figures.

* chignolin (Cα beads): all Cα–Cα distances (pairs |i − j| ≥ 2), the fraction of native contacts Q (Best, Hummer &
  Eaton 2013 switching function on the Cα pairs |i − j| ≥ 3 closer than 7.5 Å in the folded reference; β = 5 Å⁻¹,
  λ = 1.2) and the Cα RMSD to the folded reference after optimal superposition (Kabsch).
* alanine dipeptide (heavy atoms): the Ramachandran angles φ = C–N–Cα–C and ψ = N–Cα–C–N.

The divergence is the Jensen–Shannon divergence (base 2, between 0 and 1) of the normalised histograms.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

NATIVE_CUTOFF, Q_BETA, Q_LAMBDA = 7.5, 5.0, 1.2


def js_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> float:
    """Jensen–Shannon divergence (bits) of two histograms (normalised here)."""
    p = np.asarray(p, np.float64).ravel() + eps
    q = np.asarray(q, np.float64).ravel() + eps
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    return float(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))


def pair_distances(positions: np.ndarray, min_separation: int = 2) -> np.ndarray:
    """(T, P) distances of the bead pairs with |i − j| ≥ min_separation."""
    N = positions.shape[1]
    i, j = np.triu_indices(N, k=min_separation)
    return np.linalg.norm(positions[:, i] - positions[:, j], axis=-1)


def native_contacts(positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Fraction of native contacts Q per frame (see the module docstring)."""
    N = reference.shape[0]
    i, j = np.triu_indices(N, k=3)
    r0 = np.linalg.norm(reference[i] - reference[j], axis=-1)
    native = r0 < NATIVE_CUTOFF
    i, j, r0 = i[native], j[native], r0[native]
    r = np.linalg.norm(positions[:, i] - positions[:, j], axis=-1)
    return np.mean(1.0 / (1.0 + np.exp(Q_BETA * (r - Q_LAMBDA * r0))), axis=-1)


def kabsch_rmsd(positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RMSD per frame to ``reference`` after optimal rotation and translation."""
    ref = reference - reference.mean(0)
    out = np.empty(len(positions))
    for t, x in enumerate(positions):
        x = x - x.mean(0)
        u, s, vt = np.linalg.svd(x.T @ ref)
        d = np.sign(np.linalg.det(u @ vt))
        rot = u @ np.diag([1.0, 1.0, d]) @ vt
        out[t] = np.sqrt(np.mean(np.sum((x @ rot - ref) ** 2, axis=-1)))
    return out


def dihedral(positions: np.ndarray, atoms) -> np.ndarray:
    """Dihedral angles (rad, −π…π) of the four beads ``atoms`` in every frame."""
    p0, p1, p2, p3 = (positions[:, a] for a in atoms)
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, -1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, -1, keepdims=True) * b1n
    x = np.sum(v * w, -1)
    y = np.sum(np.cross(b1n, v) * w, -1)
    return np.arctan2(y, x)


def compare(system: str, md: np.ndarray, ref: np.ndarray, extras: dict) -> dict:
    """Histograms and divergences of the system's observables: {name: dict(bins, md, ref, js)}."""
    out = {}

    def hist1d(name, a, b, bins):
        h_md, _ = np.histogram(a, bins=bins, density=True)
        h_ref, _ = np.histogram(b, bins=bins, density=True)
        out[name] = dict(bins=bins, md=h_md, ref=h_ref, js=js_divergence(h_md, h_ref))

    if "phi_psi_atoms" in extras:
        phi_atoms, psi_atoms = np.asarray(extras["phi_psi_atoms"])
        bins = np.linspace(-np.pi, np.pi, 37)
        phi_md, psi_md = dihedral(md, phi_atoms), dihedral(md, psi_atoms)
        phi_ref, psi_ref = dihedral(ref, phi_atoms), dihedral(ref, psi_atoms)
        h_md, _, _ = np.histogram2d(phi_md, psi_md, bins=[bins, bins], density=True)
        h_ref, _, _ = np.histogram2d(phi_ref, psi_ref, bins=[bins, bins], density=True)
        out["ramachandran"] = dict(bins=bins, md=h_md, ref=h_ref, js=js_divergence(h_md, h_ref))
        hist1d("phi", phi_md, phi_ref, bins)
        hist1d("psi", psi_md, psi_ref, bins)
    else:
        d_md, d_ref = pair_distances(md).ravel(), pair_distances(ref).ravel()
        hist1d("ca_distances", d_md, d_ref, np.linspace(0, max(d_ref.max(), 1.0) * 1.2, 61))
        if "reference_structure" in extras:
            folded = np.asarray(extras["reference_structure"], np.float64)
            hist1d("native_contacts", native_contacts(md, folded), native_contacts(ref, folded), np.linspace(0, 1, 41))
            r_md, r_ref = kabsch_rmsd(md, folded), kabsch_rmsd(ref, folded)
            hist1d("rmsd_to_folded", r_md, r_ref, np.linspace(0, max(r_ref.max(), 1.0) * 1.3, 41))
    return out


def plot_comparison(results: dict, path: str, title: str = "") -> None:
    """One panel per observable (MD vs reference), plus a bar chart of the JS divergences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    panels = len(names) + 1 + ("ramachandran" in results)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8))
    k = 0
    for name in names:
        r = results[name]
        if name == "ramachandran":
            for label, h in (("reference", r["ref"]), ("CG MD", r["md"])):
                ax = axes[k]
                ext = [r["bins"][0], r["bins"][-1], r["bins"][0], r["bins"][-1]]
                ax.imshow(np.log(h.T + 1e-3), origin="lower", extent=ext, cmap="viridis", aspect="auto")
                ax.set(xlabel="φ (rad)", ylabel="ψ (rad)", title=f"Ramachandran, {label}")
                k += 1
            continue
        ax = axes[k]
        centers = 0.5 * (r["bins"][1:] + r["bins"][:-1])
        ax.plot(centers, r["ref"], label="reference (all-atom, mapped)", color="k")
        ax.plot(centers, r["md"], label="CG MD (SO3krates + priors)", color="C1")
        ax.set(xlabel=name.replace("_", " "), ylabel="density", title=f"JS = {r['js']:.3f}")
        ax.legend(fontsize=7)
        k += 1
    ax = axes[k]
    ax.bar(range(len(names)), [results[n]["js"] for n in names], color="C2")
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set(ylabel="Jensen–Shannon divergence (bits)", title="divergence", ylim=(0, 1))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_losses(history: dict, path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    epochs = np.arange(1, len(history["train_force_rmse"]) + 1)
    ax.plot(epochs, history["train_force_rmse"], "o-", label="train")
    if history.get("val_force_rmse"):
        ax.plot(epochs, history["val_force_rmse"], "s-", label="validation")
    ax.set(xlabel="epoch", ylabel="force RMSE (kcal/mol/Å)", yscale="log", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def max_bond_stretch(positions: np.ndarray, bonds: np.ndarray, bond_length: np.ndarray) -> Optional[float]:
    """max over frames and bonds of d / d₀ (None when there are no bonds)."""
    if len(bonds) == 0:
        return None
    d = np.linalg.norm(positions[:, bonds[:, 0]] - positions[:, bonds[:, 1]], axis=-1)
    return float(np.max(d / bond_length))
