"""Benchmark systems, as plain numpy: water boxes, the reference molecules, and CG protein-like chains and boxes.

Every builder returns a :class:`BenchSystem` (positions in Å, integer species, a cubic box or None for free space).
Nothing here imports JAX, so the driver can plan and describe systems without starting a backend.

CG systems (``cg-chain-N``, ``cg-box-N``) mimic one bead per residue at protein density:

* ``cg-chain-N``: one compact (globular) chain of N beads in free space, 3.8 Å bonds, confined to a sphere whose
  volume gives ``volume_per_bead`` (125 Å³ by default), with non-bonded beads kept ≥ 3.0 Å apart where 32 random
  trials allow it (the note of each system counts the beads that still have a closer neighbour, a few per cent).
* ``cg-box-N``: chains of 100 beads filling a periodic cubic box at the same density (minimum image).

Species are 0 … 19 (amino-acid-like types), drawn uniformly with a fixed seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

CG_BOND = 3.8  # Å, C-alpha spacing
CG_VOLUME_PER_BEAD = 125.0  # Å^3 per bead (issue: ~100-150)
CG_MIN_DISTANCE = 3.0  # Å, soft excluded volume of the generator
CG_CHAIN_LENGTH = 100  # beads per chain in the periodic boxes
CG_NUM_SPECIES = 20
WATER_BOX_EDGE = 12.4  # Å, the bundled 64-molecule box


@dataclasses.dataclass
class BenchSystem:
    name: str
    family: str  # "water", "molecule", "cg-chain", "cg-box"
    positions: np.ndarray  # (N, 3) float64, Å
    species: np.ndarray  # (N,) int32: atomic numbers (atomistic) or 0…19 (CG)
    box: Optional[float]  # cubic box edge (Å) for periodic systems, None for free space
    atomistic: bool
    note: str = ""

    @property
    def num_atoms(self) -> int:
        return int(len(self.species))

    def describe(self) -> dict:
        return dict(
            name=self.name,
            family=self.family,
            num_atoms=self.num_atoms,
            periodic=self.box is not None,
            box=self.box,
            atomistic=self.atomistic,
            note=self.note,
        )


def _water(repeats: int) -> BenchSystem:
    from so3krates_hk.data import water_box

    s = water_box((repeats, repeats, repeats))
    edge = float(s.cell[0, 0])
    note = f"64-molecule box ×({repeats},{repeats},{repeats}), periodic, {edge:.1f} Å"
    return BenchSystem(f"water-{s.num_atoms}", "water", s.positions, s.atomic_numbers.astype(np.int32), edge, True, note)


def _molecule(name: str) -> BenchSystem:
    from so3krates_hk.data import reference_structure

    s = reference_structure(name)
    return BenchSystem(name, "molecule", s.positions, s.atomic_numbers.astype(np.int32), None, True, "free space")


def _random_unit(rng, shape):
    v = rng.normal(size=tuple(shape) + (3,))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _grow_chains(n_chains: int, length: int, rng, box: Optional[float], radius: Optional[float], tries: int = 32):
    """``n_chains`` self-avoiding-ish random walks of ``length`` beads, grown in parallel (bond ``CG_BOND``).

    Free space: confined to a sphere of ``radius``. Periodic: wrapped into a cube of edge ``box``. Each bead draws
    ``tries`` candidates and takes the first that keeps ``CG_MIN_DISTANCE`` from every other bead except its two
    bonded predecessors (k-d trees, rebuilt as the chains grow); if none does, the first admissible candidate is
    taken. Returns positions ordered chain by chain, and the number of beads with a neighbour closer than
    ``CG_MIN_DISTANCE`` (beads of different chains placed in the same step are not tested against each other).
    """
    from scipy.spatial import cKDTree

    kd = {} if box is None else {"boxsize": box}
    wrap = (lambda x: x) if box is None else (lambda x: np.mod(x, box) * (np.mod(x, box) < box))
    pos = np.zeros((length, n_chains, 3))  # step-major: point id = step * n_chains + chain
    chains = np.arange(n_chains)
    rebuild = max(1, 512 // n_chains)
    tree, tree_upto = None, 0
    for k in range(length):
        if k == 0:
            if box is not None:
                cand = rng.uniform(0, box, (n_chains, tries, 3))
            else:
                cand = _random_unit(rng, (n_chains, tries)) * radius * rng.uniform(size=(n_chains, tries, 1)) ** (1 / 3)
            ok = np.ones((n_chains, tries), bool)
        else:
            steps = _random_unit(rng, (n_chains, tries))
            ok = np.ones((n_chains, tries), bool)
            if k >= 2:  # no sharp reversals (bond angle ≳ 70°)
                prev = pos[k - 1] - pos[k - 2]
                prev /= np.linalg.norm(prev, axis=-1, keepdims=True)
                ok &= np.einsum("ctx,cx->ct", steps, prev) > -0.3
            cand = pos[k - 1][:, None] + CG_BOND * steps
            if radius is not None:
                ok &= np.linalg.norm(cand, axis=-1) <= radius
                stuck = ~ok.any(axis=1)
                if stuck.any():  # nothing stays in the sphere: step towards the centre
                    back = -pos[k - 1][stuck] / np.maximum(np.linalg.norm(pos[k - 1][stuck], axis=-1, keepdims=True), 1e-9)
                    cand[stuck, 0] = pos[k - 1][stuck] + CG_BOND * back
                    ok[stuck, 0] = True
        # distances: old beads (a big tree, steps < tree_upto ≤ k-2) and recent ones (a small tree, steps ≥ tree_upto)
        if k - 2 - tree_upto >= rebuild:
            tree_upto = k - 2
            tree = cKDTree(wrap(pos[:tree_upto].reshape(-1, 3)), **kd)
        q = wrap(cand.reshape(-1, 3))
        good = np.ones(n_chains * tries, bool)
        if tree is not None:
            d, _ = tree.query(q, k=1, distance_upper_bound=CG_MIN_DISTANCE)
            good &= ~np.isfinite(d)
        if k > tree_upto:
            recent = cKDTree(wrap(pos[tree_upto:k].reshape(-1, 3)), **kd)
            m = min(3, (k - tree_upto) * n_chains)
            d, idx = recent.query(q, k=m, distance_upper_bound=CG_MIN_DISTANCE)
            d, idx = d.reshape(len(q), m), idx.reshape(len(q), m)
            step = tree_upto + idx // n_chains
            chain = idx % n_chains
            own = np.repeat(chains, tries)[:, None]
            bonded = (chain == own) & (step >= k - 2)
            good &= np.all(~np.isfinite(d) | bonded, axis=1)
        good = good.reshape(n_chains, tries) & ok
        has_good = good.any(axis=1)
        pick = np.where(has_good, good.argmax(axis=1), ok.argmax(axis=1))
        pos[k] = cand[chains, pick]
    out = pos.transpose(1, 0, 2).reshape(-1, 3)
    out = out if box is None else wrap(out)
    # beads of different chains placed in the same step are not tested against each other: count all close pairs
    d, _ = cKDTree(out, **kd).query(out, k=2)
    return out, int(np.sum(d[:, 1] < CG_MIN_DISTANCE))


def cg_chain(n: int, seed: int = 0, volume_per_bead: float = CG_VOLUME_PER_BEAD) -> BenchSystem:
    rng = np.random.default_rng(seed)
    radius = (3 * n * volume_per_bead / (4 * math.pi)) ** (1 / 3)
    pos, clashes = _grow_chains(1, n, rng, None, radius)
    species = rng.integers(0, CG_NUM_SPECIES, n).astype(np.int32)
    note = f"one globular chain, free space, sphere r={radius:.1f} Å, {volume_per_bead:.0f} Å^3/bead"
    if clashes:
        note += f", {clashes} beads with a neighbour closer than {CG_MIN_DISTANCE} Å"
    return BenchSystem(f"cg-chain-{n}", "cg-chain", pos, species, None, False, note)


def cg_box(n: int, seed: int = 0, volume_per_bead: float = CG_VOLUME_PER_BEAD) -> BenchSystem:
    rng = np.random.default_rng(seed)
    edge = (n * volume_per_bead) ** (1 / 3)
    length = min(CG_CHAIN_LENGTH, n)
    if n % length:
        raise ValueError(f"cg-box sizes must be multiples of {length}; got {n}.")
    pos, clashes = _grow_chains(n // length, length, rng, edge, None)
    species = rng.integers(0, CG_NUM_SPECIES, n).astype(np.int32)
    note = f"chains of {min(CG_CHAIN_LENGTH, n)} beads, periodic cube {edge:.1f} Å, {volume_per_bead:.0f} Å^3/bead"
    if clashes:
        note += f", {clashes} beads with a neighbour closer than {CG_MIN_DISTANCE} Å"
    return BenchSystem(f"cg-box-{n}", "cg-box", pos, species, float(edge), False, note)


def build_system(name: str, seed: int = 0) -> BenchSystem:
    """A system by name: ``water-192|1536|12288|…`` (any 192·k³), ``atat|dha|bb``, ``cg-chain-N``, ``cg-box-N``."""
    if name.startswith("water-"):
        n = int(name.split("-", 1)[1])
        k = round((n / 192) ** (1 / 3))
        if 192 * k**3 != n:
            raise ValueError(f"water boxes have 192·k³ atoms; got {name!r}.")
        return _water(k)
    if name == "water":
        return _water(2)
    if name in ("atat", "dha", "bb"):
        return _molecule(name)
    if name.startswith("cg-chain-"):
        return cg_chain(int(name.rsplit("-", 1)[1]), seed)
    if name.startswith("cg-box-"):
        return cg_box(int(name.rsplit("-", 1)[1]), seed)
    raise ValueError(f"Unknown benchmark system {name!r}.")


def system_size(name: str) -> int:
    """Number of atoms/beads of a named system without building it."""
    if name.startswith("water-"):
        return int(name.split("-", 1)[1])
    if name == "water":
        return 1536
    if name.startswith("cg-"):
        return int(name.rsplit("-", 1)[1])
    return {"atat": 60, "dha": 56, "bb": 148}[name]
