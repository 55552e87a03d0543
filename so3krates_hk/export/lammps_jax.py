"""A ``lammps-jax`` bundle for LAMMPS ``pair_style jax/kk``: the SO3krates energy as a fixed-capacity StableHLO program.

    bundle = export_bundle(load_model("params.npz"), "model.json", max_atoms=4096, max_edges=4096 * 48)

    pair_style jax/kk /path/to/pjrt_plugin.so
    pair_coeff * * model.json

The pair style hands each rank's program (shapes fixed at export): positions (max_atoms, 3), types − 1 (max_atoms,),
nlocal, nghost, and a directed edge list (senders = the atom whose list row holds the edge, receivers, edge_mask;
padding index max_atoms). The bundle is a *ghost* export with n_hops = max(T, 2) (T the interaction layers, see
:func:`ghost_hops`): the pair style widens the ghost shell to n_hops × r_cutoff + skin and lists the neighbours of
ghost atoms too, the program evaluates every row, and only owned rows count towards the energy:

    E_rank = Σ_{i < nlocal} E_i,    F = −∂E_rank/∂R over owned and ghost rows (ghost rows return to their owners
    through LAMMPS' reverse communication; newton pair on).

Cost: atoms evaluated per atoms owned = (owned + ghosts within n_hops·r_cutoff + skin) / owned; for a cube of side L
per rank it is ((L + 2·(n_hops·r_cutoff + skin)) / L)³.

``run_bundle`` executes a bundle's programs on the CPU: through the PJRT plugin of ``lammps-jax-pjrt-cpu`` (what a
Kokkos OpenMP LAMMPS loads), or jaxlib's own CPU client.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from typing import Optional

import numpy as np

from so3krates_hk.errors import UserError, require
from so3krates_hk.export.model_file import ShortRangeModel

EXTRA = "lammps-jax"
UNIT_STYLES = ("real", "metal", "si", "cgs", "electron", "micro", "nano", "lj")
PLATFORMS = ("cuda", "cpu")
PRECISIONS = ("float32", "float64")


def ghost_hops(model: ShortRangeModel) -> int:
    """``n_hops`` of the bundle: T, the interaction layers, and at least 2. The pair style lists the full
    neighbourhoods of owned atoms only in its multi-hop mode; with ``n_hops = 1`` and newton on it hands each rank
    half of its boundary pairs, which suits pair potentials but not a many-body energy E_i."""
    return max(2, model.config.num_layers)


def export_bundle(
    model: ShortRangeModel,
    path: str,
    *,
    max_atoms: int,
    max_edges: int,
    units: Optional[str] = None,
    precision: str = "float32",
    platform: str = "cuda",
    type_table: Optional[np.ndarray] = None,
) -> dict:
    """Write the bundle for ``model`` to ``path`` (JSON) and return it.

    Args:
        max_atoms: rows per rank, owned + ghost atoms (the ghost shell is n_hops × r_cutoff + skin wide).
        max_edges: directed edges per rank, both directions of every pair, ghost rows included, skin included.
        units: LAMMPS unit style the model's lengths and energies are in (default: ``real`` for CG models,
            ``metal`` otherwise); the pair style refuses a run in other units.
        precision: "float32" or "float64" (float64 needs ``jax_enable_x64``).
        platform: the PJRT plugin that will run it: "cuda" (GPU) or "cpu" (Kokkos OpenMP builds).
        type_table: embedding row of each LAMMPS type (type t → row ``type_table[t − 1]``); default type t →
            species t − 1. Its length is the number of types the pair style accepts.
    """
    require("lammps_jax", EXTRA, "exporting a lammps-jax bundle")
    import jax
    import jax.numpy as jnp
    from lammps_jax.export import export_model

    from so3krates_hk.export.energy import per_atom_energy_fn

    units = model.default_units if units is None else units
    if units not in UNIT_STYLES:
        raise UserError(f"units must be one of {UNIT_STYLES}; got {units!r}.")
    if platform not in PLATFORMS:
        raise UserError(f"platform must be one of {PLATFORMS}; got {platform!r}.")
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise UserError("a float64 bundle needs JAX's x64 mode (jax.config.update('jax_enable_x64', True)).")
    if int(max_atoms) < 1 or int(max_edges) < 2:
        raise UserError(f"max_atoms must be ≥ 1 and max_edges ≥ 2; got {max_atoms} and {max_edges}.")
    table = np.arange(model.n_species, dtype=np.int32) if type_table is None else np.asarray(type_table, np.int32)
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    energy = per_atom_energy_fn(model, table, dtype=dtype, compact=True)

    def energy_fn(positions, species, graph):
        return energy(positions, species, graph.senders, graph.receivers, graph.edge_mask)

    bundle = export_model(
        energy_fn=energy_fn, path=path, max_atoms=int(max_atoms), max_edges=int(max_edges), cutoff=model.r_cutoff,
        unit_style=units, precision=precision, n_hops=ghost_hops(model), n_species=len(table),
        platform=platform,
    )  # fmt: skip
    return bundle


def read_bundle(path: str) -> dict:
    """The bundle's JSON."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def lammps_edges(positions: np.ndarray, cutoff: float, max_edges: int, rows: Optional[int] = None):
    """The edge list ``pair_style jax/kk`` passes for free-space ``positions`` (the rank's rows): every ordered pair
    (i, j), i ≠ j, closer than ``cutoff``, for list rows i < ``rows`` (default: all), padded with index
    ``len(positions)``. Returns (senders, receivers, edge_mask)."""
    positions = np.asarray(positions, np.float64)
    N = len(positions)
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    near = (d < cutoff) & ~np.eye(N, dtype=bool)
    near[(N if rows is None else rows) :] = False
    senders, receivers = np.nonzero(near)
    if len(senders) > max_edges:
        raise ValueError(f"{len(senders)} edges exceed max_edges = {max_edges}.")
    pad = max_edges - len(senders)
    mask = np.concatenate([np.ones(len(senders), bool), np.zeros(pad, bool)])
    fill = np.full(pad, N, np.int32)
    return np.concatenate([senders, fill]).astype(np.int32), np.concatenate([receivers, fill]).astype(np.int32), mask


def _client(plugin: Optional[str]):
    from jaxlib import xla_client

    if plugin is None:
        import jax

        return jax.extend.backend.get_backend("cpu")
    name = "so3krates_hk_pjrt_" + str(abs(hash(os.path.abspath(plugin))))
    if not xla_client.pjrt_plugin_loaded(name):
        xla_client.load_pjrt_plugin_dynamically(name, str(plugin))
    return xla_client.make_c_api_client(name)


def cpu_plugin_path() -> str:
    """The XLA CPU PJRT plugin of ``lammps-jax-pjrt-cpu`` (what a Kokkos OpenMP LAMMPS loads)."""
    require("lammps_jax_pjrt_cpu", EXTRA, "running a bundle through the PJRT CPU plugin")
    import lammps_jax_pjrt_cpu

    return str(lammps_jax_pjrt_cpu.PLUGIN_PATH)


@functools.lru_cache(maxsize=8)
def _compiled(program_b64: str, options_b64: str, plugin: Optional[str]):
    """The program compiled for the first device of the CPU client (cached: one compilation per bundle)."""
    from jaxlib import xla_client

    client = _client(plugin)
    options = xla_client.CompileOptions.ParseFromString(base64.b64decode(options_b64))
    options.compile_portable_executable = False  # bind to this client's first device
    device = client.devices()[0]
    return client.compile_and_load(base64.b64decode(program_b64), [device], options), device


def run_bundle(bundle: dict, positions, types, nlocal: int, nghost: int, senders, receivers, edge_mask,
               plugin: Optional[str] = None):  # fmt: skip
    """Run the bundle's ``energy_and_forces`` program on the CPU as the pair style does: (energy, forces (max_atoms,
    3)). ``plugin``: a PJRT plugin library (e.g. :func:`cpu_plugin_path`); None uses jaxlib's CPU client. Inputs are
    padded to the bundle's capacities here."""
    import jax

    contract = bundle["contract"]
    if bundle.get("export_info", {}).get("platform") != "cpu":
        raise UserError("this bundle was exported for CUDA; only bundles exported with platform 'cpu' run on the CPU.")
    n_max, e_max = contract["max_atoms"], contract["max_edges"]
    dtype = np.float64 if contract["precision"] == "float64" else np.float32
    positions, types = np.asarray(positions, dtype), np.asarray(types, np.int32)
    n, e = len(positions), len(senders)
    if n > n_max or e > e_max:
        raise UserError(f"{n} atoms / {e} edges exceed the bundle's capacities {n_max} / {e_max}.")
    pos = np.zeros((n_max, 3), dtype)
    pos[:n] = positions
    typ = np.zeros(n_max, np.int32)
    typ[:n] = types
    snd, rcv, msk = np.full(e_max, n_max, np.int32), np.full(e_max, n_max, np.int32), np.zeros(e_max, bool)
    live = np.asarray(edge_mask, bool)
    snd[:e] = np.where(live, senders, n_max)
    rcv[:e] = np.where(live, receivers, n_max)
    msk[:e] = live
    args = [pos, typ, np.int32(nlocal), np.int32(nghost), snd, rcv, msk]

    executable, device = _compiled(bundle["programs"]["energy_and_forces_mlir_b64"], bundle["compile_options_b64"],
                                   plugin)  # fmt: skip
    buffers = [jax.device_put(a, device) for a in args]
    outputs = executable.execute_sharded(buffers).disassemble_into_single_device_arrays()
    energy, forces = (np.asarray(o[0]) for o in outputs)
    return energy, forces
