"""Convert simulation data into the CG ``.npz`` that ``so3krates-hk train`` reads.

    so3krates-hk data mdcath mdcath_dataset_4zohB01.h5 -o 4zohB01.npz --temperatures 320 --replicas 0 1 2

mdcath: one bead per residue at its Cα, forces summed over each residue's atoms, species from the residue names
(alphabet ACDEFGHIKLMNPQRSTVWY), ``temperature`` and ``replica`` per frame. Train on one temperature at a time
(``data.temperature`` in the training config).
"""

from __future__ import annotations

import argparse

NAME = "data"
HELP = "convert simulation data into a CG training set (mdCATH HDF5 → .npz)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", required=True, metavar="FORMAT")
    m = sub.add_parser("mdcath", help="an mdCATH domain file (mdcath_dataset_<domain>.h5)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    m.add_argument("file", metavar="FILE.h5", help="the mdCATH HDF5 file of one domain")
    m.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="the CG dataset to write")
    m.add_argument("--temperatures", nargs="+", type=float, metavar="K",
                   help="temperature groups to read, in K (default: all in the file)")  # fmt: skip
    m.add_argument("--replicas", nargs="+", type=int, metavar="R",
                   help="replica groups to read (default: all at each temperature)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from so3krates_hk.data.mdcath import mdcath_to_npz

    s = mdcath_to_npz(args.file, args.output, args.temperatures, args.replicas)
    print(f"{s['domain']}: {s['frames']} frames of {s['beads']} Cα beads at {s['temperatures']} K, replicas "
          f"{s['replicas']} -> {s['output']}")  # fmt: skip
    return 0
