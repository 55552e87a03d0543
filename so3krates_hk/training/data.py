"""CG datasets: the bundled ones (``so3krates_hk/data/cg``, made by ``scripts/generate_cg_data.py``), one written by
``so3krates-hk data mdcath``, or any ``.npz`` with the same keys. Units: positions Å, forces kcal/mol/Å,
temperature K.

Keys: ``positions`` (T, n, 3), ``forces`` (T, n, 3), ``species`` (n,), ``temperature`` (a scalar, or (T,) per frame);
optional per-frame ``replica`` (which trajectory a frame came from), ``time_ps`` and ``equilibrium`` (1 for a frame
of an unbiased equilibrium run, 0 for one sampled under a bias on the CG coordinates, e.g. an umbrella window: such
frames carry valid mean-force samples and are trained on, but their distribution is not the reference ensemble, so
the MD comparison leaves them out); anything else (e.g.
``reference_structure``, ``phi_psi_atoms``, ``bead_names``, ``masses``) is kept in ``extras``.

A CG force field is a potential of mean force at one temperature, so a file with frames at several temperatures must
be narrowed to one (``temperature=``). A ``box`` is refused: integrating out the solvent leaves the protein in free
space, so CG frames must be whole molecules without a box (``so3krates-hk data mdcath`` writes them so).

Splits (:func:`split_frames`) keep correlated frames together: whole trajectories, or contiguous time blocks of one
trajectory, never single frames drawn at random from a time series.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from typing import Optional

import numpy as np

from so3krates_hk.errors import UserError

BOLTZMANN_KCAL_PER_MOL_K = 0.0019872042586408316  # k_B in kcal/mol/K
BUNDLED_CG = ("chignolin", "alanine_dipeptide")
REQUIRED_KEYS = ("positions", "forces", "species", "temperature")
PER_FRAME_KEYS = ("replica", "time_ps", "frame_index", "equilibrium")
SPLITS = ("blocks", "trajectory")


class DatasetError(UserError):
    """A CG dataset that cannot be used as it is; the message says why."""


@dataclasses.dataclass
class CGDataset:
    name: str
    positions: np.ndarray  # (T, N, 3) Å
    forces: np.ndarray  # (T, N, 3) kcal/mol/Å
    species: np.ndarray  # (N,) int
    temperature: float  # K
    extras: dict  # everything else; the per-frame arrays (PER_FRAME_KEYS) are subset with the frames

    @property
    def kT(self) -> float:
        return BOLTZMANN_KCAL_PER_MOL_K * self.temperature

    @property
    def num_frames(self) -> int:
        return len(self.positions)

    def reference(self) -> "CGDataset":
        """The frames of the reference ensemble: all, or those with ``equilibrium`` = 1 where the file says."""
        if "equilibrium" not in self.extras:
            return self
        return self.subset(np.nonzero(np.asarray(self.extras["equilibrium"]) != 0)[0])

    @property
    def replica(self) -> np.ndarray:
        """Trajectory id of every frame (all 0 when the file has no ``replica``)."""
        return np.asarray(self.extras.get("replica", np.zeros(self.num_frames, np.int64)))

    def subset(self, index) -> "CGDataset":
        index = np.asarray(index, dtype=np.int64)
        extras = {k: (np.asarray(v)[index] if k in PER_FRAME_KEYS else v) for k, v in self.extras.items()}
        return dataclasses.replace(self, positions=self.positions[index], forces=self.forces[index], extras=extras)


def dataset_path(name_or_path: str) -> str:
    if name_or_path in BUNDLED_CG:
        return str(resources.files("so3krates_hk.data").joinpath("cg", f"{name_or_path}.npz"))
    return name_or_path


def load_cg_dataset(name_or_path: str, max_frames: Optional[int] = None,
                    temperature: Optional[float] = None) -> CGDataset:  # fmt: skip
    """Load a CG dataset; ``temperature`` keeps the frames at that temperature (K), ``max_frames`` then keeps an
    even stride of at most that many frames. ``extras["frame_index"]`` is each frame's index in the file."""
    path = dataset_path(name_or_path)
    if not os.path.exists(path):
        raise DatasetError(f"CG dataset {name_or_path!r} not found ({path}); bundled: {BUNDLED_CG}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (ValueError, OSError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e}).") from None
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {missing}; a CG dataset needs {REQUIRED_KEYS}.")
    if "box" in data:
        raise DatasetError(f"{path}: has a 'box'. CG training here is in free space (the solvent is integrated out): "
                           "make each frame a whole molecule (unwrap it across the boundaries) and remove 'box'.")
    R, F = np.asarray(data.pop("positions"), np.float32), np.asarray(data.pop("forces"), np.float32)
    species = np.asarray(data.pop("species"), np.int32)
    T = len(R)
    if R.ndim != 3 or R.shape[2] != 3 or R.shape != F.shape or species.shape != (R.shape[1],):
        raise DatasetError(f"{path}: inconsistent shapes positions {R.shape}, forces {F.shape}, "
                           f"species {species.shape}.")  # fmt: skip
    if not (np.isfinite(R).all() and np.isfinite(F).all()):
        raise DatasetError(f"{path}: positions or forces contain NaN/inf.")
    for key in PER_FRAME_KEYS:
        if key in data and np.shape(data[key]) != (T,):
            raise DatasetError(f"{path}: '{key}' must have one entry per frame ({T}); got shape {np.shape(data[key])}.")
    data["frame_index"] = np.arange(T)
    temps = np.asarray(data.pop("temperature"), np.float64)
    if temps.ndim == 0:
        temps = np.full(T, float(temps))
    elif temps.shape != (T,):
        raise DatasetError(f"{path}: 'temperature' must be a scalar or one value per frame; got shape {temps.shape}.")
    keep = np.arange(T)
    if temperature is not None:
        keep = np.nonzero(np.isclose(temps, temperature))[0]
        if len(keep) == 0:
            raise DatasetError(f"{path}: no frames at {temperature:g} K; it has {sorted(set(temps.tolist()))} K.")
    elif len(np.unique(temps)) > 1:
        raise DatasetError(f"{path}: frames at several temperatures {sorted(set(temps.tolist()))} K; a CG force field "
                           "is a free energy at one temperature: choose one (data.temperature).")  # fmt: skip
    name = os.path.splitext(os.path.basename(path))[0]
    ds = CGDataset(name, R, F, species, float(temps[keep[0]]), data).subset(keep) if T else None
    if ds is None:
        raise DatasetError(f"{path}: no frames.")
    if max_frames is not None and ds.num_frames > max_frames:
        ds = ds.subset(np.linspace(0, ds.num_frames - 1, max_frames).round().astype(int))
    return ds


def split_indices(n: int, train_fraction: float, val_fraction: float, seed: int):
    """A seeded random split of n independent samples into (train, validation, test) index arrays (for sets of
    uncorrelated frames, e.g. fine-tuning data; CG time series use :func:`split_frames`)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(train_fraction * n))
    n_val = int(round(val_fraction * n))
    return np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_val]), np.sort(perm[n_train + n_val :])


def split_frames(ds: CGDataset, train_fraction: float, val_fraction: float, seed: int, how: str = "blocks",
                 block_frames: int = 50, gap_frames: int = 0):  # fmt: skip
    """(train, validation, test) frame indices that keep correlated frames together.

    ``how="trajectory"``: whole trajectories (``replica``) go to one set; the seeded order of the trajectories is cut
    at the fractions (each set gets at least one trajectory where the fraction is > 0).
    ``how="blocks"``: every trajectory is cut into contiguous blocks of ``block_frames`` frames (in file order), and
    the blocks are dealt to the sets in a seeded random order at the fractions (a set whose fraction is > 0 gets at
    least one block). ``gap_frames`` frames at the start of a block whose predecessor in the same trajectory went to
    another set are dropped, so no test frame sits next to a training frame.
    """
    if how not in SPLITS:
        raise DatasetError(f"data.split must be one of {SPLITS}; got {how!r}.")
    rng = np.random.default_rng(seed)
    replica = ds.replica
    ids = list(dict.fromkeys(replica.tolist()))  # trajectories in file order
    if how == "trajectory":
        units = [np.nonzero(replica == r)[0] for r in ids]
    else:
        units = []
        for r in ids:
            frames = np.nonzero(replica == r)[0]
            units += [frames[s : s + block_frames] for s in range(0, len(frames), block_frames)]
    n = len(units)
    n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
    n_test = int(round((1 - train_fraction - val_fraction) * n))
    # a set whose fraction is > 0 gets at least one unit, never silently none
    n_val = max(n_val, 1) if val_fraction > 0 else 0
    n_test = max(n_test, 1) if 1 - train_fraction - val_fraction > 1e-9 else 0
    if n - n_val - n_test < 1:
        raise DatasetError(f"Cannot split {n} {'trajectories' if how == 'trajectory' else 'blocks'} into train, "
                           f"validation and test at fractions {train_fraction}, {val_fraction}; use "
                           f"data.split: blocks or smaller data.block_frames.")  # fmt: skip
    order = rng.permutation(n)
    label = np.empty(n, np.int64)
    label[order[: n - n_val - n_test]] = 0
    label[order[n - n_val - n_test : n - n_test]] = 1
    label[order[n - n_test :]] = 2
    sets = ([], [], [])
    for k, frames in enumerate(units):
        same_trajectory = k > 0 and replica[units[k - 1][0]] == replica[frames[0]]
        prev_other = how == "blocks" and same_trajectory and label[k - 1] != label[k]
        sets[label[k]].append(frames[gap_frames:] if prev_other else frames)
    return tuple(np.sort(np.concatenate(s)) if s else np.zeros(0, np.int64) for s in sets)
