"""Bundled data: element symbols, a minimal extended-XYZ reader, and SO3LR's reference structures.

``so3lr_reference/`` holds the test structures and reference energies/forces of the original SO3LR (float64, its
jax-md path), MIT-licensed (``LICENSE-SO3LR`` beside them). The reference runs used: positions in Å as read; free
space for the molecules; for water the cell from the file, atoms wrapped, repeated 2×2×2, periodic with minimum
image. Short-range cutoff 4.5 Å, long-range 12 Å.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from typing import Optional

import numpy as np

# fmt: off
ELEMENTS = (
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",
    "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce",
    "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir",
    "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc",
    "Lv", "Ts", "Og",
)
# fmt: on
_Z = {s: z for z, s in enumerate(ELEMENTS) if z > 0}

REFERENCE_MOLECULES = ("atat", "dha", "bb")
REFERENCE_NAMES = REFERENCE_MOLECULES + ("water",)


def atomic_number(symbol: str) -> int:
    """Z of an element symbol (case-insensitive); a clear error for anything else."""
    key = symbol.strip().capitalize()
    if key not in _Z:
        raise ValueError(f"Unknown element symbol {symbol!r}.")
    return _Z[key]


@dataclasses.dataclass
class Structure:
    positions: np.ndarray  # (N, 3) Å
    atomic_numbers: np.ndarray  # (N,) int
    cell: Optional[np.ndarray] = None  # (3, 3) rows are lattice vectors, Å; None for free space
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def num_atoms(self) -> int:
        return len(self.atomic_numbers)


def read_xyz(text: str) -> Structure:
    """Parse the first frame of an (extended) XYZ text: species and positions, and ``Lattice=`` if present."""
    lines = text.strip("\n").splitlines()
    n = int(lines[0].split()[0])
    comment = lines[1]
    cell = None
    m = re.search(r'Lattice="([^"]+)"', comment)
    if m:
        cell = np.array([float(v) for v in m.group(1).split()]).reshape(3, 3)
    info = {k: v for k, v in re.findall(r'(\w+)=([^\s"]+)', comment)}
    symbols, pos = [], []
    for line in lines[2 : 2 + n]:
        parts = line.split()
        symbols.append(parts[0])
        pos.append([float(v) for v in parts[1:4]])
    if len(symbols) != n:
        raise ValueError(f"XYZ header promises {n} atoms, found {len(symbols)}.")
    z = np.array([atomic_number(s) for s in symbols], np.int32)
    return Structure(np.array(pos, np.float64), z, cell, info)


def _reference_file(name: str):
    return resources.files("so3krates_hk.data").joinpath("so3lr_reference", name)


def reference_structure(name: str) -> Structure:
    """A reference structure set up as the reference run was: molecules in free space, water wrapped and ×(2,2,2)."""
    if name not in REFERENCE_NAMES:
        raise ValueError(f"Unknown reference structure {name!r}; choose one of {REFERENCE_NAMES}.")
    if name == "water":
        return water_box((2, 2, 2))
    s = read_xyz(_reference_file(f"{name}.xyz").read_text())
    s.cell = None
    return s


def water_box(repeats: tuple[int, int, int] = (2, 2, 2)) -> Structure:
    """The 64-molecule water box (12.4 Å cube), atoms wrapped into the cell, repeated ``repeats`` times."""
    s = read_xyz(_reference_file("water_64.xyz").read_text())
    cell = s.cell
    frac = np.linalg.solve(cell.T, s.positions.T).T
    frac = frac - np.floor(frac)
    pos = frac @ cell
    shifts = np.array([[i, j, k] for i in range(repeats[0]) for j in range(repeats[1]) for k in range(repeats[2])])
    positions = np.concatenate([pos + sh @ cell for sh in shifts])
    numbers = np.tile(s.atomic_numbers, len(shifts))
    return Structure(positions, numbers, cell * np.array(repeats)[:, None])


def reference_result(name: str) -> tuple[float, np.ndarray]:
    """(energy in eV, forces in eV/Å) of the original SO3LR on a reference structure (``*_jaxmd.npz``)."""
    with _reference_file(f"{name}_jaxmd.npz").open("rb") as f:
        data = np.load(f)
        return float(data["energy"]), np.array(data["forces"])


# The original's per-component energies (eV, docs/model.md, "Reference data") at total charge Q and unpaired
# electrons S, ordered (total, nn, zbl, elec, disp).
REFERENCE_COMPONENTS: dict[tuple[str, int, int], tuple[float, float, float, float, float]] = {
    ("atat", 0, 0): (-110.57581783053112, -109.76224489671205, 5.476252431143418, -5.193433492400086, -1.0963918725621158),
    ("atat", 1, 0): (-110.91988839052391, -110.272527324854, 5.476252431143418, -5.046195651466945, -1.0774180141423688),
    ("atat", -1, 0): (-109.3021590213487, -109.56915807226613, 5.476252431143418, -4.103837683459872, -1.1054157658533064),
    ("atat", 0, 2): (-110.6030204693467, -109.68995829440784, 5.476252431143418, -5.299151051816805, -1.0901635546029032),
    ("dha", 0, 0): (-94.89951294150299, -97.28618070364692, 4.951443373698076, -1.729302429744462, -0.8354731818095923),
    ("dha", 1, 0): (-93.9793683973915, -96.69515479896481, 4.951443373698076, -1.428285097286202, -0.8073722909567292),
    ("dha", -1, 0): (-93.6507626771076, -97.15371027019887, 4.951443373698076, -0.6212878917521913, -0.8272081663691312),
    ("dha", 0, 2): (-94.79877772841053, -97.1547727847976, 4.951443373698076, -1.7619022353189413, -0.8335461535378188),
    ("bb", 0, 0): (-256.33651739869464, -253.84241598706734, 4.127167098378667, -0.6124939865239934, -6.008774523481248),
    ("bb", 1, 0): (-256.0949836478706, -253.3384374901847, 4.127167098378667, -0.8952458138889987, -5.988467878779017),
    ("bb", -1, 0): (-255.69119050705044, -254.0114837650293, 4.127167098378667, 0.17552133807208756, -5.98239553017036),
    ("bb", 0, 2): (-256.0231607761232, -253.50661725676977, 4.127167098378667, -0.691715348810383, -5.951995868493499),
    ("water", 0, 0): (-2681.067515826686, -2928.6042978606606, 565.9944306009828, -309.73705511399965, -8.720593453008764),
}  # fmt: skip
