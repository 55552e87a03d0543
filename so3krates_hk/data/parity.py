"""SO3LR on the bundled reference structures, set up exactly as the reference runs were (``so3krates_hk.data``).

Used by ``so3krates-hk convert --check`` and by the parity tests; the reference numbers themselves come only from
the bundled files of the original code (``*_jaxmd.npz``) and docs/model.md, "Reference data".
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk._compat import jax_md, partition
from so3krates_hk.data import REFERENCE_NAMES, REFERENCE_COMPONENTS, Structure, reference_result, reference_structure
from so3krates_hk.factory import so3lr_neighborlist_pp

COMPONENTS = ("energy", "energy_nn", "energy_zbl", "energy_elec", "energy_disp")


@dataclasses.dataclass
class ReferenceSystem:
    name: str
    structure: Structure
    displacement: object
    neighbor: object  # short-range Sparse list
    neighbor_lr: object  # long-range list (OrderedSparse unless asked otherwise)


def reference_system(
    name: str, dtype=jnp.float64, lr_format=partition.OrderedSparse, sr_format=partition.Sparse
) -> ReferenceSystem:
    """Build the reference structure and its neighbour lists (no skin: dr_threshold 0)."""
    s = reference_structure(name)
    R = jnp.asarray(s.positions, dtype)
    if s.cell is None:
        displacement, _ = jax_md.space.free()
        box, cell_list = 1000.0, False
    else:
        box = jnp.asarray(np.diag(s.cell), dtype)
        displacement, _ = jax_md.space.periodic(box)
        cell_list = True
    kw = dict(dr_threshold=0.0, disable_cell_list=not cell_list)
    sr = partition.neighbor_list(displacement, box, 4.5, format=sr_format, **kw).allocate(R)
    lr = partition.neighbor_list(displacement, box, 12.0, format=lr_format, **kw).allocate(R)
    return ReferenceSystem(name, s, displacement, sr, lr)


@functools.lru_cache(maxsize=16)
def _apply_all(displacement, lr_neighbor_format: str):
    """One factory (hence one compilation per input shape) per reference system and list format."""
    return so3lr_neighborlist_pp(
        displacement, mode="all", lr_neighbor_format=lr_neighbor_format, check_spin_parity=False
    )[1]


def so3lr_on_reference(
    params,
    system: ReferenceSystem,
    dtype=jnp.float64,
    total_charge: float = 0.0,
    num_unpaired_electrons: float = 0.0,
    forces: bool = True,
    lr_neighbor_format: str = "ordered",
) -> dict[str, np.ndarray]:
    """Energy components (and forces) of SO3LR with ``params`` on a reference system, in ``dtype``."""
    apply_fn = _apply_all(system.displacement, lr_neighbor_format)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    R = jnp.asarray(system.structure.positions, dtype)
    Z = jnp.asarray(system.structure.atomic_numbers, jnp.int32)

    def energy(r):
        out = apply_fn(params, r, system.neighbor, system.neighbor_lr, Z, total_charge, num_unpaired_electrons)
        return out["energy"], out

    if forces:
        (_, out), grad = jax.value_and_grad(energy, has_aux=True)(R)
        out = dict(out, forces=-grad)
    else:
        out = energy(R)[1]
    result = {k: np.asarray(out[k]).sum() for k in COMPONENTS}
    result.update({k: np.asarray(v) for k, v in out.items() if k not in COMPONENTS})
    return result


def parity_report(params, names=REFERENCE_NAMES, dtype=jnp.float64) -> list[dict]:
    """Energy and force errors against the original's ``*_jaxmd.npz`` for each reference structure."""
    rows = []
    for name in names:
        system = reference_system(name, dtype)
        out = so3lr_on_reference(params, system, dtype)
        e_ref, f_ref = reference_result(name)
        row = dict(
            name=name,
            atoms=system.structure.num_atoms,
            energy=float(out["energy"]),
            energy_ref=e_ref,
            energy_error=abs(float(out["energy"]) - e_ref),
            force_error=float(np.abs(out["forces"] - f_ref).max()),
        )
        spec = REFERENCE_COMPONENTS.get((name, 0, 0))
        if spec is not None:
            row["component_errors"] = {k: abs(float(out[k]) - v) for k, v in zip(COMPONENTS, spec)}
        rows.append(row)
    return rows


def component_errors(params, name: str, q: int, s: int, system: Optional[ReferenceSystem] = None) -> dict[str, float]:
    """|ours − the original's component| for each energy component at total charge q and s unpaired electrons
    (float64)."""
    system = system or reference_system(name)
    out = so3lr_on_reference(params, system, jnp.float64, float(q), float(s), forces=False)
    return {k: abs(float(out[k]) - v) for k, v in zip(COMPONENTS, REFERENCE_COMPONENTS[(name, q, s)])}
