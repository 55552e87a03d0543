"""Systems, LAMMPS inputs and jax-md references for tests/test_lammps.py and benchmarks/lammps_bench.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WATER_64 = os.path.join(REPO, "so3krates_hk", "data", "so3lr_reference", "water_64.xyz")
SMALL_SO3LR = dict(num_layers=1, num_features=16, num_heads=2, degrees=[1, 2], num_radial_basis_fn=8,
                   energy_regression_dim=16)  # fmt: skip
SMALL_CG = dict(num_layers=2, num_features=16, num_heads=2, degrees=[1, 2], num_radial_basis_fn=8,
                energy_regression_dim=16)  # fmt: skip


def mpirun() -> str:
    return os.path.join(os.path.dirname(sys.executable), "mpirun")


def water(reps: int = 1):
    """water_64 (192 atoms, 12.4 Å box) repeated reps³ times: (positions, Z, box)."""
    import ase.io

    atoms = ase.io.read(WATER_64) * (reps, reps, reps)
    return atoms.get_positions(), atoms.get_atomic_numbers(), float(atoms.cell[0, 0])


def cg_box(n_beads: int = 64, box: float = 12.4, n_species: int = 3, seed: int = 0):
    """Water oxygens as CG beads (well separated) with random species: (positions, species, box)."""
    R, Z, L = water(1)
    O = R[Z == 8][:n_beads]
    rng = np.random.default_rng(seed)
    return O, rng.integers(0, n_species, len(O)), L


def write_data(path: str, positions, types, box: float, masses: dict) -> None:
    """A LAMMPS data file, atom_style atomic, orthogonal box [0, box)³."""
    ntypes = max(masses)
    with open(path, "w") as f:
        f.write(f"# so3krates-hk test system\n\n{len(positions)} atoms\n{ntypes} atom types\n\n")
        for a in "xyz":
            f.write(f"0.0 {float(box)!r} {a}lo {a}hi\n")
        f.write("\nMasses\n\n")
        for t in range(1, ntypes + 1):
            f.write(f"{t} {float(masses[t])!r}\n")
        f.write("\nAtoms # atomic\n\n")
        for i, (t, r) in enumerate(zip(types, np.mod(positions, box)), start=1):
            f.write(f"{i} {int(t)} {float(r[0])!r} {float(r[1])!r} {float(r[2])!r}\n")


def single_point_input(data: str, units: str, dump: str, extra: str = "", skin: float = 0.5) -> str:
    return f"""units {units}
atom_style atomic
boundary p p p
read_data {data}
neighbor {skin} bin
{extra}
fix ml all external pf/callback 1 1
thermo_style custom step pe
run 0
print "POTENTIAL_ENERGY $(pe:%.17g)"
write_dump all custom {dump} id type x y z fx fy fz modify sort id format float %.17g
"""


def nve_input(data: str, units: str, steps: int, dt: float, temperature: float, every: int = 10,
              skin: float = 0.5) -> str:  # fmt: skip
    return f"""units {units}
atom_style atomic
boundary p p p
read_data {data}
neighbor {skin} bin
fix ml all external pf/callback 1 1
velocity all create {temperature} 4928459 mom yes rot no dist gaussian
fix integrate all nve
timestep {dt}
thermo_style custom step pe ke etotal
thermo_modify format float %.15g
thermo {every}
run {steps}
"""


def read_dump(path: str):
    """(ids, types, positions, forces) from a sorted custom dump."""
    with open(path) as f:
        lines = f.readlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("ITEM: ATOMS")) + 1
    a = np.array([[float(v) for v in l.split()] for l in lines[start:]])
    return a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2:5], a[:, 5:8]


def run_cli(workdir: str, ranks: int, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", SO3KRATES_HK_DEBUG="")  # fmt: skip
    env.pop("SO3KRATES_HK_DEBUG")
    cmd = [mpirun(), "-np", str(ranks), sys.executable, "-m", "so3krates_hk.cli", "lammps", *args]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def save_small_so3lr(path: str, lr_cutoff: float, seed: int = 0, hyper: dict = SMALL_SO3LR) -> dict:
    """Random-init SO3LR-architecture weights (small) in the fine-tuned-SO3LR file format; returns factory kwargs."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3lr_neighborlist_pp
    from so3krates_hk.io import save_params

    R, Z, L = water(1)
    disp, _ = jax_md.space.periodic(L)
    kwargs = dict(hyper, r_cutoff=4.5, lr_cutoff=lr_cutoff, avg_num_neighbors=8.0)
    nb = partition.neighbor_list(disp, L, 4.5, format=partition.Sparse, disable_cell_list=True).allocate(R)
    nb_lr = partition.neighbor_list(disp, L, lr_cutoff, format=partition.OrderedSparse,
                                    disable_cell_list=True).allocate(R)  # fmt: skip
    init_fn, _ = so3lr_neighborlist_pp(disp, **kwargs)
    params = init_fn(jax.random.PRNGKey(seed), jnp.asarray(R), nb, nb_lr, jnp.asarray(Z))
    # give the charge and Hirshfeld heads non-trivial per-element biases (random init leaves them at 0 / 1)
    params = jax.tree_util.tree_map(np.asarray, params)
    rng = np.random.default_rng(seed)
    params["partial_charges"]["charge_bias"] = rng.normal(0, 0.3, params["partial_charges"]["charge_bias"].shape)
    save_params(path, params, dict(factory_kwargs=kwargs))
    return kwargs


def save_small_cg(path: str, n_species: int = 3, r_cutoff: float = 4.0, seed: int = 0, hyper: dict = SMALL_CG) -> dict:
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3krates_neighborlist_pp
    from so3krates_hk.io import save_params

    R, S, L = cg_box(n_species=n_species)
    disp, _ = jax_md.space.periodic(L)
    nb = partition.neighbor_list(disp, L, r_cutoff, format=partition.Sparse, disable_cell_list=True).allocate(R)
    init_fn, _ = so3krates_neighborlist_pp(disp, r_cutoff, n_species=n_species, avg_num_neighbors=6.0, **hyper)
    params = init_fn(jax.random.PRNGKey(seed), jnp.asarray(R), nb, species=jnp.asarray(S))
    meta = dict(model="so3krates_cg", r_cutoff=r_cutoff, dr_threshold=1.0, n_species=n_species,
                species=S.tolist(), hyperparameters=hyper, avg_num_neighbors=6.0, max_edges=None)  # fmt: skip
    save_params(path, jax.device_get(params), meta)
    return meta


def reference_so3lr(params_path: str, R, Z, L, charge=0.0, spin=0.0):
    """(energy, forces) of the jax-md evaluation (periodic, ordered long-range list); call with x64 enabled."""
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3lr_neighborlist_pp
    from so3krates_hk.io import load_params

    if params_path == "so3lr":
        from so3krates_hk import pretrained

        params, kwargs = pretrained.so3lr()
    else:
        params, meta = load_params(params_path)
        kwargs = dict(meta["factory_kwargs"])
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    disp, _ = jax_md.space.periodic(L)
    R = jnp.asarray(R, jnp.float64)
    nb = partition.neighbor_list(disp, L, kwargs["r_cutoff"], format=partition.Sparse).allocate(R)
    nb_lr = partition.neighbor_list(disp, L, kwargs["lr_cutoff"], format=partition.OrderedSparse).allocate(R)
    _, apply_fn = so3lr_neighborlist_pp(disp, lr_neighbor_format="ordered", **kwargs)
    energy = lambda R_: apply_fn(params, R_, nb, nb_lr, jnp.asarray(Z), charge, spin)  # noqa: E731
    e, g = jax.value_and_grad(energy)(R)
    return float(e), -np.asarray(g)


def reference_cg(params_path: str, R, S, L):
    import jax
    import jax.numpy as jnp

    from so3krates_hk._compat import jax_md, partition
    from so3krates_hk.factory import so3krates_neighborlist_pp
    from so3krates_hk.io import load_params

    params, meta = load_params(params_path)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    disp, _ = jax_md.space.periodic(L)
    R = jnp.asarray(R, jnp.float64)
    nb = partition.neighbor_list(disp, L, meta["r_cutoff"], format=partition.Sparse).allocate(R)
    _, apply_fn = so3krates_neighborlist_pp(disp, meta["r_cutoff"], n_species=meta["n_species"],
                                            avg_num_neighbors=meta["avg_num_neighbors"], **meta["hyperparameters"])
    e, g = jax.value_and_grad(lambda R_: apply_fn(params, R_, nb, species=jnp.asarray(S)))(R)
    return float(e), -np.asarray(g)
