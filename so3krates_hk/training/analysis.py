"""Compare CG MD with the reference data: observables, histograms, Jensen–Shannon divergences, and the figures.

* chignolin (Cα beads): all Cα–Cα distances (pairs |i − j| ≥ 2), the fraction of native contacts Q and the Cα RMSD
  to the folded reference after optimal superposition (Kabsch). A frame counts as folded when Q ≥ 0.8.

  Q is the smooth native-contact fraction of Best, Hummer & Eaton (PNAS 110, 17874, 2013),

      Q(X) = (1/|S|) Σ_{(i,j)∈S} 1 / (1 + exp(β (r_ij(X) − λ r⁰_ij))),

  over the native pairs S: beads with |i − j| ≥ 3 closer than 7.5 Å in the folded reference (distances r⁰_ij);
  β = 5 Å⁻¹ and λ = 1.5 (their value for Cα models). This is the one definition of Q in the project:
  ``scripts/generate_cg_data.py`` uses these functions too.
* alanine dipeptide (heavy atoms): the Ramachandran angles φ = C–N–Cα–C and ψ = N–Cα–C–N.

The divergence is the Jensen–Shannon divergence (base 2, between 0 and 1) of the normalised histograms.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

NATIVE_CUTOFF, NATIVE_MIN_SEPARATION, Q_BETA, Q_LAMBDA = 7.5, 3, 5.0, 1.5
FOLDED_Q = 0.8


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


def native_pairs(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The native pairs (i, j) of a folded reference (n, 3) and their distances r⁰_ij (see the module docstring)."""
    reference = np.asarray(reference, np.float64)
    i, j = np.triu_indices(len(reference), k=NATIVE_MIN_SEPARATION)
    r0 = np.linalg.norm(reference[i] - reference[j], axis=-1)
    native = r0 < NATIVE_CUTOFF
    return i[native], j[native], r0[native]


def native_contacts(positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Fraction of native contacts Q per frame of ``positions`` (T, n, 3) (see the module docstring)."""
    i, j, r0 = native_pairs(reference)
    r = np.linalg.norm(np.asarray(positions)[:, i] - np.asarray(positions)[:, j], axis=-1)
    return np.mean(1.0 / (1.0 + np.exp(np.minimum(Q_BETA * (r - Q_LAMBDA * r0), 50.0))), axis=-1)


def kabsch_rmsd(positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RMSD per frame of ``positions`` (T, n, 3) to ``reference`` (n, 3) after optimal rotation and translation:
    RMSD² = (Σ|x|² + Σ|y|² − 2 Σ_k d_k s_k) / n with the singular values s_k of Xᵀ Y and d = (1, 1, sign det)."""
    x = np.asarray(positions, np.float64)
    x = x - x.mean(1, keepdims=True)
    r = np.asarray(reference, np.float64)
    r = r - r.mean(0)
    u, s, vt = np.linalg.svd(np.einsum("tni,nj->tij", x, r))
    s[:, -1] *= np.sign(np.linalg.det(np.einsum("tij,tjk->tik", u, vt)))
    msd = (np.sum(x**2, (1, 2)) + np.sum(r**2) - 2 * s.sum(1)) / x.shape[1]
    return np.sqrt(np.maximum(msd, 0.0))


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


def folded_fraction_vs_time(replicas: list, reference: np.ndarray, frame_ps: float, windows: int = 10) -> list:
    """Per replica (a list of (T_r, n, 3) frame arrays): the fraction of frames with Q ≥ ``FOLDED_Q`` in ``windows``
    consecutive time windows, as dict(time_ps=window ends, folded_fraction=…). A replica that stopped early (an
    unstable run) has fewer frames and so covers less time."""
    out = []
    for frames in replicas:
        frames = np.asarray(frames)
        if len(frames) == 0:
            out.append(dict(time_ps=[], folded_fraction=[]))
            continue
        folded = native_contacts(frames, reference) >= FOLDED_Q
        edges = np.unique(np.linspace(0, len(frames), min(windows, len(frames)) + 1).round().astype(int))
        fractions = [float(folded[s:e].mean()) for s, e in zip(edges[:-1], edges[1:])]
        out.append(dict(time_ps=[float(e * frame_ps) for e in edges[1:]], folded_fraction=fractions))
    return out


def plot_folded_fraction(curves: dict, path: str, reference_fraction: Optional[float] = None, title: str = "") -> None:
    """Folded fraction against simulated time, one line per replica, one panel per model (``curves``: label ->
    the list :func:`folded_fraction_vs_time` returns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 3.6), squeeze=False)
    for ax, (label, replicas) in zip(axes[0], curves.items()):
        for r, c in enumerate(replicas):
            ax.plot(c["time_ps"], c["folded_fraction"], "o-", ms=3, label=f"replica {r}")
        if reference_fraction is not None:
            ax.axhline(reference_fraction, color="k", ls="--", lw=1, label="reference data")
        ax.set(xlabel="simulated time (ps)", ylabel=f"folded fraction (Q ≥ {FOLDED_Q})", ylim=(-0.03, 1.03),
               title=label)  # fmt: skip
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_comparison(results: dict, path: str, title: str = "", baseline: Optional[dict] = None,
                    labels: tuple = ("CG MD (SO3krates + priors)", "CG MD (priors alone)")) -> None:  # fmt: skip
    """One panel per observable: reference, ``results`` (the trained model's MD) and ``baseline`` (the priors-only
    MD, same bins), plus a bar chart of the JS divergences. Either set may be empty (an MD run that produced no
    finite frames): the figure then says so instead of plotting it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = baseline or {}
    names = list(dict.fromkeys([*results, *baseline]))
    if not names:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.axis("off")
        ax.text(0.5, 0.5, "No finite MD frames to compare (the runs were unstable).", ha="center", va="center")
        fig.suptitle(title)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    sets = [(labels[0], results, "C1"), (labels[1], baseline, "C0")]
    rama = "ramachandran" in names
    panels = len(names) + 1 + (2 if rama else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8))
    k = 0
    for name in names:
        ref_set = results.get(name) or baseline[name]
        if name == "ramachandran":
            images = [("reference", ref_set["ref"])] + [(lab, res[name]["md"]) for lab, res, _ in sets if name in res]
            for label, h in images + [(lab, None) for lab, res, _ in sets if name not in res]:
                ax = axes[k]
                ext = [ref_set["bins"][0], ref_set["bins"][-1], ref_set["bins"][0], ref_set["bins"][-1]]
                if h is None:
                    ax.text(0.5, 0.5, "unstable: no frames", ha="center", va="center", transform=ax.transAxes)
                else:
                    ax.imshow(np.log(h.T + 1e-3), origin="lower", extent=ext, cmap="viridis", aspect="auto")
                ax.set(xlabel="φ (rad)", ylabel="ψ (rad)", title=f"Ramachandran, {label}")
                ax.title.set_fontsize(8)
                k += 1
            continue
        ax = axes[k]
        centers = 0.5 * (ref_set["bins"][1:] + ref_set["bins"][:-1])
        ax.plot(centers, ref_set["ref"], label="reference (all-atom, mapped)", color="k")
        js = []
        for label, res, color in sets:
            if name in res:
                ax.plot(centers, res[name]["md"], label=label, color=color)
                js.append(f"{res[name]['js']:.3f}")
            else:
                js.append("n/a")
        ax.set(xlabel=name.replace("_", " "), ylabel="density", title=f"JS = {js[0]} (priors alone: {js[1]})")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
        k += 1
    ax = axes[k]
    x = np.arange(len(names))
    for shift, (label, res, color) in zip((-0.2, 0.2), sets):
        ax.bar(x + shift, [res[n]["js"] if n in res else 0.0 for n in names], width=0.4, color=color, label=label)
    ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set(ylabel="Jensen–Shannon divergence (bits)", title="divergence from the reference", ylim=(0, 1))
    ax.legend(fontsize=7)
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
