"""Export a trained SO3krates or CG model for an MD engine that decomposes the domain itself.

    so3krates-hk export params.npz --format lammps-jax -o model.json --max-atoms 8192
    so3krates-hk export params.npz --format lammps-jax -o model.json --platform cpu --without-priors

lammps-jax: a bundle for LAMMPS `pair_style jax/kk` (lammps-jax plugin, Kokkos LAMMPS built from source):
    pair_style jax/kk /path/to/pjrt_plugin.so
    pair_coeff * * model.json
Run it with `newton on`; the pair style widens the ghost shell to max(layers, 2) × cutoff + skin by itself.
Type t is the model's species t − 1 unless --species maps the types. SO3LR is not exportable this way (its
whole-system charge sums have no place in the pair style); the command says why.
"""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a trained SO3krates/CG model (params.npz) as a lammps-jax bundle for pair_style jax/kk"
FORMATS = ("lammps-jax",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="params.npz of a trained CG or SO3krates model ('so3lr' explains why it cannot)")
    p.add_argument("--format", default="lammps-jax", choices=FORMATS, help="what to write")
    p.add_argument("-o", "--output", required=True, help="bundle file to write (JSON)")
    p.add_argument("--max-atoms", type=int, default=4096,
                   help="rows per MPI rank: owned + ghost atoms (ghost shell: max(layers, 2) × cutoff + skin)")
    p.add_argument("--edges-per-atom", type=int, default=64,
                   help="directed neighbour-list entries per row within cutoff + skin; max edges = max-atoms × this")
    p.add_argument("--max-edges", type=int, help="directed edges per rank (overrides --edges-per-atom)")
    p.add_argument("--units", choices=["real", "metal", "si", "cgs", "electron", "micro", "nano", "lj"],
                   help="LAMMPS unit style of the model's lengths/energies (default: real for CG models, metal for "
                   "SO3krates)")  # fmt: skip
    p.add_argument("--platform", default="cuda", choices=["cuda", "cpu"],
                   help="PJRT plugin the bundle runs on: cuda (GPU) or cpu (Kokkos OpenMP LAMMPS)")  # fmt: skip
    p.add_argument("--float64", action="store_true", help="double-precision bundle (default float32)")
    p.add_argument("--species", type=int, nargs="+", metavar="S",
                   help="model species of LAMMPS types 1, 2, … (default: type t → species t − 1)")  # fmt: skip
    p.add_argument("--without-priors", action="store_true",
                   help="export a CG model's network without its priors (bonds, angles, repulsion on fixed atom "
                   "indices, which the pair style cannot see); add them in LAMMPS yourself")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import UserError, require

    target = "pair_style jax/kk (lammps-jax)"
    if args.max_atoms < 1 or args.edges_per_atom < 1 or (args.max_edges is not None and args.max_edges < 2):
        raise UserError("--max-atoms and --edges-per-atom must be ≥ 1, --max-edges ≥ 2.")
    from so3krates_hk.export.model_file import check_priors, load_model, type_table

    model = load_model(args.model, target)
    check_priors(model, args.without_priors, target)
    table = type_table(model, args.species)
    require("lammps_jax", "lammps-jax", "so3krates-hk export --format lammps-jax")

    import jax

    if args.float64:
        jax.config.update("jax_enable_x64", True)
    from so3krates_hk.export.lammps_jax import export_bundle

    max_edges = args.max_edges if args.max_edges is not None else args.max_atoms * args.edges_per_atom
    bundle = export_bundle(
        model, args.output, max_atoms=args.max_atoms, max_edges=max_edges, units=args.units,
        precision="float64" if args.float64 else "float32", platform=args.platform, type_table=table,
    )  # fmt: skip
    c = bundle["contract"]
    print(f"wrote {args.output}: {model.kind}, {model.config.num_layers} layers, cutoff {c['cutoff']:g}, "
          f"n_hops {c['n_hops']} (ghost shell ≥ {c['n_hops'] * c['cutoff']:g} + skin), units {c['unit_style']}, "
          f"{c['precision']}, {c['n_species']} types, ≤ {c['max_atoms']} atoms and {c['max_edges']} edges per rank, "
          f"platform {args.platform}")  # fmt: skip
    if model.priors is not None:
        print("note: the CG priors are NOT in the bundle (--without-priors).")
    print("LAMMPS:  newton on\n         pair_style jax/kk /path/to/pjrt_plugin.so\n"
          f"         pair_coeff * * {args.output}")
    return 0
