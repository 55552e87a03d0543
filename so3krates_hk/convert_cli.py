"""``so3krates-hk convert``: params.pkl → safe .npz, and the parity check on the bundled reference structures."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from typing import Optional

from so3krates_hk.convert import SO3LR_PICKLE_SHA256, load_so3lr_pickle
from so3krates_hk.factory import SO3LR_AVG_NUM_NEIGHBORS
from so3krates_hk.io import load_params, save_params

SO3LR_FACTORY_KWARGS = dict(
    r_cutoff=4.5,
    lr_cutoff=12.0,
    dispersion_damping=2.0,
    avg_num_neighbors=SO3LR_AVG_NUM_NEIGHBORS,
    electrostatic_energy_scale=4.0,
    dispersion_energy_scale=1.2,
)


def so3lr_metadata(pickle_path: str) -> dict:
    with open(pickle_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    hyper = json.loads(resources.files("so3krates_hk.pretrained").joinpath("hyperparameters.json").read_text())
    return {
        "model": "so3lr",
        "factory": "so3krates_hk.so3lr_neighborlist_pp",
        "factory_kwargs": SO3LR_FACTORY_KWARGS,
        "source": {"file": os.path.basename(pickle_path), "sha256": sha, "is_official_so3lr": sha == SO3LR_PICKLE_SHA256},
        "original_hyperparameters": hyper,
        "license": "MIT (SO3LR weights; see LICENSE-SO3LR)",
    }


def _load_any(path: str):
    if path.endswith(".npz"):
        return load_params(path)[0]
    return load_so3lr_pickle(path)


def run(pickle: Optional[str], output: Optional[str], check: bool, float32: bool = False) -> int:
    if pickle is None and not check:
        print("so3krates-hk convert: give params.pkl (and -o out.npz), or --check.")
        return 2
    params = None
    if pickle is not None:
        params = _load_any(pickle)
        n = sum(v.size for leaves in params.values() for v in leaves.values())
        print(f"{pickle}: {sum(len(v) for v in params.values())} leaves, {n:,} numbers mapped onto so3krates_hk.")
        if output:
            metadata = so3lr_metadata(pickle) if not pickle.endswith(".npz") else load_params(pickle)[1]
            save_params(output, params, metadata)
            print(f"wrote {output}")
    if check:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        from so3krates_hk import pretrained
        from so3krates_hk.parity import parity_report

        if params is None:
            params, _ = pretrained.so3lr()
            print("checking the bundled pretrained SO3LR weights")
        dtypes = [jnp.float64] + ([jnp.float32] if float32 else [])
        worst = 0.0
        for dtype in dtypes:
            print(f"\nparity against the original SO3LR (*_jaxmd.npz), {jnp.dtype(dtype).name}:")
            print(f"{'structure':>10} {'atoms':>6} {'E (eV)':>20} {'|ΔE| (eV)':>11} {'max|ΔF| (eV/Å)':>15}")
            for row in parity_report(params, dtype=dtype):
                print(f"{row['name']:>10} {row['atoms']:>6} {row['energy']:>20.10f} {row['energy_error']:>11.2e} "
                      f"{row['force_error']:>15.2e}")  # fmt: skip
                if dtype == jnp.float64:
                    worst = max(worst, row["energy_error"] / (1e-4 if row["name"] == "water" else 1e-6))
        ok = worst <= 1.0
        print("\nfloat64 parity:", "PASS" if ok else "FAIL", "(limits: 1e-6 eV molecules, 1e-4 eV water)")
        return 0 if ok else 1
    return 0
