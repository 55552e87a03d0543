"""The original SO3LR (the ``so3lr`` package, JAX 0.5.3 and its git dependencies) timed as ours is.

Run by :mod:`benchmarks.samerun` (``--original-python``) with the python of an environment that holds the original
package; it needs JAX, jax-md, NumPy and ``so3lr`` only (not this package):

    python benchmarks/so3lr_original_worker.py SYSTEM.npz OUT.json --repeats 10 --skin-sr 0.5 --skin-lr 0.35

The structure comes from the driver as an ``.npz`` (positions, species, box; box < 0 for free space). The model is
built through the original's own jax-md entry point (``so3lr.to_jax_md`` with ``So3lrPotential``: 4.5 Å network,
12 Å long range, 2 Å dispersion damping, float32), as its README shows. Its two neighbour lists are built once,
outside the timed region, with the same skins as ours (``--skin-sr``, ``--skin-lr``: jax-md's ``dr_threshold``; the
original takes one value for both lists, so the smaller is used) and jax-md's capacity multiplier 1.25, as ours.
Each timed call is ``jit(value_and_grad(E))``, forces = −∇E, compiled with that JAX's default XLA settings (this
package's XLA:CPU flags are not applied: the original runs as its users run it). The malloc settings come from the
driver, the same for every side.

With ``--md-steps N`` it runs MD instead, as ``benchmarks.samerun``'s worker runs ours: jax-md's ``nvt_langevin``
(300 K, 0.5 fs, friction 0.1 per time unit; the masses come with the structure), both lists updated before every
step inside jitted loops of ``--md-loop-steps`` steps, re-allocated (and the loop recompiled) on an overflow inside
the timed region. The loop is written out here rather than imported, so that this script keeps needing nothing but
the original's environment. ``--md-record`` adds the start (positions, velocities) and the end positions to the
result, for a test that integrates the same trajectory independently (``--gamma 0`` makes it plain velocity Verlet).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

# run as a script, this folder comes first on sys.path, and its profile.py would shadow the standard library's
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

CAPACITY_MULTIPLIER = 1.25  # jax-md's default, and ours


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("system", help="structure .npz (positions, species, box; box < 0 for free space)")
    p.add_argument("out", help="result .json")
    p.add_argument("--repeats", type=int, default=10, help="timed energy+forces calls")
    p.add_argument("--skin-sr", type=float, default=0.5, help="short-range list skin (Å), as ours")
    p.add_argument("--skin-lr", type=float, default=0.5,
                   help="long-range list skin (Å), as ours; negative: the box cannot hold the long range (refused)")
    p.add_argument("--lr-cutoff", type=float, default=12.0, help="long-range cutoff (Å), SO3LR's 12")
    p.add_argument("--md-steps", type=int, default=0, help="run this many MD steps instead of timing e+f calls")
    p.add_argument("--md-loop-steps", type=int, default=10, help="MD steps per jitted loop")
    p.add_argument("--dt-fs", type=float, default=0.5, help="MD time step (fs)")
    p.add_argument("--temperature", type=float, default=300.0, help="MD temperature (K)")
    p.add_argument("--gamma", type=float, default=0.1, help="Langevin friction (per jax-md time unit, as ours)")
    p.add_argument("--md-record", action="store_true", help="add start and end of the trajectory to the result")
    args = p.parse_args(argv)
    if args.skin_lr < 0:
        raise SystemExit(f"the periodic box is narrower than 2 × {args.lr_cutoff} Å: minimum image does not hold for "
                         "the long range, so the original cannot be timed on it")

    import jax
    import jax.numpy as jnp
    import jaxlib
    import numpy as np

    from so3lr import So3lrPotential, to_jax_md  # first: it brings the jax-md it was built with
    from jax_md import space

    s = np.load(args.system)
    box_edge = float(s["box"])
    species = jnp.asarray(s["species"], jnp.int32)
    R = jnp.asarray(s["positions"], jnp.float32)
    if box_edge > 0:
        box = jnp.asarray(box_edge, jnp.float32)
        displacement, shift = space.periodic(box)
    else:
        box = None
        displacement, shift = space.free()
    skin = min(args.skin_sr, args.skin_lr)
    potential = So3lrPotential(lr_cutoff=args.lr_cutoff, dtype=np.float32)
    neighbor_fn, neighbor_fn_lr, energy_fn = to_jax_md(
        potential=potential, displacement_or_metric=displacement, box_size=box,
        species=species, dr_threshold=skin, capacity_multiplier=CAPACITY_MULTIPLIER,
        buffer_size_multiplier_sr=CAPACITY_MULTIPLIER, buffer_size_multiplier_lr=CAPACITY_MULTIPLIER,
        disable_cell_list=True, fractional_coordinates=False,
    )  # fmt: skip
    t = time.perf_counter()
    nbrs, nbrs_lr = neighbor_fn.allocate(R), neighbor_fn_lr.allocate(R)
    nbr_s = time.perf_counter() - t

    def energy(position, idx, idx_lr):
        return jnp.sum(energy_fn(position, neighbor=idx, neighbor_lr=idx_lr, box=box))

    if args.md_steps:
        res = _md(args, energy, shift, neighbor_fn, neighbor_fn_lr, R, jnp.asarray(s["masses"], jnp.float32),
                  nbrs, nbrs_lr)  # fmt: skip
        res.update(versions=dict(jax=jax.__version__, jaxlib=jaxlib.__version__, so3lr=_dist_version("so3lr")),
                   xla_flags=os.environ.get("XLA_FLAGS"), skin=skin, lr_cutoff=args.lr_cutoff,
                   num_atoms=int(species.shape[0]), nbr_build_s=nbr_s)  # fmt: skip
        with open(args.out, "w") as fh:
            json.dump(res, fh)
        return 0

    t, tc = time.perf_counter(), time.process_time()
    compiled = jax.jit(jax.value_and_grad(energy)).lower(R, nbrs.idx, nbrs_lr.idx).compile()
    compile_s, compile_cpu_s = time.perf_counter() - t, time.process_time() - tc

    def call():
        t, tc = time.perf_counter(), time.process_time()
        e, g = jax.block_until_ready(compiled(R, nbrs.idx, nbrs_lr.idx))
        return time.perf_counter() - t, time.process_time() - tc, e, g

    _, _, e, g = call()
    call()  # a second warm-up, as for every side
    times, cpu = [], []
    for _ in range(args.repeats):
        w, c, _, _ = call()
        times.append(w)
        cpu.append(c)
    res = dict(
        side="original SO3LR", times_s=times, median_s=statistics.median(times), min_s=min(times), max_s=max(times),
        cpu_times_s=cpu, compile_s=compile_s, compile_cpu_s=compile_cpu_s, nbr_build_s=nbr_s, energy=float(e),
        forces=(-np.asarray(g, np.float64)).tolist(), num_atoms=int(species.shape[0]),
        versions=dict(jax=jax.__version__, jaxlib=jaxlib.__version__, so3lr=_dist_version("so3lr")),
        xla_flags=os.environ.get("XLA_FLAGS"), skin=skin, lr_cutoff=args.lr_cutoff,
        sr_capacity=int(nbrs.idx.shape[-1]), lr_capacity=int(nbrs_lr.idx.shape[-1]),
    )  # fmt: skip
    with open(args.out, "w") as fh:
        json.dump(res, fh)
    return 0


TIME_UNIT_FS = 10.180505710774743  # jax-md's time unit for amu, Å and eV
BOLTZMANN_EV = 8.617333262e-5


def _md(args, energy, shift, neighbor_fn, neighbor_fn_lr, R, masses, nbrs, nbrs_lr) -> dict:
    """NVT Langevin MD through the original's energy, timed as ``benchmarks.samerun.jax_md_worker`` times ours."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax_md import simulate

    kT, dt = args.temperature * BOLTZMANN_EV, args.dt_fs / TIME_UNIT_FS
    init, apply = simulate.nvt_langevin(energy, shift, dt, kT, gamma=args.gamma)

    def loop(state, lists):
        def body(_, carry):
            state, (sr, lr), overflow = carry
            sr, lr = sr.update(state.position), lr.update(state.position)
            overflow = overflow | jnp.asarray(sr.did_buffer_overflow, bool) | jnp.asarray(lr.did_buffer_overflow, bool)
            return apply(state, idx=sr.idx, idx_lr=lr.idx), (sr, lr), overflow

        return jax.lax.fori_loop(0, args.md_loop_steps, body, (state, lists, jnp.zeros((), bool)))

    t0 = time.perf_counter()
    state = jax.block_until_ready(init(jax.random.PRNGKey(0), R, mass=masses, idx=nbrs.idx, idx_lr=nbrs_lr.idx))
    init_s = time.perf_counter() - t0
    start = state
    lists = (nbrs, nbrs_lr)
    t0 = time.perf_counter()
    compiled = jax.jit(loop).lower(state, lists).compile()
    compile_s = time.perf_counter() - t0  # the MD loop's program: trace, lower, compile
    jax.block_until_ready(compiled(state, lists))  # warm; its result is dropped
    done, reallocations, t = 0, 0, time.perf_counter()
    while done < args.md_steps:
        new_state, new_lists, overflow = compiled(state, lists)
        if bool(overflow):  # re-allocate from the last good positions and redo the loop
            lists = (neighbor_fn.allocate(state.position), neighbor_fn_lr.allocate(state.position))
            compiled = jax.jit(loop).lower(state, lists).compile()
            reallocations += 1
            continue
        state, lists, done = new_state, new_lists, done + args.md_loop_steps
    jax.block_until_ready(state.position)
    wall = time.perf_counter() - t
    res = dict(side="original SO3LR", md_steps=done, md_wall_s=wall, md_step_s=wall / done,
               atom_steps_per_s=int(R.shape[0]) * done / wall, reallocations=reallocations, compile_s=compile_s,
               init_s=init_s, finite=bool(jnp.all(jnp.isfinite(state.position))), loop_steps=args.md_loop_steps,
               integrator=f"jax_md nvt_langevin {args.temperature:g} K, {args.dt_fs:g} fs, gamma {args.gamma:g}, "
                          "lists updated every step")  # fmt: skip
    if args.md_record:
        velocity = lambda st: np.asarray(st.momentum / st.mass, np.float64).tolist()  # noqa: E731
        res.update(start_positions=np.asarray(start.position, np.float64).tolist(), start_velocities=velocity(start),
                   end_positions=np.asarray(state.position, np.float64).tolist(), dt=dt)  # fmt: skip
    return res


def _dist_version(name: str):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return None


if __name__ == "__main__":
    raise SystemExit(main())
