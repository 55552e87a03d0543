"""``so3krates-hk example`` runs and prints SO3LR's energy and forces on dha as the original computes them."""

import re

import numpy as np

from so3krates_hk.cli import main
from so3krates_hk.data import reference_result


def test_example_prints_the_reference_energy_and_forces(capsys):
    assert main(["example", "--molecule", "dha"]) == 0
    out = capsys.readouterr().out
    total = re.search(r"total\s+(-?\d+\.\d+) eV\s+max \|F\| = (\d+\.\d+) eV/Å", out)
    assert total, out
    e_ref, f_ref = reference_result("dha")
    # float32 against the original's float64 result: |ΔE| 7e-6 eV, |ΔF| 3e-5 eV/Å measured; printed to 1e-6 / 1e-4
    assert abs(float(total.group(1)) - e_ref) < 1e-4
    assert abs(float(total.group(2)) - np.abs(f_ref).max()) < 2e-4
    components = dict(re.findall(r"(energy_\w+)\s+(-?\d+\.\d+) eV", out))
    assert set(components) == {"energy_nn", "energy_zbl", "energy_elec", "energy_disp"}
    assert abs(sum(map(float, components.values())) - e_ref) < 1e-4
    cg = re.search(r"CG SO3krates \(random init, ([\d,]+) parameters\) on a 50-bead chain: E = (\S+), "
                   r"max \|F\| = (\S+)", out)  # fmt: skip
    assert cg and np.isfinite(float(cg.group(2).rstrip(","))) and float(cg.group(3)) > 0
