"""PyTorch baselines, random weights, built from their Python APIs: the official Allegro and MACE.

* ``allegro-torch``: ``allegro.model.AllegroModel`` (package ``nequip-allegro``), eager mode.
* ``mace-torch``: ``mace.modules.MACE`` (package ``mace-torch``), eager mode.

Both run on the same structures as our models, on the GPU when torch sees one (``torch.cuda``; timings then
synchronise, memory is ``torch.cuda.max_memory_allocated``), else on the CPU, with a matscipy neighbour list at the
model's cutoff (no skin; its time is reported as ``nbr_update_median_s``, a full rebuild, since these models have no Verlet-list update).
Energy+forces is one ``model(data)`` call with forces from torch autograd. Settings are matched to the SO3krates
width of the system (``jax_models.WIDTHS``): cutoff, number of layers, scalar width and maximum degree; each record
lists the exact settings. Skipped (status "skipped") when the package does not import.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks import memory
from benchmarks.jax_models import WIDTHS, Unavailable, allegro_matching
from benchmarks.systems import build_system

TORCH_MODELS = {
    "allegro-torch": "official Allegro (nequip-allegro, PyTorch, eager), random init, matching width",
    "mace-torch": "MACE (mace-torch, PyTorch, eager), random init, matching width",
}


def mace_matching(width: str) -> dict:
    """MACE at the width of the matching SO3krates: same cutoff, interactions = layers, max_ell = max degree.

    Node features are F scalars (MACE's "L=0" model, like MACE-small): SO3krates' ε carries one channel per degree,
    so giving MACE F copies of each l would not match. Correlation order 3 (MACE's default), 8 Bessel functions.
    """
    w = WIDTHS[width]
    F = w["num_features"]
    return dict(
        r_max=w["r_cutoff"], num_interactions=w["num_layers"], max_ell=max(w["degrees"]), hidden_irreps=f"{F}x0e",
        MLP_irreps="16x0e", correlation=3, num_bessel=8, num_polynomial_cutoff=6,
    )  # fmt: skip


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to(data: dict, dev) -> dict:
    return {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in data.items()}


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _neighbors(system, cutoff):
    """(i, j, S): pairs with |r_j - r_i + S·cell| < cutoff, both directions (matscipy)."""
    import ase
    from matscipy.neighbours import neighbour_list

    if system.box is not None:
        atoms = ase.Atoms(numbers=np.ones(system.num_atoms), positions=system.positions,
                          cell=np.eye(3) * system.box, pbc=True)  # fmt: skip
    else:
        pos = system.positions - system.positions.min(axis=0) + cutoff
        atoms = ase.Atoms(numbers=np.ones(system.num_atoms), positions=pos,
                          cell=np.eye(3) * (pos.max() + cutoff), pbc=False)  # fmt: skip
    i, j, S = neighbour_list("ijS", atoms, cutoff)
    return atoms, i, j, S


def _build_allegro(system, width, dtype_name, types, type_idx, avg_nbrs, compile_mode=None):
    import torch
    from nequip.data import AtomicDataDict
    from nequip.utils.global_state import set_global_state

    from allegro.model import AllegroModel

    set_global_state()
    m = allegro_matching(width)
    F, T = m["num_scalar_features"], m["num_tensor_features"]
    settings = dict(
        r_max=m["r_cutoff"], l_max=m["max_ell"], parity=False, num_layers=m["num_layers"], num_scalar_features=F,
        num_tensor_features=T, allegro_mlp_hidden_layers_depth=1, allegro_mlp_hidden_layers_width=F,
        readout_mlp_hidden_layers_depth=1, readout_mlp_hidden_layers_width=F, scalar_embed_mlp_hidden_layers_width=F,
        radial_chemical_embed="TwoBodyBesselScalarEmbed(num_bessels=8)", avg_num_neighbors=avg_nbrs,
    )  # fmt: skip
    kw = {k: v for k, v in settings.items() if k != "radial_chemical_embed"}
    model = AllegroModel(
        seed=0, model_dtype=dtype_name, type_names=[str(t) for t in types],
        radial_chemical_embed={"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 8}, **kw,
        **({} if compile_mode is None else {"compile_mode": compile_mode}),
    )  # fmt: skip
    dev = _device()
    model = model.to(dev)
    model.eval()

    def make_data(atoms, i, j, S):
        from nequip.data import from_ase

        data = from_ase(atoms)
        data[AtomicDataDict.ATOM_TYPE_KEY] = torch.as_tensor(type_idx)
        data[AtomicDataDict.EDGE_INDEX_KEY] = torch.as_tensor(np.stack([i, j]), dtype=torch.long)
        data[AtomicDataDict.EDGE_CELL_SHIFT_KEY] = torch.as_tensor(S, dtype=data[AtomicDataDict.POSITIONS_KEY].dtype)
        return _to(AtomicDataDict.with_batch_(data), dev)

    def ef(data):
        out = model(dict(data))
        e, f = out[AtomicDataDict.TOTAL_ENERGY_KEY].detach(), out[AtomicDataDict.FORCE_KEY].detach()
        _sync(dev)
        return e, f

    return settings, make_data, ef, model


def _build_mace(system, width, dtype_name, types, type_idx, avg_nbrs):
    import torch
    from e3nn import o3
    from mace.modules import MACE
    from mace.modules.blocks import RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock

    m = mace_matching(width)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    torch.set_default_dtype(tdtype)
    model = MACE(
        r_max=m["r_max"], num_bessel=m["num_bessel"], num_polynomial_cutoff=m["num_polynomial_cutoff"],
        max_ell=m["max_ell"], interaction_cls=RealAgnosticResidualInteractionBlock,
        interaction_cls_first=RealAgnosticInteractionBlock, num_interactions=m["num_interactions"],
        num_elements=len(types), hidden_irreps=o3.Irreps(m["hidden_irreps"]), MLP_irreps=o3.Irreps(m["MLP_irreps"]),
        atomic_energies=np.zeros(len(types)), avg_num_neighbors=avg_nbrs, atomic_numbers=list(types),
        correlation=m["correlation"], gate=torch.nn.functional.silu,
    ).to(tdtype)  # fmt: skip
    dev = _device()
    model = model.to(dev)
    model.eval()
    settings = dict(m, interaction="RealAgnosticResidualInteractionBlock", avg_num_neighbors=avg_nbrs, gate="silu")
    N = system.num_atoms

    def make_data(atoms, i, j, S):
        cell = torch.as_tensor(np.asarray(atoms.cell.array), dtype=tdtype)
        one_hot = torch.nn.functional.one_hot(torch.as_tensor(type_idx, dtype=torch.long), len(types)).to(tdtype)
        return _to(dict(
            positions=torch.as_tensor(atoms.positions, dtype=tdtype), node_attrs=one_hot,
            edge_index=torch.as_tensor(np.stack([i, j]), dtype=torch.long),  # vector = r[j] - r[i] + shift
            shifts=torch.as_tensor(S @ np.asarray(atoms.cell.array), dtype=tdtype),
            unit_shifts=torch.as_tensor(S, dtype=tdtype), cell=cell, batch=torch.zeros(N, dtype=torch.long),
            ptr=torch.as_tensor([0, N], dtype=torch.long), head=torch.zeros(1, dtype=torch.long),
        ), dev)  # fmt: skip

    def ef(data):
        out = model(dict(data), training=False, compute_force=True)
        e, f = out["energy"].detach(), out["forces"].detach()
        _sync(dev)
        return e, f

    return settings, make_data, ef, model


def run_ef(cfg: dict, rec) -> None:
    """Energy+forces timing of a torch baseline (called by the worker; ``rec`` is its Recorder)."""
    from benchmarks.worker import time_calls

    name = cfg["model"]
    if name not in TORCH_MODELS:
        raise ValueError(f"Unknown torch model {name!r}; choose from {sorted(TORCH_MODELS)}.")
    try:
        import torch

        if name == "allegro-torch":
            import allegro  # noqa: F401
            import nequip  # noqa: F401
        else:
            import mace  # noqa: F401
        import matscipy  # noqa: F401
    except Exception as err:  # noqa: BLE001
        raise Unavailable(f"{name}: not importable ({type(err).__name__}: {err})") from None

    dtype_name = cfg.get("dtype", "float32")
    system = build_system(cfg["system"], cfg.get("seed", 0))
    width = "default" if system.atomistic else "cg"
    dev = _device()
    if dev.type == "cuda":
        rec.update(num_atoms=system.num_atoms, backend="gpu", memory_kind="torch.cuda.max_memory_allocated",
                   device=f"{torch.cuda.get_device_name(dev)} (torch {torch.__version__})")  # fmt: skip
    else:
        rec.update(num_atoms=system.num_atoms, backend="cpu", device=f"cpu (torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads)", memory_kind="peak_rss")  # fmt: skip
    cutoff = WIDTHS[width]["r_cutoff"]
    t = time.perf_counter()
    atoms, i, j, S = _neighbors(system, cutoff)
    alloc = time.perf_counter() - t
    types = sorted(set(int(z) for z in system.species))
    type_idx = np.searchsorted(types, system.species)
    avg_nbrs = len(i) / system.num_atoms
    builder = _build_allegro if name == "allegro-torch" else _build_mace
    torch.manual_seed(0)
    settings, make_data, ef, model = builder(system, width, dtype_name, types, type_idx, avg_nbrs)
    n_params = sum(p.numel() for p in model.parameters())
    settings = dict(settings, model=name, info=TORCH_MODELS[name], dtype=dtype_name, width=width,
                    neighbor_list="matscipy ijS, both directions, no skin", sr_cutoff=cutoff,
                    sr_capacity=int(len(i)), periodic=system.box is not None, num_parameters=int(n_params),
                    torch_threads=torch.get_num_threads(), mode="eager", torch_device=str(dev))  # fmt: skip
    data = make_data(atoms, i, j, S)
    rec.update(settings=settings, nbr_allocate_s=alloc, num_edges=int(len(i)))

    rss_before = memory.rss_bytes()
    memory.reset_peak_rss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t = time.perf_counter()
    e, f = ef(data)
    first = time.perf_counter() - t
    times = time_calls(lambda: ef(data), cfg["repeats"], cfg["ef_budget_s"], min_repeats=2)
    med = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else memory.peak_rss_bytes()
    ut = time_calls(lambda: _neighbors(system, cutoff), cfg["repeats"], cfg["ef_budget_s"] / 3)
    finite = bool(torch.isfinite(e).all()) and bool(torch.isfinite(f).all())
    na = rec.result["na"]
    for k in ("lower_s", "compile_only_s", "compile_cpu_s", "jit_first_call_minus_warm_s", "peak_memory_compile_bytes"):
        na[k] = "eager PyTorch: nothing is compiled"
    for k in ("md_step_median_s", "md_steps", "md_loops", "md_compile_s", "md_overflow", "peak_memory_md_bytes"):
        na[k] = "no jax-md integration for torch models"
    na["compile_s"] = "eager PyTorch: compile_s is the first call minus the warm median (lazy initialisation)"
    na["num_pairs_lr"] = "short range only"
    na["nbr_check_median_s"] = "no Verlet skin: every call rebuilds (nbr_update_median_s)"
    rec.update(
        first_call_s=first, compile_s=max(0.0, first - med), ef_times_s=times, repeats=len(times), ef_median_s=med,
        atom_steps_per_s=system.num_atoms / med, peak_memory_bytes=peak, rss_before_bytes=rss_before,
        nbr_update_median_s=statistics.median(ut), energy=float(e.sum()), max_abs_force=float(f.abs().max()),
        finite=finite,
    )  # fmt: skip
