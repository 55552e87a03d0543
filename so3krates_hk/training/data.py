"""CG datasets: the bundled ones (``so3krates_hk/data/cg``, made by ``scripts/generate_cg_data.py``) or any ``.npz``
with the same keys. Units: positions Å, forces kcal/mol/Å, temperature K."""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from typing import Optional

import numpy as np

BOLTZMANN_KCAL_PER_MOL_K = 0.0019872042586408316  # k_B in kcal/mol/K
BUNDLED_CG = ("chignolin", "alanine_dipeptide")
REQUIRED_KEYS = ("positions", "forces", "species", "temperature")


@dataclasses.dataclass
class CGDataset:
    name: str
    positions: np.ndarray  # (T, N, 3) Å
    forces: np.ndarray  # (T, N, 3) kcal/mol/Å
    species: np.ndarray  # (N,) int
    temperature: float  # K
    extras: dict  # everything else in the file (reference_structure, phi_psi_atoms, bead_names, masses, …)

    @property
    def kT(self) -> float:
        return BOLTZMANN_KCAL_PER_MOL_K * self.temperature

    @property
    def num_frames(self) -> int:
        return len(self.positions)

    def subset(self, index) -> "CGDataset":
        return dataclasses.replace(self, positions=self.positions[index], forces=self.forces[index])


def dataset_path(name_or_path: str) -> str:
    if name_or_path in BUNDLED_CG:
        return str(resources.files("so3krates_hk.data").joinpath("cg", f"{name_or_path}.npz"))
    return name_or_path


def load_cg_dataset(name_or_path: str, max_frames: Optional[int] = None) -> CGDataset:
    """Load a CG dataset; ``max_frames`` keeps an even stride of at most that many frames."""
    path = dataset_path(name_or_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"CG dataset {name_or_path!r} not found ({path}); bundled: {BUNDLED_CG}.")
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; a CG dataset needs {REQUIRED_KEYS}.")
    R, F = np.asarray(data.pop("positions"), np.float32), np.asarray(data.pop("forces"), np.float32)
    species = np.asarray(data.pop("species"), np.int32)
    if R.ndim != 3 or R.shape[2] != 3 or R.shape != F.shape or species.shape != (R.shape[1],):
        raise ValueError(f"{path}: inconsistent shapes positions {R.shape}, forces {F.shape}, species {species.shape}.")
    if not (np.isfinite(R).all() and np.isfinite(F).all()):
        raise ValueError(f"{path}: positions or forces contain NaN/inf.")
    name = os.path.splitext(os.path.basename(path))[0]
    ds = CGDataset(name, R, F, species, float(data.pop("temperature")), data)
    if max_frames is not None and ds.num_frames > max_frames:
        ds = ds.subset(np.linspace(0, ds.num_frames - 1, max_frames).round().astype(int))
    return ds


def split_indices(n: int, train_fraction: float, val_fraction: float, seed: int):
    """A seeded random split of n frames into (train, validation, test) index arrays."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(train_fraction * n))
    n_val = int(round(val_fraction * n))
    return np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_val]), np.sort(perm[n_train + n_val :])
