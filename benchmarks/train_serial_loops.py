"""Same-process, interleaved A/B of chemtrain force-matching epochs compiled with and without serial loops.

    python -m benchmarks.train_serial_loops [--config cg_alanine_dipeptide] [--epochs 6] [--out DIR]

The main job's training (``so3krates-hk train``) runs chemtrain's ``ForceMatching`` on batches of a few hundred beads
(32 frames × 10 beads for ``cg_alanine_dipeptide``). ``ForceMatchingRun.train_epoch`` runs chemtrain inside
``so3krates_hk.cpu_tuning.serial_loops`` for batches of up to ``SERIAL_LOOPS_MAX_ATOMS`` beads: on XLA:CPU's classic
runtime (JAX 0.4.x, the chemtrain environment) a program compiled while the calling thread may use one CPU keeps its
element-wise loops on that thread instead of splitting them over the pool. This harness builds the config's data,
priors and model once, then two ``ForceMatchingRun`` trainers from the same seed (each compiles its own update step):
one as the job runs it, the other with the block opted out (``SO3KRATES_HK_SERIAL_LOOPS=0`` around its epochs).
Epochs alternate (A, B, A, B, …), so a change of machine load hits both alike; the first epoch of each (which
compiles) is reported apart. The two trainers must give the same loss history (the numbers do not depend on the
threading), which the harness checks. It also checks that no thread of the process is left restricted to one CPU.
Writes ``results.json`` and ``results.md`` to ``--out``. Run it with the tuned malloc settings
(``eval "$(python -m so3krates_hk.cpu_tuning)"``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def thread_affinities() -> dict[int, str]:
    """CPUs each thread of this process may run on (Linux ``Cpus_allowed_list``)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    out[int(tid)] = line.split(":", 1)[1].strip()
    return out


@contextlib.contextmanager
def _opted_out():
    from so3krates_hk.cpu_tuning import SERIAL_LOOPS_OPT_OUT

    old = os.environ.get(SERIAL_LOOPS_OPT_OUT)
    os.environ[SERIAL_LOOPS_OPT_OUT] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[SERIAL_LOOPS_OPT_OUT]
        else:
            os.environ[SERIAL_LOOPS_OPT_OUT] = old


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="cg_alanine_dipeptide")
    p.add_argument("--epochs", type=int, default=6, help="epochs per trainer, the first (compiling) one included")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import jax
    import numpy as np

    from benchmarks.hostinfo import cpu_name, uptime
    from so3krates_hk.cpu_tuning import serial_loops_apply
    from so3krates_hk.training.cg_model import build_cg_model
    from so3krates_hk.training.config import load_config
    from so3krates_hk.training.data import load_cg_dataset, split_frames
    from so3krates_hk.training.train import ForceMatchingRun

    cfg = load_config(args.config)
    d = cfg.data
    ds = load_cg_dataset(d.dataset, d.max_frames, d.temperature)
    tr, va, _ = split_frames(ds, d.train_fraction, d.val_fraction, d.seed, d.split, d.block_frames, d.gap_frames)
    train, val = ds.subset(tr), ds.subset(va)
    pr = cfg.priors
    priors = dict(bonds=pr.bonds, angles=pr.angles, repulsion=pr.repulsion, bond_cutoff=pr.bond_cutoff,
                  repulsion_exponent=pr.repulsion_exponent, repulsion_min_bonds=pr.repulsion_min_bonds)  # fmt: skip
    model = build_cg_model(train.reference().positions, ds.species, ds.kT, cfg.model.r_cutoff, cfg.model.dr_threshold,
                           cfg.model.hyperparameters, priors)  # fmt: skip
    tmp = tempfile.mkdtemp(prefix="train-serial-loops-")
    runs = {label: ForceMatchingRun(cfg, model, train, val, os.path.join(tmp, label)) for label in ("pool", "serial")}
    for label in runs:
        os.makedirs(os.path.join(tmp, label), exist_ok=True)
    applied = None
    load = []
    for _ in range(args.epochs):
        for label, fm in runs.items():
            if label == "serial":
                applied = serial_loops_apply(fm.batch_atoms)
                fm.train_epoch()  # as the job runs it
            else:
                with _opted_out():
                    fm.train_epoch()
        load.append(os.getloadavg()[0])
    after = thread_affinities()
    narrowed = {t: a for t, a in after.items() if a != after[os.getpid()]}  # the main thread's own list, restored
    hist = {k: fm.history for k, fm in runs.items()}
    same_losses = hist["pool"]["train_force_rmse"] == hist["serial"]["train_force_rmse"]
    max_rel = float(np.max(np.abs(np.asarray(hist["pool"]["train_force_rmse"])
                                  / np.asarray(hist["serial"]["train_force_rmse"]) - 1)))  # fmt: skip
    epochs = {k: h["epoch_seconds"] for k, h in hist.items()}
    warm = {k: v[1:] for k, v in epochs.items()}
    med = {k: statistics.median(v) for k, v in warm.items()}
    batch = min(cfg.training.batch_size, train.num_frames)
    res = dict(
        config=args.config, jax=jax.__version__, applied=applied, beads=len(ds.species), batch_frames=batch,
        batch_beads=batch * len(ds.species), steps_per_epoch=train.num_frames // batch, epoch_seconds=epochs,
        first_epoch_s={k: v[0] for k, v in epochs.items()}, median_epoch_s=med,
        min_epoch_s={k: min(v) for k, v in warm.items()}, max_epoch_s={k: max(v) for k, v in warm.items()},
        speedup=med["pool"] / med["serial"], identical_losses=same_losses, max_rel_loss_difference=max_rel,
        train_force_rmse=hist["pool"]["train_force_rmse"], threads_narrowed_after=narrowed,
        loadavg=load, cpu=cpu_name(), uptime=uptime(), cpus=len(os.sched_getaffinity(0)),
        xla_flags=os.environ.get("XLA_FLAGS"), malloc_arena_max=os.environ.get("MALLOC_ARENA_MAX"),
    )  # fmt: skip
    name = f"train-serial-loops-cpu-{time.strftime('%Y-%m-%d')}-jax{jax.__version__}"
    out = args.out or os.path.join(ROOT, "benchmarks", "results", name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    fmt = lambda k: (f"{med[k]:.2f} ({res['min_epoch_s'][k]:.2f}–{res['max_epoch_s'][k]:.2f})")  # noqa: E731
    lines = [
        f"# chemtrain force matching with and without serial loops, one process, JAX {jax.__version__}", "",
        f"{res['cpu']}, {res['cpus']} CPUs, config `{args.config}`: batches of {batch} frames × {len(ds.species)} "
        f"beads ({res['batch_beads']} beads), {res['steps_per_epoch']} steps per epoch, {args.epochs} epochs per "
        f"trainer, alternating. `XLA_FLAGS={res['xla_flags']}`, `MALLOC_ARENA_MAX={res['malloc_arena_max']}`. "
        f"Start: {res['uptime']}", "",
        "| | thread pool | serial loops |", "|---|---:|---:|",
        f"| first epoch (compiles), s | {epochs['pool'][0]:.1f} | {epochs['serial'][0]:.1f} |",
        f"| later epochs, s: median (min–max) | {fmt('pool')} | {fmt('serial')} |",
        "", f"Speed-up of serial loops (median epochs): **{res['speedup']:.3f}×**; applied: {applied}. "
        f"Identical train losses: {same_losses} (max relative difference {max_rel:.1e}). Threads left narrowed "
        f"after the block: {narrowed or 'none'}. Load average after each round: "
        + ", ".join(f"{x:.2f}" for x in load) + ".",
    ]  # fmt: skip
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
