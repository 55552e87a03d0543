"""Convert SO3LR's params.pkl into the safe .npz format, and check parity on the bundled reference structures.

    so3krates-hk convert params.pkl -o so3lr.npz
    so3krates-hk convert --check [--float32]            # the shipped weights
    so3krates-hk convert so3lr.npz --check              # weights of your own
"""

from __future__ import annotations

import argparse

NAME = "convert"
HELP = "convert SO3LR's params.pkl to the safe .npz format; --check reports parity"

# float64 parity limits on the bundled references: |ΔE| per structure
ENERGY_LIMIT_EV = {"water": 1e-4}
DEFAULT_ENERGY_LIMIT_EV = 1e-6
FORCE_LIMIT_EV_PER_A = 1e-5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pickle", nargs="?", help="SO3LR params.pkl (or a converted .npz with --check)")
    p.add_argument("-o", "--output", help="output .npz (safe format, see so3krates_hk.io)")
    p.add_argument("--check", action="store_true", help="report parity on the bundled reference structures")
    p.add_argument("--float32", action="store_true", help="with --check: also report float32 errors")


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.errors import UserError

    if args.pickle is None and not args.check:
        raise UserError("convert: give params.pkl (and -o out.npz), or --check")
    if args.output and args.pickle is None:
        raise UserError("convert: -o needs an input params.pkl")
    params = None
    if args.pickle is not None:
        from so3krates_hk.convert import load_so3lr_pickle, so3lr_pickle_metadata
        from so3krates_hk.io import load_params, save_params

        is_npz = args.pickle.endswith(".npz")
        params = load_params(args.pickle)[0] if is_npz else load_so3lr_pickle(args.pickle)
        n = sum(v.size for leaves in params.values() for v in leaves.values())
        print(f"{args.pickle}: {sum(len(v) for v in params.values())} leaves, {n:,} numbers mapped onto so3krates_hk.")
        if args.output:
            metadata = load_params(args.pickle)[1] if is_npz else so3lr_pickle_metadata(args.pickle)
            save_params(args.output, params, metadata)
            print(f"wrote {args.output}")
    return check(params, args.float32) if args.check else 0


def check(params, float32: bool = False) -> int:
    """Print the parity table; 0 when every float64 energy and force error is within its limit, else 1."""
    import warnings

    import jax

    # jax-md 0.2.8 scatters int64 into int32 under x64: a FutureWarning per call that is not the user's to fix
    warnings.filterwarnings("ignore", message="scatter inputs have incompatible types", category=FutureWarning)
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from so3krates_hk import pretrained
    from so3krates_hk.data.parity import parity_report

    if params is None:
        params, _ = pretrained.so3lr()
        print("checking the bundled pretrained SO3LR weights")
    ok = True
    for dtype in [jnp.float64] + ([jnp.float32] if float32 else []):
        print(f"\nparity against the original SO3LR (*_jaxmd.npz), {jnp.dtype(dtype).name}:")
        print(f"{'structure':>10} {'atoms':>6} {'E (eV)':>20} {'|ΔE| (eV)':>11} {'max|ΔF| (eV/Å)':>15}")
        for row in parity_report(params, dtype=dtype):
            print(f"{row['name']:>10} {row['atoms']:>6} {row['energy']:>20.10f} {row['energy_error']:>11.2e} "
                  f"{row['force_error']:>15.2e}")  # fmt: skip
            if dtype == jnp.float64:
                e_lim = ENERGY_LIMIT_EV.get(row["name"], DEFAULT_ENERGY_LIMIT_EV)
                ok &= row["energy_error"] <= e_lim and row["force_error"] <= FORCE_LIMIT_EV_PER_A
    print(f"\nfloat64 parity: {'PASS' if ok else 'FAIL'} (limits: |ΔE| 1e-6 eV molecules, 1e-4 eV water; "
          f"max |ΔF| {FORCE_LIMIT_EV_PER_A:g} eV/Å)")  # fmt: skip
    return 0 if ok else 1
