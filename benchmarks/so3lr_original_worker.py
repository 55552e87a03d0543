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
        displacement, _ = space.periodic(box)
    else:
        box = None
        displacement, _ = space.free()
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


def _dist_version(name: str):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return None


if __name__ == "__main__":
    raise SystemExit(main())
