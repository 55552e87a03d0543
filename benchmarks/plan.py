"""Which configurations a benchmark run measures: ``--quick`` (CI, CPU, about 2 minutes on an idle 2-core machine),
the full CPU run, and the GPU run (larger systems, up to the largest that fits).

A configuration is a plain dict (JSON-serialisable, passed to ``worker``):

    model, system, num_atoms, dtype, task ("ef" | "train"), framework ("jax" | "torch"),
    repeats, ef_budget_s, md_steps, md_loops, md_budget_s, first_call_compile, timeout_s,
    train_batch, train_samples, train_budget_s, train_batches

Series: configurations of one model, dtype, task and system family form a series ordered by size; when one fails
for lack of memory or time, the driver skips the larger ones of that series ("larger than the largest that fits").
"""

from __future__ import annotations

from benchmarks.jax_models import JAX_MODELS
from benchmarks.systems import system_size
from benchmarks.torch_models import TORCH_MODELS

ALL_MODELS = tuple(JAX_MODELS) + tuple(TORCH_MODELS)
REFERENCE_MOLECULES = ("dha", "atat", "bb")

# The original SO3LR, as reported by its authors' users (2-core CPU, float32, its own jax-md path). Not measured here.
REPORTED_ORIGINAL = (
    dict(system="dha", num_atoms=56, ef_ms=25.4, compile_s=5.9),
    dict(system="bb", num_atoms=148, ef_ms=73.1, compile_s=6.6),
    dict(system="water-1536", num_atoms=1536, ef_ms=1213.0, compile_s=8.1),
)


def plan_for(mode: str, gpu: bool = False) -> list[dict]:
    """The plan of a ``python -m benchmarks.run`` mode: "quick", "gpu", "memory" or "full"."""
    if mode == "quick":
        return quick_plan()
    if mode == "gpu":
        return gpu_plan()
    if mode == "memory":
        return memory_plan(gpu)
    if mode == "full":
        return full_plan(gpu)
    raise ValueError(f"Unknown benchmark mode {mode!r}; choose quick, gpu, memory or full.")


def family(system: str) -> str:
    if system.startswith("water"):
        return "water"
    if system.startswith("cg-chain"):
        return "cg-chain"
    if system.startswith("cg-box"):
        return "cg-box"
    return "molecule"


def config(model, system, dtype="float32", task="ef", **kw) -> dict:
    c = dict(
        model=model, system=system, num_atoms=system_size(system), dtype=dtype, task=task,
        framework="torch" if model in TORCH_MODELS else "jax",
        repeats=15, ef_budget_s=60.0, md_steps=10, md_loops=5, md_budget_s=30.0, md_loop_target_s=3.0,
        first_call_compile=False,
        timeout_s=900, train_batch=8, train_samples=40, train_budget_s=60.0, train_batches=8,
    )  # fmt: skip
    c.update(kw)
    return c


def quick_plan() -> list[dict]:
    """A few small systems, float32, our models (+ baselines if importable), fewer repetitions: dha (SO3LR in full),
    the 192-atom water box (SO3krates, short range), a 100-bead CG chain (CG SO3krates, energy+forces and a chemtrain
    training step), and the compile-only memory measure on a 1000-bead chain."""
    fast = dict(repeats=3, ef_budget_s=5.0, md_steps=3, md_loops=2, md_budget_s=3.0, md_loop_target_s=1.0,
                timeout_s=300, train_samples=16, train_budget_s=10.0, train_batches=3)  # fmt: skip
    plan = [
        config("so3lr", "dha", **fast),
        config("so3krates", "water-192", **fast),
        config("so3krates-cg", "cg-chain-100", **fast),
        config("so3krates-cg", "cg-chain-100", task="train", **fast),
        config("so3krates-cg", "cg-chain-1000", task="memory", **fast),
        # baselines: each is skipped with a printed line when its package does not import
        config("so3lr-original", "dha", **fast),
        config("allegro-chemutils", "cg-chain-100", **fast),
    ]
    torch_fast = dict(fast, repeats=2, ef_budget_s=10.0)
    plan += [config(m, "cg-chain-100", **torch_fast) for m in TORCH_MODELS]
    return plan


def gpu_plan() -> list[dict]:
    """The GPU run sized for one short device session (``--gpu``; with ``--budget 240``, as
    ``scripts/device_bench.sh`` runs it, at most ~6 minutes on an H100/H200), most important first, so that a run
    cut short by the budget still answers the GPU targets:

    1. SO3LR in full on water-12 288 (target: ≥ 1e6 atom-steps/s) and the CG model on a 100 000-bead box (target:
       ≥ 3e6 bead-steps/s), each followed by the official Allegro at equal settings;
    2. SO3LR on water-1536 (the original reports 23.4 ms per MD step on GPU);
    3. the largest water box that fits (the series stops at the first size that runs out of memory or time), and
       XLA's buffer sizes with and without ``remat``;
    4. chemtrain training steps of the CG model; the CG model at 300 000 beads, the default width against Allegro
       and MACE, the molecules, float64, SO3LR's training step.

    ``scripts/device_bench.sh`` then runs ``benchmarks.eval_bench`` (``so3krates-hk eval``'s packed batches against
    looping the ASE calculator, same run), which is a script of its own rather than a configuration here.

    Every configuration runs in its own process (its own peak memory); fewer repeats and shorter MD loops than the
    full plan, since on a GPU each call takes milliseconds and compilation dominates a configuration's time.
    """
    fast = dict(repeats=10, ef_budget_s=5.0, md_steps=10, md_loops=3, md_budget_s=5.0, md_loop_target_s=1.0,
                timeout_s=120)  # fmt: skip
    torch_fast = dict(fast, repeats=5)
    size = dict(fast, md_steps=0)  # the size search: e+f (the memory peak) only, no MD step to compile
    return [
        config("so3lr", "water-12288", **fast),
        config("so3krates-cg", "cg-box-100000", **fast),
        config("allegro-torch", "cg-box-100000", **torch_fast),
        config("so3lr", "water-1536", **fast),
        # ~0.96 MB per atom of XLA buffers on CPU (benchmarks/results/cpu-memory-2026-12-01): ×8³ needs ~94 GB,
        # ×9³ ~134 GB (the edge of a 139 GiB H200), ×12³ ~320 GB (skipped once a smaller one fails)
        config("so3lr", "water-98304", **size),  # ×(8,8,8)
        config("so3lr", "water-139968", **size),  # ×(9,9,9)
        config("so3lr", "water-331776", **size),  # ×(12,12,12)
        # does remat lower the memory on the GPU? (on XLA:CPU it does not): compile-only buffer sizes
        config("so3lr", "water-12288", task="memory", **fast),
        config("so3lr-remat", "water-12288", task="memory", **fast),
        # chemtrain ForceMatching steps (the CG case first)
        config("so3krates-cg", "cg-chain-100", task="train", **fast),
        config("so3krates-cg", "cg-box-1000", task="train", **fast),
        config("so3krates-cg", "cg-box-300000", **size),  # ~0.15 MB per bead: 1e6 beads would need ~146 GB
        config("allegro-torch", "cg-box-10000", **torch_fast),
        config("so3krates-cg", "cg-box-10000", **fast),
        config("so3krates", "water-12288", **fast),
        config("allegro-torch", "water-1536", **torch_fast),
        config("so3krates", "water-1536", **fast),
        config("mace-torch", "cg-box-10000", **torch_fast),
        config("so3lr", "dha", **fast),
        config("so3lr", "bb", **fast),
        config("so3lr", "water-1536", dtype="float64", **fast),
        config("so3krates-cg", "cg-box-100000", dtype="float64", **fast),
        config("so3lr", "dha", task="train", **fast),
        config("so3lr-remat", "water-12288", **fast),
    ]


def memory_plan(gpu: bool = False) -> list[dict]:
    """``--memory``: how the memory of the energy+forces program grows with N, from XLA's buffer assignment of the
    compiled program (task "memory": lists allocated and the program compiled, nothing run), so sizes beyond what
    this machine could execute are measured too. SO3LR in full and SO3krates on water, the CG model on CG boxes."""
    water = ["water-1536", "water-12288", "water-41472"] + (["water-98304"] if gpu else [])
    cg = ["cg-box-1000", "cg-box-10000", "cg-box-100000"] + (["cg-box-1000000"] if gpu else [])
    kw = dict(task="memory", timeout_s=600)
    return ([config("so3lr", s, **kw) for s in water] + [config("so3lr-remat", s, **kw) for s in water[:2]]
            + [config("so3krates", s, **kw) for s in water[:2]] + [config("so3krates-cg", s, **kw) for s in cg])


def full_plan(gpu: bool = False) -> list[dict]:
    """Every model and size, most important first. On CPU the largest sizes are dropped (see
    ``CPU_LIMITS``); on GPU the series go up until a size does not fit."""
    plan: list[dict] = []
    water = ["water-192", "water-1536", "water-12288"]
    cg_chain = ["cg-chain-100", "cg-chain-1000", "cg-chain-10000"]
    cg_box = ["cg-box-1000", "cg-box-10000", "cg-box-100000"]
    if gpu:
        water += ["water-41472", "water-98304"]  # ×(6,6,6), ×(8,8,8)
        cg_box += ["cg-box-300000", "cg-box-1000000"]
    big = dict(ef_budget_s=40.0, md_budget_s=15.0)
    # SO3LR: in full on the molecules and the larger boxes, short range only on the 12.4 Å box
    plan += [config("so3lr", s, **big) for s in REFERENCE_MOLECULES + tuple(water[1:])]
    plan += [config("so3lr-sr", "water-192"), config("so3lr-sr", "water-1536", **big)]
    plan += [config("so3lr-remat", "water-1536", **big)]
    plan += [config("so3krates", s, **big) for s in water]
    plan += [config("so3krates", "bb")]
    plan += [config("so3krates-cg", s, **big) for s in cg_chain + cg_box]
    # baselines (torch: few repeats, a call takes seconds on CPU)
    torch_cfg = dict(repeats=3, ef_budget_s=30.0)
    for m in TORCH_MODELS:
        plan += [config(m, s, **torch_cfg) for s in ("dha", "water-192", "cg-chain-100", "cg-box-1000", "cg-box-10000")]
    plan += [config("so3lr-original", s) for s in REFERENCE_MOLECULES + ("water-1536",)]
    plan += [config("allegro-chemutils", s) for s in ("water-192", "water-1536", "cg-chain-100", "cg-box-1000",
                                                      "cg-box-10000")]  # fmt: skip
    # training steps (chemtrain)
    plan += [
        config("so3krates-cg", "cg-chain-100", task="train"),
        config("so3krates", "water-192", task="train"),
        config("so3lr", "dha", task="train"),
    ]
    # float64 where affordable
    f64 = dict(dtype="float64", repeats=9, md_steps=5, md_loops=3)
    plan += [config("so3lr", "dha", **f64), config("so3krates", "water-192", **f64),
             config("so3krates-cg", "cg-chain-100", **f64)]  # fmt: skip
    if gpu:
        plan += [config("so3lr", s, **f64) for s in ("bb", "water-1536")]
        plan += [config("so3krates-cg", "cg-box-10000", **f64)]
    else:
        plan = [c for c in plan if c["num_atoms"] <= CPU_LIMITS.get(c["model"], 10**9)]
    return plan


# Largest size per model in the full CPU run (2 cores): beyond these one configuration takes longer than its share
# of the ~20 minute budget. The report lists what was dropped.
CPU_LIMITS = {"so3lr": 1536, "so3lr-remat": 1536, "so3krates": 1536, "so3krates-cg": 10000, "allegro-torch": 1000,
              "mace-torch": 1000, "allegro-chemutils": 10000}


def dropped_on_cpu() -> list[str]:
    full = {(c["model"], c["system"], c["dtype"], c["task"]) for c in full_plan(gpu=False)}
    everything = full_plan(gpu=True)
    return sorted({f"{c['model']} on {c['system']} ({c['num_atoms']} atoms)" for c in everything
                   if (c["model"], c["system"], c["dtype"], c["task"]) not in full and c["num_atoms"] <= 100000})  # fmt: skip


def select(plan: list[dict], models=None, systems=None, dtypes=None, max_atoms=None, tasks=None) -> list[dict]:
    out = []
    for c in plan:
        if models and c["model"] not in models:
            continue
        if systems and c["system"] not in systems:
            continue
        if dtypes and c["dtype"] not in dtypes:
            continue
        if tasks and c["task"] not in tasks:
            continue
        if max_atoms and c["num_atoms"] > max_atoms:
            continue
        out.append(c)
    return out


def series_key(c: dict) -> tuple:
    return (c["model"], c["dtype"], c["task"], family(c["system"]))
