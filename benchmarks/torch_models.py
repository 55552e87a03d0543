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
from benchmarks.hostinfo import dist_version
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


def _graph_inputs(system, width: str):
    """(atoms, i, j, S, types, type_idx, avg_nbrs, seconds): the matscipy list at the width's cutoff (timed), the
    species as indices into their sorted set, and the mean number of neighbours."""
    t = time.perf_counter()
    atoms, i, j, S = _neighbors(system, WIDTHS[width]["r_cutoff"])
    seconds = time.perf_counter() - t
    types = sorted(set(int(z) for z in system.species))
    return atoms, i, j, S, types, np.searchsorted(types, system.species), len(i) / system.num_atoms, seconds


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


def _mace_model(width, tdtype, types, avg_nbrs):
    """A fresh ``mace.modules.MACE`` at ``mace_matching(width)`` (weights from torch's current random state)."""
    import torch
    from e3nn import o3
    from mace.modules import MACE
    from mace.modules.blocks import RealAgnosticInteractionBlock, RealAgnosticResidualInteractionBlock

    m = mace_matching(width)
    return MACE(
        r_max=m["r_max"], num_bessel=m["num_bessel"], num_polynomial_cutoff=m["num_polynomial_cutoff"],
        max_ell=m["max_ell"], interaction_cls=RealAgnosticResidualInteractionBlock,
        interaction_cls_first=RealAgnosticInteractionBlock, num_interactions=m["num_interactions"],
        num_elements=len(types), hidden_irreps=o3.Irreps(m["hidden_irreps"]), MLP_irreps=o3.Irreps(m["MLP_irreps"]),
        atomic_energies=np.zeros(len(types)), avg_num_neighbors=avg_nbrs, atomic_numbers=list(types),
        correlation=m["correlation"], gate=torch.nn.functional.silu,
    ).to(tdtype)  # fmt: skip


def _build_mace(system, width, dtype_name, types, type_idx, avg_nbrs):
    import torch

    m = mace_matching(width)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    torch.set_default_dtype(tdtype)
    model = _mace_model(width, tdtype, types, avg_nbrs)
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
    atoms, i, j, S, types, type_idx, avg_nbrs, alloc = _graph_inputs(system, width)
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


# --------------------------------------------------------------------------------------------- MACE, compiled
# A compiled mode is timed only if it reproduces eager on the same input, float32: |ΔE| ≤ 1e-6 |E| (a few float32
# ulps of the total energy) and max |ΔF| ≤ 1e-4 eV/Å (the CG systems use the same units, eV and Å).
PARITY_ENERGY_REL = 1e-6
PARITY_FORCE_ABS = 1e-4

_MACE_COMPILE = (
    "torch.compile(mace.tools.compile.prepare(factory)(), mode='default', fullgraph=True), the model called with "
    "training=True and positions requiring grad: what mace's MACECalculator(compile_mode='default') does"
)
MACE_MODES = {
    "eager": "eager PyTorch: model(data, training=False, compute_force=True)",
    "torchscript": "TorchScript: e3nn.util.jit.compile(model) (torch.jit.script, e3nn's per-module compile modes), "
                   "as mace-torch's training script saves *_compiled.model and create_lammps_model deploys to LAMMPS",
    "torch.compile": _MACE_COMPILE + "; inductor's default CPU kernels (vectorised to the CPU's widest SIMD)",
    "torch.compile-avx2": _MACE_COMPILE + "; inductor's CPU kernels vectorised at 256 bits "
                          "(torch._inductor.config.cpp.simdlen = 256)",
    "torch.compile-scalar": _MACE_COMPILE + "; inductor's CPU kernels not vectorised "
                            "(torch._inductor.config.cpp.simdlen = 1)",
}  # fmt: skip
SIMDLEN = {"torch.compile": None, "torch.compile-avx2": 256, "torch.compile-scalar": 1}


def parity_check(energy_eager: float, energy: float, max_force_diff: float, rel: float = PARITY_ENERGY_REL,
                 force_abs: float = PARITY_FORCE_ABS) -> dict:
    """Does a compiled model reproduce eager? ``ok`` iff |E − E_eager| ≤ rel·|E_eager| and max_i |F_i − F_eager,i|
    ≤ force_abs (both finite); ``reason`` says which bound failed, with the numbers."""
    import math

    de = abs(energy - energy_eager)
    tol_e = rel * abs(energy_eager)
    finite = all(math.isfinite(x) for x in (energy_eager, energy, max_force_diff))
    e_ok, f_ok = finite and de <= tol_e, finite and max_force_diff <= force_abs
    out = dict(energy_eager=energy_eager, energy=energy, energy_abs_diff=de, energy_tol=tol_e,
               max_force_diff=max_force_diff, force_tol=force_abs, ok=bool(e_ok and f_ok))  # fmt: skip
    if not out["ok"]:
        parts = [] if finite else ["not finite"]
        if finite and not e_ok:
            parts.append(f"abs dE {de:.3g} eV > {rel:g} abs E = {tol_e:.3g} eV")
        if finite and not f_ok:
            parts.append(f"max abs dF {max_force_diff:.3g} eV/A > {force_abs:g} eV/A")
        out["reason"] = "parity against eager failed: " + "; ".join(parts)
    return out


def mace_mode(mode: str, model, width: str, tdtype, types, avg_nbrs):
    """``call(data) -> (energy, forces)`` for ``mode`` (see ``MACE_MODES``), built from the eager ``model`` (same
    weights). Nothing is called here: for the compiled modes the first call compiles."""
    import copy

    import torch

    if mode not in MACE_MODES:
        raise ValueError(f"Unknown MACE mode {mode!r}; choose from {sorted(MACE_MODES)}.")
    if mode == "eager":
        fn, training, grads = model, False, False
    elif mode == "torchscript":
        from e3nn.util import jit

        fn, training, grads = jit.compile(copy.deepcopy(model)), False, False
    else:
        from mace.tools.compile import prepare

        if SIMDLEN[mode] is not None:
            import torch._inductor.config as inductor_config

            inductor_config.cpp.simdlen = SIMDLEN[mode]
        state = model.state_dict()

        def factory():
            m = _mace_model(width, tdtype, types, avg_nbrs)
            m.load_state_dict(state)
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            return m

        fn = torch.compile(prepare(factory)(), mode="default", fullgraph=True)
        training, grads = True, True

    def call(data):
        d = dict(data)
        if grads:  # as MACECalculator does for a compiled model: a fresh leaf that requires grad
            d["positions"] = d["positions"].clone().requires_grad_(True)
            d["node_attrs"] = d["node_attrs"].clone().requires_grad_(True)
        out = fn(d, training=training, compute_force=True)
        return out["energy"].detach(), out["forces"].detach()

    return call


def mace_mode_worker(system_name: str, mode: str, repeats: int, warmup: int, dtype_name: str = "float32",
                     system=None) -> dict:
    """Energy+forces of MACE in one ``mode`` on one system, timed as ours is (the neighbour list and the input built
    before the timer; every parameter frozen, as ``MACECalculator`` does). For a compiled mode the eager model runs
    first on the same input and the compiled one must pass ``parity_check`` before any call is timed; otherwise
    :class:`ModeFailed` carries the numbers."""
    import platform

    import torch

    import mace  # noqa: F401  (before e3nn.o3: mace-torch lets e3nn 0.4.4 load its constants on torch ≥ 2.6)

    system = build_system(system_name) if system is None else system  # given: built where JAX is (atomistic ones)
    width = "default" if system.atomistic else "cg"
    atoms, i, j, S, types, type_idx, avg_nbrs, nbr_s = _graph_inputs(system, width)
    torch.manual_seed(0)
    settings, make_data, ef, model = _build_mace(system, width, dtype_name, types, type_idx, avg_nbrs)
    for p in model.parameters():
        p.requires_grad_(False)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    data = make_data(atoms, i, j, S)
    eager = mace_mode("eager", model, width, tdtype, types, avg_nbrs)
    e0, f0 = eager(data)
    res = dict(mode=mode, info=MACE_MODES[mode], num_atoms=system.num_atoms, num_edges=int(len(i)),
               nbr_build_s=nbr_s, energy_eager=float(e0.sum()), torch_threads=torch.get_num_threads(),
               settings=dict(settings, dtype=dtype_name, width=width, num_parameters=int(sum(p.numel() for p in
                             model.parameters())), neighbor_list="matscipy ijS, both directions, built once before "
                             "the timer", parameters_frozen=True),
               versions=dict(torch=torch.__version__, mace_torch=dist_version("mace-torch"),
                             e3nn=dist_version("e3nn"), matscipy=dist_version("matscipy"), numpy=np.__version__,
                             python=platform.python_version()))  # fmt: skip
    call = eager if mode == "eager" else mace_mode(mode, model, width, tdtype, types, avg_nbrs)
    import sys

    print(f"{mode}: first call (a compiled mode compiles here)", file=sys.stderr, flush=True)
    t, tc = time.perf_counter(), time.process_time()
    e, f = call(data)
    print(f"{mode}: first call returned", file=sys.stderr, flush=True)
    res.update(first_call_s=time.perf_counter() - t, first_call_cpu_s=time.process_time() - tc)
    if mode != "eager":
        par = parity_check(float(e0.sum()), float(e.sum()), float((f - f0).abs().max()))
        par["max_abs_force_eager"] = float(f0.abs().max())  # the scale of the forces the bound is applied to
        res["parity_vs_eager"] = par
        if not par["ok"]:
            raise ModeFailed(dict(res, error=par["reason"]))
    for _ in range(warmup):  # TorchScript's profiling executor optimises after its first calls; inductor may recompile
        call(data)
    times, cpu = [], []
    for _ in range(repeats):
        t, tc = time.perf_counter(), time.process_time()
        e, f = call(data)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - tc)
    if mode != "eager":  # the last timed call still matches eager
        res["parity_after_timing"] = parity_check(float(e0.sum()), float(e.sum()), float((f - f0).abs().max()))
    res.update(times_s=times, cpu_times_s=cpu, median_s=statistics.median(times), min_s=min(times), max_s=max(times),
               warmup_calls=warmup, energy=float(e.sum()), max_abs_force=float(f.abs().max()),
               finite=bool(torch.isfinite(e).all() and torch.isfinite(f).all()))  # fmt: skip
    return res


class ModeFailed(RuntimeError):
    """A compiled MACE mode that did not reproduce eager (``info``: the record, with ``error``)."""

    def __init__(self, info: dict):
        super().__init__(info.get("error", "failed"))
        self.info = info
