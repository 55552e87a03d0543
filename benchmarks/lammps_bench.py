"""LAMMPS (``so3krates-hk lammps``, 1 and 2 MPI ranks) against our jax-md MD of the same system, same run.

    python benchmarks/lammps_bench.py --out benchmarks/results/lammps-<date> [--steps 20] [--quick]

For each model and system size: NVE atom-steps/s under LAMMPS with 1 and 2 ranks (LAMMPS' loop time, compilation
excluded) and under jax-md (a jitted block of steps, compiled first), float32; and the ghost overhead, local atoms
(owned + ghost) / atoms owned, as the command reported it. The JSON and markdown add the ghost overhead of the
pretrained SO3LR for water boxes of several sizes and rank grids, counted from the geometry (every periodic image
within the ghost cutoff of a rank's sub-domain), without running the model: for the staged scheme (ghost cutoff
max(4.5, 12) + 2 Å; ghosts hold positions and exchanged per-atom values, the networks run on owned atoms) and, for
comparison, for evaluating the whole network on every local atom (ghost cutoff 3 × 4.5 + 12 + 2 Å).

Models (random weights; only their cost matters here): ``cg`` a CG SO3krates model (2 layers, 16 features, r_c 4 Å,
real units) on boxes of water-oxygen beads; ``so3lr-small`` the SO3LR architecture (1 layer, 16 features, r_c 4.5 Å,
long range 6 Å, metal units) on water.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
import lammps_cases as cases  # noqa: E402


def lammps_run(workdir, ranks, model_args, data, units, steps, dt, temperature, skin):
    inp = cases.nve_input(data, units, steps, dt, temperature, every=steps, skin=skin)
    path = os.path.join(workdir, f"in.bench{ranks}")
    with open(path, "w") as f:
        f.write(inp)
    log = f"bench{ranks}.log"
    t0 = time.perf_counter()
    res = cases.run_cli(workdir, ranks, [os.path.basename(path), "--no-screen", "--log", log, *model_args],
                        timeout=3000)  # fmt: skip
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    text = open(os.path.join(workdir, log)).read()
    loop = float(re.search(r"Loop time of (\S+) on", text).group(1))
    nlocal = [float(v) for v in re.search(r"Nlocal:\s+(\S+) ave\s+(\S+) max", text).groups()]
    nghost = float(re.search(r"Nghost:\s+(\S+) ave", text).group(1))
    ratio = re.search(r"local atoms \(owned \+ ghost\) / owned = (\S+);", res.stdout)
    return dict(ranks=ranks, loop_s=loop, wall_s=wall, nlocal_ave=nlocal[0], nghost_ave=nghost,
                local_over_owned=float(ratio.group(1)) if ratio else None)  # fmt: skip


def jaxmd_run(kind, params_path, R, species, L, masses, steps, dt_fs, time_unit_fs):
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3krates_neighborlist_pp, so3lr_neighborlist_pp
    from so3krates_hk.io import load_params

    params, meta = load_params(params_path)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    disp, shift = jax_md.space.periodic(L)
    R = jnp.asarray(np.mod(R, L), jnp.float32)
    S = jnp.asarray(species)
    if kind == "cg":
        nfn = partition.neighbor_list(disp, L, meta["r_cutoff"], dr_threshold=0.5, format=partition.Sparse)
        _, apply_fn = so3krates_neighborlist_pp(disp, meta["r_cutoff"], n_species=meta["n_species"],
                                                avg_num_neighbors=meta["avg_num_neighbors"],
                                                **meta["hyperparameters"])  # fmt: skip
        lists = dict(neighbor=nfn.allocate(R))
        energy = lambda R_, neighbor, **_: apply_fn(params, R_, neighbor, species=S)  # noqa: E731
    else:
        kw = dict(meta["factory_kwargs"])
        nfn = partition.neighbor_list(disp, L, kw["r_cutoff"], dr_threshold=0.5, format=partition.Sparse)
        nfn_lr = partition.neighbor_list(disp, L, kw["lr_cutoff"], dr_threshold=0.5, format=partition.OrderedSparse)
        _, apply_fn = so3lr_neighborlist_pp(disp, lr_neighbor_format="ordered", **kw)
        lists = dict(neighbor=nfn.allocate(R), neighbor_lr=nfn_lr.allocate(R))
        energy = lambda R_, neighbor, neighbor_lr, **_: apply_fn(params, R_, neighbor, neighbor_lr, S)  # noqa: E731
    init, step = jax_md.simulate.nve(energy, shift, dt_fs / time_unit_fs)
    m = jnp.asarray(masses, jnp.float32)[:, None]
    state = init(jax.random.PRNGKey(0), R, 0.0, mass=m, **lists)

    @jax.jit
    def block(state, lists):
        def body(_, carry):
            s, nb = carry
            s = step(s, **nb)
            nb = {k: v.update(s.position) for k, v in nb.items()}
            return s, nb

        return jax.lax.fori_loop(0, steps, body, (state, lists))

    s, nb = block(state, lists)  # compile + first block
    jax.block_until_ready(s.position)
    t0 = time.perf_counter()
    s, nb = block(s, nb)
    jax.block_until_ready(s.position)
    dt = time.perf_counter() - t0
    overflow = any(bool(v.did_buffer_overflow) for v in nb.values())
    return dict(loop_s=dt, overflow=overflow)


def ghost_geometry(n_atoms_box: int, L: float, r_ghost: float, grid: tuple) -> float:
    """Local (owned + ghost) / owned atoms for a uniform box split into ``grid`` sub-domains:
    Π(l_d + 2 r_g) / Π l_d."""
    sub = np.array([L / g for g in grid])
    return float(np.prod(sub + 2 * r_ghost) / np.prod(sub))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--steps", type=int, default=20, help="NVE steps per measurement")
    p.add_argument("--quick", action="store_true", help="smallest systems only")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    import jax

    rows = []
    systems = [("cg", 1), ("cg", 2), ("so3lr-small", 1)] if not args.quick else [("cg", 1)]
    if not args.quick:
        systems.append(("so3lr-small", 2))
    for kind, reps in systems:
        work = os.path.abspath(os.path.join(args.out, "work", f"{kind}-{reps}"))
        os.makedirs(work, exist_ok=True)
        if kind == "cg":
            params = os.path.join(work, "cg.npz")
            cases.save_small_cg(params)
            R1, S1, L1 = cases.cg_box()
            shifts = np.array([(i, j, k) for i in range(reps) for j in range(reps) for k in range(reps)]) * L1
            R = (R1[None] + shifts[:, None]).reshape(-1, 3)
            S = np.tile(S1, len(shifts))
            L = L1 * reps
            masses_t = {1: 50.0, 2: 60.0, 3: 70.0}
            cases.write_data(os.path.join(work, "sys.data"), R, S + 1, L, masses_t)
            model_args, units, dt, temp = ["--model", params], "real", 2.0, 300.0
            masses = np.array([masses_t[int(s) + 1] for s in S])
            species, time_unit, dt_fs = S, 48.88821, 2.0
        else:
            params = os.path.join(work, "so3lr_small.npz")
            cases.save_small_so3lr(params, lr_cutoff=6.0)
            R, Z, L = cases.water(reps)
            cases.write_data(os.path.join(work, "sys.data"), R, np.where(Z == 8, 1, 2), L, {1: 15.999, 2: 1.008})
            model_args, units, dt, temp = ["--model", params, "--elements", "O", "H"], "metal", 1e-4, 300.0
            masses = np.where(Z == 8, 15.999, 1.008)
            species, time_unit, dt_fs = Z, 10.180505, 0.1
        n = len(R)
        row = dict(model=kind, atoms=n, box=L, steps=args.steps)
        for ranks in (1, 2):
            r = lammps_run(work, ranks, model_args, "sys.data", units, args.steps, dt, temp, skin=1.0)
            row[f"lammps_np{ranks}"] = r
            row[f"lammps_np{ranks}_atom_steps_per_s"] = n * args.steps / r["loop_s"]
            print(kind, n, ranks, r, flush=True)
        j = jaxmd_run("cg" if kind == "cg" else "so3lr", params, R, species, L, masses, args.steps, dt_fs, time_unit)
        row["jaxmd"] = j
        row["jaxmd_atom_steps_per_s"] = n * args.steps / j["loop_s"]
        print(kind, n, "jax-md", j, flush=True)
        rows.append(row)

    # ghost overhead of the pretrained SO3LR by geometry, water density: the staged scheme's ghost cutoff
    # max(r_c, r_lr) + skin = max(4.5, 12) + 2 Å, and the receptive field + skin = 3·4.5 + 12 + 2 Å (whole network on
    # every local atom)
    r_g, r_full = max(4.5, 12.0) + 2.0, 3 * 4.5 + 12.0 + 2.0
    geo = []
    for reps in (1, 2, 4, 8):
        L = 12.4 * reps
        for grid in ((1, 1, 1), (2, 1, 1), (2, 2, 2), (4, 4, 4)):
            geo.append(dict(atoms=192 * reps**3, box=L, ranks=int(np.prod(grid)), grid=list(grid),
                            local_over_owned=ghost_geometry(192 * reps**3, L, r_g, grid),
                            receptive_field_over_owned=ghost_geometry(192 * reps**3, L, r_full, grid)))  # fmt: skip
    env = dict(python=sys.version.split()[0], jax=jax.__version__, platform=platform.platform(),
               cpus=os.cpu_count(), note="shared 2-core machine; only same-run ratios are meaningful")  # fmt: skip
    with open(os.path.join(args.out, "lammps_bench.json"), "w") as f:
        geometry = dict(ghost_cutoff=r_g, receptive_field_cutoff=r_full, rows=geo)
        json.dump(dict(env=env, rows=rows, so3lr_ghost_geometry=geometry), f, indent=1)
    with open(os.path.join(args.out, "lammps_bench.md"), "w") as f:
        f.write(f"# LAMMPS vs jax-md, NVE, float32 ({env['platform']}, JAX {env['jax']}; {env['note']})\n\n")
        f.write("| model | atoms | LAMMPS 1 rank | LAMMPS 2 ranks | jax-md | local/owned 1 rank | 2 ranks |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['model']} | {r['atoms']} | {r['lammps_np1_atom_steps_per_s']:.0f} | "
                    f"{r['lammps_np2_atom_steps_per_s']:.0f} | {r['jaxmd_atom_steps_per_s']:.0f} | "
                    f"{r['lammps_np1']['local_over_owned']} | {r['lammps_np2']['local_over_owned']} |\n")
        f.write("\natom-steps/s (loop time only, compilation excluded).\n\n")
        f.write("## Pretrained SO3LR: local (owned + ghost) / owned atoms, from the geometry\n\n")
        f.write(f"| atoms | box Å | ranks | staged (ghost cutoff {r_g:g} Å) | whole network on every local atom "
                f"(ghost cutoff {r_full:g} Å) |\n|---|---|---|---|---|\n")
        for g in geo:
            f.write(f"| {g['atoms']} | {g['box']:.1f} | {g['ranks']} | {g['local_over_owned']:.1f} | "
                    f"{g['receptive_field_over_owned']:.1f} |\n")
    shutil_rm(os.path.join(args.out, "work"))
    return 0


def shutil_rm(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
