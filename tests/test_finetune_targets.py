"""Fine-tuning on dipoles and Hirshfeld ratios (weighted targets) and committee members with different seeds."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("chemtrain")
ase = pytest.importorskip("ase")
import ase.io  # noqa: E402

from so3krates_hk.training.config import ConfigError  # noqa: E402
from so3krates_hk.training.finetune import (  # noqa: E402
    extra_targets,
    parse_finetune_config,
    read_xyz_dataset,
    run,
)

FINETUNE = os.path.join(os.path.dirname(__file__), "..", "so3krates_hk", "data", "finetune", "aspirin_gfn2.xyz")


def with_targets(path, frames=10):
    """Aspirin frames carrying a dipole (info) and Hirshfeld ratios (arrays): fixed targets the pretrained model
    does not reproduce."""
    out = []
    rng = np.random.default_rng(0)
    for a in ase.io.read(FINETUNE, f":{frames}"):
        a.info["dipole"] = np.array([0.3, -0.2, 0.1]) + 0.01 * rng.standard_normal(3)
        a.arrays["hirshfeld_ratios"] = np.full(len(a), 0.7)
        out.append(a)
    ase.io.write(path, out)
    return str(path)


def test_dataset_reads_dipoles_and_hirshfeld(tmp_path):
    data = read_xyz_dataset(with_targets(tmp_path / "t.extxyz", 4))
    assert data["dipole"].shape == (4, 3) and data["hirshfeld"].shape == (4, 21)
    plain = read_xyz_dataset(FINETUNE, max_frames=3)
    assert "dipole" not in plain and "hirshfeld" not in plain
    cfg = parse_finetune_config({"training": {"dipole_weight": 1.0}})
    with pytest.raises(ConfigError, match="dipole"):
        extra_targets(cfg.training, plain)
    assert extra_targets(cfg.training, data) == {"dipole": 1.0}
    with pytest.raises(ConfigError):
        parse_finetune_config({"training": {"committee": 0}})


@pytest.mark.slow  # two chemtrain compilations; ~25 min measured with the 2 cores loaded 10×, far less idle
def test_finetune_fits_dipoles_and_hirshfeld(tmp_path):
    path = with_targets(tmp_path / "t.extxyz", 10)
    cfg = parse_finetune_config({
        "data": {"xyz": path, "train_fraction": 0.6, "val_fraction": 0.2},
        "training": {"epochs": 3, "batch_size": 3, "learning_rate": 3e-3, "dipole_weight": 10.0,
                     "hirshfeld_weight": 10.0},
    })  # fmt: skip
    metrics = run(cfg, progress=False, output=str(tmp_path / "run"))
    assert metrics["frozen_bit_identical"] and metrics["export_reload_matches"]
    assert metrics["targets"] == {"U": 0.01, "F": 1.0, "dipole": 10.0, "hirshfeld": 10.0}
    assert metrics["after"]["dipole_rmse"] < metrics["before"]["dipole_rmse"]
    assert metrics["after"]["hirshfeld_rmse"] < metrics["before"]["hirshfeld_rmse"]


def test_committee_members_get_consecutive_seeds(tmp_path, monkeypatch):
    from so3krates_hk.training import finetune

    calls = []

    def fake_run_one(cfg, progress, out):  # records what each member is trained with
        calls.append((cfg.training.seed, cfg.training.committee, out))
        return dict(params=os.path.join(out, "finetuned.npz"), after={}, frozen_bit_identical=True,
                    export_reload_matches=True)  # fmt: skip

    monkeypatch.setattr(finetune, "_run_one", fake_run_one)
    cfg = parse_finetune_config({"training": {"committee": 3, "seed": 5}})
    summary = finetune.run(cfg, progress=False, output=str(tmp_path))
    assert [c[:2] for c in calls] == [(5, 1), (6, 1), (7, 1)]
    assert [c[2] for c in calls] == [str(tmp_path / f"member_{m}") for m in range(3)]
    assert summary["seeds"] == [5, 6, 7] and summary["frozen_bit_identical"]
    assert json.loads((tmp_path / "committee.json").read_text())["members"][2].endswith("member_2/finetuned.npz")
